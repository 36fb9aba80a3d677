"""Tests that need a CUDA device (marker ``gpu``; `make gpu-check` runs them). Skipped without one.

RPR on CUDA in float32 gives exactly the CPU's per-point results (its random numbers come from
(seed, dataset index, retry), not from the device); bf16 autocast agrees within the tolerance
documented in conf/rpr/default.yaml; torch.compile gives the eager results; the pipeline runs
under DDP on one GPU and measures the CPU's numbers for the same M.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import tiny_run_overrides
from robustlab.models import SimpleCNN
from robustlab.robustness import make_perturbation, measure_rpr

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

COLUMNS = ("index", "label", "clean_pred", "first_failure", "fail_pred")


@pytest.fixture(scope="module")
def model_and_points(tiny_mnist_root):
    """A briefly trained tiny CNN (some points robust, some not) and the tiny test set."""
    from robustlab.data import VisionDataModule

    torch.manual_seed(0)
    data = VisionDataModule("mnist", str(tiny_mnist_root), download=False, batch_size=32)
    data.setup()
    model = SimpleCNN(channels=(4, 8), lr=0.01)
    optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
    for start in range(0, len(data.train), 32):
        x, y = data.train.images[start : start + 32], data.train.labels[start : start + 32]
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimiser.step()
    return model.eval(), data.test


def rpr(model, points, device: str, **options):
    model = model.to(device)
    result = measure_rpr(
        model,
        points.images,
        points.labels,
        make_perturbation("pixels"),
        50,
        seed=0,
        indices=points.index,
        progress=False,
        **options,
    )
    return {name: result.columns()[name] for name in COLUMNS}, result


def test_rpr_on_cuda_gives_the_cpu_step_counts_in_float32(model_and_points):
    model, points = model_and_points
    cpu, _ = rpr(model.cpu(), points, "cpu")
    for options in ({}, {"batch_size": "auto"}, {"channels_last": True, "batch_size": 1000}):
        cuda, _ = rpr(model, points, "cuda", **options)
        for name in COLUMNS:
            np.testing.assert_array_equal(cuda[name], cpu[name], err_msg=f"{name} with {options}")
    model.cpu()


def test_bf16_autocast_on_cuda_within_the_tested_tolerance(model_and_points):
    model, points = model_and_points
    _, exact = rpr(model, points, "cuda")
    _, bf16 = rpr(model, points, "cuda", autocast="bf16")
    model.cpu()
    assert (exact.clean_pred == bf16.clean_pred).mean() >= 0.95
    assert abs(exact.robust_ratio() - bf16.robust_ratio()) <= 0.05


def test_compile_path_on_cuda_gives_the_eager_results(model_and_points):
    model, points = model_and_points
    eager, _ = rpr(model, points, "cuda")
    compiled, _ = rpr(model, points, "cuda", compile=True)
    model.cpu()
    for name in COLUMNS:
        np.testing.assert_array_equal(compiled[name], eager[name], err_msg=name)


def test_pipeline_under_ddp_on_one_gpu_measures_the_cpu_numbers(tiny_mnist_root, tmp_path):
    """The same saved M measured by the CLI under trainer=ddp (one GPU) and trainer=cpu: the same RPR table."""
    base = tiny_run_overrides(tiny_mnist_root, **{"experiment": "rpr_sweep", "profile.epochs": 1})
    trained = tmp_path / "trained"
    cli = [sys.executable, "-m", "robustlab.cli"]
    subprocess.run(cli + base + ["trainer=cpu", f"hydra.run.dir={trained}"], check=True, capture_output=True)
    tables = {}
    for trainer in ("cpu", "ddp"):
        run_dir = tmp_path / trainer
        extra = ["trainer.devices=1"] if trainer == "ddp" else []
        done = subprocess.run(
            cli + base + [f"trainer={trainer}", *extra, f"checkpoint={trained / 'M.ckpt'}", f"hydra.run.dir={run_dir}"],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        tables[trainer] = Path(run_dir / "rpr_M_test.csv").read_text()
    assert tables["ddp"] == tables["cpu"]
