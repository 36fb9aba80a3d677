"""``robustlab-reproduce``: run the experiments of ``experiments/*.md`` and draw their figures.

Each experiment file holds prose for readers and one fenced block tagged ``yaml reproduce``: the
exact commands ``make reproduce`` runs (its run groups), the figure commands ``make figures`` runs,
and the measured wall time. The same block serves both targets, so the documented command is the
command that runs, and a missing run can be named with the command that produces it.

  robustlab-reproduce run     --profile quick [--only rpr_mnist,cnn_attack] [--force 1]   runs, then figures
  robustlab-reproduce figures --profile quick [--only ...]               figures from logged runs only
  robustlab-reproduce list    --profile quick                            groups, commands, wall times
  robustlab-reproduce status  --profile quick [--only ...]               every job: done / missing / failed / stale

Resumable: a group's folder is never cleared. Each job checks its own marker (robustlab.cli,
robustlab.runs.jobs) and skips itself when it is done with the same identity; the runner expands every
sweep beforehand (Hydra's own sweeper logic, composing each job's config without starting it), so it
knows every job's folder and state, starts no process for a group that is done, prints one line per job
with the time left, goes on past a failed job, skips a group whose input is missing, and ends with a
summary and exit status 1 when a job failed. --only takes experiment names (files) and run group names.

Placeholders in commands: {profile}, {seeds} (0..n-1 from conf/profile/<profile>.yaml ``seeds``),
{run_dir} (outputs/reproduce/<profile>), {figures} (figures/<profile>), {data_root}, and the
folder of any run group by its name (e.g. {rpr_mnist}). Hydra's own ``${...}`` is left alone.
"""

from __future__ import annotations

import argparse
import functools
import glob
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from robustlab.configs import conf_dir
from robustlab.errors import RobustlabError, one_line_errors, require
from robustlab.runs import discover, jobs, layout
from robustlab.runs.identity import digest, file_digest
from robustlab.runs.io import read_json_object, write_json

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = ROOT / "experiments"
PROFILES = Path(conf_dir()) / "profile"
BLOCK = re.compile(r"^```yaml reproduce\n(.*?)^```", re.S | re.M)
HYDRA_VALUE = re.compile(r"\$\{[^}]*\}")  # Hydra's own ${...}, resolved per job
PLACEHOLDER = re.compile(r"(?<!\$)\{(\w+)\}")


@dataclass
class Group:
    """One run group: a single Hydra run or a multirun, in ``<run_dir>/<name>``."""

    name: str
    command: str
    extra: dict[str, str] = field(default_factory=dict)  # profile -> overrides appended for it
    requires: str | None = None  # a file that must exist (else the group is skipped, said so)

    @property
    def multirun(self) -> bool:
        return " -m " in f" {self.command} "


@dataclass
class Experiment:
    name: str
    path: Path
    order: int
    groups: list[Group]
    figures: list[dict]
    wall_time_min: dict


def parse(path: Path) -> Experiment:
    """The ``yaml reproduce`` block of one experiment file, checked."""
    found = BLOCK.findall(path.read_text())
    require(len(found) == 1, f"{path} needs exactly one ```yaml reproduce block, found {len(found)}")
    try:
        spec = yaml.safe_load(found[0]) or {}
    except yaml.YAMLError as error:
        raise RobustlabError(f"{path}: the yaml reproduce block does not parse: {str(error).splitlines()[0]}") from None
    groups = [
        Group(g["group"], g["command"], g.get("profiles", {}) or {}, g.get("requires")) for g in spec.get("runs", [])
    ]
    return Experiment(
        path.stem, path, int(spec.get("order", 99)), groups, spec.get("figures", []), spec.get("wall_time_min", {})
    )


def load(folder: Path = EXPERIMENTS, only: str | None = None) -> list[Experiment]:
    """Every experiment, in order; ``only`` (comma-separated) keeps the named experiments whole and,
    for a run group's name, that group of its experiment with the figures that read it."""
    experiments = sorted((parse(p) for p in sorted(folder.glob("*.md"))), key=lambda e: (e.order, e.name))
    if not only:
        return experiments
    wanted = [w.strip() for w in only.split(",") if w.strip()]
    known, groups = {e.name for e in experiments}, {g.name for e in experiments for g in e.groups}
    unknown = [w for w in wanted if w not in known | groups]
    require(
        not unknown,
        f"unknown experiment(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}; "
        f"run groups: {', '.join(sorted(groups))}",
    )
    chosen = []
    for e in experiments:
        if e.name in wanted:
            chosen.append(e)
        elif any(g.name in wanted for g in e.groups):
            kept = [g for g in e.groups if g.name in wanted]
            figures = [f for f in e.figures if set(f.get("needs", [])) & {g.name for g in kept}]
            chosen.append(replace(e, groups=kept, figures=figures))
    return chosen


def seeds(profile: str, folder: Path = PROFILES) -> str:
    path = folder / f"{profile}.yaml"
    require(
        path.is_file(),
        f"unknown profile '{profile}'; pick one of {', '.join(p.stem for p in sorted(folder.glob('*.yaml')))}",
    )
    count = (yaml.safe_load(path.read_text()) or {}).get("seeds", 1)
    require(isinstance(count, int) and count >= 1, f"{path}: seeds must be a positive integer, got {count}")
    return ",".join(str(s) for s in range(count))


@dataclass
class Context:
    """Where one profile's runs and figures live, and the placeholder values of its commands."""

    profile: str
    output: Path
    figures_root: Path
    data_root: str
    experiments: Path = EXPERIMENTS  # the folder of experiment files (tests use their own)

    @property
    def run_dir(self) -> Path:
        return layout.profile_dir(self.output, self.profile)

    def values(self, experiments: list[Experiment]) -> dict[str, str]:
        values = {
            "profile": self.profile,
            "seeds": seeds(self.profile),
            "run_dir": str(self.run_dir),
            "figures": str(self.figures_root / self.profile),
            "data_root": self.data_root,
        }
        values.update({g.name: str(self.run_dir / g.name) for e in experiments for g in e.groups})
        return values


def expand(text: str, values: dict[str, str]) -> str:
    def one(match: re.Match) -> str:
        require(match.group(1) in values, f"unknown placeholder {{{match.group(1)}}} in: {text}")
        return values[match.group(1)]

    return PLACEHOLDER.sub(one, text)


def group_command(group: Group, ctx: Context, values: dict[str, str]) -> list[str]:
    """The group's command for this profile, its output folder pinned to ``<run_dir>/<group>``."""
    where = "hydra.sweep.dir" if group.multirun else "hydra.run.dir"
    text = f"{group.command} {group.extra.get(ctx.profile, '')} {where}={ctx.run_dir / group.name}"
    return shlex.split(expand(text, values))


def program(argv: list[str]) -> list[str]:
    """Console scripts of this environment first, so `make` works without activating the venv."""
    local = Path(sys.executable).parent / argv[0]
    return [str(local), *argv[1:]] if local.exists() else argv


# ---------------------------------------------------------------------------------------------
# Which runs exist
# ---------------------------------------------------------------------------------------------


def group_state(folder: Path) -> tuple[list[Path], list[Path]]:
    """(finished job folders, failed or unfinished ones: Hydra's config but no finished result)."""
    return discover.group_state(folder)


@dataclass
class Job:
    """One job of a run group, known before it runs: its folder, its overrides and its identity."""

    group: str
    number: int
    folder: Path
    overrides: list[str]  # the job's own overrides (no hydra.*), as Hydra passes them
    shown: str  # the overrides that tell it apart from the group's other jobs
    identity: str


def sweep_jobs(argv: list[str]) -> tuple[bool, list[list[str]]]:
    """(multirun?, each job's overrides) of a ``robustlab [-m] ...`` command, expanded exactly as Hydra's
    basic sweeper does (cartesian product, in the order of the overrides), without starting anything."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    multirun = "-m" in argv[1:] or "--multirun" in argv[1:]
    overrides = [a for a in argv[1:] if a not in ("-m", "--multirun")]
    if not multirun:
        return False, [overrides]
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
        return True, BasicSweeper.split_arguments(parsed, None)[0]
    except Exception as error:  # Hydra's parse errors: one line naming the command
        raise RobustlabError(f"cannot expand the sweep {shlex.join(argv)}: {str(error).splitlines()[0]}") from None


def plan(group: Group, ctx: Context, values: dict[str, str]) -> list[Job]:
    """Every job of the group with its folder and identity, from the configs Hydra would compose."""
    from robustlab.runs.identity import job_identity

    multirun, batch = sweep_jobs(group_command(group, ctx, values))
    varying = {o.split("=", 1)[0] for o in sum(batch, []) if sum(o in b for b in batch) < len(batch)}
    jobs = []
    for number, overrides in enumerate(batch):
        extra = (f"hydra.job.num={number}",) if multirun else ()
        try:
            folder, task, config = composed((*overrides, *extra), multirun, _config_env())
        except Exception as error:  # an unknown key or option: the command itself is wrong
            raise RobustlabError(f"{group.name}: job {number} does not compose: {str(error).splitlines()[0]}") from None
        shown = " ".join(o for o in task if o.split("=", 1)[0] in varying)
        # The identity is taken afresh every time: it digests input files (another group's M.ckpt),
        # which an earlier group may have written since the last plan.
        jobs.append(Job(group.name, number, folder, list(task), shown, job_identity(config)))
    return jobs


def _config_env() -> tuple[tuple[str, str], ...]:
    """The environment the configs read (``${oc.env:ROBUSTLAB_DATA}`` and the like): part of the cache key."""
    return tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("ROBUSTLAB_")))


@functools.cache
def composed(overrides: tuple[str, ...], multirun: bool, env: tuple) -> tuple[Path, tuple[str, ...], dict]:
    """A job's folder, task overrides and resolved config (no ``hydra`` key), as Hydra composes them.

    Cached: a run plans every group up front and again just before it runs, and composing is most of
    the runner's own time (about 0.2 s a job). The configs on disk do not change during one run.
    The returned config is shared between calls: read it, do not change it (job_identity copies it).
    """
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf, open_dict

    from robustlab.cli import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides), return_hydra_config=True)
    hydra_cfg = cfg.hydra
    folder = Path(hydra_cfg.sweep.dir) / str(hydra_cfg.sweep.subdir) if multirun else Path(hydra_cfg.run.dir)
    task = tuple(hydra_cfg.overrides.task)
    with open_dict(cfg):
        del cfg["hydra"]
    return folder, task, OmegaConf.to_container(cfg, resolve=True)


# ---------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------


POLL_S = 1.0  # how often the runner looks at the job markers of a running group


@dataclass
class Outcome:
    """What one `run` did: group wall times, the failed jobs and the groups skipped for a missing input."""

    timings: dict[str, float] = field(default_factory=dict)
    failed: list[tuple[Job, str]] = field(default_factory=list)
    skipped_groups: list[str] = field(default_factory=list)
    broken_groups: list[str] = field(default_factory=list)  # exited non-zero before any job said why
    total: int = 0


class Progress:
    """One line per job: its place, what it did, and the time left, estimated from measured job times
    (the mean of the group's finished jobs, or of all finished jobs before the group has one)."""

    def __init__(self, order: list[tuple[str, int]], to_run: dict[str, int]):
        self.first = {}  # group -> place of its first job, counted from 1
        for name, _count in order:
            self.first[name] = sum(c for _, c in order[: len(self.first)]) + 1
        self.total, self.to_run, self.seconds = sum(c for _, c in order), dict(to_run), {}

    def left(self) -> str:
        every = [s for times in self.seconds.values() for s in times]
        if not every:
            return ", time left not known yet"
        left = sum(n * _mean(self.seconds.get(g) or every) for g, n in self.to_run.items())
        return "" if left == 0 else f", about {left / 60:.0f} min left" if left >= 90 else f", about {left:.0f} s left"

    def say(self, job: Job, what: str, seconds: float | None = None) -> None:
        if seconds is not None:  # a job that ran: its time counts, and one fewer is left to run
            self.seconds.setdefault(job.group, []).append(seconds)
            self.to_run[job.group] = max(0, self.to_run.get(job.group, 0) - 1)
        name = f"{job.group} {job.shown}".strip()
        tail = self.left() if seconds is not None else ""
        print(f"job {self.first[job.group] + job.number}/{self.total} {name}: {what}{tail}", flush=True)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def run_groups(experiments: list[Experiment], ctx: Context, force: bool = False) -> Outcome:
    """Run every group in order, each job at most once: done jobs are skipped, failed ones named."""
    every = load(ctx.experiments)  # a command may name a group of another file (rpr_mnist's M)
    values, groups = ctx.values(every), {g.name: g for e in every for g in e.groups}
    chosen = [g for e in experiments for g in e.groups]
    plans = {g.name: plan(g, ctx, values) for g in chosen}
    to_run = {n: sum(force or jobs.state(j.folder, j.identity).state != jobs.DONE for j in p) for n, p in plans.items()}
    progress = Progress([(n, len(p)) for n, p in plans.items()], to_run)
    outcome = Outcome(total=progress.total)
    for group in chosen:
        missing = missing_input(group, ctx, values, groups)
        if missing:
            print(f"skipped: {group.name} needs {missing}", flush=True)
            outcome.skipped_groups.append(f"{group.name} (needs {missing})")
            progress.to_run[group.name] = 0
            continue
        run_group(group, plan(group, ctx, values), ctx, values, force, progress, outcome)
        record_timings(ctx.run_dir, outcome.timings)
    return outcome


def run_group(
    group: Group, planned: list[Job], ctx: Context, values: dict, force: bool, progress: Progress, outcome: Outcome
) -> None:
    """One group: its jobs that are not done run in one `robustlab` process (its launcher's parallelism kept)."""
    remove_foreign_jobs(group, planned, ctx)
    todo = [j for j in planned if force or jobs.state(j.folder, j.identity).state != jobs.DONE]
    for job in planned:
        if job not in todo:
            progress.say(job, "skipped (done)")
    if not todo:
        return
    argv = group_command(group, ctx, values)
    print(f"== {group.name}: {len(todo)} of {len(planned)} job(s) to run: {shlex.join(argv)}", flush=True)
    seen = {j.number: attempt(j) for j in todo}
    reported: set[int] = set()

    def watch() -> None:
        for job in todo:
            marker = jobs.read_marker(job.folder)
            if job.number in reported or not marker or attempt(job) == seen[job.number]:
                continue
            if marker["state"] in (jobs.DONE, jobs.FAILED):
                reported.add(job.number)
                seconds = float(marker.get("seconds", 0.0))
                if marker["state"] == jobs.DONE:
                    progress.say(job, f"done in {seconds:.0f} s", seconds)
                else:
                    progress.say(job, f"FAILED after {seconds:.0f} s: {marker.get('error', '?')}", seconds)

    env = {**os.environ, jobs.FORCE_ENV: "1" if force else "0"}
    started = time.perf_counter()
    code = launch(argv, env, watch)
    watch()
    states = {j.number: jobs.state(j.folder, j.identity) for j in todo}
    failed = [(j, f"{states[j.number].detail} (in {j.folder})") for j in todo if states[j.number].state != jobs.DONE]
    outcome.failed += [(j, last_lines(j, why)) for j, why in failed]
    if code != 0 and not failed:
        outcome.broken_groups.append(f"{group.name} (exit {code})")
    if code == 0 and len(todo) == len(planned):  # the whole group ran: its time is comparable with others'
        outcome.timings[group.name] = round(time.perf_counter() - started, 1)


def attempt(job: Job) -> tuple | None:
    """Which attempt a job's marker is from (a new start writes a new one)."""
    marker = jobs.read_marker(job.folder)
    return None if marker is None else (marker.get("state"), marker.get("started"), marker.get("ended"))


def launch(argv: list[str], env: dict[str, str], watch) -> int:
    """Run one group's command, calling ``watch`` every POLL_S seconds; a kill of the runner stops it too."""
    process = subprocess.Popen(program(argv), env=env)
    try:
        while True:
            try:
                return process.wait(timeout=POLL_S)
            except subprocess.TimeoutExpired:
                watch()
    except BaseException:
        process.terminate()  # SIGTERM: its running job stays unfinished and is cleared when it starts again
        process.wait()
        raise


def last_lines(job: Job, why: str, count: int = 3) -> str:
    log = job.folder / layout.LOG
    lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()] if log.is_file() else []
    tail = " | ".join(line[:200] for line in lines[-count:])
    return why + (f"; {log} ends: {tail}" if tail else "")


def remove_foreign_jobs(group: Group, planned: list[Job], ctx: Context) -> None:
    """A multirun folder keeps only the jobs of the current sweep: a job folder left by an older, larger
    sweep (fewer seeds now) would otherwise be read as a result."""
    if not group.multirun:
        return
    wanted = {j.folder.resolve() for j in planned}
    for folder in discover.job_folders(ctx.run_dir / group.name):
        if folder.resolve() not in wanted and (folder / layout.HYDRA_DIR).is_dir():
            print(f"removed {folder}: not a job of the current {group.name} sweep", flush=True)
            shutil.rmtree(folder)


def missing_input(group: Group, ctx: Context, values: dict[str, str], groups: dict[str, Group]) -> str | None:
    """What the group reads that is not there: its ``requires`` file, or a file or folder of another run
    group (a ``{group}`` placeholder) that no finished job of that group made. None when all is there."""
    if group.requires and not Path(expand(group.requires, values)).exists():
        return f"{expand(group.requires, values)}, which is not there"
    argv = group_command(group, ctx, values)
    for name in dict.fromkeys(PLACEHOLDER.findall(group.command)):
        if name not in groups or name == group.name:
            continue
        folder = ctx.run_dir / name
        for token in argv[1:]:
            value = token.partition("=")[2]
            if value != str(folder) and not value.startswith(f"{folder}/"):  # rpr_fashion is not rpr_fashion_calibrated
                continue
            if "${" in value:  # a per-job path (seed_${seed}/M.ckpt): some finished job must have made one
                if not any(
                    jobs.finished(folder / Path(hit).relative_to(folder).parts[0])
                    for hit in glob.glob(HYDRA_VALUE.sub("*", value))
                    if Path(hit) != folder
                ):
                    return f"{value} from run group {name}, which has no finished job there; run ONLY={name} first"
                continue
            path = Path(value)
            parts = path.relative_to(folder).parts if path != folder else ()
            job = folder / parts[0] if groups[name].multirun and parts else folder
            made = (
                discover.finished_runs(folder)
                if job == folder and groups[name].multirun
                else [job] * jobs.finished(job)
            )
            if not made or not path.exists():
                return f"{path} from run group {name}, which has no finished job there; run ONLY={name} first"
    return None


def summarise(outcome: Outcome) -> int:
    """The end of a run: every failed job with its overrides and last log lines; the exit status."""
    for line in outcome.skipped_groups:
        print(f"skipped group: {line}", file=sys.stderr)
    for line in outcome.broken_groups:
        print(f"failed group: {line}: see its output above", file=sys.stderr)
    if outcome.failed:
        print(f"{len(outcome.failed)} of {outcome.total} jobs failed:", file=sys.stderr)
        for job, why in outcome.failed:
            print(f"  {job.group} {job.shown or '(single run)'}: {why}", file=sys.stderr)
    if outcome.failed or outcome.broken_groups:
        print("rerun the same command to run what failed or is missing (finished jobs are skipped)", file=sys.stderr)
        return 1
    return 0


def record_timings(run_dir: Path, timings: dict[str, float]) -> None:
    if not timings:
        return
    path = run_dir / layout.TIMINGS
    known = read_json_object(path, str(path)) if path.is_file() else {}
    write_json(path, {**known, **timings})


def draw_figures(experiments: list[Experiment], ctx: Context, force: bool = False) -> int:
    """Every figure whose runs exist; missing runs are named with the command that makes them.

    Returns the number of figure commands that failed (missing runs are not failures).
    """
    if not any(e.figures for e in experiments):
        return 0
    from robustlab.plotting.cli import main as plot

    every = load(ctx.experiments)  # a figure may read a group another experiment file runs
    values, groups, failures = ctx.values(every), {g.name: g for e in every for g in e.groups}, 0
    stamps = FigureStamps(ctx.run_dir / FIGURE_STAMPS, ctx.figures_root / ctx.profile)
    code = plotting_code()  # read once: every figure command's stamp includes it
    for experiment in experiments:
        for figure in experiment.figures:
            if not figure_ready(figure, groups, ctx, values):
                continue
            argv = shlex.split(expand(figure["command"], values))
            require(
                argv[0] == "robustlab-plot", f"{experiment.path}: figure commands run robustlab-plot, got {argv[0]}"
            )
            inputs = figure_inputs(figure, argv, ctx, code)
            if not force and stamps.unchanged(argv, inputs):
                continue  # same runs, same plotting code, its files as it left them: drawing again gives the same bytes
            before = stamps.snapshot()
            try:
                plot(argv[1:])  # in-process: one interpreter draws every figure (seconds, not a start-up each)
            except SystemExit as exit_:
                failures += exit_.code not in (0, None)
                continue
            stamps.record(argv, inputs, before)
    if stamps.skipped:
        print(f"figures: {stamps.skipped} figure command(s) skipped, their runs and files unchanged (FORCE=1 redraws)")
    stamps.save()
    return failures


FIGURE_STAMPS = "figure_stamps.json"  # in the profile's run folder: outputs, not committed with the figures


def plotting_code() -> list:
    """The plotting package's sources and matplotlib's version: a change of either draws every figure again."""
    import matplotlib  # heavy: only when figures are drawn

    plotting = Path(__file__).parent / "plotting"
    return [{p.name: p.read_text() for p in sorted(plotting.glob("*.py"))}, matplotlib.__version__]


def figure_inputs(figure: dict, argv: list[str], ctx: Context, code: list) -> str:
    """What a figure is drawn from: the markers of the finished jobs of the groups it reads (identity and end time),
    the plotting code (``plotting_code``), and the command. Any change of these draws it again."""
    markers = {}
    for name in figure.get("needs", []):
        for folder in group_state(ctx.run_dir / name)[0]:
            marker = jobs.read_marker(folder) or {}
            markers[str(folder)] = [marker.get("identity"), marker.get("ended")]
    return digest([argv, markers, *code])


class FigureStamps:
    """Per figure command: the digest of its inputs and the sha256 of every file it wrote, so a rerun of a finished
    reproduce skips figures whose runs did not change (a redraw is byte-identical, and takes most of a rerun's time)."""

    def __init__(self, path: Path, folder: Path):
        self.path, self.folder, self.skipped = path, folder, 0
        self.entries = read_json_object(path, str(path)) if path.is_file() else {}

    def snapshot(self) -> dict[str, tuple[int, int]]:
        return {str(p): (p.stat().st_mtime_ns, p.stat().st_size) for p in self.folder.rglob("*") if p.is_file()}

    def unchanged(self, argv: list[str], inputs: str) -> bool:
        entry = self.entries.get(shlex.join(argv))
        if not entry or entry.get("inputs") != inputs or not entry.get("files"):
            return False
        for name, sha in entry["files"].items():
            path = Path(name)
            if not path.is_file() or file_digest(str(path), path.stat().st_size, path.stat().st_mtime_ns) != sha:
                return False
        self.skipped += 1
        return True

    def record(self, argv: list[str], inputs: str, before: dict[str, tuple[int, int]]) -> None:
        after = self.snapshot()
        written = sorted(name for name, stat in after.items() if before.get(name) != stat)
        files = {name: file_digest(name, after[name][1], after[name][0]) for name in written}
        self.entries[shlex.join(argv)] = {"inputs": inputs, "files": files}

    def save(self) -> None:
        if self.entries:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_json(self.path, self.entries)


def figure_ready(figure: dict, groups: dict[str, Group], ctx: Context, values: dict[str, str]) -> bool:
    """Whether every run group the figure reads has finished jobs; says which are missing and how to make them."""
    ready = True
    for name in figure.get("needs", []):
        require(name in groups, f"figure '{figure['command']}' needs unknown run group '{name}'")
        done, failed = group_state(ctx.run_dir / name)
        for job in failed:
            print(f"not finished: {job} (no finished result; skipped)", file=sys.stderr)
        if not done:
            command = shlex.join(group_command(groups[name], ctx, values))
            print(f"missing: run '{name}' in {ctx.run_dir / name}; produce it with: {command}", file=sys.stderr)
            ready = False
    return ready


def status(experiments: list[Experiment], ctx: Context) -> dict[str, int]:
    """Every job of the chosen groups: done, missing, failed or stale, with the command for what is not done."""
    every = load(ctx.experiments)
    values, groups = ctx.values(every), {g.name: g for e in every for g in e.groups}
    counts = {s: 0 for s in (jobs.DONE, jobs.MISSING, jobs.FAILED, jobs.STALE)}
    for group in (g for e in experiments for g in e.groups):
        states = [(job, jobs.state(job.folder, job.identity)) for job in plan(group, ctx, values)]
        mine = {s: sum(st.state == s for _, st in states) for s in counts}
        print(
            f"{group.name}: {', '.join(f'{n} {s}' for s, n in mine.items() if n) or 'no jobs'} "
            f"({ctx.run_dir / group.name})"
        )
        for job, st in states:
            counts[st.state] += 1
            why = f": {st.detail}" if st.detail and st.state != jobs.DONE else ""
            print(f"  {st.state:<8} {job.shown or '(single run)'}{why}")
        missing = missing_input(group, ctx, values, groups) if mine[jobs.DONE] < len(states) else None
        if missing:
            print(f"  cannot run yet: needs {missing}")
        elif mine[jobs.DONE] < len(states):
            print(
                f"  produce what is not done with: make reproduce PROFILE={ctx.profile} ONLY={group.name}"
                f"  (or: {shlex.join(group_command(group, ctx, values))})"
            )
    print(f"{sum(counts.values())} jobs: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    return counts


def describe(experiments: list[Experiment], ctx: Context) -> None:
    values = ctx.values(load(ctx.experiments))
    for experiment in experiments:
        times = experiment.wall_time_min.get(ctx.profile, {})
        shown = (
            ", ".join(f"{k}: {'not measured' if v is None else f'{v} min'}" for k, v in times.items()) or "not measured"
        )
        print(f"{experiment.name} ({experiment.path}); measured wall time ({ctx.profile} profile): {shown}")
        for group in experiment.groups:
            done, _ = group_state(ctx.run_dir / group.name)
            print(f"  {group.name} [{len(done)} finished job(s)]: {shlex.join(group_command(group, ctx, values))}")


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="robustlab-reproduce", description="Run the experiments of experiments/*.md and draw their figures."
    )
    p.add_argument(
        "action",
        choices=("run", "figures", "list", "status"),
        help="run: runs then figures; figures: from logged runs only; list: what would run; "
        "status: every job done / missing / failed / stale",
    )
    p.add_argument("--profile", default="paper", help="conf/profile/<profile>.yaml (default: %(default)s)")
    p.add_argument(
        "--only",
        default=None,
        help="comma-separated experiment names (files in experiments/) or run group names; default: all",
    )
    p.add_argument("--force", default="0", help="1: run every job again, done or not (default: %(default)s)")
    p.add_argument(
        "--output",
        type=Path,
        default=Path(os.environ.get("ROBUSTLAB_OUTPUT", "outputs")),
        help="output root (default: $ROBUSTLAB_OUTPUT or outputs)",
    )
    p.add_argument(
        "--experiments", type=Path, default=EXPERIMENTS, help="folder of experiment files (default: the repository's)"
    )
    p.add_argument(
        "--figures-root",
        type=Path,
        default=Path("figures"),
        help="figures go to <this>/<profile> (default: %(default)s)",
    )
    return p


def check_writable(folder: Path) -> None:
    """The output root takes files: checked before any work, so a read-only place fails in one line."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
            pass
    except OSError as error:
        raise RobustlabError(
            f"cannot write into {folder} ({error.strerror or error}); pass --output (make: OUTPUT=) "
            "a folder you can write"
        ) from None


def spelled(output: Path) -> Path:
    """The output root as the jobs see it: relative to the working folder when it lies inside it.

    A job's identity digests its config, and a folder input (rpr.calibrate.source) is digested by its
    path: without this, ``--output outputs`` and ``--output $PWD/outputs`` would name the same runs
    twice, and the second spelling would find the first one's jobs stale.
    """
    try:
        resolved, here = output.resolve(), Path.cwd()
    except OSError:  # a working folder that is gone: keep the spelling given
        return output
    return Path(os.path.relpath(resolved, here)) if resolved.is_relative_to(here) else output


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    args.output = spelled(args.output)
    with one_line_errors():
        require(args.force in ("0", "1"), f"FORCE (--force) must be 0 or 1, got '{args.force}'")
        ctx = Context(
            args.profile, args.output, args.figures_root, os.environ.get("ROBUSTLAB_DATA", "data"), args.experiments
        )
        seeds(args.profile)  # an unknown profile fails here, before anything runs
        experiments = load(args.experiments, only=args.only)
        # Jobs and the configs composed here resolve ${paths.output_root} from it: one output root for all.
        os.environ["ROBUSTLAB_OUTPUT"] = str(args.output)
        if args.action == "list":
            return describe(experiments, ctx)
        if args.action == "status":
            status(experiments, ctx)
            return None
        code = 0
        if args.action == "run":
            check_writable(ctx.run_dir)
            try:
                code = summarise(run_groups(experiments, ctx, force=args.force == "1"))
            except KeyboardInterrupt:
                print("interrupted: rerun the same command to go on (finished jobs are skipped)", file=sys.stderr)
                raise SystemExit(130) from None
        failures = draw_figures(experiments, ctx, force=args.force == "1")
    require_no_failures(failures)
    if code:
        raise SystemExit(code)


def require_no_failures(failures: int) -> None:
    if failures:
        print(f"error: {failures} figure command(s) failed (see above)", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
