"""Operating points: the crossing interpolation, the operating-point run, its figure, and a retraining run whose
strength is read from it (calibrated, with provenance)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import robustlab.plotting.operating_point as op_plot
from conftest import compose_config, tiny_run_overrides
from robustlab.cli import run
from robustlab.errors import RobustlabError
from robustlab.plotting.operating_point import plot_operating_point
from robustlab.robustness.calibration import (
    COLUMNS,
    RESULTS,
    calibrated_strength,
    calibration_record,
    crossing,
    crossing_table,
    value_at,
)

# ---------------------------------------------------------------------------------------------
# crossing() on known curves
# ---------------------------------------------------------------------------------------------


def test_crossing_of_a_line_is_exact():
    x = [0.0, 1.0, 2.0, 3.0]
    y = [1.0 - v / 4 for v in x]  # 1 - x/4 reaches 0.3 at x = 2.8
    assert crossing(x, y, 0.3) == pytest.approx(2.8)
    assert crossing(x, y, 0.75) == 1.0  # a measured point on the target is its own crossing


def test_crossing_interpolates_between_the_bracketing_points_of_a_step_curve():
    assert crossing([28, 196, 784], [0.9, 0.5, 0.1], 0.3) == pytest.approx(196 + 588 * 0.2 / 0.4)
    # the first sign change counts, even on a non-monotone curve
    assert crossing([1, 2, 3, 4], [0.9, 0.2, 0.6, 0.1], 0.3) == pytest.approx(1 + 0.6 / 0.7)


def test_no_crossing_within_the_measured_strengths_is_none():
    assert crossing([1, 2, 3], [0.9, 0.8, 0.7], 0.3) is None
    assert crossing([1, 2, 3], [0.2, 0.1, 0.0], 0.3) is None
    assert crossing([1, 2, 3], [0.9, np.nan, 0.1], 0.5) == pytest.approx(2.0)  # a missing point is skipped


def test_crossing_bad_input_is_one_line():
    with pytest.raises(RobustlabError, match="strictly increasing strengths"):
        crossing([2, 1], [0.5, 0.4], 0.3)
    with pytest.raises(RobustlabError, match="one ratio per strength"):
        crossing([1, 2], [0.5], 0.3)


def test_value_at_interpolates_and_is_nan_outside():
    assert value_at([0, 10], [1.0, 0.0], 2.5) == pytest.approx(0.75)
    assert np.isnan(value_at([0, 10], [1.0, 0.0], 11))


def write_seed(folder, seed, curves):
    """An operating_point.csv of one seed: curves = {(curve, split): [(strength, ratio), ...]}."""
    rows = []
    for (curve, split), pts in curves.items():
        for strength, ratio in pts:
            rows.append(
                {
                    "curve": curve,
                    "scheme": curve.split("_")[0],
                    "param": "k",
                    "strength": strength,
                    "split": split,
                    "points": 100,
                    "robust": round(100 * ratio),
                    "robust_ratio": ratio,
                    "cp_low": 0,
                    "cp_high": 1,
                    "clean_accuracy": 0.95,
                    "max_steps": 250,
                    "seed": seed,
                }
            )
    folder.mkdir(parents=True)
    pd.DataFrame(rows, columns=COLUMNS).to_csv(folder / RESULTS, index=False)


def test_calibrated_strength_reads_the_mean_curve_over_seeds(tmp_path):
    write_seed(
        tmp_path / "seed_0",
        0,
        {
            ("pixels_uniform_uniform", "test"): [(28, 0.9), (128, 0.5), (228, 0.1)],
            ("pixels_uniform_uniform", "train"): [(28, 0.95), (128, 0.75), (228, 0.3)],
        },
    )
    write_seed(
        tmp_path / "seed_1",
        1,
        {
            ("pixels_uniform_uniform", "test"): [(28, 0.8), (128, 0.3), (228, 0.1)],
            ("pixels_uniform_uniform", "train"): [(28, 0.85), (128, 0.65), (228, 0.2)],
        },
    )
    # mean test curve 0.85, 0.4, 0.1: crosses 0.2957 at 128 + 100 * (0.4 - 0.2957) / 0.3
    record = calibrated_strength(tmp_path, "pixels_uniform_uniform", "test")
    assert record["strength"] == pytest.approx(128 + 100 * (0.4 - 0.2957) / 0.3)
    assert record["target"] == 0.2957 and record["seeds"] == 2 and record["max_steps"] == 250 and record["param"] == "k"
    assert record["source"] == str(tmp_path.resolve())
    train = calibrated_strength(tmp_path, "pixels_uniform_uniform", "train")  # mean 0.9, 0.7, 0.25 crosses 0.7128
    assert train["strength"] == pytest.approx(28 + 100 * (0.9 - 0.7128) / 0.2)
    table = crossing_table(pd.concat([pd.read_csv(p / RESULTS) for p in (tmp_path / "seed_0", tmp_path / "seed_1")]))
    row = table.iloc[0]
    assert row["test_crossing"] == pytest.approx(record["strength"]) and row["train_crossing"] == pytest.approx(
        train["strength"]
    )
    # at the test crossing the training fraction is far above 0.7128's crossing region: no single strength gives both
    assert row["train_at_test_crossing"] == pytest.approx(np.interp(record["strength"], [128, 228], [0.7, 0.25]))
    with pytest.raises(RobustlabError, match=r"never crosses 0\.01 at the measured strengths"):
        calibrated_strength(tmp_path, "pixels_uniform_uniform", "test", target=0.01)
    with pytest.raises(RobustlabError, match="no test curve 'gaussian'"):
        calibrated_strength(tmp_path, "gaussian", "test")
    with pytest.raises(RobustlabError, match="no operating_point.csv under"):
        calibrated_strength(tmp_path.parent, "x")


# ---------------------------------------------------------------------------------------------
# The operating-point run, its figure and a calibrated retraining run, on tiny data
# ---------------------------------------------------------------------------------------------

TINY_OP = {
    "experiment": "operating_point",
    "profile.op_test_points": 30,
    "profile.op_train_points": 30,
    "profile.op_pixel_k": "[28,400,784]",
    "profile.op_gaussian_sigma": "[0.0,0.5,2.0]",
    "profile.op_salt_pepper_rate": "[0.1]",
    "profile.op_linf_epsilon": "[0.3]",
    "profile.op_blur_sigma": "[1.0]",
}


@pytest.fixture(scope="module")
def op_run(tiny_mnist_root, tmp_path_factory):
    folder = tmp_path_factory.mktemp("op")
    for seed in (0, 1):
        cfg = compose_config(tiny_run_overrides(tiny_mnist_root, **TINY_OP, seed=seed))
        run(cfg, folder / f"seed_{seed}")
    return folder


def test_operating_point_run_measures_every_curve_on_one_m(op_run):
    frame = pd.read_csv(op_run / "seed_0" / RESULTS)
    assert set(frame["curve"]) == {
        "pixels_uniform_uniform",
        "pixels_exact_uniform",
        "pixels_uniform_binary",
        "pixels_exact_binary",
        "gaussian",
        "salt_pepper",
        "uniform_linf",
        "blur",
    }
    assert set(frame[frame["split"] == "train"]["curve"]) == {"pixels_uniform_uniform", "gaussian"}
    assert (frame["points"] == 30).all() and (frame["max_steps"] == 5).all()
    assert ((frame["cp_low"] <= frame["robust_ratio"]) & (frame["robust_ratio"] <= frame["cp_high"])).all()
    gauss = frame[(frame["curve"] == "gaussian") & (frame["split"] == "test")].set_index("strength")
    assert gauss.loc[0.0, "robust_ratio"] == pytest.approx(gauss.loc[0.0, "clean_accuracy"])  # sigma 0 fools nothing
    exact = frame[(frame["curve"] == "pixels_exact_uniform")].set_index("strength")
    assert exact.loc[784.0, "robust_ratio"] <= exact.loc[28.0, "robust_ratio"]
    metrics = json.loads((op_run / "seed_0" / "metrics.json").read_text())
    assert metrics["pipeline"] == "operating_point" and metrics["points"] == {"test": 30, "train": 30}
    assert "train_M" in metrics["timings_s"]  # M trained once for every curve and strength


def test_operating_point_figure_and_crossing_table(op_run, tmp_path):
    written = plot_operating_point(op_run, tmp_path)
    assert {p.name for p in written} == {
        "operating_point.png",
        "operating_point.pdf",
        "operating_point_band.csv",
        "operating_point_crossings.csv",
    }
    band = pd.read_csv(tmp_path / "operating_point_band.csv")
    assert (band["seeds"] == 2).all()
    crossings = pd.read_csv(tmp_path / "operating_point_crossings.csv")
    assert list(crossings.columns[:4]) == ["curve", "scheme", "param", "seeds"] and len(crossings) == 8


def test_operating_point_figure_takes_a_log_axis_per_panel(op_run, tmp_path, monkeypatch):
    scales = []
    monkeypatch.setattr(
        op_plot, "save_figure", lambda fig, out, name: scales.append([a.get_xscale() for a in fig.axes]) or []
    )
    plot_operating_point(op_run, tmp_path / "log", log_x="pixels")
    plot_operating_point(op_run, tmp_path / "linear")
    assert scales == [["log", "linear", "linear", "linear", "linear"], ["linear"] * 5]  # pixels is the first panel
    for table in ("operating_point_band.csv", "operating_point_crossings.csv"):  # the numbers do not change
        assert (tmp_path / "log" / table).read_bytes() == (tmp_path / "linear" / table).read_bytes()
    with pytest.raises(RobustlabError, match="unknown panel.s. pixel; panels: pixels, gaussian") as error:
        plot_operating_point(op_run, tmp_path, log_x="pixel")
    assert "\n" not in str(error.value)
    with pytest.raises(RobustlabError, match="--log-x gaussian: its grid holds strength 0, which a log axis cannot"):
        plot_operating_point(op_run, tmp_path, log_x="pixels,gaussian")


def test_calibrated_retraining_reads_its_strength_from_the_logged_curves(op_run, tiny_mnist_root, tmp_path):
    frame = pd.concat([pd.read_csv(op_run / s / RESULTS) for s in ("seed_0", "seed_1")])
    test = frame[(frame["curve"] == "gaussian") & (frame["split"] == "test")].groupby("strength")["robust_ratio"].mean()
    target = float((test.iloc[0] + test.iloc[1]) / 2)  # surely crossed between the first two strengths
    metrics = run(
        compose_config(
            tiny_run_overrides(
                tiny_mnist_root,
                perturbation="gaussian",
                **{
                    "rpr.calibrate.source": str(op_run),
                    "rpr.calibrate.target": target,
                    "rpr.balance.on_shortfall": "up_to",
                },
            )
        ),
        tmp_path / "r",
    )
    cal = metrics["calibration"]
    assert cal["curve"] == "gaussian" and cal["split"] == "test" and cal["source"] == str(op_run.resolve())
    assert (
        cal["strength"] == pytest.approx(crossing(test.index, test.values, target)) and cal["used"] == cal["strength"]
    )
    assert metrics["perturbation"] == f"gaussian(sigma={cal['used']})"
    with pytest.raises(RobustlabError, match="measured MAX_STEPS 5, this run uses 7"):
        run(
            compose_config(
                tiny_run_overrides(
                    tiny_mnist_root,
                    perturbation="gaussian",
                    **{"profile.max_steps": 7, "rpr.calibrate.source": str(op_run), "rpr.calibrate.target": target},
                )
            ),
            tmp_path / "bad",
        )


def test_a_target_never_crossed_is_the_runs_result_not_a_failure(op_run, tiny_mnist_root, tmp_path):
    """A target below every point of the mean curve is never crossed: the run ends with its metrics written,
    M / M_R / M_rand null and the reason logged; nothing is trained or measured at some other strength."""
    frame = pd.concat([pd.read_csv(op_run / s / RESULTS) for s in ("seed_0", "seed_1")])
    test = frame[(frame["curve"] == "gaussian") & (frame["split"] == "test")].groupby("strength")["robust_ratio"].mean()
    target = float(test.min()) / 2 if test.min() > 0 else -0.5  # below every point of the mean curve
    record = calibration_record(op_run, "gaussian", "test", target)
    assert record["strength"] is None and record["not_reached"].startswith(
        f"M's test curve 'gaussian' never crosses {target}"
    )
    metrics = run(
        compose_config(
            tiny_run_overrides(
                tiny_mnist_root,
                perturbation="gaussian",
                **{"rpr.calibrate.source": str(op_run), "rpr.calibrate.target": target},
            )
        ),
        tmp_path / "r",
    )
    assert metrics["calibration_not_reached"] == record["not_reached"]
    assert metrics["calibration"]["strength"] is None and metrics["calibration"]["used"] is None
    assert metrics["M"]["test"]["robust_ratio"] is None and metrics["M_R"]["test_accuracy"] is None
    written = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert (
        written["calibration_not_reached"] == record["not_reached"] and written["M_R"]["test"]["robust_ratio"] is None
    )
    assert not list((tmp_path / "r").glob("*.ckpt")) and not list((tmp_path / "r").glob("rpr_*.csv"))


def test_a_calibrated_run_never_takes_the_configured_strengths_rpr_from_the_cache(op_run, tiny_mnist_root, tmp_path):
    """The RPR cache is keyed by the scheme measured: after a literal run of the same M and points, a calibrated
    run (another sigma) measures afresh, and gets what a run at that sigma without any cache gets."""
    frame = pd.concat([pd.read_csv(op_run / s / RESULTS) for s in ("seed_0", "seed_1")])
    test = frame[(frame["curve"] == "gaussian") & (frame["split"] == "test")].groupby("strength")["robust_ratio"].mean()
    target = float((test.iloc[0] + test.iloc[1]) / 2)
    literal = run(
        compose_config(
            tiny_run_overrides(
                tiny_mnist_root,
                perturbation="gaussian",
                **{"rpr.retrain": "false", "result_cache": str(tmp_path / "cache")},
            )
        ),
        tmp_path / "literal",
    )
    m = str(tmp_path / "literal" / "M.ckpt")
    calibrated = run(
        compose_config(
            tiny_run_overrides(
                tiny_mnist_root,
                perturbation="gaussian",
                checkpoint=m,
                **{
                    "rpr.retrain": "false",
                    "result_cache": str(tmp_path / "cache"),
                    "rpr.calibrate.source": str(op_run),
                    "rpr.calibrate.target": target,
                },
            )
        ),
        tmp_path / "calibrated",
    )
    used = calibrated["calibration"]["used"]
    assert used != literal["config"]["perturbation"]["sigma"] and calibrated["rpr_source"]["M_test"] == "measured"
    fresh = run(
        compose_config(
            tiny_run_overrides(
                tiny_mnist_root,
                perturbation="gaussian",
                checkpoint=m,
                **{"rpr.retrain": "false", "perturbation.sigma": used},
            )
        ),
        tmp_path / "fresh",
    )
    assert calibrated["M"]["test"] == fresh["M"]["test"]
