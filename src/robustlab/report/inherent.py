"""Report sections of issue 13, from logged runs only: "Is robustness a property of the datapoint?"
(run group rpr_inherent) and "How RPR relates to exact robustness" (run group rpr_vs_exact).

``sections(root, profile)`` returns Markdown strings for robustlab.report.cli to place. Every number is read from
``<root>/reproduce/<profile>/<group>/metrics.json``; the verdict sentence comes from ``verdict``, a
rule on those numbers (tests/test_report_inherent.py checks it), never from hand-written text.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from robustlab.runs.layout import group_dir, metrics_path

GROUPS = ("rpr_inherent", "rpr_vs_exact")
BEYOND_CLASS = 0.1  # kappa above the class-only baseline that counts as knowing more than the class
OF_CEILING = 0.5  # share of the test-retest kappa that counts as "mostly the point, not the model"
KINDS = {
    "retest": "test–retest (same model, other perturbation seed): the ceiling",
    "training_seed": "same architecture, other training seed",
    "architecture": "different architectures, same data",
    "class_only": "class-only baseline (another model's robust rate of the point's class)",
}

PAPER_MAX_STEPS = 250  # seed 001, Sec. 2.3: the MAX_STEPS of the paper's robust ratios


def verdict(point: str, arch: float | None, retest: float | None, class_only: float | None) -> str:
    """The verdict on the title claim at one operating point, from mean Cohen's kappa of each kind of pair.

    Supported: cross-architecture kappa exceeds the class-only baseline by BEYOND_CLASS and reaches
    OF_CEILING of the test-retest kappa. Partly: above the baseline, below that share of the ceiling.
    Not supported: within BEYOND_CLASS of the baseline (or below it).
    """
    if arch is None or retest is None or class_only is None or any(map(math.isnan, (arch, retest, class_only))):
        return (
            f"At the {point} operating point the claim cannot be judged: an agreement measure is undefined or missing."
        )
    numbers = (
        f"cross-architecture κ {arch:.2f}, class-only baseline κ {class_only:.2f}, test–retest ceiling κ {retest:.2f}"
    )
    if arch - class_only < BEYOND_CLASS:
        return (
            f"At the {point} operating point the claim is not supported: models of different architectures agree on "
            f"which points are robust no better than knowing each point's class does ({numbers})."
        )
    if retest <= 0 or arch / retest < OF_CEILING:
        return (
            f"At the {point} operating point the claim is partly supported: different architectures agree on which "
            f"points are robust beyond their class, but at less than {OF_CEILING:.0%} of the agreement one model "
            f"reaches with itself, so the model matters about as much as the point ({numbers})."
        )
    return (
        f"At the {point} operating point the claim is supported: different architectures agree on which points are "
        f"robust well beyond their class and at {arch / retest:.0%} of the agreement one model reaches with itself "
        f"({numbers})."
    )


def _metrics(root: Path, profile: str, group: str) -> dict | None:
    path = metrics_path(group_dir(root, profile, group))
    return json.loads(path.read_text()) if path.is_file() else None


def _num(value, digits: int = 3) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _grid(header: list[str], rows: list[list[str]]) -> str:
    def cell(text) -> str:
        return str(text).replace("|", "\\|")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]) + "\n"


def certified_bound(max_steps: int) -> float:
    """Upper end of the 95 % Clopper–Pearson interval of a point no retry of max_steps fooled."""
    return 1.0 - 0.025 ** (1.0 / max_steps)


def _missing(group: str, profile: str) -> str:
    return (
        f"Not run for the {profile} profile: `robustlab-reproduce run --profile {profile} --only rpr_inherent` "
        f"produces run group `{group}`.\n"
    )


def inherent_section(root: Path, profile: str) -> str:
    m = _metrics(root, profile, "rpr_inherent")
    out = ["## Is robustness a property of the datapoint?\n"]
    if m is None:
        return "\n".join(out + [_missing("rpr_inherent", profile)])
    n = m["max_steps"]
    out.append(
        f"RPR of {len(m['models'])} models trained on the same {m['data']['train_images']} {m['data']['name']} images "
        f"({', '.join(m['models'])}), each on the same {m['data']['test_points']} test points, MAX_STEPS {n}. "
        "Each point's flip probability p̂ = failures / retries comes with its 95 % Clopper–Pearson interval; "
        f"a point no retry fooled has p < {certified_bound(n):.4f} at MAX_STEPS {n}"
        + (
            f" (and p < {certified_bound(PAPER_MAX_STEPS):.4f} at the paper's {PAPER_MAX_STEPS})"
            if n != PAPER_MAX_STEPS
            else ""
        )
        + ": that is all 'robust' certifies about the point under the scheme. "
        "Agreement per kind of pair (mean over pairs): Cohen's κ of robust labels, "
        "Spearman's ρ of retries survived, "
        f"Jaccard overlap of the {m['least_fraction']:.0%} least robust points.\n"
    )
    cal = m.get("calibration")
    if cal:  # where the calibrated point's strength came from (or why it was dropped)
        out.append(
            f"Point `{cal['point']}`: {cal['param']} where M's mean {cal['split']} curve `{cal['curve']}` crosses "
            f"{cal['target']} ({cal['seeds']} seeds, `{Path(cal['source']).name}` group): "
            + (
                f"{cal['strength']:.4g}, used {cal['used']}.\n"
                if cal["used"] is not None
                else "not crossed at the measured strengths, so the point was not measured.\n"
            )
        )
    for point, op in m["operating_points"].items():
        a = op["agreement"]
        rows = [
            [KINDS[k], str(a[k]["pairs"]), _num(a[k]["kappa"]), _num(a[k]["spearman"]), _num(a[k]["jaccard"])]
            for k in KINDS
            if k in a
        ]
        ratios = ", ".join(f"{name} {value:.3f}" for name, value in op["robust_ratio"].items())
        out.append(f"**{point}** ({op['perturbation']}; robust ratios: {ratios})\n")
        out.append(_grid(["pairs", "n", "Cohen's κ", "Spearman's ρ", "Jaccard"], rows))
        kappas = {kind: (a.get(kind) or {}).get("kappa") for kind in ("architecture", "retest", "class_only")}
        out.append(verdict(point, kappas["architecture"], kappas["retest"], kappas["class_only"]) + "\n")
    out.append(
        f"Rule of the verdict: supported when cross-architecture κ exceeds the class-only baseline by at least "
        f"{BEYOND_CLASS} and reaches {OF_CEILING:.0%} of the test–retest κ; partly supported when only the first "
        "holds; not supported otherwise.\n"
    )
    return "\n".join(out)


def exact_section(root: Path, profile: str) -> str:
    m = _metrics(root, profile, "rpr_vs_exact")
    out = ["## How RPR relates to exact robustness\n"]
    if m is None:
        return "\n".join(out + [_missing("rpr_vs_exact", profile)])
    out.append(
        "RPR's p̂ under uniform l∞ noise of radius ε (MAX_STEPS "
        f"{m['max_steps']}) beside the exact l∞ distance "
        "to the boundary of the blog's linear 0-vs-1 models (clipped to valid images) and beside the CNN's minimal "
        "adversarial radius, bounded above by PGD and below by interval bound propagation. ρ: Spearman's ρ over "
        "correctly classified points ('–': p̂ is the same for every point, no ranking). Certified: the share of "
        "RPR-robust points whose exact distance (linear) or IBP radius (CNN) exceeds ε.\n"
    )
    rows = []
    for name, lin in m["linear"].items():
        for eps, v in lin["per_eps"].items():
            rows.append(
                [
                    f"linear, trained ε={name}",
                    eps,
                    _num(v["robust_ratio"]),
                    _num(v["rho_p_hat_exact_clipped"]),
                    "–",
                    _num(v["certified_share_of_rpr_robust"]),
                    "–",
                ]
            )
    for eps, v in m["cnn"]["per_eps"].items():
        rows.append(
            [
                "simple CNN",
                eps,
                _num(v["robust_ratio"]),
                _num(v["rho_p_hat_pgd_upper"]),
                _num(v["rho_p_hat_ibp_lower"]),
                _num(v["certified_share_of_rpr_robust"]),
                _num(v["pgd_broken_share_of_rpr_robust"]),
            ]
        )
    out.append(
        _grid(
            [
                "model",
                "ε",
                "RPR robust ratio",
                "ρ(p̂, exact or PGD radius)",
                "ρ(p̂, IBP radius)",
                "certified share of RPR-robust",
                "PGD-broken share of RPR-robust",
            ],
            rows,
        )
    )
    c = m["cnn"]
    out.append(
        f"CNN on {c['points']} test points: median PGD radius {_num(c['median_pgd_upper'])}, median IBP-certified "
        f"radius {_num(c['median_ibp_lower'])}, Spearman's ρ between the two bounds {_num(c['rho_pgd_ibp'])}.\n"
    )
    out.append(relation_sentence(m) + "\n")
    return "\n".join(out)


def relation_sentence(m: dict) -> str:
    """What RPR-robust means against the worst case, from the largest gap between RPR and exact robustness."""
    gaps = [
        (v["certified_share_of_rpr_robust"], f"linear model trained at ε={name}", eps, v["robust_ratio"])
        for name, lin in m["linear"].items()
        for eps, v in lin["per_eps"].items()
        if v["certified_share_of_rpr_robust"] is not None
    ]
    if not gaps:
        return "No RPR-robust point to compare with exact robustness."
    share, model, eps, ratio = min(gaps, key=lambda g: g[0])
    if share >= 1.0:
        return (
            "Every point RPR deems robust is also exactly robust at the same ε, for every linear model and ε measured."
        )
    return (
        f"RPR-robust is not worst-case robust: for the {model}, with noise and attack radius ε={eps}, "
        f"RPR deems {ratio:.1%} of the points robust, "
        f"yet only {share:.1%} of those are exactly robust; the others have an adversarial image within ε that "
        "random noise did not find."
    )


def sections(root: Path, profile: str) -> list[str]:
    """Markdown sections of issue 13 for one profile (a note naming the command where a group is missing)."""
    return [inherent_section(Path(root), profile), exact_section(Path(root), profile)]
