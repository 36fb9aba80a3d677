"""Figures from logged results only: ``robustlab-plot rpr`` (the paper's figures from one run) and
``robustlab-plot sweep`` (robust ratio curves over a Hydra multirun). Nothing here trains."""

from robustlab.plotting.rpr import curve_series, per_class, plot_run
from robustlab.plotting.sweep import collect_runs, plot_sweep, seed_band

__all__ = ["collect_runs", "curve_series", "per_class", "plot_run", "plot_sweep", "seed_band"]
