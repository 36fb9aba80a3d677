"""The job marker: whether one job (a single run, or one job of a multirun) is done, and by whom.

``job.json`` in the job folder moves through three states, each write atomic:
  running  written when the job starts, after the previous attempt's files are cleared;
  done     written LAST, after every result file is in place: the identity, when it ran, and the
           size of every file the job left (a file that is later truncated or removed undoes "done");
  failed   the job raised or exited: the error line (the job's other files are never trusted).
A job killed at any moment (Ctrl-C, SIGKILL, power loss) leaves "running" or no marker: not done, and
cleared when the job starts again. A folder without a marker that holds a readable metrics.json was
made by hand or by an older robustlab: readers accept it, but `make reproduce` runs it again.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from robustlab.runs.io import write_json
from robustlab.runs.layout import JOB_MARKER, KEPT_ON_RESTART, METRICS, marker_path
from robustlab.runs.schema import is_versioned

DONE, MISSING, FAILED, STALE, RUNNING = "done", "missing", "failed", "stale", "running"
FORCE_ENV = "ROBUSTLAB_FORCE"  # 1: every job runs again, whatever its marker says (make reproduce FORCE=1)


@dataclass(frozen=True)
class JobState:
    """A job's state for a wanted identity, and why (one line)."""

    state: str  # done / missing / failed / stale
    folder: Path
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.state}: {self.folder}" + (f" ({self.detail})" if self.detail else "")


def read_marker(folder: str | Path) -> dict | None:
    """The marker's content; None when there is none or it does not parse (an old or foreign folder)."""
    path = marker_path(folder)
    try:
        marker = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and "state" in marker else None


def result_files(folder: Path) -> dict[str, int]:
    """Every file a job left (relative path -> size), Hydra's folder, the log and the marker excepted."""
    files = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if path.is_file() and rel.parts[0] not in (*KEPT_ON_RESTART, JOB_MARKER) and not rel.name.endswith(".tmp"):
            files[rel.as_posix()] = path.stat().st_size
    return files


def incomplete(folder: Path, marker: dict) -> str | None:
    """Why a "done" marker's files do not hold up (None when they do): a file gone, resized, or an
    unreadable metrics.json."""
    for rel, size in (marker.get("files") or {}).items():
        path = folder / rel
        if not path.is_file():
            return f"{rel} is gone"
        if path.stat().st_size != size:
            return f"{rel} changed size ({path.stat().st_size} bytes, {size} when the job finished)"
    try:
        metrics = json.loads((folder / METRICS).read_text())
    except (OSError, ValueError):
        return f"{METRICS} is missing or does not parse"
    if not isinstance(metrics, dict) or not is_versioned(metrics):
        return f"{METRICS} has no valid schema_version"
    return None


def finished(folder: str | Path) -> bool:
    """Whether a folder holds a finished run, for readers (figures, the report): a done marker whose
    files hold up, or, without any marker, a metrics.json that parses (hand-made or older runs). A
    folder whose marker says running or failed never counts, even with a metrics.json in it."""
    folder = Path(folder)
    marker = read_marker(folder)
    if marker is None:
        try:
            return isinstance(json.loads((folder / METRICS).read_text()), dict)
        except (OSError, ValueError):
            return False
    return marker["state"] == DONE and incomplete(folder, marker) is None


def state(folder: str | Path, identity: str) -> JobState:
    """done (same identity, files complete), stale (done, but identity or files differ), failed, or missing."""
    folder = Path(folder)
    marker = read_marker(folder)
    if marker is None:
        if (folder / METRICS).is_file():
            return JobState(STALE, folder, "no job marker: written before resumable runs, or by hand")
        return JobState(MISSING, folder, "not run" if not folder.exists() else "no result")
    if marker["state"] == FAILED:
        return JobState(FAILED, folder, str(marker.get("error", "?")))
    if marker["state"] != DONE:
        return JobState(MISSING, folder, "unfinished: killed, or still running")
    if marker.get("identity") != identity:
        return JobState(STALE, folder, f"config or code changed since it ran ({marker.get('identity')} -> {identity})")
    why = incomplete(folder, marker)
    return JobState(DONE, folder) if why is None else JobState(MISSING, folder, f"incomplete: {why}")


def forced() -> bool:
    return os.environ.get(FORCE_ENV, "0") == "1"


def clear_previous_attempt(folder: Path) -> list[str]:
    """Remove what an earlier attempt left (never Hydra's .hydra/ of this start, nor the log being written).
    Only in a folder that an earlier robustlab job marked, or that holds a metrics.json: a folder of
    other files (``hydra.run.dir=.``) is left alone."""
    if read_marker(folder) is None and not (folder / METRICS).is_file():
        return []
    removed = []
    for path in sorted(folder.iterdir()):
        if path.name in KEPT_ON_RESTART:
            continue
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        removed.append(path.name)
    return removed


def begin(folder: str | Path, identity: str, overrides: list[str]) -> None:
    """The job starts: its previous attempt's files are cleared, then the marker says running."""
    folder = Path(folder)
    clear_previous_attempt(folder)
    write_json(
        marker_path(folder),
        {
            "state": RUNNING,
            "identity": identity,
            "overrides": list(overrides),
            "started": time.time(),
            "pid": os.getpid(),
        },
    )


def _update(folder: Path, **fields) -> Path:
    marker = read_marker(folder) or {}
    started = marker.get("started", time.time())
    ended = time.time()
    return write_json(marker_path(folder), {**marker, **fields, "ended": ended, "seconds": round(ended - started, 1)})


def finish(folder: str | Path) -> Path:
    """The job is done: written LAST, with the size of every file it left."""
    folder = Path(folder)
    return _update(folder, state=DONE, files=result_files(folder))


def fail(folder: str | Path, error: str) -> Path:
    folder = Path(folder)
    return _update(folder, state=FAILED, error=error)


def overrides_text(marker: dict | None) -> str:
    return " ".join((marker or {}).get("overrides") or []) or "(no overrides)"
