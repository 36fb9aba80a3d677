"""Who a job is: a digest of its resolved config (less the keys that cannot change a result) and of
the code that produced it.

The code version is a digest of the package's *syntax trees*, docstrings dropped, not of a git
commit or of the file bytes: a reformat, a comment or a docs-only commit keeps every finished job and
cached model valid, while any change to what the code does (or to where a module lives) makes them
stale. A git commit would not exist in a `pip install .` and would change on every README edit; a
hand-bumped version number would be forgotten. Only the modules that run jobs count: the ones that
merely read finished runs (the report, the plots, the results store, the reproduce runner) cannot change
a result, so editing them keeps every finished job.

A job's identity (``job_identity``) is the digest of its resolved config less ``IGNORED_KEYS`` (where
files go, progress bars: nothing a result depends on), with every value that names an existing
file replaced by the digest of that file's bytes (a checkpoint made by another run group: when that
group reruns and its model changes, the jobs reading it become stale too), every value that names a
folder of finished runs (an operating-point group that a calibrated job reads its strength from)
replaced by the digest of those runs' result files, plus the code version.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
from pathlib import Path
from typing import Any

from robustlab.runs.jobs import finished, result_files

PACKAGE = Path(__file__).resolve().parents[1]  # src/robustlab

# Modules that only read finished runs (relative to the package): not part of the code version.
READERS = ("plotting/", "report/", "runs/store.py", "reproduce.py")

# Dotted config keys that cannot change a result: output and data locations, the model cache folder,
# progress and summary output, the RPR/attack cache folder, resume checkpoints, experiment loggers, which GPU a job is
# pinned to, and rpr.reuse_from (a reused RPR is checked to be the one this job would measure). Everything else
# counts, `threads` included: the CPU thread count changes the summation order of training (M_R and M_rand of a quick
# rpr_mnist with threads=1 and threads=2 differ, losses at about 1e-6), so a job or a cached model made with other
# threads is another one.
IGNORED_KEYS = (
    "paths",
    "model_cache",
    "gpu_per_job",
    "rpr.reuse_from",
    "rpr.progress",
    "data.root",
    "data.download",
    "data.num_workers",
    "trainer.enable_progress_bar",
    "trainer.enable_model_summary",
    "result_cache",
    "resume_every_n_epochs",
    "logger",  # a cache folder, how often to checkpoint, where logs go
)


def digest(value: Any, length: int = 16) -> str:
    """A stable hex digest of any JSON-able value (dict keys sorted, so key order never matters)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def _without_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
        ):
            if isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


@functools.cache
def code_version(package: Path = PACKAGE) -> str:
    """Digest of every module's syntax tree (comments, docstrings and formatting do not count)."""
    parts = []
    for path in sorted(package.rglob("*.py")):
        if path.relative_to(package).as_posix().startswith(READERS):
            continue
        tree = _without_docstrings(ast.parse(path.read_text(), filename=str(path)))
        parts.append([path.relative_to(package).as_posix(), ast.dump(tree)])
    return digest(parts)


def _drop(tree: dict, dotted: str) -> None:
    head, _, rest = dotted.partition(".")
    if rest and isinstance(tree.get(head), dict):
        _drop(tree[head], rest)
    elif not rest:
        tree.pop(head, None)


@functools.lru_cache(maxsize=256)
def file_digest(path: str, size: int, mtime_ns: int) -> str:
    """sha256 of a file's bytes (cached per path, size and modification time)."""
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(block)
    return hasher.hexdigest()[:16]


def _files_by_content(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _files_by_content(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_files_by_content(v) for v in value]
    if isinstance(value, str) and value and "\n" not in value and len(value) < 4096:
        path = Path(value)
        try:
            if path.is_file():
                return f"file:{_file_digest(path)}"
            if path.is_dir():
                return _runs_by_content(path) or value
        except OSError:  # a name too long or otherwise not a path: a plain string
            pass
    return value


def _file_digest(path: Path) -> str:
    stat = path.stat()
    return file_digest(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


def _runs_by_content(folder: Path) -> str | None:
    """The digest of every result file of the finished runs in ``folder`` (itself, a single run, or its
    job folders, a multirun: where readers such as the calibration look), by path under the folder, so a
    copy elsewhere is the same input and a rerun that changes a result is a new one. None when no finished
    run is there (a data or figures folder keeps its path, and a group not yet run is not an input yet).
    Only the folder and its children are looked at: a value naming a big tree costs one directory listing."""
    runs = [folder] if finished(folder) else [p for p in sorted(folder.iterdir()) if p.is_dir() and finished(p)]
    paths = [run / rel for run in runs for rel in result_files(run)]
    files = [[path.relative_to(folder).as_posix(), _file_digest(path)] for path in paths]
    return f"runs:{digest(files)}" if runs else None


def result_config(config: dict) -> dict:
    """The part of a resolved config (a plain dict, no ``hydra`` key) that a result depends on."""
    tree = json.loads(json.dumps(config, default=str))  # a deep copy of plain values
    tree.pop("hydra", None)
    for key in IGNORED_KEYS:
        _drop(tree, key)
    return _files_by_content(tree)


def job_identity(config: dict) -> str:
    """Who a job is: its result-changing config (files by content) and the code version."""
    return digest({"config": result_config(config), "code": code_version()})
