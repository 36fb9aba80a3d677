"""Typed configs: the group schemas (robustlab.configs.schema), the validator of each group and the
command line's pre-check. Bad input is one line before any work, without importing torch."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from conftest import compose_config
from robustlab.cli import CONF_DIR
from robustlab.configs import schema
from robustlab.configs.precheck import closest, jobs, precheck
from robustlab.configs.validate import creatable, validate
from robustlab.errors import RobustlabError

PRESETS = [p.stem for p in (Path(CONF_DIR) / "experiment").glob("*.yaml")]
GROUP_CHOICES = [
    f"{group}={p.stem}"
    for group in ("perturbation", "trainer", "data", "model")
    for p in (Path(CONF_DIR) / group).glob("*.yaml")
]

PROBE = """
import sys, time
start = time.perf_counter()
import robustlab.cli as cli
sys.argv = ["robustlab", *sys.argv[1:]]
try:
    cli.main()
except SystemExit as exit:
    heavy = sorted(m for m in ("torch", "pytorch_lightning", "lightning") if m in sys.modules)
    print(exit.code, round(time.perf_counter() - start, 3), ",".join(heavy) or "-")
"""


def probe(
    args: list[str], tmp_path: Path, output_root: Path | None = None, experiment: str = "rpr_mnist"
) -> tuple[int, float, str, list[str]]:
    """Run the real entry point on ``args``; its exit code, seconds to the error, heavy modules imported
    by then, and the non-empty lines of stderr."""
    env = {**os.environ, "ROBUSTLAB_OUTPUT": str(output_root or tmp_path / "out"), "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            PROBE,
            f"experiment={experiment}",
            "profile=quick",
            f"hydra.run.dir={tmp_path / 'run'}",
            *args,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=tmp_path,
    )
    code, seconds, heavy = proc.stdout.split()
    return int(code), float(seconds), heavy, [line for line in proc.stderr.splitlines() if line.strip()]


@pytest.mark.parametrize(
    "args,line",
    [
        (["seed=abc"], "error: seed must be an integer, got 'abc'"),
        (["profile.epochs=-1"], "error: profile.epochs must be a positive integer, got -1"),
        (
            ["rpr.maxsteps=10"],
            "error: unknown config key 'rpr.maxsteps' in rpr.maxsteps=10; did you mean rpr.max_steps? "
            "(a new key needs +rpr.maxsteps=10)",
        ),
        (
            ["perturbaton=pixels"],
            "error: unknown config group or key 'perturbaton' in perturbaton=pixels; did you mean perturbation?",
        ),
        (
            ["perturbation=gausian"],
            "error: unknown perturbation option 'gausian' in perturbation=gausian; the options are: "
            "blur, brightness, contrast, fog, gaussian, impulse_noise, motion_blur, pixels, rotation, salt_pepper, "
            "scale, shear, translation, uniform_linf; did you mean gaussian?",
        ),
        (
            ["hydra/launchr=joblib"],
            "error: unknown config group or key 'hydra/launchr' in hydra/launchr=joblib; did you mean hydra/launcher?",
        ),
        (["rpr.max_steps=abc"], "error: rpr.max_steps must be an integer, got 'abc' (in rpr.max_steps=abc)"),
        (
            ["perturbation=gaussian", "perturbation.sigma=0.1,-1", "-m"],
            "error: perturbation.sigma must be >= 0, got -1.0",
        ),
    ],
)
def test_bad_input_is_one_line_before_torch(tmp_path, args, line):
    code, seconds, heavy, stderr = probe(args, tmp_path)
    assert (code, stderr) == (2, [line])
    assert heavy == "-", f"imported {heavy} before the error"
    assert seconds < 10  # about 0.5 s on an idle core (see the README); generous for a loaded CI machine
    assert not (tmp_path / "run").exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "experiment,args,line",
    [
        ("rpr_inherent", ["inherent.least_fraction=0"], "error: inherent.least_fraction must be in (0, 1], got 0"),
        ("rpr_vs_exact", ["exact.bisection=0"], "error: exact.bisection must be a positive integer, got 0"),
        (
            "operating_point",
            ["operating_point.curves=[]"],
            "error: operating_point.curves must list at least one curve",
        ),
    ],
)
def test_pipeline_sections_fail_in_the_precheck(tmp_path, experiment, args, line):
    """The checks of the newer pipelines' own sections run in the pre-check too: one line, before torch."""
    code, seconds, heavy, stderr = probe(args, tmp_path, experiment=experiment)
    assert (code, stderr) == (2, [line])
    assert heavy == "-", f"imported {heavy} before the error"
    assert not (tmp_path / "run").exists() and not (tmp_path / "out").exists()


def test_an_output_root_that_cannot_be_made_is_one_line(tmp_path):
    (tmp_path / "a_file").write_text("")
    code, _, heavy, stderr = probe([], tmp_path, output_root=tmp_path / "a_file" / "out")
    assert code == 2 and heavy == "-"
    assert stderr == [
        f"error: paths.output_root={tmp_path / 'a_file' / 'out'} cannot be created: {tmp_path / 'a_file'} is a file, "
        "not a folder; point it (or ROBUSTLAB_OUTPUT) at a folder you can write"
    ]


def test_creatable_looks_without_making_anything(tmp_path):
    assert creatable(tmp_path / "new" / "deeper") is None
    assert not (tmp_path / "new").exists()
    (tmp_path / "f").write_text("")
    assert creatable(tmp_path / "f" / "x") == f"{tmp_path / 'f'} is a file, not a folder"


@pytest.mark.parametrize("profile", ["quick", "paper"])
@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_passes_the_precheck(tmp_path, monkeypatch, preset, profile):
    monkeypatch.setenv("ROBUSTLAB_OUTPUT", str(tmp_path))
    precheck([f"experiment={preset}", f"profile={profile}"], CONF_DIR)


def test_every_group_option_passes_the_precheck_and_fills_its_schema(tmp_path, monkeypatch):
    monkeypatch.setenv("ROBUSTLAB_OUTPUT", str(tmp_path))
    precheck(
        [
            "-m",
            "experiment=rpr_sweep",
            "perturbation=blur,gaussian,pixels,salt_pepper,uniform_linf",
            "trainer=cpu,gpu,ddp,ddp_cpu",
        ],
        CONF_DIR,
    )
    required = {"data=imagefolder": {"data.root"}}  # `???` in its YAML on purpose: the user's image folder
    for choice in GROUP_CHOICES:
        cfg = compose_config([choice])
        assert OmegaConf.missing_keys(cfg) == required.get(choice, set()), choice  # a schema field no YAML value fills


def test_the_schema_types_the_composed_config():
    cfg = compose_config(["experiment=rpr_mnist"])
    assert OmegaConf.get_type(cfg.rpr) is schema.RPR and OmegaConf.get_type(cfg.trainer) is schema.CPUTrainer
    assert OmegaConf.get_type(compose_config(["trainer=ddp"]).trainer) is schema.DDPTrainer
    assert OmegaConf.get_type(compose_config(["experiment=rpr_gan_augment"]).gan.model) is schema.DCGANModel
    # The YAML's key order survives (saved configs and run digests keep their bytes) ...
    assert list(cfg.rpr) == [
        "max_steps",
        "train_points",
        "test_points",
        "batch_size",
        "channels_last",
        "compile",
        "autocast",
        "min_block",
        "max_block",
        "progress",
        "balance",
        "control",
        "shard",
        "reuse_from",
        "perturbed_examples",
        "retrain",
        "train_until_balanced",
        "calibrate",
    ]
    # ... and the documented sweep value model.epsilon=0 stays the integer it was (epsilon is Any on purpose).
    assert compose_config(["experiment=linear_robust", "model.epsilon=0"]).model.epsilon == 0
    assert isinstance(compose_config(["experiment=linear_robust", "model.epsilon=0"]).model.epsilon, int)
    # Lightning's other Trainer arguments can still be added.
    assert compose_config(["+trainer.precision=32"]).trainer.precision == 32


def resolved(overrides: list[str]) -> dict:
    return OmegaConf.to_container(compose_config(overrides), resolve=True)


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["profile.seeds=0"], r"^profile\.seeds must be a positive integer, got 0$"),
        (["rpr.test_points=0"], r"^rpr\.test_points must be >= 1 or null \(all\), got 0$"),
        (["rpr.batch_size=big"], r"^rpr\.batch_size must be a positive integer or auto, got big$"),
        (["rpr.min_block=8", "rpr.max_block=4"], r"^rpr needs 1 <= min_block <= max_block, got 8 and 4$"),
        (["rpr.shard=4/4", "rpr.retrain=false"], r"^rpr\.shard=4/4: need 0 <= i < n"),
        (
            ["rpr.shard=0/4"],
            r"^rpr\.shard=0/4 measures RPR of M on a share of the test points only; set rpr\.retrain=false$",
        ),
        (
            ["rpr.balance.on_shortfall=some"],
            r"^rpr\.balance\.on_shortfall must be one of error, smallest, up_to, got 'some'$",
        ),
        (["rpr.autocast=fp8"], r"^rpr\.autocast must be one of null, bf16, fp16, got 'fp8'$"),
        (["data.val_fraction=1.0"], r"^data\.val_fraction must be in \[0, 1\), got 1\.0$"),
        (["data.download=maybe"], r"^data\.download must be one of auto, True, False, got 'maybe'$"),
        (["data=mnist_binary", "data.digits=[3,3]"], r"^data\.digits must be two different digits in 0\.\.9"),
        (["perturbation.count=most"], r"^perturbation\.count must be one of uniform, exact, got 'most'$"),
        (
            ["perturbation=blur", "perturbation.kernel_size=4"],
            r"^perturbation\.kernel_size must be odd and >= 1, got 4$",
        ),
        (["perturbation=salt_pepper", "perturbation.rate=2"], r"^perturbation\.rate must be in \[0, 1\], got 2\.0$"),
        (["model.lr=0"], r"^model\.lr must be > 0, got 0\.0$"),
        (["trainer.max_epochs=-1"], r"^trainer\.max_epochs must be a positive integer, got -1$"),
        (["threads=0"], r"^threads must be a positive integer or null"),
        (["seed=-1"], r"^seed must be an integer in 0\.\.2\*\*32-1, got -1$"),
        (
            ["experiment=dcgan_mnist", "model.latent=gauss"],
            r"^model\.latent must be one of uniform, normal, got 'gauss'$",
        ),
        (["experiment=dcgan_mnist", "model.semi_supervised=true", "model.conditional=true"], r"exclude each other"),
        (
            ["experiment=dcgan_mnist", "interpolation.steps=1"],
            r"^interpolation needs pairs >= 1 and steps >= 2, got 6 and 1$",
        ),
        (["experiment=cnn_attack", "attack.fgsm=false", "attack.pgd=null"], r"^no attack selected"),
        (["experiment=cnn_attack", "attack.epsilons.num=0"], r"^attack\.epsilons\.num must be an integer >= 1, got 0$"),
        (["experiment=cnn_attack", "attack.pgd.steps=x"], r"^attack\.pgd\.steps must be an integer, got 'x'$"),
        (
            ["experiment=linear_robust", "attack.misclassified_keep=0"],
            r"^attack\.misclassified_keep must be a positive integer, got 0$",
        ),
        (["experiment=rpr_gan_augment", "gan.epochs=0"], r"^gan\.epochs must be a positive integer, got 0$"),
        (
            ["experiment=rpr_inherent", "inherent.seed_offset=0"],
            r"^inherent\.seed_offset must be a non-zero integer, got 0$",
        ),
        (["experiment=rpr_vs_exact", "exact.eps_max=2"], r"^exact\.eps_max must be in \(0, 1\], got 2$"),
        (
            ["experiment=operating_point", "operating_point.curves.0.strengths=[3,2]"],
            r"^operating_point curve 'pixels_uniform_uniform': strengths must increase, got \[3, 2\]$",
        ),
        (
            ["experiment=rpr_gan_augment", "gan.model.latent_dim=0"],
            r"^gan\.model\.latent_dim must be a positive integer, got 0$",
        ),
    ],
)
def test_one_validator_per_group_names_the_key(tmp_path, monkeypatch, overrides, message):
    monkeypatch.setenv("ROBUSTLAB_OUTPUT", str(tmp_path))
    with pytest.raises(RobustlabError, match=message):
        validate(resolved(overrides))


def test_jobs_of_a_multirun():
    assert jobs(["a=1", "b=2"], multirun=False) == [["a=1", "b=2"]]
    assert jobs(["a=1,2", "b=x,y"], multirun=True) == [["a=1", "b=x"], ["a=1", "b=y"], ["a=2", "b=x"], ["a=2", "b=y"]]
    big = jobs(["a=" + ",".join(map(str, range(10))), "b=" + ",".join(map(str, range(10)))], multirun=True)
    assert len(big) == 19 and ["a=9", "b=0"] in big and ["a=0", "b=9"] in big  # each value once beyond 64 jobs


def test_closest():
    assert closest("rpr.maxsteps", ["rpr.max_steps", "rpr.max_block"]) == "; did you mean rpr.max_steps?"
    assert closest("zzz", ["rpr.max_steps"]) == ""


def test_hydra_commands_skip_the_checks(tmp_path, monkeypatch):
    monkeypatch.setenv("ROBUSTLAB_OUTPUT", str(tmp_path / "a_file" / "x"))
    (tmp_path / "a_file").write_text("")
    precheck(["--cfg", "job", "experiment=rpr_mnist", "profile.epochs=-1"], CONF_DIR)  # printing a config runs nothing
    precheck(["--help"], CONF_DIR)
    with pytest.raises(RobustlabError, match="unknown config key 'rpr.maxsteps'"):
        precheck(["--cfg", "job", "rpr.maxsteps=1"], CONF_DIR)  # Hydra would fail too: say it in one line


def test_the_precheck_is_fast(tmp_path, monkeypatch):
    """In-process (imports paid): composing and validating a job is a fraction of a second."""
    monkeypatch.setenv("ROBUSTLAB_OUTPUT", str(tmp_path))
    precheck(["experiment=rpr_mnist"], CONF_DIR)
    start = time.process_time()
    precheck(["experiment=rpr_mnist", "profile=quick"], CONF_DIR)
    assert time.process_time() - start < 2.0
