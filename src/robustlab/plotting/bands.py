"""What a band means in every figure: the mean over seeds and its 95% Student's t confidence
interval with n - 1 degrees of freedom (``robustlab.stats.t_mean``), so a shaded band or an error bar in the RPR,
sweep and linear figures says the same thing.

A point reached by fewer than two seeds has no interval (low and high are NaN): one seed says
nothing about the spread, and a zero-width band would pretend it does.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Sequence

import numpy as np
from matplotlib.patches import Patch

from robustlab import stats
from robustlab.plotting.style import distinct

CI_NAME = "95% t CI"
BAND_MEANING = f"{CI_NAME} of the mean over seeds"
# Bands of shares are drawn within [0, 1] (plotting.style.share_band); the *_band.csv tables keep the
# interval as computed.
SHARE_BAND = f"{BAND_MEANING}, drawn within [0, 1]"


def interval(values: Sequence[float]) -> tuple[float, float, float]:
    """(mean, low, high) of one quantity over seeds; NaN values (a seed without it) are left out."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return np.nan, np.nan, np.nan
    if len(x) == 1:
        return float(x[0]), np.nan, np.nan
    ci = stats.t_mean(x)
    return ci.mean, ci.low, ci.high


def per_seed(curves: Sequence[tuple[Hashable, Sequence[float]]]) -> tuple[list, np.ndarray]:
    """Seeds and a (seeds, points) matrix from (seed, values) curves, NaN past a curve's end.

    Curves may differ in length (runs with different MAX_STEPS). At each point a seed counts
    once, as the mean of its curves that reach that point, so a seed measured twice does not
    weigh double.
    """
    length = max(len(c) for _, c in curves)
    padded = lambda c: np.pad(np.asarray(c, float), (0, length - len(c)), constant_values=np.nan)  # noqa: E731
    seeds = distinct(s for s, _ in curves)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # 'mean of empty slice' past a short curve's end
        matrix = np.array([np.nanmean([padded(c) for s, c in curves if s == seed], axis=0) for seed in seeds])
    return seeds, matrix


def seed_band(curves: Sequence[tuple[Hashable, Sequence[float]]]) -> dict[str, np.ndarray]:
    """Mean and 95% t CI over seeds, point by point, of (seed, values) curves.

    Returns ``steps`` (0..length-1), ``mean``, ``low``, ``high`` and ``seeds`` (how many seeds
    reach each point).
    """
    _, matrix = per_seed(curves)
    mean, low, high = np.array([interval(column) for column in matrix.T]).T
    return {
        "steps": np.arange(matrix.shape[1]),
        "mean": mean,
        "low": low,
        "high": high,
        "seeds": np.sum(~np.isnan(matrix), axis=0),
    }


def band_patch(color="0.6") -> Patch:
    """The legend entry that says what the shading means."""
    return Patch(color=color, alpha=0.35, label=f"band: {SHARE_BAND} (line: mean)")


def seeds_text(n: int) -> str:
    return f"{n} seed{'s' * (n != 1)}"


def with_ci(mean: float, low: float, high: float, digits: int = 3) -> str:
    """``0.900 [0.897, 0.905]``, or the mean alone where there is no interval (one seed)."""
    if np.isnan(low) or np.isnan(high):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"
