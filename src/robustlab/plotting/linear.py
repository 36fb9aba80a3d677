"""The blog's table and figures (shared/seeds/002) from a multirun of ``experiment=linear_robust``.

Reads only what the runs logged (metrics.json, attack_curve.csv, weights.npz, misclassified.npz);
never trains. A model is one ``model.epsilon`` (0 = regular); its seeds are averaged in the table
(with sd, min-max and the 95% t CI of the mean) and drawn as a band (that CI, see
``bands``) in the attack figure; the per-sample figures (weights, misclassified images,
score distributions) show each model's lowest seed.

  robustlab-plot linear --multirun MULTIRUN_DIR --out OUT_DIR
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import TwoSlopeNorm

from robustlab import results
from robustlab.errors import require
from robustlab.plotting.bands import SHARE_BAND, interval, seed_band, seeds_text, with_ci
from robustlab.plotting.rpr import finished, job_dirs, notice
from robustlab.plotting.style import PALETTE, finish, joined, provenance, save_figure, share_band, themed
from robustlab.runs.layout import ATTACK_CURVE, METRICS, MISCLASSIFIED, WEIGHTS, metrics_path
from robustlab.runs.schema import read_metrics as read_run_metrics  # older schema versions get today's key names

PIPELINE = "linear_robust"
FILES = (METRICS, ATTACK_CURVE, WEIGHTS, MISCLASSIFIED)
CURVES = {"exact_unclipped": "not clipped (the blog's attack)", "exact_clipped": "clipped to [0, 1]"}
SAMPLE_EPS = np.linspace(0.0, 0.5, 11)  # the columns of the blog's misclassified-samples figure
TABLE = "linear_table"


@dataclass
class LinearRun:
    path: Path
    metrics: dict
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def epsilon(self) -> float:
        return float(self.metrics["epsilon"])

    @property
    def seed(self):
        return self.metrics["seed"]

    def curve(self) -> pd.DataFrame:
        if "curve" not in self._cache:
            self._cache["curve"] = pd.read_csv(self.path / ATTACK_CURVE)
        return self._cache["curve"]

    def arrays(self, name: str) -> dict[str, np.ndarray]:
        if name not in self._cache:
            self._cache[name] = results.read_arrays(self.path / name)
        return self._cache[name]


def model_name(epsilon: float) -> str:
    return "regular" if epsilon == 0 else f"robust ε={epsilon:g}"


def load_job(job: Path) -> LinearRun | None:
    """A finished job's results, or None (with a notice naming the job) when it has none."""
    if not finished(job):  # a killed or failed job never counts (robustlab.runs.jobs); named on stderr
        return None
    for needed in FILES:
        if not (job / needed).is_file():
            notice(f"skipped job {job.name} ({job}): no {needed} (failed or unfinished run)")
            return None
    metrics = read_run_metrics(job)
    require(
        metrics.get("pipeline") == PIPELINE,
        f"{metrics_path(job)} is from pipeline '{metrics.get('pipeline', '?')}'; these figures draw runs of "
        f"experiment={PIPELINE}",
    )
    return LinearRun(job, metrics)


def collect_linear_runs(multirun: str | Path) -> list[LinearRun]:
    """The finished runs of a multirun folder (or a single run folder), sorted by epsilon then seed."""
    multirun = Path(multirun)
    require(multirun.is_dir(), f"multirun directory not found: {multirun}")
    jobs = [multirun] if metrics_path(multirun).is_file() else job_dirs(multirun)
    runs = [run for run in map(load_job, jobs) if run is not None]
    require(
        len(runs) > 0,
        f"no finished {PIPELINE} runs in {multirun} ({len(jobs)} job folders, none with all of {', '.join(FILES)})",
    )
    return sorted(runs, key=lambda r: (r.epsilon, str(r.seed)))


def by_model(runs: list[LinearRun]) -> dict[float, list[LinearRun]]:
    return {eps: [r for r in runs if r.epsilon == eps] for eps in sorted({r.epsilon for r in runs})}


def colors(runs: list[LinearRun]) -> dict[float, tuple]:
    """The regular model dark grey, robust ones the palette in order of epsilon (the same in every figure)."""
    models = list(by_model(runs))
    robust = iter(PALETTE[i % len(PALETTE)] for i in (2, 0, 1, 4, 3, 5, 6, 8, 9, 7) * 3)
    return {eps: (0.25, 0.25, 0.25) if eps == 0 else next(robust) for eps in models}


def linear_footer(runs: list[LinearRun]) -> str:
    metrics = [r.metrics for r in runs]
    data = joined(
        f"{m['data']['name']} digits {'/'.join(map(str, m['data']['digits']))}, {m['data']['train_images']} train / "
        f"{m['data']['test_images']} test images"
        for m in metrics
    )
    return provenance(
        metrics,
        [data, joined(f"{m['model']['epochs']} epochs" for m in metrics)],
        quick_note="subset run, not the blog's protocol",
    )


# ---------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------


def _stats(values: list) -> dict:
    x = np.array([np.nan if v is None else v for v in values], dtype=float)
    ok = x[~np.isnan(x)]
    mean, low, high = interval(ok)
    return {
        "mean": mean,
        "sd": float(ok.std(ddof=1)) if len(ok) > 1 else np.nan,
        "min": float(ok.min()) if len(ok) else np.nan,
        "max": float(ok.max()) if len(ok) else np.nan,
        "ci_low": low,
        "ci_high": high,
    }


def _train_accuracy(metrics: dict) -> float:
    """The blog's train accuracy (running, last epoch); the final model's when a run did not log it."""
    running = metrics.get("train_accuracy_running")
    return metrics["train_accuracy"] if running is None else running


def table_rows(runs: list[LinearRun]) -> list[dict]:
    """One row per model: train (the blog's running last-epoch accuracy) and test accuracy in %, and the
    epsilon where the unclipped exact attack takes test accuracy below 50%; mean, sd, min, max and the 95%
    t CI of the mean (ci_low, ci_high) over seeds."""
    rows = []
    for eps, group in by_model(runs).items():
        row = {"model": model_name(eps), "epsilon": eps, "seeds": len(group)}
        quantities = {
            "train_accuracy_pct": [100 * _train_accuracy(r.metrics) for r in group],
            "train_accuracy_final_pct": [100 * r.metrics["train_accuracy"] for r in group],
            "test_accuracy_pct": [100 * r.metrics["test_accuracy"] for r in group],
            "eps_at_50": [r.metrics["attack"]["curves"]["exact_unclipped"]["interpolated_eps"] for r in group],
        }
        for name, values in quantities.items():
            row |= {f"{name}_{k}": v for k, v in _stats(values).items()}
        rows.append(row)
    return rows


def _cell(row: dict, name: str, digits: int) -> str:
    mean, sd = row[f"{name}_mean"], row[f"{name}_sd"]
    if np.isnan(mean):
        return "--"
    return f"{mean:.{digits}f}" + ("" if np.isnan(sd) else f" $\\pm$ {sd:.{digits}f}")


def table_tex(rows: list[dict], footer_text: str) -> str:
    heads = ["Regular" if r["epsilon"] == 0 else f"$\\epsilon = {r['epsilon']:g}$" for r in rows]
    seeds = sorted({r["seeds"] for r in rows})
    body = [
        ("Acc.~Train (\\%)", [_cell(r, "train_accuracy_pct", 2) for r in rows]),
        ("Acc.~Test (\\%)", [_cell(r, "test_accuracy_pct", 2) for r in rows]),
        ("$\\epsilon$ at 50\\% attacked test acc.", [_cell(r, "eps_at_50", 3) for r in rows]),
    ]
    lines = [
        f"% robustlab: the blog's accuracy table, reproduced ({footer_text}).",
        f"% Mean $\\pm$ sd over {'/'.join(map(str, seeds))} seed(s) (no sd with one seed). Train: running accuracy "
        "over the",
        "% last training epoch (the blog's definition). Attack: exact x - eps y sign(w), not clipped, test set.",
        "\\begin{tabular}{l" + "c" * len(rows) + "}",
        "\\toprule",
        " & " + " & ".join(heads) + " \\\\",
        "\\midrule",
        *[f"{label} & " + " & ".join(cells) + " \\\\" for label, cells in body],
        "\\bottomrule",
        "\\end{tabular}",
    ]
    return "\n".join(lines) + "\n"


def write_linear_table(runs: list[LinearRun], out_dir: str | Path, name: str = TABLE) -> list[Path]:
    """``name``.csv (every statistic) and ``name``.tex (the blog's table layout) into ``out_dir``."""
    rows, out_dir = table_rows(runs), Path(out_dir)
    csv = results.write_table(out_dir / f"{name}.csv", {k: [r[k] for r in rows] for k in rows[0]})
    tex = results.atomic_write_bytes(out_dir / f"{name}.tex", table_tex(rows, linear_footer(runs)).encode())
    return [csv, tex]


# ---------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------


@themed
def plot_attack(runs: list[LinearRun], out_dir: Path, name: str = "linear_attack_accuracy") -> list[Path]:
    """Test accuracy under the exact attack vs epsilon, not clipped (left, the blog's) and clipped (right)."""
    fig, axes = plt.subplots(1, 2, figsize=(10.0, 5.2), sharey=True)
    palette = colors(runs)
    for ax, (column, title) in zip(axes, CURVES.items(), strict=True):
        for eps, group in by_model(runs).items():
            eps_grid = group[0].curve()["eps"].to_numpy()
            band = seed_band([(r.seed, r.curve()[column].to_numpy()) for r in group])
            at50 = _stats([r.metrics["attack"]["curves"][column]["interpolated_eps"] for r in group])
            seeds = len({r.seed for r in group})
            label = (
                f"{model_name(eps)} ({seeds_text(seeds)}; "
                f"50% at ε≈{with_ci(at50['mean'], at50['ci_low'], at50['ci_high'])})"
            )
            ax.plot(eps_grid, band["mean"], color=palette[eps], lw=2, label=label)
            ax.fill_between(
                eps_grid, *share_band(band["low"], band["high"]), color=palette[eps], alpha=0.25, lw=0
            )  # NaN (one seed): none
        ax.axhline(0.5, color="0.5", lw=0.8, ls=":")
        ax.set_title(f"exact attack x − ε·y·sign(w), {title}", fontsize=9)
        ax.set_xlabel("attack ε (l∞ radius, pixel units)")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlim(left=0)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2))  # below: inside it hid the curves' tails
    axes[0].set_ylabel("test accuracy under attack")
    finish(
        fig,
        f"White-box attack on the linear classifiers (line: mean over seeds; band: {SHARE_BAND})",
        linear_footer(runs),
    )
    return save_figure(fig, out_dir, name)


def first_seed(runs: list[LinearRun]) -> dict[float, LinearRun]:
    return {eps: group[0] for eps, group in by_model(runs).items()}


@themed
def plot_weights(runs: list[LinearRun], out_dir: Path, name: str = "linear_weights") -> list[Path]:
    """Each model's w as an image, on one colour scale symmetric around 0 (one colour bar)."""
    shown = first_seed(runs)
    weights = {eps: run.arrays(WEIGHTS)["w"] for eps, run in shown.items()}
    limit = max(float(np.abs(w).max()) for w in weights.values()) or 1.0
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-limit, vmax=limit)
    n = len(weights)
    fig, axes = plt.subplots(1, n + 1, figsize=(2.3 * n + 0.8, 3.2), gridspec_kw={"width_ratios": [1] * n + [0.07]})
    for ax, (eps, w) in zip(axes, weights.items(), strict=False):  # the last axis holds the colour bar
        image = ax.imshow(w.reshape(w.shape[-2:]), cmap="RdBu_r", norm=norm)
        ax.set_title(f"{model_name(eps)}\n‖w‖₁ = {np.abs(w).sum():.1f} (seed {shown[eps].seed})", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
    fig.colorbar(image, cax=axes[-1]).set_label("weight (red: towards +1 = digit 1)", fontsize=8)
    finish(fig, "Weights w of each model as 28×28 images (one shared scale)", linear_footer(runs))
    return save_figure(fig, out_dir, name)


def sample_columns(eps: np.ndarray) -> list[int]:
    """Indices of the stored epsilons nearest the blog's columns 0, 0.05, ..., 0.5 (each once)."""
    picks = [int(np.argmin(np.abs(eps - e))) for e in SAMPLE_EPS if e <= eps.max() + 1e-9]
    return list(dict.fromkeys(picks))


def digit(run: LinearRun, label: int) -> str:
    """The true digit of a -1/+1 label (-1: the first of data.digits)."""
    first, second = run.metrics["data"]["digits"]
    return str(first if label == -1 else second)


@themed
def plot_misclassified(runs: list[LinearRun], out_dir: Path, name: str = "linear_misclassified") -> list[Path]:
    """Per model (rows) and attack epsilon (columns): the misclassified attacked test image nearest the boundary,
    titled with its true digit and its score f(x)."""
    shown = first_seed(runs)
    data = {eps: run.arrays(MISCLASSIFIED) for eps, run in shown.items()}
    columns = sample_columns(next(iter(data.values()))["eps"])
    clip = bool(next(iter(data.values()))["clip"])
    fig, axes = plt.subplots(
        len(data), len(columns), figsize=(1.05 * len(columns) + 1.2, 1.25 * len(data) + 1.0), squeeze=False
    )
    for row, (eps, d) in zip(axes, data.items(), strict=True):
        for ax, c in zip(row, columns, strict=True):
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            if d["count"][c] == 0:
                ax.text(
                    0.5, 0.5, "none\nwrong", ha="center", va="center", fontsize=7, color="0.4", transform=ax.transAxes
                )
            else:
                image = d["images"][c, 0]
                ax.imshow(image.reshape(image.shape[-2:]), cmap="gray_r")  # own range per image, as the blog's figure
                ax.set_title(f"{digit(shown[eps], d['labels'][c, 0])}: f={d['scores'][c, 0]:+.2f}", fontsize=7, pad=2)
        row[0].set_ylabel(f"{model_name(eps)}\n(seed {shown[eps].seed})", fontsize=8)
    for ax, c in zip(axes[-1], columns, strict=True):
        ax.set_xlabel(f"ε={next(iter(data.values()))['eps'][c]:.2f}", fontsize=8)
    attack = "clipped to [0, 1]" if clip else "not clipped, each image shown on its own grey range"
    finish(
        fig,
        f"Misclassified attacked test images nearest the decision boundary (exact attack, {attack})",
        linear_footer(runs),
    )
    return save_figure(fig, out_dir, name)


def kde(values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Gaussian kernel density with Scott's bandwidth (numpy only)."""
    bandwidth = max(float(values.std()) * len(values) ** (-1 / 5), 1e-3)
    z = (grid[:, None] - values[None, :]) / bandwidth
    return np.exp(-0.5 * z**2).sum(axis=1) / (len(values) * bandwidth * np.sqrt(2 * np.pi))


@themed
def plot_logits(runs: list[LinearRun], out_dir: Path, name: str = "linear_logits") -> list[Path]:
    """Per model: the distribution of the scores f(x) of misclassified attacked test images, one ridge per epsilon."""
    shown = first_seed(runs)
    data = {eps: run.arrays(MISCLASSIFIED) for eps, run in shown.items()}
    scores = np.concatenate([d["all_scores"] for d in data.values()])
    lo, hi = np.percentile(scores, [0.5, 99.5]) if len(scores) else (-1.0, 1.0)
    grid = np.linspace(min(lo, -1.0), max(hi, 1.0), 400)
    palette = colors(runs)
    fig, axes = plt.subplots(
        1, len(data), figsize=(3.0 * len(data) + 0.6, 4.6), sharex=True, sharey=True, squeeze=False
    )
    for ax, (eps, d) in zip(axes[0], data.items(), strict=True):
        levels = [e for e in d["eps"] if e > 0]
        for i, level in enumerate(levels):
            values = d["all_scores"][np.isclose(d["all_eps"], level)]
            if len(values) >= 2:
                density = kde(values.astype(float), grid)
                ridge = -i + 0.9 * density / density.max()  # each ridge scaled to its own peak
                ax.fill_between(grid, -i, ridge, color=palette[eps], alpha=0.35, lw=0)
                ax.plot(grid, ridge, color=palette[eps], lw=0.8)
            ax.text(grid[-1], -i + 0.05, f"{len(values)}", fontsize=6, ha="right", va="bottom", color="0.4")
        ax.set_yticks(
            [-i for i in range(0, len(levels), 2)], [f"{levels[i]:.3g}" for i in range(0, len(levels), 2)], fontsize=7
        )
        ax.axvline(0.0, color="0.3", lw=0.8, ls=":")
        ax.set_title(f"{model_name(eps)} (seed {shown[eps].seed})", fontsize=9)
        ax.set_xlabel("score f(x) of a misclassified image")
    axes[0, 0].set_ylabel("attack ε (ridges scaled to their peak; right: count)")
    finish(
        fig,
        "Scores (logits) of misclassified attacked test images: confident mistakes lie far from 0",
        linear_footer(runs),
    )
    return save_figure(fig, out_dir, name)


@themed
def plot_hinge(runs: list[LinearRun], out_dir: Path, name: str = "linear_hinge") -> list[Path]:
    """The hinge max(0, 1 − m) and the robust hinge max(0, 1 − (m − ε‖w‖₁)) vs the margin m = y·f(x), for
    the ε‖w‖₁ of each trained robust model (its lowest seed): analytic curves, values from the runs."""
    margin = np.linspace(-2.0, 4.0, 601)
    palette = colors(runs)
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    ax.plot(
        margin, np.maximum(0, 1 - margin), color=palette.get(0.0, (0.25, 0.25, 0.25)), lw=2, label="hinge max(0, 1 − m)"
    )
    for eps, run in first_seed(runs).items():
        if eps > 0:
            shift = run.metrics["model"]["eps_w_l1"]
            ax.plot(
                margin,
                np.maximum(0, 1 - (margin - shift)),
                color=palette[eps],
                lw=1.6,
                label=f"robust hinge of the ε={eps:g} model (seed {run.seed}): ε‖w‖₁ = {shift:.2f}",
            )
    ax.axvline(0.0, color="0.5", lw=0.8, ls=":")
    ax.set_xlabel("margin m = y·f(x)  (m < 0: misclassified)")
    ax.set_ylabel("loss")
    ax.legend(fontsize=7)
    finish(fig, "Hinge vs robust hinge: the robust loss is the hinge shifted right by ε‖w‖₁", linear_footer(runs))
    return save_figure(fig, out_dir, name)


def plot_linear(multirun_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """The table (CSV, TeX) and every figure (PNG, PDF) of the linear experiment into ``out_dir``."""
    runs, out_dir = collect_linear_runs(multirun_dir), Path(out_dir)
    written = write_linear_table(runs, out_dir)
    for draw in (plot_attack, plot_weights, plot_misclassified, plot_logits, plot_hinge):
        written += draw(runs, out_dir)
    return written
