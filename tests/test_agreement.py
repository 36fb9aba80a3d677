"""Agreement measures on constructed labels with known values, the class-only baseline, and the
rpr_inherent pipeline end to end on tiny data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import compose_config
from robustlab import results
from robustlab.errors import RobustlabError
from robustlab.robustness import agreement


def test_kappa_known_values():
    assert agreement.kappa([1, 1, 0, 0], [1, 0, 0, 0]) == pytest.approx(0.5)  # p_o 0.75, p_e 0.5
    assert agreement.kappa([1, 0, 1, 0], [1, 0, 1, 0]) == pytest.approx(1.0)
    assert agreement.kappa([1, 0, 1, 0], [0, 1, 0, 1]) == pytest.approx(-1.0)
    assert np.isnan(agreement.kappa([1, 1], [1, 1]))  # both constant: undefined, not 1
    with pytest.raises(RobustlabError, match="one length"):
        agreement.kappa([1, 0], [1])


def test_spearman_known_values():
    assert agreement.spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) == pytest.approx(0.8)  # 1 - 6*4/(5*24)
    assert agreement.spearman([1, 2, 3, 4], [10, 20, 30, 400]) == pytest.approx(1.0)
    assert agreement.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert np.isnan(agreement.spearman([1, 1, 1, 1], [1, 2, 3, 4]))


def test_least_robust_and_jaccard():
    a = np.arange(20)
    b = np.array([5, 0, 1] + list(range(10, 27)))
    np.testing.assert_array_equal(np.flatnonzero(agreement.least_robust(a, 0.1)), [0, 1])
    np.testing.assert_array_equal(np.flatnonzero(agreement.least_robust(b, 0.1)), [1, 2])
    assert agreement.jaccard(agreement.least_robust(a), agreement.least_robust(b)) == pytest.approx(1 / 3)
    tied = np.array([1] * 5 + [50] * 15)
    assert agreement.least_robust(tied, 0.1).sum() == 5  # every point tied at the cut is in
    row = agreement.pair(a > 9, a, b > 9, b)
    assert (row["least_a"], row["least_b"], row["jaccard"]) == (2, 2, pytest.approx(1 / 3))


def test_class_only_baseline_when_class_decides_everything_and_when_nothing():
    classes = np.repeat(np.arange(10), 20)
    robust = classes < 5  # classes 0-4 robust, 5-9 not: the class says it all
    steps = np.where(robust, 100, classes)
    full = agreement.class_only(robust, classes, robust, steps, 10, fraction=0.1)
    assert full["kappa"] == pytest.approx(1.0) and full["spearman"] > 0.8
    rng = np.random.default_rng(0)
    noise = rng.permutation(np.tile([True, False], 100))  # robust independent of the class...
    balanced = np.concatenate([rng.permutation(np.repeat([True, False], 10)) for _ in range(10)])  # ...rate 0.5 in each
    none = agreement.class_only(balanced, classes, noise, np.where(noise, 100, 1), 10)
    assert none["kappa"] == pytest.approx(0.0, abs=1e-12)  # one rate for every class: chance agreement exactly
    assert np.isnan(none["spearman"])  # a constant rate ranks nothing
    rates = agreement.class_rates(robust, classes, 11)
    np.testing.assert_allclose(rates[:10], [1] * 5 + [0] * 5)
    assert np.isnan(rates[10])


def test_rpr_inherent_end_to_end(tiny_mnist_root, tmp_path):
    from robustlab.pipelines.rpr_inherent import RPRInherent

    cfg = compose_config(
        [
            "experiment=rpr_inherent",
            f"data.root={tiny_mnist_root}",
            "data.download=false",
            "data.batch_size=32",
            "profile.train_subset=200",
            "profile.epochs=1",
            "profile.max_steps=5",
            "profile.inherent_test_points=30",
            "profile.inherent_calibrated_k=60",
            "rpr.progress=false",
            "trainer.enable_progress_bar=false",
            "inherent.architectures.cnn.channels=[4,8]",
            "inherent.architectures.wide_cnn.channels=[8,8]",
            "inherent.architectures.mlp.hidden=[16]",
        ]
    )
    metrics = RPRInherent(cfg, tmp_path).run()
    assert metrics["models"] == ["cnn", "cnn_seed1", "wide_cnn", "mlp", "logreg"]
    for point in ("literal", "calibrated"):
        table = pd.read_csv(tmp_path / f"agreement_{point}.csv")
        assert set(table["kind"]) == {"retest", "training_seed", "architecture", "class_only", "other"}
        assert len(table[table["kind"] != "class_only"]) == 15  # every pair of the 6 runs (5 models and the retest)
        assert (table["kind"] == "architecture").sum() == 6 and (table["kind"] == "class_only").sum() == 12
        loaded = results.load_rpr(tmp_path / f"rpr_{point}_cnn_retest.csv")
        assert len(loaded.index) == 30
        assert set(metrics["operating_points"][point]["agreement"]) == {
            "retest",
            "training_seed",
            "architecture",
            "class_only",
        }
    assert (tmp_path / "points.npz").is_file() and (tmp_path / "logreg.ckpt").is_file()
    from robustlab.plotting.inherent import agreement_matrix, plot_inherent

    written = {p.name for p in plot_inherent(tmp_path, tmp_path / "fig")}
    expected = {"inherent_agreement.png", "hardest_points.png", "inherent_per_class.png", "inherent_agreement.csv"}
    assert expected <= written
    runs = [*metrics["models"], metrics["retest"]]
    matrix = agreement_matrix(pd.read_csv(tmp_path / "agreement_literal.csv"), runs, "kappa")
    assert matrix.shape == (7, 6) and np.allclose(np.diag(matrix[:6]), 1.0)
    np.testing.assert_array_equal(np.isnan(matrix[:6]), np.isnan(matrix[:6].T))  # symmetric where defined


def write_pixel_curve(folder, ratios, ks=(28, 112, 392), max_steps=5):
    """An operating_point group of one seed: M's test curve of the default pixel reading."""
    from robustlab.robustness.calibration import COLUMNS, RESULTS

    (folder / "seed_0").mkdir(parents=True)
    rows = [
        {
            "curve": "pixels_uniform_uniform",
            "scheme": "pixels",
            "param": "k",
            "strength": k,
            "split": "test",
            "points": 50,
            "robust": 0,
            "robust_ratio": r,
            "cp_low": 0,
            "cp_high": 1,
            "clean_accuracy": 0.9,
            "max_steps": max_steps,
            "seed": 0,
        }
        for k, r in zip(ks, ratios, strict=True)
    ]
    pd.DataFrame(rows, columns=COLUMNS).to_csv(folder / "seed_0" / RESULTS, index=False)
    return folder


@pytest.mark.parametrize(
    "ratios, used", [((0.9, 0.5, 0.1), round(112 + 280 * (0.5 - 0.2957) / 0.4)), ((0.9, 0.8, 0.7), None)]
)
def test_rpr_inherent_takes_its_calibrated_k_from_the_operating_point_runs(tiny_mnist_root, tmp_path, ratios, used):
    from robustlab.pipelines.rpr_inherent import RPRInherent

    source = write_pixel_curve(tmp_path / "op", ratios)
    cfg = compose_config(
        [
            "experiment=rpr_inherent",
            f"data.root={tiny_mnist_root}",
            "profile.max_steps=5",
            f"rpr.calibrate.source={source}",
        ]
    )
    pipeline = RPRInherent(cfg, tmp_path / "run")
    assert pipeline.calibration["point"] == "calibrated" and pipeline.calibration["used"] == used
    assert pipeline.calibration["source"] == str(source.resolve())
    if used is None:  # never crossed: the point is dropped, the literal one stays
        assert list(pipeline.points) == ["literal"] and "never crosses 0.2957" in pipeline.calibration["not_reached"]
    else:
        assert pipeline.points["calibrated"].describe() == pipeline.points["literal"].describe().replace(
            "k=sqrt", f"k={used}"
        )
