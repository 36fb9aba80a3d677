"""``robustlab-report``: the claims-vs-results tables and the reproduction report, from logged runs only.

  robustlab-report [--profile paper] [--profile quick] [--root outputs] [--figures-root figures] [--out paper]
                   [--readme README.md]

writes, for each profile, OUT/tables/claims_<profile>.{csv,md,tex}, and OUT/REPRODUCTION.md and
OUT/report.tex with one section per profile: the claims table, the other measured results
(robustlab.report.tables), then the figures found in FIGURES_ROOT/<profile>/ (a note names the
expected ones that are missing). With --readme FILE it also rewrites the compact claims tables
between the ``generated:claims`` marker lines of FILE. Every sentence is either
fixed method text or a number read from the runs; nothing is written that the data do not say.
Bad input ends with one ``error:`` line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

import pandas as pd

from robustlab.errors import one_line_errors, require
from robustlab.report.archive import archived_profiles, merge_profile, save
from robustlab.report.claims import CLAIMS, NOT_RUN, claim_blocks, claims_frame, group_path, load_claims, profile_runs
from robustlab.report.inherent import sections as inherent_sections
from robustlab.report.render import (  # noqa: F401  (re-exported: the report's Markdown/LaTeX helpers)
    GRID_CELL,
    HEADER,
    TEX_SPECIAL,
    TEX_UNICODE,
    _cells,
    _ci,
    _short_verdict,
    markdown_grid,
    markdown_table,
    markdown_tex,
    tex,
    tex_grid,
    tex_table,
)
from robustlab.report.retrain import TITLE as RETRAIN_TITLE
from robustlab.report.retrain import retraining_section
from robustlab.report.sections import LATEX, MARKDOWN, README, existing, merge
from robustlab.report.tables import Table, measured_tables
from robustlab.report.tables import num as _num
from robustlab.runs.discover import profiles_with_runs
from robustlab.runs.io import atomic_write_bytes
from robustlab.runs.layout import REPRODUCE, profile_dir
from robustlab.runs.store import Skipped, collect_runs, report_skipped
from robustlab.stats import LEVEL

# One-line captions of the figures `make figures` draws; a figure not listed here is shown by name.
FIGURES = {
    "fig1_robust_vs_not": "RPR paper Fig. 1: test images M classifies robustly and not robustly",
    "fig2_first_failure": "RPR paper Fig. 2: images and the first perturbation that changed M's prediction",
    "fig3_robust_ratio_M": "RPR paper Fig. 3: robust ratio of M on the test points vs MAX_STEPS",
    "fig4_robust_per_class": "RPR paper Fig. 4: robust training points of M per class",
    "fig5_robust_ratio_M_R": "RPR paper Fig. 5: robust ratio of M_R on the test points vs MAX_STEPS",
    "fig35_overlay": "robust ratio vs MAX_STEPS of M and M_R on one axis",
    "pixel_readings": "robust ratio of M under four readings of the paper's pixel scheme",
    "sweep_schemes": "robust ratio vs MAX_STEPS for several perturbation schemes and seeds",
    "linear_attack_accuracy": "blog: test accuracy of the linear models under the exact white-box attack vs epsilon",
    "linear_weights": "blog: weights of the regular and robust linear models as images",
    "linear_misclassified": "blog: test images misclassified by each linear model as epsilon grows",
    "linear_logits": "blog: scores f(x) of the test images per linear model",
    "linear_hinge": "blog: training hinge loss per linear model",
    "dcgan_samples": "DCGAN: generated samples during training",
    "dcgan_interpolation": "DCGAN: images along a line in the latent space",
    "dcgan_losses": "DCGAN: discriminator and generator losses",
    "dcgan_classes": "DCGAN: classes of generated vs real images by the project's CNN",
    "gan_augment_models": "M vs M_R vs M_R+G (robust subset plus generated images robust under M)",
    "gan_augment_generated": "generated images kept (robust under M) and rejected",
    "gan_augment_G_samples": "conditional GAN of the augmentation: samples during training",
    "gan_augment_G_losses": "conditional GAN of the augmentation: losses",
    "operating_point": "robust ratio of M vs scheme strength for every scheme, with the paper's 0.2957 and 0.7128",
    "inherent_agreement": "per-point agreement of robustness across models (Cohen's kappa, Spearman's rho)",
    "hardest_points": "test images every model finds least robust, and robust, with their flip-probability intervals",
    "inherent_per_class": "per-class agreement of robustness across models",
    "rpr_vs_exact": "RPR flip probability beside exact (linear) and PGD / IBP (CNN) minimal adversarial radii",
    "corruptions": "one draw per corruption scheme and severity, with the robust ratio of M there",
}
RETRAIN_INTRO = (
    "M, M_rand (the same class counts drawn at random from the whole training set, the same epochs, batch size and "
    "so optimiser steps) and M_R (the class-balanced robust subset) at the literal scheme and at the calibrated "
    "strengths where M's curves cross the paper's numbers. The verdict compares M_R with M_rand, paired by seed; "
    "every number and sentence is computed from the runs (robustlab.report.retrain)."
)
METHOD = (
    f"Each claim is compared with the runs of its run group, one run per seed. Reproduced is the mean over seeds "
    f"with its {LEVEL:.0%} Student's t interval (n - 1 degrees of freedom; n, the seeds, beside it). "
    "CI status: whether the source's value lies in that interval (with one seed the interval is the point itself). "
    "Verdict: the CI status when the runs used the source's protocol (protocol_check in paper/claims.yaml), "
    "otherwise not comparable, naming what differs."
)


def _runs(n: int) -> str:
    return f"{n} finished run{'' if n == 1 else 's'}"


def counts(frame: pd.DataFrame) -> str:
    """'17 claims: 0 within CI, 3 outside CI, 14 not comparable, 0 not run' (verdicts)."""
    verdicts = frame["verdict"].str.replace(
        r" \(.*|;.*", "", regex=True
    )  # "within CI; dataset differs..." counts as within
    kinds = ["within CI", "outside CI", "not comparable", NOT_RUN]
    parts = [f"{int((verdicts == k).sum())} {k}" for k in kinds]
    other = len(frame) - sum(int((verdicts == k).sum()) for k in kinds)
    return f"{len(frame)} claims: {', '.join(parts)}" + (f", {other} undefined" if other else "")


def figures(folder: Path) -> tuple[list[Path], list[str]]:
    """The PNG figures present in ``folder`` (known ones first, in FIGURES' order) and the known stems missing."""
    present = {p.stem: p for p in folder.glob("*.png")} if folder.is_dir() else {}
    ordered = [present[s] for s in FIGURES if s in present] + sorted(p for s, p in present.items() if s not in FIGURES)
    return ordered, [s for s in FIGURES if s not in present]


def caption(path: Path) -> str:
    return FIGURES.get(path.stem, path.stem)


def _rel(path: Path, start: Path) -> str:
    return Path(os.path.relpath(path.resolve(), start.resolve())).as_posix()


def run_summary(store: pd.DataFrame, profile: str, blocks: dict) -> list[tuple[str, str, int, str]]:
    """(claims block, run group, finished runs, seeds) per claims block."""
    rows = []
    for name, block in blocks.items():
        runs = profile_runs(store, profile, block["run_group"])
        seeds = sorted({int(r["seed"]) for r in runs.values() if pd.notna(r["seed"])})
        rows.append((name, group_path(profile, block["run_group"]), len(runs), ", ".join(map(str, seeds)) or "-"))
    return rows


def _skipped_in(skipped, root: Path, profile: str) -> list[str]:
    prefix = profile_dir(root, profile).as_posix() + "/"
    return [f"{s.path.as_posix()}: {s.reason}" for s in skipped if s.path.as_posix().startswith(prefix)]


def markdown_section(profile: str, table: pd.DataFrame, context: dict) -> list[str]:
    root, out, blocks = context["root"], context["out"], context["blocks"]
    lines = [f"## Profile `{profile}`", "", "Runs that answer the claims:", ""]
    for name, group, n, seeds in run_summary(context["store"], profile, blocks):
        lines.append(f"- `{name}`: `{group}`, {_runs(n)} (seeds {seeds})")
    left_out = _skipped_in(context["skipped"], root, profile)
    if left_out:
        lines += ["", "Runs left out (no readable metrics.json; never averaged in):", ""] + [
            f"- `{s}`" for s in left_out
        ]
    lines += ["", "### Claims", "", counts(table) + ".", "", markdown_table(table).rstrip(), ""]
    for name, block in blocks.items():
        lines.append(f"- Source protocol, `{name}` ({block['source']}): {block['protocol']}")
        if not block["claims"]:
            lines.append(f"  - `{name}`: the source states no quantitative claim (see paper/claims.yaml).")
    lines += retraining_md(context["retraining"][profile])
    # robustlab.report.inherent's sections are top-level ("## ..."); here they sit inside the profile's section
    lines += [line for text in inherent_sections(context["data"], profile) for line in ["", "#" + text.rstrip()]]
    lines += [
        "",
        "### Other measured results",
        "",
        f"Read from the runs' metrics.json under `{root / 'reproduce' / profile}`{archived_note(context, profile)}.",
        "",
    ]
    lines += [line for table in context["measured"][profile] for line in markdown_measured(table)]
    shown, missing = figures(context["figures_root"] / profile)
    lines += ["### Figures", ""]
    for path in shown:
        lines += [f"![{caption(path)}]({_rel(path, out)})", "", f"*{path.name}*: {caption(path)}.", ""]
    if not shown:
        lines += [f"No figures found in `{context['figures_root'] / profile}`.", ""]
    if missing:
        lines += [f"Missing from `{context['figures_root'] / profile}`: {', '.join(missing)}.", ""]
    return lines


def retraining_md(tables: list[Table]) -> list[str]:
    """The section "Does robust-subset retraining help?" (robustlab.report.retrain), in Markdown."""
    lines = ["", f"### {RETRAIN_TITLE}", "", RETRAIN_INTRO, ""]
    return lines + [line for table in tables for line in markdown_measured(table)]


def retraining_tex(tables: list[Table], profile: str) -> list[str]:
    lines = [rf"\subsection{{{tex(RETRAIN_TITLE)}}}", tex(RETRAIN_INTRO), ""]
    return lines + [line for table in tables for line in tex_measured(table, profile)]


def markdown_measured(table: Table) -> list[str]:
    if table.note:
        return [f"#### {table.title}", "", table.note, ""]
    return [f"#### {table.title}", "", table.caption, "", markdown_grid(table.header, table.rows).rstrip(), ""]


def reproduction_md(tables: dict[str, pd.DataFrame], context: dict) -> str:
    lines = [
        "# Reproduction: claims vs results",
        "",
        f"Generated by `robustlab-report` from the runs under `{context['root']}` and `paper/claims.yaml`; "
        "regenerate rather than edit.",
        "",
        METHOD,
        "",
    ]
    for profile, table in tables.items():
        lines += markdown_section(profile, table, context)
    return "\n".join(lines).rstrip() + "\n"


def tex_section(profile: str, table: pd.DataFrame, context: dict) -> list[str]:
    lines = [rf"\section{{Results: profile {tex(profile)}}}", r"\begin{itemize}"]
    for name, group, n, seeds in run_summary(context["store"], profile, context["blocks"]):
        lines.append(rf"\item {tex(name)}: run group \texttt{{{tex(group)}}}, {_runs(n)} (seeds {tex(seeds)}).")
    lines += [
        r"\end{itemize}",
        tex(counts(table)) + ".",
        "",
        r"\begin{table}[H]\centering",
        rf"\input{{tables/claims_{profile}.tex}}",
        rf"\caption{{Claims of the sources vs the runs of profile {tex(profile)}.}}",
        r"\end{table}",
        "",
    ]
    lines += retraining_tex(context["retraining"][profile], profile)
    lines += [line for text in inherent_sections(context["data"], profile) for line in markdown_tex(text)]
    lines += [r"\subsection{Other measured results}"]
    lines += [line for table in context["measured"][profile] for line in tex_measured(table, profile)]
    pdfs = [
        p.with_suffix(".pdf") for p in figures(context["figures_root"] / profile)[0] if p.with_suffix(".pdf").is_file()
    ]
    for pdf in pdfs:
        # [H] (float package): figures stay where they are written, so dozens of them never overflow LaTeX's float
        # queue.
        lines += [
            r"\begin{figure}[H]\centering",
            r"\includegraphics[width=0.9\linewidth,height=0.4\textheight,keepaspectratio]"
            rf"{{{_rel(pdf, context['out'])}}}",
            rf"\caption{{{tex(caption(pdf))} (profile {tex(profile)}).}}",
            r"\end{figure}",
            "",
        ]
    return lines + [r"\clearpage", ""]


def tex_measured(table: Table, profile: str) -> list[str]:
    if table.note:
        return [rf"\paragraph{{{tex(table.title)}}} {_tex_prose(table.note)}", ""]
    return [
        r"\begin{table}[H]\centering",
        tex_grid([tex(h) for h in table.header], table.rows, table.align).rstrip(),
        rf"\caption{{{tex(table.title)} (profile {tex(profile)}). {_tex_prose(table.caption)}}}",
        r"\end{table}",
        "",
    ]


def _tex_prose(text: str) -> str:
    # Markdown code quotes would print as LaTeX opening quotes.
    return tex(text.replace("`", ""))


def report_tex(tables: dict[str, pd.DataFrame], context: dict) -> str:
    lines = [
        r"\documentclass[11pt]{article}",
        r"\usepackage[a4paper,margin=2cm]{geometry}",
        r"\usepackage[T1]{fontenc}",
        r"\usepackage{booktabs}",
        r"\usepackage{graphicx}",
        r"\usepackage{float}",
        r"\title{robustlab: reproduction report}",
        r"\author{generated by robustlab-report}",
        r"\date{}",
        r"\begin{document}",
        r"\maketitle",
        r"\section{What is reproduced}",
        r"\begin{itemize}",
    ]
    for block in context["blocks"].values():
        n = len(block["claims"])
        what = f"{n} quantitative claims" if n else "no quantitative claim (the source states none)"
        lines.append(
            rf"\item {tex(block['source'])}: {what}, answered by the runs of \texttt{{{tex(block['run_group'])}}}."
        )
    lines += [r"\end{itemize}", r"\section{Setup}", tex(METHOD), "", r"Protocols of the sources:", r"\begin{itemize}"]
    lines += [rf"\item {tex(e)}: {tex(b['protocol'])}" for e, b in context["blocks"].items()]
    lines += [r"\end{itemize}", ""]
    for profile, table in tables.items():
        lines += tex_section(profile, table, context)
    return "\n".join(lines + [r"\end{document}"]) + "\n"


README_START, README_END = "<!-- generated:claims:start -->", "<!-- generated:claims:end -->"
README_HEADER = ["claim", "claimed", "reproduced mean [95% CI]", "n", "verdict"]


def archived_note(context: dict, profile: str) -> str:
    """' and the N archived runs under paper/runs/...' where the profile's report used archived runs."""
    n = context.get("archived", {}).get(profile, 0)
    if not n:
        return ""
    where = profile_dir(context["archive"], profile).as_posix()
    return f" and the {_runs(n).replace('finished ', 'finished, archived ')} under `{where}/` (make archive)"


def readme_block(tables: dict[str, pd.DataFrame], root: Path, context: dict | None = None) -> str:
    """The compact claims tables for the README, one per profile."""
    lines = []
    for profile, table in tables.items():
        rows = [
            [
                row["claim"],
                _num(row["claimed"]),
                "-" if row["n"] == 0 else f"{_num(row['mean'])} {_ci(row)}",
                row["n"],
                row["verdict"],
            ]
            for _, row in table.iterrows()
        ]
        lines += [
            f"**Profile `{profile}`** ({counts(table)})",
            "",
            markdown_grid(README_HEADER, rows).rstrip(),
            "",
            f"generated by `make paper` from the runs under {Path(root, 'reproduce', profile).as_posix()}/"
            + archived_note(context or {}, profile).replace("`", ""),
            "",
        ]
    return "\n".join(lines)


def split_readme(path: Path) -> tuple[str, str]:
    """``path``'s text up to and including the start marker, and from the end marker on."""
    require(path.is_file(), f"--readme {path}: no such file")
    text = path.read_text()
    start, end = text.find(README_START), text.find(README_END)
    require(
        start >= 0 and end > start and text.count(README_START) == text.count(README_END) == 1,
        f"{path}: needs the marker lines '{README_START}' and '{README_END}' (once each, start first) around the "
        "generated claims",
    )
    return text[: start + len(README_START)] + "\n", text[end:]


def write_text(path: Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def write_tables(profile: str, table: pd.DataFrame, out: Path) -> list[Path]:
    stem = out / "tables" / f"claims_{profile}"
    return [
        write_text(stem.with_suffix(".csv"), table.to_csv(index=False)),
        write_text(stem.with_suffix(".md"), markdown_table(table)),
        write_text(stem.with_suffix(".tex"), tex_table(table)),
    ]


def build(
    profiles: list[str],
    root: Path,
    figures_root: Path,
    out: Path,
    claims_path: Path = CLAIMS,
    readme: Path | None = None,
    archive: Path | None = None,
) -> list[Path]:
    """Every file of the report; the claims tables are computed once and shared by all of them. With
    ``archive`` (paper/runs), the runs read are the archived ones with the local ones over them."""
    with tempfile.TemporaryDirectory(prefix="robustlab-report-") as view:
        return _build(profiles, root, figures_root, out, claims_path, readme, archive, Path(view))


def _build(
    profiles: list[str],
    root: Path,
    figures_root: Path,
    out: Path,
    claims_path: Path,
    readme: Path | None,
    archive: Path | None,
    view: Path,
) -> list[Path]:
    require(len(set(profiles)) == len(profiles), f"a profile is named twice: {profiles}")
    # Checked first: a README without its markers fails before any run is read or file written.
    readme_parts = split_readme(readme) if readme is not None else None
    for profile in profiles:
        require(
            re.fullmatch(r"[A-Za-z0-9_.-]+", profile) is not None,
            f"profile '{profile}' is not a plain name (e.g. paper, quick)",
        )
    blocks = claim_blocks(load_claims(claims_path))
    data, archived = root, {}
    if archive is not None:  # one folder to read: the archive's runs, the local ones over them
        data = view
        archived = {p: merge_profile(Path(root), Path(archive), p, view, keep_unfinished=True) for p in profiles}
    store, skipped = collect_runs(data)
    skipped = [Skipped(Path(root) / s.path.relative_to(data), s.reason) for s in skipped]  # named where they are
    report_skipped([s for s in skipped if (Path(root) / REPRODUCE) in s.path.parents])  # the report's runs only
    tables = {p: claims_frame(store, p, blocks) for p in profiles}
    measured = {p: measured_tables(data, p) for p in profiles}
    context = {
        "root": root,
        "data": data,
        "archive": archive,
        "archived": archived,
        "out": out,
        "figures_root": figures_root,
        "blocks": blocks,
        "store": store,
        "skipped": skipped,
        "measured": measured,
        "retraining": {p: retraining_section(data, p) for p in profiles},
    }
    written = [path for p, t in tables.items() for path in write_tables(p, t, out)]
    # The sections of profiles not reported now stay as they are in the existing files (robustlab.report.sections).
    md, tex_file = out / "REPRODUCTION.md", out / "report.tex"
    written.append(write_text(md, merge(reproduction_md(tables, context), existing(md), profiles, MARKDOWN)))
    written.append(write_text(tex_file, merge(report_tex(tables, context), existing(tex_file), profiles, LATEX)))
    if readme is not None:
        old_block = readme.read_text()[len(readme_parts[0]) : -len(readme_parts[1])]
        block = merge(readme_block(tables, root, context), old_block, profiles, README)
        written.append(write_text(readme, readme_parts[0] + block + readme_parts[1]))
    for p, t in tables.items():
        print(f"profile {p}: {counts(t)}")
    return written


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="robustlab-report", description="Claims-vs-results tables and the reproduction report, from logged runs."
    )
    p.add_argument(
        "--profile",
        action="append",
        help="profile to report (repeatable; default: every profile with a finished "
        "run under ROOT/reproduce; the sections of other profiles in the existing files are kept)",
    )
    p.add_argument(
        "--root", type=Path, default=Path("outputs"), help="folder the runs were written to (default: %(default)s)"
    )
    p.add_argument(
        "--figures-root",
        type=Path,
        default=Path("figures"),
        help="folder holding <profile>/ figure folders (default: %(default)s)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("paper"),
        help="folder for tables/, REPRODUCTION.md and report.tex (default: %(default)s)",
    )
    p.add_argument("--claims", type=Path, default=CLAIMS, help="claims file (default: paper/claims.yaml)")
    p.add_argument(
        "--archive",
        type=Path,
        help="also read the archived runs in this folder (paper/runs; robustlab.report.archive): a local finished "
        "run replaces the archived run of the same folder",
    )
    p.add_argument(
        "--save-runs",
        action="store_true",
        help="first copy the report files of the local finished runs of each --profile into --archive "
        "(make archive), then report",
    )
    p.add_argument(
        "--readme",
        type=Path,
        help=f"also rewrite the compact claims tables between {README_START} and {README_END} in this file",
    )
    return p


def present_profiles(root: Path, archive: Path | None = None) -> list[str]:
    """Every profile with a finished run under ROOT/reproduce or in the archive (paper first): the ones the
    report updates; the other profiles' sections of the existing files are kept as they are."""
    local = profiles_with_runs(root) if Path(root).is_dir() else []
    found = sorted(set(local) | set(archived_profiles(archive) if archive else []), key=lambda n: (n != "paper", n))
    require(
        found,
        f"no profile under {Path(root) / 'reproduce'} has a finished run; run `make reproduce PROFILE=quick` first, "
        "or pass --profile",
    )
    return found


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    with one_line_errors():
        require(not args.save_runs or (args.archive and args.profile), "--save-runs needs --archive and --profile")
        for profile in args.profile if args.save_runs else []:
            n = save(args.root, args.archive, profile)
            print(f"archived: {n} finished runs of profile {profile} in {args.archive}")
        if args.archive is not None and not Path(args.root).is_dir():
            Path(args.root).mkdir(parents=True)  # a fresh clone reads the archive alone
        written = build(
            args.profile or present_profiles(args.root, args.archive),
            args.root,
            args.figures_root,
            args.out,
            args.claims,
            args.readme,
            args.archive,
        )
    print("\n".join(str(p) for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
