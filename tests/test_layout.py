"""The code's shape (issue 14): the import contracts hold, and they name every pipeline and reader."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from robustlab.runs import identity

ROOT = Path(__file__).resolve().parents[1]
PIPELINES = ROOT / "src" / "robustlab" / "pipelines"
SHARED = {"__init__", "training", "devices", "resume", "tracking", "measure_cache", "gan_training"}


def contracts() -> list[dict]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def test_every_pipeline_is_named_by_a_contract():
    named = set()
    for contract in contracts():
        named |= set(contract.get("modules", [])) | set(contract.get("source_modules", []))
    pipelines = {f"robustlab.pipelines.{p.stem}" for p in PIPELINES.glob("*.py") if p.stem not in SHARED}
    assert pipelines - named == set(), "a pipeline no contract keeps apart from the others"


def test_the_readers_left_out_of_the_code_version_exist():
    for reader in identity.READERS:
        assert (identity.PACKAGE / reader).exists(), reader


@pytest.mark.skipif(
    shutil.which("lint-imports", path=str(Path(sys.executable).parent)) is None, reason="import-linter not installed"
)
def test_lint_imports_keeps_every_contract():
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    done = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:]
