"""Train a classifier with a Lightning Trainer built from the trainer config, and score it."""

from __future__ import annotations

import logging
import os
import time
from contextlib import contextmanager
from pathlib import Path

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig

from robustlab.config import build
from robustlab.data import Split, VisionDataModule
from robustlab.pipelines import resume as resuming
from robustlab.pipelines.devices import require_devices
from robustlab.pipelines.tracking import training_loggers
from robustlab.robustness.rpr import as_scores_fn, predict
from robustlab.robustness.shards import model_digest
from robustlab.runs import layout

log = logging.getLogger(__name__)


@contextmanager
def timed(timings: dict, stage: str):
    """Record the wall time of a pipeline stage (seconds) into ``timings[stage]``."""
    started = time.perf_counter()
    yield
    timings[stage] = round(time.perf_counter() - started, 1)


def fit_classifier(
    model: pl.LightningModule,
    data: VisionDataModule,
    trainer_cfg: DictConfig,
    run_dir: Path,
    name: str,
    tensorboard: bool = False,
    resume: resuming.Resume | None = None,
    logger_cfg: DictConfig | None = None,
) -> Path:
    """Fit ``model`` on ``data``; logs go to ``run_dir/name`` (CSV; TensorBoard events too when ``tensorboard``:
    the GAN's sample grids are images) and to the trackers of ``logger_cfg`` (the ``logger`` config group);
    returns the checkpoint path (written atomically). With ``resume``, checkpoints every few epochs
    outside the run folder, and a fit killed earlier continues from its last one
    (robustlab.pipelines.resume); the model ends on the trainer's device (the GPU under trainer=auto there)."""
    loggers = training_loggers(logger_cfg, run_dir, name, tensorboard)
    require_devices(trainer_cfg)
    extra, folder, last = {}, None, None
    if resume is not None and trainer_cfg.get("strategy") not in (None, "auto"):
        # Each DDP process would need to agree on the checkpoint to resume; not supported, so train in one go.
        log.info("training %s under strategy=%s: no resume checkpoints", name, trainer_cfg.strategy)
        resume = None
    if resume is not None:
        folder = resume.root / resuming.training_key(model, data, trainer_cfg, name)
        last = resuming.last_checkpoint(folder)
        extra = {
            "enable_checkpointing": True,
            "callbacks": resuming.checkpoint_callbacks(resume, folder, run_dir / name),
        }
    trainer: pl.Trainer = build(trainer_cfg, default_root_dir=str(run_dir / name), logger=loggers, **extra)
    if last is not None:
        log.info("training %s resumes from %s", name, last)
        resuming.restore_logs(last, run_dir / name, loggers)
    log.info("training %s on %d images for %d epochs", name, len(data.train), trainer.max_epochs)
    trainer.fit(model, datamodule=data, ckpt_path=None if last is None else str(last))
    if resume is not None:
        resuming.drop_checkpoint_callbacks(trainer)
    checkpoint = run_dir / layout.checkpoint_file(name)
    partial = checkpoint.with_suffix(".ckpt.tmp")
    trainer.save_checkpoint(str(partial))  # every DDP process must call it; rank 0 alone writes
    if trainer.is_global_zero:
        os.replace(partial, checkpoint)
        if folder is not None:
            resuming.finished(folder)
    model.to(trainer.strategy.root_device)  # Lightning's teardown moved it to the CPU
    return checkpoint


# (weights digest, device, split fingerprint) -> accuracy. The jobs of a sweep run in one process and ask for
# the accuracy of the same M on the same full test set again and again (rpr_sweep, the corruption sweep,
# the calibrated groups): about 3 s each on 2 CPU cores. The same weights on the same images give the same
# predictions, so the number is computed once per process; it is not a result cache across runs.
_ACCURACY: dict[tuple, float] = {}


def _fingerprint(split: Split) -> tuple:
    images = split.images.contiguous()
    return (tuple(images.shape), hash(images.numpy().tobytes()), hash(split.labels.numpy().tobytes()))


def accuracy(model, split: Split, batch_size: int = 1024) -> float:
    """Top-1 accuracy of any classifier (module or callable) on a split."""
    fn, device = as_scores_fn(model)
    key = (
        (model_digest(model), model.training, str(device), _fingerprint(split))
        if isinstance(model, torch.nn.Module)
        else None
    )
    if key in _ACCURACY:
        return _ACCURACY[key]
    with torch.inference_mode():
        pred, _ = predict(fn, split.images.to(device), batch_size)
    value = float((pred.cpu() == split.labels).float().mean())
    if key is not None:
        _ACCURACY[key] = value
    return value
