"""The paper's Figures 1-5 (plus an M vs M_R overlay) from one run directory's logged results, or
from a multirun folder of seeds of one setting.

Only reads what ``robustlab`` wrote (metrics.json, rpr_*.csv, examples_M_test.npz); never trains.
With several seeds, Figures 3, 5 and the overlay draw the mean curve with a band and Figure 4 the
mean bar with error bars (both the 95% t CI of the mean, see ``bands``); Figures 1 and 2
show the lowest seed's images. Job folders without metrics.json are named and never averaged in.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from robustlab import results
from robustlab.errors import require
from robustlab.plotting.bands import BAND_MEANING, CI_NAME, band_patch, seed_band, seeds_text, with_ci
from robustlab.plotting.style import (
    MODEL_COLORS,
    MODEL_NAMES,
    PALETTE,
    distinct,
    draw_curve,
    finish,
    footer,
    joined,
    ratio_axes,
    save_figure,
    themed,
)
from robustlab.robustness.rpr import RPRResult
from robustlab.runs import jobs, layout
from robustlab.runs.discover import job_folders
from robustlab.runs.layout import metrics_path, rpr_file  # noqa: F401  (rpr_file: imported from here by other plots)
from robustlab.runs.schema import read_metrics as read_run_metrics  # older schema versions get today's key names

EXAMPLES = layout.RPR_EXAMPLES
PAIRS = 4  # first-failure pairs in Figure 2
SUMMARY_CSV = layout.RPR_SUMMARY  # written only for several seeds

# Readable names where the integer label says little; MNIST digits are their own names.
CLASS_NAMES = {
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
    "fashion_mnist": ("T-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"),
}


def notice(message: str) -> None:
    print(message, file=sys.stderr)


@dataclass
class Run:
    """One run directory: its metrics and (loaded on first use) its per-datapoint RPR results."""

    path: Path
    metrics: dict
    _rpr: dict = field(default_factory=dict, repr=False)

    def has(self, filename: str) -> bool:
        return (self.path / filename).is_file()

    def rpr(self, name: str) -> RPRResult:
        if name not in self._rpr:
            self._rpr[name] = results.load_rpr(self.path / rpr_file(name))
        return self._rpr[name]

    @property
    def footer(self) -> str:
        return footer(self.metrics)

    def label(self, y: int) -> str:
        names = CLASS_NAMES.get(self.metrics.get("data", {}).get("name"))
        return names[y] if names and 0 <= y < len(names) else str(y)


def read_metrics(path: Path) -> dict:
    """A run's metrics.json, checked to hold what the figures read (an RPR run of M)."""
    metrics = read_run_metrics(path)
    missing = [key for key in ("profile", "data", "perturbation", "max_steps", "M") if key not in metrics]
    require(
        not missing,
        f"{metrics_path(path)} lacks {', '.join(missing)} (pipeline "
        f"'{metrics.get('pipeline', '?')}'); robustlab-plot draws runs of the rpr_retrain pipeline",
    )
    return metrics


def job_dirs(multirun: Path) -> list[Path]:
    """Hydra's job folders in natural order (0, 1, ..., 10; seed_2 before seed_10); hidden ones such
    as .hydra are not jobs."""
    return job_folders(multirun)


def finished(job: Path) -> bool:
    """Whether a job is finished (robustlab.runs.jobs: a killed or failed one never counts, even with a
    metrics.json); one that is not is named on stderr."""
    if jobs.finished(job):
        return True
    notice(f"skipped job {job.name} ({job}): no {results.METRICS} (failed or unfinished run)")
    return False


# What seeds of one setting share; averaging across any of these would mix different experiments.
SETTING = {
    "profile": lambda m: m["profile"],
    "data": lambda m: f"{m['data']['name']}, {m['data'].get('train_images', '?')} train images",
    "perturbation": lambda m: m["perturbation"],
    "MAX_STEPS": lambda m: m["max_steps"],
}


def load_runs(path: str | Path) -> list[Run]:
    """A run directory as one run, or a multirun folder of seeds as its finished jobs, lowest seed first."""
    path = Path(path)
    require(path.is_dir(), f"run directory not found: {path}")
    if metrics_path(path).is_file():
        return [Run(path, read_metrics(path))]
    folders = job_dirs(path)
    done = [Run(job, read_metrics(job)) for job in folders if finished(job)]
    require(
        len(done) > 0,
        f"{path} is not a run directory (no {results.METRICS}) nor a multirun folder with a finished "
        f"job ({len(folders)} job folders, none with {results.METRICS}); pass a folder written by `robustlab`",
    )
    for what, value in SETTING.items():
        values = [value(r.metrics) for r in done]
        require(
            len(distinct(values)) == 1,
            f"the runs in {path} differ in {what} ({joined(values)}); robustlab-plot rpr "
            "averages seeds of one setting, `robustlab-plot sweep` compares settings",
        )
    order = distinct(r.metrics["seed"] for r in done)
    return sorted(done, key=lambda r: order.index(r.metrics["seed"]))


def seeds_of(runs: list[Run]) -> list:
    return distinct(r.metrics["seed"] for r in runs)


def over_seeds(runs: list[Run], value: Callable[[Run], float]) -> tuple[float, float, float]:
    """(mean, low, high) of a per-run number over seeds (see ``bands``); NaN values are left out."""
    band = seed_band([(r.metrics["seed"], [value(r)]) for r in runs])
    return band["mean"][0], band["low"][0], band["high"][0]


def runs_footer(runs: list[Run]) -> str:
    return footer([r.metrics for r in runs])


def curve_series(result: RPRResult) -> dict[str, np.ndarray]:
    """The plotted series of Figures 3 and 5: robust ratio over all and over correct points per MAX_STEPS."""
    steps, over_all = result.curve(over="all")
    _, over_correct = result.curve(over="correct")
    return {"steps": steps, "all": over_all, "correct": over_correct}


def per_class(result: RPRResult, num_classes: int) -> dict[str, np.ndarray]:
    """Figure 4's data: robust points per class, points per class and the robust share of each class."""
    robust = np.bincount(result.label[result.robust], minlength=num_classes)
    total = np.bincount(result.label, minlength=num_classes)
    share = np.where(total > 0, robust / np.maximum(total, 1), np.nan)
    return {"robust": robust, "total": total, "share": share}


def num_classes(run: Run, result: RPRResult) -> int:
    logged = len(run.metrics.get("M", {}).get("test", {}).get("robust_per_class", []))
    return max(logged, int(result.label.max()) + 1)


def show_image(ax: plt.Axes, image: np.ndarray) -> None:
    """One (C, H, W) image in [0, 1] without ticks; grey for one channel (the paper's MNIST look)."""
    if image.shape[0] == 1:
        ax.imshow(image[0], cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(np.clip(image.transpose(1, 2, 0), 0, 1))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)


def image_grid(rows: list[tuple[str, np.ndarray, list[str]]], col_width: float = 1.3, row_height: float = 1.75):
    """A grid with one row of titled images per (row label, images, titles); short rows leave blanks."""
    ncols = max([1] + [len(images) for _, images, _ in rows])
    fig, axes = plt.subplots(
        len(rows), ncols, figsize=(col_width * ncols + 0.9, row_height * len(rows) + 0.9), squeeze=False
    )
    for ax_row, (row_label, images, titles) in zip(axes, rows, strict=True):
        for ax, image, title in zip(ax_row, images, titles, strict=False):  # short rows leave blank axes
            show_image(ax, image)
            ax.set_title(title, fontsize=8)
        for ax in ax_row[len(images) :]:
            ax.axis("off")
        if len(images):
            ax_row[0].set_ylabel(row_label, fontsize=9)
        else:
            ax_row[0].text(0.0, 0.5, f"{row_label}: none in this run", fontsize=9, va="center")
    return fig


@themed
def plot_examples(runs: list[Run], out_dir: Path, name: str = "fig1_robust_vs_not") -> list[Path]:
    """Figure 1: robust (top) vs not-robust (bottom) test images, all correctly classified by M."""
    run = runs[0]  # the lowest seed: example images have no mean
    ex = results.read_arrays(run.path / EXAMPLES)
    fig = image_grid(
        [
            ("robust", ex["robust_images"], [f"label {run.label(y)}" for y in ex["robust_labels"]]),
            ("not robust", ex["fragile_images"], [f"label {run.label(y)}" for y in ex["fragile_labels"]]),
        ]
    )
    finish(fig, f"Robust vs not-robust test images (all correctly classified by {MODEL_NAMES['M']})", run.footer)
    return save_figure(fig, out_dir, name)


@themed
def plot_first_failure(
    runs: list[Run], out_dir: Path, name: str = "fig2_first_failure", pairs: int = PAIRS
) -> list[Path]:
    """Figure 2: correctly classified test images above the first perturbation of each that M misclassifies."""
    run = runs[0]  # the lowest seed: example images have no mean
    ex = results.read_arrays(run.path / EXAMPLES)
    n = min(pairs, len(ex["fragile_images"]))
    if n == 0:
        notice(f"skipped {name}: {EXAMPLES} holds no not-robust test images (every correct one survived)")
        return []
    m = MODEL_NAMES["M"]
    fig = image_grid(
        [
            ("original", ex["fragile_images"][:n], [f"{m} says {run.label(y)}" for y in ex["fragile_clean_pred"][:n]]),
            (
                "first misclassified\nperturbation",
                ex["fragile_perturbed"][:n],
                [
                    f"{m} says {run.label(y)}\nat step {s}"
                    for y, s in zip(ex["fragile_fail_pred"][:n], ex["fragile_step"][:n], strict=True)
                ],
            ),
        ],
        col_width=1.6,
        row_height=2.3,
    )
    finish(fig, f"First random perturbation that fools {m}", run.footer)
    return save_figure(fig, out_dir, name)


def ratio_band(runs: list[Run], model: str, over: str) -> dict[str, np.ndarray]:
    """A model's robust-ratio curve on the test points over seeds: mean, low, high per MAX_STEPS."""
    return seed_band([(r.metrics["seed"], curve_series(r.rpr(f"{model}_test"))[over]) for r in runs])


def shading(band: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray] | None:
    """The (low, high) to shade, or None where there is no interval (one seed): single runs look as before."""
    return None if np.isnan(band["low"]).all() else (band["low"], band["high"])


def draw_model_curves(
    ax: plt.Axes, runs: list[Run], model: str, with_correct: bool = True, end_label: str = "below"
) -> None:
    """A model's robust-ratio curve on the test points; optionally the over-correct variant dashed.

    The over-correct ratio is never below the over-all one, so its end label goes above.
    """
    color, tex = MODEL_COLORS[model], MODEL_NAMES[model]
    prefix = "" if with_correct else f"{tex}: "
    seeds = len(seeds_of(runs))
    mean_of = "" if seeds == 1 else f", mean of {seeds_text(seeds)}"
    band = ratio_band(runs, model, "all")
    draw_curve(
        ax,
        band["steps"],
        band["mean"],
        f"{prefix}all test points (paper's measure){mean_of}",
        color,
        band=shading(band),
        end_label=end_label,
    )
    if with_correct:
        band = ratio_band(runs, model, "correct")
        draw_curve(
            ax,
            band["steps"],
            band["mean"],
            f"correctly classified test points only{mean_of}",
            color,
            secondary=True,
            band=shading(band),
        )


def ratio_legend(ax: plt.Axes, runs: list[Run]) -> None:
    handles, _ = ax.get_legend_handles_labels()
    extra = [band_patch()] if len(seeds_of(runs)) > 1 else []
    ax.legend(handles=handles + extra, loc="best", fontsize=8)  # the curves may end anywhere in 0..1


def final_ratio(runs: list[Run], model: str) -> tuple[float, float, float]:
    return over_seeds(runs, lambda r: r.rpr(f"{model}_test").robust_ratio())


def accuracy(runs: list[Run], model: str) -> tuple[float, float, float]:
    return over_seeds(runs, lambda r: r.metrics.get(model, {}).get("test_accuracy", np.nan))


def seeds_note(runs: list[Run]) -> str:
    return f"mean [{CI_NAME}] over {seeds_text(len(seeds_of(runs)))}"


def ratio_title(runs: list[Run], model: str) -> str:
    """The numbers a reader quotes: with one run its accuracy (as always), with seeds the final robust
    ratio and the accuracy, each as mean [95% CI]."""
    tex = MODEL_NAMES[model]
    acc = accuracy(runs, model)
    if len(seeds_of(runs)) == 1:
        return "" if np.isnan(acc[0]) else f"test accuracy of {tex}: {acc[0]:.4f}"
    parts = [f"final robust ratio {with_ci(*final_ratio(runs, model))}"]
    if not np.isnan(acc[0]):
        parts.append(f"test accuracy {with_ci(*acc, digits=4)}")
    return " · ".join(parts) + f"\n{seeds_note(runs)}"


@themed
def plot_ratio(runs: list[Run], out_dir: Path, name: str = "fig3_robust_ratio_M", model: str = "M") -> list[Path]:
    """Figures 3 (M) and 5 (M_R): robust ratio on the test points as a function of MAX_STEPS."""
    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    draw_model_curves(ax, runs, model)
    ratio_axes(ax)
    ratio_legend(ax, runs)
    title = ratio_title(runs, model)
    if title:
        ax.set_title(title, fontsize=8)
    finish(fig, f"Robust ratio of {MODEL_NAMES[model]} on the test set vs MAX_STEPS", runs_footer(runs))
    return save_figure(fig, out_dir, name)


@themed
def plot_overlay(runs: list[Run], out_dir: Path, name: str = "fig35_overlay") -> list[Path]:
    """Figures 3 and 5 on one axes: does training on robust points make a more robust model?"""
    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    final = {model: final_ratio(runs, model) for model in ("M", "M_R")}
    for model, other in (("M", "M_R"), ("M_R", "M")):
        side = "above" if final[model][0] >= final[other][0] else "below"
        draw_model_curves(ax, runs, model, with_correct=False, end_label=side)
    ratio_axes(ax)
    ratio_legend(ax, runs)
    if len(seeds_of(runs)) > 1:
        ax.set_title(
            "final robust ratio: "
            + " · ".join(f"{MODEL_NAMES[m]} {with_ci(*v)}" for m, v in final.items())
            + f"\n{seeds_note(runs)}",
            fontsize=8,
        )
    finish(fig, f"Robust ratio on the test set: {MODEL_NAMES['M']} vs {MODEL_NAMES['M_R']}", runs_footer(runs))
    return save_figure(fig, out_dir, name)


def error_bars(band: dict[str, np.ndarray]) -> np.ndarray:
    """matplotlib's (2, n) distances below and above the mean; none where there is no interval."""
    return np.nan_to_num(np.vstack([band["mean"] - band["low"], band["high"] - band["mean"]]))


def per_class_title(runs: list[Run]) -> str:
    if len(seeds_of(runs)) == 1:
        result = runs[0].rpr("M_train")
        return f"{result.robust.sum()} of {len(result.label)} training points robust ({result.robust_ratio():.1%})"
    fraction = over_seeds(runs, lambda r: r.rpr("M_train").robust_ratio())
    return f"robust fraction of the training points: {with_ci(*fraction)}\n{seeds_note(runs)}"


@themed
def plot_per_class(runs: list[Run], out_dir: Path, name: str = "fig4_robust_per_class") -> list[Path]:
    """Figure 4: robust training images per class under M, each bar labelled with its class's robust share.
    With seeds: the mean bar with the 95% t CI as error bars."""
    classes_n = max(num_classes(r, r.rpr("M_train")) for r in runs)
    counts = [(r.metrics["seed"], per_class(r.rpr("M_train"), classes_n)) for r in runs]
    robust = seed_band([(seed, c["robust"]) for seed, c in counts])
    share = seed_band([(seed, c["share"]) for seed, c in counts])["mean"]
    seeds = len(seeds_of(runs))
    classes = np.arange(classes_n)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    label = (
        "robust training images (bar label: share of the class)"
        if seeds == 1
        else (
            f"robust training images, mean of {seeds_text(seeds)}\n"
            f"(error bar: {BAND_MEANING}; bar label: share of the class)"
        )
    )
    ax.bar(
        classes,
        robust["mean"],
        color=MODEL_COLORS["M"],
        label=label,
        yerr=None if seeds == 1 else error_bars(robust),
        capsize=3,
        error_kw={"lw": 1, "ecolor": "0.2"},
    )
    tops = np.fmax(robust["mean"], robust["high"])  # share labels sit above the error bar, not on it
    for x, top, s in zip(classes, tops, share, strict=True):
        ax.annotate(
            f"{s:.0%}" if np.isfinite(s) else "",
            (x, top),
            xytext=(0, 2),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=7,
        )
    taken = [
        r.metrics["subset"]["per_class_taken"]
        for r in runs  # null: that seed did not retrain
        if r.metrics.get("subset", {}).get("per_class_taken") is not None
    ]
    if taken:
        ax.axhline(
            np.mean(taken),
            color=PALETTE[3],
            ls="--",
            lw=1,
            label=f"taken per class to train {MODEL_NAMES['M_R']}: {joined(taken)}"
            + (" (line: mean)" if len(set(taken)) > 1 else ""),
        )
    ax.set_xticks(classes, [runs[0].label(int(c)) for c in classes])
    ax.set_xlabel("class")
    ax.set_ylabel("robust training images")
    ax.set_ylim(0, max(1, np.nanmax(tops)) * 1.45)  # room for the bar labels and the legend
    ax.legend(loc="upper center", fontsize=8)
    ax.set_title(per_class_title(runs), fontsize=8)
    finish(fig, f"Robust training images per class under {MODEL_NAMES['M']}", runs_footer(runs))
    return save_figure(fig, out_dir, name)


@dataclass(frozen=True)
class Figure:
    name: str
    needs: tuple[str, ...]  # files of the run directory it reads
    draw: Callable[..., list[Path]]  # (runs, out_dir, name) -> written paths
    optional: bool = False  # True: only runs with robust retraining (rpr.retrain=true) have its inputs


FIGURES = (
    Figure("fig1_robust_vs_not", (EXAMPLES,), plot_examples),
    Figure("fig2_first_failure", (EXAMPLES,), plot_first_failure),
    Figure("fig3_robust_ratio_M", (rpr_file("M_test"),), functools.partial(plot_ratio, model="M")),
    Figure("fig4_robust_per_class", (rpr_file("M_train"),), plot_per_class, optional=True),
    Figure("fig5_robust_ratio_M_R", (rpr_file("M_R_test"),), functools.partial(plot_ratio, model="M_R"), optional=True),
    Figure("fig35_overlay", (rpr_file("M_test"), rpr_file("M_R_test")), plot_overlay, optional=True),
)

# The numbers of the seeds' summary table: (name, the value in one run's metrics).
SUMMARY = {
    "M test accuracy": lambda m: m["M"]["test_accuracy"],
    "M robust ratio (test)": lambda m: m["M"]["test"]["robust_ratio"],
    "M robust ratio of correct (test)": lambda m: m["M"]["test"]["robust_ratio_of_correct"],
    "M robust fraction (train)": lambda m: m["M_train"]["robust_ratio"],
    "robust images taken per class": lambda m: m["subset"]["per_class_taken"],
    "M_R test accuracy": lambda m: m["M_R"]["test_accuracy"],
    "M_R robust ratio (test)": lambda m: m["M_R"]["test"]["robust_ratio"],
    "M_R robust ratio of correct (test)": lambda m: m["M_R"]["test"]["robust_ratio_of_correct"],
}


def logged(metrics: dict, value: Callable[[dict], float]) -> float:
    """A logged number, NaN where the run did not log it (no retraining)."""
    try:
        return float(value(metrics))
    except (KeyError, TypeError):
        return np.nan


def write_summary(runs: list[Run], path: Path) -> Path:
    """The seeds' numbers as mean and 95% t CI (the figures' titles), with each seed's value."""
    rows = []
    for quantity, value in SUMMARY.items():
        # over_seeds calls it at once, in this iteration: the loop variable cannot move on under it
        mean, low, high = over_seeds(runs, lambda r: logged(r.metrics, value))  # noqa: B023
        per_seed = {str(r.metrics["seed"]): logged(r.metrics, value) for r in runs}
        rows.append(
            {
                "quantity": quantity,
                "seeds": sum(np.isfinite(v) for v in per_seed.values()),
                "mean": mean,
                "ci_low": low,
                "ci_high": high,
                "per_seed": " ".join(f"{seed}:{v:g}" for seed, v in per_seed.items()),
            }
        )
    return results.write_table(path, {k: [row[k] for row in rows] for k in rows[0]})


def plot_run(run_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """Every figure of one run, or of a multirun folder of seeds, into ``out_dir``; returns the written
    paths. Retraining figures are skipped with a one-line notice when the run did not retrain. With
    several seeds, rpr_summary.csv holds the numbers as mean and 95% CI."""
    runs, out_dir = load_runs(run_dir), Path(out_dir)
    # Check first, so a broken run fails before it leaves half a set of figures behind.
    for figure in (f for f in FIGURES if not f.optional):
        for needed in figure.needs:
            for run in runs:
                require(run.has(needed), f"{run.path} lacks {needed}, which {figure.name} needs; rerun the experiment")
    written: list[Path] = []
    for figure in FIGURES:
        have = [r for r in runs if all(r.has(f) for f in figure.needs)]
        for run in (r for r in runs if not all(r.has(f) for f in figure.needs)):
            missing = next(f for f in figure.needs if not run.has(f))
            what = f"{figure.name} leaves out seed {run.metrics['seed']}" if have else f"skipped {figure.name}"
            notice(f"{what}: {missing} not in {run.path} (written only when rpr.retrain=true)")
        if have:
            written += figure.draw(have, out_dir, name=figure.name)
    if len(seeds_of(runs)) > 1:
        written.append(write_summary(runs, out_dir / SUMMARY_CSV))
    return written
