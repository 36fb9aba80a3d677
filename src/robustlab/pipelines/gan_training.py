"""Training and sampling a DCGAN, shared by the pipelines dcgan and rpr_gan_augment."""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from robustlab.data import VisionDataModule
from robustlab.models.dcgan import DCGAN
from robustlab.pipelines.resume import Resume
from robustlab.pipelines.training import fit_classifier, timed
from robustlab.runs.io import atomic_write_bytes

GAN = "G"  # log folder and checkpoint name of the GAN


def with_epochs(trainer_cfg: DictConfig, epochs: int) -> DictConfig:
    return OmegaConf.merge(trainer_cfg, {"max_epochs": int(epochs)})


def train_gan(
    model: DCGAN,
    data: VisionDataModule,
    trainer_cfg: DictConfig,
    run_dir: Path,
    timings: dict,
    resume: Resume | None = None,
    logger_cfg: DictConfig | None = None,
) -> dict:
    """Fit G and D (logs and sample grids in run_dir/G, checkpoint run_dir/G.ckpt); the training summary."""
    model.write_grid = atomic_write_bytes  # the grids are run files: written atomically
    with timed(timings, f"train_{GAN}"):
        fit_classifier(model, data, trainer_cfg, run_dir, GAN, tensorboard=True, resume=resume, logger_cfg=logger_cfg)
    logged = model.trainer.callback_metrics
    last = {key.split("/")[-1]: float(value) for key, value in logged.items() if key.startswith("train/")}
    return {
        "steps": model.iteration,
        "epochs": int(trainer_cfg.max_epochs),
        "images": len(data.train),
        "batch_size": data.batch_size,
        "final": last,
    }


def generate(model: DCGAN, count: int, seed: int, labels: torch.Tensor | None = None) -> torch.Tensor:
    """``count`` images of G for a seeded set of codes (and, for a conditional G, the given classes)."""
    return model.generate(model.noise(count, torch.Generator().manual_seed(seed)), labels)
