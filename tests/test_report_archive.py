"""Archived runs (robustlab.report.archive): the report files of finished runs kept in the repository, so a
paper-profile section survives the machine its runs ran on, and the report over archive and local runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_store import runs_root  # noqa: F401  (fixture)

from robustlab.report import archive
from robustlab.report.cli import main as report_main
from robustlab.runs import jobs
from robustlab.runs.schema import write_metrics


def as_finished_jobs(root: Path) -> list[Path]:
    """The fixture's runs as `make reproduce` leaves them: a done marker and a checkpoint beside metrics.json."""
    done = []
    for metrics_path in sorted(root.rglob("metrics.json")):
        folder = metrics_path.parent
        try:
            metrics = json.loads(metrics_path.read_text())
        except ValueError:
            continue  # the fixture's broken run stays broken
        jobs.begin(folder, "abc", [f"seed={metrics.get('seed')}"])
        write_metrics(folder, metrics)
        (folder / "M.ckpt").write_bytes(b"weights" * 100)
        (folder / "rpr_M_test.csv").write_text("index,label,first_failure\n0,1,\n")
        jobs.finish(folder)
        done.append(folder)
    return done


@pytest.fixture
def finished_root(runs_root):  # noqa: F811
    return runs_root, as_finished_jobs(runs_root)


def report(root: Path, out: Path, figures: Path, *extra: str) -> dict[str, str]:
    assert (
        report_main(
            ["--profile", "paper", "--root", str(root), "--figures-root", str(figures), "--out", str(out), *extra]
        )
        == 0
    )
    return {name: (out / name).read_text() for name in ("REPRODUCTION.md", "report.tex", "tables/claims_paper.csv")}


def test_save_keeps_the_report_files_and_marks_what_stayed_behind(finished_root, tmp_path):
    root, done = finished_root
    store = tmp_path / "paper_runs"
    assert archive.save(root, store, "paper") == len(done)
    kept = archive.profile_dir(store, "paper")
    assert not list(kept.rglob("*.ckpt")) and list(kept.rglob("metrics.json"))
    marker = jobs.read_marker(kept / "rpr_mnist" / "seed_0")
    assert marker["state"] == jobs.DONE and marker["left_out_of_archive"] == ["M.ckpt", "rpr_M_test.csv"]
    assert "M.ckpt" not in marker["files"] and jobs.finished(kept / "rpr_mnist" / "seed_0")
    assert not (kept / "rpr_mnist" / "seed_3").exists()  # the failed run is not archived
    assert (kept / "rpr_mnist" / "multirun.yaml").is_file()


def test_a_report_from_the_archive_alone_equals_the_report_from_the_runs(finished_root, tmp_path):
    root, _ = finished_root
    store, figures = tmp_path / "paper_runs", tmp_path / "figures"
    archive.save(root, store, "paper")
    from_runs = report(root, tmp_path / "a", figures)
    from_archive = report(tmp_path / "fresh_clone_outputs", tmp_path / "b", figures, "--archive", str(store))
    assert from_archive["tables/claims_paper.csv"] == from_runs["tables/claims_paper.csv"]
    note = " and the 7 finished, archived runs under"
    assert note in from_archive["REPRODUCTION.md"] and note not in from_runs["REPRODUCTION.md"]
    assert from_archive["report.tex"] == from_runs["report.tex"]

    # The same numbers and sentences: only the lines naming the folders differ, and the two broken runs,
    # which are not archived, are no longer listed as left out.
    def text(name: str, drop: str = "") -> list[str]:
        lines = from_runs[name] if not drop else from_archive[name]
        return [line for line in lines.splitlines() if line.strip() and str(tmp_path) not in line]

    runs_lines = [line for line in text("REPRODUCTION.md") if not line.startswith("Runs left out")]
    assert text("REPRODUCTION.md", drop="archive") == runs_lines


def test_a_local_finished_run_replaces_the_archived_one_and_an_unfinished_one_does_not(finished_root, tmp_path):
    root, _ = finished_root
    store = tmp_path / "paper_runs"
    archive.save(root, store, "paper")
    local = tmp_path / "session2"
    seed0, seed1 = (local / "reproduce" / "paper" / "rpr_mnist" / f"seed_{s}" for s in (0, 1))
    shutil.copytree(root / "reproduce" / "paper" / "rpr_mnist" / "seed_0", seed0)
    shutil.copytree(root / "reproduce" / "paper" / "rpr_mnist" / "seed_1", seed1)
    metrics = json.loads((seed0 / "metrics.json").read_text())
    jobs.begin(seed0, "new", ["seed=0"])
    write_metrics(seed0, metrics | {"M": metrics["M"] | {"test_accuracy": 0.123456}})
    jobs.finish(seed0)
    jobs.begin(seed1, "new", ["seed=1"])  # killed: running, its old files cleared
    view = tmp_path / "view"
    archived = archive.merge_profile(local, store, "paper", view, keep_unfinished=True)
    assert archived == 6  # 7 archived, seed 0 replaced by the local run
    read = lambda folder: json.loads((view / "reproduce" / "paper" / "rpr_mnist" / folder / "metrics.json").read_text())  # noqa: E731
    assert read("seed_0")["M"]["test_accuracy"] == 0.123456
    assert read("seed_1")["seed"] == 1  # the archived seed 1: the killed local attempt does not hide it
    assert jobs.finished(view / "reproduce" / "paper" / "rpr_mnist" / "seed_1")
    assert archive.save(local, store, "paper") == 7  # the archive takes the new seed 0, keeps the old seed 1
    assert (
        json.loads((store / "reproduce" / "paper" / "rpr_mnist" / "seed_0" / "metrics.json").read_text())["M"][
            "test_accuracy"
        ]
        == 0.123456
    )


def test_save_runs_needs_archive_and_profile(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        report_main(["--root", str(tmp_path), "--save-runs"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --save-runs needs --archive and --profile") and err.count("\n") == 1


def test_nothing_to_archive_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit):
        report_main(
            ["--root", str(tmp_path / "none"), "--archive", str(tmp_path / "a"), "--profile", "paper", "--save-runs"]
        )
    err = capsys.readouterr().err
    assert "no runs of profile 'paper'" in err and err.count("\n") == 1


def finished_job(folder: Path, seed: int, value: float) -> Path:
    (folder / ".hydra").mkdir(parents=True, exist_ok=True)
    (folder / ".hydra" / "config.yaml").write_text(f"seed: {seed}\n")
    jobs.begin(folder, f"id{seed}", [f"seed={seed}"])
    write_metrics(folder, {"pipeline": "rpr_inherent", "seed": seed, "value": value})
    (folder / "model.ckpt").write_bytes(b"w")
    jobs.finish(folder)
    return folder


def test_a_job_folder_inside_a_job_folder_is_archived_as_a_job_of_its_own(tmp_path):
    group = tmp_path / "outputs" / "reproduce" / "paper" / "g"
    child = finished_job(group / "sub", 1, 0.5)
    finished_job(group, 0, 0.25)  # the group's own job, written after the child (its marker lists the child's files)
    store = tmp_path / "paper_runs"
    assert archive.save(tmp_path / "outputs", store, "paper") == 2
    kept = archive.profile_dir(store, "paper") / "g"
    assert jobs.finished(kept) and jobs.finished(kept / "sub")
    assert "sub/metrics.json" in jobs.read_marker(kept)["left_out_of_archive"]  # the child's files are the child's
    # a new local run of the group's own job keeps the archived child
    later = tmp_path / "later"
    finished_job(later / "reproduce" / "paper" / "g", 0, 0.75)
    assert archive.save(later, store, "paper") == 2
    assert json.loads((kept / "metrics.json").read_text())["value"] == 0.75
    assert json.loads((kept / "sub" / "metrics.json").read_text())["value"] == 0.5 and child.is_dir()


def test_a_save_stopped_between_its_renames_is_put_back(finished_root, tmp_path):
    root, done = finished_root
    store = tmp_path / "paper_runs"
    archive.save(root, store, "paper")
    target = archive.profile_dir(store, "paper")
    target.rename(target.with_name(".paper.old"))  # as if killed after moving the old archive away
    assert archive.save(tmp_path / "nothing_new", store, "paper") == len(done)
    assert target.is_dir() and not target.with_name(".paper.old").exists()
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")]
