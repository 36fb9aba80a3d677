"""Figures from logged results only: ``robustlab-plot rpr`` (the paper's figures from one run) and
``robustlab-plot sweep`` (robust ratio curves over a Hydra multirun). A band over seeds means the
same in every figure: the 95% t CI of the mean (``bands``). Nothing here trains."""

from robustlab.plotting.bands import seed_band
from robustlab.plotting.rpr import curve_series, per_class, plot_run
from robustlab.plotting.sweep import collect_runs, plot_sweep

__all__ = ["collect_runs", "curve_series", "per_class", "plot_run", "plot_sweep", "seed_band"]
