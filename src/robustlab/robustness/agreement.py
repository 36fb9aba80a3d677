"""Per-point agreement of two RPR runs on the same points: is robustness a property of the point?

Three measures, each on the same test points in the same order:
  * Cohen's kappa of the robust labels (sklearn): agreement beyond what the two robust ratios give by chance;
  * Spearman's rho of the retries survived (``steps``: 0 clean-misclassified, MAX_STEPS never fooled;
    the same ranking as -p̂ of ``robustness.estimate``, with clean-misclassified points most fragile);
  * the Jaccard overlap of the least robust points: those whose steps are at most the value at rank
    ceil(fraction * n). Ties at that value are all in, so a set can hold more than the fraction
    (many points fail at the first retry): the sizes are logged beside it.

The class-only baseline knows each point's class and the robust rate of that class under another
model A, nothing else. Against model B it scores (closed form, no sampling for kappa): the expected
kappa of labels drawn robust with probability r_c (its class's rate), the Spearman rho of r_c against
B's steps, and the mean Jaccard overlap of the least robust points when ranked by r_c with ties broken
by a seeded random order. Cross-model agreement above that baseline is agreement about *which points*
of a class are robust, not only about which classes are.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats
from sklearn.metrics import cohen_kappa_score

from robustlab.errors import require


def kappa(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's kappa of two 0/1 label vectors; NaN when both are constant (kappa is undefined)."""
    a, b = np.asarray(a, dtype=int), np.asarray(b, dtype=int)
    require(len(a) == len(b) and len(a) > 0, f"kappa needs two label vectors of one length, got {len(a)} and {len(b)}")
    if len(np.unique(np.concatenate([a, b]))) < 2:
        return float("nan")
    return float(cohen_kappa_score(a, b))


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho (ties by average rank); NaN when either side is constant."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(stats.spearmanr(a, b).statistic)


def least_robust(steps: np.ndarray, fraction: float = 0.1) -> np.ndarray:
    """Mask of the points whose steps are at most the ceil(fraction * n)-th smallest (ties included)."""
    require(0 < fraction <= 1, f"the least-robust fraction must be in (0, 1], got {fraction}")
    steps = np.asarray(steps)
    cut = np.sort(steps)[max(1, math.ceil(fraction * len(steps))) - 1]
    return steps <= cut


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    union = int((a | b).sum())
    return float((a & b).sum() / union) if union else float("nan")


def pair(robust_a, steps_a, robust_b, steps_b, fraction: float = 0.1) -> dict:
    """The three measures between two runs on the same points."""
    low_a, low_b = least_robust(steps_a, fraction), least_robust(steps_b, fraction)
    return {
        "kappa": kappa(robust_a, robust_b),
        "spearman": spearman(steps_a, steps_b),
        "jaccard": jaccard(low_a, low_b),
        "least_a": int(low_a.sum()),
        "least_b": int(low_b.sum()),
    }


def class_rates(robust: np.ndarray, classes: np.ndarray, num_classes: int) -> np.ndarray:
    """Robust rate of each class (NaN for a class with no point)."""
    counts = np.bincount(classes, minlength=num_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.bincount(classes, weights=np.asarray(robust, dtype=float), minlength=num_classes) / counts


def expected_kappa(rate: np.ndarray, labels: np.ndarray) -> float:
    """Kappa between ``labels`` and labels drawn robust independently with probability ``rate`` per point
    (the ratio of expected agreements, exact as the number of points grows)."""
    labels = np.asarray(labels, dtype=float)
    observed = np.mean(labels * rate + (1 - labels) * (1 - rate))
    chance = rate.mean() * labels.mean() + (1 - rate.mean()) * (1 - labels.mean())
    return float((observed - chance) / (1 - chance)) if chance < 1 else float("nan")


def class_only(
    robust_a, classes, robust_b, steps_b, num_classes: int, fraction: float = 0.1, draws: int = 20, seed: int = 0
) -> dict:
    """The class-only baseline: A's class robust rates as the only knowledge, scored against run B."""
    classes = np.asarray(classes, dtype=int)
    rate = class_rates(robust_a, classes, num_classes)[classes]
    rate = np.nan_to_num(rate, nan=float(np.mean(robust_a)))
    low_b = least_robust(steps_b, fraction)
    rng = np.random.default_rng(seed)
    overlaps = [jaccard(least_robust(rate + 1e-9 * rng.random(len(rate)), fraction), low_b) for _ in range(draws)]
    return {
        "kappa": expected_kappa(rate, robust_b),
        "spearman": spearman(rate, steps_b),
        "jaccard": float(np.mean(overlaps)),
        "least_a": int(math.ceil(fraction * len(rate))),
        "least_b": int(low_b.sum()),
    }
