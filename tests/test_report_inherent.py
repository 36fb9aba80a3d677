"""The verdict rule of "Is robustness a property of the datapoint?" and the sections from logged files."""

from __future__ import annotations

import json

import pytest

from robustlab.report import inherent as report


@pytest.mark.parametrize(
    "arch,retest,base,word",
    [
        (0.60, 0.80, 0.10, "is supported"),  # far above the class, 75 % of the ceiling
        (0.30, 0.80, 0.10, "partly supported"),  # above the class, 38 % of the ceiling
        (0.15, 0.80, 0.10, "not supported"),  # within 0.1 of the class-only baseline
        (0.05, 0.80, 0.10, "not supported"),  # below it
    ],
)
def test_verdict_rule(arch, retest, base, word):
    sentence = report.verdict("literal", arch, retest, base)
    assert word in sentence and f"κ {arch:.2f}" in sentence and f"κ {retest:.2f}" in sentence
    if word == "is supported":
        assert "75%" in sentence


def test_verdict_without_numbers_says_so():
    assert "cannot be judged" in report.verdict("literal", None, 0.8, 0.1)
    assert "cannot be judged" in report.verdict("literal", float("nan"), 0.8, 0.1)


def agreement(kappa_arch: float) -> dict:
    def row(k) -> dict:
        return {"kappa": k, "spearman": k, "jaccard": k, "pairs": 1}

    return {"retest": row(0.8), "training_seed": row(0.7), "architecture": row(kappa_arch), "class_only": row(0.05)}


def test_sections_read_logged_metrics(tmp_path):
    folder = tmp_path / "reproduce" / "quick" / "rpr_inherent"
    folder.mkdir(parents=True)
    metrics = {
        "models": ["cnn", "mlp"],
        "retest": "cnn_retest",
        "max_steps": 250,
        "least_fraction": 0.1,
        "data": {"name": "mnist", "train_images": 2000, "test_points": 100},
        "operating_points": {
            "literal": {
                "perturbation": "pixels(k=sqrt)",
                "robust_ratio": {"cnn": 0.5, "mlp": 0.4},
                "agreement": agreement(0.6),
            },
            "calibrated": {
                "perturbation": "pixels(k=240)",
                "robust_ratio": {"cnn": 0.3, "mlp": 0.2},
                "agreement": agreement(0.1),
            },
        },
    }
    (folder / "metrics.json").write_text(json.dumps(metrics))
    inherent, exact = report.sections(tmp_path, "quick")
    assert inherent.startswith("## Is robustness a property of the datapoint?")
    assert "literal operating point the claim is supported" in inherent
    assert "calibrated operating point the claim is not supported" in inherent
    assert "p < 0.0146 at MAX_STEPS 250:" in inherent  # at the paper's MAX_STEPS, no second bound
    assert "at the paper's 250" not in inherent
    assert exact.startswith("## How RPR relates to exact robustness") and "Not run for the quick profile" in exact
    (folder / "metrics.json").write_text(json.dumps(metrics | {"max_steps": 50}))
    inherent, _ = report.sections(tmp_path, "quick")
    assert "p < 0.0711 at MAX_STEPS 50 (and p < 0.0146 at the paper's 250):" in inherent


def test_relation_sentence_names_the_largest_gap():
    m = {
        "linear": {
            "0": {
                "per_eps": {
                    "0.1": {"certified_share_of_rpr_robust": 0.4, "robust_ratio": 1.0},
                    "0.2": {"certified_share_of_rpr_robust": 0.9, "robust_ratio": 1.0},
                }
            }
        }
    }
    sentence = report.relation_sentence(m)
    assert "ε=0.1" in sentence and "only 40.0%" in sentence and "100.0%" in sentence
    m["linear"]["0"]["per_eps"]["0.1"]["certified_share_of_rpr_robust"] = 1.0
    m["linear"]["0"]["per_eps"]["0.2"]["certified_share_of_rpr_robust"] = 1.0
    assert report.relation_sentence(m).startswith("Every point RPR deems robust")


def test_the_sections_reach_the_latex_report_with_the_same_sentences(tmp_path):
    from robustlab.report.cli import markdown_tex

    folder = tmp_path / "reproduce" / "quick" / "rpr_inherent"
    folder.mkdir(parents=True)
    metrics = {
        "models": ["cnn", "mlp"],
        "retest": "cnn_retest",
        "max_steps": 250,
        "least_fraction": 0.1,
        "data": {"name": "mnist", "train_images": 2000, "test_points": 100},
        "calibration": {
            "point": "calibrated",
            "param": "k",
            "split": "test",
            "curve": "pixels_uniform_uniform",
            "target": 0.2957,
            "seeds": 3,
            "source": "/x/operating_point",
            "strength": 301.4,
            "used": 301,
        },
        "operating_points": {
            "literal": {
                "perturbation": "pixels(k=sqrt)",
                "robust_ratio": {"cnn": 0.5, "mlp": 0.4},
                "agreement": agreement(0.6),
            }
        },
    }
    (folder / "metrics.json").write_text(json.dumps(metrics))
    inherent, _ = report.sections(tmp_path, "quick")
    assert "crosses 0.2957 (3 seeds, `operating_point` group): 301.4, used 301." in inherent
    tex = "\n".join(markdown_tex(inherent))
    assert r"\subsection{Is robustness a property of the datapoint?}" in tex
    assert "literal operating point the claim is supported" in tex and r"Cohen's $\kappa$" in tex
    assert r"\begin{tabular}{lllll}" in tex and r"\textbf{literal}" in tex
    assert "κ" not in tex and "|" not in tex.replace(r"\begin{tabular}{lllll}", "")
