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


class AtomicCheckpoint(ModelCheckpoint):
    """ModelCheckpoint writing ``last.ckpt`` through a temporary file and a rename: a fit killed while
    saving leaves the previous checkpoint, never a truncated one."""

    def __init__(self, folder: Path, every_n_epochs: int):
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


def checkpoint_callbacks(resume: Resume, folder: Path) -> list[pl.Callback]:
    return [RandomStreams(), AtomicCheckpoint(folder, resume.every_n_epochs)]


def drop_checkpoint_callbacks(trainer: pl.Trainer) -> None:
    """Before the final model is saved: it keeps the format it has without resume checkpoints."""
    trainer.callbacks = [c for c in trainer.callbacks if not isinstance(c, (RandomStreams, AtomicCheckpoint))]


def last_checkpoint(folder: Path) -> Path | None:
    last = folder / f"{LAST}.ckpt"
    return last if last.is_file() else None


def finished(folder: Path) -> None:
    """The final model is written: its resume checkpoints are no longer needed."""
    shutil.rmtree(folder, ignore_errors=True)
