"""``robustlab-reproduce``: run the experiments of ``experiments/*.md`` and draw their figures.

Each experiment file holds prose for readers and one fenced block tagged ``yaml reproduce``: the
exact commands ``make reproduce`` runs (its run groups), the figure commands ``make figures`` runs,
and the measured wall time. The same block serves both targets, so the documented command is the
command that runs, and a missing run can be named with the command that produces it.

  robustlab-reproduce run     --profile quick [--only rpr_mnist,dcgan]   runs, then figures
  robustlab-reproduce figures --profile quick [--only ...]               figures from logged runs only
  robustlab-reproduce list    --profile quick                            groups, commands, wall times

Placeholders in commands: {profile}, {seeds} (0..n-1 from conf/profile/<profile>.yaml ``seeds``),
{run_dir} (outputs/reproduce/<profile>), {figures} (figures/<profile>), {data_root}, and the
folder of any run group by its name (e.g. {rpr_mnist}). Hydra's own ``${...}`` is left alone.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from robustlab.configs import conf_dir
from robustlab.errors import RobustlabError, one_line_errors, require

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = ROOT / "experiments"
PROFILES = Path(conf_dir()) / "profile"
BLOCK = re.compile(r"^```yaml reproduce\n(.*?)^```", re.S | re.M)
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
    groups = [Group(g["group"], g["command"], g.get("profiles", {}) or {}, g.get("requires")) for g in spec.get("runs", [])]
    return Experiment(path.stem, path, int(spec.get("order", 99)), groups, spec.get("figures", []), spec.get("wall_time_min", {}))


def load(folder: Path = EXPERIMENTS, only: str | None = None) -> list[Experiment]:
    experiments = sorted((parse(p) for p in sorted(folder.glob("*.md"))), key=lambda e: (e.order, e.name))
    if not only:
        return experiments
    wanted = [w.strip() for w in only.split(",") if w.strip()]
    known = {e.name for e in experiments}
    unknown = [w for w in wanted if w not in known]
    require(not unknown, f"unknown experiment(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return [e for e in experiments if e.name in wanted]


def seeds(profile: str, folder: Path = PROFILES) -> str:
    path = folder / f"{profile}.yaml"
    require(path.is_file(), f"unknown profile '{profile}'; pick one of {', '.join(p.stem for p in sorted(folder.glob('*.yaml')))}")
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

    @property
    def run_dir(self) -> Path:
        return self.output / "reproduce" / self.profile

    def values(self, experiments: list[Experiment]) -> dict[str, str]:
        values = {"profile": self.profile, "seeds": seeds(self.profile), "run_dir": str(self.run_dir),
                  "figures": str(self.figures_root / self.profile), "data_root": self.data_root}
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
    """(finished job folders, failed or unfinished ones: Hydra's config but no metrics.json)."""
    from robustlab.store import find_runs

    jobs = find_runs(folder)
    done = [j for j in jobs if (j / "metrics.json").is_file()]
    return done, [j for j in jobs if j not in done]


# ---------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------


def run_groups(experiments: list[Experiment], ctx: Context) -> dict[str, float]:
    """Run every group in order (a group's folder is cleared first: no stale jobs of an older sweep)."""
    values, timings = ctx.values(load()), {}  # a command may name a group of another file (rpr_mnist's M)
    for experiment in experiments:
        for group in experiment.groups:
            if group.requires and not Path(expand(group.requires, values)).exists():
                print(f"skipped: {group.name} needs {expand(group.requires, values)}, which is not there", flush=True)
                continue
            argv = group_command(group, ctx, values)
            print(f"== {experiment.name}/{group.name}: {shlex.join(argv)}", flush=True)
            shutil.rmtree(ctx.run_dir / group.name, ignore_errors=True)
            started = time.perf_counter()
            code = subprocess.call(program(argv))
            require(code == 0, f"{experiment.name}/{group.name} failed (exit {code}); its log is in {ctx.run_dir / group.name}")
            timings[group.name] = round(time.perf_counter() - started, 1)
            record_timings(ctx.run_dir, timings)
    return timings


def record_timings(run_dir: Path, timings: dict[str, float]) -> None:
    from robustlab.results import write_json
    from robustlab.store import read_json_object

    path = run_dir / "timings.json"
    known = read_json_object(path, str(path)) if path.is_file() else {}
    write_json(path, {**known, **timings})


def draw_figures(experiments: list[Experiment], ctx: Context) -> int:
    """Every figure whose runs exist; missing runs are named with the command that makes them.

    Returns the number of figure commands that failed (missing runs are not failures).
    """
    from robustlab.plotting.cli import main as plot

    every = load()  # a figure may read a group another experiment file runs
    values, groups, failures = ctx.values(every), {g.name: g for e in every for g in e.groups}, 0
    for experiment in experiments:
        for figure in experiment.figures:
            if not figure_ready(figure, groups, ctx, values):
                continue
            argv = shlex.split(expand(figure["command"], values))
            require(argv[0] == "robustlab-plot", f"{experiment.path}: figure commands run robustlab-plot, got {argv[0]}")
            try:
                plot(argv[1:])  # in-process: one interpreter draws every figure (seconds, not a start-up each)
            except SystemExit as exit_:
                failures += exit_.code not in (0, None)
    return failures


def figure_ready(figure: dict, groups: dict[str, Group], ctx: Context, values: dict[str, str]) -> bool:
    """Whether every run group the figure reads has finished jobs; says which are missing and how to make them."""
    ready = True
    for name in figure.get("needs", []):
        require(name in groups, f"figure '{figure['command']}' needs unknown run group '{name}'")
        done, failed = group_state(ctx.run_dir / name)
        for job in failed:
            print(f"not finished: {job} (no metrics.json; skipped)", file=sys.stderr)
        if not done:
            command = shlex.join(group_command(groups[name], ctx, values))
            print(f"missing: run '{name}' in {ctx.run_dir / name}; produce it with: {command}", file=sys.stderr)
            ready = False
    return ready


def describe(experiments: list[Experiment], ctx: Context) -> None:
    values = ctx.values(load())
    for experiment in experiments:
        times = experiment.wall_time_min.get(ctx.profile, {})
        shown = ", ".join(f"{k}: {'not measured' if v is None else f'{v} min'}" for k, v in times.items()) or "not measured"
        print(f"{experiment.name} ({experiment.path}); measured wall time ({ctx.profile} profile): {shown}")
        for group in experiment.groups:
            done, _ = group_state(ctx.run_dir / group.name)
            print(f"  {group.name} [{len(done)} finished job(s)]: {shlex.join(group_command(group, ctx, values))}")


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="robustlab-reproduce", description="Run the experiments of experiments/*.md and draw their figures.")
    p.add_argument("action", choices=("run", "figures", "list"), help="run: runs then figures; figures: from logged runs only; list: what would run")
    p.add_argument("--profile", default="paper", help="conf/profile/<profile>.yaml (default: %(default)s)")
    p.add_argument("--only", default=None, help="comma-separated experiment names (files in experiments/); default: all")
    p.add_argument("--output", type=Path, default=Path(os.environ.get("ROBUSTLAB_OUTPUT", "outputs")), help="output root (default: $ROBUSTLAB_OUTPUT or outputs)")
    p.add_argument("--figures-root", type=Path, default=Path("figures"), help="figures go to <this>/<profile> (default: %(default)s)")
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    with one_line_errors():
        ctx = Context(args.profile, args.output, args.figures_root, os.environ.get("ROBUSTLAB_DATA", "data"))
        seeds(args.profile)  # an unknown profile fails here, before anything runs
        experiments = load(only=args.only)
        if args.action == "list":
            return describe(experiments, ctx)
        if args.action == "run":
            run_groups(experiments, ctx)
        failures = draw_figures(experiments, ctx)
    require_no_failures(failures)


def require_no_failures(failures: int) -> None:
    if failures:
        print(f"error: {failures} figure command(s) failed (see above)", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
