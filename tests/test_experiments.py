"""experiments/*.md drive `make reproduce` and `make figures`: every documented command composes,
and figures are drawn from whatever runs exist, naming the missing ones with their command."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import compose_config, tiny_run_overrides
from robustlab import reproduce as ex
from robustlab.errors import RobustlabError

ROOT = Path(__file__).resolve().parents[1]


def first_values(argv: list[str]) -> list[str]:
    """A multirun's overrides with each sweep reduced to its first value (what job 0 composes)."""
    return [re.sub(r"=([^,]*),.*$", r"=\1", a) if "=" in a and not a.startswith("hydra.") else a for a in argv]


@pytest.fixture(scope="module")
def all_experiments():
    return ex.load()


def test_every_experiment_file_has_one_runnable_block(all_experiments):
    names = [e.name for e in all_experiments]
    assert names[0] == "rpr_mnist"  # the others reuse its M
    assert set(names) == {p.stem for p in (ROOT / "experiments").glob("*.md")}
    for experiment in all_experiments:
        assert experiment.groups and experiment.figures, experiment.name
        assert set(experiment.wall_time_min) == {"quick", "paper"}, experiment.name


@pytest.mark.parametrize("profile", ["quick", "paper"])
def test_every_documented_command_composes(all_experiments, profile, tmp_path):
    ctx = ex.Context(profile, tmp_path, tmp_path / "figures", "data")
    values = ctx.values(all_experiments)
    for group in (g for e in all_experiments for g in e.groups):
        argv = ex.group_command(group, ctx, values)
        assert argv[0] == "robustlab"
        assert argv[-1].endswith(f"={ctx.run_dir / group.name}")
        overrides = first_values([a for a in argv[1:] if a != "-m" and not a.startswith("hydra.")])
        cfg = compose_config(overrides)
        assert cfg.profile.name == profile, group.name


def test_seeds_come_from_the_profile(tmp_path):
    (tmp_path / "p.yaml").write_text("name: p\nseeds: 3\n")
    (tmp_path / "bad.yaml").write_text("name: bad\nseeds: 0\n")
    assert ex.seeds("p", tmp_path) == "0,1,2"
    with pytest.raises(RobustlabError, match="seeds must be a positive integer"):
        ex.seeds("bad", tmp_path)
    with pytest.raises(RobustlabError, match="unknown profile 'nope'; pick one of bad, p"):
        ex.seeds("nope", tmp_path)


def test_placeholders_leave_hydra_interpolations_alone():
    assert (
        ex.expand("seed={seeds} hydra.sweep.subdir=seed_${seed}", {"seeds": "0,1"})
        == "seed=0,1 hydra.sweep.subdir=seed_${seed}"
    )
    with pytest.raises(RobustlabError, match=r"unknown placeholder \{nope\}"):
        ex.expand("x={nope}", {})


def test_a_block_that_does_not_parse_is_one_line(tmp_path):
    (tmp_path / "broken.md").write_text("# x\n\n```yaml reproduce\nruns: [\n```\n")
    with pytest.raises(RobustlabError, match="broken.md: the yaml reproduce block does not parse"):
        ex.load(tmp_path)
    (tmp_path / "broken.md").write_text("# no block\n")
    with pytest.raises(RobustlabError, match="needs exactly one ```yaml reproduce block, found 0"):
        ex.load(tmp_path)


def test_unknown_experiment_names_the_known_ones():
    with pytest.raises(RobustlabError, match="unknown experiment\\(s\\) nope; known: dcgan, linear_robust"):
        ex.load(only="nope")


def test_group_state_tells_finished_from_failed_jobs(tmp_path):
    for job, done in (("seed_0", True), ("seed_1", False)):
        (tmp_path / "g" / job / ".hydra").mkdir(parents=True)
        (tmp_path / "g" / job / ".hydra" / "config.yaml").write_text("name: g\n")  # Hydra writes it before the job runs
        if done:
            (tmp_path / "g" / job / "metrics.json").write_text("{}")
    done, failed = ex.group_state(tmp_path / "g")
    assert [p.name for p in done] == ["seed_0"] and [p.name for p in failed] == ["seed_1"]
    assert ex.group_state(tmp_path / "absent") == ([], [])


def test_make_figures_with_runs_missing_draws_what_it_can_and_names_the_rest(tiny_mnist_root, tmp_path):
    """The reviewer's `make figures` on a store holding only rpr_mnist's seed 0 (a real tiny run)
    plus a failed seed: exit 0, its figures drawn, every missing run named with its command."""
    output, figures = tmp_path / "outputs", tmp_path / "figures"
    group = output / "reproduce" / "quick" / "rpr_mnist"
    env = {**os.environ, "ROBUSTLAB_OUTPUT": str(output), "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}
    overrides = tiny_run_overrides(
        tiny_mnist_root,
        **{"model.lr": 0.01, "rpr.balance.per_class": 3, "profile.rpr_train_points": 60, "profile.rpr_test_points": 20},
    )
    run = subprocess.run(
        [sys.executable, "-m", "robustlab.cli", *overrides, f"hydra.run.dir={group / 'seed_0'}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    (group / "seed_1" / ".hydra").mkdir(parents=True)  # a crashed seed: config but no metrics
    (group / "seed_1" / ".hydra" / "config.yaml").write_text("name: rpr_mnist\n")
    make = subprocess.run(
        [
            "make",
            "-s",
            "-C",
            str(ROOT),
            "figures",
            "PROFILE=quick",
            f"OUTPUT={output}",
            f"FIGURES={figures}",
            f"BIN={Path(sys.executable).parent}",
            "STAMP=",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert make.returncode == 0, make.stderr[-2000:]
    assert (figures / "quick" / "fig3_robust_ratio_M.png").is_file()
    assert f"not finished: {group / 'seed_1'}" in make.stderr
    for missing in ("rpr_sweep", "rpr_readings", "linear_robust", "dcgan_mnist", "rpr_gan_augment"):
        assert re.search(rf"missing: run '{missing}' .*; produce it with: robustlab ", make.stderr), missing
    assert "Traceback" not in make.stderr

    # Again, with nothing changed: the figure is not drawn again (its file untouched); a figure file changed by hand
    # (or a new finished job) draws it again, with the same bytes as before.
    fig3 = figures / "quick" / "fig3_robust_ratio_M.png"
    first, stamp = fig3.read_bytes(), fig3.stat().st_mtime_ns
    again = subprocess.run(make.args, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0 and "figures: 1 figure command(s) skipped" in again.stdout
    assert fig3.stat().st_mtime_ns == stamp
    fig3.write_bytes(b"edited")
    redrawn = subprocess.run(make.args, capture_output=True, text=True, env=env, timeout=300)
    assert redrawn.returncode == 0 and "skipped, their runs" not in redrawn.stdout and fig3.read_bytes() == first


def test_one_experiment_alone_still_finds_the_groups_of_others(tmp_path, monkeypatch):
    """`make reproduce ONLY=rpr_gan_augment` runs only its group, with rpr_mnist's folder filled in.

    Its input, rpr_mnist's seed 0, must be a finished job now (else the group is skipped, naming it):
    a hand-made one here. The runner starts a group through ``launch`` (it watches the job markers)."""
    calls = []
    monkeypatch.setattr(ex, "launch", lambda argv, env, watch: calls.append(argv) or 0)
    ctx = ex.Context("quick", tmp_path, tmp_path / "figures", "data")
    seed_0 = ctx.run_dir / "rpr_mnist" / "seed_0"
    seed_0.mkdir(parents=True)
    (seed_0 / "M.ckpt").write_bytes(b"weights")
    (seed_0 / "metrics.json").write_text("{}")
    ex.run_groups(ex.load(only="rpr_gan_augment"), ctx)
    assert len(calls) == 1 and f"checkpoint={ctx.run_dir / 'rpr_mnist'}/seed_0/M.ckpt" in calls[0]
    assert (ctx.run_dir / "timings.json").is_file()


def test_an_output_root_inside_the_working_folder_is_spelled_one_way(tmp_path, monkeypatch):
    # A job's identity digests its config, folder inputs by path: both spellings must give one path.
    monkeypatch.chdir(tmp_path)
    assert ex.spelled(tmp_path / "outputs") == Path("outputs")
    assert ex.spelled(Path("./outputs")) == Path("outputs")
    assert ex.spelled(Path("outputs/../outputs")) == Path("outputs")
    outside = tmp_path.parent / "elsewhere"
    assert ex.spelled(outside) == outside


def test_planning_again_composes_nothing_but_still_reads_input_files(tmp_path, monkeypatch):
    """The runner plans every group up front and again just before it runs: the second plan reuses
    Hydra's composed configs, but a job's identity must follow an input file written in between."""
    import hydra

    composes = []
    real = hydra.compose
    monkeypatch.setattr(hydra, "compose", lambda *a, **k: composes.append(1) or real(*a, **k))
    ex.composed.cache_clear()
    ctx = ex.Context("quick", tmp_path, tmp_path / "figures", "data")
    every = ex.load()
    values = ctx.values(every)
    group = next(g for e in every for g in e.groups if g.name == "rpr_gan_augment")  # reads rpr_mnist's M.ckpt
    seed_0 = ctx.run_dir / "rpr_mnist" / "seed_0"
    seed_0.mkdir(parents=True)
    (seed_0 / "M.ckpt").write_bytes(b"weights")
    first = ex.plan(group, ctx, values)
    assert len(composes) == len(first)
    (seed_0 / "M.ckpt").write_bytes(b"other weights")
    second = ex.plan(group, ctx, values)
    assert len(composes) == len(first)  # nothing composed again
    assert [j.folder for j in second] == [j.folder for j in first]
    assert [j.identity for j in second] != [j.identity for j in first]
