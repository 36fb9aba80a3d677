"""Exact linear distances against the exact attack and brute force over box corners; IBP against sampling;
the certified radius never above the PGD radius on a tiny trained CNN."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from conftest import balanced_labels, block_images
from robustlab.errors import RobustlabError
from robustlab.models import SimpleCNN
from robustlab.robustness import ibp
from robustlab.robustness.attacks import linear_worst_case
from robustlab.robustness.exact import linear_exact_distance
from robustlab.robustness.minimal_eps import ibp_lower_bound, pgd_upper_bound


def linear_problem(n: int, d: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, d, generator=g, dtype=torch.float64)
    w = torch.randn(d, generator=g, dtype=torch.float64)
    b = -float(x.mean(0) @ w)
    y = torch.where(x @ w + b > 0, 1.0, -1.0).to(torch.float64)
    y[: n // 10] *= -1  # some misclassified points: distance 0
    return x, y, w, b


@pytest.mark.parametrize("clip", [False, True])
def test_exact_attack_flips_just_above_the_distance_and_not_just_below(clip):
    x, y, w, b = linear_problem(200, 30, seed=0)
    eps = linear_exact_distance(x, y, w, b, clip)

    def margin(e):
        return y * (linear_worst_case(x, y, w, e, clip) @ w + b)

    inside = (eps > 0) & torch.isfinite(eps)
    assert inside.sum() > 100 and (eps[y * (x @ w + b) <= 0] == 0).all()
    for i in torch.nonzero(inside).flatten().tolist():
        e = float(eps[i])
        assert margin(e * (1 + 1e-7) + 1e-12)[i] <= 0
        assert margin(e * (1 - 1e-7))[i] > 0
    if not clip:
        torch.testing.assert_close(eps[inside], (y * (x @ w + b))[inside] / w.abs().sum())


def test_clipped_distance_equals_brute_force_over_box_corners_in_2d():
    x, y, w, b = linear_problem(300, 2, seed=1)
    w[1] = -3 * w[0]  # both signs of weight
    eps = linear_exact_distance(x, y, w, b, clip=True)
    corners = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=2)), dtype=torch.float64)

    def worst(i: int, e: float) -> float:  # the box's worst corner, clipped to the valid square
        points = (x[i] + e * corners).clamp(0.0, 1.0)
        return float((y[i] * (points @ w + b)).min())

    for i in range(len(x)):
        lo, hi = 0.0, 1.0
        if worst(i, hi) > 0:
            assert eps[i] == float("inf")
            continue
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (lo, mid) if worst(i, mid) <= 0 else (mid, hi)
        assert float(eps[i]) == pytest.approx(hi, abs=1e-9)
    assert torch.isfinite(eps).sum() > 100


def tiny_cnn(seed: int = 0, side: int = 12) -> SimpleCNN:
    torch.manual_seed(seed)
    return SimpleCNN(input_shape=(1, side, side), channels=(3, 4), kernel_size=3, pool=2).eval()


def test_ibp_bounds_contain_sampled_outputs_and_margins():
    model = tiny_cnn()
    x = torch.rand(4, 1, 12, 12)
    lower, upper = (x - 0.05).clamp(0, 1), (x + 0.05).clamp(0, 1)
    lo, hi = ibp.bounds(ibp.layers_of(model), lower, upper)
    labels = torch.tensor([0, 3, 5, 9])
    margin_lo = ibp.margin_lower_bounds(model, lower, upper, labels)
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        sample = lower + (upper - lower) * torch.rand(x.shape, generator=g)
        with torch.no_grad():
            out = model(sample)
        assert (out >= lo - 1e-5).all() and (out <= hi + 1e-5).all()
        margins = out.gather(1, labels[:, None]) - out
        others = margin_lo.isfinite()  # the label's own column is +inf by definition
        assert (margins[others] >= margin_lo[others] - 1e-5).all()
    point_lo, point_hi = ibp.bounds(ibp.layers_of(model), x, x)  # a box of one point: exact
    with torch.no_grad():
        torch.testing.assert_close(point_lo, model(x), atol=1e-5, rtol=0)
        torch.testing.assert_close(point_hi, model(x), atol=1e-5, rtol=0)


def test_ibp_refuses_layers_it_cannot_bound():
    with pytest.raises(RobustlabError, match="IBP handles .* BatchNorm2d"):
        ibp.layers_of(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2)))


def test_certified_radius_never_exceeds_the_pgd_radius_on_a_tiny_trained_model():
    labels = torch.as_tensor(balanced_labels(200, 0).astype(np.int64))
    images = torch.as_tensor(block_images(labels.numpy(), 20, 20, 1, 0)).permute(0, 3, 1, 2).float() / 255
    model = tiny_cnn(1, side=20).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(60):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()
    model.eval()
    x, y = images[:60], labels[:60]
    upper = pgd_upper_bound(model, x, y, eps_max=0.5, iterations=8, steps=10)
    lower = ibp_lower_bound(model, x, y, eps_max=0.5, iterations=8)
    with torch.no_grad():
        correct = model(x).argmax(1) == y
    assert correct.float().mean() > 0.8
    assert (lower <= upper).all()
    assert (lower[correct] > 0).all() and torch.isfinite(upper[correct]).sum() > 10
    assert ((lower == 0) & (upper == 0))[~correct].all()


def exact_overrides(root, **extra) -> list[str]:
    values = {
        "experiment": "rpr_vs_exact",
        "data.root": str(root),
        "data.download": "false",
        "exact.linear_data.root": str(root),
        "exact.linear_data.download": "false",
        "profile.train_subset": 200,
        "profile.epochs": 1,
        "profile.linear_epochs": 1,
        "profile.linear_train_subset": 40,
        "profile.max_steps": 5,
        "profile.exact_linear_points": 20,
        "profile.exact_cnn_points": 12,
        "model.channels": "[4,8]",
        "rpr.progress": "false",
        "trainer.enable_progress_bar": "false",
        "exact.bisection": 4,
        "exact.pgd_steps": 3,
    }
    values.update(extra)
    return [f"{k}={v}" for k, v in values.items()]


def test_rpr_vs_exact_end_to_end(tiny_mnist_root, tmp_path):
    import pandas as pd

    from conftest import compose_config
    from robustlab.pipelines.rpr_vs_exact import RPRVsExact

    metrics = RPRVsExact(compose_config(exact_overrides(tiny_mnist_root)), tmp_path).run()
    assert set(metrics["linear"]) == {"0", "0.1"} and metrics["cnn_source"] == "trained in this run"
    cnn = pd.read_csv(tmp_path / "cnn.csv")
    assert len(cnn) == 12 and (cnn["ibp_lower"] <= cnn["pgd_upper"]).all()
    linear = pd.read_csv(tmp_path / "linear_0.csv")
    assert len(linear) == 20 and {"exact_clipped", "exact_unclipped", "p_hat_0.1", "robust_0.5"} <= set(linear.columns)
    assert (linear["exact_clipped"] >= linear["exact_unclipped"] - 1e-9).all()  # clipping only takes room away
    assert set(metrics["cnn"]["per_eps"]) == {"0.1", "0.2", "0.3", "0.5"}
    from robustlab.plotting.inherent import plot_rpr_vs_exact

    assert {p.name for p in plot_rpr_vs_exact(tmp_path, tmp_path / "fig")} == {"rpr_vs_exact.png", "rpr_vs_exact.pdf"}


@pytest.mark.parametrize(
    "override,message",
    [
        ("exact.rpr_epsilons=[2.0]", "exact.rpr_epsilons must be values in"),
        ("exact.bisection=0", "exact.bisection must be a positive integer"),
        ("exact.cnn_checkpoint=/nowhere/cnn.ckpt", "checkpoint not found"),
    ],
)
def test_rpr_vs_exact_bad_input_is_one_line(tiny_mnist_root, tmp_path, override, message):
    from conftest import compose_config
    from robustlab.pipelines.rpr_vs_exact import RPRVsExact

    key, value = override.split("=", 1)
    with pytest.raises(RobustlabError, match=message) as error:
        RPRVsExact(compose_config(exact_overrides(tiny_mnist_root, **{key: value})), tmp_path)
    assert "\n" not in str(error.value)
