"""The corruption schemes per severity, from a multirun of experiment=rpr_sweep over corruptions and
severities run with ``rpr.perturbed_examples`` > 0: one row per corruption, the clean image then one
column per severity showing the image the run perturbed at retry 1 (``examples_perturbed.npz``) and
that run's robust ratio. A CSV holds the ratios (one row per run) so the figure's numbers can be quoted.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from robustlab import results
from robustlab.errors import require
from robustlab.plotting.rpr import job_dirs, notice, read_metrics, show_image
from robustlab.plotting.style import finish, footer, save_figure, themed

EXAMPLES = "examples_perturbed.npz"
CSV_COLUMNS = ("scheme", "severity", "seed", "max_steps", "points", "robust_ratio", "test_accuracy", "run_dir")


def load_cells(multirun: Path) -> list[dict]:
    """One cell per finished job that logged perturbed examples of a scheme with a severity."""
    require(multirun.is_dir(), f"multirun directory not found: {multirun}")
    cells = []
    for job in job_dirs(multirun):
        if not (job / results.METRICS).is_file() or not (job / EXAMPLES).is_file():
            notice(
                f"skipped job {job.name} ({job}): no {results.METRICS} or {EXAMPLES} "
                "(unfinished, or rpr.perturbed_examples=0)"
            )
            continue
        metrics = read_metrics(job)
        severity = metrics.get("config", {}).get("perturbation", {}).get("severity")
        if severity is None:
            notice(f"skipped job {job.name} ({job}): scheme {metrics.get('scheme')} has no severity")
            continue
        cells.append(
            {
                "scheme": metrics["scheme"],
                "severity": int(severity),
                "metrics": metrics,
                "run_dir": job,
                "examples": results.read_arrays(job / EXAMPLES),
            }
        )
    require(
        len(cells) > 0,
        f"no finished job in {multirun} logged {EXAMPLES} of a scheme with severities; run "
        "robustlab -m experiment=rpr_sweep perturbation=rotation,fog perturbation.severity=1,3,5 "
        "rpr.perturbed_examples=4",
    )
    return sorted(cells, key=lambda c: (c["scheme"], c["severity"], c["metrics"]["seed"]))


@themed
def draw_grid(cells: list[dict], out_dir: Path, name: str, point: int) -> list[Path]:
    schemes = list(dict.fromkeys(c["scheme"] for c in cells))
    severities = sorted({c["severity"] for c in cells})
    fig, axes = plt.subplots(
        len(schemes),
        len(severities) + 1,
        figsize=(1.25 * (len(severities) + 1), 1.35 * len(schemes) + 0.9),
        squeeze=False,
    )
    for row, scheme in enumerate(schemes):
        mine: dict[int, dict] = {}
        for cell in cells:  # sorted by seed: the first seed's draw stands for its severity
            if cell["scheme"] == scheme:
                mine.setdefault(cell["severity"], cell)
        first = next(iter(mine.values()))["examples"]
        show_image(axes[row, 0], first["images"][point])
        axes[row, 0].set_ylabel(scheme.replace("_", " "), fontsize=8)
        axes[row, 0].set_title("clean" if row == 0 else "", fontsize=8)
        for col, severity in enumerate(severities, start=1):
            ax = axes[row, col]
            if severity not in mine:
                ax.axis("off")
                continue
            show_image(ax, mine[severity]["examples"]["perturbed"][point, 0])
            ratio = mine[severity]["metrics"]["M"]["test"]["robust_ratio"]
            ax.set_title(f"severity {severity}\nratio {ratio:.2f}" if row == 0 else f"ratio {ratio:.2f}", fontsize=7)
    finish(
        fig,
        "Corruptions per severity: one draw (retry 1) and the robust ratio of M",
        footer([c["metrics"] for c in cells]),
    )
    return save_figure(fig, out_dir, name)


def write_csv(cells: list[dict], path: Path) -> Path:
    rows = [
        {
            "scheme": c["scheme"],
            "severity": c["severity"],
            "seed": c["metrics"]["seed"],
            "max_steps": c["metrics"]["max_steps"],
            "points": c["metrics"]["M"]["test"]["points"],
            "robust_ratio": c["metrics"]["M"]["test"]["robust_ratio"],
            "test_accuracy": c["metrics"]["M"]["test_accuracy"],
            "run_dir": str(c["run_dir"]),
        }
        for c in cells
    ]
    return results.write_table(path, {k: [r[k] for r in rows] for k in CSV_COLUMNS})


def plot_corruptions(
    multirun: str | Path, out_dir: str | Path, name: str = "corruptions", point: int = 0
) -> list[Path]:
    """The grid (PNG, PDF) and ``name``.csv into ``out_dir``; returns the written paths."""
    cells, out_dir = load_cells(Path(multirun)), Path(out_dir)
    shown = min(len(c["examples"]["images"]) for c in cells)
    require(0 <= point < shown, f"--point {point} is not among the {shown} logged examples")
    return draw_grid(cells, out_dir, name, point) + [write_csv(cells, out_dir / f"{name}.csv")]
