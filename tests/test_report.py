"""Bootstrap interval, claims vs results (verdicts, errors, partial stores) and the generated report."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from test_store import RPR_VALUES, config, rpr_metrics, runs_root, write_run  # noqa: F401  (runs_root: fixture)

from robustlab.errors import RobustlabError
from robustlab.report.claims import ci_status, claims_frame, load_claims, verdict
from robustlab.report.cli import main as report_main
from robustlab.runs.store import collect_runs
from robustlab.stats import Interval, bootstrap_mean

# ---------------------------------------------------------------------------------------------
# Bootstrap
# ---------------------------------------------------------------------------------------------


def test_equal_values_give_the_point_as_interval():
    interval = bootstrap_mean([0.25, 0.25, 0.25, 0.25])
    assert interval.mean == 0.25 and interval.low == pytest.approx(0.25) and interval.high == pytest.approx(0.25)
    assert interval.contains(0.25) and interval.n == 4 and not interval.degenerate


def test_zero_one_gives_the_whole_unit_interval():
    interval = bootstrap_mean([0.0, 1.0])
    assert (interval.mean, interval.low, interval.high) == (0.5, 0.0, 1.0)


def test_interval_matches_a_direct_numpy_bootstrap_with_the_same_seed():
    values = np.array([0.91, 0.87, 0.95, 0.89, 0.93])
    rng = np.random.default_rng(0)
    means = np.array([rng.choice(values, size=values.size, replace=True).mean() for _ in range(2000)])
    # rng.choice(values) draws its indices with rng.integers(0, n), so resampling row by row replays the bulk draw
    expected = np.percentile(means, [2.5, 97.5])
    interval = bootstrap_mean(values, resamples=2000, seed=0)
    assert (interval.low, interval.high) == pytest.approx(tuple(expected), abs=1e-12)
    assert interval.mean == pytest.approx(values.mean())
    assert bootstrap_mean(values) == bootstrap_mean(values)  # fixed seed: deterministic


def test_one_seed_is_a_degenerate_interval_flagged_as_such():
    interval = bootstrap_mean([0.7])
    assert (interval.low, interval.high, interval.n) == (0.7, 0.7, 1) and interval.degenerate
    assert str(interval) == "[0.7000, 0.7000] (n=1)"


@pytest.mark.parametrize("values, match", [([], "at least one value"), ([0.1, float("nan")], "finite values")])
def test_bootstrap_bad_input_is_one_line(values, match):
    with pytest.raises(RobustlabError, match=match):
        bootstrap_mean(values)


# ---------------------------------------------------------------------------------------------
# Verdicts
# ---------------------------------------------------------------------------------------------


def test_verdict_within_outside_not_comparable_not_run():
    interval = Interval(0.5, 0.4, 0.6, 3)
    assert ci_status(0.45, interval) == "within CI" and ci_status(0.7, interval) == "outside CI"
    assert ci_status(0.7, Interval(0.7, 0.7, 0.7, 1)) == "within CI (n=1, degenerate)"
    assert verdict("within CI", []) == "within CI"
    assert verdict("outside CI", []) == "outside CI"
    assert verdict("within CI", ["data.train_images"]) == "not comparable (data.train_images differs from the source)"
    assert verdict("not run", ["x"]) == "not run"


def small_claims() -> dict:
    return {
        "rpr_retrain": {
            "source": "paper",
            "run_group": "rpr_mnist",
            "protocol": "full MNIST (60k)",
            "protocol_check": {"data.train_images": 60000, "max_steps": 250},
            "claims": [
                {"what": "M test accuracy", "key": "M.test_accuracy", "value": 0.98, "where": "Sec. 2.3"},
                {"what": "M robust ratio (test)", "key": "M.test.robust_ratio", "value": 0.30, "where": "Fig. 3"},
            ],
        },
        "linear_robust": {
            "source": "blog",
            "run_group": "linear_robust",
            "protocol": "12,665 train images",
            "protocol_check": {"data.train_images": 12665, "attack.clip": False},
            "claims": [
                {
                    "what": "test accuracy (regular)",
                    "key": "test_accuracy",
                    "value": 0.999,
                    "where": "table",
                    "when": {"epsilon": 0.0},
                },
                {
                    "what": "test accuracy (eps 0.3)",
                    "key": "test_accuracy",
                    "value": 0.997,
                    "where": "table",
                    "when": {"epsilon": 0.3},
                },
            ],
        },
    }


def test_claims_frame_means_intervals_and_verdicts(runs_root):
    store, _ = collect_runs(runs_root)
    table = claims_frame(store, "paper", small_claims()).set_index("claim")
    accuracy = table.loc["M test accuracy"]
    assert accuracy["n"] == 3 and accuracy["seeds"] == "0, 1, 2"
    assert accuracy["mean"] == pytest.approx(np.mean([v[0] for v in RPR_VALUES.values()]))
    assert accuracy["ci_low"] <= 0.98 <= accuracy["ci_high"]
    assert (
        accuracy["ci_status"] == "within CI"
        and accuracy["verdict"] == "within CI"
        and accuracy["protocol"] == "as source"
    )
    ratio = table.loc["M robust ratio (test)"]
    assert ratio["ci_status"] == "outside CI" and ratio["verdict"] == "outside CI"
    linear = table.loc["test accuracy (regular)"]
    assert linear["n"] == 2 and linear["protocol"] == "data.train_images 2128 (source 12665)"
    assert linear["verdict"].startswith("not comparable (data.train_images") and linear["ci_status"] == "outside CI"
    assert table.loc["test accuracy (eps 0.3)", "verdict"] == "not run"  # no run with that epsilon: a row, not a crash


def test_profile_without_runs_renders_not_run_rows(runs_root):
    store, _ = collect_runs(runs_root)
    table = claims_frame(store, "quick", small_claims())
    assert set(table["verdict"]) == {"not run"} and set(table["n"]) == {0}


def test_unknown_claim_key_names_the_claim_and_the_run_group(runs_root):
    store, _ = collect_runs(runs_root)
    claims = small_claims()
    claims["rpr_retrain"]["claims"][0]["key"] = "M.test_acuracy"
    with pytest.raises(
        RobustlabError,
        match=r"claim 'M test accuracy': key 'M.test_acuracy' has no matching metric "
        r"in run group reproduce/paper/rpr_mnist",
    ) as error:
        claims_frame(store, "paper", claims)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "edit, match",
    [
        (
            lambda c: c["linear_robust"]["claims"][0].update(when={"epsilom": 0.0}),
            r"`when` key 'epsilom' has no matching metric in run group reproduce/paper/linear_robust",
        ),
        (
            lambda c: c["rpr_retrain"]["protocol_check"].update({"data.train_imgs": 1}),
            r"protocol_check key 'data.train_imgs' has no matching metric in run group reproduce/paper/rpr_mnist",
        ),
        (lambda c: c["rpr_retrain"].pop("run_group"), r"claims block 'rpr_retrain' names no run_group"),
        (lambda c: c["rpr_retrain"]["claims"][0].pop("value"), r"claims block 'rpr_retrain': claim .* lacks value"),
    ],
)
def test_bad_claims_are_one_line(runs_root, edit, match):
    store, _ = collect_runs(runs_root)
    claims = copy.deepcopy(small_claims())
    edit(claims)
    with pytest.raises(RobustlabError, match=match):
        claims_frame(store, "paper", claims)


def test_two_runs_of_one_seed_are_refused(runs_root):
    rpr = runs_root / "reproduce" / "paper" / "rpr_mnist"
    write_run(rpr / "seed_0_again", config("rpr_mnist", 0), rpr_metrics(0))
    store, _ = collect_runs(runs_root)
    with pytest.raises(RobustlabError, match="several runs of one seed"):
        claims_frame(store, "paper", small_claims())


def test_repo_claims_file_names_run_groups_and_protocol_keys():
    claims = load_claims()
    assert claims["rpr_retrain"]["run_group"] == "rpr_mnist" and claims["linear_robust"]["run_group"] == "linear_robust"
    assert claims["rpr_retrain"]["protocol_check"]["data.train_images"] == 60000
    assert claims["linear_robust"]["protocol_check"]["data.train_images"] == 12665
    assert claims["dcgan"]["claims"] == []  # the DCGAN source states no number


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def test_report_writes_tables_markdown_and_latex_with_the_numbers(runs_root, tmp_path, capsys):
    figures = tmp_path / "figures" / "paper"
    figures.mkdir(parents=True)
    for suffix in (".png", ".pdf"):
        (figures / f"fig3_robust_ratio_M{suffix}").write_bytes(b"x")
    out = tmp_path / "paper"
    argv = [
        "--profile",
        "paper",
        "--profile",
        "quick",
        "--root",
        str(runs_root),
        "--figures-root",
        str(tmp_path / "figures"),
        "--out",
        str(out),
    ]
    assert report_main(argv) == 0
    mean = f"{np.mean([v[0] for v in RPR_VALUES.values()]):.4f}"
    for profile in ("paper", "quick"):
        for suffix in (".csv", ".md", ".tex"):
            assert (out / "tables" / f"claims_{profile}{suffix}").is_file()
    md = (out / "tables" / "claims_paper.md").read_text()
    assert "| M test accuracy | Sec. 2.3 | 0.9885 | " + mean in md
    assert "not comparable (data.train_images differs from the source)" in md
    assert "not run" in md  # the real claims.yaml asks for eps 0.2 / 0.3, which these runs lack
    tex_table = (out / "tables" / "claims_paper.tex").read_text()
    assert mean in tex_table and r"\toprule" in tex_table and "M\\_R test accuracy" in tex_table
    reproduction = (out / "REPRODUCTION.md").read_text()
    assert "## Profile `paper`" in reproduction and "## Profile `quick`" in reproduction
    assert mean in reproduction and "0.9885" in reproduction
    assert "![RPR paper Fig. 3" in reproduction and "../figures/paper/fig3_robust_ratio_M.png" in reproduction
    assert "Missing from" in reproduction and "fig4_robust_per_class" in reproduction
    assert "rpr_mnist/seed_3" in reproduction  # the failed run is named, not averaged in
    assert "No figures found" in reproduction  # quick has none
    report = (out / "report.tex").read_text()
    assert r"\input{tables/claims_paper.tex}" in report and r"\input{tables/claims_quick.tex}" in report
    assert r"keepaspectratio]{../figures/paper/fig3_robust_ratio_M.pdf}" in report
    assert report.strip().endswith(r"\end{document}") and "placeholder" not in report.lower()
    assert "profile paper: 22 claims" in capsys.readouterr().out  # 17 + the 5 Fashion-MNIST rows of issue 12
    assert not list(out.rglob("*.tmp"))


def test_report_bad_profile_is_one_error_line(runs_root, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        report_main(["--profile", "../x", "--root", str(runs_root), "--out", str(tmp_path / "p")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: profile '../x' is not a plain name") and err.count("\n") == 1


def test_report_covers_every_profile_present_by_default(runs_root, tmp_path):
    from robustlab.report.cli import present_profiles

    assert present_profiles(runs_root)[0] == "paper"
    with pytest.raises(RobustlabError, match="no profile under"):
        present_profiles(tmp_path / "nothing")


def test_a_claim_is_judged_on_the_protocol_keys_it_depends_on():
    from robustlab.report.claims import claim_protocol

    block = {"protocol_check": {"data.train_images": 60000, "subset.per_class_taken": 1500}}
    assert claim_protocol(block, {"what": "M acc"}) == block["protocol_check"]
    assert claim_protocol(block, {"what": "M acc", "protocol_keys": ["data.train_images"]}) == {
        "data.train_images": 60000
    }
    with pytest.raises(
        RobustlabError, match=r"claim 'M acc': protocol_keys \['nope'\] are not in its block's protocol_check"
    ):
        claim_protocol(block, {"what": "M acc", "protocol_keys": ["nope"]})


# ---------------------------------------------------------------------------------------------
# Other measured results and the README block
# ---------------------------------------------------------------------------------------------

READINGS = {
    ("uniform", "uniform"): 0.90,
    ("uniform", "binary"): 0.84,
    ("exact", "uniform"): 0.86,
    ("exact", "binary"): 0.76,
}


def gan_augment_metrics() -> dict:
    model = lambda acc, ratio: {"test_accuracy": acc, "test": {"points": 500, "robust_ratio": ratio}}  # noqa: E731
    return {
        "pipeline": "rpr_gan_augment",
        "profile": "paper",
        "seed": 0,
        "data": {"train_images": 4000},
        "subset": {"subset_size": 3000},
        "gan": {"generated": 1000, "kept": 700, "kept_fraction": 0.7},
        "M": model(0.97, 0.91),
        "M_R": model(0.95, 0.92),
        "M_R_G": model(0.96, 0.93),
        "wall_time_s": 40.0,
    }


def dcgan_metrics(**extra) -> dict:
    return {
        "pipeline": "dcgan",
        "profile": "paper",
        "seed": 0,
        "wall_time_s": 20.0,
        "training": {"steps": 630, "epochs": 10, "images": 4000},
        "quality": {
            "frechet_distance": 119.88,
            "frechet_distance_real_vs_real": 22.32,
            "generated_images": 1000,
            "real_images": 1000,
            "generated_classes": [47, 28, 183, 134, 70, 145, 61, 94, 171, 67],
            "class_entropy": 0.94,
            "classes_covered": 10,
        },
    } | extra


@pytest.fixture
def measured_root(runs_root):
    """runs_root plus paper runs of rpr_readings, rpr_gan_augment, dcgan_mnist / dcgan_semi and a timings.json;
    rpr_sweep and cnn_attack are missing."""
    paper = runs_root / "reproduce" / "paper"
    (paper / "rpr_readings").mkdir()
    (paper / "rpr_readings" / "multirun.yaml").write_text("hydra: {}\n")
    for job, ((count, value), ratio) in enumerate(READINGS.items()):
        metrics = {
            "pipeline": "rpr_retrain",
            "seed": 0,
            "M": {"test": {"points": 2000, "robust_ratio": ratio}},
            "wall_time_s": 10.0,
        }
        write_run(
            paper / "rpr_readings" / str(job),
            config("rpr_sweep", 0, perturbation={"name": "pixels", "count": count, "value": value}),
            metrics,
        )
    write_run(paper / "rpr_gan_augment", config("rpr_gan_augment", 0), gan_augment_metrics())
    write_run(paper / "dcgan_mnist", config("dcgan_mnist", 0), dcgan_metrics())
    semi = {"labelled_images": 100, "gan_discriminator_test_accuracy": 0.7687, "labels_only_test_accuracy": 0.7533}
    write_run(paper / "dcgan_semi", config("dcgan_mnist", 0), dcgan_metrics(semi_supervised=semi))
    (paper / "timings.json").write_text('{"rpr_readings": 55.5, "dcgan_mnist": 30.0}')
    return runs_root


def test_measured_tables_hold_the_runs_numbers(measured_root):
    from robustlab.report.tables import measured_tables

    tables = {t.title: t for t in measured_tables(measured_root, "paper")}
    readings = tables["RPR: readings of the pixel scheme"]
    assert readings.rows == [[c, v, f"{r:.4f}", "2000"] for (c, v), r in READINGS.items()]
    augment = tables["RPR + GAN augmentation: M, M_R, M_R+G"]
    assert augment.rows == [
        ["0", "M", "4000", "0.9700", "0.9100", "500"],
        ["0", "M_R", "3000", "0.9500", "0.9200", "500"],
        ["0", "M_R+G", "3700", "0.9600", "0.9300", "500"],
    ]
    assert "700 of 1000 generated images kept" in augment.caption
    dcgan = tables["DCGAN: sample quality"]
    assert dcgan.header == ["quantity", "dcgan_mnist (seed 0)", "dcgan_semi (seed 0)"]
    cells = {row[0]: row[1:] for row in dcgan.rows}
    assert cells["Fréchet distance, generated vs real"] == ["119.9", "119.9"]
    assert cells["Fréchet distance, real vs real (floor)"] == ["22.3", "22.3"]
    assert cells["predicted classes of generated images (0-9)"][0] == "47, 28, 183, 134, 70, 145, 61, 94, 171, 67"
    assert cells["training steps"] == ["630", "630"]
    assert cells["test accuracy, GAN discriminator"] == ["-", "0.7687"]  # only the semi-supervised run has it
    assert "predicted classes of real images (0-9)" not in cells  # no run logged it: no empty row
    assert "not the Inception FID" in dcgan.caption
    wall = {row[0]: row[1:] for row in tables["Wall time per run group"].rows}
    assert wall["rpr_readings"] == ["4", "40.0", "55.5"] and wall["rpr_gan_augment"] == ["1", "40.0", "-"]
    assert wall["total"][2] == "85.5"
    assert (
        tables["RPR: perturbation schemes over seeds"].note
        == "No finished run in `reproduce/paper/rpr_sweep`; table skipped."
    )
    assert tables["CNN under FGSM and PGD"].note.startswith("No finished run in `reproduce/paper/cnn_attack`")


def test_report_shows_the_measured_results_and_notes_missing_groups(measured_root, tmp_path):
    out = tmp_path / "paper"
    assert (
        report_main(
            [
                "--profile",
                "paper",
                "--profile",
                "quick",
                "--root",
                str(measured_root),
                "--figures-root",
                str(tmp_path / "figures"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    reproduction = (out / "REPRODUCTION.md").read_text()
    paper_part, quick_part = reproduction.split("## Profile `quick`")
    assert "### Other measured results" in paper_part and "### Other measured results" in quick_part
    assert "| uniform | binary | 0.8400 | 2000 |" in paper_part
    assert "| 0 | M_R+G | 3700 | 0.9600 | 0.9300 | 500 |" in paper_part
    assert "| Fréchet distance, generated vs real | 119.9 | 119.9 |" in paper_part
    assert paper_part.count("table skipped") == 2  # rpr_sweep, cnn_attack
    assert "No finished run in `reproduce/quick/dcgan_mnist`; table skipped." in quick_part
    report = (out / "report.tex").read_text()
    assert r"\subsection{Other measured results}" in report and "M\\_R+G & 3700 & 0.9600" in report
    assert r"\paragraph{CNN under FGSM and PGD} No finished run in reproduce/paper/cnn\_attack" in report


README_TEXT = (
    "# Project\n\nintro\n\n<!-- generated:claims:start -->\nold table\n<!-- generated:claims:end -->\n\nafter\n"
)


def test_readme_block_is_replaced_between_the_markers_idempotently(runs_root, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(README_TEXT)
    argv = [
        "--profile",
        "paper",
        "--root",
        str(runs_root),
        "--figures-root",
        str(tmp_path / "f"),
        "--out",
        str(tmp_path / "p"),
        "--readme",
        str(readme),
    ]
    assert report_main(argv) == 0
    first = readme.read_text()
    assert first.startswith("# Project\n\nintro\n\n<!-- generated:claims:start -->\n") and first.endswith(
        "<!-- generated:claims:end -->\n\nafter\n"
    )
    assert "old table" not in first
    block = first.split("<!-- generated:claims:start -->")[1].split("<!-- generated:claims:end -->")[0]
    mean = np.mean([v[0] for v in RPR_VALUES.values()])
    assert "| claim | claimed | reproduced mean [95% CI] | n | verdict |" in block
    assert f"| M test accuracy | 0.9885 | {mean:.4f} [" in block
    assert f"generated by `make paper` from the runs under {runs_root.as_posix()}/reproduce/paper/" in block
    assert report_main(argv) == 0
    assert readme.read_text() == first
    assert not list(tmp_path.glob(".README.md.*"))


def test_readme_without_markers_is_one_error_line(runs_root, tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("# Project\n<!-- generated:claims:start -->\n")
    out = tmp_path / "p"
    with pytest.raises(SystemExit) as exit_:
        report_main(["--profile", "paper", "--root", str(runs_root), "--out", str(out), "--readme", str(readme)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {readme}: needs the marker lines")
    assert "<!-- generated:claims:start -->" in err and "<!-- generated:claims:end -->" in err
    assert readme.read_text() == "# Project\n<!-- generated:claims:start -->\n" and not out.exists()  # nothing written


def test_a_report_from_quick_runs_alone_keeps_the_paper_sections_byte_identical(runs_root, tmp_path):
    """A reviewer's `make paper` after `make reproduce PROFILE=quick`, with the paper runs not on the
    machine: README, REPRODUCTION.md and report.tex keep the paper profile's sections as they were."""
    import shutil

    from robustlab.report.sections import LATEX, MARKDOWN, README, split

    quick = runs_root / "reproduce" / "quick" / "rpr_mnist"
    quick.mkdir(parents=True)
    (quick / "multirun.yaml").write_text("hydra: {}\n")
    for seed in (0, 1):  # quick-profile runs with other numbers than the paper ones
        metrics = rpr_metrics(seed, train_images=2000) | {"profile": "quick"}
        metrics["M"] = metrics["M"] | {"test_accuracy": 0.5 + seed / 100}
        write_run(quick / f"seed_{seed}", config("rpr_mnist", seed), metrics)
    readme, out = tmp_path / "README.md", tmp_path / "paper"
    readme.write_text(README_TEXT)
    common = ["--figures-root", str(tmp_path / "figures"), "--out", str(out), "--readme", str(readme)]
    assert report_main(["--root", str(runs_root), *common]) == 0  # both profiles, as committed
    before = {p: p.read_text() for p in (readme, out / "REPRODUCTION.md", out / "report.tex")}
    paper_table = (out / "tables" / "claims_paper.md").read_bytes()

    quick_only = tmp_path / "fresh_clone_outputs"
    shutil.copytree(runs_root / "reproduce" / "quick", quick_only / "reproduce" / "quick")
    for seed in (0, 1):  # the quick numbers changed since the committed report
        path = quick_only / "reproduce" / "quick" / "rpr_mnist" / f"seed_{seed}" / "metrics.json"
        path.write_text(path.read_text().replace('"test_accuracy": 0.5', '"test_accuracy": 0.6'))
    assert report_main(["--root", str(quick_only), *common]) == 0
    block = lambda text: text.split("<!-- generated:claims:start -->\n")[1].split("<!-- generated:claims:end -->")[0]  # noqa: E731
    for path, layout, view in (
        (readme, README, block),
        (out / "REPRODUCTION.md", MARKDOWN, str),
        (out / "report.tex", LATEX, str),
    ):
        old, new = split(view(before[path]), layout)[1], split(view(path.read_text()), layout)[1]
        assert list(new) == ["paper", "quick"], path
        assert new["paper"].rstrip() == old["paper"].rstrip() and new["paper"] == old["paper"], path  # byte for byte
        if layout is not LATEX:  # the reported profile is updated with its new numbers (LaTeX \inputs its table)
            assert new["quick"] != old["quick"] and "0.6" in new["quick"], path
    assert (out / "tables" / "claims_paper.md").read_bytes() == paper_table
    assert "0.6" in (out / "tables" / "claims_quick.tex").read_text()
