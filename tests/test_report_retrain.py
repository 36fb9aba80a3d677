"""The section "Does robust-subset retraining help?": the verdict rule, the both-targets rule, and the tables
read from logged runs (through the real report)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from test_store import config, rpr_metrics, write_run

from robustlab.report.cli import main as report_main
from robustlab.report.retrain import TOLERANCE, both_targets, retraining_section, verdict
from robustlab.robustness.calibration import COLUMNS, RESULTS
from robustlab.stats import paired_difference


def test_verdict_more_robust_less_robust_or_no_difference():
    more = verdict([0.52, 0.50, 0.55], [0.40, 0.41, 0.42])
    d = paired_difference([0.52, 0.50, 0.55], [0.40, 0.41, 0.42])
    assert more.startswith("M_R is more robust than M_rand") and "helped beyond their number" in more
    assert f"{d.mean:+.4f}, 95% t CI [{d.low:+.4f}, {d.high:+.4f}] over 3 seeds" in more
    assert verdict([0.40, 0.41, 0.42], [0.52, 0.50, 0.55]).startswith("M_R is less robust than M_rand")
    assert verdict([0.50, 0.40, 0.45], [0.45, 0.46, 0.44]).startswith("No difference between M_R and M_rand is shown")


def test_verdict_needs_two_seeds_and_names_skipped_ones():
    assert verdict([0.5], [0.4]).endswith("too few for an interval; no verdict.")
    text = verdict([0.5, float("nan"), 0.6], [0.4, float("nan"), 0.45], skipped=1, reason="robust subset too small")
    assert text.startswith("M_R not trained in 1 seed(s) (robust subset too small). ")
    assert "over 2 seeds" in text


def test_both_targets_within_tolerance_only():
    targets = {"test": 0.2957, "train": 0.7128}
    assert both_targets(0.30, 0.70, targets)
    assert not both_targets(0.30, 0.70 - TOLERANCE - 0.01, targets)
    assert not both_targets(float("nan"), 0.71, targets)


def retrain_metrics(seed: int, m_r: float, m_rand: float, calibration=None) -> dict:
    m = rpr_metrics(seed, train_images=10000) | {
        "perturbation": "pixels(k=sqrt, count=uniform, value=uniform)",
        "calibration": calibration,
    }
    m["M_R"]["test"]["robust_ratio"] = m_r
    m["M_rand"] = {"test_accuracy": 0.95, "test": {"points": 10000, "robust_ratio": m_rand}, "train_images": 15000}
    m["subset"]["subset_size"] = 15000
    return m


def test_section_tables_and_report(tmp_path):
    root = tmp_path / "outputs"
    group = root / "reproduce" / "paper" / "rpr_mnist"
    for seed, (a, b) in enumerate([(0.92, 0.90), (0.93, 0.90), (0.94, 0.91)]):
        write_run(group / f"seed_{seed}", config("rpr_mnist", seed), retrain_metrics(seed, a, b))
    cal = {"split": "test", "target": 0.2957, "param": "k", "strength": 301.2, "used": 301, "source": "x", "curve": "c"}
    cal_group = root / "reproduce" / "paper" / "rpr_calibrated"
    for seed in range(2):
        metrics = retrain_metrics(seed, 0.3, 0.3) | {
            "retrain_skipped": "robust subset too small to train on: classes {1: 3}"
        }
        del metrics["M_R"], metrics["M_rand"]
        write_run(
            cal_group / f"pixels_test_seed_{seed}", config("rpr_calibrated", seed), metrics | {"calibration": cal}
        )
    op = root / "reproduce" / "paper" / "operating_point" / "seed_0"
    op.mkdir(parents=True)
    rows = [
        {
            "curve": "gaussian",
            "scheme": "gaussian",
            "param": "sigma",
            "strength": s,
            "split": split,
            "points": 100,
            "robust": 0,
            "robust_ratio": r,
            "cp_low": 0,
            "cp_high": 1,
            "clean_accuracy": 0.9,
            "max_steps": 250,
            "seed": 0,
        }
        for split, curve in (("test", [0.8, 0.4, 0.1]), ("train", [0.9, 0.5, 0.2]))
        for s, r in zip([0.1, 0.3, 0.5], curve, strict=True)
    ]
    pd.DataFrame(rows, columns=COLUMNS).to_csv(op / RESULTS, index=False)

    tables = retraining_section(root, "paper")
    op_table, literal, calibrated, fashion = tables[0], tables[1], tables[2], tables[3]
    assert op_table.rows[0][:3] == ["gaussian", "sigma", f"{0.3 + 0.2 * (0.4 - 0.2957) / 0.3:.4g}"]
    assert "gaussian: no single strength gives both" in op_table.caption
    assert [r[0].split()[0] for r in literal.rows] == ["M", "M_rand", "M_R"]
    expected = paired_difference([0.92, 0.93, 0.94], [0.90, 0.90, 0.91])
    assert "M_R is more robust than M_rand" in literal.caption and f"{expected.mean:+.4f}" in literal.caption
    assert literal.rows[2][1] == "15000" and literal.rows[2][4] == "3"
    assert "calibrated" in calibrated.title and "M_R not trained in 2 seed(s)" in calibrated.caption
    assert calibrated.rows[2][3] == "-"  # no M_R number where it was not trained
    assert fashion.note == "`reproduce/paper/rpr_fashion` holds no finished run: nothing to compare here."

    assert (
        report_main(
            [
                "--root",
                str(root),
                "--out",
                str(tmp_path / "paper"),
                "--figures-root",
                str(tmp_path / "figs"),
                "--profile",
                "paper",
            ]
        )
        == 0
    )
    text = (tmp_path / "paper" / "REPRODUCTION.md").read_text()
    assert "### Does robust-subset retraining help?" in text and "M_R is more robust than M_rand" in text
    assert r"\subsection{Does robust-subset retraining help?}" in (tmp_path / "paper" / "report.tex").read_text()
    assert np.isfinite(expected.low)


def test_fashion_block_verdict_says_dataset_differs_and_sizes_match(tmp_path):
    from robustlab.report.claims import claims_frame, load_claims
    from robustlab.report.claims import verdict as claim_verdict
    from robustlab.report.cli import counts
    from robustlab.runs.store import collect_runs

    assert claim_verdict("outside CI", [], "Fashion-MNIST") == "outside CI; dataset differs: Fashion-MNIST, sizes match"
    assert claim_verdict("within CI", ["data.train_images"], "F") == (
        "not comparable (data.train_images differs from the source); dataset differs: F"
    )
    root = tmp_path / "outputs"
    (root / "reproduce" / "paper" / "rpr_fashion").mkdir(parents=True)
    (root / "reproduce" / "paper" / "rpr_fashion" / "multirun.yaml").write_text(
        "hydra: {}\n"
    )  # one group, as Hydra leaves it
    for seed in range(3):
        m = rpr_metrics(seed) | {"M_train": {"points": 60000, "robust_ratio": 0.6}}
        m["data"]["name"] = "fashion_mnist"
        write_run(root / "reproduce" / "paper" / "rpr_fashion" / f"seed_{seed}", config("rpr_fashion", seed), m)
    frame = claims_frame(collect_runs(root)[0], "paper", load_claims())
    fashion = frame[frame["claim"].str.startswith("paper protocol on Fashion-MNIST")]
    assert len(fashion) == 5 and (fashion["n"] == 3).all()
    assert fashion["verdict"].str.endswith("; dataset differs: Fashion-MNIST, not the paper's MNIST, sizes match").all()
    assert "0 not comparable" in counts(fashion) and "undefined" not in counts(fashion)


def test_a_seed_without_m_r_is_undefined_in_the_claims_not_an_error(tmp_path):
    """The pipeline writes M_R as null when a seed could not retrain (too few robust images): the claims on M_R
    are undefined for that group (the seed is named), M's claims keep their numbers."""
    from robustlab.report.claims import claims_frame, load_claims
    from robustlab.runs.store import collect_runs

    root = tmp_path / "outputs"
    (root / "reproduce" / "paper" / "rpr_fashion").mkdir(parents=True)
    (root / "reproduce" / "paper" / "rpr_fashion" / "multirun.yaml").write_text(
        "hydra: {}\n"
    )  # one group, as Hydra leaves it
    for seed in range(3):
        m = rpr_metrics(seed) | {"M_train": {"points": 60000, "robust_ratio": 0.6}}
        if seed == 1:
            m |= {
                "retrain_skipped": "robust subset too small to train on: classes {3: 2}",
                "M_R": {"test_accuracy": None, "test": {"robust_ratio": None}},
            }
            m["subset"]["per_class_taken"] = None
        write_run(root / "reproduce" / "paper" / "rpr_fashion" / f"seed_{seed}", config("rpr_fashion", seed), m)
    frame = claims_frame(collect_runs(root)[0], "paper", load_claims()).set_index("claim")
    assert (
        frame.loc["paper protocol on Fashion-MNIST: M_R test accuracy", "ci_status"]
        == "undefined (metric null in 1 run)"
    )
    assert frame.loc["paper protocol on Fashion-MNIST: M test accuracy", "n"] == 3
    # the runs' protocol names the null once, after the numbers, whatever the order of the seeds (NaNs do not sort)
    protocol = frame.loc["paper protocol on Fashion-MNIST: M_R test accuracy", "protocol"]
    assert "subset.per_class_taken " in protocol and protocol.split("subset.per_class_taken ")[1].split(" ")[
        0
    ].endswith("/nan")


def test_a_calibration_never_reached_is_shown_as_the_finding(tmp_path):
    root = tmp_path / "outputs"
    reason = (
        "M's train curve 'gaussian' never crosses 0.7128 at the measured strengths [0.15, 0.3] (mean ratios [0.6, 0.4])"
    )
    cal = {
        "split": "train",
        "target": 0.7128,
        "param": "sigma",
        "strength": None,
        "used": None,
        "source": "x",
        "curve": "gaussian",
        "not_reached": reason,
    }
    for seed in range(2):
        m = retrain_metrics(seed, 0.3, 0.3) | {"calibration": cal, "calibration_not_reached": reason}
        write_run(
            root / "reproduce" / "paper" / "rpr_calibrated" / f"gaussian_train_seed_{seed}",
            config("rpr_calibrated", seed),
            m,
        )
    calibrated = [t for t in retraining_section(root, "paper") if "rpr_calibrated" in (t.note or t.caption)]
    assert len(calibrated) == 1 and calibrated[0].rows == []
    assert (
        "train ratio 0.7128 not crossed" in calibrated[0].note and "2 seed(s): nothing measured" in calibrated[0].note
    )
    assert reason in calibrated[0].note


def test_fashion_operating_points_come_before_the_fashion_tables_where_measured(tmp_path):
    root = tmp_path / "outputs"
    for group in ("operating_point", "operating_point_fashion"):
        job = root / "reproduce" / "paper" / group / "seed_0"
        job.mkdir(parents=True)
        falls = [0.9, 0.5, 0.1] if group == "operating_point" else [0.6, 0.2, 0.0]
        rows = [
            {"curve": "gaussian", "scheme": "gaussian", "param": "sigma", "strength": s, "split": "test",
             "points": 100, "robust": 0, "robust_ratio": r, "cp_low": 0, "cp_high": 1, "clean_accuracy": 0.9,
             "max_steps": 250, "seed": 0}
            for s, r in zip([0.1, 0.3, 0.5], falls, strict=True)
        ]  # fmt: skip
        pd.DataFrame(rows, columns=COLUMNS).to_csv(job / RESULTS, index=False)
    section = retraining_section(root, "paper")
    titles = [t.title for t in section]
    fashion = titles.index("Operating point on Fashion-MNIST: where M's curves cross the paper's numbers")
    assert titles[0] == "Operating point: where M's curves cross the paper's numbers"
    assert titles[fashion + 1] == "Does robust-subset retraining help? Fashion-MNIST, rpr_fashion"
    crossing = section[fashion].rows[0][2]
    caption = section[fashion].caption  # test curves only: no curve crosses both targets
    assert caption.endswith("No curve crosses both targets within the measured strengths, so whether one strength "
                            "gives both is not shown.") and ". ." not in caption  # fmt: skip
    assert crossing == f"{0.1 + 0.2 * (0.6 - 0.2957) / 0.4:.4g}"  # Fashion's own curve, not MNIST's
    (root / "reproduce" / "paper" / "operating_point_fashion" / "seed_0" / RESULTS).unlink()
    assert not any("Fashion-MNIST:" in t for t in (x.title for x in retraining_section(root, "paper")))
