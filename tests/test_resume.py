"""Resumable runs: the job marker, the job's identity, and `robustlab-reproduce` on a tiny sweep that
is killed with SIGKILL in the middle of a job, then run again."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import tiny_run_overrides
from robustlab import reproduce as ex
from robustlab.runs import io, jobs
from robustlab.runs.identity import job_identity, result_config
from robustlab.runs.schema import SCHEMA_VERSION, read_metrics, write_metrics

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------
# The marker and the identity, on folders made here
# ---------------------------------------------------------------------------------------------


def finished_job(folder: Path, identity: str = "abc") -> Path:
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "config.yaml").write_text("name: x\n")
    jobs.begin(folder, identity, ["seed=0"])
    (folder / "rpr_M_test.csv").write_text("index,label\n0,1\n")
    write_metrics(folder, {"pipeline": "rpr_retrain", "seed": 0, "M": {"test_accuracy": 0.5}})
    jobs.finish(folder)
    return folder


def test_done_needs_the_same_identity_and_intact_files(tmp_path):
    job = finished_job(tmp_path / "0")
    assert jobs.state(job, "abc").state == jobs.DONE and jobs.finished(job)
    assert read_metrics(job)["schema_version"] == SCHEMA_VERSION
    stale = jobs.state(job, "other")
    assert stale.state == jobs.STALE and "config or code changed" in stale.detail
    text = (job / "metrics.json").read_text()
    (job / "metrics.json").write_text(text[: len(text) // 2])  # truncated after the job finished
    truncated = jobs.state(job, "abc")
    assert truncated.state == jobs.MISSING and "metrics.json changed size" in truncated.detail
    assert not jobs.finished(job)
    (job / "metrics.json").write_text(text)
    (job / "rpr_M_test.csv").unlink()
    assert jobs.state(job, "abc").detail == "incomplete: rpr_M_test.csv is gone"


def test_a_killed_or_failed_job_never_counts_even_with_its_metrics(tmp_path):
    killed = tmp_path / "killed"
    killed.mkdir()
    jobs.begin(killed, "abc", [])
    write_metrics(killed, {"pipeline": "x"})  # the job died between its last result and the marker
    assert jobs.state(killed, "abc").state == jobs.MISSING and not jobs.finished(killed)
    failed = tmp_path / "failed"
    failed.mkdir()
    jobs.begin(failed, "abc", [])
    jobs.fail(failed, "discriminator loss is nan at training step 3")
    state = jobs.state(failed, "abc")
    assert (state.state, state.detail) == (jobs.FAILED, "discriminator loss is nan at training step 3")
    legacy = tmp_path / "legacy"  # metrics.json, no marker: readers accept it, the runner reruns it
    legacy.mkdir()
    (legacy / "metrics.json").write_text("{}")
    assert jobs.finished(legacy) and jobs.state(legacy, "abc").state == jobs.STALE


def test_a_restart_clears_the_earlier_attempt_but_not_hydras_files_nor_a_foreign_folder(tmp_path):
    job = finished_job(tmp_path / "0")
    (job / "cli.log").write_text("earlier attempt\n")
    (job / "M").mkdir()
    (job / "M" / "metrics.csv").write_text("step\n")
    jobs.begin(job, "new", [])
    assert sorted(p.name for p in job.iterdir()) == [".hydra", "cli.log", "job.json"]
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert jobs.clear_previous_attempt(foreign) == [] and (foreign / "notes.txt").read_text() == "mine"


def test_a_write_that_fails_leaves_nothing_that_counts_as_done(tmp_path, monkeypatch):
    """A read-only folder (tests run as root, so chmod does not stop writes): the rename into place fails."""
    job = tmp_path / "0"
    job.mkdir()
    jobs.begin(job, "abc", [])

    def refuse(src, dst):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(io.os, "replace", refuse)
    with pytest.raises(OSError, match="Read-only"):
        write_metrics(job, {"pipeline": "x"})
    with pytest.raises(OSError, match="Read-only"):
        jobs.finish(job)
    monkeypatch.undo()
    assert sorted(p.name for p in job.iterdir()) == ["job.json"]  # no metrics.json, no temporary file
    assert jobs.state(job, "abc").state == jobs.MISSING and not jobs.finished(job)


def test_identity_ignores_where_files_go_but_not_what_they_hold(tmp_path):
    checkpoint = tmp_path / "M.ckpt"
    checkpoint.write_bytes(b"weights 1")
    config = {
        "seed": 0,
        "threads": 1,
        "paths": {"output_root": "a"},
        "rpr": {"max_steps": 5, "progress": True},
        "checkpoint": str(checkpoint),
    }
    base = job_identity(config)
    moved = {**config, "paths": {"output_root": "b"}, "rpr": {"max_steps": 5, "progress": False}}
    assert job_identity(moved) == base
    assert job_identity({**config, "threads": 2}) != base  # threads change CPU training's summation order
    assert job_identity({**config, "rpr": {"max_steps": 6, "progress": True}}) != base
    copy = tmp_path / "elsewhere.ckpt"
    copy.write_bytes(b"weights 1")
    assert job_identity({**config, "checkpoint": str(copy)}) == base  # the same model from another place
    copy.write_bytes(b"weights 2")
    assert job_identity({**config, "checkpoint": str(copy)}) != base  # the input changed: the job is stale


def test_a_folder_of_runs_is_identified_by_its_finished_runs_results(tmp_path):
    """rpr.calibrate.source names an operating-point group folder: the calibrated job is stale when a
    finished run there changes a result, not when the group moves; unfinished runs and a folder of no
    runs (data, figures) do not count."""
    group = tmp_path / "outputs" / "operating_point"
    for seed in (0, 1):
        finished_job(group / f"seed_{seed}")
    config = {"seed": 0, "rpr": {"calibrate": {"source": str(group)}}}
    base = job_identity(config)
    moved = tmp_path / "archive" / "operating_point"
    shutil.copytree(group, moved)
    assert job_identity({"seed": 0, "rpr": {"calibrate": {"source": str(moved)}}}) == base
    (group / "seed_2" / ".hydra").mkdir(parents=True)  # a job that started and was killed
    jobs.begin(group / "seed_2", "abc", ["seed=2"])
    (group / "seed_2" / "rpr_M_test.csv").write_text("index,label\n0,0\n")
    assert job_identity(config) == base
    (group / "seed_1" / "rpr_M_test.csv").write_text("index,label\n0,2\n")  # same size, other result
    assert job_identity(config) != base
    assert result_config(config)["rpr"]["calibrate"]["source"].startswith("runs:")
    figures = tmp_path / "figures"
    (figures / "paper").mkdir(parents=True)
    (figures / "paper" / "fig1.png").write_bytes(b"png")
    assert result_config({"figures": str(figures)}) == {"figures": str(figures)}  # no runs: the path itself


# ---------------------------------------------------------------------------------------------
# Bad input of the runner: one line, before any work
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "--only", "nope"], "error: unknown experiment(s) nope; known: dcgan, linear_robust"),
        (["run", "--force", "2"], "error: FORCE (--force) must be 0 or 1, got '2'"),
    ],
)
def test_bad_runner_input_is_one_line(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        ex.main([*argv, "--profile", "quick", "--output", str(tmp_path)])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.startswith(message) and err.count("\n") == 1


def test_an_output_root_that_cannot_be_written_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(ex, "run_groups", lambda *a, **k: pytest.fail("work started"))
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(SystemExit) as exit_:
        ex.main(["run", "--profile", "quick", "--output", str(tmp_path / "file" / "out"), "--only", "rpr_mnist"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.startswith(f"error: cannot write into {tmp_path / 'file' / 'out'}")
    assert err.count("\n") == 1


def test_make_checks_force(tmp_path):
    make = subprocess.run(
        [
            "make",
            "-s",
            "-C",
            str(ROOT),
            "status",
            "FORCE=yes",
            f"OUTPUT={tmp_path}",
            f"BIN={Path(sys.executable).parent}",
            "STAMP=",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert make.returncode == 2 and make.stdout.strip() == "error: FORCE must be 0 or 1, got 'yes'"


# ---------------------------------------------------------------------------------------------
# A real sweep, killed and run again
# ---------------------------------------------------------------------------------------------

TINY = {"experiment": "rpr_sweep", "model_cache": "null", "profile.rpr_test_points": 30}


def experiment_file(folder: Path, data_root: Path, sweep: str = "seed=0,1", after: bool = False) -> Path:
    """An experiments folder with one tiny multirun group (and, with ``after``, a group reading its job 1)."""
    overrides = " ".join(o for o in tiny_run_overrides(data_root, **TINY) if not o.startswith("profile="))
    runs = [{"group": "tiny", "command": f"robustlab -m {overrides} profile={{profile}} {sweep}"}]
    if after:
        runs.append(
            {"group": "after", "command": f"robustlab {overrides} profile={{profile}} checkpoint={{tiny}}/1/M.ckpt"}
        )
    folder.mkdir(parents=True, exist_ok=True)
    block = json.dumps({"order": 1, "runs": runs, "figures": [], "wall_time_min": {}})  # JSON is YAML
    (folder / "tiny.md").write_text(f"# tiny\n\n```yaml reproduce\n{block}\n```\n")
    return folder


def env_for(output: Path) -> dict[str, str]:
    return {**os.environ, "ROBUSTLAB_OUTPUT": str(output), "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}


def sweep_argv(ctx: ex.Context) -> list[str]:
    group = ex.load(ctx.experiments)[0].groups[0]
    return ex.group_command(group, ctx, ctx.values(ex.load(ctx.experiments)))


def snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {
        p.relative_to(folder).as_posix(): (p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(folder.rglob("*"))
        if p.is_file() and ".hydra" not in p.parts and p.name != "cli.log"
    }


def results_of(job: Path) -> tuple[bytes, dict]:
    """The job's RPR table and numbers; wall times and the config's output paths (two roots here) left out."""
    metrics = json.loads((job / "metrics.json").read_text())
    metrics["config"].pop("paths")
    return (job / "rpr_M_test.csv").read_bytes(), {
        k: v for k, v in metrics.items() if k not in ("timings_s", "wall_time_s")
    }


def test_a_sweep_killed_mid_job_resumes_without_running_finished_jobs_again(tiny_mnist_root, tmp_path, capsys):
    reference_ctx = ex.Context(
        "quick", tmp_path / "ref", tmp_path / "f", "data", experiment_file(tmp_path / "e", tiny_mnist_root)
    )
    ctx = ex.Context("quick", tmp_path / "out", tmp_path / "f", "data", reference_ctx.experiments)
    reference = subprocess.run(
        ex.program(sweep_argv(reference_ctx)),
        env=env_for(reference_ctx.output),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert reference.returncode == 0, reference.stderr[-2000:]
    group = ctx.run_dir / "tiny"
    killed = subprocess.Popen(
        ex.program(sweep_argv(ctx)),
        env=env_for(ctx.output),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 240
    while time.time() < deadline and killed.poll() is None:  # kill when job 0 is done and job 1 has begun
        first, second = jobs.read_marker(group / "0"), jobs.read_marker(group / "1")
        if first and first["state"] == jobs.DONE and second and second["state"] == jobs.RUNNING:
            os.killpg(killed.pid, signal.SIGKILL)
            break
        time.sleep(0.01)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL, "the sweep ended before it could be killed mid-job"
    assert jobs.read_marker(group / "1")["state"] == jobs.RUNNING  # a killed job: unfinished, never done
    before = snapshot(group / "0")

    os.environ["ROBUSTLAB_OUTPUT"] = str(ctx.output)  # what main() sets for the configs it composes
    planned = ex.plan(ex.load(ctx.experiments)[0].groups[0], ctx, ctx.values(ex.load(ctx.experiments)))
    assert [jobs.state(j.folder, j.identity).state for j in planned] == [jobs.DONE, jobs.MISSING]
    again = subprocess.run(
        ex.program(sweep_argv(ctx)), env=env_for(ctx.output), capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"skipped: already done ({planned[0].identity}) in {group / '0'}" in again.stdout
    assert snapshot(group / "0") == before  # not executed again: every file untouched
    for job in ("0", "1"):
        assert results_of(group / job) == results_of(reference_ctx.run_dir / "tiny" / job), job

    assert ex.status(ex.load(ctx.experiments), ctx)[jobs.DONE] == 2  # the runner's identities are the jobs' own
    experiment_file(ctx.experiments, tiny_mnist_root, sweep="seed=0,1 rpr.max_steps=4")  # the config changed
    counts = ex.status(ex.load(ctx.experiments), ctx)
    assert counts[jobs.STALE] == 2 and counts[jobs.DONE] == 0
    assert "config or code changed since it ran" in capsys.readouterr().out


def test_a_failed_job_does_not_stop_the_others_and_its_dependents_are_skipped(tiny_mnist_root, tmp_path, capfd):
    """Job 1 fails while it runs (its rpr.reuse_from folder holds no RPR: a bad sweep value such as
    rpr.max_steps=0 is refused by the config pre-check before any job); job 0 still runs; the group
    reading job 1's M is skipped, naming it; the summary names the failure; exit status 1."""
    nowhere = tmp_path / "nowhere"
    folder = experiment_file(tmp_path / "e", tiny_mnist_root, sweep=f"rpr.reuse_from=null,{nowhere}", after=True)
    argv = ["run", "--profile", "quick", "--output", str(tmp_path / "out"), "--experiments", str(folder)]
    with pytest.raises(SystemExit) as exit_:
        ex.main(argv)
    out, err = capfd.readouterr()
    group = tmp_path / "out" / "reproduce" / "quick" / "tiny"
    assert exit_.value.code == 1
    assert jobs.finished(group / "0") and jobs.read_marker(group / "1")["state"] == jobs.FAILED
    assert "job 1/3 tiny rpr.reuse_from=null: done in" in out
    why = f"RPR results missing: {nowhere / 'rpr_M_test.csv'}"
    assert f"job 2/3 tiny rpr.reuse_from={nowhere}: FAILED after" in out and why in out
    assert f"skipped: after needs {group / '1' / 'M.ckpt'} from run group tiny, which has no finished job there" in out
    assert "1 of 3 jobs failed:" in err and f"  tiny rpr.reuse_from={nowhere}: {why}" in err
