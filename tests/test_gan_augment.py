"""experiment=rpr_gan_augment end to end on the tiny MNIST folder (M, M_R, conditional G, the RPR
filter of generated images, M_R+G), its one-line bad-input errors, and its figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import compose_config, tiny_run_overrides
from robustlab import results
from robustlab.cli import run, summary_lines
from robustlab.errors import RobustlabError
from robustlab.pipelines.rpr_gan_augment import GENERATED_INDEX, RPRGanAugment
from robustlab.plotting.dcgan import plot_gan_augment

TINY_GAN = {
    "experiment": "rpr_gan_augment",
    "profile.max_steps": 3,
    "model.lr": 0.01,
    "rpr.balance.per_class": 3,
    "gan.model.g_width": 4,
    "gan.model.d_width": 4,
    "gan.model.latent_dim": 8,
    "gan.model.sample_grid": 10,
    "gan.epochs": 1,
    "gan.batch_size": 10,
    "gan.samples_per_class": 3,
    "trainer.log_every_n_steps": 1,
}


def overrides(data_root, **extra) -> list[str]:
    return tiny_run_overrides(data_root, **{**TINY_GAN, **extra})


@pytest.fixture(scope="module")
def augment_run(tiny_mnist_root, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("augment") / "run"
    return run_dir, run(compose_config(overrides(tiny_mnist_root)), run_dir)


def test_run_writes_metrics_table_and_per_point_results(augment_run):
    run_dir, metrics = augment_run
    assert metrics["pipeline"] == "rpr_gan_augment"
    for key in ("M", "M_train", "subset", "M_R", "gan", "M_R_G"):
        assert key in metrics, key
    g = metrics["gan"]
    assert g["generated"] == 30 and g["training"]["images"] == metrics["subset"]["subset_size"] == 30
    assert sum(g["kept_per_class"]) == g["kept"] <= 30
    generated = results.load_rpr(run_dir / "rpr_G_samples.csv")
    assert len(generated.index) == 30 and generated.index.min() == GENERATED_INDEX
    assert np.array_equal(
        generated.label, np.repeat(np.arange(10), 3)
    )  # each image labelled with the class it was made for
    assert g["kept"] == int(generated.robust.sum())
    table = pd.read_csv(run_dir / "augment_table.csv")
    assert list(table["model"]) == ["M", "M_R", "M_R+G"]
    assert list(table["train_images"]) == [200, 30, 30 + g["kept"]]
    assert table["test_accuracy"].between(0, 1).all() and table["robust_ratio"].between(0, 1).all()
    assert table.loc[2, "test_accuracy"] == pytest.approx(metrics["M_R_G"]["test_accuracy"])
    for name in ("G.ckpt", "M_R_G.ckpt", "rpr_M_R_G_test.csv", "generated_examples.npz"):
        assert (run_dir / name).is_file(), name
    assert not [p for p in run_dir.rglob("*.tmp")]


def test_summary_puts_the_papers_claims_beside_all_three_models(augment_run):
    _, metrics = augment_run
    lines = summary_lines(RPRGanAugment, metrics)
    assert lines[0].startswith("== rpr_gan_augment")
    assert any("M_R robust ratio (test)" in line for line in lines)
    assert any(line.strip().startswith("M_R+G") for line in lines)


def test_plot_gan_augment_draws_from_the_logged_results(augment_run, tmp_path):
    run_dir, _ = augment_run
    names = {p.name for p in plot_gan_augment(run_dir, tmp_path)}
    for stem in ("gan_augment_models", "gan_augment_generated", "gan_augment_G_samples", "gan_augment_G_losses"):
        assert {f"{stem}.png", f"{stem}.pdf"} <= names, stem


@pytest.mark.parametrize(
    "extra, match",
    [
        ({"gan.model.conditional": "false"}, "class-conditional"),
        ({"gan.samples_per_class": 0}, "gan.samples_per_class must be a positive integer"),
        ({"rpr.retrain": "false"}, "needs rpr.retrain=true"),
        ({"gan.model.latent_dim": 0}, "model.latent_dim must be a positive integer"),
    ],
)
def test_bad_input_stops_before_training_with_one_line(tiny_mnist_root, tmp_path, extra, match):
    with pytest.raises(RobustlabError, match=match) as error:
        run(compose_config(overrides(tiny_mnist_root, **extra)), tmp_path)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "M.ckpt").exists()


def test_m_and_m_r_are_those_of_experiment_rpr_mnist(augment_run, tiny_mnist_root, tmp_path):
    """Building the GAN must not shift the random stream: same config and seed, same M and M_R."""
    import pytorch_lightning as pl

    run_dir, metrics = augment_run
    plain = {k: v for k, v in TINY_GAN.items() if not k.startswith("gan.")} | {"experiment": "rpr_mnist"}
    pl.seed_everything(0, verbose=False)
    reference = run(compose_config(tiny_run_overrides(tiny_mnist_root, **plain)), tmp_path / "rpr_mnist")
    assert metrics["M"] == reference["M"] and metrics["M_R"] == reference["M_R"]
    assert (run_dir / "rpr_M_R_test.csv").read_text() == (tmp_path / "rpr_mnist" / "rpr_M_R_test.csv").read_text()
