"""The results store: run folders written by hand in tmp_path, collected into one tidy table."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from robustlab.errors import RobustlabError
from robustlab.runs.store import COLUMNS, collect_runs, main, numeric_leaves

RPR_VALUES = {0: (0.98, 0.90), 1: (0.97, 0.92), 2: (0.99, 0.91)}  # seed -> (M test accuracy, M robust ratio)


def write_run(run_dir: Path, config: dict, metrics: dict | str | None) -> Path:
    """A run folder as the Hydra CLI leaves it: .hydra/config.yaml, and metrics.json unless it failed."""
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    if isinstance(metrics, dict):
        (run_dir / "metrics.json").write_text(json.dumps(metrics | {"config": config}))
    elif isinstance(metrics, str):
        (run_dir / "metrics.json").write_text(metrics)
    return run_dir


def rpr_metrics(seed: int, train_images: int = 60000) -> dict:
    accuracy, ratio = RPR_VALUES[seed]
    return {
        "pipeline": "rpr_retrain",
        "profile": "paper",
        "seed": seed,
        "data": {"name": "mnist", "train_images": train_images, "test_images": 10000},
        "max_steps": 250,
        "checkpoint": None,
        "scheme": "pixels",
        "M": {"test_accuracy": accuracy, "test": {"points": 10000, "robust_ratio": ratio, "robust_per_class": [5, 7]}},
        "M_train": {"points": train_images, "robust_ratio": 0.7},
        "subset": {"per_class_taken": 1500},
        "M_R": {"test_accuracy": accuracy - 0.01, "test": {"points": 10000, "robust_ratio": ratio}},
        "timings_s": {"train_M": 1.5},
    }


def linear_metrics(seed: int, epsilon: float) -> dict:
    return {
        "pipeline": "linear_robust",
        "profile": "paper",
        "seed": seed,
        "epsilon": epsilon,
        "model": {"epochs": 10, "w_l1": 3.0},
        "data": {"train_images": 2128, "test_images": 2115},
        "train_accuracy_running": 0.99 + seed / 1000,
        "test_accuracy": 0.998,
        "attack": {"clip": False, "grid": {"stop": 0.5, "num": 101}, "eps_at_50": 0.1 + epsilon},
    }


def config(name: str, seed: int, **extra) -> dict:
    return {
        "name": name,
        "seed": seed,
        "data": {"name": "mnist", "train_subset": None},
        "model": {"channels": [32, 64]},
    } | extra


@pytest.fixture
def runs_root(tmp_path) -> Path:
    """paper profile: rpr_mnist over 3 seeds (+ one failed seed), linear_robust eps 0 / 0.1 x seeds 0, 1 (+ one
    broken)."""
    root = tmp_path / "outputs"
    rpr = root / "reproduce" / "paper" / "rpr_mnist"
    rpr.mkdir(parents=True)
    (rpr / "multirun.yaml").write_text("hydra: {}\n")
    for seed in RPR_VALUES:
        write_run(rpr / f"seed_{seed}", config("rpr_mnist", seed), rpr_metrics(seed))
    failed = write_run(rpr / "seed_3", config("rpr_mnist", 3), None)
    (failed / "cli.log").write_text("[INFO] - training M\nerror: data folder missing\n")
    linear = root / "reproduce" / "paper" / "linear_robust"
    linear.mkdir(parents=True)
    (linear / "multirun.yaml").write_text("hydra: {}\n")
    job = 0
    for epsilon in (0.0, 0.1):
        for seed in (0, 1):
            write_run(linear / str(job), config("linear_robust", seed, epsilon=epsilon), linear_metrics(seed, epsilon))
            job += 1
    write_run(linear / "9", config("linear_robust", 2), '{"pipeline": "linear_robust", ')
    return root


def test_collect_runs_one_row_per_run_and_metric(runs_root):
    frame, skipped = collect_runs(runs_root)
    assert list(frame.columns[: len(COLUMNS)]) == COLUMNS
    assert frame["run_dir"].nunique() == 7
    expected_rows = sum(
        len(list(numeric_leaves({k: v for k, v in m.items() if k not in {"pipeline", "profile", "seed"}})))
        for m in [rpr_metrics(s) for s in RPR_VALUES] + [linear_metrics(s, e) for e in (0.0, 0.1) for s in (0, 1)]
    )
    assert len(frame) == expected_rows
    seed_1 = frame[frame["run_dir"].str.endswith("rpr_mnist/seed_1")].set_index("metric")
    assert seed_1.loc["M.test_accuracy", "value"] == 0.97
    assert seed_1.loc["M.test.robust_per_class.1", "value"] == 7  # list items by index
    assert math.isnan(seed_1.loc["checkpoint", "value"])  # null kept as NaN, not dropped
    assert "scheme" not in seed_1.index and "seed" not in seed_1.index  # text is no metric; seed is a column
    assert set(seed_1["group"]) == {"reproduce/paper/rpr_mnist"} and set(seed_1["name"]) == {"rpr_mnist"}
    assert (
        set(seed_1["pipeline"]) == {"rpr_retrain"}
        and set(seed_1["profile"]) == {"paper"}
        and set(seed_1["seed"]) == {1}
    )
    assert set(seed_1["config.model.channels"]) == {"[32, 64]"}  # lists as strings
    assert seed_1["config.data.train_subset"].isna().all()
    assert not any(c.startswith("config.") and c.endswith(".config") for c in frame.columns)
    linear = frame[frame["group"] == "reproduce/paper/linear_robust"]
    assert set(linear.loc[linear["metric"] == "attack.clip", "value"]) == {0.0}  # booleans as 0/1
    assert sorted(linear.loc[linear["metric"] == "epsilon", "value"]) == [0.0, 0.0, 0.1, 0.1]


def test_failed_and_broken_runs_are_named_with_the_reason_and_left_out(runs_root):
    frame, skipped = collect_runs(runs_root)
    reasons = {s.path.relative_to(runs_root).as_posix(): s.reason for s in skipped}
    assert set(reasons) == {"reproduce/paper/rpr_mnist/seed_3", "reproduce/paper/linear_robust/9"}
    assert reasons["reproduce/paper/rpr_mnist/seed_3"].startswith("no metrics.json")
    assert "error: data folder missing" in reasons["reproduce/paper/rpr_mnist/seed_3"]
    assert reasons["reproduce/paper/linear_robust/9"].startswith("unreadable metrics.json")
    assert not frame["run_dir"].str.contains("seed_3|linear_robust/9").any()
    assert all("\n" not in r for r in reasons.values())


def test_single_run_is_its_own_group(tmp_path):
    write_run(tmp_path / "runs" / "rpr_mnist" / "quick" / "t1", config("rpr_mnist", 0), rpr_metrics(0))
    frame, skipped = collect_runs(tmp_path)
    assert set(frame["group"]) == {"runs/rpr_mnist/quick/t1"} and not skipped


def test_cli_writes_the_table_and_reports_skips(runs_root, tmp_path, capsys):
    out = tmp_path / "results"
    assert main(["--root", str(runs_root), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    import pandas as pd

    table = pd.read_csv(out / "results.csv")
    assert table["run_dir"].nunique() == 7 and "value" in table.columns
    assert f"7 runs, {len(table)} rows, 2 skipped" in captured.out
    assert len([line for line in captured.err.splitlines() if line.startswith("skipped ")]) == 2
    assert "seed_3" in captured.err and "linear_robust/9" in captured.err
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*"))
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        assert "results.parquet not written: pyarrow is not installed" in captured.out
        assert not (out / "results.parquet").exists()
    else:
        assert (out / "results.parquet").is_file()


def test_bad_root_is_one_error_line(tmp_path, capsys):
    with pytest.raises(RobustlabError, match="is not a folder"):
        collect_runs(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as exit_:
        main(["--root", str(tmp_path / "empty"), "--out", str(tmp_path / "o")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no finished run under") and err.count("\n") == 1


def test_readme_pandas_query_runs_on_the_parquet_store(tmp_path, monkeypatch):
    """The three lines README shows, run as written (from the folder holding outputs/results/)."""
    pytest.importorskip("pyarrow")
    import re

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    query = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "read_parquet" in b)
    assert len(query.strip().splitlines()) == 3
    root = tmp_path / "outputs"
    for seed in RPR_VALUES:
        for scheme in ("pixels", "gaussian"):
            write_run(
                root / scheme / f"seed_{seed}",
                config("rpr_sweep", seed, perturbation={"name": scheme}),
                rpr_metrics(seed),
            )
    assert main(["--root", str(root), "--out", str(root / "results")]) == 0
    monkeypatch.chdir(tmp_path)
    *setup, last = query.strip().splitlines()
    scope: dict = {}
    exec("\n".join(setup), scope)
    answer = eval(last, scope)
    assert list(answer.columns) == ["mean", "count"]
    assert sorted(answer.index) == [("rpr_retrain", "gaussian"), ("rpr_retrain", "pixels")]
    assert answer.loc[("rpr_retrain", "pixels"), "count"] == 3
    assert answer.loc[("rpr_retrain", "pixels"), "mean"] == pytest.approx(sum(r for _, r in RPR_VALUES.values()) / 3)
