"""``robustlab-rpr-merge``: join the RPR shards (``rpr.shard=i/n``) of a multirun into the result of
one run (the shard math is robustlab.robustness.shards; this module reads and writes the run folders).

  robustlab-rpr-merge --multirun MULTIRUN_DIR --out OUT_DIR

Bad input ends with one ``error:`` line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from robustlab import results
from robustlab.errors import one_line_errors, require
from robustlab.robustness.shards import merge_results, parse_shard
from robustlab.robustness.summary import summarise
from robustlab.runs.discover import job_folders
from robustlab.runs.jobs import finished
from robustlab.runs.layout import METRICS, rpr_file
from robustlab.runs.schema import read_metrics
from robustlab.runs.store import flat_config

RPR_FILE = rpr_file("M_test")


def _difference(a: dict, b: dict) -> str | None:
    """The first config key (other than rpr.shard) on which two jobs differ, as 'key (a vs b)'."""
    fa, fb = flat_config(a, "config"), flat_config(b, "config")
    for key in sorted(set(fa) | set(fb)):
        if key != "config.rpr.shard" and fa.get(key) != fb.get(key):
            return f"{key.removeprefix('config.')} ({fa.get(key)} vs {fb.get(key)})"
    return None


def collect_shards(multirun: Path) -> list[tuple[Path, dict]]:
    """Every finished job of a sharded multirun, checked to hold each shard 0..n-1 exactly once,
    of one configuration and one M; in shard order."""
    require(multirun.is_dir(), f"multirun directory not found: {multirun}")
    jobs = [p for p in job_folders(multirun) if finished(p)]  # a killed or failed job never counts
    require(len(jobs) > 0, f"no finished jobs in {multirun} (no job folder holds a finished {METRICS})")
    found: dict[int, tuple[Path, dict]] = {}
    count = None
    for job in jobs:
        metrics = read_metrics(job)
        shard = parse_shard(metrics.get("shard"))
        require(
            shard is not None,
            f"job {job} is not a sharded run (rpr.shard was null); merge only the jobs of rpr.shard=0/n,...",
        )
        require(
            count in (None, shard[1]),
            f"jobs disagree on the shard count: {metrics['shard']} in {job}, n={count} elsewhere",
        )
        count = shard[1]
        require(
            shard[0] not in found, f"shard {metrics['shard']} appears twice: {found.get(shard[0], (job,))[0]} and {job}"
        )
        require((job / RPR_FILE).is_file(), f"job {job} has no {RPR_FILE}")
        found[shard[0]] = (job, metrics)
    missing = [f"{i}/{count}" for i in range(count) if i not in found]
    require(
        not missing,
        f"shard {', '.join(missing)} missing: no finished job in {multirun} measured it (failed or not run)",
    )
    shards = [found[i] for i in range(count)]
    (first, base), rest = shards[0], shards[1:]
    for job, metrics in rest:
        differs = _difference(base["config"], metrics["config"])
        require(
            differs is None,
            f"jobs {first} and {job} differ in {differs}; merge the shards of one configuration at a time",
        )
        require(
            metrics.get("M_digest") == base.get("M_digest"),
            f"jobs {first} and {job} measured different models M; train M once and pass checkpoint=... to every shard",
        )
    return shards


def merge_multirun(multirun: str | Path, out: str | Path) -> list[Path]:
    """Write the merged rpr_M_test.csv and a metrics.json shaped like one run's into ``out``."""
    multirun, out = Path(multirun), Path(out)
    shards = collect_shards(multirun)
    merged = merge_results([results.load_rpr(job / RPR_FILE) for job, _ in shards])
    base = shards[0][1]
    metrics = {k: v for k, v in base.items() if k not in ("timings_s", "wall_time_s")}
    num_classes = len(base["M"]["test"]["robust_per_class"])
    metrics.update(
        shard=None, merged_from=[str(job) for job, _ in shards], M={**base["M"], "test": summarise(merged, num_classes)}
    )
    metrics["config"]["rpr"]["shard"] = None
    return [results.save_rpr(out / RPR_FILE, merged), results.write_metrics(out, metrics)]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="robustlab-rpr-merge", description="Merge the RPR shards (rpr.shard=i/n) of a multirun into one result."
    )
    p.add_argument(
        "--multirun", required=True, type=Path, help="Hydra multirun folder whose jobs ran rpr.shard=0/n,...,n-1/n"
    )
    p.add_argument("--out", required=True, type=Path, help="folder for the merged rpr_M_test.csv and metrics.json")
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    with one_line_errors():
        written = merge_multirun(args.multirun, args.out)
    for path in written:
        print(path)


if __name__ == "__main__":
    main()
