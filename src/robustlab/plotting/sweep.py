"""Robust ratio of M vs MAX_STEPS over a Hydra multirun: one line per perturbation setting, a band
over seeds (95% t CI of the mean, see ``bands``), a tidy CSV with one row per finished run
and a CSV of the plotted bands.

A setting is identified by the run's ``perturbation`` description, so runs that differ only in
``rpr.max_steps`` or ``seed`` land on the same line. Job folders without results are named and
left out; they are never averaged in.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D

from robustlab import results
from robustlab.errors import require
from robustlab.plotting.bands import band_patch, seed_band, seeds_text
from robustlab.plotting.rpr import curve_series, finished, job_dirs, notice, read_metrics, rpr_file
from robustlab.plotting.style import MODEL_NAMES, PALETTE, draw_curve, finish, footer, ratio_axes, save_figure, themed
from robustlab.robustness.rpr import RPRResult
from robustlab.runs.layout import metrics_path

BAND_COLUMNS = ("perturbation", "max_steps", "seeds", "mean", "ci_low", "ci_high")
CSV_COLUMNS = (
    "scheme",
    "perturbation",
    "seed",
    "max_steps",
    "robust_ratio",
    "robust_ratio_of_correct",
    "test_accuracy",
    "run_dir",
)


@dataclass
class SweepRun:
    path: Path
    metrics: dict
    rpr: RPRResult  # M on the test points

    @property
    def setting(self) -> str:
        return self.metrics["perturbation"]

    def row(self) -> dict:
        m, test = self.metrics, self.metrics["M"]["test"]
        return {
            "scheme": m.get("scheme") or m["perturbation"].split("(")[0],  # runs before `scheme` was logged
            "perturbation": m["perturbation"],
            "seed": m["seed"],
            "max_steps": m["max_steps"],
            "robust_ratio": test["robust_ratio"],
            "robust_ratio_of_correct": test["robust_ratio_of_correct"],
            "test_accuracy": m["M"]["test_accuracy"],
            "run_dir": str(self.path),
        }


def load_job(job: Path) -> SweepRun | None:
    """A finished job's results, or None (with a notice naming the job) when it has none."""
    if not finished(job):  # a killed or failed job never counts (robustlab.runs.jobs); named on stderr
        return None
    for needed in (results.METRICS, rpr_file("M_test")):
        if not (job / needed).is_file():
            notice(f"skipped job {job.name} ({job}): no {needed} (failed or unfinished run)")
            return None
    return SweepRun(job, read_metrics(job), results.load_rpr(job / rpr_file("M_test")))


def collect_runs(multirun: str | Path) -> list[SweepRun]:
    multirun = Path(multirun)
    require(multirun.is_dir(), f"multirun directory not found: {multirun}")
    require(
        not metrics_path(multirun).is_file(),
        f"{multirun} is a single run directory; plot it with `robustlab-plot rpr --run {multirun}`",
    )
    jobs = job_dirs(multirun)
    runs = [run for run in map(load_job, jobs) if run is not None]
    require(len(runs) > 0, f"no finished runs in {multirun} ({len(jobs)} job folders, none with {results.METRICS})")
    return sorted(runs, key=lambda r: (r.setting, r.metrics["max_steps"], r.metrics["seed"]))


def setting_bands(runs: list[SweepRun]) -> dict[str, dict[str, np.ndarray]]:
    settings = sorted({r.setting for r in runs})
    return {
        s: seed_band([(r.metrics["seed"], curve_series(r.rpr)["all"]) for r in runs if r.setting == s])
        for s in settings
    }


def legend_extras() -> list:
    return [
        band_patch(),
        Line2D([], [], ls="", marker="o", color="0.3", label="one run's value at its own MAX_STEPS"),
    ]


@themed
def draw_sweep(runs: list[SweepRun], bands: dict[str, dict[str, np.ndarray]], out_dir: Path, name: str) -> list[Path]:
    fig, ax = plt.subplots(figsize=(7.0, 4.6))
    # the palette repeated: longer than the bands
    for color, (setting, band) in zip(PALETTE * 10, bands.items(), strict=False):
        ends = [r for r in runs if r.setting == setting]
        seeds = len({r.metrics["seed"] for r in ends})
        draw_curve(
            ax,
            band["steps"],
            band["mean"],
            f"{setting} ({seeds_text(seeds)})",
            color,
            band=(band["low"], band["high"]),
            end_label=None,
        )
        ax.plot(
            [r.metrics["max_steps"] for r in ends],
            [r.metrics["M"]["test"]["robust_ratio"] for r in ends],
            "o",
            color=color,
            mec="white",
            ms=6,
            zorder=3,
        )
    ratio_axes(ax)
    handles, _ = ax.get_legend_handles_labels()
    # Below the axes: perturbation descriptions are long and would hide curves inside the axes.
    ax.legend(
        handles=handles + legend_extras(),
        loc="upper center",
        bbox_to_anchor=(0.5, 0),
        borderaxespad=4.5,
        fontsize=8,
        frameon=False,
    )
    ax.set_title("robust ratio over all test points", fontsize=8)
    finish(
        fig,
        f"Robust ratio of {MODEL_NAMES['M']} on the test set vs MAX_STEPS, per perturbation setting",
        footer([r.metrics for r in runs]),
    )
    return save_figure(fig, out_dir, name)


def write_csv(runs: list[SweepRun], path: Path) -> Path:
    rows = [r.row() for r in runs]
    return results.write_table(path, {c: [row[c] for row in rows] for c in CSV_COLUMNS})


def write_band_csv(bands: dict[str, dict[str, np.ndarray]], path: Path) -> Path:
    """The plotted lines and bands, one row per setting and MAX_STEPS, so the figure's numbers can be quoted."""
    keys = {"max_steps": "steps", "seeds": "seeds", "mean": "mean", "ci_low": "low", "ci_high": "high"}
    columns = {"perturbation": np.concatenate([[setting] * len(b["steps"]) for setting, b in bands.items()])}
    columns |= {name: np.concatenate([b[key] for b in bands.values()]) for name, key in keys.items()}
    return results.write_table(path, {c: columns[c] for c in BAND_COLUMNS})


def plot_sweep(multirun: str | Path, out_dir: str | Path, name: str = "sweep_robust_ratio") -> list[Path]:
    """The sweep figure (PNG, PDF), its runs (``name``.csv) and its bands (``name``_band.csv) into
    ``out_dir``; returns the written paths."""
    runs, out_dir = collect_runs(multirun), Path(out_dir)
    bands = setting_bands(runs)
    return draw_sweep(runs, bands, out_dir, name) + [
        write_csv(runs, out_dir / f"{name}.csv"),
        write_band_csv(bands, out_dir / f"{name}_band.csv"),
    ]
