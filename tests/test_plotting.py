"""robustlab-plot on tiny hand-made run directories written with the real result writers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from robustlab import results
from robustlab.errors import RobustlabError
from robustlab.plotting import cli, collect_runs, curve_series, per_class, plot_run, plot_sweep, seed_band
from robustlab.plotting.style import footer
from robustlab.robustness.rpr import RPRResult

CORE = ["fig1_robust_vs_not", "fig2_first_failure", "fig3_robust_ratio_M"]
RETRAIN = ["fig4_robust_per_class", "fig5_robust_ratio_M_R", "fig35_overlay"]
PIXELS = "pixels(k=sqrt, count=uniform, value=uniform)"


def hand_result(max_steps: int = 4) -> RPRResult:
    """Six points: 0, 2, 4 never fail; 1 fails at retry 3; 3 at retry 1; 5 is misclassified clean."""
    return RPRResult(
        index=np.arange(6), label=np.array([0, 1, 2, 0, 1, 2]), clean_pred=np.array([0, 1, 2, 0, 1, 1]),
        first_failure=np.array([-1, 3, -1, 1, -1, 0]), fail_pred=np.array([-1, 2, -1, 1, -1, -1]), max_steps=max_steps,
    )


def summary(result: RPRResult) -> dict:
    return {
        "points": len(result.label), "clean_accuracy": float(result.correct.mean()),
        "robust_ratio": result.robust_ratio(), "robust_ratio_of_correct": result.robust_ratio(over="correct"),
        "robust_per_class": np.bincount(result.label[result.robust], minlength=3).tolist(),
    }


def make_run(path: Path, result: RPRResult, *, seed: int = 0, perturbation: str = PIXELS, retrain: bool = True) -> Path:
    metrics = {
        "experiment": "rpr_retrain", "profile": "quick", "seed": seed,
        "data": {"name": "mnist", "root": "/data", "train_images": 60, "test_images": 6},
        "perturbation": perturbation, "scheme": perturbation.split("(")[0], "max_steps": result.max_steps,
        "M": {"test_accuracy": 0.8, "test": summary(result)},
    }
    results.save_rpr(path / "rpr_M_test.csv", result)
    if retrain:
        results.save_rpr(path / "rpr_M_train.csv", result)
        results.save_rpr(path / "rpr_M_R_test.csv", result)
        metrics |= {"M_train": summary(result), "M_R": {"test_accuracy": 0.7, "test": summary(result)},
                    "subset": {"per_class_asked": 1500, "per_class_taken": 1, "subset_size": 3}}
    rng = np.random.default_rng(seed)
    images = lambda n: rng.random((n, 1, 8, 8), dtype=np.float32)  # noqa: E731
    results.write_arrays(
        path / "examples_M_test.npz", robust_images=images(3), robust_labels=np.array([0, 2, 1]),
        fragile_images=images(2), fragile_labels=np.array([1, 0]), fragile_clean_pred=np.array([1, 0]),
        fragile_perturbed=images(2), fragile_fail_pred=np.array([2, 1]), fragile_step=np.array([3, 1]),
    )
    results.write_json(path / results.METRICS, metrics)
    return path


def assert_figures(out: Path, names: list[str], written: list[Path]) -> None:
    expected = {out / f"{n}.{fmt}" for n in names for fmt in ("png", "pdf")}
    assert set(written) >= expected
    for path in expected:
        assert path.stat().st_size > 0, path
    assert not list(out.glob(".*.tmp")), "atomic writes left temporary files"


def test_curve_series_matches_hand_computation():
    series = curve_series(hand_result())
    np.testing.assert_array_equal(series["steps"], [0, 1, 2, 3, 4])
    np.testing.assert_allclose(series["all"], [5 / 6, 4 / 6, 4 / 6, 3 / 6, 3 / 6])
    np.testing.assert_allclose(series["correct"], [1.0, 0.8, 0.8, 0.6, 0.6])


def test_per_class_counts_and_shares():
    counts = per_class(hand_result(), 4)
    np.testing.assert_array_equal(counts["robust"], [1, 1, 1, 0])
    np.testing.assert_array_equal(counts["total"], [2, 2, 2, 0])
    np.testing.assert_allclose(counts["share"][:3], [0.5, 0.5, 0.5])
    assert np.isnan(counts["share"][3])  # a class with no points has no share, not 0%


def test_footer_says_quick_profile():
    text = footer({"profile": "quick", "seed": 0, "max_steps": 4, "perturbation": PIXELS,
                   "data": {"name": "mnist", "train_images": 60}, "M": {"test": {"points": 6}}})
    assert "quick profile" in text and PIXELS in text and "MAX_STEPS=4" in text and "60 train images" in text


def test_plot_run_writes_every_figure(tmp_path):
    run = make_run(tmp_path / "run", hand_result())
    out = tmp_path / "figs"
    written = plot_run(run, out)
    assert_figures(out, CORE + RETRAIN, written)
    assert len(written) == 2 * len(CORE + RETRAIN)


def test_retrain_figures_skipped_without_retraining(tmp_path, capsys):
    run = make_run(tmp_path / "run", hand_result(), retrain=False)
    out = tmp_path / "figs"
    written = plot_run(run, out)
    assert_figures(out, CORE, written)
    assert not any(out.glob("fig4*")) and not any(out.glob("fig5*")) and not any(out.glob("fig35*"))
    notices = capsys.readouterr().err.strip().splitlines()
    assert len(notices) == 3
    assert "rpr_M_train.csv" in notices[0] and "rpr_M_R_test.csv" in notices[1]


def test_plot_run_rejects_a_folder_without_metrics(tmp_path):
    with pytest.raises(RobustlabError, match="not a run directory"):
        plot_run(tmp_path, tmp_path / "figs")


def test_plot_run_rejects_metrics_of_another_experiment(tmp_path):
    results.write_json(tmp_path / results.METRICS, {"experiment": "linear", "profile": "quick"})
    with pytest.raises(RobustlabError, match="lacks data, perturbation, max_steps, M"):
        plot_run(tmp_path, tmp_path / "figs")


def test_seed_band_counts_each_seed_once():
    band = seed_band([(0, [1.0, 0.5, 0.5]), (0, [1.0, 0.5]), (1, [1.0, 0.7, 0.3])])
    np.testing.assert_allclose(band["mean"], [1.0, 0.6, 0.4])
    np.testing.assert_allclose(band["low"], [1.0, 0.5, 0.3])
    np.testing.assert_allclose(band["high"], [1.0, 0.7, 0.5])
    np.testing.assert_array_equal(band["seeds"], [2, 2, 2])


def make_multirun(root: Path) -> Path:
    make_run(root / "0", hand_result(4), seed=0)
    make_run(root / "1", hand_result(2), seed=0, retrain=False)
    make_run(root / "2", hand_result(4), seed=1, retrain=False)
    make_run(root / "3", hand_result(4), seed=0, perturbation="gaussian(sigma=0.3)", retrain=False)
    (root / "4" / ".hydra").mkdir(parents=True)  # a job that failed before writing results
    return root


def test_sweep_writes_figure_and_csv_and_names_failed_jobs(tmp_path, capsys):
    out = tmp_path / "figs"
    written = plot_sweep(make_multirun(tmp_path / "multirun"), out, "sweep")
    assert_figures(out, ["sweep"], written)
    assert "job 4" in capsys.readouterr().err
    table = pd.read_csv(out / "sweep.csv")
    assert len(table) == 4  # the failed job is not a row
    assert list(table.columns) == ["scheme", "perturbation", "seed", "max_steps", "robust_ratio",
                                   "robust_ratio_of_correct", "test_accuracy", "run_dir"]
    pixels = table[table.scheme == "pixels"]
    assert sorted(zip(pixels.seed, pixels.max_steps)) == [(0, 2), (0, 4), (1, 4)]
    np.testing.assert_allclose(pixels[pixels.max_steps == 4].robust_ratio.mean(), 0.5)
    np.testing.assert_allclose(pixels[pixels.max_steps == 2].robust_ratio, 4 / 6)
    assert table.run_dir.map(lambda d: Path(d).name).tolist() == ["3", "1", "0", "2"]


def test_collect_runs_rejects_empty_multirun(tmp_path, capsys):
    (tmp_path / "0").mkdir()
    with pytest.raises(RobustlabError, match="no finished runs"):
        collect_runs(tmp_path)
    assert "job 0" in capsys.readouterr().err


def test_cli_sweep_on_single_run_directory_exits_2(tmp_path, capsys):
    run = make_run(tmp_path / "run", hand_result(), retrain=False)
    with pytest.raises(SystemExit) as stop:
        cli.main(["sweep", "--multirun", str(run), "--out", str(tmp_path / "figs")])
    assert stop.value.code == 2
    assert capsys.readouterr().err.startswith("error: ")


@pytest.mark.parametrize("command", ["rpr --run", "sweep --multirun"])
def test_cli_missing_directory_exits_2_with_one_line(tmp_path, command):
    args = [*command.split(), str(tmp_path / "nowhere"), "--out", str(tmp_path / "figs")]
    done = subprocess.run([sys.executable, "-m", "robustlab.plotting.cli", *args], capture_output=True, text=True)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "nowhere" in lines[0]
    assert not (tmp_path / "figs").exists()
