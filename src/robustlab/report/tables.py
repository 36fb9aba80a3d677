"""The report's "Other measured results": numbers the claims tables do not cover, read from the runs' metrics.json.

One function per table; each returns a ``Table`` of text cells (or a one-line note when its run
group has no finished run), which ``robustlab.report.cli`` renders as Markdown and LaTeX like the
claims tables. Nothing is trained or recomputed here except the t intervals over seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from robustlab.errors import RobustlabError
from robustlab.report.claims import measured  # a dotted metrics key; None where absent (older runs lack newer keys)
from robustlab.runs.discover import find_runs, group_folders
from robustlab.runs.io import read_json_object
from robustlab.runs.layout import TIMINGS, group_dir, profile_dir
from robustlab.runs.store import read_metrics
from robustlab.stats import t_mean


@dataclass(frozen=True)
class Table:
    title: str
    caption: str = ""
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    align: str = ""  # one l/r per column, for LaTeX
    note: str = ""  # set instead of rows when the table cannot be made (its runs are missing)


def num(value, digits: int = 4) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def group_runs(root: Path, profile: str, group: str) -> list[dict]:
    """The metrics of every finished run of a group; unfinished ones are already named in the report's run list."""
    runs = []
    for run_dir in find_runs(group_dir(root, profile, group)):
        try:
            runs.append(read_metrics(run_dir))
        except RobustlabError:
            continue
    return runs


def missing(title: str, profile: str, group: str) -> Table:
    return Table(title, note=f"No finished run in `reproduce/{profile}/{group}`; table skipped.")


def _seeds(runs: list[dict]) -> str:
    return ", ".join(str(s) for s in sorted({r.get("seed") for r in runs if r.get("seed") is not None})) or "-"


def readings(root: Path, profile: str) -> Table:
    title = "RPR: readings of the pixel scheme"
    runs = group_runs(root, profile, "rpr_readings")
    if not runs:
        return missing(title, profile, "rpr_readings")
    # job order: the sweep's order, which starts with the project's default reading
    rows = [
        [
            str(measured(r, "config.perturbation.count")),
            str(measured(r, "config.perturbation.value")),
            num(measured(r, "M.test.robust_ratio")),
            str(measured(r, "M.test.points")),
        ]
        for r in runs
    ]
    return Table(
        title,
        f"Robust ratio of M on the test points under each reading of the paper's pixel scheme "
        f"(one run per reading, seed {_seeds(runs)}).",
        ["perturbation.count", "perturbation.value", "robust ratio of M (test)", "test points"],
        rows,
        "llrr",
    )


def sweep(root: Path, profile: str) -> Table:
    title = "RPR: perturbation schemes over seeds"
    runs = group_runs(root, profile, "rpr_sweep")
    if not runs:
        return missing(title, profile, "rpr_sweep")
    by_scheme: dict[tuple, list[dict]] = {}
    for run in runs:  # job order, so the schemes appear in the order they were swept
        by_scheme.setdefault((run.get("scheme"), run.get("perturbation")), []).append(run)
    rows = []
    for (scheme, perturbation), part in by_scheme.items():
        values = [
            float(v)
            for v in (measured(r, "M.test.robust_ratio") for r in part)
            if v is not None and not math.isnan(float(v))
        ]
        interval = t_mean(values) if values else None
        ci = f"[{num(interval.low)}, {num(interval.high)}]" if interval else "-"
        rows.append(
            [
                str(scheme),
                str(perturbation),
                num(interval.mean if interval else None),
                ci,
                str(len(values)),
                _seeds(part),
            ]
        )
    points = sorted({measured(r, "M.test.points") for r in runs} - {None})
    return Table(
        title,
        f"Robust ratio of M on the test points ({', '.join(map(str, points))} points) per scheme: mean over seeds "
        "with its 95% Student's t interval (n - 1 df), as in the claims tables.",
        ["scheme", "perturbation", "robust ratio mean", "95% CI", "n seeds", "seeds"],
        rows,
        "llrlrl",
    )


def attacks(root: Path, profile: str) -> Table:
    title = "CNN under FGSM and PGD"
    runs = group_runs(root, profile, "cnn_attack")
    if not runs:
        return missing(title, profile, "cnn_attack")
    rows = []
    for run in runs:
        for model, result in (run.get("models") or {}).items():
            for attack, curve in result.items():
                if isinstance(curve, dict):  # an attack's curve summary; the rest are the model's own numbers
                    rows.append(
                        [
                            str(run.get("seed")),
                            model,
                            attack,
                            num(result.get("test_accuracy")),
                            num(curve.get("first_grid_eps"), 3),
                            num(curve.get("interpolated_eps"), 3),
                            num(curve.get("accuracy_at_max_eps")),
                        ]
                    )
    grid, points = measured(runs[0], "attack.grid") or {}, measured(runs[0], "data.test_points")
    return Table(
        title,
        f"Test accuracy under attack on {points} test points, epsilon grid {grid.get('start')} to {grid.get('stop')} "
        f"({grid.get('num')} points): the first grid epsilon where accuracy falls below 50%, the epsilon interpolated "
        "between grid points, and the accuracy at the largest epsilon ('-': never below 50%).",
        [
            "seed",
            "model",
            "attack",
            "clean accuracy",
            "eps < 50% (grid)",
            "eps at 50% (interp.)",
            "accuracy at max eps",
        ],
        rows,
        "lllrrrr",
    )


# (label, metrics key, digits); a row is shown only if some run has its key (semi-supervised runs add theirs).
DCGAN_ROWS = [
    ("training images", "training.images", None),
    ("training steps", "training.steps", None),
    ("epochs", "training.epochs", None),
    ("Fréchet distance, generated vs real", "quality.frechet_distance", 1),
    ("Fréchet distance, real vs real (floor)", "quality.frechet_distance_real_vs_real", 1),
    ("images compared (generated / real)", ("quality.generated_images", "quality.real_images"), None),
    ("predicted classes of generated images (0-9)", "quality.generated_classes", None),
    ("predicted classes of real images (0-9)", "quality.real_classes", None),
    ("normalised class entropy (generated)", "quality.class_entropy", 3),
    ("classes over 1% (generated)", "quality.classes_covered", None),
    ("labelled images (semi-supervised)", "semi_supervised.labelled_images", None),
    ("test accuracy, GAN discriminator", "semi_supervised.gan_discriminator_test_accuracy", 4),
    ("test accuracy, same labels only", "semi_supervised.labels_only_test_accuracy", 4),
]


def _cell(run: dict, key, digits) -> str:
    if isinstance(key, tuple):
        return " / ".join(_cell(run, k, digits) for k in key)
    value = measured(run, key)
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return num(value, digits) if digits is not None else ("-" if value is None else str(value))


def dcgan(root: Path, profile: str) -> Table:
    title = "DCGAN: sample quality"
    # dcgan_mnist first; variants with options of their own (dcgan_semi, ...) as further columns
    groups = ["dcgan_mnist"] + [g for g in group_folders(profile_dir(root, profile), "dcgan_") if g != "dcgan_mnist"]
    columns = [(f"{g} (seed {r.get('seed')})", r) for g in groups for r in group_runs(root, profile, g)]
    if not columns:
        return missing(title, profile, "dcgan_mnist")
    rows = [
        [label] + [_cell(r, key, digits) for _, r in columns]
        for label, key, digits in DCGAN_ROWS
        if any(measured(r, k) is not None for _, r in columns for k in (key if isinstance(key, tuple) else (key,)))
    ]
    return Table(
        title,
        "Fréchet distance between generated and real images in the feature space of the project's SimpleCNN "
        "(penultimate layer), not the Inception FID, so not comparable with published FIDs; the real-vs-real "
        "distance of two real samples is its floor. Classes are those the CNN predicts.",
        ["quantity"] + [name for name, _ in columns],
        rows,
        "l" + "r" * len(columns),
    )


def gan_augment(root: Path, profile: str) -> Table:
    title = "RPR + GAN augmentation: M, M_R, M_R+G"
    runs = group_runs(root, profile, "rpr_gan_augment")
    if not runs:
        return missing(title, profile, "rpr_gan_augment")
    rows = []
    for run in runs:
        subset, kept = measured(run, "subset.subset_size"), measured(run, "gan.kept")
        # M_R+G trains on the robust subset plus the kept generated images (the pipeline's augment_table.csv says
        # the same)
        sizes = {
            "M": measured(run, "data.train_images"),
            "M_R": subset,
            "M_R_G": None if None in (subset, kept) else subset + kept,
        }
        rows += [
            [
                str(run.get("seed")),
                name,
                str(sizes[key]),
                num(measured(run, f"{key}.test_accuracy")),
                num(measured(run, f"{key}.test.robust_ratio")),
                str(measured(run, f"{key}.test.points")),
            ]
            for key, name in (("M", "M"), ("M_R", "M_R"), ("M_R_G", "M_R+G"))
        ]
    kept = "; ".join(
        f"seed {r.get('seed')}: {measured(r, 'gan.kept')} of {measured(r, 'gan.generated')} generated images kept "
        f"({num(measured(r, 'gan.kept_fraction'), 3)}), those robust under M"
        for r in runs
    )
    return Table(
        title,
        f"Training images, test accuracy and robust ratio on the test points; {kept}.",
        ["seed", "model", "training images", "test accuracy", "robust ratio (test)", "test points"],
        rows,
        "llrrrr",
    )


def wall_times(root: Path, profile: str) -> Table:
    title = "Wall time per run group"
    folder = profile_dir(root, profile)
    timings_path = folder / TIMINGS
    timings = read_json_object(timings_path, str(timings_path)) if timings_path.is_file() else {}
    groups = group_folders(folder)
    found = []
    for group in groups:
        runs = group_runs(root, profile, group)
        if runs or group in timings:
            found.append((group, len(runs), sum(float(r.get("wall_time_s") or 0.0) for r in runs), timings.get(group)))
    if not found:
        return Table(title, note=f"No run group under `reproduce/{profile}`; table skipped.")
    rows = [[group, str(n), num(summed, 1), num(end, 1)] for group, n, summed, end in found]
    ends = [end for *_, end in found if end is not None]
    rows.append(
        ["total", str(sum(f[1] for f in found)), num(sum(f[2] for f in found), 1), num(sum(ends), 1) if ends else "-"]
    )
    source = (
        "`robustlab-reproduce run` wrote timings.json"
        if timings
        else f"no timings.json in `reproduce/{profile}` (written by `robustlab-reproduce run`)"
    )
    return Table(
        title,
        "Seconds. Summed wall_time_s: the runs' own wall times (metrics.json) added up; end to end: the "
        f"group's command from start to exit, start-up included ('-': not recorded; {source}).",
        ["run group", "finished runs", "summed wall_time_s", "end to end (s)"],
        rows,
        "lrrr",
    )


TABLES = [readings, sweep, attacks, dcgan, gan_augment, wall_times]


def measured_tables(root: Path, profile: str) -> list[Table]:
    return [make(root, profile) for make in TABLES]
