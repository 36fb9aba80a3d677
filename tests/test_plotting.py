"""robustlab-plot on tiny hand-made run directories written with the real result writers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.container import ErrorbarContainer

from robustlab import results, stats
from robustlab.errors import RobustlabError
from robustlab.plotting import cli, collect_runs, curve_series, per_class, plot_run, plot_sweep, seed_band
from robustlab.plotting import rpr as rpr_plots
from robustlab.plotting.style import footer
from robustlab.robustness.rpr import RPRResult

CORE = ["fig1_robust_vs_not", "fig2_first_failure", "fig3_robust_ratio_M"]
RETRAIN = ["fig4_robust_per_class", "fig5_robust_ratio_M_R", "fig35_overlay"]
PIXELS = "pixels(k=sqrt, count=uniform, value=uniform)"


def hand_result(max_steps: int = 4) -> RPRResult:
    """Six points: 0, 2, 4 never fail; 1 fails at retry 3; 3 at retry 1; 5 is misclassified clean."""
    return RPRResult(
        index=np.arange(6),
        label=np.array([0, 1, 2, 0, 1, 2]),
        clean_pred=np.array([0, 1, 2, 0, 1, 1]),
        first_failure=np.array([-1, 3, -1, 1, -1, 0]),
        fail_pred=np.array([-1, 2, -1, 1, -1, -1]),
        max_steps=max_steps,
    )


def summary(result: RPRResult) -> dict:
    return {
        "points": len(result.label),
        "clean_accuracy": float(result.correct.mean()),
        "robust_ratio": result.robust_ratio(),
        "robust_ratio_of_correct": result.robust_ratio(over="correct"),
        "robust_per_class": np.bincount(result.label[result.robust], minlength=3).tolist(),
    }


def make_run(path: Path, result: RPRResult, *, seed: int = 0, perturbation: str = PIXELS, retrain: bool = True) -> Path:
    metrics = {
        "pipeline": "rpr_retrain",
        "profile": "quick",
        "seed": seed,
        "data": {"name": "mnist", "root": "/data", "train_images": 60, "test_images": 6},
        "perturbation": perturbation,
        "scheme": perturbation.split("(")[0],
        "max_steps": result.max_steps,
        "M": {"test_accuracy": 0.8, "test": summary(result)},
    }
    results.save_rpr(path / "rpr_M_test.csv", result)
    if retrain:
        results.save_rpr(path / "rpr_M_train.csv", result)
        results.save_rpr(path / "rpr_M_R_test.csv", result)
        metrics |= {
            "M_train": summary(result),
            "M_R": {"test_accuracy": 0.7, "test": summary(result)},
            "subset": {"per_class_asked": 1500, "per_class_taken": 1, "subset_size": 3},
        }
    rng = np.random.default_rng(seed)
    images = lambda n: rng.random((n, 1, 8, 8), dtype=np.float32)  # noqa: E731
    results.write_arrays(
        path / "examples_M_test.npz",
        robust_images=images(3),
        robust_labels=np.array([0, 2, 1]),
        fragile_images=images(2),
        fragile_labels=np.array([1, 0]),
        fragile_clean_pred=np.array([1, 0]),
        fragile_perturbed=images(2),
        fragile_fail_pred=np.array([2, 1]),
        fragile_step=np.array([3, 1]),
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
    text = footer(
        {
            "profile": "quick",
            "seed": 0,
            "max_steps": 4,
            "perturbation": PIXELS,
            "data": {"name": "mnist", "train_images": 60},
            "M": {"test": {"points": 6}},
        }
    )
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
    results.write_json(tmp_path / results.METRICS, {"pipeline": "linear", "profile": "quick"})
    with pytest.raises(RobustlabError, match="lacks data, perturbation, max_steps, M"):
        plot_run(tmp_path, tmp_path / "figs")


def test_seed_band_counts_each_seed_once():
    band = seed_band([(0, [1.0, 0.5, 0.5]), (0, [1.0, 0.5]), (1, [1.0, 0.7, 0.3])])
    np.testing.assert_allclose(band["mean"], [1.0, 0.6, 0.4])
    # Two seeds: the t interval (1 df, t = 12.706) reaches far beyond their two values.
    half = stats.t_mean([0.5, 0.7]).high - 0.6
    assert half > 0.1
    np.testing.assert_allclose(band["low"], [1.0, 0.6 - half, 0.4 - half])
    np.testing.assert_allclose(band["high"], [1.0, 0.6 + half, 0.4 + half])
    np.testing.assert_array_equal(band["seeds"], [2, 2, 2])


def test_seed_band_is_the_t_ci_of_robustlab_stats():
    curves = [(0, [1.0, 0.9, 0.8]), (1, [1.0, 0.7, 0.6]), (2, [1.0, 0.6, 0.1]), (3, [1.0, 0.8])]
    band = seed_band(curves)
    assert_ordered(band)
    expected = stats.t_mean([0.8, 0.6, 0.1])  # seed 3 does not reach the last step
    np.testing.assert_allclose(
        [band["mean"][2], band["low"][2], band["high"][2]], [expected.mean, expected.low, expected.high]
    )
    np.testing.assert_array_equal(band["seeds"], [4, 4, 3])
    assert band["low"][2] < band["high"][2]


def test_seed_band_of_one_seed_has_no_interval():
    band = seed_band([(7, [1.0, 0.5])])
    np.testing.assert_allclose(band["mean"], [1.0, 0.5])
    assert np.isnan(band["low"]).all() and np.isnan(band["high"]).all()


def assert_ordered(band: dict) -> None:
    """low <= mean <= high wherever there is an interval (resampled means of equal values may differ in the last
    bit)."""
    has = ~np.isnan(band["low"])
    tol = 1e-12
    assert (band["low"][has] <= band["mean"][has] + tol).all() and (band["mean"][has] <= band["high"][has] + tol).all()


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
    assert list(table.columns) == [
        "scheme",
        "perturbation",
        "seed",
        "max_steps",
        "robust_ratio",
        "robust_ratio_of_correct",
        "test_accuracy",
        "run_dir",
    ]
    bands = pd.read_csv(out / "sweep_band.csv")
    assert list(bands.columns) == ["perturbation", "max_steps", "seeds", "mean", "ci_low", "ci_high"]
    pixels_band = bands[bands.perturbation == PIXELS]
    assert pixels_band.max_steps.tolist() == [0, 1, 2, 3, 4] and pixels_band.seeds.tolist() == [2] * 5
    assert_ordered(
        {
            "mean": pixels_band["mean"].to_numpy(),
            "low": pixels_band.ci_low.to_numpy(),
            "high": pixels_band.ci_high.to_numpy(),
        }
    )
    assert bands[bands.perturbation != PIXELS].ci_low.isna().all()  # one seed: no interval
    pixels = table[table.scheme == "pixels"]
    assert sorted(zip(pixels.seed, pixels.max_steps, strict=True)) == [(0, 2), (0, 4), (1, 4)]
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


# ---------------------------------------------------------------------------------------------
# robustlab-plot rpr on a multirun folder of seeds (the paper profile's seed_0/, seed_1/, ...)
# ---------------------------------------------------------------------------------------------


def seeded_result(seed: int) -> RPRResult:
    """hand_result where seed 1 also loses point 0 (at retry 4) and seed 2 also point 2 (at retry 2),
    so the seeds' final robust ratios are 3/6, 2/6, 1/6 and a band has width."""
    result = hand_result()
    first_failure, fail_pred = result.first_failure.copy(), result.fail_pred.copy()
    for point, retry in ((0, 4), (2, 2))[:seed]:
        first_failure[point], fail_pred[point] = retry, (result.label[point] + 1) % 3
    return RPRResult(result.index, result.label, result.clean_pred, first_failure, fail_pred, result.max_steps)


def make_seeds(root: Path, seeds=(0, 1, 2)) -> Path:
    for seed in seeds:
        make_run(root / f"seed_{seed}", seeded_result(seed), seed=seed)
    return root


@pytest.fixture
def drawn(monkeypatch) -> dict:
    """The figures plot_run draws, by name: their axes and figure texts (title, footer), kept for inspection."""
    figures, save = {}, rpr_plots.save_figure

    def keep(fig, out_dir, name):
        figures[name] = {"axes": fig.axes, "texts": " ".join(t.get_text() for t in fig.texts)}
        return save(fig, out_dir, name)

    monkeypatch.setattr(rpr_plots, "save_figure", keep)
    return figures


def legend_texts(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def bands_drawn(ax) -> int:
    return sum(isinstance(c, PolyCollection) for c in ax.collections)


def error_bars_drawn(ax) -> bool:
    return any(isinstance(c, ErrorbarContainer) for c in ax.containers)


def test_seeds_draw_mean_with_t_band_and_skip_unfinished_jobs(tmp_path, capsys, drawn):
    root = make_seeds(tmp_path / "multirun")
    # An unfinished job with a very different result: it must be named, and never averaged in.
    never_robust = RPRResult(np.arange(6), np.zeros(6, int), np.zeros(6, int), np.ones(6, int), np.ones(6, int), 4)
    results.save_rpr(root / "seed_3" / "rpr_M_test.csv", never_robust)
    out = tmp_path / "figs"
    written = plot_run(root, out)
    assert_figures(out, CORE + RETRAIN, written)
    assert out / "rpr_summary.csv" in written
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "seed_3" in err[0] and "metrics.json" in err[0]

    expected = stats.t_mean([3 / 6, 2 / 6, 1 / 6])
    assert expected.low < expected.mean < expected.high
    ax = drawn["fig3_robust_ratio_M"]["axes"][0]
    assert bands_drawn(ax) == 2  # all points and correctly classified points
    legend = legend_texts(ax)
    assert any("mean of 3 seeds" in t for t in legend) and any("95% t CI" in t for t in legend)
    title = ax.get_title()
    assert (
        f"final robust ratio {expected.mean:.3f} [{expected.low:.3f}, {expected.high:.3f}]" in title
        and "3 seeds" in title
    )
    assert "seeds 0/1/2" in drawn["fig3_robust_ratio_M"]["texts"]
    assert bands_drawn(drawn["fig35_overlay"]["axes"][0]) == 2
    fig4 = drawn["fig4_robust_per_class"]["axes"][0]
    assert error_bars_drawn(fig4) and "3 seeds" in fig4.get_title()
    assert drawn["fig1_robust_vs_not"]["texts"].endswith("seed 0")  # example images: the lowest seed

    summary = pd.read_csv(out / "rpr_summary.csv").set_index("quantity")
    ratio = summary.loc["M robust ratio (test)"]
    np.testing.assert_allclose(
        [ratio["mean"], ratio.ci_low, ratio.ci_high], [expected.mean, expected.low, expected.high]
    )
    assert ratio.seeds == 3
    assert (summary.ci_low <= summary["mean"] + 1e-12).all() and (summary["mean"] <= summary.ci_high + 1e-12).all()


def test_ratio_band_lies_around_the_mean_curve(tmp_path):
    runs = rpr_plots.load_runs(make_seeds(tmp_path / "multirun"))
    band = rpr_plots.ratio_band(runs, "M", "all")
    assert_ordered(band)
    np.testing.assert_allclose(
        band["mean"], np.mean([curve_series(seeded_result(s))["all"] for s in (0, 1, 2)], axis=0)
    )
    assert (band["high"] - band["low"])[-1] > 0


def test_examples_come_from_the_lowest_seed_whatever_the_job_order(tmp_path, drawn):
    root = tmp_path / "multirun"
    make_run(root / "0", seeded_result(2), seed=2)
    make_run(root / "1", seeded_result(1), seed=1)
    plot_run(root, tmp_path / "figs")
    assert drawn["fig2_first_failure"]["texts"].endswith("seed 1")


def test_seeds_of_different_settings_are_refused(tmp_path):
    root = make_seeds(tmp_path / "multirun", seeds=(0,))
    make_run(root / "seed_1", seeded_result(1), seed=1, perturbation="gaussian(sigma=0.3)")
    with pytest.raises(RobustlabError, match="differ in perturbation"):
        plot_run(root, tmp_path / "figs")


def test_multirun_without_finished_jobs_is_refused(tmp_path, capsys):
    (tmp_path / "multirun" / "seed_0").mkdir(parents=True)
    with pytest.raises(RobustlabError, match="none with metrics.json"):
        plot_run(tmp_path / "multirun", tmp_path / "figs")
    assert "seed_0" in capsys.readouterr().err


def test_single_run_has_no_band_and_no_summary(tmp_path, drawn):
    written = plot_run(make_run(tmp_path / "run", hand_result()), tmp_path / "figs")
    assert not any(p.suffix == ".csv" for p in written)
    ax = drawn["fig3_robust_ratio_M"]["axes"][0]
    assert bands_drawn(ax) == 0 and ax.get_title() == "test accuracy of $\\mathcal{M}$: 0.8000"
    assert not any("seeds" in t or "CI" in t for t in legend_texts(ax))
    assert not error_bars_drawn(drawn["fig4_robust_per_class"]["axes"][0])


def test_one_finished_seed_in_a_multirun_draws_like_a_single_run(tmp_path, capsys, drawn):
    root = make_seeds(tmp_path / "multirun", seeds=(0,))
    (root / "seed_1").mkdir()  # still running
    written = plot_run(root, tmp_path / "figs")
    assert_figures(tmp_path / "figs", CORE + RETRAIN, written)
    assert len(written) == 2 * len(CORE + RETRAIN)
    assert "seed_1" in capsys.readouterr().err
    assert bands_drawn(drawn["fig3_robust_ratio_M"]["axes"][0]) == 0


def test_cli_rpr_on_seeds(tmp_path, capsys):
    root = make_seeds(tmp_path / "multirun", seeds=(0, 1))
    cli.main(["rpr", "--run", str(root), "--out", str(tmp_path / "figs")])
    printed = capsys.readouterr().out.split()
    assert str(tmp_path / "figs" / "rpr_summary.csv") in printed


def test_a_share_band_is_drawn_within_zero_and_one_and_nan_stays_no_band():
    from robustlab.plotting.style import share_band

    low, high = share_band([-0.2, 0.3, np.nan], [0.4, 1.3, np.nan])
    assert low.tolist()[:2] == [0.0, 0.3] and high.tolist()[:2] == [0.4, 1.0]
    assert np.isnan(low[2]) and np.isnan(high[2])
