"""Counter-based random numbers: a pure function of (seed, datapoint index, step, slot).

Why not ``torch.Generator``: a stateful stream ties each number to the order in which it was
drawn, so results would change with batch size, chunking, device or sharding. Hashing the
coordinates instead gives every (datapoint, retry) its own numbers wherever and whenever it is
evaluated, and the same numbers on CPU and GPU.

Arithmetic stays in int64 on values below 2**32 with multipliers below 2**31, so no product
overflows and every backend computes the same bits.
"""

from __future__ import annotations

import torch

_MASK32 = 0xFFFFFFFF
_MUL1 = 0x7FEB352D  # odd constants < 2**31 (first from Wellons' lowbias32)
_MUL2 = 0x2C1B3C6D
_GOLDEN = 0x1E3779B9  # odd, < 2**31, spreads consecutive counters apart


def mix32(x: torch.Tensor) -> torch.Tensor:
    """Avalanche a tensor of 32-bit values (held in int64) into well-spread 32-bit values."""
    x = x & _MASK32
    x = x ^ (x >> 16)
    x = (x * _MUL1) & _MASK32
    x = x ^ (x >> 15)
    x = (x * _MUL2) & _MASK32
    x = x ^ (x >> 16)
    return x


def combine(key: torch.Tensor, counter: torch.Tensor | int) -> torch.Tensor:
    """Derive a child key from a key and a counter (broadcasting)."""
    return mix32(key ^ mix32((counter * _GOLDEN + 0x5BD1E995) & _MASK32))


def point_keys(seed: int, indices: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    """One key per (datapoint index, retry step); ``indices`` and ``steps`` broadcast."""
    base = mix32(torch.tensor(seed & _MASK32, dtype=torch.int64, device=indices.device) ^ 0x3C6EF372)
    return combine(combine(base, indices.to(torch.int64)), steps.to(torch.int64))


def uniform(keys: torch.Tensor, n: int, stream: int = 0) -> torch.Tensor:
    """``n`` float32 numbers in [0, 1) per key: shape ``keys.shape + (n,)``.

    ``stream`` separates independent uses of the same key (positions vs values, say).
    """
    slots = torch.arange(n, device=keys.device, dtype=torch.int64) + (stream << 20)
    bits = combine(keys.unsqueeze(-1), slots)
    return (bits >> 8).to(torch.float32) * (1.0 / (1 << 24))


def normal(keys: torch.Tensor, n: int, stream: int = 0) -> torch.Tensor:
    """``n`` standard normal float32 numbers per key (Box-Muller on two uniform streams)."""
    u1 = uniform(keys, n, stream=2 * stream + 1)
    u2 = uniform(keys, n, stream=2 * stream + 2)
    radius = torch.sqrt(-2.0 * torch.log1p(-u1))  # 1 - u1 lies in (0, 1]: log is finite
    return radius * torch.cos(2.0 * torch.pi * u2)


def integers(keys: torch.Tensor, low: int, high: torch.Tensor | int, n: int, stream: int = 0) -> torch.Tensor:
    """``n`` integers per key, uniform in [low, high] inclusive (``high`` may vary per key)."""
    u = uniform(keys, n, stream)
    span = torch.as_tensor(high, device=keys.device) - low + 1
    if span.dim():
        span = span.unsqueeze(-1)
    return (low + torch.floor(u * span)).to(torch.int64)
