"""Resumable training (robustlab.pipelines.resume): a fit stopped part-way and started again continues
from its last checkpoint and ends with exactly the weights of a fit that was never stopped; the
checkpoints do not change training, and they live outside the run folder until the model is written."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch

from conftest import compose_config, tiny_run_overrides
from robustlab.config import build
from robustlab.errors import RobustlabError
from robustlab.models import SimpleCNN
from robustlab.models.dcgan import DCGAN
from robustlab.pipelines.resume import PARTIAL, Resume, resume_from_config
from robustlab.pipelines.training import fit_classifier

EPOCHS = 3
STOP_AT_BATCH = 30  # in the third epoch (13 batches of 16 per epoch on 200 images)


class Stopped(RuntimeError):
    """What the stop callback raises (as a kill would, part-way through an epoch)."""


class StopAt(pl.Callback):
    armed = False  # class-wide: the same model class trains in every run, so the training identity is the same

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if StopAt.armed and trainer.fit_loop.total_batch_idx + 1 == STOP_AT_BATCH:
            raise Stopped(f"stopped at batch {STOP_AT_BATCH}")


class StoppableCNN(SimpleCNN):
    def configure_callbacks(self):
        return [StopAt()]


class StoppableGAN(DCGAN):
    def configure_callbacks(self):
        return super().configure_callbacks() + [StopAt()]


def setup(tiny_mnist_root, model_group: str, **extra):
    overrides = tiny_run_overrides(tiny_mnist_root, **{"profile.epochs": EPOCHS, **extra})
    if model_group == "dcgan":
        overrides = [o for o in overrides if not o.startswith("model.channels=")]
        overrides += ["model=dcgan", "model.g_width=8", "model.d_width=8", "model.sample_every_n_steps=10"]
    cfg = compose_config(overrides)
    data = build(cfg.data)
    data.setup()
    return cfg, data


def new_model(cfg, data, cls):
    pl.seed_everything(7, verbose=False)  # every run starts from the same global random state
    kwargs = {
        k: v
        for k, v in dict(build(cfg.model, input_shape=data.input_shape, num_classes=data.num_classes).hparams).items()
    }
    pl.seed_everything(7, verbose=False)
    return cls(**kwargs)


def weights(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f"tensors differ: {differ[:5]}"


@pytest.mark.parametrize("model_group, cls", [("simple_cnn", StoppableCNN), ("dcgan", StoppableGAN)])
def test_stopped_fit_resumes_to_the_weights_of_an_uninterrupted_fit(tiny_mnist_root, tmp_path, model_group, cls):
    cfg, data = setup(tiny_mnist_root, model_group)
    resume = Resume(tmp_path / "cache" / PARTIAL, every_n_epochs=1)

    plain = new_model(cfg, data, cls)
    fit_classifier(plain, data, cfg.trainer, tmp_path / "plain", "M")  # no checkpoints at all
    with_checkpoints = new_model(cfg, data, cls)
    fit_classifier(with_checkpoints, data, cfg.trainer, tmp_path / "checkpointed", "M", resume=resume)
    assert_same(weights(plain), weights(with_checkpoints))  # saving checkpoints changes nothing
    assert not any(resume.root.iterdir()), "a finished training keeps no resume checkpoint"

    StopAt.armed = True
    try:
        with pytest.raises(Stopped):
            fit_classifier(new_model(cfg, data, cls), data, cfg.trainer, tmp_path / "killed", "M", resume=resume)
    finally:
        StopAt.armed = False
    (left,) = resume.root.iterdir()  # the checkpoint of the last finished epoch, outside the run folder
    assert (left / "last.ckpt").is_file() and torch.load(left / "last.ckpt", weights_only=False)["epoch"] == 1
    assert not (tmp_path / "killed" / "M.ckpt").exists()

    resumed = new_model(cfg, data, cls)
    fit_classifier(resumed, data, cfg.trainer, tmp_path / "resumed", "M", resume=resume)
    assert_same(weights(plain), weights(resumed))
    # ... and the same logged history: the metrics of every epoch, the GAN's sample grid of every step
    assert (tmp_path / "resumed" / "M" / "metrics.csv").read_bytes() == (
        tmp_path / "plain" / "M" / "metrics.csv"
    ).read_bytes()
    if model_group == "dcgan":
        assert resumed.iteration == plain.iteration == EPOCHS * 13
        grids = lambda run: {p.name: p.read_bytes() for p in (tmp_path / run / "M" / "samples").glob("*.png")}  # noqa: E731
        assert len(grids("plain")) == 5 and grids("resumed") == grids("plain")  # steps 0, 10, 20, 30 and the last
    assert not any(resume.root.iterdir())


def test_another_training_never_resumes_a_checkpoint_that_is_not_its_own(tiny_mnist_root, tmp_path):
    """A different learning rate is another training: it starts over (a different key), and ends as
    an uninterrupted fit with that learning rate does."""
    cfg, data = setup(tiny_mnist_root, "simple_cnn")
    resume = Resume(tmp_path / PARTIAL, every_n_epochs=1)
    StopAt.armed = True
    try:
        with pytest.raises(Stopped):
            fit_classifier(
                new_model(cfg, data, StoppableCNN), data, cfg.trainer, tmp_path / "killed", "M", resume=resume
            )
    finally:
        StopAt.armed = False
    cfg2, _ = setup(tiny_mnist_root, "simple_cnn", **{"model.lr": 0.01})
    other = new_model(cfg2, data, StoppableCNN)
    fit_classifier(other, data, cfg2.trainer, tmp_path / "other", "M", resume=resume)
    reference = new_model(cfg2, data, StoppableCNN)
    fit_classifier(reference, data, cfg2.trainer, tmp_path / "reference", "M")
    assert_same(weights(other), weights(reference))
    assert len(list(resume.root.iterdir())) == 1  # the stopped training's checkpoint is still there, untouched


def test_resume_config(tiny_mnist_root, tmp_path):
    cfg = compose_config(tiny_run_overrides(tiny_mnist_root, model_cache=str(tmp_path / "models")))
    assert resume_from_config(cfg) == Resume(tmp_path / "models" / PARTIAL, 1)
    assert resume_from_config(compose_config(tiny_run_overrides(tiny_mnist_root, resume_every_n_epochs="null"))) is None
    assert resume_from_config(compose_config(tiny_run_overrides(tiny_mnist_root, model_cache="null"))) is None
    with pytest.raises(RobustlabError, match="^resume_every_n_epochs must be a positive integer or null"):
        resume_from_config(compose_config(tiny_run_overrides(tiny_mnist_root, resume_every_n_epochs=0)))
