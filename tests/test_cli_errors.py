"""Bad configuration through the real command line: exit status 2 and one short ``error:`` line on
stderr, never a traceback. Each case is one subprocess (a few seconds: imports dominate)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def robustlab(args: list[str], tmp_path: Path, data_root: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "ROBUSTLAB_DATA": str(data_root),
        "ROBUSTLAB_OUTPUT": str(tmp_path / "outputs"),
        "OMP_NUM_THREADS": "1",
    }
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "robustlab.cli",
            "experiment=rpr_mnist",
            "rpr.progress=false",
            "trainer.enable_progress_bar=false",
            f"hydra.run.dir={tmp_path / 'run'}",
            *args,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        cwd=tmp_path,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess, pattern: str) -> str:
    import re

    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr[-2000:]
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    line = lines[0]
    assert line.startswith("error: "), line
    assert len(line) < 400, line
    assert re.search(pattern, line), line
    return line


@pytest.fixture
def empty_root(tmp_path) -> Path:
    root = tmp_path / "no_data_here"
    root.mkdir()
    return root


def test_missing_data_folder(tmp_path, empty_root):
    proc = robustlab(["data.download=false"], tmp_path, empty_root)
    line = assert_one_line_error(
        proc, r"error: mnist not found: expected train-images-idx3-ubyte, .*t10k-labels-idx1-ubyte in "
    )
    assert str(empty_root / "MNIST" / "raw") in line
    assert not list((tmp_path / "run").glob("*.ckpt"))


def test_max_steps_zero(tmp_path, tiny_mnist_root):
    proc = robustlab(["rpr.max_steps=0", "data.download=false"], tmp_path, tiny_mnist_root)
    assert_one_line_error(proc, r"error: rpr\.max_steps must be a positive integer, got 0$")


def test_negative_sigma(tmp_path, tiny_mnist_root):
    proc = robustlab(
        ["perturbation=gaussian", "perturbation.sigma=-1", "data.download=false"], tmp_path, tiny_mnist_root
    )
    assert_one_line_error(proc, r"error: perturbation\.sigma must be >= 0, got -1")


def test_k_larger_than_the_image(tmp_path, tiny_mnist_root):
    proc = robustlab(["perturbation.k=10000", "data.download=false"], tmp_path, tiny_mnist_root)
    assert_one_line_error(proc, r"error: perturbation\.k=10000 is larger than the 784 pixels of a 28x28 image")
    assert not list((tmp_path / "run").glob("*.ckpt")), "stopped only after training"


@pytest.mark.parametrize(
    "override,message",
    [
        (
            "perturbation=nope",
            r"error: unknown perturbation option 'nope' in perturbation=nope; the options are: blur, brightness, "
            r"contrast, fog, gaussian, impulse_noise, motion_blur, pixels, rotation, salt_pepper, scale, shear, "
            r"translation, uniform_linf",
        ),
        (
            "hydra/launcher=nope",
            r"error: unknown hydra/launcher option 'nope' in hydra/launcher=nope; the options are: basic, joblib, "
            r"slurm, submitit_local, submitit_slurm",
        ),
        (
            "trainer=cpu,tpu",
            r"error: unknown trainer option 'tpu' in trainer=cpu,tpu; the options are: auto, cpu, ddp, ddp_cpu, gpu",
        ),
    ],
)
def test_unknown_config_option_is_one_line(tmp_path, tiny_mnist_root, override, message):
    proc = robustlab([override], tmp_path, tiny_mnist_root)
    assert_one_line_error(proc, message)


def test_options_that_exist_pass_the_check():
    from robustlab.cli import unknown_option

    assert (
        unknown_option(
            [
                "experiment=rpr_mnist",
                "hydra/launcher=joblib",
                "trainer=ddp_cpu",
                "perturbation=pixels,gaussian",
                "rpr.max_steps=5",
                "-m",
                "hydra.run.dir=x",
                "+extra=1",
                "checkpoint=null",
                "data=choice(mnist,fashion_mnist)",
            ]
        )
        is None
    )
