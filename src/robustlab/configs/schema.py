"""The schema of every config group: one dataclass per group option, registered in Hydra's ConfigStore.

Each YAML file under conf/<group>/ starts its defaults list with ``/schema/<group>/<option>@_here_``,
so Hydra merges the YAML onto the dataclass: a value of the wrong type (``rpr.max_steps=abc``) or a
key the schema lacks fails while the config is composed, in every job of a multirun, before any work.
The YAML stays the user interface (values and their comments live there); a dataclass only says which
keys a group has and their types. Fields keep the YAML's order, so the composed config (and so every
saved config and digest) has its keys in the same order as before there was a schema. A field has no
default on purpose (MISSING): the YAML gives every value.

Adding a key to a YAML file means adding the field here too; the composition error names this file.
Value ranges are not here but in robustlab.configs.validate (one function per group).

Root keys (seed, threads, ...) and the sections an experiment preset adds at the top level (attack,
quality, gan, ...) are checked by the validator against the dataclasses at the end of this module:
a structured root config would add every optional section (as null) to every run's config.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

SCHEMA_GROUP = "schema"  # ConfigStore group of the schemas: schema/<group>/<option>; not a group users pick


@dataclass
class Paths:
    data_root: str = MISSING
    output_root: str = MISSING


@dataclass
class VisionData:
    _target_: str = MISSING
    name: str = MISSING
    root: str = MISSING
    download: Any = MISSING  # auto | true | false (checked by the validator)
    train_subset: int | None = MISSING
    val_fraction: float = MISSING
    batch_size: int = MISSING
    eval_batch_size: int = MISSING
    num_workers: int = MISSING
    seed: int = MISSING


@dataclass
class BinaryData:
    _target_: str = MISSING
    _convert_: str = MISSING
    name: str = MISSING
    digits: list[int] = MISSING
    root: str = MISSING
    download: Any = MISSING
    train_subset: int | None = MISSING
    val_fraction: float = MISSING
    batch_size: int = MISSING
    eval_batch_size: int = MISSING
    num_workers: int = MISSING
    seed: int = MISSING


@dataclass
class SimpleCNNModel:
    _target_: str = MISSING
    _convert_: str = MISSING
    channels: list[int] = MISSING
    kernel_size: int = MISSING
    pool: int = MISSING
    lr: float = MISSING


@dataclass
class LinearHingeModel:
    _target_: str = MISSING
    _convert_: str = MISSING
    # Any, not float: a float field would turn the documented sweep value model.epsilon=0 into 0.0 and
    # so change the saved config of existing runs; the validator checks it is a number >= 0.
    epsilon: Any = MISSING
    lr: float | None = MISSING
    reduction: str | None = MISSING


@dataclass
class DCGANModel:
    _target_: str = MISSING
    _convert_: str = MISSING
    latent_dim: int = MISSING
    latent: str = MISSING
    g_width: int = MISSING
    d_width: int = MISSING
    lr: float = MISSING
    betas: list[float] = MISSING
    minibatch_discrimination: bool = MISSING
    mbd_kernels: int = MISSING
    mbd_kernel_dim: int = MISSING
    semi_supervised: bool = MISSING
    labels_per_class: int = MISSING
    feature_matching: bool = MISSING
    conditional: bool = MISSING
    sample_every_n_steps: int = MISSING
    sample_grid: int = MISSING
    seed: int = MISSING


@dataclass
class PixelsPerturbation:
    _target_: str = MISSING
    name: str = MISSING
    k: int | None = MISSING
    count: str = MISSING
    value: str = MISSING


@dataclass
class GaussianPerturbation:
    _target_: str = MISSING
    name: str = MISSING
    sigma: float = MISSING


@dataclass
class SaltPepperPerturbation:
    _target_: str = MISSING
    name: str = MISSING
    rate: float = MISSING


@dataclass
class UniformLinfPerturbation:
    _target_: str = MISSING
    name: str = MISSING
    epsilon: float = MISSING


@dataclass
class BlurPerturbation:
    _target_: str = MISSING
    name: str = MISSING
    kernel_size: int = MISSING
    sigma_min: float = MISSING
    sigma_max: float = MISSING


@dataclass
class Balance:
    per_class: int = MISSING
    on_shortfall: str = MISSING
    min_per_class: int = MISSING


@dataclass
class Calibrate:
    source: str | None = MISSING
    split: str = MISSING
    target: float | None = MISSING
    curve: str | None = MISSING


@dataclass
class RPR:
    max_steps: int = MISSING
    train_points: int | None = MISSING
    test_points: int | None = MISSING
    batch_size: Any = MISSING  # a positive integer or auto
    channels_last: bool = MISSING
    compile: bool = MISSING
    autocast: str | None = MISSING
    min_block: int = MISSING
    max_block: int = MISSING
    progress: bool = MISSING
    balance: Balance = field(default_factory=Balance)
    control: bool = MISSING
    shard: str | None = MISSING
    reuse_from: str | None = MISSING
    perturbed_examples: int = MISSING
    retrain: bool = MISSING
    train_until_balanced: int = MISSING
    calibrate: Calibrate = field(default_factory=Calibrate)


@dataclass
class CPUTrainer:
    """The keys robustlab sets; any other Lightning Trainer argument can still be added with +trainer.x=..."""

    _target_: str = MISSING
    accelerator: str = MISSING
    devices: Any = MISSING  # Lightning takes an int, a list of ids or "auto"
    max_epochs: int = MISSING
    deterministic: Any = MISSING  # true | false | warn (Lightning)
    enable_checkpointing: bool = MISSING
    enable_model_summary: bool = MISSING
    log_every_n_steps: int = MISSING
    enable_progress_bar: bool = MISSING


@dataclass
class DDPTrainer(CPUTrainer):
    strategy: str = MISSING
    num_nodes: int = MISSING


@dataclass
class Profile:
    name: str = MISSING
    seeds: int = MISSING
    train_subset: int | None = MISSING
    epochs: int = MISSING
    max_steps: int = MISSING
    rpr_train_points: int | None = MISSING
    rpr_test_points: int | None = MISSING
    linear_train_subset: int | None = MISSING
    linear_epochs: int = MISSING
    cnn_attack_points: int | None = MISSING
    gan_train_subset: int | None = MISSING
    gan_epochs: int = MISSING
    gan_batch_size: int = MISSING
    gan_g_width: int = MISSING
    gan_d_width: int = MISSING
    gan_sample_every_n_steps: int = MISSING
    gan_quality_samples: int = MISSING
    gan_samples_per_class: int = MISSING
    gan_augment_epochs: int = MISSING
    op_test_points: int | None = MISSING
    op_train_points: int | None = MISSING
    op_pixel_k: list[int] = MISSING
    op_gaussian_sigma: list[float] = MISSING
    op_salt_pepper_rate: list[float] = MISSING
    op_linf_epsilon: list[float] = MISSING
    op_blur_sigma: list[float] = MISSING
    cal_test_points: int | None = MISSING
    cal_train_points: int | None = MISSING
    fashion_train_subset: int | None = MISSING
    fashion_test_points: int | None = MISSING
    fashion_train_points: int | None = MISSING
    fashion_train_until_balanced: int = MISSING
    fashion_op_pixel_k: list[int] = MISSING
    fashion_op_gaussian_sigma: list[float] = MISSING
    inherent_test_points: int | None = MISSING
    inherent_calibrated_k: int = MISSING
    exact_linear_points: int | None = MISSING
    exact_cnn_points: int | None = MISSING


# group -> option name (as the YAML's defaults list names it) -> dataclass
GROUP_SCHEMAS: dict[str, dict[str, type]] = {
    "paths": {"paths": Paths},
    "data": {"vision": VisionData, "binary": BinaryData},
    "model": {"simple_cnn": SimpleCNNModel, "linear_hinge": LinearHingeModel, "dcgan": DCGANModel},
    "perturbation": {
        "pixels": PixelsPerturbation,
        "gaussian": GaussianPerturbation,
        "salt_pepper": SaltPepperPerturbation,
        "uniform_linf": UniformLinfPerturbation,
        "blur": BlurPerturbation,
    },
    "rpr": {"rpr": RPR},
    "trainer": {"cpu": CPUTrainer, "ddp": DDPTrainer},
    "profile": {"profile": Profile},
}


# --- root keys and experiment sections: checked by robustlab.configs.validate, not merged by Hydra ---


@dataclass
class Root:
    pipeline: str = MISSING
    name: str = MISSING
    seed: int = MISSING
    checkpoint: str | None = MISSING
    model_cache: str | None = MISSING
    resume_every_n_epochs: int | None = MISSING
    result_cache: str | None = MISSING
    threads: int | None = MISSING
    gpu_per_job: bool = MISSING


@dataclass
class PGD:
    steps: int = MISSING
    step_size: float | None = MISSING
    random_start: bool = MISSING


@dataclass
class CNNAttack:
    epsilons: Any = MISSING  # {start, stop, num} or a list of radii
    clip: bool = MISSING
    fgsm: bool = MISSING
    pgd: PGD | None = MISSING  # null: no PGD
    test_points: int | None = MISSING
    batch_size: int = MISSING
    channels_last: bool = MISSING
    compile: bool = MISSING
    autocast: str | None = MISSING


@dataclass
class LinearAttack:
    epsilons: Any = MISSING
    clip: bool = MISSING
    fgsm: bool = MISSING
    batch_size: int = MISSING
    misclassified_eps: Any = MISSING
    misclassified_keep: int = MISSING


@dataclass
class Interpolation:
    pairs: int = MISSING
    steps: int = MISSING


@dataclass
class Quality:
    classifier: str | None = MISSING
    samples: int = MISSING
    batch_size: int = MISSING


@dataclass
class GanAugment:
    model: Any = MISSING  # a model group node (model/dcgan), typed by its own schema
    epochs: int = MISSING
    batch_size: int = MISSING
    samples_per_class: int = MISSING


# The top-level sections each pipeline reads beyond the groups (its preset under conf/experiment/ sets them).
PIPELINE_SECTIONS: dict[str, dict[str, Any]] = {
    "robustlab.pipelines.cnn_attack.CNNAttack": {"checkpoints": dict[str, str], "attack": CNNAttack},
    "robustlab.pipelines.linear_robust.LinearRobust": {"attack": LinearAttack},
    "robustlab.pipelines.dcgan.DCGANRun": {"interpolation": Interpolation, "quality": Quality},
    "robustlab.pipelines.rpr_gan_augment.RPRGanAugment": {"gan": GanAugment},
}
GROUPS = tuple(GROUP_SCHEMAS)


def register(store: ConfigStore | None = None) -> None:
    """Put every group schema in Hydra's ConfigStore (idempotent: storing again replaces the node)."""
    store = store or ConfigStore.instance()
    for group, options in GROUP_SCHEMAS.items():
        for name, node in options.items():
            store.store(group=f"{SCHEMA_GROUP}/{group}", name=name, node=node, provider="robustlab")


register()
