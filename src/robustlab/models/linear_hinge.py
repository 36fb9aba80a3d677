"""The blog's linear classifier (shared/seeds/002): f(x) = w.x + b trained with the (robust) hinge loss.

For a linear model the worst case of the hinge over the l-inf ball of radius eps is exact:
max_{|d|_inf <= eps} max(0, 1 - y (w.(x + d) + b)) = max(0, 1 - (y f(x) - eps ||w||_1)),
reached at d = -eps y sign(w). So eps > 0 trains against the exact worst case, eps = 0 is the
regular hinge.

The blog's two training scripts differ in more than the loss, and its numbers depend on it:
the regular model uses Keras' ``Hinge()`` (the MEAN over the batch) with SGD lr 0.1; the robust
ones call ``tape.gradient`` on the per-sample loss vector, which differentiates its SUM, with SGD
lr 1e-4 (a per-sample step 100x that of a mean at batches of 100). ``lr`` and ``reduction`` left
at null reproduce exactly that; explicit values override it.
"""

from __future__ import annotations

import math

import pytorch_lightning as pl
import torch
from torch import nn

from robustlab.errors import require

REDUCTIONS = ("mean", "sum")


def blog_defaults(epsilon: float) -> tuple[float, str]:
    """(lr, reduction) of the blog's scripts: regular 0.1 / mean, robust 1e-4 / sum."""
    return (0.1, "mean") if epsilon == 0 else (1e-4, "sum")


def hinge(margin: torch.Tensor) -> torch.Tensor:
    return torch.clamp(1.0 - margin, min=0.0)


def robust_margin(scores: torch.Tensor, y: torch.Tensor, w: torch.Tensor, epsilon: float) -> torch.Tensor:
    """y f(x) - eps ||w||_1: the smallest margin of any point of the l-inf ball around x."""
    return y.to(scores.dtype) * scores - epsilon * w.abs().sum()


def robust_hinge_loss(scores: torch.Tensor, y: torch.Tensor, w: torch.Tensor, epsilon: float, reduction: str = "mean") -> torch.Tensor:
    per_sample = hinge(robust_margin(scores, y, w, epsilon))
    return per_sample.sum() if reduction == "sum" else per_sample.mean()


def binary_correct(scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """sign(f(x)) == y; a score of exactly 0 has sign 0 and counts as wrong (as tf.sign in the blog)."""
    return torch.sign(scores) == y.to(scores.dtype)


class LinearHinge(pl.LightningModule):
    """One weight vector ``w`` and a bias ``b``; ``forward`` returns the scores f(x), shape (N,)."""

    def __init__(self, input_shape: tuple[int, ...] = (1, 28, 28), epsilon: float = 0.0, lr: float | None = None,
                 reduction: str | None = None):
        super().__init__()
        require(isinstance(epsilon, (int, float)) and math.isfinite(epsilon) and epsilon >= 0,
                f"model.epsilon must be a number >= 0 (0: regular hinge, > 0: robust hinge), got {epsilon}")
        require(lr is None or (isinstance(lr, (int, float)) and lr > 0), f"model.lr must be > 0 or null (the blog's), got {lr}")
        require(reduction is None or reduction in REDUCTIONS, f"model.reduction must be mean, sum or null (the blog's), got {reduction}")
        self.save_hyperparameters()
        default_lr, default_reduction = blog_defaults(epsilon)
        self.input_shape, self.epsilon = tuple(input_shape), float(epsilon)
        self.lr = float(default_lr if lr is None else lr)
        self.reduction = reduction or default_reduction
        dim = math.prod(self.input_shape)
        limit = math.sqrt(6.0 / (dim + 1))  # Keras Dense: glorot_uniform kernel (fan_in 784, fan_out 1), zero bias
        self.w = nn.Parameter(torch.empty(dim).uniform_(-limit, limit))
        self.b = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.w + self.b

    def _step(self, batch, stage: str) -> torch.Tensor:
        x, y = batch
        scores = self(x)
        if stage == "train":
            loss = robust_hinge_loss(scores, y, self.w, self.epsilon, self.reduction)
        else:  # the blog's test loss: Keras Hinge, a mean without the eps term
            loss = hinge(y.to(scores.dtype) * scores).mean()
        self.log(f"{stage}/loss", loss, prog_bar=stage == "train", on_epoch=True, on_step=stage == "train")
        self.log(f"{stage}/acc", binary_correct(scores, y).float().mean(), prog_bar=True, on_epoch=True, on_step=False)
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)  # plain SGD, no momentum, as the blog's Keras SGD
