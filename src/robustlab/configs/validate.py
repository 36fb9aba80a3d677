"""Value ranges of a composed config: one function per config group, run before any work.

Types and key names are the schema's job (robustlab.configs.schema, enforced by Hydra while it composes);
what a type cannot say (a count >= 1, a fraction in [0, 1), one of a few words, an output folder that
can be made) is said here, once, in the words of the config keys. The checks inside the pipelines and
the measure stay as a second line of defence for callers that build objects without the command line.
Everything here works on the resolved plain config (dicts and lists) and imports neither torch nor
Lightning, so a bad value fails in well under a second.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from robustlab.configs import schema
from robustlab.errors import RobustlabError, require

AUTOCAST = (None, "bf16", "fp16")  # robustness/fastpath.py AUTOCAST_DTYPES, kept free of torch here
SHARD = re.compile(r"(\d+)/(\d+)")


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return (is_int(value) or isinstance(value, float)) and math.isfinite(value)


def positive(key: str, value: Any) -> None:
    require(is_int(value) and value >= 1, f"{key} must be a positive integer, got {value}")


def count_or_null(key: str, value: Any, what: str = "all") -> None:
    require(value is None or (is_int(value) and value >= 1), f"{key} must be >= 1 or null ({what}), got {value}")


def one_of(key: str, value: Any, choices: tuple) -> None:
    shown = ", ".join("null" if c is None else str(c) for c in choices)
    require(value in choices, f"{key} must be one of {shown}, got '{value}'")


def check_root(cfg: dict) -> None:
    require(
        is_int(cfg.get("seed")) and 0 <= cfg["seed"] < 2**32,
        f"seed must be an integer in 0..2**32-1, got {cfg.get('seed')!r}",
    )
    threads = cfg.get("threads")
    require(
        threads is None or (is_int(threads) and threads >= 1),
        f"threads must be a positive integer or null (torch's default), got {threads}",
    )


def check_profile(p: dict) -> None:
    positive("profile.seeds", p["seeds"])
    for key in (
        "epochs",
        "max_steps",
        "linear_epochs",
        "gan_epochs",
        "gan_batch_size",
        "gan_g_width",
        "gan_d_width",
        "gan_sample_every_n_steps",
        "gan_samples_per_class",
        "gan_augment_epochs",
    ):
        positive(f"profile.{key}", p[key])  # epochs=-1 would read as "no limit" to Lightning: train forever
    require(
        is_int(p["gan_quality_samples"]) and p["gan_quality_samples"] >= 2,
        f"profile.gan_quality_samples must be an integer >= 2, got {p['gan_quality_samples']}",
    )
    for key in (
        "train_subset",
        "rpr_train_points",
        "rpr_test_points",
        "linear_train_subset",
        "cnn_attack_points",
        "gan_train_subset",
    ):
        count_or_null(f"profile.{key}", p[key])


def creatable(folder: Path) -> str | None:
    """Why ``folder`` cannot be made (or written), or None; looks only, makes nothing."""
    folder = folder.expanduser().absolute()
    ancestor = folder
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"{ancestor} is a file, not a folder"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f"{ancestor} is not writable"
    return None


def check_folder(key: str, folder: str) -> None:
    problem = creatable(Path(folder))
    require(
        problem is None,
        f"{key}={folder} cannot be created: {problem}; point it (or ROBUSTLAB_OUTPUT) at a folder you can write",
    )


def check_paths(paths: dict) -> None:
    check_folder("paths.output_root", paths["output_root"])


def check_data(d: dict) -> None:
    one_of("data.download", d["download"], ("auto", True, False))
    count_or_null("data.train_subset", d["train_subset"], "every training image")
    require(
        is_number(d["val_fraction"]) and 0.0 <= d["val_fraction"] < 1.0,
        f"data.val_fraction must be in [0, 1), got {d['val_fraction']}",
    )
    require(
        is_int(d["batch_size"]) and d["batch_size"] >= 1 and is_int(d["eval_batch_size"]) and d["eval_batch_size"] >= 1,
        "data.batch_size and data.eval_batch_size must be >= 1",
    )
    require(
        is_int(d["num_workers"]) and d["num_workers"] >= 0,
        f"data.num_workers must be an integer >= 0, got {d['num_workers']}",
    )
    if "digits" in d:
        digits = d["digits"]
        require(
            len(digits) == 2 and digits[0] != digits[1] and all(0 <= x <= 9 for x in digits),
            f"data.digits must be two different digits in 0..9 (first -> label -1, second -> +1), "
            f"e.g. [0, 1]; got {digits}",
        )


def check_simple_cnn(m: dict, key: str) -> None:
    require(
        len(m["channels"]) == 2 and min(m["channels"]) >= 1,
        f"{key}.channels must be two positive widths, got {m['channels']}",
    )
    positive(f"{key}.kernel_size", m["kernel_size"])
    positive(f"{key}.pool", m["pool"])
    require(m["lr"] > 0, f"{key}.lr must be > 0, got {m['lr']}")


def check_linear_hinge(m: dict, key: str) -> None:
    require(is_number(m["epsilon"]) and m["epsilon"] >= 0, f"{key}.epsilon must be a number >= 0, got {m['epsilon']}")
    require(m["lr"] is None or m["lr"] > 0, f"{key}.lr must be > 0 or null (the blog's), got {m['lr']}")
    one_of(f"{key}.reduction", m["reduction"], (None, "mean", "sum"))


def check_dcgan(m: dict, key: str) -> None:
    for name in (
        "latent_dim",
        "g_width",
        "d_width",
        "mbd_kernels",
        "mbd_kernel_dim",
        "sample_every_n_steps",
        "sample_grid",
    ):
        positive(f"{key}.{name}", m[name])
    one_of(f"{key}.latent", m["latent"], ("uniform", "normal"))
    require(
        m["lr"] > 0 and len(m["betas"]) == 2 and all(0 <= b < 1 for b in m["betas"]),
        f"{key}.lr must be > 0 and {key}.betas two numbers in [0, 1), got {m['lr']} and {m['betas']}",
    )
    require(
        not (m["semi_supervised"] and m["conditional"]),
        f"{key}.semi_supervised and {key}.conditional exclude each other: set one of them to false",
    )
    if m["semi_supervised"]:
        positive(f"{key}.labels_per_class", m["labels_per_class"])


MODELS: dict[str, Callable[[dict, str], None]] = {
    "robustlab.models.SimpleCNN": check_simple_cnn,
    "robustlab.models.simple_cnn.SimpleCNN": check_simple_cnn,
    "robustlab.models.linear_hinge.LinearHinge": check_linear_hinge,
    "robustlab.models.dcgan.DCGAN": check_dcgan,
}


def check_model(m: dict, key: str = "model") -> None:
    check = MODELS.get(m.get("_target_"))
    if check is not None:  # a model of the user's own (_target_) is checked by its own constructor
        check(m, key)


def check_perturbation(p: dict) -> None:
    name = p.get("name")
    if name == "pixels":
        require(p["k"] is None or p["k"] >= 1, f"perturbation.k must be >= 1 (got {p['k']}); use null for sqrt(pixels)")
        one_of("perturbation.count", p["count"], ("uniform", "exact"))
        one_of("perturbation.value", p["value"], ("uniform", "binary"))
    elif name == "gaussian":
        require(p["sigma"] >= 0, f"perturbation.sigma must be >= 0, got {p['sigma']}")
    elif name == "salt_pepper":
        require(0 <= p["rate"] <= 1, f"perturbation.rate must be in [0, 1], got {p['rate']}")
    elif name == "uniform_linf":
        require(p["epsilon"] >= 0, f"perturbation.epsilon must be >= 0, got {p['epsilon']}")
    elif name == "blur":
        require(
            p["kernel_size"] >= 1 and p["kernel_size"] % 2 == 1,
            f"perturbation.kernel_size must be odd and >= 1, got {p['kernel_size']}",
        )
        require(
            0 < p["sigma_min"] <= p["sigma_max"],
            f"perturbation needs 0 < sigma_min <= sigma_max, got {p['sigma_min']}, {p['sigma_max']}",
        )


def check_rpr(r: dict) -> None:
    positive("rpr.max_steps", r["max_steps"])
    count_or_null("rpr.train_points", r["train_points"])
    count_or_null("rpr.test_points", r["test_points"])
    require(
        r["batch_size"] == "auto" or (is_int(r["batch_size"]) and r["batch_size"] >= 1),
        f"rpr.batch_size must be a positive integer or auto, got {r['batch_size']}",
    )
    one_of("rpr.autocast", r["autocast"], AUTOCAST)
    require(
        is_int(r["min_block"]) and is_int(r["max_block"]) and 1 <= r["min_block"] <= r["max_block"],
        f"rpr needs 1 <= min_block <= max_block, got {r['min_block']} and {r['max_block']}",
    )
    positive("rpr.balance.per_class", r["balance"]["per_class"])
    one_of("rpr.balance.on_shortfall", r["balance"]["on_shortfall"], ("error", "smallest", "up_to"))
    require(
        is_int(r["train_until_balanced"]) and r["train_until_balanced"] >= 0,
        "rpr.train_until_balanced must be 0 (measure every training point) or a positive chunk size, got "
        f"{r['train_until_balanced']}",
    )
    require(
        not (r["train_until_balanced"] and r["reuse_from"]),
        "rpr.train_until_balanced measures the training points chunk by chunk; it cannot take them from "
        "rpr.reuse_from: set one of them",
    )
    if r["shard"] is not None:
        match = SHARD.fullmatch(str(r["shard"]))
        require(match is not None, f"rpr.shard must look like i/n (e.g. 0/4) or be null, got '{r['shard']}'")
        require(
            int(match.group(1)) < int(match.group(2)),
            f"rpr.shard={r['shard']}: need 0 <= i < n (shards are numbered 0..n-1)",
        )
        require(
            not r["retrain"],
            f"rpr.shard={r['shard']} measures RPR of M on a share of the test points only; set rpr.retrain=false",
        )


def check_trainer(t: dict) -> None:
    positive("trainer.max_epochs", t["max_epochs"])  # Lightning reads -1 as "no limit"
    positive("trainer.log_every_n_steps", t["log_every_n_steps"])
    if is_int(t["devices"]):
        positive("trainer.devices", t["devices"])
    if "num_nodes" in t:
        positive("trainer.num_nodes", t["num_nodes"])


def check_grid(key: str, spec: Any) -> None:
    """An epsilon grid: {start, stop, num} or a list of radii >= 0 (robustness/attacks.py reads both)."""
    if isinstance(spec, list):
        require(len(spec) > 0 and all(is_number(e) and e >= 0 for e in spec), f"{key} must list radii >= 0, got {spec}")
        return
    require(
        isinstance(spec, dict) and {"start", "stop", "num"} <= set(spec),
        f"{key} needs start, stop and num (or a list of radii), got {spec}",
    )
    require(is_int(spec["num"]) and spec["num"] >= 1, f"{key}.num must be an integer >= 1, got {spec['num']}")
    require(
        is_number(spec["start"]) and spec["start"] >= 0 and is_number(spec["stop"]) and spec["stop"] >= spec["start"],
        f"{key} needs 0 <= start <= stop, got start {spec['start']} and stop {spec['stop']}",
    )


def check_attack(a: dict) -> None:
    check_grid("attack.epsilons", a["epsilons"])
    positive("attack.batch_size", a["batch_size"])
    if "misclassified_eps" in a:
        check_grid("attack.misclassified_eps", a["misclassified_eps"])
        positive("attack.misclassified_keep", a["misclassified_keep"])
    if "test_points" in a:
        count_or_null("attack.test_points", a["test_points"], "the whole test set")
        one_of("attack.autocast", a["autocast"], AUTOCAST)
        require(a["fgsm"] or a["pgd"] is not None, "no attack selected; set attack.fgsm=true or give attack.pgd")
    if a.get("pgd") is not None:
        positive("attack.pgd.steps", a["pgd"]["steps"])
        step = a["pgd"]["step_size"]
        require(step is None or step >= 0, f"attack.pgd.step_size must be >= 0 or null (2.5 eps / steps), got {step}")


def check_inherent(i: dict) -> None:
    """experiment=rpr_inherent (the pipeline calls it too, for callers without the command line)."""
    require(
        isinstance(i["architectures"], dict) and len(i["architectures"]) >= 2,
        "inherent.architectures must name at least two model configs (the first is the reference)",
    )
    require(
        isinstance(i["operating_points"], dict) and len(i["operating_points"]) >= 1,
        "inherent.operating_points must name at least one perturbation config",
    )
    require(
        isinstance(i["seed_offset"], int) and i["seed_offset"] != 0,
        f"inherent.seed_offset must be a non-zero integer, got {i['seed_offset']}",
    )
    require(
        isinstance(i["retest_offset"], int) and i["retest_offset"] != 0,
        f"inherent.retest_offset must be a non-zero integer, got {i['retest_offset']}",
    )
    fraction = i["least_fraction"]
    require(
        isinstance(fraction, int | float) and 0 < fraction <= 1,
        f"inherent.least_fraction must be in (0, 1], got {fraction}",
    )
    require(
        isinstance(i["baseline_draws"], int) and i["baseline_draws"] >= 1,
        f"inherent.baseline_draws must be a positive integer, got {i['baseline_draws']}",
    )


def check_exact(e: dict) -> None:
    """experiment=rpr_vs_exact (the pipeline calls it too); the data config's class is checked where it is built."""
    radii = e["rpr_epsilons"]
    numbers = isinstance(radii, list) and all(isinstance(v, int | float) for v in radii)
    radii = [float(v) for v in radii] if numbers else radii
    require(
        numbers and len(radii) >= 1 and all(0 < v <= 1 for v in radii),
        f"exact.rpr_epsilons must be values in (0, 1], got {radii}",
    )
    require(
        isinstance(e["eps_max"], int | float) and 0 < e["eps_max"] <= 1,
        f"exact.eps_max must be in (0, 1], got {e['eps_max']}",
    )
    require(
        isinstance(e["bisection"], int) and e["bisection"] >= 1,
        f"exact.bisection must be a positive integer, got {e['bisection']}",
    )
    require(
        isinstance(e["pgd_steps"], int) and e["pgd_steps"] >= 1,
        f"exact.pgd_steps must be a positive integer, got {e['pgd_steps']}",
    )


def check_operating_point(o: dict) -> None:
    """experiment=operating_point (the pipeline calls it too); each scheme's values are checked when it is built."""
    curves = o["curves"]
    require(isinstance(curves, list) and curves, "operating_point.curves must list at least one curve")
    for curve in curves:
        strengths = list(curve["strengths"])
        require(
            strengths == sorted(set(strengths)),
            f"operating_point curve '{curve['name']}': strengths must increase, got {strengths}",
        )


def check_sections(cfg: dict) -> None:
    """The top-level sections of the run's pipeline (conf/experiment/<preset>.yaml sets them)."""
    if "checkpoints" in cfg:
        require(
            isinstance(cfg["checkpoints"], dict) and len(cfg["checkpoints"]) > 0,
            "checkpoints must map model names to .ckpt files, e.g. checkpoints.M=path/to/M.ckpt",
        )
    if "attack" in cfg:
        check_attack(cfg["attack"])
    if "interpolation" in cfg:
        i = cfg["interpolation"]
        require(
            is_int(i["pairs"]) and i["pairs"] >= 1 and is_int(i["steps"]) and i["steps"] >= 2,
            f"interpolation needs pairs >= 1 and steps >= 2, got {i['pairs']} and {i['steps']}",
        )
    if "quality" in cfg:
        q = cfg["quality"]
        require(
            is_int(q["samples"]) and q["samples"] >= 2, f"quality.samples must be an integer >= 2, got {q['samples']}"
        )
        positive("quality.batch_size", q["batch_size"])
    if "gan" in cfg:
        for key in ("epochs", "batch_size", "samples_per_class"):
            positive(f"gan.{key}", cfg["gan"][key])
        if isinstance(cfg["gan"].get("model"), dict):
            check_model(cfg["gan"]["model"], "gan.model")
    if "inherent" in cfg:
        check_inherent(cfg["inherent"])
    if "exact" in cfg:
        check_exact(cfg["exact"])
    if "operating_point" in cfg:
        check_operating_point(cfg["operating_point"])


def typed(key: str, node_type: Any, value: Any) -> None:
    """The known keys of ``value`` against a schema dataclass (other node types: nothing to check here).

    The root and the experiment sections are open (a preset may add a section, the command line a key
    with +key=...); a misspelt key on the command line is Hydra's "Could not override" error already.
    """
    if not (hasattr(node_type, "__dataclass_fields__") and isinstance(value, dict)):
        return
    known = {k: v for k, v in value.items() if k in node_type.__dataclass_fields__}
    try:
        OmegaConf.merge(OmegaConf.structured(node_type), known)
    except OmegaConfBaseException as error:
        raise RobustlabError(type_message(key, error)) from None


def type_message(prefix: str, error: OmegaConfBaseException) -> str:
    """OmegaConf's multi-line ValidationError as "<key> must be <type>, got <value>"."""
    text = str(error)
    full_key = getattr(error, "full_key", None) or ""
    key = ".".join(k for k in (prefix, full_key) if k)
    match = re.search(r"Value '(.*)' of type '\w+' could not be converted to (\w+)", text)
    if match:
        wanted = {"Integer": "an integer", "Float": "a number", "Boolean": "true or false", "String": "a string"}
        return f"{key} must be {wanted.get(match.group(2), match.group(2))}, got '{match.group(1)}'"
    if "is not Optional" in text or "Non optional" in text:
        return f"{key} cannot be null"
    return f"{key}: {text.splitlines()[0]}"


def check_types(cfg: dict) -> None:
    typed("", schema.Root, cfg)
    for section, node_type in schema.PIPELINE_SECTIONS.get(cfg.get("pipeline"), {}).items():
        if section in cfg:
            typed(section, node_type, cfg[section])


def validate(cfg: dict) -> None:
    """Every check of the composed, resolved config; the first problem raises one RobustlabError line."""
    check_types(cfg)
    if "profile" in cfg:  # first: its values feed the other groups (trainer.max_epochs: ${profile.epochs})
        check_profile(cfg["profile"])
    check_root(cfg)
    groups: dict[str, Callable[[dict], None]] = {
        "paths": check_paths,
        "data": check_data,
        "model": check_model,
        "perturbation": check_perturbation,
        "rpr": check_rpr,
        "trainer": check_trainer,
    }
    for group, check in groups.items():
        if isinstance(cfg.get(group), dict):
            check(cfg[group])
    check_sections(cfg)
