"""Mean over seeds with a 95% percentile-bootstrap confidence interval.

The resampling RNG has a fixed seed, so a table regenerated from the same runs shows the same
interval to the last digit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

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
