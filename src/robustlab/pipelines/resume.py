"""Resumable training: a fit killed part-way continues from its last checkpoint instead of starting over,
and ends with the weights an uninterrupted fit ends with (on CPU: exactly; tests/test_training_resume.py).

The checkpoints live beside the model cache, not in the run folder (a killed job's run folder is
cleared when the job starts again): ``<model_cache>/partial/<key>/last.ckpt``, written every
``resume_every_n_epochs`` epochs and removed once the final model is written. ``key`` is the
training's identity: the code version, the trainer config, the model's class, options and initial
weights, the training data (images, labels, indices, batch size, shuffling seed) and the state of the
global random stream at the start, so a checkpoint is only ever resumed by the same training.

A Lightning checkpoint holds the weights, the optimisers and the loop counters, not the random
streams. ``RandomStreams`` adds the global torch / numpy / Python streams (dropout, the GAN's noise),
saved at the end of an epoch and put back at the start of the next epoch the resumed fit runs; the
training loader's shuffling generator is in the checkpoint through the data module
(VisionDataModule.state_dict, put back when the resumed fit builds its loader). Checkpoints are saved
at epoch ends only: Lightning cannot resume the middle of an epoch exactly (the loader's position is
not in its checkpoint).
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger

from robustlab.errors import require
from robustlab.robustness.shards import model_digest
from robustlab.runs.identity import code_version, digest

log = logging.getLogger(__name__)

PARTIAL = "partial"
LAST = "last"


@dataclass(frozen=True)
class Resume:
    """Where a training's resume checkpoints go (``root/<key>/last.ckpt``) and how often."""

    root: Path
    every_n_epochs: int


def resume_from_config(cfg: DictConfig) -> Resume | None:
    """``<model_cache>/partial`` every ``resume_every_n_epochs`` epochs; None (train in one go) when
    either is null."""
    every = cfg.get("resume_every_n_epochs")
    if every is None or not cfg.get("model_cache"):
        return None
    require(
        isinstance(every, int) and not isinstance(every, bool) and every >= 1,
        f"resume_every_n_epochs must be a positive integer or null (no resume checkpoints), got {every}",
    )
    return Resume(Path(cfg.model_cache) / PARTIAL, every)


def _tensor_digest(*tensors: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def training_key(model: pl.LightningModule, data, trainer_cfg: DictConfig, name: str) -> str:
    """The identity of one training (see the module docstring); call it before the fit starts."""
    train = data.train
    return digest(
        {
            "code": code_version(),
            "name": name,
            "trainer": OmegaConf.to_container(trainer_cfg, resolve=True),
            "model": {
                "class": f"{type(model).__module__}.{type(model).__qualname__}",
                "hparams": {k: str(v) for k, v in dict(model.hparams).items()},
                "weights": model_digest(model),
            },
            "data": {
                "images": _tensor_digest(train.images, train.labels, train.index),
                "batch_size": data.batch_size,
                "seed": data.seed,
                "num_workers": data.num_workers,
            },
            "global_rng": _tensor_digest(torch.get_rng_state()),
        }
    )


class RandomStreams(pl.Callback):
    """The random streams of the fit, in its checkpoints (see the module docstring)."""

    def __init__(self):
        self.pending: dict | None = None

    def state_dict(self) -> dict:
        kind, keys, position, has_gauss, gauss = np.random.get_state()
        numpy_state = [kind, torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss), float(gauss)]
        return {
            "torch": torch.get_rng_state(),
            "numpy": numpy_state,
            "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }

    def load_state_dict(self, state_dict: dict) -> None:
        self.pending = state_dict  # put back when the resumed fit starts its next epoch

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if self.pending is None:
            return
        state, self.pending = self.pending, None
        torch.set_rng_state(state["torch"])
        kind, keys, position, has_gauss, gauss = state["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
        random.setstate(state["python"])
        if state["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])


CSV_METRICS = "metrics.csv"  # what Lightning's CSVLogger writes in its log folder
LOGS = "logs_"  # + the checkpoint's global step: the training's log folder as it was when that checkpoint was saved


class AtomicCheckpoint(ModelCheckpoint):
    """ModelCheckpoint writing ``last.ckpt`` through a temporary file and a rename: a fit killed while
    saving leaves the previous checkpoint, never a truncated one.

    With ``logs`` (the training's log folder in the run folder: metrics.csv, the GAN's sample grids), a flushed
    copy of that folder goes beside the checkpoint (``logs_<global step>``) when the next epoch starts, after
    Lightning has logged the checkpointed epoch's own metrics: the run folder of a killed job is cleared when it
    starts again, and a resumed fit must end with the whole history an uninterrupted fit logs, not with the
    epochs after the checkpoint alone."""

    def __init__(self, folder: Path, every_n_epochs: int, logs: Path | None = None):
        self.logs = logs
        super().__init__(
            dirpath=str(folder),
            filename=LAST,
            monitor=None,
            save_top_k=1,
            save_last=False,
            every_n_epochs=every_n_epochs,
            save_on_train_epoch_end=True,
            enable_version_counter=False,
        )

    def _save_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        partial = f"{filepath}.tmp"
        trainer.save_checkpoint(partial, self.save_weights_only)
        if trainer.is_global_zero:
            os.replace(partial, filepath)
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath
        self.copy_pending = (
            self.logs is not None
        )  # the epoch's own metrics are logged after this: copy at the next start

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """The log folder as it stands at the checkpoint's step (this epoch has logged nothing yet), flushed."""
        if not getattr(self, "copy_pending", False) or not trainer.is_global_zero:
            return
        self.copy_pending = False
        for logger in trainer.loggers:
            logger.save()
        folder, copy = Path(self.dirpath), Path(self.dirpath) / f"{LOGS}{trainer.global_step}"
        for stale in (copy, Path(f"{copy}.tmp")):
            shutil.rmtree(stale, ignore_errors=True)
        shutil.copytree(self.logs, Path(f"{copy}.tmp"))
        os.replace(f"{copy}.tmp", copy)
        for older in folder.glob(f"{LOGS}*"):  # the newest complete copy is enough
            if older != copy:
                shutil.rmtree(older, ignore_errors=True)


def checkpoint_callbacks(resume: Resume, folder: Path, logs: Path | None = None) -> list[pl.Callback]:
    return [RandomStreams(), AtomicCheckpoint(folder, resume.every_n_epochs, logs)]


def restore_logs(checkpoint: Path, logs: Path, loggers: list) -> None:
    """Before a resumed fit: the log folder as it was when ``checkpoint`` was saved. Lightning's CSV writer deletes
    an existing metrics.csv when it starts, so its rows go back into the writer instead, ahead of the new ones: the
    file it writes then has every row, as an uninterrupted fit's does."""
    step = torch.load(checkpoint, map_location="cpu", weights_only=False)["global_step"]
    copy = checkpoint.parent / f"{LOGS}{step}"
    if not copy.is_dir():  # killed between the checkpoint and its copy (one epoch's logging): the history has a gap
        log.warning("no log copy for %s; the logged history of the epochs before it is incomplete", checkpoint)
        return
    shutil.copytree(copy, logs, dirs_exist_ok=True, ignore=shutil.ignore_patterns(CSV_METRICS))
    if not (copy / CSV_METRICS).is_file():
        return
    with open(copy / CSV_METRICS, newline="") as handle:
        rows = list(csv.DictReader(handle))
    for logger in loggers:
        if isinstance(logger, CSVLogger) and Path(logger.log_dir) == logs:
            logger.experiment.metrics[:0] = rows


def drop_checkpoint_callbacks(trainer: pl.Trainer) -> None:
    """Before the final model is saved: it keeps the format it has without resume checkpoints."""
    trainer.callbacks = [c for c in trainer.callbacks if not isinstance(c, (RandomStreams, AtomicCheckpoint))]


def last_checkpoint(folder: Path) -> Path | None:
    last = folder / f"{LAST}.ckpt"
    return last if last.is_file() else None


def finished(folder: Path) -> None:
    """The final model is written: its resume checkpoints are no longer needed."""
    shutil.rmtree(folder, ignore_errors=True)
