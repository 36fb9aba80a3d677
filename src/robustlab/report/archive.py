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
import tempfile
from pathlib import Path

from robustlab.errors import require
from robustlab.runs.discover import find_runs
from robustlab.runs.io import write_json
from robustlab.runs.jobs import (
    DONE,
    finished,  # a finished run, as the report counts it
    read_marker,
)
from robustlab.runs.layout import (
    HYDRA_DIR,
    JOB_MARKER,
    LOG,
    METRICS,
    MULTIRUN,
    REPRODUCE,
    TIMINGS,
    marker_path,
    profile_dir,
    rpr_file,
)

# Per job folder, what the report and the results table read: metrics.json, the job marker, Hydra's
# config and overrides, and the run's own CSV tables beside them (operating_point.csv, attack_curve.csv,
# ...). Not checkpoints, arrays or images; not the per-datapoint RPR tables (rpr_<model>_<split>.csv:
# megabytes per run, read by figures only); not Hydra's hydra.yaml or a tracker's files (machine paths).
JOB_FILES = (METRICS, JOB_MARKER, f"{HYDRA_DIR}/config.yaml", f"{HYDRA_DIR}/overrides.yaml")
PER_POINT = rpr_file("*")  # rpr_*.csv
GROUP_FILES = (MULTIRUN,)  # beside a multirun's job folders


def is_job(folder: Path) -> bool:
    return (folder / JOB_MARKER).is_file() or (folder / HYDRA_DIR / "config.yaml").is_file()


def job_folders(folder: Path) -> list[Path]:
    """Every job folder under a profile folder: the ones with Hydra's config or a job marker (parents first)."""
    found = set(find_runs(folder)) | {p.parent for p in folder.rglob(JOB_MARKER)}
    return sorted(found)


def report_files(job: Path) -> list[Path]:
    """The job's files the report reads, relative to it; a job folder nested in it is a job of its own."""
    tables = [p.name for p in job.glob("*.csv") if p.is_file() and not fnmatch.fnmatch(p.name, PER_POINT)]
    return [Path(name) for name in (*JOB_FILES, *sorted(tables)) if (job / name).is_file()]


def copy_job(job: Path, to: Path, extra: tuple[str, ...] = ()) -> None:
    """The job's report files (and ``extra``) into ``to``; what ``to`` held before goes, except the job
    folders nested in it (the jobs of a group whose own folder is a job too)."""
    if to.is_dir():
        for entry in to.iterdir():
            if entry.is_dir() and is_job(entry):
                continue
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    copied = [*report_files(job), *(Path(e) for e in extra if (job / e).is_file())]
    for rel in copied:
        (to / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(job / rel, to / rel)
    marker = read_marker(job)
    if marker is not None and marker["state"] == DONE:
        # The done marker lists every file the job left, so that a missing one makes it unfinished; the copy
        # lists what it holds, and names what stayed behind (checkpoints, arrays, images, nested jobs' files).
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
    from_archive: set[Path] = set()
    replaced_groups: set[str] = set()
    for source in (archived, local):
        if not source.is_dir():
            continue
        for name in GROUP_FILES:
            for path in source.rglob(name):
                (target / path.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target / path.relative_to(source))
        for job in job_folders(source):
            rel = job.relative_to(source)
            to = target / rel
            if finished(job):
                copy_job(job, to)
                if source is archived:
                    from_archive.add(rel)
                else:
                    from_archive.discard(rel)
                    replaced_groups.add(rel.parts[0] if rel.parts else "")
            elif keep_unfinished and not (to.exists() and finished(to)):
                copy_job(job, to, extra=(LOG,))
    timings = {}
    for source in (archived, local):
        if (source / TIMINGS).is_file():
            found = json.loads((source / TIMINGS).read_text())
            # a local group's time counts where its local runs are the ones reported
            timings |= found if source is archived else {g: s for g, s in found.items() if g in replaced_groups}
    if timings:
        target.mkdir(parents=True, exist_ok=True)
        (target / TIMINGS).write_text(json.dumps(timings, indent=1, sort_keys=True) + "\n")
    return len(from_archive)


def archived_profiles(archive: Path) -> list[str]:
    """The profiles with at least one finished archived run (paper first)."""
    base = Path(archive) / REPRODUCE
    if not base.is_dir():
        return []
    found = [p.name for p in base.iterdir() if p.is_dir() and any(map(finished, job_folders(p)))]
    return sorted(found, key=lambda name: (name != "paper", name))


def save(root: Path, archive: Path, profile: str) -> int:
    """``make archive``: the archive's runs of ``profile`` become archive ∪ local finished runs; returns the
    number of runs now archived. Built beside it, then swapped in: a crash at any point leaves the old
    archive or the new one (``.<profile>.old`` is put back by the next save)."""
    target = profile_dir(archive, profile)
    staging, old = target.with_name(f".{profile}.staging"), target.with_name(f".{profile}.old")
    if old.is_dir() and not target.exists():
        old.rename(target)  # an earlier save stopped between its two renames
    require(
        profile_dir(root, profile).is_dir() or target.is_dir(),
        f"no runs of profile '{profile}' under {Path(root) / REPRODUCE} to archive; "
        f"run `make reproduce PROFILE={profile}` first",
    )
    for leftover in (staging, old):
        if leftover.exists():
            shutil.rmtree(leftover)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".archive-", dir=target.parent) as view:
        merge_profile(root, archive, profile, Path(view), keep_unfinished=False)
        built = profile_dir(view, profile)
        built.rename(staging) if built.is_dir() else staging.mkdir()
    if target.exists():
        target.rename(old)
    staging.rename(target)
    if old.exists():
        shutil.rmtree(old)
    return sum(map(finished, job_folders(target)))
