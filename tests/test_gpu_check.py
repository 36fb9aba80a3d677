"""`make gpu-check` on a machine without a GPU: one line, exit status 0 (the GPU path runs only where
CUDA is; see benchmarks/gpu_check.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_without_cuda_says_so_in_one_line_and_exits_0():
    env = os.environ | {"CUDA_VISIBLE_DEVICES": ""}  # no device visible, also on a machine that has one
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "gpu-check: no CUDA device here; nothing to check\n"


def test_make_gpu_check_runs_that_script():
    makefile = (ROOT / "Makefile").read_text()
    assert "gpu-check: $(STAMP)\n\t$(BIN)/python benchmarks/gpu_check.py\n" in makefile


def test_gpu_tests_are_marked_and_skipped_without_cuda():
    env = os.environ | {"CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-m", "gpu", str(ROOT / "tests" / "test_gpu.py")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:]
    assert "4 skipped" in done.stdout
