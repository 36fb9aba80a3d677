"""Per-point flip probability p of an RPR run: the estimate p̂ and its exact 95 % interval.

RPR draws perturbations of a point until the first one the model misclassifies, or MAX_STEPS.
Each retry is a Bernoulli(p) trial (p: the probability that one draw of the scheme flips the
point), so what one run observes per point is ``trials`` retries and ``failures`` in {0, 1}:
trials = k and failures = 1 when retry k was the first to fail, trials = MAX_STEPS and failures = 0
when none did. The count is a geometric sample censored at MAX_STEPS.

Estimator. The likelihood of that observation is (1 - p)^(trials - failures) p^failures, the same
function of p as a binomial count of ``failures`` in ``trials`` fixed trials (the stopping rule
does not enter the likelihood), so the maximum-likelihood estimate is p̂ = failures / trials: 1/k
after a failure at retry k, 0 without one. It is biased upwards (E[1/K] > p for a geometric K:
-p ln p / (1 - p) without censoring). No estimator does much better from one failure: the only
unbiased one under stopping at the first failure (Haldane's (r - 1) / (n - 1) with r = 1) is 0
for every point. So p̂ is a ranking of points by fragility, and the interval below is what a
single point's number means. tests/test_estimate.py measures the bias by simulation against the
exact expectation sum_k p (1 - p)^(k - 1) / k.

Interval. The Clopper–Pearson interval of (failures, trials) (scipy.stats.beta quantiles). Its
lower end after a failure at retry k, 1 - 0.975^(1/k), is exactly the geometric distribution's;
its upper end Beta(0.975; 2, k - 1) lies above the geometric one, 1 - 0.025^(1/(k - 1)), so under
stopping at the first failure it covers p at least 95 % of the time (conservative, checked by
simulation in the tests). A point with no failure in n retries gets [0, 1 - 0.025^(1/n)]: "robust at
MAX_STEPS 250" certifies, at 97.5 % one-sided confidence, p < 1 - 0.025^(1/250) = 0.0146 for that
point under that scheme, and nothing about p below that.

Clean-misclassified points ran no retry: trials = failures = 0, p̂ = NaN and the interval [0, 1].
"""

from __future__ import annotations

import numpy as np
from scipy import stats

LEVEL = 0.95


def flip_estimate(
    failures: np.ndarray, trials: np.ndarray, level: float = LEVEL
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(p̂, Clopper–Pearson low, high) per point for ``failures`` flips in ``trials`` retries."""
    failures, trials = np.asarray(failures, dtype=np.float64), np.asarray(trials, dtype=np.float64)
    alpha = 1.0 - level
    with np.errstate(invalid="ignore", divide="ignore"):
        p_hat = np.where(trials > 0, failures / trials, np.nan)
        # Beta quantiles with a zero parameter are the interval's fixed ends (0 without failure, 1 without survival).
        low = np.where(failures > 0, stats.beta.ppf(alpha / 2, failures, trials - failures + 1), 0.0)
        high = np.where(failures < trials, stats.beta.ppf(1 - alpha / 2, failures + 1, trials - failures), 1.0)
    return p_hat, np.nan_to_num(low, nan=0.0), np.nan_to_num(high, nan=1.0)


def robust_upper_bound(max_steps: int, level: float = LEVEL) -> float:
    """The interval's upper end for a point no retry of ``max_steps`` fooled: 1 - (alpha/2)^(1/n)."""
    return float(1.0 - ((1.0 - level) / 2) ** (1.0 / max_steps))


def expected_p_hat(p: float, max_steps: int) -> float:
    """E[p̂] under stopping at the first failure or ``max_steps`` (a censored point contributes 0)."""
    k = np.arange(1, max_steps + 1)
    return float(np.sum(p * (1 - p) ** (k - 1) / k))
