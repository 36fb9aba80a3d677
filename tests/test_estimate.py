"""The per-point flip-probability estimate and its Clopper–Pearson interval, by simulation with known p:
bias against the exact expectation, coverage under stopping at the first failure, and RPR end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from robustlab import results
from robustlab.robustness.estimate import expected_p_hat, flip_estimate, robust_upper_bound
from robustlab.robustness.perturbations import UniformLinf
from robustlab.robustness.rpr import measure_rpr

REPS = 4000


def censored_geometric(p: float, max_steps: int, reps: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(failures, trials) of ``reps`` points with flip probability p under RPR's stopping rule."""
    k = np.random.default_rng(seed).geometric(p, size=reps)
    return (k <= max_steps).astype(int), np.minimum(k, max_steps)


@pytest.mark.parametrize("p", [0.003, 0.02, 0.1, 0.4])
def test_interval_covers_p_under_stopping_at_first_failure(p):
    failures, trials = censored_geometric(p, 100, REPS, seed=1)
    _, low, high = flip_estimate(failures, trials)
    coverage = np.mean((low <= p) & (p <= high))
    assert coverage >= 0.95 - 3 * np.sqrt(0.95 * 0.05 / REPS), coverage


@pytest.mark.parametrize("p", [0.01, 0.05, 0.3])
def test_p_hat_bias_matches_its_exact_expectation(p):
    failures, trials = censored_geometric(p, 100, REPS, seed=2)
    p_hat, _, _ = flip_estimate(failures, trials)
    expected = expected_p_hat(p, 100)
    assert abs(p_hat.mean() - expected) < 4 * p_hat.std() / np.sqrt(REPS)
    assert expected > p  # biased upwards, as the module says; -p ln p / (1 - p) without censoring
    if p >= 0.05:  # censoring at 100 is negligible here
        assert expected == pytest.approx(-p * np.log(p) / (1 - p), rel=1e-3)


def test_interval_values_by_hand():
    p_hat, low, high = flip_estimate(np.array([0, 1, 1, 0]), np.array([250, 1, 10, 0]))
    np.testing.assert_allclose(p_hat[:3], [0.0, 1.0, 0.1])
    assert np.isnan(p_hat[3]) and (low[3], high[3]) == (0.0, 1.0)  # clean-misclassified: nothing measured
    assert low[0] == 0.0 and high[0] == pytest.approx(1 - 0.025 ** (1 / 250)) == pytest.approx(robust_upper_bound(250))
    assert robust_upper_bound(250) == pytest.approx(0.01465, abs=1e-5)
    assert (low[1], high[1]) == (pytest.approx(0.025), 1.0)
    ci = stats.binomtest(1, 10).proportion_ci(0.95, method="exact")  # scipy's own Clopper–Pearson
    assert (low[2], high[2]) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert low[2] == pytest.approx(1 - 0.975 ** (1 / 10))  # the geometric distribution's exact lower end


def test_rpr_columns_cover_a_known_flip_probability(tmp_path):
    """A model that errs when one pixel's uniform noise lands above 1 - p: every retry flips with probability p."""
    p, n = 0.05, 600
    images, labels = torch.full((n, 1, 2, 2), 0.5), torch.zeros(n, dtype=torch.int64)

    def model(x):  # class 1 exactly when pixel (0, 0) > 1 - p; the noise makes it U[0, 1]
        wrong = (x[:, 0, 0, 0] > 1 - p).float()
        return torch.stack([1 - wrong, wrong], 1)

    result = measure_rpr(model, images, labels, UniformLinf(0.5), max_steps=60, seed=3, progress=False)
    saved = results.load_rpr(results.save_rpr(tmp_path / "rpr.csv", result))
    p_hat, low, high = saved.flip_probability()
    assert np.mean((low <= p) & (p <= high)) >= 0.95 - 3 * np.sqrt(0.95 * 0.05 / n)
    assert abs(np.mean(p_hat) - expected_p_hat(p, 60)) < 4 * np.std(p_hat) / np.sqrt(n)
    columns = result.columns()
    np.testing.assert_array_equal(columns["trials"], result.steps)
    assert set(np.unique(columns["failures"])) <= {0, 1}
    robust = columns["robust"] == 1
    np.testing.assert_allclose(columns["p_high"][robust], robust_upper_bound(60))


def test_old_files_without_estimate_columns_still_load(tmp_path):
    path = tmp_path / "old.csv"
    path.write_text(
        "index,label,clean_pred,first_failure,fail_pred,steps,robust,max_steps\n"
        "0,1,1,-1,-1,5,1,5\n1,2,2,3,4,3,0,5\n2,3,1,0,-1,0,0,5\n"
    )
    loaded = results.load_rpr(path)
    np.testing.assert_array_equal(loaded.trials, [5, 3, 0])
    np.testing.assert_array_equal(loaded.failures, [0, 1, 0])
    p_hat, _, _ = loaded.flip_probability()
    np.testing.assert_allclose(p_hat[:2], [0.0, 1 / 3])
