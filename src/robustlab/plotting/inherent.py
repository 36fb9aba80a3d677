"""Figures of issue 13 from logged runs only: per-point agreement across models (experiment=rpr_inherent)
and RPR beside exact and certified robustness (experiment=rpr_vs_exact).

  inherent_agreement   Cohen's kappa and Spearman's rho between every two runs, per operating point,
                       with the class-only baseline as the last row (table: inherent_agreement.csv)
  hardest_points       test images every model finds among its least robust, and images every model
                       finds robust, each with the range of its p̂ intervals over the models
  inherent_per_class   within-class kappa per kind of pair (the class-only baseline is 0 there by construction)
  rpr_vs_exact         p̂ against the exact linear distance and the CNN's PGD / IBP radius bounds, and
                       the share of RPR-robust points certified at each epsilon
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from robustlab import results
from robustlab.errors import require
from robustlab.plotting.style import PALETTE, finish, provenance, save_figure, themed
from robustlab.runs.schema import read_metrics as read_run_metrics  # older schema versions get today's key names

MEASURES = {"kappa": "Cohen's κ of robust labels", "spearman": "Spearman's ρ of retries survived"}
KIND_ORDER = ["retest", "training_seed", "architecture"]
SHOWN = 8  # images per row of hardest_points


def agreement_matrix(table: pd.DataFrame, runs: list[str], measure: str) -> np.ndarray:
    """runs x runs (1 on the diagonal) plus a last row: the class-only baseline against each run (mean over sources)."""
    matrix = np.full((len(runs) + 1, len(runs)), np.nan)
    position = {name: i for i, name in enumerate(runs)}
    np.fill_diagonal(matrix[: len(runs)], 1.0)
    for row in table.itertuples():
        if row.kind == "class_only" or row.a not in position or row.b not in position:
            continue
        i, j = position[row.a], position[row.b]
        matrix[i, j] = matrix[j, i] = getattr(row, measure)
    for j, name in enumerate(runs):
        base = table[(table["kind"] == "class_only") & (table["b"] == name)][measure]
        matrix[-1, j] = base.mean() if len(base) else np.nan
    return matrix


def _runs(metrics: dict) -> list[str]:
    return [*metrics["models"], metrics["retest"]]


def _footer(metrics: dict) -> str:
    d = metrics["data"]
    return provenance(
        [metrics],
        [
            f"{d['name']}, {d['train_images']} train images, RPR on {d['test_points']} test points",
            f"MAX_STEPS={metrics['max_steps']}",
        ],
    )


@themed
def agreement_figure(run: Path, metrics: dict, out: Path) -> list[Path]:
    points = list(metrics["operating_points"])
    runs = _runs(metrics)
    fig, axes = plt.subplots(len(points), 2, figsize=(10.5, 4.2 * len(points)), squeeze=False)
    rows = []
    for r, point in enumerate(points):
        table = pd.read_csv(run / f"agreement_{point}.csv")
        rows.append(
            table.assign(operating_point=point, perturbation=metrics["operating_points"][point]["perturbation"])
        )
        for c, (measure, title) in enumerate(MEASURES.items()):
            ax, matrix = axes[r, c], agreement_matrix(table, runs, measure)
            image = ax.imshow(matrix, vmin=-0.2, vmax=1.0, cmap="viridis")
            for (i, j), value in np.ndenumerate(matrix):
                if not np.isnan(value):
                    ax.text(
                        j,
                        i,
                        f"{value:.2f}",
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if value < 0.6 else "black",
                    )
            ax.set_xticks(range(len(runs)), runs, rotation=40, ha="right")
            ax.set_yticks(range(len(runs) + 1), [*runs, "class only"])
            ax.grid(False)
            ax.set_title(f"{title}\n{point}: {metrics['operating_points'][point]['perturbation']}", fontsize=9)
            fig.colorbar(image, ax=ax, shrink=0.8)
    finish(fig, "Per-point agreement of RPR robustness across models", _footer(metrics))
    written = save_figure(fig, out, "inherent_agreement")
    frame = pd.concat(rows)
    written.append(results.write_table(out / "inherent_agreement.csv", {k: frame[k].to_numpy() for k in frame.columns}))
    return written


def _interval_text(rpr: dict[str, pd.DataFrame], where: int) -> str:
    """p̂ range and the union of the intervals over the models that classify the point correctly."""
    measured = [t.iloc[where] for t in rpr.values() if t["trials"].iloc[where] > 0]
    wrong = len(rpr) - len(measured)
    if not measured:
        return f"clean-misclassified\nby all {len(rpr)} models"
    hats = [float(r["p_hat"]) for r in measured]
    text = f"p̂ {min(hats):.2f}–{max(hats):.2f}\nCI ⊂ [{min(float(r['p_low']) for r in measured):.2f}, "
    text += f"{max(float(r['p_high']) for r in measured):.2f}]"
    return text + (f"\n{wrong} clean-wrong" if wrong else "")


@themed
def hardest_figure(run: Path, metrics: dict, out: Path, point: str) -> list[Path]:
    rpr = {name: pd.read_csv(run / f"rpr_{point}_{name}.csv") for name in metrics["models"]}
    arrays = results.read_arrays(run / "points.npz")
    from robustlab.robustness.agreement import least_robust  # the same set definition as the agreement table

    fraction = metrics["least_fraction"]
    hard = np.logical_and.reduce([least_robust(t["steps"].to_numpy(), fraction) for t in rpr.values()])
    easy = np.logical_and.reduce([t["robust"].to_numpy() == 1 for t in rpr.values()])
    fig, axes = plt.subplots(2, SHOWN, figsize=(1.45 * SHOWN, 4.4), squeeze=False)
    for r, (mask, what) in enumerate(((hard, "least robust for every model"), (easy, "robust for every model"))):
        # Points some model classifies correctly first: their perturbations, not their clean errors, make them hard.
        wrong_count = sum((t["trials"].to_numpy() == 0).astype(int) for t in rpr.values())
        chosen = np.flatnonzero(mask)[np.argsort(wrong_count[mask], kind="stable")][:SHOWN]
        for c in range(SHOWN):
            ax = axes[r, c]
            ax.axis("off")
            if c < len(chosen):
                k = chosen[c]
                ax.imshow(arrays["images"][k, 0], cmap="gray", vmin=0, vmax=1)
                ax.set_title(
                    f"label {arrays['labels'][k]} (#{arrays['index'][k]})\n{_interval_text(rpr, k)}", fontsize=6
                )
        axes[r, 0].text(
            -0.1,
            0.5,
            f"{what}\n({int(mask.sum())} of {len(mask)})",
            transform=axes[r, 0].transAxes,
            ha="right",
            va="center",
            fontsize=7,
        )
    finish(
        fig,
        f"Test images all {len(rpr)} models agree on ({point} operating point)",
        _footer(metrics) + " · p̂ range and 95% Clopper–Pearson intervals over the models",
    )
    return save_figure(fig, out, "hardest_points")


@themed
def per_class_figure(run: Path, metrics: dict, out: Path) -> list[Path]:
    points = list(metrics["operating_points"])
    fig, axes = plt.subplots(1, len(points), figsize=(5.2 * len(points), 3.6), squeeze=False)
    for ax, point in zip(axes[0], points, strict=True):
        table = pd.read_csv(run / f"agreement_per_class_{point}.csv")
        classes = sorted(table["class"].unique())
        width = 0.8 / len(KIND_ORDER)
        for k, kind in enumerate(KIND_ORDER):
            mean = table[table["kind"] == kind].groupby("class")["kappa"].mean().reindex(classes)
            ax.bar(
                np.arange(len(classes)) + (k - 1) * width,
                mean.to_numpy(),
                width,
                label=kind.replace("_", " "),
                color=PALETTE[k],
            )
        ax.axhline(0, color="0.3", lw=0.8)
        ax.set_xticks(range(len(classes)), classes)
        ax.set_xlabel("class")
        ax.set_ylabel("within-class Cohen's κ (mean over pairs)")
        ax.set_title(point, fontsize=9)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3)
    finish(fig, "Agreement on which points of a class are robust (class-only baseline: 0)", _footer(metrics))
    return save_figure(fig, out, "inherent_per_class")


def plot_inherent(run: Path, out: Path) -> list[Path]:
    run, out = Path(run), Path(out)
    metrics = read_run_metrics(run)
    require(metrics.get("pipeline") == "rpr_inherent", f"{run} is not a run of experiment=rpr_inherent")
    first = next(iter(metrics["operating_points"]))
    return [
        *agreement_figure(run, metrics, out),
        *hardest_figure(run, metrics, out, first),
        *per_class_figure(run, metrics, out),
    ]


@themed
def exact_figure(run: Path, metrics: dict, out: Path) -> list[Path]:
    linear = list(metrics["linear"])
    eps = [f"{e:g}" for e in metrics["rpr_epsilons"]]
    panels = len(linear) + 2
    fig, axes = plt.subplots(1, panels, figsize=(3.9 * panels, 3.8), squeeze=False)
    axes = axes[0]
    for ax, name in zip(axes, linear, strict=False):  # the last two panels are not linear models
        table = pd.read_csv(run / f"linear_{name}.csv")
        keep = table["exact_clipped"] > 0
        for k, e in enumerate(eps):
            ax.scatter(
                table["exact_clipped"][keep],
                table[f"p_hat_{e}"][keep] + 0.01 * k,
                s=5,
                alpha=0.5,
                color=PALETTE[k],
                label=f"RPR ε={e}",
            )
        ax.set_xlabel("exact l∞ distance to the boundary (clipped)")
        ax.set_ylabel("RPR p̂ (uniform l∞ noise; offset per ε)")
        ax.set_title(f"linear 0 vs 1, trained ε={name}", fontsize=9)
    cnn = pd.read_csv(run / "cnn.csv")
    ok = cnn["correct"] == 1
    ax = axes[len(linear)]
    e = eps[-1]  # the largest radius: the most points flip, so p̂ ranks the most
    upper = np.minimum(cnn["pgd_upper"][ok], metrics["cnn"]["eps_max"])
    ax.hlines(cnn[f"p_hat_{e}"][ok], cnn["ibp_lower"][ok], upper, color="0.7", lw=0.6)
    ax.scatter(upper, cnn[f"p_hat_{e}"][ok], s=8, color=PALETTE[0], label="PGD upper bound")
    ax.scatter(
        cnn["ibp_lower"][ok],
        cnn[f"p_hat_{e}"][ok],
        s=8,
        color=PALETTE[1],
        marker="x",
        label="IBP certified lower bound",
    )
    ax.set_xlabel("minimal adversarial l∞ radius (bounds)")
    ax.set_ylabel(f"RPR p̂ at ε={e}")
    ax.set_title("simple CNN, 10 classes", fontsize=9)
    ax = axes[-1]
    x = [float(v) for v in eps]
    for k, name in enumerate(linear):
        ax.plot(
            x,
            [_val(metrics["linear"][name]["per_eps"][v]["certified_share_of_rpr_robust"]) for v in eps],
            "o-",
            color=PALETTE[k],
            label=f"linear ε={name}: exactly robust",
        )
    c = metrics["cnn"]["per_eps"]
    ax.plot(
        x,
        [_val(c[v]["certified_share_of_rpr_robust"]) for v in eps],
        "s-",
        color=PALETTE[3],
        label="CNN: IBP-certified",
    )
    ax.plot(
        x,
        [_val(c[v]["pgd_broken_share_of_rpr_robust"]) for v in eps],
        "s--",
        color=PALETTE[4],
        label="CNN: broken by PGD",
    )
    ax.set_xlabel("ε")
    ax.set_ylabel("share of RPR-robust points")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("RPR-robust at ε: certified / broken at ε", fontsize=9)
    for a in axes:
        a.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=1)
    finish(
        fig,
        "RPR beside exact and certified robustness, per point",
        provenance([metrics], [f"MAX_STEPS={metrics['max_steps']}", f"CNN: {metrics['cnn']['points']} test points"]),
    )
    return save_figure(fig, out, "rpr_vs_exact")


def _val(value) -> float:
    return np.nan if value is None else value


def plot_rpr_vs_exact(run: Path, out: Path) -> list[Path]:
    run, out = Path(run), Path(out)
    metrics = read_run_metrics(run)
    require(metrics.get("pipeline") == "rpr_vs_exact", f"{run} is not a run of experiment=rpr_vs_exact")
    return exact_figure(run, metrics, out)
