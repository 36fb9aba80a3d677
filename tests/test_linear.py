"""The blog's linear experiment: the robust hinge against brute force, the blog's reductions, the binary
data module on tiny IDX files, the pipeline end to end, and the table and figures from fake runs."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import balanced_labels, block_images, compose_config, write_idx_images, write_idx_labels
from robustlab import results
from robustlab.cli import summary_lines
from robustlab.data.binary import BinaryDataModule
from robustlab.errors import RobustlabError
from robustlab.models.linear_hinge import LinearHinge, binary_correct, hinge, robust_hinge_loss
from robustlab.pipelines.linear_robust import LinearRobust
from robustlab.plotting import cli as plot_cli
from robustlab.plotting import linear as plots
from robustlab.report.claims import applies, lookup, pipeline_claims


def assert_one_line(error):
    assert "\n" not in str(error.value), str(error.value)


# ---------------------------------------------------------------------------------------------
# The model and its loss
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("eps", [0.0, 0.05, 0.3])
def test_robust_hinge_is_the_maximum_over_the_corners_of_the_ball(eps):
    torch.manual_seed(0)
    model = LinearHinge(input_shape=(1, 2, 2), epsilon=eps)
    with torch.no_grad():
        model.w.copy_(torch.tensor([0.8, -1.5, 0.2, 0.0]))
        model.b.fill_(-0.3)
    x, y = torch.rand(12, 1, 2, 2), torch.tensor([1, -1] * 6)
    signs = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=4))).view(16, 1, 2, 2)  # all 16 corners
    with torch.no_grad():
        brute = torch.stack([hinge(y[i] * model(x[i] + eps * signs)).max() for i in range(len(x))])
        per_sample = torch.stack(
            [robust_hinge_loss(model(x[i : i + 1]), y[i : i + 1], model.w, eps, "sum") for i in range(len(x))]
        )
    torch.testing.assert_close(per_sample, brute)


def test_forward_shape_and_keras_initialisation():
    torch.manual_seed(0)
    model = LinearHinge()
    assert model(torch.rand(7, 1, 28, 28)).shape == (7,)
    limit = math.sqrt(6 / 785)
    assert model.w.shape == (784,) and model.w.abs().max() <= limit and model.w.abs().max() > 0.9 * limit
    assert float(model.b.detach()) == 0.0


@pytest.mark.parametrize(
    "eps,lr,reduction,expected",
    [
        (0.0, None, None, (0.1, "mean")),  # the blog's regular script: Keras Hinge (mean), SGD 0.1
        (
            0.1,
            None,
            None,
            (1e-4, "sum"),
        ),  # the blog's robust script: gradient of the loss vector = of its sum, SGD 1e-4
        (0.3, 0.01, "mean", (0.01, "mean")),  # explicit values override
        (0.0, 0.5, "sum", (0.5, "sum")),
    ],
)
def test_the_blogs_lr_and_reduction_and_overrides(eps, lr, reduction, expected):
    model = LinearHinge(epsilon=eps, lr=lr, reduction=reduction)
    assert (model.lr, model.reduction) == expected
    assert model.configure_optimizers().param_groups[0]["lr"] == expected[0]
    model.log = lambda *args, **kwargs: None  # no Trainer here
    x, y = torch.rand(5, 1, 28, 28), torch.tensor([1, -1, 1, 1, -1])
    per_sample = hinge(y * model(x) - eps * model.w.abs().sum())
    loss = model.training_step((x, y), 0)
    torch.testing.assert_close(loss, per_sample.sum() if expected[1] == "sum" else per_sample.mean())


def test_a_score_of_zero_counts_as_wrong():
    assert binary_correct(torch.tensor([0.0, 2.0, -1.0, 0.0]), torch.tensor([1, 1, -1, -1])).tolist() == [
        False,
        True,
        True,
        False,
    ]


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"epsilon": -0.1}, "model.epsilon must be a number >= 0"),
        ({"epsilon": float("inf")}, "model.epsilon must be a number >= 0"),
        ({"lr": 0}, "model.lr must be > 0"),
        ({"reduction": "max"}, "model.reduction must be mean, sum or null"),
    ],
)
def test_model_bad_input_is_one_line(kwargs, message):
    with pytest.raises(RobustlabError, match=message) as error:
        LinearHinge(**kwargs)
    assert_one_line(error)


# ---------------------------------------------------------------------------------------------
# The binary data module
# ---------------------------------------------------------------------------------------------


def test_binary_module_keeps_two_digits_with_labels_minus_one_plus_one(tiny_mnist):
    root, arrays = tiny_mnist
    data = BinaryDataModule([0, 1], "mnist", str(root), download=False)
    data.setup()
    images, labels = arrays["train"]
    keep = np.flatnonzero(np.isin(labels, [0, 1]))
    assert data.num_classes == 2 and data.input_shape == (1, 28, 28)
    assert data.train.index.tolist() == keep.tolist()  # dataset indices survive the filter
    assert data.train.labels.tolist() == [-1 if labels[i] == 0 else 1 for i in keep]
    assert torch.equal(data.train.images[:, 0], torch.as_tensor(images[keep]).float() / 255)
    assert float(data.train.images.max()) <= 1.0 and float(data.train.images.min()) >= 0.0
    test_labels = arrays["t10k"][1]
    assert len(data.test) == int(np.isin(test_labels, [0, 1]).sum())
    assert (data.describe()["train_images"], data.describe()["labels"]) == (len(keep), {"0": -1, "1": 1})


def test_binary_module_first_digit_is_minus_one_and_subsets_count_pair_images(tiny_mnist):
    root, arrays = tiny_mnist
    data = BinaryDataModule([7, 3], "mnist", str(root), download=False, train_subset=10, val_fraction=0.2, seed=1)
    data.setup()
    labels = arrays["train"][1]
    assert len(data.train) == 8 and len(data.val) == 2
    for split in (data.train, data.val):
        assert all(labels[i] in (3, 7) for i in split.index.tolist())
        assert split.labels.tolist() == [-1 if labels[i] == 7 else 1 for i in split.index.tolist()]


@pytest.mark.parametrize(
    "digits,message",
    [
        ([0, 10], "outside 0..9"),
        ([-1, 1], "outside 0..9"),
        ([3, 3], "the same digit twice"),
        ([1], "two different digits"),
        ([0, 1, 2], "two different digits"),
        ([0.5, 1], "not integers"),
        (5, "two different digits"),
    ],
)
def test_bad_digits_are_one_line(tiny_mnist_root, digits, message):
    with pytest.raises(RobustlabError, match=message) as error:
        BinaryDataModule(digits, "mnist", str(tiny_mnist_root), download=False)
    assert_one_line(error)


def test_a_digit_missing_from_the_data_is_one_line(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", 40), ("t10k", 20)):
        labels = balanced_labels(n, 0) % 5  # digits 0..4 only
        write_idx_images(raw / f"{prefix}-images-idx3-ubyte", block_images(labels, 28, 28, 1, 0)[..., 0])
        write_idx_labels(raw / f"{prefix}-labels-idx1-ubyte", labels)
    data = BinaryDataModule([1, 8], "mnist", str(tmp_path), download=False)
    with pytest.raises(RobustlabError, match="no images of digit 8 in the training split") as error:
        data.setup()
    assert_one_line(error)


# ---------------------------------------------------------------------------------------------
# The pipeline end to end
# ---------------------------------------------------------------------------------------------


def linear_config(root: Path, **extra):
    values = {
        "experiment": "linear_robust",
        "data.root": str(root),
        "data.download": "false",
        "data.batch_size": 10,
        "profile.linear_epochs": 2,
        "attack.epsilons.num": 11,
        "attack.misclassified_eps.num": 6,
        "attack.misclassified_keep": 3,
        "trainer.enable_progress_bar": "false",
    }
    values.update(extra)
    return compose_config([f"{k}={v}" for k, v in values.items()])


@pytest.fixture(scope="module")
def linear_run(tiny_mnist_root, tmp_path_factory):
    import pytorch_lightning as pl

    run_dir = tmp_path_factory.mktemp("linear") / "run"
    pl.seed_everything(0, verbose=False)
    return run_dir, LinearRobust(linear_config(tiny_mnist_root, **{"model.epsilon": 0.1}), run_dir).run()


def test_pipeline_writes_every_result_file(linear_run):
    run_dir, metrics = linear_run
    assert json.loads((run_dir / "metrics.json").read_text()) == json.loads(json.dumps(metrics))
    assert metrics["pipeline"] == "linear_robust" and metrics["epsilon"] == 0.1
    assert (metrics["model"]["lr"], metrics["model"]["reduction"], metrics["model"]["epochs"]) == (1e-4, "sum", 2)
    assert (
        metrics["data"]["digits"] == [0, 1]
        and metrics["data"]["train_images"] == 60
        and metrics["data"]["test_images"] == 20
    )
    for key in ("train_accuracy", "train_accuracy_running", "test_accuracy"):
        assert 0.0 <= metrics[key] <= 1.0
    curve = pd.read_csv(run_dir / "attack_curve.csv")
    assert list(curve.columns) == ["eps", "exact_unclipped", "exact_clipped", "fgsm_unclipped"]
    np.testing.assert_allclose(curve["eps"], np.linspace(0, 0.5, 11))
    np.testing.assert_array_equal(curve["fgsm_unclipped"], curve["exact_unclipped"])  # FGSM is exact on a linear model
    assert curve["exact_unclipped"].iloc[0] == pytest.approx(metrics["test_accuracy"])
    attack = metrics["attack"]
    assert attack["clip"] is False and attack["eps_at_50"] == attack["curves"]["exact_unclipped"]["interpolated_eps"]
    weights = results.read_arrays(run_dir / "weights.npz")
    assert weights["w"].shape == (28, 28) and weights["b"].shape == ()
    assert metrics["model"]["w_l1"] == pytest.approx(float(np.abs(weights["w"]).sum()), rel=1e-5)


def test_misclassified_samples_sorted_nearest_the_boundary_first(linear_run):
    run_dir, metrics = linear_run
    d = results.read_arrays(run_dir / "misclassified.npz")
    np.testing.assert_allclose(d["eps"], np.linspace(0, 0.5, 6))
    assert d["images"].shape == (6, 3, 1, 28, 28) and d["scores"].shape == (6, 3)
    assert d["count"].sum() == len(d["all_scores"]) == len(d["all_eps"])
    for e in range(6):
        shown = d["scores"][e][~np.isnan(d["scores"][e])]
        assert len(shown) == min(3, d["count"][e])
        assert np.all(np.diff(np.abs(shown)) >= 0)
        every = d["all_scores"][np.isclose(d["all_eps"], d["eps"][e])]
        if len(shown):
            assert np.abs(shown[0]) == pytest.approx(np.abs(every).min())
        labels = d["labels"][e][: len(shown)]
        assert np.all(np.sign(shown) != labels)  # misclassified: wrong sign (or 0)
        attacked = d["images"][e][: len(shown)]
        assert np.abs(attacked - d["clean"][e][: len(shown)]).max(initial=0) <= d["eps"][e] + 1e-6


def test_same_seed_same_results(linear_run, tiny_mnist_root, tmp_path):
    import pytorch_lightning as pl

    run_dir, metrics = linear_run
    pl.seed_everything(0, verbose=False)
    again = LinearRobust(linear_config(tiny_mnist_root, **{"model.epsilon": 0.1}), tmp_path).run()
    assert again["test_accuracy"] == metrics["test_accuracy"] and again["model"]["w_l1"] == metrics["model"]["w_l1"]


def test_claims_keys_exist_and_when_selects_the_runs_epsilon(linear_run):
    _, metrics = linear_run
    claims = pipeline_claims("linear_robust")
    chosen = [c for c in claims["claims"] if applies(c, metrics)]
    assert len(chosen) == 3 and all(c["when"]["epsilon"] == 0.1 for c in chosen)
    for c in claims["claims"]:
        lookup(metrics, c["key"])  # raises if the key does not exist in metrics.json
    lines = summary_lines(LinearRobust, metrics)
    assert lines[0].startswith("== linear_robust") and sum("robust eps 0.1" in line for line in lines) == 3


@pytest.mark.parametrize(
    "extra,message",
    [
        ({"model.epsilon": -0.1}, "model.epsilon must be a number >= 0"),
        ({"data.digits": "[2,2]"}, "the same digit twice"),
        ({"attack.epsilons.num": 0}, "num must be an integer >= 1"),
        ({"attack.epsilons.start": -0.1}, "epsilon must be a finite number >= 0"),
        ({"attack.misclassified_keep": 0}, "misclassified_keep must be an integer >= 1"),
        ({"model": "simple_cnn"}, "needs model=linear_hinge"),
        ({"data": "mnist"}, "needs a binary data module"),
    ],
)
def test_pipeline_bad_input_is_one_line_before_training(tiny_mnist_root, tmp_path, extra, message):
    with pytest.raises(RobustlabError, match=message) as error:
        LinearRobust(linear_config(tiny_mnist_root, **extra), tmp_path)
    assert_one_line(error)
    assert not any(tmp_path.iterdir())


# ---------------------------------------------------------------------------------------------
# Table and figures from fake logged results
# ---------------------------------------------------------------------------------------------

FAKE = {  # (epsilon, seed) -> (running train accuracy, test accuracy, eps at 50% unclipped)
    (0.0, 0): (0.990, 0.995, 0.08),
    (0.0, 1): (0.994, 0.999, 0.06),
    (0.1, 0): (0.980, 0.985, 0.30),
    (0.1, 1): (0.984, 0.987, 0.28),
}


def fake_run(path: Path, eps: float, seed: int) -> None:
    train, test, at50 = FAKE[(eps, seed)]
    grid = np.linspace(0, 0.5, 11)
    curve = np.clip(test - grid / (2 * at50), 0, 1)
    rng = np.random.default_rng(seed)
    results.write_table(
        path / "attack_curve.csv", {"eps": grid, "exact_unclipped": curve, "exact_clipped": np.minimum(curve + 0.1, 1)}
    )
    results.write_arrays(
        path / "weights.npz", w=rng.normal(size=(28, 28)).astype(np.float32) * (1 + 10 * eps), b=np.float32(0.1)
    )
    eps_m, keep = np.linspace(0, 0.5, 6), 2
    scores = rng.normal(size=(6, keep)).astype(np.float32)
    scores[0] = np.nan  # nothing misclassified at eps 0
    results.write_arrays(
        path / "misclassified.npz",
        eps=eps_m,
        images=rng.random((6, keep, 1, 28, 28), dtype=np.float32),
        clean=rng.random((6, keep, 1, 28, 28), dtype=np.float32),
        scores=scores,
        labels=np.ones((6, keep), np.int64),
        index=np.zeros((6, keep), np.int64),
        count=np.array([0, 2, 2, 2, 2, 2]),
        clip=np.array(False),
        all_scores=rng.normal(size=40).astype(np.float32),
        all_eps=np.repeat(eps_m[1:], 8),
    )
    curves = {
        "exact_unclipped": {"first_grid_eps": 0.1, "interpolated_eps": at50, "accuracy_at_max_eps": 0.0},
        "exact_clipped": {"first_grid_eps": 0.1, "interpolated_eps": at50 + 0.01, "accuracy_at_max_eps": 0.0},
    }
    results.write_json(
        path / "metrics.json",
        {
            "pipeline": "linear_robust",
            "profile": "quick",
            "seed": seed,
            "epsilon": eps,
            "model": {"lr": 0.1, "reduction": "mean", "epochs": 3, "w_l1": 10.0, "eps_w_l1": 10.0 * eps, "b": 0.1},
            "data": {"name": "mnist", "digits": [0, 1], "train_images": 100, "test_images": 50},
            "train_accuracy": train - 0.001,
            "train_accuracy_running": train,
            "test_accuracy": test,
            "attack": {"clip": False, "eps_at_50": at50, "curves": curves},
        },
    )


@pytest.fixture
def fake_multirun(tmp_path) -> Path:
    multirun = tmp_path / "multirun"
    for job, (eps, seed) in enumerate(FAKE):
        fake_run(multirun / str(job), eps, seed)
    (multirun / "9").mkdir()  # a failed job: skipped with a notice
    return multirun


FIGURES = ["linear_attack_accuracy", "linear_weights", "linear_misclassified", "linear_logits", "linear_hinge"]


def test_table_and_figures_from_logged_results(fake_multirun, tmp_path, capsys):
    out = tmp_path / "figs"
    written = plots.plot_linear(fake_multirun, out)
    assert "skipped job 9" in capsys.readouterr().err
    expected = {out / f"{n}.{fmt}" for n in FIGURES for fmt in ("png", "pdf")} | {
        out / "linear_table.csv",
        out / "linear_table.tex",
    }
    assert set(written) == expected
    assert all(p.stat().st_size > 0 for p in expected) and not list(out.glob(".*.tmp"))
    table = pd.read_csv(out / "linear_table.csv")
    assert table["model"].tolist() == ["regular", "robust ε=0.1"] and table["seeds"].tolist() == [2, 2]
    np.testing.assert_allclose(table["train_accuracy_pct_mean"], [99.2, 98.2])
    np.testing.assert_allclose(table["test_accuracy_pct_mean"], [99.7, 98.6])
    np.testing.assert_allclose(
        table["test_accuracy_pct_sd"], [np.std([99.5, 99.9], ddof=1), np.std([98.5, 98.7], ddof=1)]
    )
    np.testing.assert_allclose(table["eps_at_50_mean"], [0.07, 0.29])
    np.testing.assert_allclose(table["train_accuracy_final_pct_mean"], [99.1, 98.1])
    tex = (out / "linear_table.tex").read_text()
    assert "Regular & $\\epsilon = 0.1$" in tex and "99.70 $\\pm$ 0.28" in tex and "0.070 $\\pm$ 0.014" in tex


def test_one_seed_table_has_no_spread(fake_multirun, tmp_path):
    rows = plots.table_rows([r for r in plots.collect_linear_runs(fake_multirun) if r.seed == 0])
    assert [r["seeds"] for r in rows] == [1, 1] and all(np.isnan(r["test_accuracy_pct_sd"]) for r in rows)
    assert (
        "$\\pm$" not in plots.table_tex(rows, "footer").split("\\midrule")[1]
    )  # (the header comment explains the notation)


def test_plot_bad_input_is_one_line(tmp_path, capsys):
    for argv, message in (
        (["--multirun", str(tmp_path / "missing"), "--out", str(tmp_path)], "multirun directory not found"),
        (["--multirun", str(tmp_path), "--out", str(tmp_path)], "no finished linear_robust runs"),
    ):
        with pytest.raises(SystemExit) as exit_:
            plot_cli.main(["linear", *argv])
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_runs_of_another_experiment_are_refused(tmp_path):
    job = tmp_path / "multirun" / "0"
    for name in plots.FILES:
        results.atomic_write_bytes(job / name, b"x")
    results.write_json(job / "metrics.json", {"pipeline": "rpr_retrain"})
    with pytest.raises(RobustlabError, match="draw runs of experiment=linear_robust") as error:
        plots.collect_linear_runs(tmp_path / "multirun")
    assert_one_line(error)
