"""Work done once (robustlab.runs.cache, robustlab.pipelines.measure_cache): an RPR measurement or an
attack curve asked for again is taken from the cache with identical numbers; anything that changes a
result misses; a half-written entry never counts; the model cache key holds the code version."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf
from test_attacks import checkpoint, cnn_config  # noqa: F401  (the module fixture: a saved tiny CNN)

import robustlab
from conftest import compose_config, tiny_run_overrides
from robustlab.cli import run
from robustlab.data import Split
from robustlab.models import SimpleCNN
from robustlab.pipelines import rpr_retrain
from robustlab.pipelines.measure_cache import CachedRPR, measure_options
from robustlab.robustness import make_perturbation
from robustlab.robustness.rpr import measure_rpr
from robustlab.runs.cache import COMPLETE, ResultCache

FAST = {"model.lr": 0.01, "rpr.balance.per_class": 3}
TABLES = ("rpr_M_test.csv", "rpr_M_train.csv", "rpr_M_R_test.csv")


def pipeline(root, run_dir, cache, **extra):
    pl.seed_everything(0, verbose=False)
    return run(compose_config(tiny_run_overrides(root, **{**FAST, "result_cache": str(cache), **extra})), run_dir)


def test_second_identical_run_takes_every_rpr_from_the_cache_with_identical_tables(tiny_mnist_root, tmp_path, caplog):
    first = pipeline(tiny_mnist_root, tmp_path / "first", tmp_path / "cache")
    assert set(first["rpr_source"].values()) == {"measured"}
    with caplog.at_level("INFO"):
        again = pipeline(tiny_mnist_root, tmp_path / "again", tmp_path / "cache")
    assert all(source.startswith("cache ") for source in again["rpr_source"].values()), again["rpr_source"]
    assert caplog.text.count("rpr cache hit: ") == len(again["rpr_source"]) >= 3  # M test/train, M_R (+ M_rand)
    for table in TABLES:
        assert (tmp_path / "again" / table).read_bytes() == (tmp_path / "first" / table).read_bytes(), table
    assert again["M"] == first["M"] and again["M_R"] == first["M_R"] and again["subset"] == first["subset"]
    assert again["timings_s"]["rpr_M_test"] <= 0.5  # the lookup's time
    # The runtime record is strings only: the results table takes every number of metrics.json as a metric.
    assert again["runtime"]["device"] == "cpu" and all(isinstance(v, str) for v in again["runtime"].values())


@pytest.mark.parametrize(
    "extra",
    [{"rpr.max_steps": 4}, {"perturbation.count": "exact"}, {"seed": 1}, {"model.lr": 0.02}, {"rpr.autocast": "bf16"}],
)
def test_a_result_changing_option_misses(tiny_mnist_root, tmp_path, extra):
    overrides = {"rpr.retrain": "false"}
    pipeline(tiny_mnist_root, tmp_path / "first", tmp_path / "cache", **overrides)
    other = pipeline(tiny_mnist_root, tmp_path / "other", tmp_path / "cache", **overrides, **extra)
    assert other["rpr_source"] == {"M_test": "measured"}


def test_options_that_do_not_change_results_hit(tiny_mnist_root, tmp_path):
    overrides = {"rpr.retrain": "false"}
    pipeline(tiny_mnist_root, tmp_path / "first", tmp_path / "cache", **overrides)
    other = pipeline(
        tiny_mnist_root,
        tmp_path / "other",
        tmp_path / "cache",
        **overrides,
        **{"rpr.batch_size": 7, "rpr.channels_last": "false", "rpr.min_block": 1, "rpr.max_block": 2},
    )
    assert other["rpr_source"]["M_test"].startswith("cache ")
    assert (tmp_path / "other" / "rpr_M_test.csv").read_bytes() == (tmp_path / "first" / "rpr_M_test.csv").read_bytes()


@pytest.fixture
def measured(tiny_mnist_root, tmp_path):
    """A tiny CNN, 30 test points and a cache holding nothing yet."""
    torch.manual_seed(0)
    model = SimpleCNN(channels=(2, 4)).eval()
    cfg = compose_config(tiny_run_overrides(tiny_mnist_root))
    from robustlab.config import build

    data = build(cfg.data)
    data.setup()
    points = data.test.take(torch.arange(30))
    return model, points, cfg, ResultCache(tmp_path / "cache", "rpr")


def measure(model, points: Split, cfg):
    return measure_rpr(
        model,
        points.images,
        points.labels,
        make_perturbation("pixels"),
        cfg.rpr.max_steps,
        seed=0,
        indices=points.index,
        progress=False,
    )


def test_a_subset_of_measured_points_is_cut_out_of_the_larger_entry(measured):
    model, points, cfg, cache = measured
    whole = CachedRPR(cache, model, points, cfg.perturbation, cfg.rpr, 0)
    assert whole.load() is None
    result = measure(model, points, cfg)
    whole.store(result)
    part = points.take(torch.tensor([25, 3, 7]))
    cached = CachedRPR(cache, model, part, cfg.perturbation, cfg.rpr, 0)
    got = cached.load()
    assert got is not None and cached.hit.endswith("(rows of)")
    fresh = measure(model, part, cfg)
    for name, column in fresh.columns().items():
        np.testing.assert_array_equal(got.columns()[name], column, err_msg=name)
    other = points.take(torch.arange(3))
    other.images = other.images.clone()
    other.images[0, 0, 0, 0] = 1.0  # same dataset index, another image: not the same point
    assert CachedRPR(cache, model, other, cfg.perturbation, cfg.rpr, 0).load() is None


def test_a_partial_or_unreadable_entry_is_never_used(measured):
    model, points, cfg, cache = measured
    entry = CachedRPR(cache, model, points, cfg.perturbation, cfg.rpr, 0)
    entry.store(measure(model, points, cfg))
    (folder,) = [p for p in (cache.folder / entry.family).iterdir()]
    (folder / COMPLETE).unlink()  # what a writer killed before its marker would leave
    assert CachedRPR(cache, model, points, cfg.perturbation, cfg.rpr, 0).load() is None
    entry.store(measure(model, points, cfg))  # measured again: the leftover is replaced by a complete entry
    assert (folder / COMPLETE).is_file() and CachedRPR(
        cache, model, points, cfg.perturbation, cfg.rpr, 0
    ).load() is not None
    (folder / "arrays.npz").write_bytes(b"truncated")
    assert CachedRPR(cache, model, points, cfg.perturbation, cfg.rpr, 0).load() is None
    leftovers = [p.name for p in (cache.folder / entry.family).iterdir() if p.name.startswith(".tmp-")]
    assert leftovers == []


def test_a_write_that_fails_leaves_nothing_that_counts(measured, monkeypatch):
    model, points, cfg, cache = measured
    entry = CachedRPR(cache, model, points, cfg.perturbation, cfg.rpr, 0)
    import robustlab.runs.cache as cache_module

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(cache_module, "write_json", fail)  # after the arrays, before the marker
    entry.store(measure(model, points, cfg))
    assert CachedRPR(cache, model, points, cfg.perturbation, cfg.rpr, 0).load() is None
    assert [p for p in (cache.folder / entry.family).iterdir()] == []


def test_attack_curves_are_computed_once(tiny_mnist_root, checkpoint, tmp_path, caplog):  # noqa: F811
    from robustlab.pipelines.cnn_attack import CNNAttack

    cache = {"result_cache": str(tmp_path / "cache")}
    first = CNNAttack(cnn_config(tiny_mnist_root, checkpoint, **cache), tmp_path / "first").run()
    # M and M_R are the same checkpoint here: M_R's curves already come from M's entries.
    assert first["attack_source"]["M_fgsm"] == "measured" and first["attack_source"]["M_R_fgsm"].startswith("cache ")
    with caplog.at_level("INFO"):
        again = CNNAttack(cnn_config(tiny_mnist_root, checkpoint, **cache), tmp_path / "again").run()
    assert all(s.startswith("cache ") for s in again["attack_source"].values()) and "attack cache hit: " in caplog.text
    assert (tmp_path / "again" / "attack_curve.csv").read_bytes() == (
        tmp_path / "first" / "attack_curve.csv"
    ).read_bytes()
    other = CNNAttack(
        cnn_config(tiny_mnist_root, checkpoint, **cache, **{"attack.pgd.steps": 3}), tmp_path / "other"
    ).run()
    assert other["attack_source"]["M_pgd"] == "measured" and other["attack_source"]["M_fgsm"].startswith("cache ")
    assert json.loads((tmp_path / "again" / "metrics.json").read_text())["models"] == first["models"]


def test_model_cache_key_holds_the_code_version(tiny_mnist_root, monkeypatch):
    cfg = compose_config(tiny_run_overrides(tiny_mnist_root))
    before = rpr_retrain.model_cache_path(cfg)
    monkeypatch.setattr(rpr_retrain, "code_version", lambda: "another version of the code")
    assert rpr_retrain.model_cache_path(cfg) != before


def test_model_cache_key_holds_the_thread_count(tiny_mnist_root):
    """CPU training with another thread count sums in another order: not the same M."""
    one, two = (compose_config(tiny_run_overrides(tiny_mnist_root) + [f"threads={n}"]) for n in (1, 2))
    assert rpr_retrain.model_cache_path(one) != rpr_retrain.model_cache_path(two)
    assert rpr_retrain.model_cache_path(one) == rpr_retrain.model_cache_path(
        compose_config(tiny_run_overrides(tiny_mnist_root) + ["threads=1"])
    )


def test_fewer_test_points_are_cut_out_of_a_run_that_measured_more(tiny_mnist_root, tmp_path):
    """rpr_sweep on 2,000 test points after rpr_mnist on all of them: the seeded sample of fewer points is
    a subset of the larger one, so its RPR comes from the larger entry, equal to measuring it."""
    overrides = {"rpr.retrain": "false"}
    pipeline(tiny_mnist_root, tmp_path / "more", tmp_path / "cache", **overrides)
    fewer = pipeline(
        tiny_mnist_root, tmp_path / "fewer", tmp_path / "cache", **overrides, **{"profile.rpr_test_points": 30}
    )
    assert fewer["rpr_source"]["M_test"].endswith("(rows of)")
    fresh = pipeline(
        tiny_mnist_root, tmp_path / "fresh", tmp_path / "none", **overrides, **{"profile.rpr_test_points": 30}
    )
    assert fresh["rpr_source"]["M_test"] == "measured"
    assert (tmp_path / "fewer" / "rpr_M_test.csv").read_bytes() == (tmp_path / "fresh" / "rpr_M_test.csv").read_bytes()


def test_every_rpr_measurement_takes_all_of_the_configs_schedule_and_fast_path_options():
    """One place maps the rpr config to measure_rpr's options; before, robustlab-rpr and rpr_vs_exact
    dropped rpr.autocast, rpr.compile and rpr.channels_last without a word."""
    options = {"batch_size": "auto", "channels_last": False, "compile": True, "min_block": 2, "max_block": 8}
    cfg = OmegaConf.create(options | {"autocast": "bf16", "max_steps": 5, "progress": False})
    assert measure_options(cfg) == options | {"autocast": "bf16"}
    package = Path(robustlab.__file__).parent
    calls = [
        (path.relative_to(package).as_posix(), node)
        for path in sorted(package.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "measure_rpr"
    ]
    assert len(calls) >= 5  # the pipelines and robustlab-rpr
    for where, call in calls:
        spread = [k.value for k in call.keywords if k.arg is None]
        assert any(getattr(v.func, "id", None) == "measure_options" for v in spread), where
