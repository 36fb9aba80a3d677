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

import torch
from torch import nn

from robustlab.errors import require
from robustlab.models.classifier import ImageClassifier

REDUCTIONS = ("mean", "sum")


def blog_defaults(epsilon: float) -> tuple[float, str]:
    """(lr, reduction) of the blog's scripts: regular 0.1 / mean, robust 1e-4 / sum."""
    return (0.1, "mean") if epsilon == 0 else (1e-4, "sum")


def hinge(margin: torch.Tensor) -> torch.Tensor:
    return torch.clamp(1.0 - margin, min=0.0)


def robust_margin(scores: torch.Tensor, y: torch.Tensor, w: torch.Tensor, epsilon: float) -> torch.Tensor:
    """y f(x) - eps ||w||_1: the smallest margin of any point of the l-inf ball around x."""
    return y.to(scores.dtype) * scores - epsilon * w.abs().sum()


def robust_hinge_loss(
    scores: torch.Tensor, y: torch.Tensor, w: torch.Tensor, epsilon: float, reduction: str = "mean"
) -> torch.Tensor:
    per_sample = hinge(robust_margin(scores, y, w, epsilon))
    return per_sample.sum() if reduction == "sum" else per_sample.mean()


def binary_correct(scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """sign(f(x)) == y; a score of exactly 0 has sign 0 and counts as wrong (as tf.sign in the blog)."""
    return torch.sign(scores) == y.to(scores.dtype)


class LinearHinge(ImageClassifier):
    """One weight vector ``w`` and a bias ``b``; ``forward`` returns the scores f(x), shape (N,)."""

    def __init__(
        self,
        input_shape: tuple[int, ...] = (1, 28, 28),
        epsilon: float = 0.0,
        lr: float | None = None,
        reduction: str | None = None,
    ):
        require(
            isinstance(epsilon, (int, float)) and math.isfinite(epsilon) and epsilon >= 0,
            f"model.epsilon must be a number >= 0 (0: regular hinge, > 0: robust hinge), got {epsilon}",
        )
        require(
            lr is None or (isinstance(lr, (int, float)) and lr > 0),
            f"model.lr must be > 0 or null (the blog's), got {lr}",
        )
        require(
            reduction is None or reduction in REDUCTIONS,
            f"model.reduction must be mean, sum or null (the blog's), got {reduction}",
        )
        default_lr, default_reduction = blog_defaults(epsilon)
        super().__init__(input_shape, num_classes=2, lr=float(default_lr if lr is None else lr))
        self.save_hyperparameters()
        self.epsilon = float(epsilon)
        self.reduction = reduction or default_reduction
        dim = math.prod(self.input_shape)
        limit = math.sqrt(6.0 / (dim + 1))  # Keras Dense: glorot_uniform kernel (fan_in 784, fan_out 1), zero bias
        self.w = nn.Parameter(torch.empty(dim).uniform_(-limit, limit))
        self.b = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.w + self.b

    def loss(self, scores: torch.Tensor, y: torch.Tensor, stage: str) -> torch.Tensor:
        if stage == "train":
            return robust_hinge_loss(scores, y, self.w, self.epsilon, self.reduction)
        return hinge(
            y.to(scores.dtype) * scores
        ).mean()  # the blog's test loss: Keras Hinge, a mean without the eps term

    def correct(self, scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return binary_correct(scores, y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)  # plain SGD, no momentum, as the blog's Keras SGD
