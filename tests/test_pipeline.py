"""The paper's pipeline end to end on a tiny MNIST folder: in-process (composed Hydra config) and
once through the real CLI; checkpoints and their one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from conftest import compose_config, tiny_run_overrides
from robustlab import results
from robustlab.cli import run
from robustlab.errors import RobustlabError
from robustlab.models import SimpleCNN, load_classifier

FAST = {"model.channels": "[4,8]", "model.lr": 0.01, "rpr.balance.per_class": 3}
RPR_FILES = {"rpr_M_test.csv": 40, "rpr_M_train.csv": 100, "rpr_M_R_test.csv": 40}


def run_pipeline(data_root: Path, run_dir: Path, **extra) -> dict:
    cfg = compose_config(tiny_run_overrides(data_root, **{**FAST, **extra}))
    return run(cfg, run_dir)


@pytest.fixture(scope="module")
def full_run(tiny_mnist_root, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("pipeline") / "run"
    metrics = run_pipeline(tiny_mnist_root, run_dir)
    return run_dir, metrics


def leftovers(run_dir: Path) -> list[Path]:
    return [p for p in run_dir.rglob("*") if p.name.endswith(".tmp")]


def check_summary(summary: dict, points: int) -> None:
    assert summary["points"] == points
    for key in ("clean_accuracy", "robust_ratio", "robust_ratio_of_correct"):
        assert 0.0 <= summary[key] <= 1.0, (key, summary[key])
    assert summary["robust_ratio"] <= summary["clean_accuracy"] + 1e-9
    assert len(summary["robust_per_class"]) == 10
    assert sum(summary["robust_per_class"]) == round(summary["robust_ratio"] * points)
    steps = summary["median_steps_to_failure"]
    assert steps is None or 1 <= steps <= 5


def test_metrics_file_has_every_section_with_values_in_range(full_run):
    run_dir, metrics = full_run
    on_disk = json.loads((run_dir / results.METRICS).read_text())
    assert on_disk == json.loads(json.dumps(metrics))  # what run() returns is what it wrote
    for key in (
        "pipeline",
        "profile",
        "seed",
        "data",
        "perturbation",
        "scheme",
        "max_steps",
        "config",
        "M",
        "M_train",
        "subset",
        "M_R",
        "wall_time_s",
    ):
        assert key in on_disk, key
    assert on_disk["pipeline"] == "rpr_retrain"
    assert on_disk["scheme"] == "pixels" and on_disk["perturbation"].startswith("pixels")
    assert on_disk["max_steps"] == 5 and on_disk["seed"] == 0
    assert on_disk["data"]["name"] == "mnist"
    assert on_disk["data"]["train_images"] == 200 and on_disk["data"]["test_images"] == 100
    assert on_disk["config"]["rpr"]["max_steps"] == 5  # resolved, not "${profile.max_steps}"
    check_summary(on_disk["M"]["test"], 40)
    check_summary(on_disk["M_train"], 100)
    check_summary(on_disk["M_R"]["test"], 40)
    assert on_disk["M"]["test_accuracy"] > 0.5  # learnable tiny data: far above the 0.1 of chance
    assert 0.0 <= on_disk["M_R"]["test_accuracy"] <= 1.0
    subset = on_disk["subset"]
    assert subset["per_class_asked"] == 3
    assert subset["subset_size"] == 10 * subset["per_class_taken"]
    assert on_disk["wall_time_s"] >= 0


def test_per_datapoint_files_one_row_per_point(full_run, tiny_mnist_root):
    run_dir, metrics = full_run
    loaded = {}
    for name, rows in RPR_FILES.items():
        path = run_dir / name
        assert path.is_file(), name
        result = results.load_rpr(path)
        loaded[name] = result
        assert len(result.index) == rows
        assert len(set(result.index.tolist())) == rows
        assert result.max_steps == 5
        assert ((result.first_failure >= -1) & (result.first_failure <= 5)).all()
    test_m, train_m, test_r = loaded["rpr_M_test.csv"], loaded["rpr_M_train.csv"], loaded["rpr_M_R_test.csv"]
    np.testing.assert_array_equal(test_m.index, test_r.index)  # M and M_R measured on the same test points
    np.testing.assert_array_equal(test_m.label, test_r.label)
    assert test_m.index.max() < 100 and train_m.index.max() < 300
    # labels in the CSV are the points' true labels in the files
    from robustlab.data import load_split

    _, test_labels = load_split("mnist", tiny_mnist_root, train=False, download=False)
    np.testing.assert_array_equal(test_m.label, test_labels.numpy()[test_m.index])
    # the summaries in metrics.json are those of the files
    assert metrics["M"]["test"]["robust_ratio"] == pytest.approx(test_m.robust_ratio())
    assert metrics["M_train"]["robust_ratio"] == pytest.approx(train_m.robust_ratio())
    assert metrics["M_R"]["test"]["robust_ratio"] == pytest.approx(test_r.robust_ratio())
    robust_train = np.bincount(train_m.label[train_m.robust], minlength=10)
    assert {int(k): v for k, v in metrics["subset"]["available_per_class"].items()} == dict(
        enumerate(robust_train.tolist())
    )


def test_checkpoints_written_atomically_and_loadable(full_run, tiny_mnist_root):
    run_dir, metrics = full_run
    assert (run_dir / "M.ckpt").is_file() and (run_dir / "M_R.ckpt").is_file()
    assert leftovers(run_dir) == []
    assert not list(run_dir.glob(".*.tmp"))
    from robustlab.data import Split, load_split
    from robustlab.pipelines.training import accuracy

    images, labels = load_split("mnist", tiny_mnist_root, train=False, download=False)
    test = Split(images, labels, torch.arange(len(labels)))
    model = load_classifier(SimpleCNN, run_dir / "M.ckpt")
    assert not model.training
    assert accuracy(model, test) == pytest.approx(metrics["M"]["test_accuracy"])
    model_r = load_classifier(SimpleCNN, run_dir / "M_R.ckpt")
    assert accuracy(model_r, test) == pytest.approx(metrics["M_R"]["test_accuracy"])


def test_examples_for_the_figures(full_run):
    run_dir, _ = full_run
    arrays = results.read_arrays(run_dir / "examples_M_test.npz")
    for key in (
        "robust_images",
        "robust_labels",
        "fragile_images",
        "fragile_perturbed",
        "fragile_step",
        "fragile_fail_pred",
    ):
        assert key in arrays
    assert len(arrays["fragile_images"]) == len(arrays["fragile_perturbed"]) == len(arrays["fragile_step"])
    assert arrays["robust_images"].shape[1:] == (1, 28, 28)


def test_same_seed_gives_identical_results(full_run, tiny_mnist_root, tmp_path):
    run_dir, metrics = full_run
    again = run_pipeline(tiny_mnist_root, tmp_path / "again")
    for name in RPR_FILES:
        assert (tmp_path / "again" / name).read_bytes() == (run_dir / name).read_bytes(), name
    assert again["M"]["test_accuracy"] == metrics["M"]["test_accuracy"]
    assert again["M_R"]["test_accuracy"] == metrics["M_R"]["test_accuracy"]
    assert json.loads(json.dumps(again["subset"])) == json.loads(json.dumps(metrics["subset"]))


def test_retrain_false_stops_after_rpr_of_m(tiny_mnist_root, tmp_path):
    run_dir = tmp_path / "run"
    metrics = run_pipeline(tiny_mnist_root, run_dir, **{"rpr.retrain": "false", "seed": 1})
    assert "M" in metrics and "M_R" not in metrics and "M_train" not in metrics and "subset" not in metrics
    assert (run_dir / "M.ckpt").is_file() and not (run_dir / "M_R.ckpt").exists()
    assert (run_dir / "rpr_M_test.csv").is_file()
    assert not (run_dir / "rpr_M_train.csv").exists() and not (run_dir / "rpr_M_R_test.csv").exists()
    assert json.loads((run_dir / "metrics.json").read_text())["seed"] == 1
    check_summary(metrics["M"]["test"], 40)
    assert leftovers(run_dir) == []


def test_saved_checkpoint_measured_again_gives_the_same_rpr(full_run, tiny_mnist_root, tmp_path):
    run_dir, _ = full_run
    metrics = run_pipeline(
        tiny_mnist_root, tmp_path / "remeasure", **{"rpr.retrain": "false", "checkpoint": str(run_dir / "M.ckpt")}
    )
    assert (tmp_path / "remeasure" / "rpr_M_test.csv").read_bytes() == (run_dir / "rpr_M_test.csv").read_bytes()
    assert not (tmp_path / "remeasure" / "M.ckpt").exists()  # nothing trained
    assert metrics["M"]["test"]["points"] == 40


def test_perturbation_that_never_fools_the_model(tiny_mnist_root, tmp_path):
    """sigma=0 changes nothing: every correctly classified point is robust (and no fragile example exists)."""
    metrics = run_pipeline(
        tiny_mnist_root,
        tmp_path / "run",
        **{"perturbation": "gaussian", "perturbation.sigma": 0.0, "rpr.retrain": "false"},
    )
    test = metrics["M"]["test"]
    assert test["robust_ratio"] == pytest.approx(test["clean_accuracy"])
    assert test["median_steps_to_failure"] is None
    assert metrics["scheme"] == "gaussian"


def test_pipeline_errors_are_one_line(tiny_mnist_root, tmp_path):
    with pytest.raises(RobustlabError, match=r"checkpoint not found: .*nothing\.ckpt"):
        run_pipeline(
            tiny_mnist_root, tmp_path / "a", **{"rpr.retrain": "false", "checkpoint": str(tmp_path / "nothing.ckpt")}
        )
    with pytest.raises(RobustlabError, match=r"perturbation\.k=785 is larger than the 784 pixels"):
        run_pipeline(tiny_mnist_root, tmp_path / "b", **{"perturbation.k": 785})
    with pytest.raises(RobustlabError, match=r"rpr\.max_steps must be a positive integer, got 0"):
        run_pipeline(tiny_mnist_root, tmp_path / "c", **{"profile.max_steps": 0})
    with pytest.raises(RobustlabError, match=r"asked 50 robust points per class but some classes have fewer"):
        run_pipeline(
            tiny_mnist_root, tmp_path / "d", **{"rpr.balance.per_class": 50, "rpr.balance.on_shortfall": "error"}
        )
    assert not (tmp_path / "b").exists() or not list((tmp_path / "b").glob("*.ckpt"))  # failed before training


def test_real_cli_in_a_subprocess(tiny_mnist_root, tmp_path):
    run_dir = tmp_path / "cli_run"
    overrides = tiny_run_overrides(
        tiny_mnist_root, **{**FAST, "profile.rpr_train_points": 60, "profile.rpr_test_points": 20}
    )
    env = {**os.environ, "ROBUSTLAB_OUTPUT": str(tmp_path / "outputs"), "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}
    proc = subprocess.run(
        [sys.executable, "-m", "robustlab.cli", *overrides, f"hydra.run.dir={run_dir}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["M"]["test"]["points"] == 20 and metrics["M_train"]["points"] == 60
    assert (run_dir / ".hydra" / "config.yaml").is_file()  # Hydra recorded the composed config
    assert (run_dir / "M.ckpt").is_file() and (run_dir / "M_R.ckpt").is_file()
    assert "== rpr_retrain" in proc.stdout and "MAX_STEPS=5" in proc.stdout  # the summary table
    assert leftovers(run_dir) == []


# ---------------------------------------------------------------------------------------------
# Checkpoint errors
# ---------------------------------------------------------------------------------------------


def test_load_classifier_missing_file(tmp_path):
    with pytest.raises(RobustlabError, match=r"checkpoint not found: .*missing\.ckpt; train the model first") as error:
        load_classifier(SimpleCNN, tmp_path / "missing.ckpt")
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("content", [b"\x00\x01garbage bytes\xff" * 10, b"", b"PK\x03\x04 not really a zip"])
def test_load_classifier_corrupt_file(tmp_path, content):
    path = tmp_path / "broken.ckpt"
    path.write_bytes(content)
    with pytest.raises(
        RobustlabError, match=r"checkpoint .*broken\.ckpt is corrupt or not a SimpleCNN checkpoint \("
    ) as error:
        load_classifier(SimpleCNN, path)
    assert "\n" not in str(error.value)


def test_load_classifier_of_a_non_checkpoint_torch_file(tmp_path):
    path = tmp_path / "tensor.ckpt"
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(RobustlabError, match=r"is corrupt or not a SimpleCNN checkpoint") as error:
        load_classifier(SimpleCNN, path)
    assert "\n" not in str(error.value)


def test_model_cache_reuses_m_for_the_same_config_and_gives_identical_results(tiny_mnist_root, tmp_path):
    """A sweep over schemes trains M once per seed: the second run loads the cached M, measures the
    same numbers, and says where M came from; another seed trains its own M."""
    import pytorch_lightning as pl

    from robustlab.cli import run

    overrides = tiny_run_overrides(tiny_mnist_root, **{"rpr.retrain": "false", "model_cache": str(tmp_path / "cache")})
    runs = []
    for name, extra in (("first", []), ("again", []), ("seed1", ["seed=1"])):
        pl.seed_everything(0, verbose=False)
        runs.append(run(compose_config(overrides + extra), tmp_path / name))
    first, again, seed1 = runs
    assert first["M_source"] == "trained in this run" and again["M_source"].startswith(str(tmp_path / "cache"))
    assert seed1["M_source"] == "trained in this run"
    assert (tmp_path / "again" / "M.ckpt").read_bytes() == (tmp_path / "first" / "M.ckpt").read_bytes()
    assert (tmp_path / "again" / "rpr_M_test.csv").read_text() == (tmp_path / "first" / "rpr_M_test.csv").read_text()
    assert "train_M" not in again["timings_s"] and len(list((tmp_path / "cache").glob("M-*.ckpt"))) == 2


def test_m_r_does_not_depend_on_where_m_came_from(tiny_mnist_root, tmp_path):
    """M trained here, or loaded from the cache: the same M_R and the same numbers (building M draws
    the same global random numbers either way, and training draws none: its shuffling has its own generator)."""
    import pytorch_lightning as pl

    from robustlab.cli import run

    overrides = tiny_run_overrides(tiny_mnist_root, **{**FAST, "model_cache": str(tmp_path / "cache")})
    outcomes = []
    for name in ("trained", "cached"):
        pl.seed_everything(123, verbose=False)  # a different global state before each run
        metrics = run(compose_config(overrides), tmp_path / name)
        outcomes.append((metrics["M_source"], metrics["M_R"], (tmp_path / name / "rpr_M_R_test.csv").read_text()))
    (trained_source, trained_r, trained_csv), (cached_source, cached_r, cached_csv) = outcomes
    assert trained_source == "trained in this run" and cached_source != trained_source
    assert trained_r == cached_r and trained_csv == cached_csv


# ---------------------------------------------------------------------------------------------
# Reusing a run's RPR of M (rpr.reuse_from)
# ---------------------------------------------------------------------------------------------


def test_reused_rpr_of_m_gives_the_run_it_came_from(full_run, tiny_mnist_root, tmp_path):
    source, metrics = full_run
    again = run_pipeline(
        tiny_mnist_root, tmp_path, checkpoint=str(source / "M.ckpt"), **{"rpr.reuse_from": str(source)}
    )
    for name in ("M_test", "M_train", "M_R_test"):
        assert (tmp_path / f"rpr_{name}.csv").read_text() == (source / f"rpr_{name}.csv").read_text(), name
    assert again["M"] == metrics["M"] and again["M_R"] == metrics["M_R"]
    weights = [torch.load(d / "M_R.ckpt", weights_only=False)["state_dict"] for d in (source, tmp_path)]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])  # the same M_R, not just the same scores
    assert again["timings_s"]["rpr_M_test"] == 0.0 and again["timings_s"]["rpr_M_train"] == 0.0


def test_reuse_from_a_run_of_another_seed_is_one_line(full_run, tiny_mnist_root, tmp_path):
    source, _ = full_run
    with pytest.raises(
        RobustlabError,
        match=r"^rpr.reuse_from=.*: its rpr_M_test.csv was measured with another seed, points; drop rpr.reuse_from",
    ):
        run_pipeline(
            tiny_mnist_root, tmp_path, checkpoint=str(source / "M.ckpt"), seed=1, **{"rpr.reuse_from": str(source)}
        )


def test_control_m_rand_matches_m_r_class_counts_and_budget(full_run):
    run_dir, metrics = full_run
    control, subset = metrics["M_rand"], metrics["subset"]
    assert control["train_images"] == subset["subset_size"]
    assert control["class_counts"] == [subset["per_class_taken"]] * 10  # M_R's class counts, exactly
    assert 0.0 <= control["test_accuracy"] <= 1.0
    check_summary(control["test"], 40)
    low, high = control["test"]["robust_ratio_cp95"]
    assert low <= control["test"]["robust_ratio"] <= high
    assert (run_dir / "M_rand.ckpt").is_file() and (run_dir / "rpr_M_rand_test.csv").is_file()


def test_a_near_empty_robust_class_skips_retraining_in_one_line(tiny_mnist_root, tmp_path):
    """Every point fools the model at once (k = all pixels): no class has robust images; M is still reported."""
    metrics = run_pipeline(
        tiny_mnist_root,
        tmp_path / "run",
        **{"perturbation.k": 784, "perturbation.count": "exact", "rpr.balance.on_shortfall": "smallest"},
    )
    assert metrics["retrain_skipped"].startswith("robust subset too small to train on: classes {0: ")
    # null, not absent: a claim reads the seed as undefined, and a table shows it, rather than failing on a missing key
    assert metrics["M_R"] == {"test_accuracy": None, "test": {"robust_ratio": None}} and "M_train" in metrics
    assert metrics["M_rand"] == metrics["M_R"] and metrics["subset"]["per_class_taken"] is None
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["M_R"]["test_accuracy"] is None
    assert not (tmp_path / "run" / "M_R.ckpt").exists()


def test_train_until_balanced_stops_once_every_class_has_its_robust_points(full_run, tiny_mnist_root, tmp_path):
    """Chunks of 30 of the 100 training points in a seeded order: the run stops as soon as every class has 3 robust
    points; each measured point has exactly the result of the full measurement (same M, same per-point RNG)."""
    source, full = full_run
    metrics = run_pipeline(
        tiny_mnist_root,
        tmp_path / "run",
        checkpoint=str(source / "M.ckpt"),
        **{"rpr.train_until_balanced": 30, "rpr.balance.on_shortfall": "up_to"},
    )
    stop = metrics["M_train"]["until_balanced"]
    assert stop["of"] == 100 and stop["chunk"] == 30 and stop["per_class"] == 3
    assert stop["measured"] == metrics["M_train"]["points"] == min(100, 30 * stop["chunks"])
    part, whole = results.load_rpr(tmp_path / "run" / "rpr_M_train.csv"), results.load_rpr(source / "rpr_M_train.csv")
    assert len(part.index) == stop["measured"] and np.all(np.diff(part.index) > 0)
    same = np.isin(whole.index, part.index)
    np.testing.assert_array_equal(part.first_failure, whole.first_failure[same])
    robust_per_class = np.bincount(part.label[part.robust], minlength=10)
    assert stop["measured"] < 100 and (robust_per_class >= 3).all()  # it stopped early, once the condition held
    first = results.load_rpr(tmp_path / "run" / "rpr_M_train.csv")
    chunk_before = torch.randperm(100, generator=torch.Generator().manual_seed(0))[: stop["measured"] - 30].numpy()
    earlier = np.isin(first.index, np.sort(chunk_before))
    assert (np.bincount(first.label[earlier & first.robust], minlength=10) < 3).any()  # ...and not one chunk earlier


def test_train_until_balanced_refuses_reuse_from_in_one_line(tiny_mnist_root, tmp_path):
    from robustlab.configs.validate import check_rpr

    cfg = compose_config(tiny_run_overrides(tiny_mnist_root, **{"rpr.train_until_balanced": 30, "rpr.reuse_from": "x"}))
    with pytest.raises(RobustlabError, match=r"^rpr.train_until_balanced measures the training points chunk by chunk"):
        check_rpr(OmegaConf.to_container(cfg.rpr, resolve=True))
