"""Archived runs: the few files of each finished run that the report reads, kept in the repository.

A session's ``outputs/`` may not outlive the machine it ran on, and the paper profile takes longer than
one session on 2 CPU cores, so its run groups are run over several sessions. What the report needs of
a finished run is small (metrics.json, the job marker, Hydra's config: kilobytes, no checkpoints), so
``make archive`` copies it to ``paper/runs/reproduce/<profile>/`` and ``make paper`` reads the union of
the archive and the local runs. A local finished run replaces the archived run of the same folder; a
local run that is not finished never hides an archived one that is.

The archive is for the report only: ``make reproduce`` and ``make status`` look at the local runs (an
archived run has no checkpoint, so it cannot feed a later group).
"""

from __future__ import annotations

import fnmatch
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

from robustlab.errors import require
from robustlab.runs.io import write_json
from robustlab.runs.jobs import DONE, read_marker
from robustlab.runs.jobs import finished as run_finished
from robustlab.runs.layout import (
    HYDRA_DIR,
    JOB_MARKER,
    LOG,
    MULTIRUN,
    REPRODUCE,
    TIMINGS,
    marker_path,
    profile_dir,
    rpr_file,
)

# Per job folder: the text files the report and the results table read (metrics.json, the job marker,
# Hydra's config, per-run CSV tables such as operating_point.csv); no checkpoints, arrays or images, and
# not the per-datapoint RPR tables (rpr_<model>_<split>.csv: megabytes per run, read by figures only).
JOB_SUFFIXES = (".json", ".csv", ".yaml")
PER_POINT = rpr_file("*")  # rpr_*.csv
MAX_FILE_BYTES = 5 << 20  # a bigger file is left out (none of the report's inputs is near it)
GROUP_FILES = (MULTIRUN,)  # beside a multirun's job folders
DEFAULT = Path("paper/runs")


def job_folders(folder: Path) -> Iterator[Path]:
    """Every job folder under a profile folder: the ones with Hydra's config or a job marker."""
    found = {p.parent.parent for p in folder.rglob(f"{HYDRA_DIR}/config.yaml")}
    found |= {p.parent for p in folder.rglob(JOB_MARKER)}
    return iter(sorted(found))


def finished(job: Path) -> bool:
    """A finished run, as the report counts it (robustlab.runs.jobs.finished)."""
    return run_finished(job)


def report_files(job: Path) -> Iterator[Path]:
    """The job's files the report may read, relative to it (resume's copies of old logs left out)."""
    for path in sorted(job.rglob("*")):
        rel = path.relative_to(job)
        if (
            path.is_file()
            and path.suffix in JOB_SUFFIXES
            and not rel.parts[0].startswith("logs_")
            and not fnmatch.fnmatch(rel.name, PER_POINT)
            and path.stat().st_size <= MAX_FILE_BYTES
        ):
            yield rel


def copy_job(job: Path, to: Path, extra: tuple[str, ...] = ()) -> None:
    """The job's report files (and ``extra``) into ``to``, which is emptied first."""
    if to.exists():
        shutil.rmtree(to)
    copied = [*report_files(job), *(Path(e) for e in extra if (job / e).is_file())]
    for rel in copied:
        (to / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(job / rel, to / rel)
    marker = read_marker(job)
    if marker is not None and marker["state"] == DONE:
        # The done marker lists every file the job left, so that a missing one makes it unfinished; the copy
        # lists what it holds, and names what stayed behind (checkpoints, arrays, images).
        kept = {r.as_posix() for r in copied}
        files = marker.get("files") or {}
        left = sorted(set(files) - kept) + list(marker.get("left_out_of_archive", []))
        write_json(
            marker_path(to),
            marker | {"files": {r: s for r, s in files.items() if r in kept}, "left_out_of_archive": sorted(set(left))},
        )


def merge_profile(root: Path, archive: Path, profile: str, into: Path, keep_unfinished: bool) -> int:
    """``into``/reproduce/<profile>: the archived runs, then the local ones over them; returns how many
    archived runs are in it. ``keep_unfinished``: also copy local runs that did not finish (with their
    log), where no archived run of that folder finished, so the report can name them."""
    local, archived, target = profile_dir(root, profile), profile_dir(archive, profile), profile_dir(into, profile)
    kept = 0
    for source in (archived, local):
        if not source.is_dir():
            continue
        for name in GROUP_FILES:
            for path in source.rglob(name):
                (target / path.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target / path.relative_to(source))
        for job in job_folders(source):
            to = target / job.relative_to(source)
            if finished(job):
                kept += source is archived
                kept -= source is local and to.exists() and finished(to)
                copy_job(job, to)
            elif keep_unfinished and not (to.exists() and finished(to)):
                copy_job(job, to, extra=(LOG,))
    timings = {}
    for source in (archived, local):
        if (source / TIMINGS).is_file():
            timings |= json.loads((source / TIMINGS).read_text())
    if timings:
        target.mkdir(parents=True, exist_ok=True)
        (target / TIMINGS).write_text(json.dumps(timings, indent=1, sort_keys=True) + "\n")
    return kept


def archived_profiles(archive: Path) -> list[str]:
    """The profiles with at least one finished archived run (paper first)."""
    base = Path(archive) / REPRODUCE
    if not base.is_dir():
        return []
    found = [p.name for p in base.iterdir() if p.is_dir() and any(map(finished, job_folders(p)))]
    return sorted(found, key=lambda name: (name != "paper", name))


def save(root: Path, archive: Path, profile: str) -> int:
    """``make archive``: the archive's runs of ``profile`` become archive ∪ local finished runs; returns the
    number of runs now archived. Written beside and swapped in, so a failure leaves the old archive."""
    require(
        profile_dir(root, profile).is_dir() or profile_dir(archive, profile).is_dir(),
        f"no runs of profile '{profile}' under {Path(root) / REPRODUCE} to archive; "
        f"run `make reproduce PROFILE={profile}` first",
    )
    staging = Path(archive) / f".{profile}.staging"
    if staging.exists():
        shutil.rmtree(staging)
    merge_profile(root, archive, profile, staging, keep_unfinished=False)
    target = profile_dir(archive, profile)
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    built = profile_dir(staging, profile)
    if built.is_dir():
        built.rename(target)
    shutil.rmtree(staging)
    return sum(map(finished, job_folders(target))) if target.is_dir() else 0
