"""Figure ``operating_point``: M's robust ratio against scheme strength, one panel per scheme family, from
the logged operating_point.csv of each seed (never measures anything).

Each curve is the mean over seeds with its 95 % t band (``bands``); solid lines are the test points, dashed
ones the training points; horizontal lines mark the paper's 0.2957 (test) and 0.7128 (train). Beside the
figure: operating_point_band.csv (the plotted numbers) and operating_point_crossings.csv (each curve's
interpolated crossing strengths, ``robustness.calibration.crossing_table``).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from robustlab import results
from robustlab.errors import require
from robustlab.plotting.bands import SHARE_BAND, interval
from robustlab.plotting.style import PALETTE, finish, save_figure, share_band, themed
from robustlab.robustness.calibration import PAPER_TARGETS, crossing_table, load_results

PANELS = {
    "pixels": "pixels: k (pixels altered, at most / exactly)",
    "gaussian": "gaussian: sigma",
    "salt_pepper": "salt and pepper: rate",
    "uniform_linf": "uniform l-inf: epsilon",
    "blur": "blur: sigma (fixed width)",
}
BAND_COLUMNS = ("curve", "scheme", "param", "split", "strength", "seeds", "mean", "ci_low", "ci_high")


def band_rows(frame) -> list[dict]:
    """Mean and t interval over seeds per curve, split and strength."""
    rows = []
    for (curve, scheme, param, split, strength), part in frame.groupby(
        ["curve", "scheme", "param", "split", "strength"], sort=True
    ):
        mean, low, high = interval(part["robust_ratio"].to_numpy())
        rows.append(
            {
                "curve": curve,
                "scheme": scheme,
                "param": param,
                "split": split,
                "strength": float(strength),
                "seeds": int(part["seed"].nunique()),
                "mean": mean,
                "ci_low": low,
                "ci_high": high,
            }
        )
    return rows


def log_panels(log_x: str, rows: list[dict]) -> frozenset[str]:
    """The panels named in ``log_x`` (comma-separated), checked: known panels whose strengths are all positive."""
    wanted = frozenset(s.strip() for s in log_x.split(",") if s.strip())
    unknown = sorted(wanted - set(PANELS))
    require(not unknown, f"--log-x names unknown panel(s) {', '.join(unknown)}; panels: {', '.join(PANELS)}")
    for scheme in sorted(wanted):
        low = min((r["strength"] for r in rows if r["scheme"] == scheme), default=1.0)
        require(low > 0, f"--log-x {scheme}: its grid holds strength {low:g}, which a log axis cannot show")
    return wanted


@themed
def draw(rows: list[dict], frame, out_dir: Path, name: str, log_x: frozenset[str] = frozenset()) -> list[Path]:
    schemes = [s for s in PANELS if any(r["scheme"] == s for r in rows)]
    fig, axes = plt.subplots(1, len(schemes), figsize=(3.3 * len(schemes), 3.9), squeeze=False, sharey=True)
    for ax, scheme in zip(axes[0], schemes, strict=True):
        curves = list(dict.fromkeys(r["curve"] for r in rows if r["scheme"] == scheme))
        for color, curve in zip(PALETTE * 4, curves, strict=False):  # the palette repeated: longer than the curves
            for split, style in (("test", "-"), ("train", "--")):
                part = [r for r in rows if r["curve"] == curve and r["split"] == split]
                if not part:
                    continue
                x = np.array([r["strength"] for r in part])
                mean, low, high = (np.array([r[k] for r in part]) for k in ("mean", "ci_low", "ci_high"))
                label = curve.removeprefix(f"{scheme}_") if curve != scheme else "M"
                ax.plot(x, mean, style, marker="o", ms=3, color=color, label=f"{label} ({split})")
                if not np.isnan(low).all():
                    ax.fill_between(x, *share_band(low, high), color=color, alpha=0.2, lw=0)
        for split, target in PAPER_TARGETS.items():
            ax.axhline(target, color="0.3", lw=0.8, ls=":" if split == "train" else "-.")
        ax.set_title(PANELS[scheme], fontsize=8)
        ax.set_xlabel("strength (log scale)" if scheme in log_x else "strength")
        if scheme in log_x:  # ticks at 1 and 3 per decade, labelled as plain numbers (10, 30, 100), no minor labels
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 3.0)))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=6, loc="upper right")  # the curves fall from the upper left: that corner is free
    axes[0][0].set_ylabel("robust ratio of M")
    seeds = sorted(frame["seed"].unique())
    max_steps = "/".join(str(m) for m in sorted(frame["max_steps"].unique()))
    points = ", ".join(f"{s} {int(n)}" for s, n in frame.groupby("split")["points"].max().items())
    note = (
        f"MAX_STEPS {max_steps}; points: {points}; band: {SHARE_BAND}; "
        f"lines: paper {PAPER_TARGETS['test']} (test, dash-dot), {PAPER_TARGETS['train']} (train, dotted)"
    )
    finish(
        fig,
        "Robust ratio of M against scheme strength (solid: test points, dashed: training points)",
        f"{note}; seeds {'/'.join(str(s) for s in seeds)}",
    )
    return save_figure(fig, out_dir, name)


def plot_operating_point(
    multirun: str | Path, out_dir: str | Path, name: str = "operating_point", log_x: str = ""
) -> list[Path]:
    """The figure (PNG, PDF), its bands (``name``_band.csv) and crossings (``name``_crossings.csv); the panels in
    ``log_x`` (comma-separated scheme names) get a log strength axis."""
    frame, out_dir = load_results(Path(multirun)), Path(out_dir)
    rows = band_rows(frame)
    written = draw(rows, frame, out_dir, name, log_panels(log_x, rows))
    written.append(results.write_table(out_dir / f"{name}_band.csv", {c: [r[c] for r in rows] for c in BAND_COLUMNS}))
    table = crossing_table(frame)
    written.append(
        results.write_table(out_dir / f"{name}_crossings.csv", {c: table[c].tolist() for c in table.columns})
    )
    return written
