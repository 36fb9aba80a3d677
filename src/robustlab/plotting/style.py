"""What every figure shares: the theme, the provenance footer, the robust-ratio curve and saving.

Figures are rendered to bytes and renamed into place, so an interrupted plot never leaves a
truncated PNG/PDF that looks like a finished figure.
"""

from __future__ import annotations

import functools
import io
import textwrap
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: plots are made on servers and in CI without a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402

from robustlab.results import atomic_write_bytes  # noqa: E402

FORMATS = ("png", "pdf")
PALETTE = sns.color_palette("colorblind")
MODEL_COLORS = {"M": PALETTE[0], "M_R": PALETTE[1]}  # the same model keeps its colour across figures
MODEL_NAMES = {"M": r"$\mathcal{M}$", "M_R": r"$\mathcal{M}_R$"}  # the paper's notation
_RC = {**sns.axes_style("whitegrid"), **sns.plotting_context("notebook", font_scale=0.85), "savefig.dpi": 150}


def themed(draw: Callable) -> Callable:
    """Draw under the project's theme without changing the caller's matplotlib settings."""

    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        with plt.rc_context(_RC):
            return draw(*args, **kwargs)

    return wrapper


def distinct(values: Iterable) -> list:
    number = lambda v: isinstance(v, (int, float))  # noqa: E731  (so 50 sorts before 100)
    return sorted(set(values), key=lambda v: (not number(v), v if number(v) else 0, str(v)))


def joined(values: Iterable) -> str:
    return "/".join(str(v) for v in distinct(values))


def provenance(runs: Sequence[dict], parts: list[str], quick_note: str = "subset run, not paper-scale") -> str:
    """Footer line: the profile(s) first, then ``parts``, then the seed(s).

    Quick-profile figures say so prominently: their numbers check the machinery, not the source.
    """
    profiles = distinct(r.get("profile", "?") for r in runs)
    profile = " + ".join(f"{p} profile" + (f" ({quick_note})" if p == "quick" else "") for p in profiles)
    seeds = distinct(r.get("seed", "?") for r in runs)
    return " · ".join([profile, *parts, ("seed " if len(seeds) == 1 else "seeds ") + joined(seeds)])


def footer(runs: dict | Sequence[dict]) -> str:
    """Provenance of RPR figures from one run's metrics (or several): data, scheme, MAX_STEPS."""
    runs = [runs] if isinstance(runs, dict) else list(runs)
    data = joined(f"{r['data']['name']}, {r['data']['train_images']} train images" for r in runs)
    points = joined(r["M"]["test"]["points"] for r in runs if "M" in r)
    schemes = distinct(r.get("perturbation", "?") for r in runs)
    scheme = schemes[0] if len(schemes) == 1 else f"{len(schemes)} perturbation settings"
    return provenance(
        runs,
        [f"{data}, RPR on {points} test points", scheme, f"MAX_STEPS={joined(r.get('max_steps', '?') for r in runs)}"],
    )


def finish(fig: plt.Figure, title: str, footer_text: str) -> None:
    """Title on top, provenance footer below, and a layout that keeps the footer clear of the axes."""
    fig.suptitle(title, fontsize=11)
    width_in, height_in = fig.get_size_inches()
    lines = textwrap.wrap(footer_text, width=max(40, int(width_in * 17)))  # ~17 footer characters per inch
    fig.text(0.5, 0.01, "\n".join(lines), ha="center", va="bottom", fontsize=7, color="0.35")
    fig.tight_layout(rect=(0, (0.15 * len(lines) + 0.1) / height_in, 1, 1))


def render(fig: plt.Figure, fmt: str) -> bytes:
    buffer = io.BytesIO()
    # No creation date in the PDF: the same results give byte-identical figures.
    metadata = {"CreationDate": None} if fmt == "pdf" else None
    fig.savefig(buffer, format=fmt, bbox_inches="tight", metadata=metadata)
    return buffer.getvalue()


def save_figure(fig: plt.Figure, out_dir: str | Path, name: str) -> list[Path]:
    """Write ``name``.png and ``name``.pdf atomically into ``out_dir``; closes the figure."""
    try:
        return [atomic_write_bytes(Path(out_dir) / f"{name}.{fmt}", render(fig, fmt)) for fmt in FORMATS]
    finally:
        plt.close(fig)


def share_band(low, high) -> tuple[np.ndarray, np.ndarray]:
    """A share's band as drawn: the interval clipped to [0, 1] (NaN stays NaN: no band).

    A share (robust ratio, accuracy) lies in [0, 1], but a t interval over a few seeds can reach past it;
    the band is drawn within [0, 1] and the tables (*_band.csv) keep the interval as computed.
    """
    return np.clip(np.asarray(low, float), 0.0, 1.0), np.clip(np.asarray(high, float), 0.0, 1.0)


def draw_curve(
    ax: plt.Axes,
    steps: np.ndarray,
    ratio: np.ndarray,
    label: str,
    color,
    *,
    secondary: bool = False,
    band: tuple[np.ndarray, np.ndarray] | None = None,
    end_label: str | None = "above",
) -> None:
    """One robust-ratio-vs-MAX_STEPS line; ``secondary`` draws it thin and dashed beside a main one.

    ``band`` (low, high) shades the spread over seeds. ``end_label`` ("above", "below" or None)
    marks the value at the largest MAX_STEPS, the number the paper quotes; callers put the label of
    the higher of two close curves above and the other below so they never collide.
    """
    ax.plot(steps, ratio, label=label, color=color, lw=1.0 if secondary else 2.0, ls="--" if secondary else "-")
    if band is not None:
        ax.fill_between(steps, *share_band(*band), color=color, alpha=0.2, lw=0)
    if end_label and len(steps):
        ax.plot(steps[-1], ratio[-1], "o", color=color, ms=4 if secondary else 6)
        up = end_label == "above"
        ax.annotate(
            f"{ratio[-1]:.3f}",
            (steps[-1], ratio[-1]),
            xytext=(-4, 5 if up else -5),
            textcoords="offset points",
            ha="right",
            va="bottom" if up else "top",
            fontsize=8,
            color=color,
        )


def ratio_axes(ax: plt.Axes) -> None:
    """Axis labels and limits shared by every robust-ratio plot, so figures compare at a glance."""
    ax.set_xlabel("MAX_STEPS (random perturbations tried per image)")
    ax.set_ylabel("robust ratio")
    ax.set_ylim(0, 1.02)
    ax.set_xlim(left=0)
