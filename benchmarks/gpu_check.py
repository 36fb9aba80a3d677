"""`make gpu-check`: what a lent GPU must show, in one command of at most 8 minutes on one GPU.

  1. the tests marked ``gpu`` (tests/test_gpu.py): RPR on CUDA gives the CPU's step counts in float32;
     bf16 autocast within the tested tolerance; the torch.compile path; DDP on one GPU;
  2. the quick-profile rpr_mnist on the GPU (one seed, trainer=auto), with its claims table and timings;
  3. the RPR throughput benchmark on the GPU beside plain batched inference there
     (benchmarks/rpr_throughput.py, batch size auto).

Each step has its own time limit (their sum is under 8 minutes); a step that fails or runs out of
time is reported and the others still run; the exit status is non-zero when any failed. Without a
CUDA device it prints one line and exits 0. Data: $ROBUSTLAB_DATA (MNIST in torchvision's layout) for
steps 2 and 3; outputs go to a temporary folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NO_GPU = "gpu-check: no CUDA device here; nothing to check"
LIMITS_S = {"tests": 150, "rpr_mnist": 210, "benchmark": 90}  # 7.5 minutes in all


def steps(out: Path) -> list[tuple[str, list[str]]]:
    python, robustlab = sys.executable, str(Path(sys.executable).with_name("robustlab"))
    return [
        ("tests", [python, "-m", "pytest", "-q", "-m", "gpu", "tests/test_gpu.py"]),
        (
            "rpr_mnist",
            [
                robustlab,
                "experiment=rpr_mnist",
                "profile=quick",
                "seed=0",
                "trainer=auto",
                "rpr.batch_size=auto",
                f"hydra.run.dir={out / 'rpr_mnist'}",
            ],
        ),
        (
            "benchmark",
            [
                python,
                "benchmarks/rpr_throughput.py",
                "--device",
                "cuda",
                "--batch-size",
                "auto",
                "--points",
                "1000",
                "--max-steps",
                "100",
                "--naive-points",
                "10",
            ],
        ),
    ]


def run_step(name: str, command: list[str], env: dict) -> bool:
    print(f"== gpu-check {name}: {' '.join(command)}", flush=True)
    started = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=ROOT, env=env, timeout=LIMITS_S[name])
        ok = done.returncode == 0
        outcome = "ok" if ok else f"failed (exit {done.returncode})"
    except subprocess.TimeoutExpired:
        ok, outcome = False, f"stopped after its {LIMITS_S[name]} s limit"
    print(f"== gpu-check {name}: {outcome} in {time.perf_counter() - started:.0f} s", flush=True)
    return ok


def main() -> int:
    import torch

    if not torch.cuda.is_available():
        print(NO_GPU)
        return 0
    print(
        f"gpu-check on {torch.cuda.get_device_name(0)} | torch {torch.__version__} | CUDA {torch.version.cuda}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="robustlab-gpu-check-") as tmp:
        env = os.environ | {
            "ROBUSTLAB_OUTPUT": tmp,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])),
        }
        outcomes = {name: run_step(name, command, env) for name, command in steps(Path(tmp))}
    failed = [name for name, ok in outcomes.items() if not ok]
    print(
        f"gpu-check: {len(outcomes) - len(failed)} of {len(outcomes)} steps passed"
        + (f"; failed: {', '.join(failed)}" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
