"""Minibatch discrimination (Salimans et al. 2016, "Improved Techniques for Training GANs", Sec. 3.2).

The discriminator looks at the whole minibatch, not one sample at a time: each sample's features
f(x_i) (A numbers) are multiplied by a learned tensor T (A x B x C) into B rows M_i,b of C numbers;
c_b(x_i, x_j) = exp(-||M_i,b - M_j,b||_1) says how close samples i and j are under kernel b, and
o(x_i)_b = sum over the other samples j of c_b(x_i, x_j). [f(x_i), o(x_i)] goes on to the last layer.
A generator that emits one image over and over gives large o for every sample: the discriminator
can spot the collapse and its gradient pushes the generator apart again.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from robustlab.errors import require


class MinibatchDiscrimination(nn.Module):
    """(N, A) features -> (N, A + B): the features followed by each sample's closeness to the batch."""

    def __init__(self, in_features: int, kernels: int = 32, kernel_dim: int = 8):
        super().__init__()
        require(
            kernels >= 1 and kernel_dim >= 1,
            f"model.mbd_kernels and model.mbd_kernel_dim must be >= 1, got {kernels} and {kernel_dim}",
        )
        self.kernels, self.kernel_dim = kernels, kernel_dim
        # Small weights: with the usual N(0, 0.02) and thousands of features, the L1 distances start
        # so large that every exp(-d) is 0 and the layer passes no gradient at all.
        self.T = nn.Parameter(torch.randn(in_features, kernels * kernel_dim) * (0.1 / math.sqrt(in_features)))

    @property
    def out_extra(self) -> int:
        return self.kernels

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        m = (features @ self.T).view(-1, self.kernels, self.kernel_dim)  # (N, B, C)
        distance = (m.unsqueeze(0) - m.unsqueeze(1)).abs().sum(-1)  # (N, N, B): L1 per kernel
        # The sum over j includes j = i, whose exp(0) = 1 is the same for every sample: take it out.
        closeness = torch.exp(-distance).sum(1) - 1.0
        return torch.cat([features, closeness], dim=1)
