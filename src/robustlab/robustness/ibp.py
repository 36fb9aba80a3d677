"""Interval bound propagation (Gowal et al. 2018) through conv / ReLU / max-pool / flatten / linear stacks.

A box [lower, upper] of inputs maps to a box that contains every output of every input in it:
affine layers move the centre and scale the radius by |W|; ReLU and max-pooling are monotone, so
they map the ends. The last linear layer is folded into the margins logit_y - logit_j (the usual
"elision"), which is tighter than subtracting two boxes. Sound (up to float rounding) and, on
networks not trained for it, loose: a certified radius is a lower bound on the distance to the
nearest adversarial example, often far below it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from robustlab.errors import require

MONOTONE = (nn.ReLU, nn.MaxPool2d, nn.Flatten, nn.Identity)


def layers_of(model: nn.Module) -> list[nn.Module]:
    """The layers of ``model.net`` (or of a Sequential itself), checked to be ones IBP handles."""
    net = getattr(model, "net", model)
    require(
        isinstance(net, nn.Sequential), f"IBP needs a model whose net is an nn.Sequential, got {type(net).__name__}"
    )
    layers = list(net)
    bad = [type(m).__name__ for m in layers if not isinstance(m, (nn.Conv2d, nn.Linear, *MONOTONE))]
    require(
        not bad, f"IBP handles Conv2d, Linear, ReLU, MaxPool2d and Flatten layers only; the model has {', '.join(bad)}"
    )
    return layers


def _affine(layer: nn.Module, lower: torch.Tensor, upper: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mid, rad = (upper + lower) / 2, (upper - lower) / 2
    if isinstance(layer, nn.Linear):
        mid, rad = layer(mid), F.linear(rad, layer.weight.abs())
    else:
        mid = layer(mid)
        rad = F.conv2d(rad, layer.weight.abs(), None, layer.stride, layer.padding, layer.dilation, layer.groups)
    return mid - rad, mid + rad


def bounds(layers: list[nn.Module], lower: torch.Tensor, upper: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Output box of the layers for the input box [lower, upper]."""
    for layer in layers:
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            lower, upper = _affine(layer, lower, upper)
        else:
            lower, upper = layer(lower), layer(upper)
    return lower, upper


def margin_lower_bounds(
    model: nn.Module, lower: torch.Tensor, upper: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """Lower bounds of logit_y - logit_j over the input box, shape (N, K); the y column is +inf."""
    layers = layers_of(model)
    last = layers[-1]
    require(isinstance(last, nn.Linear), "IBP margins need the model to end in a Linear layer")
    lo, hi = bounds(layers[:-1], lower, upper)
    mid, rad = (hi + lo) / 2, (hi - lo) / 2
    w_diff = last.weight[labels][:, None, :] - last.weight[None, :, :]  # (N, K, D): w_y - w_j
    b_diff = last.bias[labels][:, None] - last.bias[None, :]
    out = torch.einsum("nkd,nd->nk", w_diff, mid) - torch.einsum("nkd,nd->nk", w_diff.abs(), rad) + b_diff
    return out.masked_fill(F.one_hot(labels, out.shape[1]).bool(), float("inf"))


@torch.no_grad()
def certified(
    model: nn.Module, x: torch.Tensor, labels: torch.Tensor, eps: torch.Tensor, clip: bool = True
) -> torch.Tensor:
    """Whether IBP proves every input within l-inf eps (per point; clipped to [0, 1]) classified as labels."""
    eps = eps.view(-1, *([1] * (x.dim() - 1)))
    lower, upper = x - eps, x + eps
    if clip:
        lower, upper = lower.clamp(0.0, 1.0), upper.clamp(0.0, 1.0)
    return margin_lower_bounds(model, lower, upper, labels).min(dim=1).values > 0
