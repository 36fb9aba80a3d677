"""The run contract has one owner: no module outside robustlab/runs spells out a result file's name; and
metrics.json's versions: version 2 calls the run's pipeline `pipeline` (version 1 said `experiment`)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from robustlab.errors import RobustlabError
from robustlab.runs import jobs, layout
from robustlab.runs.io import write_json
from robustlab.runs.schema import SCHEMA_VERSION, read_metrics, write_metrics

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "robustlab"
NAMES = {v for k, v in vars(layout).items() if k.isupper() and isinstance(v, str) and "." in v}


def docstrings(tree: ast.AST) -> set[int]:
    """ids of the string constants that are docstrings (they may name files: they explain, not join)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def spelled_out(path: Path, base: Path = SRC) -> list[str]:
    """Every string constant of ``path`` (docstrings excepted) that is the name of a result file."""
    tree = ast.parse(path.read_text())
    skip = docstrings(tree)
    return [
        f"{path.relative_to(base)}:{node.lineno}: {node.value!r}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and id(node) not in skip and node.value in NAMES
    ]


def test_layout_names_the_result_files():
    assert {"metrics.json", "job.json", "timings.json", "attack_curve.csv", "examples_M_test.npz"} <= NAMES
    assert layout.rpr_file("M_test") == "rpr_M_test.csv" and layout.checkpoint_file("M_R") == "M_R.ckpt"


def test_no_module_outside_runs_spells_out_a_result_file():
    offenders = [
        line
        for path in sorted(SRC.rglob("*.py"))
        if "runs" not in path.relative_to(SRC).parts[:1]
        for line in spelled_out(path)
    ]
    assert offenders == []


def test_the_check_finds_a_spelled_out_name(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text('"""Reads metrics.json."""\nPATH = "metrics.json"\nOK = f"{PATH} is missing"\n')
    assert spelled_out(probe, tmp_path) == ["probe.py:2: 'metrics.json'"]


# ---------------------------------------------------------------------------------------------
# metrics.json versions: version 2 calls the run's pipeline `pipeline` (version 1 said `experiment`)
# ---------------------------------------------------------------------------------------------


def test_an_older_metrics_file_is_read_with_the_current_key_names(tmp_path):
    assert SCHEMA_VERSION == 2
    for version in (None, 1):  # before versioning, and the archive's version 1
        run = tmp_path / str(version)
        old = {"experiment": "rpr_retrain", "seed": 3} | ({"schema_version": version} if version else {})
        write_json(run / layout.METRICS, old)
        metrics = read_metrics(run)
        assert metrics["pipeline"] == "rpr_retrain" and "experiment" not in metrics and metrics["seed"] == 3


def test_a_writer_that_still_says_experiment_is_refused_in_one_line(tmp_path):
    with pytest.raises(RobustlabError, match="key 'experiment' is called 'pipeline' since schema_version 2") as error:
        write_metrics(tmp_path, {"experiment": "rpr_retrain", "seed": 0})
    assert "\n" not in str(error.value)
    assert not (tmp_path / layout.METRICS).exists()  # nothing half-written


def test_every_archived_run_reads_with_its_pipeline():
    """paper/runs holds version-1 runs (written before the rename): the report reads them, not rewritten."""
    archived = sorted((ROOT / "paper" / "runs").rglob(layout.METRICS))
    assert len(archived) >= 50
    pipelines = set()
    for path in archived:
        assert jobs.finished(path.parent), path
        pipelines.add(read_metrics(path.parent)["pipeline"])
    assert {"rpr_retrain", "operating_point", "linear_robust", "cnn_attack", "rpr_vs_exact"} <= pipelines
