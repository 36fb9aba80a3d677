"""RPR results as run files (``save_rpr`` / ``load_rpr``), written atomically (robustlab.runs.io), so a
crash never leaves a half-written file that a later step (a plot, a table) would trust.

JSON, tables, arrays, file names and metrics.json live in robustlab.runs (io, layout, schema); this
module re-exports them so ``results.write_json`` / ``results.METRICS`` keep working."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from robustlab.errors import require
from robustlab.robustness.rpr import RPRResult

# The run contract lives in robustlab.runs; these names stay importable from here for older callers.
from robustlab.runs.io import (  # noqa: F401
    _plain,
    _umask,
    atomic_write_bytes,
    read_arrays,
    read_json,
    write_arrays,
    write_json,
    write_table,
)
from robustlab.runs.layout import METRICS  # noqa: F401
from robustlab.runs.schema import write_metrics  # noqa: F401


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
