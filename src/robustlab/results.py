"""Run artefacts: every result file is written to a temporary name and renamed into place, so a
crash never leaves a half-written file that a later step (a plot, a table) would trust."""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from robustlab.errors import require
from robustlab.robustness.rpr import RPRResult

METRICS = "metrics.json"


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; results are meant to be shared like any file
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _plain(value: Any) -> Any:
    """JSON-friendly copies of numpy scalars and arrays."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def write_json(path: str | Path, data: dict) -> Path:
    return atomic_write_bytes(path, (json.dumps(_plain(data), indent=2, sort_keys=False) + "\n").encode())


def read_json(path: str | Path) -> dict:
    path = Path(path)
    require(path.is_file(), f"result file missing: {path}; run the experiment that writes it first")
    return json.loads(path.read_text())


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
