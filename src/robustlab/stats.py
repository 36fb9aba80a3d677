"""Intervals of the report: a mean over seeds and a proportion over points.

- ``t_mean``: the mean over seeds with its Student's t interval (n - 1 degrees of freedom). This is
  what every claims table, figure band and report table uses. With 3 seeds it is about 2.5 times as
  wide as the values' spread around the mean, as it must be for 95 % coverage.
- ``clopper_pearson``: the exact binomial interval of one run's ratio over its points (robust points
  among all measured ones), from scipy's binomtest.
- ``bootstrap_mean``: the percentile bootstrap the project used before. Kept for comparison only:
  with 3 values its interval is [min, max], far too narrow for 95 %. Its resampling RNG has a fixed
  seed, so it is deterministic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from robustlab.errors import require

RESAMPLES = 10_000
LEVEL = 0.95
SEED = 0


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    n: int

    @property
    def degenerate(self) -> bool:
        """One seed: the interval is the point itself and says nothing about the spread."""
        return self.n == 1

    def contains(self, value: float) -> bool:
        # Resampled means of equal values can differ from them in the last bit.
        tol = 1e-12 * max(1.0, abs(value))
        return self.low - tol <= value <= self.high + tol

    def __str__(self) -> str:
        text = f"[{self.low:.4f}, {self.high:.4f}]"
        return f"{text} (n=1)" if self.degenerate else text


def bootstrap_mean(values, resamples: int = RESAMPLES, level: float = LEVEL, seed: int = SEED) -> Interval:
    """Percentile bootstrap of the mean: resample the values with replacement, take the mean of each
    resample, and report the (1 - level)/2 and (1 + level)/2 percentiles of those means."""
    x = np.asarray(values, dtype=float).ravel()
    require(x.size >= 1, "bootstrap needs at least one value")
    require(bool(np.isfinite(x).all()), f"bootstrap needs finite values, got {x.tolist()}")
    require(isinstance(resamples, int) and resamples >= 1, f"resamples must be an integer >= 1, got {resamples}")
    require(0 < level < 1, f"level must lie in (0, 1), got {level}")
    mean = float(x.mean())
    if x.size == 1:
        return Interval(mean, mean, mean, 1)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(resamples, x.size))].mean(axis=1)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return Interval(mean, float(low), float(high), int(x.size))


def empty_interval() -> Interval:
    """No finite value: every field NaN, n = 0 (shown as not run / undefined, never as a number)."""
    return Interval(math.nan, math.nan, math.nan, 0)


def t_mean(values, level: float = LEVEL) -> Interval:
    """Mean of ``values`` (one per seed) with its Student's t interval, n - 1 degrees of freedom.

    One value: the point itself, flagged ``degenerate`` (a t interval needs n >= 2). Equal values: the point
    (zero spread).
    """
    x = np.asarray(values, dtype=float).ravel()
    require(x.size >= 1, "a t interval needs at least one value")
    require(bool(np.isfinite(x).all()), f"a t interval needs finite values, got {x.tolist()}")
    require(0 < level < 1, f"level must lie in (0, 1), got {level}")
    mean = float(x.mean())
    if x.size == 1:
        return Interval(mean, mean, mean, 1)
    half = float(sps.t.ppf((1 + level) / 2, df=x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return Interval(mean, mean - half, mean + half, int(x.size))


def clopper_pearson(successes: int, trials: int, level: float = LEVEL) -> Interval:
    """``successes / trials`` with its exact (Clopper-Pearson) binomial interval; ``n`` is the trials."""
    require(isinstance(trials, (int, np.integer)) and trials >= 1, f"a proportion needs trials >= 1, got {trials}")
    require(0 <= successes <= trials, f"successes must lie in 0..{trials}, got {successes}")
    ci = sps.binomtest(int(successes), int(trials)).proportion_ci(confidence_level=level, method="exact")
    return Interval(successes / trials, float(ci.low), float(ci.high), int(trials))


def paired_difference(a, b, level: float = LEVEL) -> Interval:
    """Mean over seeds of ``a[i] - b[i]`` (the same seed's two models) with its t interval (n - 1 df).

    Pairing by seed removes what the two models share within a seed (the same M, data split and test points).
    """
    x, y = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    require(x.size == y.size, f"paired values need equal counts, got {x.size} and {y.size}")
    return t_mean(x - y, level)
