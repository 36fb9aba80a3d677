"""The report's "Does robust-subset retraining help?": M, M_rand and M_R at each operating point, read from the
runs' metrics.json, and a verdict sentence per point computed by ``verdict`` (tested) from the numbers.

The claim is judged as M_R vs M_rand (the same class counts drawn at random from the whole training set,
the same budget), not only M_R vs M: a gain over M alone could come from training on fewer images. The
comparison is paired by seed (the same M, data split and test points), with the Student's t interval of
the mean difference over seeds (``stats.paired_difference``).
"""

from __future__ import annotations

import math
from pathlib import Path

from robustlab.errors import RobustlabError
from robustlab.report.claims import measured
from robustlab.report.tables import Table, group_runs, num
from robustlab.stats import Interval, paired_difference, t_mean

# (run group, dataset label); a group without runs is left out of the section with one line.
GROUPS = (
    ("rpr_mnist", "MNIST-10k"),
    ("rpr_calibrated", "MNIST-10k"),
    ("rpr_fashion", "Fashion-MNIST"),
    ("rpr_fashion_calibrated", "Fashion-MNIST"),
)
# Another dataset's operating-point group, shown before that dataset's first retraining table (MNIST's comes first).
CROSSINGS_BEFORE = {"rpr_fashion": ("operating_point_fashion", " on Fashion-MNIST")}
MODELS = (("M", "M"), ("M_rand", "M_rand (random subset, same class counts)"), ("M_R", "M_R (robust subset)"))
TITLE = "Does robust-subset retraining help?"


def point_of(run: dict) -> str:
    """The operating point a run measured: literal (the configured scheme) or calibrated (curve, target, value)."""
    cal = run.get("calibration")
    if not cal:
        return f"literal: {run.get('perturbation')}"
    if cal.get("strength") is None:  # the curve never reached the target: the run measured nothing
        return (
            f"calibrated: {cal['curve']} ({cal['split']} ratio {cal['target']} not crossed at the measured strengths)"
        )
    return (
        f"calibrated: {run.get('perturbation')} ({cal['split']} ratio {cal['target']} crossed at "
        f"{cal['param']} = {cal['strength']:.4g})"
    )


def by_point(runs: list[dict]) -> dict[str, list[dict]]:
    points: dict[str, list[dict]] = {}
    for run in runs:
        points.setdefault(point_of(run), []).append(run)
    return points


def _values(runs: list[dict], key: str) -> list[float]:
    out = []
    for run in runs:
        v = measured(run, key)
        out.append(math.nan if v is None else float(v))
    return out


def _ci(values: list[float]) -> tuple[Interval | None, int]:
    finite = [v for v in values if not math.isnan(v)]
    return (t_mean(finite) if finite else None), len(finite)


def cell(interval: Interval | None) -> str:
    if interval is None:
        return "-"
    if interval.degenerate:
        return f"{num(interval.mean)} (n=1)"
    return f"{num(interval.mean)} [{num(interval.low)}, {num(interval.high)}]"


def verdict(m_r: list[float], m_rand: list[float], skipped: int = 0, reason: str = "") -> str:
    """The sentence for one operating point, from the seeds' robust ratios of M_R and M_rand (paired by seed).

    Rule: the 95 % t interval of the mean paired difference M_R - M_rand excludes 0 above (M_R more robust:
    the robust images helped beyond their number), below (less robust), or includes it (no difference shown).
    Fewer than two seeds with both models: nothing can be said.
    """
    pairs = [(a, b) for a, b in zip(m_r, m_rand, strict=True) if not (math.isnan(a) or math.isnan(b))]
    prefix = f"M_R not trained in {skipped} seed(s) ({reason}). " if skipped else ""
    if len(pairs) < 2:
        return prefix + f"M_R vs M_rand: {len(pairs)} seed(s) with both models, too few for an interval; no verdict."
    diff = paired_difference([a for a, _ in pairs], [b for _, b in pairs])
    text = (
        f"robust ratio M_R - M_rand = {diff.mean:+.4f}, 95% t CI [{diff.low:+.4f}, {diff.high:+.4f}] "
        f"over {diff.n} seeds"
    )
    if diff.low > 0:
        return prefix + f"M_R is more robust than M_rand ({text}): the robust images helped beyond their number."
    if diff.high < 0:
        return prefix + f"M_R is less robust than M_rand ({text}): choosing robust images hurt robustness."
    return prefix + f"No difference between M_R and M_rand is shown ({text}): the interval includes 0."


def point_table(dataset: str, group: str, point: str, runs: list[dict], profile: str) -> Table:
    rows = []
    for key, name in MODELS:
        acc, n_acc = _ci(_values(runs, f"{key}.test_accuracy"))
        ratio, n = _ci(_values(runs, f"{key}.test.robust_ratio"))
        size = (
            ""
            if key == "M"
            else "/".join(sorted({str(v) for v in (_size(r, key) for r in runs) if v is not None})) or "-"
        )
        rows.append([name, size or str(measured(runs[0], "data.train_images")), cell(acc), cell(ratio), str(n)])
    skipped = [r for r in runs if r.get("retrain_skipped")]
    train = _ci(_values(runs, "M_train.robust_ratio"))[0]
    not_reached = [r["calibration_not_reached"] for r in runs if r.get("calibration_not_reached")]
    if not_reached:  # a finding, not a failure: no strength within the measured ones gives the paper's number
        return Table(
            f"{TITLE} {dataset}, {point.split(':')[0]}",
            note=(
                f"{dataset}, {point}; run group `reproduce/{profile}/{group}`, {len(not_reached)} seed(s): nothing "
                f"measured, because {not_reached[0]}."
            ),
        )
    sentence = verdict(
        _values(runs, "M_R.test.robust_ratio"),
        _values(runs, "M_rand.test.robust_ratio"),
        len(skipped),
        skipped[0]["retrain_skipped"] if skipped else "",
    )
    points = "/".join(sorted({str(measured(r, "M.test.points")) for r in runs}))
    caption = (
        f"{dataset}, {point}; run group `reproduce/{profile}/{group}`; {points} test points; M's robust fraction of "
        f"the training points {cell(train)}. Mean over seeds with its 95% Student's t interval; n: seeds. "
        f"Verdict: {sentence}"
    )
    return Table(
        f"{TITLE} {dataset}, {point.split(':')[0]}",
        caption,
        ["model", "training images", "test accuracy", "robust ratio (test)", "n"],
        rows,
        "lrllr",
    )


def _size(run: dict, key: str):
    return measured(run, "subset.subset_size") if key == "M_R" else measured(run, "M_rand.train_images")


def retraining_tables(root: Path, profile: str) -> list[Table]:
    """One table per (run group, operating point); a note for each group without a finished run."""
    tables = []
    for group, dataset in GROUPS:
        if group in CROSSINGS_BEFORE:  # Fashion-MNIST's own operating points, where they were measured
            crossings = operating_points(root, profile, *CROSSINGS_BEFORE[group])
            tables += [crossings] if crossings.rows else []
        runs = group_runs(root, profile, group)
        if not runs:
            tables.append(
                Table(
                    f"{TITLE} {dataset}, {group}",
                    note=f"`reproduce/{profile}/{group}` holds no finished run: nothing to compare here.",
                )
            )
            continue
        for point, part in by_point(runs).items():
            tables.append(point_table(dataset, group, point, part, profile))
    return tables


TOLERANCE = 0.05  # a ratio within this of the paper's number counts as "gives" it (the report states the value)


def both_targets(test_at_train: float, train_at_test: float, targets: dict, tolerance: float = TOLERANCE) -> bool:
    """Whether one strength gives both of the paper's numbers: at the test crossing the training fraction is
    within ``tolerance`` of its target, and at the training crossing the test ratio is within it of its own."""
    return (
        not math.isnan(train_at_test)
        and abs(train_at_test - targets["train"]) <= tolerance
        and not math.isnan(test_at_train)
        and abs(test_at_train - targets["test"]) <= tolerance
    )


def _strength(value) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4g}"


def operating_points(root: Path, profile: str, group: str = "operating_point", dataset: str = "") -> Table:
    """Each curve's crossing strengths (an operating-point group) and whether one strength gives both targets."""
    # Imported here: the robustness package pulls in torch, which `robustlab-report --help` should not wait for.
    from robustlab.robustness.calibration import PAPER_TARGETS, crossing_table, load_results

    title = f"Operating point{dataset}: where M's curves cross the paper's numbers"
    folder = Path(root) / "reproduce" / profile / group
    try:
        table = crossing_table(load_results(folder))
    except RobustlabError:
        return Table(title, note=f"`reproduce/{profile}/{group}` holds no finished run: no crossings to show.")
    rows, sentences = [], []
    for _, r in table.iterrows():
        rows.append(
            [
                r["curve"],
                r["param"],
                _strength(r["test_crossing"]),
                num(r["train_at_test_crossing"]),
                _strength(r["train_crossing"]),
                num(r["test_at_train_crossing"]),
                str(r["seeds"]),
            ]
        )
        if (
            r["test_crossing"] is not None
            and r["train_crossing"] is not None
            and not (math.isnan(r["test_crossing"]) or math.isnan(r["train_crossing"]))
        ):
            both = both_targets(r["test_at_train_crossing"], r["train_at_test_crossing"], PAPER_TARGETS)
            sentences.append(
                f"{r['curve']}: {'one' if both else 'no single'} strength gives both "
                f"(test {PAPER_TARGETS['test']} at {r['param']} {_strength(r['test_crossing'])}, training fraction "
                f"there {num(r['train_at_test_crossing'])}; train {PAPER_TARGETS['train']} at "
                f"{_strength(r['train_crossing'])}, test ratio there {num(r['test_at_train_crossing'])})"
            )
    if not sentences:  # whether one strength meets both numbers needs a curve that crosses both
        sentences = [
            "No curve crosses both targets within the measured strengths, "
            "so whether one strength gives both is not shown"
        ]
    caption = (
        "Crossings of the mean curve over seeds, interpolated between measured strengths ('-': not crossed within "
        f"them). A ratio within {TOLERANCE} of the paper's counts as meeting it. " + "; ".join(sentences) + "."
    )
    return Table(
        title,
        caption,
        [
            "curve",
            "parameter",
            f"test crosses {PAPER_TARGETS['test']} at",
            "train fraction there",
            f"train crosses {PAPER_TARGETS['train']} at",
            "test ratio there",
            "seeds",
        ],
        rows,
        "llrrrrr",
    )


def retraining_section(root: Path, profile: str) -> list[Table]:
    """Everything of the report's section, in order: the operating points, then M / M_rand / M_R per point."""
    return [operating_points(root, profile)] + retraining_tables(root, profile)
