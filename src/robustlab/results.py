"""Run artefacts: tables, arrays and RPR results, each written atomically (robustlab.runs.io), so a
crash never leaves a half-written file that a later step (a plot, a table) would trust.

JSON, file names and metrics.json live in robustlab.runs (io, layout, schema); this module re-exports
them so ``results.write_json`` / ``results.METRICS`` keep working."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from robustlab.errors import require
from robustlab.robustness.rpr import RPRResult

# The run contract lives in robustlab.runs; these names stay importable from here for older callers.
from robustlab.runs.io import _plain, _umask, atomic_write_bytes, read_json, write_json  # noqa: E402,F401
from robustlab.runs.layout import METRICS  # noqa: E402,F401
from robustlab.runs.schema import write_metrics  # noqa: E402,F401


def write_table(path: str | Path, columns: dict[str, Any]) -> Path:
    buffer = io.StringIO()
    pd.DataFrame(columns).to_csv(buffer, index=False)
    return atomic_write_bytes(path, buffer.getvalue().encode())


def write_arrays(path: str | Path, **arrays: np.ndarray) -> Path:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return atomic_write_bytes(path, buffer.getvalue())


def read_arrays(path: str | Path) -> dict[str, np.ndarray]:
    path = Path(path)
    require(path.is_file(), f"result file missing: {path}; run the experiment that writes it first")
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def save_rpr(path: str | Path, result: RPRResult) -> Path:
    """Per-datapoint RPR results as CSV, with MAX_STEPS repeated in a column so the file stands alone."""
    columns = {}
    for name, values in result.columns().items():  # max_steps stays right after robust, as in older files
        columns[name] = values
        if name == "robust":
            columns["max_steps"] = np.full(len(result.index), result.max_steps)
    return write_table(path, columns)


def load_rpr(path: str | Path) -> RPRResult:
    path = Path(path)
    require(path.is_file(), f"RPR results missing: {path}; run the experiment that writes it first")
    frame = pd.read_csv(path)
    require(len(frame) > 0, f"RPR results in {path} are empty")
    return RPRResult.from_columns(frame, int(frame["max_steps"].iloc[0]))
