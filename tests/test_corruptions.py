"""The MNIST-C / ImageNet-C corruption schemes: torchvision's operations, batched with one parameter per
image; deterministic per (point, retry) whatever the batch; stronger with severity; one-line bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from conftest import block_images, compose_config
from robustlab.config import build
from robustlab.errors import RobustlabError
from robustlab.robustness import counter_rng as rng
from robustlab.robustness import make_perturbation
from robustlab.robustness.corruptions import CORRUPTIONS, signs
from robustlab.robustness.rpr import measure_rpr, perturb_at

NAMES = [cls.name for cls in CORRUPTIONS]


def images(n: int = 8, channels: int = 1, size: int = 28) -> torch.Tensor:
    labels = np.arange(n) % 10
    return torch.from_numpy(block_images(labels, size, size, channels, seed=3)).permute(0, 3, 1, 2).float() / 255


def keys(n: int, step: int = 1) -> torch.Tensor:
    return rng.point_keys(7, torch.arange(n), torch.full((n,), step))


@pytest.mark.parametrize("name", ["rotation", "shear", "scale", "translation"])
def test_geometric_corruptions_are_torchvision_affine_per_image(name):
    x, k = images(6), keys(6)
    scheme = make_perturbation(name, severity=4)
    out = scheme(x, k)
    strength = scheme.strength(k)
    for i in range(len(x)):
        args = {"angle": 0.0, "translate": [0.0, 0.0], "scale": 1.0, "shear": [0.0, 0.0]}
        if name == "rotation":
            args["angle"] = float(strength[i] * signs(k, 1)[i])
        elif name == "shear":
            args["shear"] = [float(strength[i] * signs(k, 1)[i]), 0.0]
        elif name == "scale":
            args["scale"] = float(strength[i])
        else:
            direction = 2 * np.pi * float(rng.uniform(k, 1, stream=1)[i, 0])
            args["translate"] = [
                float(strength[i]) * 28 * np.cos(direction),
                float(strength[i]) * 28 * np.sin(direction),
            ]
        expected = TF.affine(x[i], interpolation=InterpolationMode.BILINEAR, **args)
        assert torch.allclose(out[i], expected.clamp(0, 1), atol=1e-5), (name, i)
    assert not torch.equal(out, x)


@pytest.mark.parametrize("channels", [1, 3])
def test_contrast_is_torchvision_adjust_contrast_per_image(channels):
    x, k = images(5, channels, 32), keys(5)
    scheme = make_perturbation("contrast", severity=2)
    out, factor = scheme(x, k), scheme.strength(k)
    for i in range(len(x)):
        assert torch.allclose(out[i], TF.adjust_contrast(x[i], float(factor[i])), atol=1e-5)
    assert 0.3 <= float(factor.min()) and float(factor.max()) <= 0.4  # severity 2's band


def test_brightness_adds_to_the_hsv_value():
    x, k = images(4, 3, 32), keys(4)
    scheme = make_perturbation("brightness", severity=5)
    out, c = scheme(x, k), scheme.strength(k)
    gray = images(4, 1, 32)
    assert torch.allclose(
        make_perturbation("brightness", severity=5)(gray, k), (gray + c.view(-1, 1, 1, 1).float()).clamp(0, 1)
    )
    value = out.amax(dim=1)  # HSV value = max over channels
    assert torch.allclose(value, (x.amax(dim=1) + c.view(-1, 1, 1).float()).clamp(0, 1), atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_same_point_and_retry_same_corruption_whatever_the_batch(name):
    """Batch of 8, the same points one at a time, and in reverse order: identical images per (point, retry)."""
    scheme, x = make_perturbation(name, severity=3), images(8)
    index, step = torch.arange(8), torch.tensor([1, 2, 3, 1, 5, 8, 2, 4])
    together = perturb_at(scheme, 0, x, index, step)
    alone = torch.cat([perturb_at(scheme, 0, x[i : i + 1], index[i : i + 1], step[i : i + 1]) for i in range(8)])
    reverse = perturb_at(scheme, 0, x.flip(0), index.flip(0), step.flip(0)).flip(0)
    assert torch.allclose(together, alone, atol=1e-6) and torch.allclose(together, reverse, atol=1e-6)
    again = perturb_at(scheme, 0, x, index, step + 1)
    assert not torch.allclose(together, again)  # a new retry draws a new corruption
    assert float(together.min()) >= 0 and float(together.max()) <= 1


@pytest.mark.parametrize("name", NAMES)
def test_higher_severity_changes_images_more(name):
    x, k = images(16).repeat(4, 1, 1, 1), rng.point_keys(1, torch.arange(64), torch.ones(64))
    change = [float((make_perturbation(name, severity=s)(x, k) - x).abs().mean()) for s in (1, 5)]
    assert change[1] > change[0] > 0, change


def test_rpr_under_a_corruption_does_not_depend_on_the_batch_size():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 10))
    x = images(20)
    labels = model(x).argmax(1)  # every point correct before perturbation
    scheme = make_perturbation("rotation", severity=5)
    runs = [measure_rpr(model, x, labels, scheme, 30, seed=2, batch_size=b, progress=False) for b in (5, 64)]
    assert np.array_equal(runs[0].first_failure, runs[1].first_failure)
    assert (runs[0].first_failure > 0).any()


def test_configs_build_every_corruption():
    for name in NAMES:
        scheme = build(compose_config([f"perturbation={name}", "perturbation.severity=5"]).perturbation)
        assert scheme.name == name and scheme.describe() == f"{name}(severity=5)"


def test_bad_corruption_input_is_one_line():
    with pytest.raises(RobustlabError, match="severity must be one of 1..5, got 6"):
        make_perturbation("fog", severity=6)
    with pytest.raises(RobustlabError, match="has no parameter"):
        make_perturbation("rotation", angle=3)
    with pytest.raises(RobustlabError, match="1- or 3-channel"):
        make_perturbation("contrast").check_images((2, 28, 28))


def test_run_logs_perturbed_examples_and_the_severity_figure_draws_them(tmp_path, tiny_mnist_root):
    """A tiny rpr_sweep run per severity logs R(x) of its first test points (the same numbers RPR used);
    robustlab-plot corruptions draws them from the run folders alone."""

    import pandas as pd

    from conftest import tiny_run_overrides
    from robustlab import results
    from robustlab.cli import run
    from robustlab.plotting.corruptions import plot_corruptions

    multirun = tmp_path / "multirun"
    for job, severity in enumerate((1, 5)):
        overrides = tiny_run_overrides(
            tiny_mnist_root,
            experiment="rpr_sweep",
            perturbation="rotation",
            **{"perturbation.severity": severity, "rpr.perturbed_examples": 3},
        )
        cfg = compose_config(overrides)
        metrics = run(cfg, multirun / str(job))
        logged = results.read_arrays(multirun / str(job) / "examples_perturbed.npz")
        assert logged["perturbed"].shape == (3, 3, 1, 28, 28)
        scheme = build(cfg.perturbation)
        index = torch.from_numpy(logged["index"]).repeat_interleave(3)
        again = perturb_at(
            scheme,
            cfg.seed,
            torch.from_numpy(logged["images"]).repeat_interleave(3, 0),
            index,
            torch.arange(1, 4).repeat(3),
        )
        assert torch.allclose(again.view(3, 3, 1, 28, 28), torch.from_numpy(logged["perturbed"]))
        assert metrics["config"]["perturbation"]["severity"] == severity
    written = plot_corruptions(multirun, tmp_path / "figures")
    assert sorted(p.name for p in written) == ["corruptions.csv", "corruptions.pdf", "corruptions.png"]
    table = pd.read_csv(tmp_path / "figures" / "corruptions.csv")
    assert table[["scheme", "severity"]].values.tolist() == [["rotation", 1], ["rotation", 5]]
    for job, row in table.iterrows():
        assert (
            row["robust_ratio"] == results.read_json(multirun / str(job) / "metrics.json")["M"]["test"]["robust_ratio"]
        )


def test_severity_figure_without_logged_examples_is_one_line(tmp_path):
    from robustlab.plotting.corruptions import plot_corruptions

    (tmp_path / "0").mkdir()
    with pytest.raises(RobustlabError, match="rpr.perturbed_examples"):
        plot_corruptions(tmp_path, tmp_path / "out")
