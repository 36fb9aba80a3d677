"""metrics.json: typed and versioned. Every pipeline writes it through ``write_metrics`` (which stamps
``schema_version``) and every reader goes through ``read_metrics`` (which checks it).

Version history (raise SCHEMA_VERSION when a key that readers use changes meaning or place):
  1  the first versioned schema; the keys below are the ones every pipeline writes.
  2  ``experiment`` is called ``pipeline``: it always held the pipeline a run executed (rpr_retrain,
     linear_robust, ...), and "experiment" now means only a file experiments/<name>.md (README, "Four words").
A file without ``schema_version`` was written before the run contract: readers accept it as version 0
(the report keeps working on older runs), but a job whose metrics.json lacks it never counts as done
(robustlab.runs.jobs), so `make reproduce` runs it again. Every reader goes through ``check``, which gives an
older file the current key names (``RENAMED``): the archived runs in paper/runs, written as version 1, are read
as they are, never rewritten.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypedDict

from robustlab.errors import RobustlabError, require
from robustlab.runs.io import read_json_object, write_json
from robustlab.runs.layout import METRICS, metrics_path

SCHEMA_VERSION = 2
VERSION_KEY = "schema_version"
META_KEYS = {VERSION_KEY, "pipeline", "profile", "seed", "config"}  # about the run, not measurements
# The keys a version renamed, old name -> new name: a file written before that version is read with the new names.
RENAMED = {2: {"experiment": "pipeline"}}


class Metrics(TypedDict, total=False):
    """The keys every pipeline's metrics.json shares; the rest are the pipeline's own numbers."""

    schema_version: int
    pipeline: str  # the pipeline the run executed (rpr_retrain, linear_robust, dcgan, ...)
    profile: str  # profile.name of the run
    seed: int
    config: dict[str, Any]  # the resolved config of the run


TYPES = {"schema_version": int, "pipeline": str, "profile": str, "seed": int, "config": dict}


def write_metrics(run_dir: str | Path, metrics: dict) -> Path:
    """``run_dir``/metrics.json, atomically, ``schema_version`` first; the shared keys are type-checked.
    ``metrics`` itself gets the version too, so what a pipeline returns is what it wrote."""
    metrics[VERSION_KEY] = SCHEMA_VERSION
    stamped = {VERSION_KEY: SCHEMA_VERSION, **{k: v for k, v in metrics.items() if k != VERSION_KEY}}
    check(stamped, metrics_path(run_dir))
    return write_json(metrics_path(run_dir), stamped)


def version_of(metrics: dict, where: str | Path) -> int:
    """The schema version of a metrics dict: 0 when absent (written before versioning); a newer one is an error."""
    version = metrics.get(VERSION_KEY, 0)
    require(
        isinstance(version, int) and not isinstance(version, bool),
        f"{where}: {VERSION_KEY} must be an integer, got {version!r}",
    )
    require(
        version <= SCHEMA_VERSION,
        f"{where} has {VERSION_KEY} {version}, newer than this robustlab reads "
        f"({SCHEMA_VERSION}); update robustlab (git pull) or rerun that job with this version",
    )
    return version


def upgrade(metrics: dict, version: int, where: str | Path) -> dict:
    """``metrics`` with the key names of SCHEMA_VERSION, in place: an older file's renamed keys get their new
    name; a file of this version that still uses an old name is refused (a writer missed the rename)."""
    for since, renames in RENAMED.items():
        for old, new in renames.items():
            if old not in metrics:
                continue
            require(version < since, f"{where}: key '{old}' is called '{new}' since {VERSION_KEY} {since}; rename it")
            if new not in metrics:
                metrics[new] = metrics.pop(old)
    return metrics


def check(metrics: dict, where: str | Path) -> dict:
    """The shared keys have their types (bool is no int here); the version is not newer than ours; an older
    version's renamed keys carry their current names (``upgrade``)."""
    upgrade(metrics, version_of(metrics, where), where)
    for key, kind in TYPES.items():
        value = metrics.get(key)
        wrong = value is not None and (not isinstance(value, kind) or (kind is int and isinstance(value, bool)))
        require(not wrong, f"{where}: {key} must be {kind.__name__}, got {type(value).__name__}")
    return metrics


def read_metrics(run_dir: str | Path, name: str = METRICS) -> dict:
    """A run's metrics.json, parsed and checked; one-line errors name what is wrong."""
    path = metrics_path(run_dir)
    require(path.is_file(), f"no {name} in {run_dir} (failed or unfinished run)")
    return check(read_json_object(path, name), path)


def is_versioned(metrics: dict) -> bool:
    """Written by a schema version this code reads (1 up to SCHEMA_VERSION): a done job's metrics.json must be.
    A finished job of an older version stays readable (the archive's version-1 runs); whether it is current for
    `make reproduce` is its identity's business (the code version is part of it), not the schema's."""
    try:
        return version_of(metrics, METRICS) >= 1
    except RobustlabError:
        return False
