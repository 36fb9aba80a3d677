"""Counter-based RNG: a pure function of (seed, index, step, slot, stream), well spread."""

from __future__ import annotations

import math

import pytest
import torch

from robustlab.robustness import counter_rng as rng


def keys(seed=0, n=64, step=1):
    return rng.point_keys(seed, torch.arange(n), torch.full((n,), step))


def test_mix32_stays_in_32_bits_and_is_not_identity():
    x = torch.tensor([0, 1, 2, 0xFFFFFFFF, 12345678], dtype=torch.int64)
    y = rng.mix32(x)
    assert y.dtype == torch.int64
    assert bool(((y >= 0) & (y <= 0xFFFFFFFF)).all())
    assert len(set(y.tolist())) == len(x)  # a bijection on 32 bits: distinct inputs, distinct outputs
    assert y[1:].ne(x[1:]).all()


def test_point_keys_broadcast_shape_and_range():
    k = rng.point_keys(3, torch.arange(5).unsqueeze(1), torch.arange(1, 8).unsqueeze(0))
    assert k.shape == (5, 7)
    assert bool(((k >= 0) & (k <= 0xFFFFFFFF)).all())
    assert len(set(k.flatten().tolist())) == 35  # every (index, step) its own key


def test_uniform_shape_dtype_and_range():
    u = rng.uniform(keys(n=50), 1000)
    assert u.shape == (50, 1000) and u.dtype == torch.float32
    assert float(u.min()) >= 0.0 and float(u.max()) < 1.0


def test_same_coordinates_give_same_numbers():
    a = rng.uniform(keys(seed=7), 100, stream=2)
    b = rng.uniform(keys(seed=7), 100, stream=2)
    assert torch.equal(a, b)
    # a key is a function of its own (index, step) only, not of what else is in the batch
    alone = rng.uniform(rng.point_keys(7, torch.tensor([17]), torch.tensor([1])), 100, stream=2)
    assert torch.equal(alone[0], a[17])
    assert torch.equal(rng.normal(keys(seed=7), 30), rng.normal(keys(seed=7), 30))


@pytest.mark.parametrize(
    "other",
    [
        dict(seed=8, index=0, step=1, stream=0),  # seed
        dict(seed=7, index=1, step=1, stream=0),  # datapoint index
        dict(seed=7, index=0, step=2, stream=0),  # retry step
        dict(seed=7, index=0, step=1, stream=1),  # stream
    ],
)
def test_any_coordinate_change_gives_different_numbers(other):
    def draw(seed, index, step, stream):
        return rng.uniform(rng.point_keys(seed, torch.tensor([index]), torch.tensor([step])), 256, stream=stream)[0]

    base = draw(7, 0, 1, 0)
    changed = draw(**other)
    assert not torch.equal(base, changed)
    assert float((base == changed).float().mean()) < 0.05  # not merely shifted: nearly all values differ


def test_index_and_step_are_not_interchangeable():
    a = rng.point_keys(0, torch.tensor([1]), torch.tensor([2]))
    b = rng.point_keys(0, torch.tensor([2]), torch.tensor([1]))
    assert not torch.equal(a, b)


def test_uniform_is_roughly_uniform():
    u = rng.uniform(keys(n=200), 500).flatten()  # 100,000 draws
    assert abs(float(u.mean()) - 0.5) < 0.01
    assert abs(float(u.var()) - 1.0 / 12.0) < 0.003
    hist = torch.histc(u, bins=10, min=0.0, max=1.0)
    expected = len(u) / 10
    assert float((hist - expected).abs().max()) < 0.05 * expected


def test_uniform_across_keys_for_one_slot_is_uniform():
    # The first number of many consecutive (index, step) keys: the case the perturbations rely on.
    k = rng.point_keys(0, torch.arange(20000), torch.ones(20000, dtype=torch.int64))
    u = rng.uniform(k, 1)[:, 0]
    hist = torch.histc(u, bins=10, min=0.0, max=1.0)
    assert float((hist - 2000).abs().max()) < 200


def test_normal_has_mean_zero_and_std_one():
    z = rng.normal(keys(n=200), 500).flatten()
    assert torch.isfinite(z).all()
    assert abs(float(z.mean())) < 0.02
    assert abs(float(z.std()) - 1.0) < 0.02
    # tails roughly Gaussian: P(|z| > 2) ~ 0.0455
    assert abs(float((z.abs() > 2).float().mean()) - 0.0455) < 0.006


def test_integers_inclusive_range_and_all_values_hit():
    v = rng.integers(keys(n=100), 1, 6, 200)
    assert v.dtype == torch.int64
    assert int(v.min()) == 1 and int(v.max()) == 6
    counts = torch.bincount(v.flatten(), minlength=7)[1:]
    assert float((counts.float() - v.numel() / 6).abs().max()) < 0.1 * v.numel() / 6


def test_integers_with_per_key_upper_bound():
    high = torch.arange(1, 51)
    v = rng.integers(keys(n=50), 0, high, 40)
    assert v.shape == (50, 40)
    assert bool((v >= 0).all()) and bool((v <= high.unsqueeze(1)).all())


def test_batch_values_equal_one_key_at_a_time():
    """Values for a batch equal the values computed one key at a time (no hidden state)."""
    k = keys(seed=11, n=10, step=3)
    together = rng.uniform(k, 16)
    one_by_one = torch.stack([rng.uniform(k[i : i + 1], 16)[0] for i in range(10)])
    assert torch.equal(together, one_by_one)


def test_large_seed_and_index_do_not_overflow():
    k = rng.point_keys(2**40 + 5, torch.tensor([2**31 - 1, 10**9]), torch.tensor([10**6, 1]))
    u = rng.uniform(k, 8)
    assert bool(((u >= 0) & (u < 1)).all())
    assert not math.isnan(float(u.sum()))
