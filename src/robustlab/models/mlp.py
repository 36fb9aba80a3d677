"""A multilayer perceptron on the flattened image: the cross-architecture comparison's non-convolutional model."""

from __future__ import annotations

import math

from torch import nn

from robustlab.errors import require
from robustlab.models.classifier import ImageClassifier


class MLP(ImageClassifier):
    """flatten, then (linear, ReLU) per hidden width, then linear -> logits; Adam like the CNNs."""

    def __init__(
        self,
        input_shape: tuple[int, int, int] = (1, 28, 28),
        num_classes: int = 10,
        hidden: tuple[int, ...] = (256, 128),
        lr: float = 1e-3,
    ):
        super().__init__(input_shape, num_classes, lr)
        self.save_hyperparameters()
        require(all(int(h) >= 1 for h in hidden), f"model.hidden must be positive widths, got {list(hidden)}")
        widths = [math.prod(self.input_shape), *[int(h) for h in hidden]]
        layers: list[nn.Module] = [nn.Flatten()]
        for a, b in zip(widths, widths[1:], strict=False):  # consecutive pairs: one fewer than the widths
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.net = nn.Sequential(*layers, nn.Linear(widths[-1], num_classes))
