"""Shared Lightning plumbing for image classifiers: cross-entropy, accuracy logging, Adam."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from robustlab.errors import RobustlabError


class ImageClassifier(pl.LightningModule):
    """Subclasses build ``self.net`` mapping (N, C, H, W) images in [0, 1] to class logits, or
    override ``forward``, ``loss`` and ``correct`` for other kinds of scores (e.g. one binary score)."""

    net: nn.Module

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int, lr: float = 1e-3):
        super().__init__()
        self.input_shape, self.num_classes, self.lr = tuple(input_shape), num_classes, lr

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def loss(self, scores: torch.Tensor, y: torch.Tensor, stage: str) -> torch.Tensor:
        return F.cross_entropy(scores, y)

    def correct(self, scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return scores.argmax(1) == y

    def _step(self, batch, stage: str) -> torch.Tensor:
        x, y = batch
        scores = self(x)
        loss = self.loss(scores, y, stage)
        self.log(f"{stage}/loss", loss, prog_bar=stage == "train", on_epoch=True, on_step=stage == "train")
        self.log(f"{stage}/acc", self.correct(scores, y).float().mean(), prog_bar=True, on_epoch=True, on_step=False)
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)  # Adam's other defaults, as in the paper


def load_classifier(cls: type[ImageClassifier], path: str | Path) -> ImageClassifier:
    """Load a checkpoint written by ``Trainer.save_checkpoint``, with one-line errors."""
    path = Path(path)
    if not path.is_file():
        raise RobustlabError(f"checkpoint not found: {path}; train the model first or fix the path")
    try:
        model = cls.load_from_checkpoint(str(path), map_location="cpu")
    except Exception as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise RobustlabError(
            f"checkpoint {path} is corrupt or not a {cls.__name__} checkpoint ({reason}); retrain to recreate it"
        ) from None
    return model.eval()
