"""Attacks: the exact linear worst case against brute force, FGSM and PGD against it on linear models,
the same attacks on a multi-class CNN (and on saved checkpoints), and their one-line errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from conftest import compose_config
from robustlab.errors import RobustlabError
from robustlab.models import SimpleCNN
from robustlab.models.linear_hinge import LinearHinge
from robustlab.robustness.attacks import (
    Attack,
    accuracy_under_attack,
    attack_loss,
    check_grid,
    clean_accuracy,
    crossing,
    fgsm,
    linear_worst_case,
    linspace_grid,
    pgd,
)


def assert_one_line(error):
    assert "\n" not in str(error.value), str(error.value)


def tiny_linear(seed: int = 0, shape=(1, 2, 2)) -> LinearHinge:
    torch.manual_seed(seed)
    model = LinearHinge(input_shape=shape).eval()
    with torch.no_grad():
        model.w.copy_(torch.randn(model.w.shape))
        model.b.fill_(0.1)
    return model


def points(n: int = 64, shape=(1, 2, 2), seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand((n, *shape), generator=g), torch.where(torch.rand(n, generator=g) > 0.5, 1, -1)


def corners(x: torch.Tensor, eps: float, clip: bool) -> torch.Tensor:
    """Every corner of the l-inf ball around one image (intersected with [0, 1] when clip)."""
    signs = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=x.numel()))).view(-1, *x.shape)
    out = x + eps * signs
    return out.clamp(0, 1) if clip else out


@pytest.mark.parametrize("clip", [False, True])
@pytest.mark.parametrize("eps", [0.0, 0.1, 0.35])
def test_exact_attack_is_the_worst_corner(clip, eps):
    model = tiny_linear()
    x, y = points(16)
    attacked = linear_worst_case(x, y, model.w.detach(), eps, clip)
    with torch.no_grad():
        for i in range(len(x)):
            worst = (y[i] * model(corners(x[i], eps, clip))).min()  # the smallest margin of any corner
            assert torch.isclose(y[i] * model(attacked[i : i + 1])[0], worst, atol=1e-6)
    assert (attacked - x).abs().max() <= eps + 1e-7
    if clip:
        assert attacked.min() >= 0 and attacked.max() <= 1


@pytest.mark.parametrize("clip", [False, True])
def test_fgsm_equals_the_exact_attack_on_a_linear_model(clip):
    model = tiny_linear(shape=(1, 4, 4))
    x, y = points(50, (1, 4, 4))
    for eps in (0.0, 0.05, 0.2, 0.5):
        assert torch.equal(fgsm(model, x, y, eps, clip), linear_worst_case(x, y, model.w.detach(), eps, clip))


@pytest.mark.parametrize("clip", [False, True])
def test_pgd_reaches_the_exact_attack_accuracy_on_a_linear_model(clip):
    model = tiny_linear(seed=1, shape=(1, 4, 4))
    x, y = points(200, (1, 4, 4), seed=1)
    grid = np.linspace(0, 0.5, 11)
    exact = accuracy_under_attack(model, x, y, grid, Attack("exact", clip=clip), batch_size=64)
    reached = accuracy_under_attack(model, x, y, grid, Attack("pgd", clip=clip, steps=10), batch_size=64)
    np.testing.assert_allclose(reached, exact, atol=1e-6)
    assert exact[0] > exact[-1]  # the attack does something on this grid


def test_attacks_on_a_multiclass_cnn_stay_in_the_ball_and_raise_the_loss():
    torch.manual_seed(0)
    model = SimpleCNN(channels=(2, 3)).eval()
    x, y = torch.rand(8, 1, 28, 28), torch.arange(8) % 10
    with torch.no_grad():
        clean_loss = attack_loss(model(x), y)
    for x_adv in (fgsm(model, x, y, 0.1, clip=True), pgd(model, x, y, 0.1, steps=5, clip=True, random_start=True)):
        assert (x_adv - x).abs().max() <= 0.1 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
        with torch.no_grad():
            assert attack_loss(model(x_adv), y) > clean_loss
    accuracy = accuracy_under_attack(model, x, y, [0.0, 0.1], Attack("pgd", clip=True, steps=3), batch_size=3)
    assert accuracy.shape == (2,) and accuracy[0] == clean_accuracy(model, x, y)


def test_crossing_first_grid_point_and_interpolation():
    eps = np.array([0.0, 0.1, 0.2, 0.3])
    assert crossing(eps, np.array([1.0, 0.8, 0.4, 0.1])) == {
        "first_grid_eps": 0.2,
        "interpolated_eps": pytest.approx(0.175),
    }
    assert crossing(eps, np.array([1.0, 0.9, 0.8, 0.7])) == {"first_grid_eps": None, "interpolated_eps": None}
    assert crossing(eps, np.array([0.3, 0.2, 0.1, 0.0]))["first_grid_eps"] == 0.0


def test_grid_specs():
    np.testing.assert_allclose(linspace_grid({"start": 0, "stop": 0.5, "num": 101}), np.linspace(0, 0.5, 101))
    np.testing.assert_allclose(linspace_grid([0.3, 0.1]), [0.3, 0.1])


class Counting(nn.Module):
    """A linear-looking binary model that counts forward passes (to prove errors come before work)."""

    def __init__(self, multiclass: bool = False):
        super().__init__()
        self.lin, self.multiclass, self.calls = nn.Linear(4, 3 if multiclass else 1), multiclass, 0

    def forward(self, x):
        self.calls += 1
        out = self.lin(x.flatten(1))
        return out if self.multiclass else out[:, 0]


@pytest.mark.parametrize(
    "call,message",
    [
        (
            lambda m, x, y: accuracy_under_attack(m, x, y, [0.1, -0.1], Attack("fgsm")),
            "epsilon must be a finite number >= 0",
        ),
        (lambda m, x, y: accuracy_under_attack(m, x, y, [], Attack("fgsm")), "grid is empty"),
        (lambda m, x, y: accuracy_under_attack(m, x, y, [0.1], Attack("exact")), "needs a binary linear model"),
        (lambda m, x, y: accuracy_under_attack(m, x, y, [0.1], Attack("fgsm"), batch_size=0), "batch_size must be"),
        (lambda m, x, y: linear_worst_case(x, y, torch.ones(4), -0.5), "epsilon must be a finite number >= 0"),
        (lambda m, x, y: fgsm(m, x, y, -0.1), "epsilon must be a finite number >= 0"),
        (lambda m, x, y: pgd(m, x, y, float("nan")), "epsilon must be a finite number >= 0"),
        (lambda m, x, y: pgd(m, x, y, 0.1, steps=0), "pgd steps must be"),
        (lambda m, x, y: Attack("carlini"), "unknown attack"),
        (lambda m, x, y: linspace_grid({"start": 0, "stop": 0.5}), "missing num"),
        (lambda m, x, y: linspace_grid({"start": 0.5, "stop": 0.1, "num": 3}), "below its start"),
        (lambda m, x, y: check_grid([]), "grid is empty"),
    ],
)
def test_bad_input_is_one_line_before_any_work(call, message):
    model = Counting()
    x, y = torch.rand(5, 1, 2, 2), torch.tensor([1, -1, 1, -1, 1])
    with pytest.raises(RobustlabError, match=message) as error:
        call(model, x, y)
    assert_one_line(error)
    assert model.calls == 0


def test_labels_must_fit_the_kind_of_model():
    x = torch.rand(4, 1, 2, 2)
    with pytest.raises(RobustlabError, match="needs labels -1/\\+1") as error:
        accuracy_under_attack(Counting(), x, torch.tensor([0, 1, 0, 1]), [0.1], Attack("fgsm"))
    assert_one_line(error)
    with pytest.raises(RobustlabError, match="classes 0..2") as error:
        accuracy_under_attack(Counting(multiclass=True), x, torch.tensor([0, 1, 5, 1]), [0.1], Attack("fgsm"))
    assert_one_line(error)


def test_exact_attack_refuses_a_cnn():
    with pytest.raises(RobustlabError, match="use attack fgsm or pgd") as error:
        accuracy_under_attack(
            SimpleCNN(channels=(2, 3)), torch.rand(2, 1, 28, 28), torch.tensor([0, 1]), [0.1], Attack("exact")
        )
    assert_one_line(error)


# ---------------------------------------------------------------------------------------------
# experiment=cnn_attack on saved checkpoints
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(tiny_mnist_root, tmp_path_factory) -> str:
    import pytorch_lightning as pl

    from robustlab.data import VisionDataModule

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "M.ckpt"
    trainer = pl.Trainer(
        max_epochs=1,
        limit_train_batches=3,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(
        SimpleCNN(channels=(2, 4), lr=0.01),
        datamodule=VisionDataModule("mnist", str(tiny_mnist_root), download=False, batch_size=32),
    )
    trainer.save_checkpoint(str(path))
    return str(path)


def cnn_config(root, checkpoint, **extra):
    values = {
        "experiment": "cnn_attack",
        "data.root": str(root),
        "data.download": "false",
        "checkpoints.M": checkpoint,
        "checkpoints.M_R": checkpoint,
        "attack.epsilons.num": 3,
        "attack.test_points": 20,
        "attack.pgd.steps": 2,
    }
    values.update(extra)
    return compose_config([f"{k}={v}" for k, v in values.items()])


def test_cnn_attack_pipeline_writes_curves_for_every_checkpoint(tiny_mnist_root, checkpoint, tmp_path):
    import json

    import pandas as pd

    from robustlab.pipelines.cnn_attack import CNNAttack

    metrics = CNNAttack(cnn_config(tiny_mnist_root, checkpoint), tmp_path).run()
    curve = pd.read_csv(tmp_path / "attack_curve.csv")
    assert list(curve.columns) == ["eps", "M_fgsm", "M_pgd", "M_R_fgsm", "M_R_pgd"]
    np.testing.assert_allclose(curve["eps"], [0, 0.15, 0.3])
    assert curve["M_fgsm"].iloc[0] == pytest.approx(metrics["models"]["M"]["test_accuracy"])
    assert ((curve.drop(columns="eps") >= 0) & (curve.drop(columns="eps") <= 1)).all().all()
    assert json.loads((tmp_path / "metrics.json").read_text())["pipeline"] == "cnn_attack"
    assert metrics["data"]["test_points"] == 20
    assert CNNAttack.summary_lines(metrics)[0].startswith("== cnn_attack")


@pytest.mark.parametrize(
    "extra,message",
    [
        ({"checkpoints.M": "/nonexistent/M.ckpt"}, "checkpoint not found"),
        ({"attack.epsilons.num": 0}, "num must be an integer >= 1"),
        ({"attack.fgsm": "false", "attack.pgd": "null"}, "no attack selected"),
    ],
)
def test_cnn_attack_bad_input_is_one_line(tiny_mnist_root, checkpoint, tmp_path, extra, message):
    from robustlab.pipelines.cnn_attack import CNNAttack

    with pytest.raises(RobustlabError, match=message) as error:
        CNNAttack(cnn_config(tiny_mnist_root, checkpoint, **extra), tmp_path)
    assert_one_line(error)
