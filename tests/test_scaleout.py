"""Scaling out: device checks, RPR shards and their merge, RPR over DDP processes (gloo on CPU),
parallel multiruns with joblib, one GPU per job, and the SLURM launcher preset.

The CLI runs are real subprocesses on the tiny MNIST folder; M is trained once (module fixture) and
passed as checkpoint=..., so every comparison is of RPR on the same model."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from conftest import compose_config, tiny_run_overrides
from robustlab import results
from robustlab.cli import run
from robustlab.errors import RobustlabError
from robustlab.pipelines import devices, shard_merge
from robustlab.robustness import shards
from robustlab.robustness.rpr import RPRResult

# A scheme that fools the tiny model on about half the points, at various retries; 41 points: unequal shares.
FAST = {
    "model.lr": 0.01,
    "rpr.retrain": "false",
    "profile.rpr_test_points": 41,
    "perturbation": "salt_pepper",
    "perturbation.rate": 0.3,
    "profile.max_steps": 20,
}


def cli(args: list[str], tmp_path: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "ROBUSTLAB_OUTPUT": str(tmp_path / "outputs"), "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(
        [sys.executable, "-m", "robustlab.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=tmp_path,
    )


def one_line_error(proc: subprocess.CompletedProcess, pattern: str) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, proc.stderr[-3000:]
    assert re.search(pattern, lines[0]), lines[0]
    return lines[0]


def same_points(a: RPRResult, b: RPRResult) -> None:
    for name, column in a.columns().items():
        np.testing.assert_array_equal(column, b.columns()[name], err_msg=name)
    assert a.max_steps == b.max_steps


@pytest.fixture(scope="module")
def base_run(tiny_mnist_root, tmp_path_factory):
    """M trained once, and its unsharded one-process RPR on the test points."""
    run_dir = tmp_path_factory.mktemp("scaleout") / "base"
    metrics = run(compose_config(tiny_run_overrides(tiny_mnist_root, **FAST)), run_dir)
    return run_dir, metrics


def shard_run(data_root: Path, checkpoint: Path, run_dir: Path, shard: str) -> dict:
    overrides = tiny_run_overrides(data_root, **FAST, checkpoint=str(checkpoint), **{"rpr.shard": shard})
    return run(compose_config(overrides), run_dir)


# --- shards -----------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["3/2", "2/2", "a/b", "1/0", "-1/2", "1", "1/2/3", ""])
def test_bad_shard_specs_are_one_line_errors(spec):
    with pytest.raises(RobustlabError, match=r"^rpr\.shard"):
        shards.parse_shard(spec)


def test_shards_are_disjoint_and_cover_every_position():
    assert shards.parse_shard(None) is None and shards.parse_shard("1/4") == (1, 4)
    for length in range(0, 12):
        for count in range(1, 6):
            parts = [shards.shard_positions(length, i, count).tolist() for i in range(count)]
            assert sorted(sum(parts, [])) == list(range(length))


def test_two_shards_merge_to_the_unsharded_result(base_run, tiny_mnist_root, tmp_path):
    run_dir, _ = base_run
    unsharded = results.load_rpr(run_dir / "rpr_M_test.csv")
    assert len(unsharded.index) == 41 and len(set(unsharded.steps.tolist())) > 1  # a mix of step counts
    multirun = tmp_path / "multirun"
    for job, shard in enumerate(["0/2", "1/2"]):
        metrics = shard_run(tiny_mnist_root, run_dir / "M.ckpt", multirun / str(job), shard)
        assert metrics["shard"] == shard and metrics["M"]["test"]["points"] == (21 if job == 0 else 20)
        assert json.loads((multirun / str(job) / "metrics.json").read_text())["shard"] == shard
    parts = [results.load_rpr(multirun / str(job) / "rpr_M_test.csv") for job in (0, 1)]
    assert not set(parts[0].index) & set(parts[1].index)
    same_points(shards.merge_results(parts[::-1]), unsharded)

    shard_merge.main(["--multirun", str(multirun), "--out", str(tmp_path / "merged")])
    same_points(results.load_rpr(tmp_path / "merged" / "rpr_M_test.csv"), unsharded)
    merged = json.loads((tmp_path / "merged" / "metrics.json").read_text())
    assert merged["M"]["test"] == json.loads(json.dumps(base_run[1]["M"]["test"]))  # robust ratio etc. of the whole

    shutil.copytree(multirun / "0", multirun / "2")
    with pytest.raises(RobustlabError, match=r"shard 0/2 appears twice: .*/0 and .*/2"):
        shard_merge.merge_multirun(multirun, tmp_path / "again")
    shutil.rmtree(multirun / "2")
    shutil.rmtree(multirun / "1")
    with pytest.raises(RobustlabError, match=r"shard 1/2 missing"):
        shard_merge.merge_multirun(multirun, tmp_path / "again")
    assert not (tmp_path / "again").exists()


def test_merge_cli_error_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        shard_merge.main(["--multirun", str(tmp_path / "nothing"), "--out", str(tmp_path / "out")])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: multirun directory not found: {tmp_path / 'nothing'}"
    ]


def test_merge_refuses_overlap_and_mixed_max_steps(base_run):
    whole = results.load_rpr(base_run[0] / "rpr_M_test.csv")
    with pytest.raises(RobustlabError, match="overlap"):
        shards.merge_results([whole, whole])
    other = RPRResult(whole.index + 1000, whole.label, whole.clean_pred, whole.first_failure, whole.fail_pred, 7)
    with pytest.raises(RobustlabError, match="different MAX_STEPS"):
        shards.merge_results([whole, other])


def test_shard_with_retraining_is_refused_before_training(tiny_mnist_root, tmp_path):
    overrides = tiny_run_overrides(tiny_mnist_root, **{"rpr.shard": "0/2"})  # rpr.retrain stays true
    with pytest.raises(RobustlabError, match=r"^rpr\.shard=0/2 .*set rpr\.retrain=false"):
        run(compose_config(overrides), tmp_path / "run")
    assert not (tmp_path / "run").exists()


# --- devices ----------------------------------------------------------------------------------


def test_more_gpus_than_present_is_one_line():
    cfg = compose_config(["trainer=ddp", "trainer.devices=4"]).trainer
    with pytest.raises(RobustlabError, match=r"^trainer\.devices=4 needs 4 GPU\(s\), this machine shows 2"):
        devices.require_devices(cfg, present=2)
    devices.require_devices(cfg, present=4)
    with pytest.raises(RobustlabError, match="needs 4 GPU"):
        devices.require_devices(OmegaConf.create({"accelerator": "gpu", "devices": [0, 3]}), present=2)
    devices.require_devices(
        compose_config(["trainer=ddp_cpu", "trainer.devices=8"]).trainer, present=0
    )  # CPU processes


def test_gpu_preset_on_a_machine_without_gpu_cli(tiny_mnist_root, tmp_path):
    if devices.visible_gpus():
        pytest.skip("this machine has a GPU")
    proc = cli(
        tiny_run_overrides(tiny_mnist_root, **FAST) + ["trainer=gpu", f"hydra.run.dir={tmp_path / 'run'}"], tmp_path
    )
    one_line_error(proc, r"^error: trainer\.devices=1 needs 1 GPU\(s\), this machine shows 0.*use trainer=cpu")
    assert not (tmp_path / "run" / "M.ckpt").exists()


def test_one_gpu_per_job(monkeypatch):
    assert [devices.gpu_for_job(job, ["0", "1"]) for job in range(5)] == ["0", "1", "0", "1", "0"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    assert devices.pin_gpu_per_job(3) == "5" and os.environ["CUDA_VISIBLE_DEVICES"] == "5"
    assert devices.pin_gpu_per_job(4) == "5"  # a reused joblib worker keeps its GPU
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.setattr(devices.torch.cuda, "device_count", lambda: 3)
    assert devices.visible_gpus() == ["0", "1", "2"] and devices.pin_gpu_per_job(7) == "1"
    with pytest.raises(RobustlabError, match="gpu_per_job=true but no GPU is visible"):
        devices.gpu_for_job(0, [])


# --- DDP over CPU processes (gloo) ------------------------------------------------------------


def test_rpr_over_one_and_two_processes_gives_identical_points(base_run, tiny_mnist_root, tmp_path):
    run_dir, _ = base_run
    overrides = tiny_run_overrides(tiny_mnist_root, **FAST, checkpoint=str(run_dir / "M.ckpt")) + ["trainer=ddp_cpu"]
    measured = {}
    for processes in (1, 2):
        out = tmp_path / f"p{processes}"
        proc = cli(overrides + [f"trainer.devices={processes}", f"hydra.run.dir={out}"], tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert proc.stdout.count("== rpr_retrain") == 1  # rank 0 alone prints the summary
        measured[processes] = results.load_rpr(out / "rpr_M_test.csv")
    same_points(measured[2], measured[1])
    same_points(measured[2], results.load_rpr(run_dir / "rpr_M_test.csv"))
    files = sorted(p.name for p in (tmp_path / "p2").iterdir())
    # job.json: the job marker (rank 0 alone keeps it: the second process neither clears nor marks the folder)
    assert files == [
        ".hydra",
        "cli.log",
        "examples_M_test.npz",
        "job.json",
        "metrics.json",
        "rpr_M_test.csv",
        "train_ddp_process_1.log",
    ]
    from robustlab.runs import jobs

    assert jobs.read_marker(tmp_path / "p2")["state"] == jobs.DONE and jobs.finished(tmp_path / "p2")
    assert not (tmp_path / "outputs" / "runs").exists()  # no stray run folder from the second process


def test_ddp_training_and_retraining_leave_one_run_dir(tiny_mnist_root, tmp_path):
    extra = {"model.lr": 0.01, "profile.epochs": 3, "profile.rpr_test_points": 20, "profile.rpr_train_points": 60}
    proc = cli(
        tiny_run_overrides(tiny_mnist_root, **extra) + ["trainer=ddp_cpu", f"hydra.run.dir={tmp_path / 'run'}"],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert (
        metrics["M"]["test"]["points"] == 20
        and metrics["M_train"]["points"] == 60
        and metrics["M_R"]["test"]["points"] == 20
    )
    for name, rows in {"rpr_M_test.csv": 20, "rpr_M_train.csv": 60, "rpr_M_R_test.csv": 20}.items():
        index = results.load_rpr(tmp_path / "run" / name).index
        assert len(index) == len(set(index)) == rows and (np.diff(index) > 0).all()  # gathered once each, sorted
    assert (tmp_path / "run" / "M.ckpt").is_file() and (tmp_path / "run" / "M_R.ckpt").is_file()
    assert not list((tmp_path / "run").rglob("*.tmp")) and not (tmp_path / "outputs" / "runs").exists()


def test_ddp_inside_a_multirun_is_one_line(tiny_mnist_root, tmp_path):
    proc = cli(
        [
            "-m",
            *tiny_run_overrides(tiny_mnist_root, **FAST),
            "trainer=ddp_cpu",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
        ],
        tmp_path,
    )
    one_line_error(proc, r"^error: trainer=ddp / ddp_cpu cannot run inside a local Hydra multirun")


# --- launchers --------------------------------------------------------------------------------


def test_joblib_runs_two_jobs_side_by_side(tiny_mnist_root, tmp_path):
    sweep = tmp_path / "sweep"
    overrides = tiny_run_overrides(tiny_mnist_root, **{**FAST, "profile.rpr_test_points": 10, "model_cache": "null"})
    proc = cli(
        ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *overrides, "seed=0,1", f"hydra.sweep.dir={sweep}"],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Joblib.Parallel(n_jobs=2" in proc.stdout + proc.stderr
    seeds = [json.loads((sweep / str(job) / "metrics.json").read_text())["seed"] for job in (0, 1)]
    assert seeds == [0, 1]


def test_slurm_preset_composes_with_its_values():
    from hydra import compose, initialize_config_dir

    from robustlab.cli import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(
            config_name="config",
            return_hydra_config=True,
            overrides=["hydra/launcher=slurm", "hydra.launcher.partition=gpu", "hydra.launcher.timeout_min=30"],
        )
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (launcher.partition, launcher.timeout_min) == ("gpu", 30)
    assert (launcher.gpus_per_task, launcher.cpus_per_task, launcher.mem_gb, launcher.array_parallelism) == (
        1,
        4,
        16,
        16,
    )
