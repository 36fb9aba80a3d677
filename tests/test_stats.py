"""Honest intervals: Student's t over seeds and Clopper-Pearson over points, checked against scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from robustlab.errors import RobustlabError
from robustlab.stats import bootstrap_mean, clopper_pearson, paired_difference, t_mean


def test_t_interval_matches_scipy_t_with_n_minus_1_df():
    values = np.array([0.91, 0.87, 0.95, 0.89, 0.93])
    low, high = sps.t.interval(0.95, df=len(values) - 1, loc=values.mean(), scale=sps.sem(values))
    interval = t_mean(values)
    assert (interval.low, interval.high) == pytest.approx((low, high), abs=1e-12)
    assert interval.mean == pytest.approx(values.mean()) and interval.n == 5


def test_three_values_give_an_interval_wider_than_their_range():
    values = [0.30, 0.34, 0.31]
    interval = t_mean(values)
    assert interval.low < min(values) and interval.high > max(values)
    # the percentile bootstrap it replaces is exactly [min, max] for three values
    boot = bootstrap_mean(values)
    assert (boot.low, boot.high) == pytest.approx((min(values), max(values)))


def test_t_interval_of_one_value_is_degenerate_and_of_equal_values_the_point():
    one = t_mean([0.7])
    assert (one.low, one.high, one.n) == (0.7, 0.7, 1) and one.degenerate
    same = t_mean([0.25, 0.25, 0.25])
    assert (same.low, same.high) == (0.25, 0.25) and not same.degenerate


@pytest.mark.parametrize("values, match", [([], "at least one value"), ([0.1, float("nan")], "finite values")])
def test_t_interval_bad_input_is_one_line(values, match):
    with pytest.raises(RobustlabError, match=match):
        t_mean(values)


@pytest.mark.parametrize("k, n", [(0, 10), (3, 10), (10, 10), (296, 1000), (1, 1)])
def test_clopper_pearson_matches_scipy_binomtest(k, n):
    expected = sps.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    interval = clopper_pearson(k, n)
    assert (interval.low, interval.high) == pytest.approx((expected.low, expected.high), abs=1e-12)
    assert interval.mean == k / n and interval.n == n
    # the same from beta quantiles, the textbook form
    low = 0.0 if k == 0 else sps.beta.ppf(0.025, k, n - k + 1)
    high = 1.0 if k == n else sps.beta.ppf(0.975, k + 1, n - k)
    assert (interval.low, interval.high) == pytest.approx((low, high), abs=1e-9)


@pytest.mark.parametrize(
    "k, n, match", [(1, 0, "trials >= 1"), (5, 4, "successes must lie in 0..4"), (-1, 4, "successes")]
)
def test_clopper_pearson_bad_input_is_one_line(k, n, match):
    with pytest.raises(RobustlabError, match=match):
        clopper_pearson(k, n)


def test_paired_difference_is_the_t_interval_of_per_seed_differences():
    a, b = [0.52, 0.49, 0.55], [0.40, 0.45, 0.41]
    diff = paired_difference(a, b)
    expected = t_mean(np.subtract(a, b))
    assert (diff.mean, diff.low, diff.high, diff.n) == (expected.mean, expected.low, expected.high, 3)
    assert math.isclose(diff.mean, np.mean(a) - np.mean(b))
    with pytest.raises(RobustlabError, match="equal counts"):
        paired_difference([0.1, 0.2], [0.1])
