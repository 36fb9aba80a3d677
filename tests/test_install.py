"""A real install: the wheel carries the configs, and its entry points work from any folder in a venv
where only the wheel provides robustlab (about 10 s: one wheel build, one venv, three commands)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import hydra
import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(argv: list, cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # nothing but the venv provides robustlab
    return subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=180, **kwargs
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a copy of the checkout (the build leaves build/ and *.egg-info behind)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    shutil.copytree(ROOT / "src", source / "src", symlinks=True, ignore=skip)  # src/robustlab/conf stays a symlink
    shutil.copytree(ROOT / "conf", source / "conf", ignore=skip)
    (source / "paper").mkdir()
    shutil.copy(ROOT / "paper" / "claims.yaml", source / "paper")  # robustlab/report/claims.yaml links to it
    shutil.copy(ROOT / "pyproject.toml", source)
    proc = run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", source, "-w", tmp / "dist"],
        tmp,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (found,) = (tmp / "dist").glob("robustlab-*.whl")
    return found


def test_the_wheel_carries_every_config(wheel):
    with zipfile.ZipFile(wheel) as archive:
        shipped = {
            name.removeprefix("robustlab/conf/"): archive.read(name)
            for name in archive.namelist()
            if name.startswith("robustlab/conf/")
        }
    expected = {p.relative_to(ROOT / "conf").as_posix(): p.read_bytes() for p in (ROOT / "conf").rglob("*.yaml")}
    assert "config.yaml" in expected and "experiment/rpr_mnist.yaml" in expected
    assert shipped == expected


def test_the_wheel_carries_the_claims_a_run_prints(wheel):
    """The end of every run prints the claims of its pipeline (robustlab.cli.summary_lines): without the file, an
    installed robustlab would fail each run after its results were written."""
    with zipfile.ZipFile(wheel) as archive:
        assert archive.read("robustlab/report/claims.yaml") == (ROOT / "paper" / "claims.yaml").read_bytes()


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv holding the wheel; its other dependencies come from this interpreter's site-packages,
    added as a plain path (a .pth line), so that folder's own .pth files (an editable robustlab) stay unread."""
    tmp = tmp_path_factory.mktemp("venv")
    proc = run([sys.executable, "-m", "venv", "--without-pip", tmp / "venv"], tmp)
    assert proc.returncode == 0, proc.stderr
    python = tmp / "venv" / "bin" / "python"
    site = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp).stdout.strip()
    Path(site, "robustlab-test-deps.pth").write_text(str(Path(hydra.__file__).parents[1]) + "\n")
    proc = run([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", wheel], tmp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp / "venv"


def test_the_installed_entry_points_work_from_any_folder(venv, tmp_path):
    where = run(
        [
            venv / "bin" / "python",
            "-c",
            "import robustlab; from robustlab.configs.location import conf_dir; "
            "print(robustlab.__file__); print(conf_dir())",
        ],
        tmp_path,
    )
    package, conf = where.stdout.split()
    assert Path(package).is_relative_to(venv) and Path(conf).is_relative_to(venv), where.stdout
    assert Path(conf, "experiment", "rpr_mnist.yaml").is_file()

    job = run([venv / "bin" / "robustlab", "experiment=rpr_mnist", "profile=quick", "--cfg", "job"], tmp_path)
    assert job.returncode == 0, job.stderr[-3000:]
    assert "name: rpr_mnist" in job.stdout and "pipeline: robustlab.pipelines.rpr_retrain.RPRRetrain" in job.stdout
    assert "profile:\n  name: quick" in job.stdout

    claims = run(
        [
            venv / "bin" / "python",
            "-c",
            "from robustlab.report.claims import CLAIMS, pipeline_claims; "
            "print(CLAIMS); print(pipeline_claims('rpr_retrain')['run_group'])",
        ],
        tmp_path,
    )
    path, group = claims.stdout.split()
    assert Path(path).is_relative_to(venv) and group == "rpr_mnist", claims.stdout + claims.stderr[-3000:]

    plot = run([venv / "bin" / "robustlab-plot", "--help"], tmp_path)
    assert plot.returncode == 0 and plot.stdout.startswith("usage: robustlab-plot"), plot.stderr[-3000:]

    bad = run([venv / "bin" / "robustlab", "experiment=rpr_mnist", "rpr.maxsteps=10"], tmp_path)
    assert (bad.returncode, bad.stderr.strip().splitlines()[-1:]) == (
        2,
        [
            "error: unknown config key 'rpr.maxsteps' in rpr.maxsteps=10; did you mean rpr.max_steps? "
            "(a new key needs +rpr.maxsteps=10)"
        ],
    )
    assert not list(tmp_path.iterdir()), "the commands wrote into the folder they ran from"
