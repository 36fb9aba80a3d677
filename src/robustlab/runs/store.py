"""The results store: every run under a root as one tidy table, one row per run and metric.

  robustlab-results [--root outputs] [--out outputs/results]

A run is any folder holding ``.hydra/config.yaml``. Its metrics are the numeric leaves of
``metrics.json`` (dotted paths; list items by index; booleans as 0/1 because flags such as
``attack.clip`` decide whether a number is comparable; ``null`` as NaN, so "never reached" is told
apart from "never measured"), without the ``config`` copy, which becomes ``config.*`` columns.
Runs without a readable ``metrics.json`` (failed, or still running) are listed on stderr and left
out, never averaged in.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from robustlab.errors import RobustlabError, one_line_errors, require
from robustlab.runs import jobs
from robustlab.runs.discover import find_runs, group_of, natural_key  # noqa: F401  (re-exported)
from robustlab.runs.io import read_json_object
from robustlab.runs.layout import HYDRA_CONFIG, LOG, METRICS
from robustlab.runs.schema import META_KEYS as SCHEMA_META_KEYS
from robustlab.runs.schema import check

COLUMNS = ["run_dir", "group", "name", "pipeline", "profile", "seed", "metric", "value"]
META_KEYS = SCHEMA_META_KEYS  # schema_version, pipeline, profile, seed, config: columns of their own, not metrics


@dataclass(frozen=True)
class Skipped:
    path: Path
    reason: str

    def __str__(self) -> str:
        return f"skipped {self.path}: {self.reason}"


def _log_tail(run_dir: Path) -> str:
    log = run_dir / LOG
    if not log.is_file():
        return ""
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return f"; {LOG} ends: {lines[-1][:160]}" if lines else ""


def read_metrics(run_dir: Path) -> dict:
    """A finished run's metrics.json; a job whose marker says it is not done (killed, still running,
    failed) never counts, even when a metrics.json is there (robustlab.runs.jobs)."""
    path = run_dir / METRICS
    marker = jobs.read_marker(run_dir)
    if marker is not None and not jobs.finished(run_dir):
        why = (
            f"failed: {marker.get('error', '?')}"
            if marker["state"] == jobs.FAILED
            else "unfinished (killed, or still running)"
        )
        raise RobustlabError(f"{why}{_log_tail(run_dir)}")
    require(path.is_file(), f"no {METRICS} (failed or unfinished){_log_tail(run_dir)}")
    return check(read_json_object(path, METRICS), METRICS)


def read_config(run_dir: Path, metrics: dict) -> dict:
    """The resolved copy in metrics.json when there is one (``.hydra/config.yaml`` keeps ``${...}``)."""
    if isinstance(metrics.get("config"), dict):
        return metrics["config"]
    try:
        config = yaml.safe_load((run_dir / HYDRA_CONFIG).read_text())
    except yaml.YAMLError as error:
        raise RobustlabError(f"unreadable .hydra/config.yaml: {str(error).splitlines()[0]}") from None
    return config if isinstance(config, dict) else {}


def numeric_leaves(tree, prefix: str = "") -> Iterator[tuple[str, float]]:
    if isinstance(tree, dict):
        items = tree.items()
    elif isinstance(tree, list):
        items = enumerate(tree)
    else:
        if tree is None:
            yield prefix, math.nan
        elif isinstance(tree, (bool, int, float)):
            yield prefix, float(tree)
        return
    for key, value in items:
        yield from numeric_leaves(value, f"{prefix}.{key}" if prefix else str(key))


def flat_config(tree: dict, prefix: str = "config") -> dict:
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}.{key}"
        if isinstance(value, dict):
            flat |= flat_config(value, name)
        else:
            flat[name] = json.dumps(value) if isinstance(value, list) else value
    return flat


def run_rows(run_dir: Path, root: Path) -> list[dict]:
    metrics = read_metrics(run_dir)
    config = read_config(run_dir, metrics)
    meta = {
        "run_dir": run_dir.as_posix(),
        "group": group_of(run_dir, root),
        "name": config.get("name"),
        "pipeline": metrics.get("pipeline"),
        "profile": metrics.get("profile"),
        "seed": metrics.get("seed", config.get("seed")),
    }
    flat = flat_config(config)
    leaves = numeric_leaves({k: v for k, v in metrics.items() if k not in META_KEYS})
    return [meta | {"metric": key, "value": value} | flat for key, value in leaves]


def collect_runs(root: str | Path) -> tuple[pd.DataFrame, list[Skipped]]:
    """Every run under ``root``: the tidy table and the runs left out, with the reason."""
    root = Path(root)
    require(root.is_dir(), f"results root {root} is not a folder; pass --root the folder the runs were written to")
    rows, skipped = [], []
    for run_dir in find_runs(root):
        try:
            rows += run_rows(run_dir, root)
        except RobustlabError as error:
            skipped.append(Skipped(run_dir, str(error)))
    frame = pd.DataFrame(rows)
    if frame.empty:
        frame = pd.DataFrame(columns=COLUMNS)
    config_columns = sorted(c for c in frame.columns if c not in COLUMNS)
    return frame[COLUMNS + config_columns], skipped


def report_skipped(skipped: list[Skipped]) -> None:
    for item in skipped:
        print(item, file=sys.stderr)


def write_store(frame: pd.DataFrame, out: Path) -> list[Path]:
    from robustlab.runs.io import atomic_write_bytes

    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    written = [atomic_write_bytes(out / "results.csv", buffer.getvalue().encode())]
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        print("results.parquet not written: pyarrow is not installed (results.csv holds the same table)")
        return written
    data = io.BytesIO()
    # Config columns mix types across runs (null vs number vs text); parquet needs one type per column.
    mixed = {c: "string" for c in frame.columns if frame[c].dtype == object}
    frame.astype(mixed).to_parquet(data, index=False)
    written.append(atomic_write_bytes(out / "results.parquet", data.getvalue()))
    return written


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="robustlab-results", description="Collect every run under a root into one tidy table."
    )
    p.add_argument(
        "--root", type=Path, default=Path("outputs"), help="folder searched for run folders (default: %(default)s)"
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("outputs/results"),
        help="folder for results.csv / .parquet (default: %(default)s)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    with one_line_errors():
        frame, skipped = collect_runs(args.root)
        report_skipped(skipped)
        runs = frame["run_dir"].nunique()
        require(runs > 0, f"no finished run under {args.root} (a run folder holds .hydra/config.yaml and {METRICS})")
        written = write_store(frame, args.out)
    print(f"{runs} runs, {len(frame)} rows, {len(skipped)} skipped -> {', '.join(str(p) for p in written)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
