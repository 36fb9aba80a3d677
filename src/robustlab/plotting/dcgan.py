"""DCGAN figures (experiment=dcgan_*) and the GAN-augmentation figures (experiment=rpr_gan_augment),
from what the runs logged only: G/samples/*.png, G/metrics.csv, interpolation.npz,
class_histogram.csv, augment_table.csv, rpr_*.csv, generated_examples.npz, metrics.json. Plotting
never runs the generator.

  robustlab-plot dcgan       --run RUN_DIR --out OUT_DIR      (or --multirun MULTIRUN_DIR: every job, and a comparison)
  robustlab-plot gan-augment --run RUN_DIR --out OUT_DIR
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from robustlab import results
from robustlab.errors import require
from robustlab.plotting.rpr import CLASS_NAMES, curve_series, finished, image_grid, job_dirs, notice, rpr_file
from robustlab.plotting.style import (
    MODEL_COLORS,
    PALETTE,
    draw_curve,
    finish,
    footer,
    provenance,
    ratio_axes,
    save_figure,
    themed,
)
from robustlab.runs.layout import AUGMENT_TABLE, CLASS_HISTOGRAM, GENERATED_EXAMPLES, INTERPOLATION, metrics_path
from robustlab.runs.schema import read_metrics as read_run_metrics  # older schema versions get today's key names

GAN_DIR = "G"  # the GAN's log folder in a run directory (pipelines.dcgan.GAN)
GRIDS_SHOWN = 6  # sample grids in the over-training figure: the first, the last and evenly spaced ones between
AUGMENT_MODELS = {"M": "M", "M_R": "M_R", "M_R+G": "M_R_G"}  # table name -> rpr_<file>_test.csv
AUGMENT_COLORS = {**MODEL_COLORS, "M_R_G": PALETTE[2]}
SHORT = {
    "minibatch_discrimination": "MBD",
    "semi_supervised": "semi-sup.",
    "feature_matching": "FM",
    "conditional": "cond.",
}  # sweep labels


def load_metrics(run_dir: str | Path, pipelines: tuple[str, ...]) -> tuple[Path, dict]:
    path = Path(run_dir)
    require(path.is_dir(), f"run directory not found: {path}")
    require(
        metrics_path(path).is_file(),
        f"{path} is not a run directory (no {results.METRICS}); pass a folder written by `robustlab`",
    )
    metrics = read_run_metrics(path)
    require(
        metrics.get("pipeline") in pipelines,
        f"{path} holds a run of pipeline '{metrics.get('pipeline', '?')}'; this command draws runs of "
        f"{' or '.join(pipelines)}",
    )
    return path, metrics


def gan_footer(metrics: dict) -> str:
    d = metrics["data"]
    options = ", ".join(metrics.get("options", [])) or "plain DCGAN"
    return provenance(
        [metrics], [f"{d['name']}, {d['train_images']} train images", options, f"{metrics['training']['steps']} steps"]
    )


def class_names(metrics: dict, k: int) -> list[str]:
    names = CLASS_NAMES.get(metrics.get("data", {}).get("name"))
    return list(names) if names else [str(c) for c in range(k)]


def sample_files(gan_dir: Path) -> list[Path]:
    return sorted((gan_dir / "samples").glob("step_*.png"), key=lambda p: int(p.stem.split("_")[1]))


def evenly(items: list, count: int) -> list:
    """``count`` items spread over the list, always with its first and last."""
    if len(items) <= count:
        return items
    return [items[i] for i in np.unique(np.linspace(0, len(items) - 1, count).round().astype(int))]


@themed
def plot_samples(gan_dir: Path, out_dir: Path, foot: str, name: str) -> list[Path]:
    """G's images for the same fixed noise at steps of training, left to right."""
    files = evenly(sample_files(gan_dir), GRIDS_SHOWN)
    fig, axes = plt.subplots(1, len(files), figsize=(2.4 * len(files) + 0.4, 3.2), squeeze=False)
    for ax, file in zip(axes[0], files, strict=True):
        ax.imshow(mpimg.imread(file))
        ax.set_title(f"step {int(file.stem.split('_')[1])}", fontsize=9)
        ax.axis("off")
    finish(fig, "Generated images for a fixed noise over training", foot)
    return save_figure(fig, out_dir, name)


@themed
def plot_interpolation(run_dir: Path, out_dir: Path, foot: str, name: str) -> list[Path]:
    """Rows: G along the straight line between two latent codes (Radford et al. Sec. 6.1)."""
    data = results.read_arrays(run_dir / f"{INTERPOLATION}.npz")
    images, alpha = data["images"], data["alpha"]
    rows = [
        (
            f"class {c}" if "classes" in data else f"pair {r + 1}",
            images[r],
            [f"{a:.2f}" if r == 0 else "" for a in alpha],
        )
        for r, c in zip(range(len(images)), data.get("classes", range(len(images))), strict=True)
    ]
    fig = image_grid(rows, col_width=1.0, row_height=1.15)
    finish(fig, "Latent-space interpolation: z = (1 - a) z0 + a z1 (a above the columns)", foot)
    return save_figure(fig, out_dir, name)


@themed
def plot_losses(gan_dir: Path, out_dir: Path, foot: str, name: str) -> list[Path]:
    """D and G losses, and D's mean belief that real / generated images are real, per logged step."""
    log = pd.read_csv(gan_dir / "metrics.csv")
    fig, (left, right) = plt.subplots(1, 2, figsize=(10.0, 3.8))
    for ax, columns in (
        (left, {"train/d_loss": "D loss", "train/g_loss": "G loss", "train/d_supervised": "D supervised loss"}),
        (right, {"train/d_real": "D(x), real images", "train/d_fake": "D(G(z)), generated images"}),
    ):
        for i, (column, label) in enumerate((c, name) for c, name in columns.items() if c in log):
            rows = log[["step", column]].dropna()
            ax.plot(rows["step"], rows[column], label=label, color=PALETTE[i], lw=1.5)
        ax.set_xlabel("training step (one D and one G update)")
        ax.legend(fontsize=8, loc="best")
    left.set_ylabel("loss")
    right.set_ylabel('mean probability of "real"')
    right.set_ylim(-0.02, 1.02)
    finish(fig, "DCGAN training", foot)
    return save_figure(fig, out_dir, name)


@themed
def plot_class_histogram(run_dir: Path, metrics: dict, out_dir: Path, foot: str, name: str) -> list[Path]:
    """Classes the quality classifier predicts for generated vs real test images (mode collapse shows as spikes)."""
    table = pd.read_csv(run_dir / CLASS_HISTOGRAM)
    q = metrics["quality"]
    classes = table["class"].to_numpy()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    width = 0.4
    shares = {column: table[column] / max(table[column].sum(), 1) for column in ("generated", "real_test")}
    for offset, column, label, color in (
        (-width / 2, "generated", "generated images", PALETTE[0]),
        (width / 2, "real_test", "real test images", PALETTE[7]),
    ):
        ax.bar(classes + offset, shares[column], width, label=label, color=color)
    ax.axhline(1 / len(classes), color="0.4", ls=":", lw=1, label="uniform")
    ax.set_ylim(
        0, max(max(s.max() for s in shares.values()), 1 / len(classes)) * 1.3
    )  # room for the legend above the bars
    ax.set_xticks(classes, class_names(metrics, len(classes)))
    ax.set_xlabel("class predicted by the quality classifier (SimpleCNN)")
    ax.set_ylabel("share of images")
    ax.legend(fontsize=8, loc="upper center", ncol=3)
    ax.set_title(
        f"Fréchet distance in SimpleCNN features (not FID): {q['frechet_distance']:.2f} generated vs real test, "
        f"{q['frechet_distance_real_vs_real']:.2f} real vs real; class entropy {q['class_entropy']:.3f}",
        fontsize=7,
    )
    finish(fig, "Classes of generated images (mode-collapse check)", foot)
    return save_figure(fig, out_dir, name)


def plot_gan(run_dir: Path, metrics: dict, out_dir: Path, foot: str, prefix: str, dcgan_run: bool = True) -> list[Path]:
    """The figures of one trained GAN whose inputs the run holds; a one-line notice for each missing one.

    ``dcgan_run=False`` (the GAN inside rpr_gan_augment): only sample grids and losses are logged."""
    gan_dir, written = run_dir / GAN_DIR, []
    require(len(sample_files(gan_dir)) > 0, f"{gan_dir / 'samples'} holds no sample grids; rerun the experiment")
    written += plot_samples(gan_dir, out_dir, foot, f"{prefix}_samples")
    figures = [(f"{GAN_DIR}/metrics.csv", lambda: plot_losses(gan_dir, out_dir, foot, f"{prefix}_losses"))]
    if dcgan_run:
        figures += [
            (f"{INTERPOLATION}.npz", lambda: plot_interpolation(run_dir, out_dir, foot, f"{prefix}_interpolation")),
            (CLASS_HISTOGRAM, lambda: plot_class_histogram(run_dir, metrics, out_dir, foot, f"{prefix}_classes")),
        ]
    for file, draw in figures:
        if (run_dir / file).is_file():
            written += draw()
        else:
            why = (
                " (quality.classifier was null)"
                if file == CLASS_HISTOGRAM
                else " (too few steps to log: lower trainer.log_every_n_steps)"
            )
            notice(f"skipped {prefix} figure from {file}: not in {run_dir}{why}")
    return written


def plot_dcgan(run_dir: str | Path, out_dir: str | Path, prefix: str = "dcgan") -> list[Path]:
    """Every figure of one DCGAN run (experiment=dcgan_*) into ``out_dir``; returns the written paths."""
    path, metrics = load_metrics(run_dir, ("dcgan",))
    return plot_gan(path, metrics, Path(out_dir), gan_footer(metrics), prefix)


@themed
def plot_augment_models(run_dir: Path, metrics: dict, out_dir: Path, name: str) -> list[Path]:
    """M, M_R and M_R+G: test accuracy and robust ratio (bars), robust ratio vs MAX_STEPS (curves)."""
    table = pd.read_csv(run_dir / AUGMENT_TABLE)
    fig, (bars, curves) = plt.subplots(1, 2, figsize=(10.5, 4.2))
    x = np.arange(len(table))
    for offset, column, label, color in (
        (-0.2, "test_accuracy", "test accuracy", PALETTE[0]),
        (0.2, "robust_ratio", "robust ratio (all test points)", PALETTE[1]),
    ):
        drawn = bars.bar(x + offset, table[column], 0.4, label=label, color=color)
        bars.bar_label(drawn, fmt="%.3f", fontsize=7, padding=2)
    bars.set_xticks(x, [f"{m}\n{n} train images" for m, n in zip(table["model"], table["train_images"], strict=True)])
    bars.set_ylim(0, 1.3)  # room for the bar labels and the legend above the highest bar
    bars.legend(fontsize=8, loc="upper center", ncol=2)
    for model, key in AUGMENT_MODELS.items():
        series = curve_series(results.load_rpr(run_dir / rpr_file(f"{key}_test")))
        draw_curve(curves, series["steps"], series["all"], model, AUGMENT_COLORS[key], end_label=None)
    ratio_axes(curves)
    curves.legend(fontsize=8, loc="best")
    g = metrics["gan"]
    curves.set_title(
        f"M_R+G: robust subset + {g['kept']} of {g['generated']} generated images (robust under M)", fontsize=8
    )
    finish(fig, "Augmenting the robust subset with GAN images that are robust under M", footer(metrics))
    return save_figure(fig, out_dir, name)


@themed
def plot_augment_examples(run_dir: Path, metrics: dict, out_dir: Path, name: str) -> list[Path]:
    """Generated images that were kept (robust under M) and rejected (with why)."""
    ex = results.read_arrays(run_dir / GENERATED_EXAMPLES)
    names = class_names(metrics, len(metrics["gan"]["kept_per_class"]))
    why = lambda p, s: f"M says {names[p]}" if s == 0 else f"fooled at step {s}"  # noqa: E731
    fig = image_grid(
        [
            ("kept", ex["kept_images"], [f"made as {names[y]}" for y in ex["kept_labels"]]),
            (
                "rejected",
                ex["rejected_images"],
                [
                    f"made as {names[y]}\n{why(p, s)}"
                    for y, p, s in zip(ex["rejected_labels"], ex["rejected_pred"], ex["rejected_step"], strict=True)
                ],
            ),
        ],
        col_width=1.3,
        row_height=2.0,
    )
    finish(fig, "Generated images: kept (robust under M, intended class) and rejected", footer(metrics))
    return save_figure(fig, out_dir, name)


def plot_gan_augment(run_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """Every figure of one rpr_gan_augment run into ``out_dir`` (the robust-retraining figures of the same
    run come from ``robustlab-plot rpr``); returns the written paths."""
    path, metrics = load_metrics(run_dir, ("rpr_gan_augment",))
    out_dir = Path(out_dir)
    needed = [AUGMENT_TABLE, GENERATED_EXAMPLES] + [rpr_file(f"{key}_test") for key in AUGMENT_MODELS.values()]
    for file in needed:
        require((path / file).is_file(), f"{path} lacks {file}; rerun the experiment")
    written = plot_augment_models(path, metrics, out_dir, "gan_augment_models")
    written += plot_augment_examples(path, metrics, out_dir, "gan_augment_generated")
    foot = provenance(
        [metrics],
        [
            f"{metrics['data']['name']}: conditional DCGAN on {metrics['gan']['training']['images']} robust training "
            "images",
            f"{metrics['gan']['training']['steps']} steps",
        ],
    )
    return written + plot_gan(path, metrics, out_dir, foot, "gan_augment_G", dcgan_run=False)


@themed
def plot_sweep_quality(rows: pd.DataFrame, runs: list[dict], out_dir: Path, name: str) -> list[Path]:
    """Fréchet distance and class entropy per job of a multirun (e.g. with and without minibatch discrimination)."""
    fig, (fd, entropy) = plt.subplots(1, 2, figsize=(10.0, 0.45 * len(rows) + 2.4), sharey=True)
    y = np.arange(len(rows))
    fd.barh(y, rows["frechet_distance"], color=PALETTE[0], label="generated vs real test")
    fd.scatter(
        rows["frechet_distance_real_vs_real"],
        y,
        marker="|",
        s=400,
        color="0.2",
        zorder=3,
        label="real train vs real test (floor)",
    )
    fd.set_xlabel("Fréchet distance in SimpleCNN features (not FID)")
    fd.legend(fontsize=7, loc="lower right", markerscale=0.4, framealpha=0.9)
    entropy.barh(y, rows["class_entropy"], color=PALETTE[1])
    entropy.set_xlim(0, 1.05)
    entropy.set_xlabel("normalised entropy of predicted classes (1 = uniform)")
    fd.set_yticks(y, rows["label"])
    fd.invert_yaxis()  # job 0 on top (shared with the right panel)
    data = ", ".join(sorted({f"{r['data']['name']} ({r['data']['train_images']} train images)" for r in runs}))
    finish(fig, "DCGAN options compared", provenance(runs, [data]))
    return save_figure(fig, out_dir, name)


def plot_dcgan_multirun(multirun_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """Each finished job's figures (prefix dcgan_<job>), a CSV of their quality numbers and, when the
    jobs measured quality, one figure comparing them. Unfinished jobs are named and left out."""
    multirun, out_dir = Path(multirun_dir), Path(out_dir)
    require(multirun.is_dir(), f"multirun directory not found: {multirun}")
    written, rows, runs = [], [], []
    for job in filter(finished, job_dirs(multirun)):
        path, metrics = load_metrics(job, ("dcgan",))
        written += plot_gan(path, metrics, out_dir, gan_footer(metrics), f"dcgan_{job.name}")
        q = metrics.get("quality") or {}
        label = f"job {job.name}: " + ("+".join(SHORT[o] for o in metrics["options"]) or "plain")
        numbers = {
            k: q.get(k)
            for k in ("frechet_distance", "frechet_distance_real_vs_real", "class_entropy", "classes_covered")
        }
        rows.append(
            {
                "job": job.name,
                "label": label,
                "options": "+".join(metrics["options"]) or "plain",
                "seed": metrics["seed"],
                "steps": metrics["training"]["steps"],
                **numbers,
            }
        )
        runs.append(metrics)
    require(len(rows) > 0, f"no finished dcgan runs in {multirun}")
    table = pd.DataFrame(rows)
    written.append(
        results.write_table(out_dir / "dcgan_sweep.csv", {c: table[c].tolist() for c in table.columns if c != "label"})
    )
    if table["frechet_distance"].notna().all():
        written += plot_sweep_quality(table, runs, out_dir, "dcgan_sweep_quality")
    return written
