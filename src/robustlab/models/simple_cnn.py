"""The paper's simple CNN: two small convolutions, one max pooling, one fully connected layer."""

from __future__ import annotations

from torch import nn

from robustlab.errors import require
from robustlab.models.classifier import ImageClassifier


class SimpleCNN(ImageClassifier):
    """conv-ReLU, conv-ReLU, max-pool, linear -> logits (softmax lives in the loss / argmax).

    The paper gives no widths; ``channels`` defaults to (32, 64), the widths of the Keras MNIST
    example that such a "very simple model" usually follows.
    """

    def __init__(
        self,
        input_shape: tuple[int, int, int] = (1, 28, 28),
        num_classes: int = 10,
        channels: tuple[int, int] = (32, 64),
        kernel_size: int = 3,
        pool: int = 2,
        lr: float = 1e-3,
    ):
        super().__init__(input_shape, num_classes, lr)
        self.save_hyperparameters()
        c, h, w = self.input_shape
        require(
            len(channels) == 2 and min(channels) >= 1,
            f"model.channels must be two positive widths, got {list(channels)}",
        )
        side_h, side_w = (h - 2 * (kernel_size - 1)) // pool, (w - 2 * (kernel_size - 1)) // pool
        require(
            side_h >= 1 and side_w >= 1,
            f"model.kernel_size={kernel_size} with pool={pool} leaves nothing of a {h}x{w} image",
        )
        self.net = nn.Sequential(
            nn.Conv2d(c, channels[0], kernel_size),
            nn.ReLU(),
            nn.Conv2d(channels[0], channels[1], kernel_size),
            nn.ReLU(),
            nn.MaxPool2d(pool),
            nn.Flatten(),
            nn.Linear(channels[1] * side_h * side_w, num_classes),
        )
