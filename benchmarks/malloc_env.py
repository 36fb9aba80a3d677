"""What the Makefile's glibc malloc settings buy: one real ``robustlab`` job (quick rpr_mnist, seed 0,
its own empty output root, so no cache is reused) run as a subprocess with and without
MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_.

Without them, glibc returns every freed buffer above its mmap threshold to the kernel, so the next
batch of the same size faults its pages in again: system time and minor page faults show it. The
per-datapoint result tables of both settings must be byte-identical; the script says whether they are.

Run:  ROBUSTLAB_DATA=/path/to/mnist-root python benchmarks/malloc_env.py [--repeats 2]
"""

from __future__ import annotations

import hashlib
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import header, markdown, parser, save  # noqa: E402

from robustlab.runs.schema import read_metrics

ROOT = Path(__file__).resolve().parents[1]
ROBUSTLAB = Path(sys.executable).parent / "robustlab"
MALLOC_VARS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
# The Makefile's values: its comment says why.
TUNED = {"MALLOC_MMAP_THRESHOLD_": "1073741824", "MALLOC_TRIM_THRESHOLD_": "4294967296"}


def run_job(out: Path, tuned: bool, data_root: str) -> dict:
    """One job in a subprocess; its wall time, the children's rusage deltas and its tables' digest."""
    env = {k: v for k, v in os.environ.items() if k not in MALLOC_VARS}
    env.update(TUNED if tuned else {})
    env["ROBUSTLAB_DATA"] = data_root
    # Its own output root: no model or RPR cache of an earlier run (or of the other setting) is reused.
    env["ROBUSTLAB_OUTPUT"] = str(out / "root")
    argv = [str(ROBUSTLAB), "experiment=rpr_mnist", "profile=quick", "seed=0", "data.download=false"]
    argv += [f"hydra.run.dir={out}"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    digest = hashlib.sha256(
        b"".join((out / name).read_bytes() for name in sorted(os.listdir(out)) if name.endswith(".csv"))
    )
    return {
        "wall_s": wall,
        "job_s": read_metrics(out)["wall_time_s"],
        "sys_s": after.ru_stime - before.ru_stime,
        "minor_faults": after.ru_minflt - before.ru_minflt,
        "tables": digest.hexdigest()[:16],
    }


def main() -> None:
    p = parser(__doc__, "malloc_env")
    p.add_argument("--repeats", type=int, default=2, help="runs per setting, interleaved (default 2)")
    p.add_argument("--data-root", default=os.environ.get("ROBUSTLAB_DATA", "data"), help="MNIST root")
    args = p.parse_args()
    info = header("malloc_env", "cpu")
    runs = {False: [], True: []}
    with tempfile.TemporaryDirectory() as scratch:
        for i in range(args.repeats):
            for tuned in (False, True):  # interleaved, so outside load affects both alike
                runs[tuned].append(run_job(Path(scratch) / f"{int(tuned)}_{i}", tuned, args.data_root))
    rows = []
    for tuned, label in ((False, "glibc defaults"), (True, "Makefile's MALLOC_*")):
        rows.append(
            {
                "setting": label,
                "process wall s": statistics.median(r["wall_s"] for r in runs[tuned]),
                "job wall s": statistics.median(r["job_s"] for r in runs[tuned]),
                "system s": statistics.median(r["sys_s"] for r in runs[tuned]),
                "minor faults": statistics.median(r["minor_faults"] for r in runs[tuned]),
            }
        )
    print(markdown(rows))
    digests = {r["tables"] for rs in runs.values() for r in rs}
    print(f"result tables byte-identical across settings and repeats: {'yes' if len(digests) == 1 else 'NO'}")
    save(rows, args.out, "malloc_env", info, {"repeats": args.repeats, "tuned": TUNED, "tables": sorted(digests)})


if __name__ == "__main__":
    main()
