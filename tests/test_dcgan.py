"""DCGAN: network shapes for both image sizes, separate updates of G and D, minibatch
discrimination, the non-finite-loss stop, the pipeline on tiny MNIST and CIFAR-10 folders (through
torchvision's readers), its one-line bad-input errors, and the figures from its logged results."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from conftest import compose_config
from robustlab import results
from robustlab.cli import run
from robustlab.errors import RobustlabError
from robustlab.models.dcgan import DCGAN, SAMPLES, Generator
from robustlab.plotting.dcgan import plot_dcgan, plot_dcgan_multirun

TINY = {"g_width": 4, "d_width": 4, "latent_dim": 8, "sample_grid": 10, "sample_every_n_steps": 1}


def tiny_gan(shape=(1, 28, 28), **options) -> DCGAN:
    return DCGAN(shape, 10, **{**TINY, **options})


def params(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def same(before: list[torch.Tensor], module: torch.nn.Module) -> bool:
    return all(torch.equal(a, b) for a, b in zip(before, module.parameters(), strict=True))


def quiet_trainer(root: Path, **extra) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu",
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(root),
        **extra,
    )


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
@pytest.mark.parametrize(
    "options, outputs",
    [({}, 1), ({"semi_supervised": True}, 11), ({"conditional": True, "minibatch_discrimination": True}, 1)],
)
def test_output_shapes_for_both_image_sizes(shape, options, outputs):
    gan = tiny_gan(shape, **options).eval()
    labels = torch.arange(6) % 10
    images = gan.generate(gan.noise(6), labels if options.get("conditional") else None)
    assert images.shape == (6, *shape)
    assert images.min() >= 0 and images.max() <= 1  # the project's [0, 1] range
    conditioning = labels if options.get("conditional") else None
    assert gan.discriminator(images, conditioning).shape == (6, outputs)


@pytest.mark.parametrize("shape", [(1, 30, 30), (1, 28, 32), (1, 6, 6)])
def test_an_image_size_the_architecture_cannot_produce_is_one_line(shape):
    with pytest.raises(RobustlabError, match="DCGAN cannot produce") as error:
        Generator(shape, 8, 4)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"latent_dim": 0}, "latent_dim"),
        ({"latent_dim": -3}, "latent_dim"),
        ({"latent": "cauchy"}, "latent"),
        ({"semi_supervised": True, "conditional": True}, "exclude"),
    ],
)
def test_bad_model_options_are_one_line(bad, match):
    with pytest.raises(RobustlabError, match=match) as error:
        tiny_gan(**bad)
    assert "\n" not in str(error.value)


def test_each_update_changes_only_its_own_network():
    torch.manual_seed(0)
    gan = tiny_gan()
    opt_g, opt_d = gan.configure_optimizers()
    assert {id(p) for p in opt_g.param_groups[0]["params"]} == {id(p) for p in gan.generator.parameters()}
    assert {id(p) for p in opt_d.param_groups[0]["params"]} == {id(p) for p in gan.discriminator.parameters()}
    real, labels = torch.rand(8, 1, 28, 28), torch.arange(8) % 10
    g0, d0 = params(gan.generator), params(gan.discriminator)
    fake = gan.generator(gan.noise(8))
    loss_d, _ = gan.discriminator_loss(real, labels, fake.detach(), None)
    loss_d.backward()
    opt_d.step()
    assert same(g0, gan.generator) and not same(d0, gan.discriminator)
    d1 = params(gan.discriminator)
    opt_g.zero_grad()
    gan.generator_loss(gan.generator(gan.noise(8)), None).backward()
    opt_g.step()
    assert same(d1, gan.discriminator) and not same(g0, gan.generator)


def test_training_steps_update_both_networks_and_save_sample_grids(tmp_path):
    gan = tiny_gan()
    g0, d0 = params(gan.generator), params(gan.discriminator)
    loader = DataLoader(TensorDataset(torch.rand(12, 1, 28, 28), torch.arange(12) % 10), batch_size=4)
    quiet_trainer(tmp_path).fit(gan, loader)
    assert gan.iteration == 3
    assert not same(g0, gan.generator) and not same(d0, gan.discriminator)
    assert sorted(p.name for p in (tmp_path / SAMPLES).iterdir()) == [f"step_{i:06d}.png" for i in range(4)]


@pytest.mark.parametrize("option", [True, False])
def test_minibatch_discrimination_couples_the_samples_of_a_batch(option):
    torch.manual_seed(0)
    d = tiny_gan(minibatch_discrimination=option).discriminator.eval()  # eval: batch norm alone couples nothing
    x = torch.rand(5, 1, 28, 28)
    changed = x.clone()
    changed[3] = torch.rand(1, 28, 28)
    with torch.no_grad():
        first, second = d(x)[0], d(changed)[0]
    assert (not torch.allclose(first, second, atol=0, rtol=0)) == option


def test_a_non_finite_loss_stops_with_one_line_naming_the_step(tmp_path):
    images = torch.rand(16, 1, 28, 28)
    images[9] = float("nan")  # in the third batch of 4: training step 2
    gan = tiny_gan()
    with pytest.raises(RobustlabError, match="discriminator loss is nan at training step 2") as error:
        quiet_trainer(tmp_path).fit(
            gan, DataLoader(TensorDataset(images, torch.zeros(16, dtype=torch.int64)), batch_size=4)
        )
    assert "\n" not in str(error.value)
    # Grids of the two good steps only: nothing from the diverged step.
    assert sorted(p.name for p in (tmp_path / SAMPLES).iterdir()) == [f"step_{i:06d}.png" for i in range(3)]


# ---------------------------------------------------------------------------------------------
# The pipeline (experiment=dcgan_mnist / dcgan_cifar10) on tiny folders
# ---------------------------------------------------------------------------------------------


def gan_overrides(data_root: Path, experiment: str = "dcgan_mnist", **extra) -> list[str]:
    values = {
        "experiment": experiment,
        "profile": "quick",
        "data.root": str(data_root),
        "data.download": "false",
        "profile.gan_train_subset": 100,
        "profile.gan_epochs": 1,
        "profile.gan_batch_size": 25,
        "model.g_width": 4,
        "model.d_width": 4,
        "model.latent_dim": 8,
        "model.sample_grid": 10,
        "model.sample_every_n_steps": 2,
        "quality.samples": 40,
        "quality.classifier": "null",
        "interpolation.pairs": 2,
        "interpolation.steps": 3,
        "trainer.enable_progress_bar": "false",
        "trainer.log_every_n_steps": 1,
    }
    values.update(extra)
    return [f"{k}={v}" for k, v in values.items()]


@pytest.fixture(scope="module")
def judge(tiny_mnist_root, tmp_path_factory) -> Path:
    """A tiny SimpleCNN checkpoint of the tiny MNIST folder: the quality classifier."""
    from robustlab.data import VisionDataModule
    from robustlab.models import SimpleCNN
    from robustlab.pipelines.training import fit_classifier

    cfg = compose_config(["trainer.enable_progress_bar=false", "trainer.max_epochs=1"])
    data = VisionDataModule("mnist", str(tiny_mnist_root), download=False, batch_size=32)
    data.setup()
    return fit_classifier(SimpleCNN(channels=(4, 8)), data, cfg.trainer, tmp_path_factory.mktemp("judge"), "M")


@pytest.fixture(scope="module")
def mnist_run(tiny_mnist_root, judge, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("dcgan") / "run"
    extra = {
        "quality.classifier": str(judge),
        "model.semi_supervised": "true",
        "model.feature_matching": "true",
        "model.minibatch_discrimination": "true",
        "model.labels_per_class": 2,
    }
    return run_dir, run(compose_config(gan_overrides(tiny_mnist_root, **extra)), run_dir)


def test_mnist_run_logs_everything_the_figures_need(mnist_run):
    run_dir, metrics = mnist_run
    assert json.loads((run_dir / results.METRICS).read_text())["pipeline"] == "dcgan"
    assert metrics["options"] == ["minibatch_discrimination", "semi_supervised", "feature_matching"]
    assert metrics["training"]["steps"] == 4 and (run_dir / "G.ckpt").is_file()
    grids = sorted(p.name for p in (run_dir / "G" / SAMPLES).iterdir())
    assert grids == ["step_000000.png", "step_000002.png", "step_000004.png"]
    assert {"train/d_loss", "train/g_loss", "train/d_supervised"} <= set(
        open(run_dir / "G" / "metrics.csv").readline().strip().split(",")
    )
    assert results.read_arrays(run_dir / "interpolation.npz")["images"].shape == (2, 3, 1, 28, 28)
    q = metrics["quality"]
    assert q["frechet_distance"] >= 0 and q["frechet_distance_real_vs_real"] >= 0
    assert sum(q["generated_classes"]) == q["generated_images"] == 40
    s = metrics["semi_supervised"]
    assert (
        s["labelled_images"] == 20
        and 0 <= s["gan_discriminator_test_accuracy"] <= 1
        and 0 <= s["labels_only_test_accuracy"] <= 1
    )
    assert not [p for p in run_dir.rglob("*.tmp")]


def test_plot_dcgan_draws_from_the_logged_results(mnist_run, tmp_path):
    run_dir, _ = mnist_run
    written = plot_dcgan(run_dir, tmp_path)
    names = {p.name for p in written}
    for stem in ("dcgan_samples", "dcgan_interpolation", "dcgan_losses", "dcgan_classes"):
        assert {f"{stem}.png", f"{stem}.pdf"} <= names
        assert (tmp_path / f"{stem}.png").stat().st_size > 0


def test_plot_dcgan_rejects_other_runs(tmp_path):
    results.write_json(tmp_path / results.METRICS, {"pipeline": "rpr_retrain"})
    with pytest.raises(RobustlabError, match="draws runs of dcgan"):
        plot_dcgan(tmp_path, tmp_path / "out")


def test_cifar10_run_through_the_torchvision_reader(tiny_cifar, tmp_path):
    root, arrays = tiny_cifar
    metrics = run(compose_config(gan_overrides(root, "dcgan_cifar10", **{"model.conditional": "true"})), tmp_path)
    assert metrics["data"]["name"] == "cifar10" and metrics["data"]["train_images"] == 100
    assert (
        metrics["model"]["input_shape"] == [3, 32, 32] and "quality" not in metrics
    )  # no CIFAR-10 classifier by default
    interpolation = results.read_arrays(tmp_path / "interpolation.npz")
    assert interpolation["images"].shape == (2, 3, 3, 32, 32) and list(interpolation["classes"]) == [0, 1]


@pytest.mark.parametrize(
    "extra, match",
    [
        ({"model.latent_dim": 0}, "model.latent_dim must be a positive integer"),
        ({"model.semi_supervised": "true", "model.labels_per_class": 31}, "larger than the smallest class"),
        ({"quality.classifier": "/nonexistent/M.ckpt"}, "quality classifier checkpoint not found: /nonexistent/M.ckpt"),
    ],
)
def test_bad_input_stops_before_training_with_one_line(tiny_mnist_root, tmp_path, extra, match):
    with pytest.raises(RobustlabError, match=match) as error:
        run(compose_config(gan_overrides(tiny_mnist_root, **extra)), tmp_path)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "G.ckpt").exists() and not (tmp_path / "G").exists()


def test_plot_dcgan_multirun_compares_finished_jobs_and_names_failed_ones(mnist_run, tmp_path, capsys):
    run_dir, _ = mnist_run
    for job in ("0", "1"):
        shutil.copytree(run_dir, tmp_path / "multirun" / job)
    (tmp_path / "multirun" / "2").mkdir()
    written = {p.name for p in plot_dcgan_multirun(tmp_path / "multirun", tmp_path / "out")}
    assert {"dcgan_0_samples.png", "dcgan_1_classes.pdf", "dcgan_sweep.csv", "dcgan_sweep_quality.png"} <= written
    assert "skipped job 2" in capsys.readouterr().err
    assert len(pd.read_csv(tmp_path / "out" / "dcgan_sweep.csv")) == 2
