"""The paper's Figures 1-5 (plus an M vs M_R overlay) from one run directory's logged results.

Only reads what ``robustlab`` wrote (metrics.json, rpr_*.csv, examples_M_test.npz); never trains.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import matplotlib.pyplot as plt
import numpy as np

from robustlab import results
from robustlab.errors import require
from robustlab.plotting.style import (
    MODEL_COLORS, MODEL_NAMES, PALETTE, draw_curve, finish, footer, ratio_axes, save_figure, themed,
)
from robustlab.robustness.rpr import RPRResult

EXAMPLES = "examples_M_test.npz"
PAIRS = 4  # first-failure pairs in Figure 2

# Readable names where the integer label says little; MNIST digits are their own names.
CLASS_NAMES = {
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
    "fashion_mnist": ("T-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"),
}


def rpr_file(name: str) -> str:
    return f"rpr_{name}.csv"


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


def load_run(run_dir: str | Path) -> Run:
    path = Path(run_dir)
    require(path.is_dir(), f"run directory not found: {path}")
    require((path / results.METRICS).is_file(),
            f"{path} is not a run directory (no {results.METRICS}); pass a folder written by `robustlab`")
    return Run(path, read_metrics(path))


def read_metrics(path: Path) -> dict:
    """A run's metrics.json, checked to hold what the figures read (an RPR run of M)."""
    metrics = results.read_json(path / results.METRICS)
    missing = [key for key in ("profile", "data", "perturbation", "max_steps", "M") if key not in metrics]
    require(not missing, f"{path / results.METRICS} lacks {', '.join(missing)} (experiment "
            f"'{metrics.get('experiment', '?')}'); robustlab-plot draws runs of the rpr_retrain pipeline")
    return metrics


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
    fig, axes = plt.subplots(len(rows), ncols, figsize=(col_width * ncols + 0.9, row_height * len(rows) + 0.9), squeeze=False)
    for ax_row, (row_label, images, titles) in zip(axes, rows):
        for ax, image, title in zip(ax_row, images, titles):
            show_image(ax, image)
            ax.set_title(title, fontsize=8)
        for ax in ax_row[len(images):]:
            ax.axis("off")
        if len(images):
            ax_row[0].set_ylabel(row_label, fontsize=9)
        else:
            ax_row[0].text(0.0, 0.5, f"{row_label}: none in this run", fontsize=9, va="center")
    return fig


@themed
def plot_examples(run: Run, out_dir: Path, name: str = "fig1_robust_vs_not") -> list[Path]:
    """Figure 1: robust (top) vs not-robust (bottom) test images, all correctly classified by M."""
    ex = results.read_arrays(run.path / EXAMPLES)
    fig = image_grid([
        ("robust", ex["robust_images"], [f"label {run.label(y)}" for y in ex["robust_labels"]]),
        ("not robust", ex["fragile_images"], [f"label {run.label(y)}" for y in ex["fragile_labels"]]),
    ])
    finish(fig, f"Robust vs not-robust test images (all correctly classified by {MODEL_NAMES['M']})", run.footer)
    return save_figure(fig, out_dir, name)


@themed
def plot_first_failure(run: Run, out_dir: Path, name: str = "fig2_first_failure", pairs: int = PAIRS) -> list[Path]:
    """Figure 2: correctly classified test images above the first perturbation of each that M misclassifies."""
    ex = results.read_arrays(run.path / EXAMPLES)
    n = min(pairs, len(ex["fragile_images"]))
    if n == 0:
        notice(f"skipped {name}: {EXAMPLES} holds no not-robust test images (every correct one survived)")
        return []
    m = MODEL_NAMES["M"]
    fig = image_grid([
        ("original", ex["fragile_images"][:n], [f"{m} says {run.label(y)}" for y in ex["fragile_clean_pred"][:n]]),
        ("first misclassified\nperturbation", ex["fragile_perturbed"][:n],
         [f"{m} says {run.label(y)}\nat step {s}" for y, s in zip(ex["fragile_fail_pred"][:n], ex["fragile_step"][:n])]),
    ], col_width=1.6, row_height=2.3)
    finish(fig, f"First random perturbation that fools {m}", run.footer)
    return save_figure(fig, out_dir, name)


def draw_model_curves(ax: plt.Axes, run: Run, model: str, with_correct: bool = True, end_label: str = "below") -> None:
    """A model's robust-ratio curve on the test points; optionally the over-correct variant dashed.

    The over-correct ratio is never below the over-all one, so its end label goes above.
    """
    series = curve_series(run.rpr(f"{model}_test"))
    color, tex = MODEL_COLORS[model], MODEL_NAMES[model]
    prefix = "" if with_correct else f"{tex}: "
    draw_curve(ax, series["steps"], series["all"], f"{prefix}all test points (paper's measure)", color, end_label=end_label)
    if with_correct:
        draw_curve(ax, series["steps"], series["correct"], "correctly classified test points only", color, secondary=True)


@themed
def plot_ratio(run: Run, out_dir: Path, name: str = "fig3_robust_ratio_M", model: str = "M") -> list[Path]:
    """Figures 3 (M) and 5 (M_R): robust ratio on the test points as a function of MAX_STEPS."""
    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    draw_model_curves(ax, run, model)
    ratio_axes(ax)
    ax.legend(loc="best", fontsize=8)  # the curves may end anywhere in 0..1
    accuracy = run.metrics.get(model, {}).get("test_accuracy")
    if accuracy is not None:
        ax.set_title(f"test accuracy of {MODEL_NAMES[model]}: {accuracy:.4f}", fontsize=8)
    finish(fig, f"Robust ratio of {MODEL_NAMES[model]} on the test set vs MAX_STEPS", run.footer)
    return save_figure(fig, out_dir, name)


@themed
def plot_overlay(run: Run, out_dir: Path, name: str = "fig35_overlay") -> list[Path]:
    """Figures 3 and 5 on one axes: does training on robust points make a more robust model?"""
    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    final = {model: run.rpr(f"{model}_test").robust_ratio() for model in ("M", "M_R")}
    for model, other in (("M", "M_R"), ("M_R", "M")):
        side = "above" if final[model] >= final[other] else "below"
        draw_model_curves(ax, run, model, with_correct=False, end_label=side)
    ratio_axes(ax)
    ax.legend(loc="best", fontsize=8)  # the curves may end anywhere in 0..1
    finish(fig, f"Robust ratio on the test set: {MODEL_NAMES['M']} vs {MODEL_NAMES['M_R']}", run.footer)
    return save_figure(fig, out_dir, name)


@themed
def plot_per_class(run: Run, out_dir: Path, name: str = "fig4_robust_per_class") -> list[Path]:
    """Figure 4: robust training images per class under M, each bar labelled with its class's robust share."""
    result = run.rpr("M_train")
    counts = per_class(result, num_classes(run, result))
    classes = np.arange(len(counts["robust"]))
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    bars = ax.bar(classes, counts["robust"], color=MODEL_COLORS["M"], label="robust training images (bar label: share of the class)")
    ax.bar_label(bars, labels=[f"{s:.0%}" if np.isfinite(s) else "" for s in counts["share"]], fontsize=7, padding=2)
    taken = run.metrics.get("subset", {}).get("per_class_taken")
    if taken is not None:
        ax.axhline(taken, color=PALETTE[3], ls="--", lw=1, label=f"taken per class to train {MODEL_NAMES['M_R']}: {taken}")
    ax.set_xticks(classes, [run.label(int(c)) for c in classes])
    ax.set_xlabel("class")
    ax.set_ylabel("robust training images")
    ax.set_ylim(0, max(1, counts["robust"].max()) * 1.45)  # room for the bar labels and the legend
    ax.legend(loc="upper center", fontsize=8)
    ax.set_title(f"{result.robust.sum()} of {len(result.label)} training points robust ({result.robust_ratio():.1%})", fontsize=8)
    finish(fig, f"Robust training images per class under {MODEL_NAMES['M']}", run.footer)
    return save_figure(fig, out_dir, name)


@dataclass(frozen=True)
class Figure:
    name: str
    needs: tuple[str, ...]  # files of the run directory it reads
    draw: Callable[..., list[Path]]  # (run, out_dir, name) -> written paths
    optional: bool = False  # True: only runs with robust retraining (rpr.retrain=true) have its inputs


FIGURES = (
    Figure("fig1_robust_vs_not", (EXAMPLES,), plot_examples),
    Figure("fig2_first_failure", (EXAMPLES,), plot_first_failure),
    Figure("fig3_robust_ratio_M", (rpr_file("M_test"),), functools.partial(plot_ratio, model="M")),
    Figure("fig4_robust_per_class", (rpr_file("M_train"),), plot_per_class, optional=True),
    Figure("fig5_robust_ratio_M_R", (rpr_file("M_R_test"),), functools.partial(plot_ratio, model="M_R"), optional=True),
    Figure("fig35_overlay", (rpr_file("M_test"), rpr_file("M_R_test")), plot_overlay, optional=True),
)


def plot_run(run_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """Every figure of one run into ``out_dir``; returns the written paths. Retraining figures are
    skipped with a one-line notice when the run did not retrain."""
    run, out_dir = load_run(run_dir), Path(out_dir)
    # Check first, so a broken run fails before it leaves half a set of figures behind.
    for figure in (f for f in FIGURES if not f.optional):
        for needed in figure.needs:
            require(run.has(needed), f"{run.path} lacks {needed}, which {figure.name} needs; rerun the experiment")
    written: list[Path] = []
    for figure in FIGURES:
        missing = [f for f in figure.needs if not run.has(f)]
        if missing:
            notice(f"skipped {figure.name}: {missing[0]} not in {run.path} (written only when rpr.retrain=true)")
            continue
        written += figure.draw(run, out_dir, name=figure.name)
    return written
