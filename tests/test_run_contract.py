"""The run contract has one owner: no module outside robustlab/runs spells out a result file's name."""

from __future__ import annotations

import ast
from pathlib import Path

from robustlab.runs import layout

SRC = Path(__file__).resolve().parents[1] / "src" / "robustlab"
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
