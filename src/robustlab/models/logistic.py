"""Multinomial logistic regression: one linear layer on the flattened image, softmax in the loss."""

from __future__ import annotations

import math

from torch import nn

from robustlab.models.classifier import ImageClassifier


class LogisticRegression(ImageClassifier):
    """The simplest model of the cross-architecture comparison: logits = W x + b (convex training loss)."""

    def __init__(self, input_shape: tuple[int, int, int] = (1, 28, 28), num_classes: int = 10, lr: float = 1e-3):
        super().__init__(input_shape, num_classes, lr)
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(self.input_shape), num_classes))
