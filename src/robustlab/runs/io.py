"""Atomic writes and checked reads of result files.

Every result file is written to a temporary name in its folder and renamed into place, so a crash or
a kill never leaves a half-written file that a later step (a plot, a table, the done check) would
trust: a file is either complete or absent.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from robustlab.errors import RobustlabError, require


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


def write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def read_json(path: str | Path) -> dict:
    path = Path(path)
    require(path.is_file(), f"result file missing: {path}; run the experiment that writes it first")
    return json.loads(path.read_text())


def read_json_object(path: Path, name: str) -> dict:
    """A JSON file that must hold an object; ``name`` is how the one-line error calls it."""
    try:
        data = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RobustlabError(f"unreadable {name}: {error}") from None
    require(isinstance(data, dict), f"{name} holds a {type(data).__name__}, not an object")
    return data


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
