"""Robust ratio of M vs MAX_STEPS over a Hydra multirun: one line per perturbation setting, a band
over seeds, and a tidy CSV with one row per finished run.

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
from matplotlib.patches import Patch

from robustlab import results
from robustlab.errors import require
from robustlab.plotting.rpr import curve_series, notice, read_metrics, rpr_file
from robustlab.plotting.style import MODEL_NAMES, PALETTE, draw_curve, finish, footer, ratio_axes, save_figure, themed
from robustlab.robustness.rpr import RPRResult

CSV_COLUMNS = ("scheme", "perturbation", "seed", "max_steps", "robust_ratio", "robust_ratio_of_correct", "test_accuracy", "run_dir")


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
            "perturbation": m["perturbation"], "seed": m["seed"], "max_steps": m["max_steps"],
            "robust_ratio": test["robust_ratio"], "robust_ratio_of_correct": test["robust_ratio_of_correct"],
            "test_accuracy": m["M"]["test_accuracy"], "run_dir": str(self.path),
        }


def job_dirs(multirun: Path) -> list[Path]:
    """Hydra's job folders (0, 1, ..., 10 in numeric order); hidden ones such as .hydra are not jobs."""
    jobs = [p for p in multirun.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return sorted(jobs, key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else 0, p.name))


def load_job(job: Path) -> SweepRun | None:
    """A finished job's results, or None (with a notice naming the job) when it has none."""
    for needed in (results.METRICS, rpr_file("M_test")):
        if not (job / needed).is_file():
            notice(f"skipped job {job.name} ({job}): no {needed} (failed or unfinished run)")
            return None
    return SweepRun(job, read_metrics(job), results.load_rpr(job / rpr_file("M_test")))


def collect_runs(multirun: str | Path) -> list[SweepRun]:
    multirun = Path(multirun)
    require(multirun.is_dir(), f"multirun directory not found: {multirun}")
    require(not (multirun / results.METRICS).is_file(),
            f"{multirun} is a single run directory; plot it with `robustlab-plot rpr --run {multirun}`")
    jobs = job_dirs(multirun)
    runs = [run for run in map(load_job, jobs) if run is not None]
    require(len(runs) > 0, f"no finished runs in {multirun} ({len(jobs)} job folders, none with {results.METRICS})")
    return sorted(runs, key=lambda r: (r.setting, r.metrics["max_steps"], r.metrics["seed"]))


def seed_band(curves: list[tuple[int, np.ndarray]]) -> dict[str, np.ndarray]:
    """Mean and min-max over seeds of (seed, robust ratio at MAX_STEPS 0..len-1) curves.

    Curves may have different lengths (runs with different MAX_STEPS). At each step a seed counts
    once, as the mean of its runs that reach that step, so a seed measured at two MAX_STEPS does
    not weigh double.
    """
    length = max(len(c) for _, c in curves)
    padded = lambda c: np.pad(np.asarray(c, float), (0, length - len(c)), constant_values=np.nan)  # noqa: E731
    seeds = sorted({s for s, _ in curves})
    per_seed = np.array([np.nanmean([padded(c) for s, c in curves if s == seed], axis=0) for seed in seeds])
    return {
        "steps": np.arange(length),
        "mean": np.nanmean(per_seed, axis=0),
        "low": np.nanmin(per_seed, axis=0),
        "high": np.nanmax(per_seed, axis=0),
        "seeds": np.sum(~np.isnan(per_seed), axis=0),
    }


def setting_bands(runs: list[SweepRun]) -> dict[str, dict[str, np.ndarray]]:
    settings = sorted({r.setting for r in runs})
    return {s: seed_band([(r.metrics["seed"], curve_series(r.rpr)["all"]) for r in runs if r.setting == s]) for s in settings}


def legend_extras() -> list:
    return [
        Patch(color="0.6", alpha=0.35, label="band: min-max over seeds (line: mean)"),
        Line2D([], [], ls="", marker="o", color="0.3", label="one run's value at its own MAX_STEPS"),
    ]


@themed
def draw_sweep(runs: list[SweepRun], out_dir: Path, name: str) -> list[Path]:
    fig, ax = plt.subplots(figsize=(7.0, 4.6))
    for color, (setting, band) in zip(PALETTE * 10, setting_bands(runs).items()):
        ends = [r for r in runs if r.setting == setting]
        seeds = len({r.metrics["seed"] for r in ends})
        draw_curve(ax, band["steps"], band["mean"], f"{setting} ({seeds} seed{'s' * (seeds != 1)})",
                   color, band=(band["low"], band["high"]), end_label=None)
        ax.plot([r.metrics["max_steps"] for r in ends], [r.metrics["M"]["test"]["robust_ratio"] for r in ends],
                "o", color=color, mec="white", ms=6, zorder=3)
    ratio_axes(ax)
    handles, _ = ax.get_legend_handles_labels()
    # Below the axes: perturbation descriptions are long and would hide curves inside the axes.
    ax.legend(handles=handles + legend_extras(), loc="upper center", bbox_to_anchor=(0.5, 0), borderaxespad=4.5, fontsize=8, frameon=False)
    ax.set_title("robust ratio over all test points", fontsize=8)
    finish(fig, f"Robust ratio of {MODEL_NAMES['M']} on the test set vs MAX_STEPS, per perturbation setting", footer([r.metrics for r in runs]))
    return save_figure(fig, out_dir, name)


def write_csv(runs: list[SweepRun], path: Path) -> Path:
    rows = [r.row() for r in runs]
    return results.write_table(path, {c: [row[c] for row in rows] for c in CSV_COLUMNS})


def plot_sweep(multirun: str | Path, out_dir: str | Path, name: str = "sweep_robust_ratio") -> list[Path]:
    """The sweep figure (PNG, PDF) and its CSV into ``out_dir``; returns the written paths."""
    runs, out_dir = collect_runs(multirun), Path(out_dir)
    return draw_sweep(runs, out_dir, name) + [write_csv(runs, out_dir / f"{name}.csv")]
