"""Finding runs under a root: every reader (the results store, the report, the figures, the reproduce
runner) asks here which run folders exist and which of them are finished."""

from __future__ import annotations

import re
from pathlib import Path

from robustlab.runs.jobs import finished
from robustlab.runs.layout import HYDRA_CONFIG, MULTIRUN, REPRODUCE


def natural_key(text: str) -> list:
    """Sort key for run folders: seed_2 before seed_10, job 2 before job 10."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def find_runs(root: str | Path) -> list[Path]:
    """The run folders under ``root`` (itself, for a single run), in natural order: any folder holding
    Hydra's .hydra/config.yaml, finished or not."""
    root = Path(root)
    return sorted((p.parent.parent for p in root.rglob(HYDRA_CONFIG)), key=lambda p: natural_key(p.as_posix()))


def is_multirun(folder: str | Path) -> bool:
    return (Path(folder) / MULTIRUN).is_file()


def group_of(run_dir: Path, root: Path) -> str:
    """A job of a Hydra multirun belongs to the multirun folder; a single run is its own group."""
    folder = run_dir.parent if is_multirun(run_dir.parent) else run_dir
    return folder.relative_to(root).as_posix()


def group_state(folder: str | Path) -> tuple[list[Path], list[Path]]:
    """(finished job folders, failed or unfinished ones) of one run group (a run or a multirun folder)."""
    jobs = find_runs(folder)
    done = [j for j in jobs if finished(j)]
    return done, [j for j in jobs if j not in done]


def finished_runs(folder: str | Path) -> list[Path]:
    return group_state(folder)[0]


def job_folders(multirun: str | Path) -> list[Path]:
    """The job folders directly under a multirun folder (hidden ones, e.g. .submitit, excepted)."""
    multirun = Path(multirun)
    jobs = [p for p in multirun.iterdir() if p.is_dir() and not p.name.startswith(".")] if multirun.is_dir() else []
    return sorted(jobs, key=lambda p: natural_key(p.name))


def group_folders(profile_dir: str | Path, prefix: str = "") -> list[str]:
    """The names of the run group folders in one profile's folder (optionally those starting with ``prefix``)."""
    folder = Path(profile_dir)
    return (
        sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name.startswith(prefix)) if folder.is_dir() else []
    )


def profiles_with_runs(root: str | Path) -> list[str]:
    """The profiles under ``root``/reproduce holding at least one finished run (paper first)."""
    base = Path(root) / REPRODUCE
    found = [p.name for p in base.iterdir() if p.is_dir() and finished_runs(p)] if base.is_dir() else []
    return sorted(found, key=lambda name: (name != "paper", name))
