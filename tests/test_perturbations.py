"""Invariants of every perturbation scheme, the pixels scheme's counting, and one-line errors."""

from __future__ import annotations

import math

import pytest
import torch

from robustlab.errors import RobustlabError
from robustlab.robustness import SCHEMES, make_perturbation
from robustlab.robustness import counter_rng as rng
from robustlab.robustness.perturbations import Blur, Gaussian, Pixels, SaltPepper, UniformLinf


def images_like(n=6, shape=(1, 28, 28), seed=0) -> torch.Tensor:
    return torch.rand((n, *shape), generator=torch.Generator().manual_seed(seed))


def keys_for(n, seed=0, step=1) -> torch.Tensor:
    return rng.point_keys(seed, torch.arange(n), torch.full((n,), step))


def changed_locations(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """Per image: how many (H, W) locations differ in any channel."""
    return (before != after).any(dim=1).flatten(1).sum(dim=1)


def assert_one_line(error: pytest.ExceptionInfo) -> None:
    text = str(error.value)
    assert text and "\n" not in text, text


# ---------------------------------------------------------------------------------------------
# Invariants shared by every scheme
# ---------------------------------------------------------------------------------------------

ALL = sorted(SCHEMES)


def test_schemes_are_the_documented_five():
    assert set(SCHEMES) == {"pixels", "gaussian", "salt_pepper", "uniform_linf", "blur"}


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)], ids=["gray28", "rgb32"])
def test_output_in_unit_range_same_shape_input_untouched(name, shape):
    p = make_perturbation(name)
    p.check_images(shape)
    x = images_like(5, shape)
    x[0] = 0.0  # extremes must stay inside [0, 1] too
    x[1] = 1.0
    original = x.clone()
    out = p(x, keys_for(5))
    assert torch.equal(x, original), "the input images were modified in place"
    assert out.shape == x.shape and out.dtype == x.dtype
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert out.data_ptr() != x.data_ptr()
    assert not torch.equal(out[2:], x[2:]), f"{name} with default parameters changed nothing"


@pytest.mark.parametrize("name", ALL)
def test_same_keys_same_output_different_keys_different_output(name):
    p = make_perturbation(name)
    x = images_like(4)
    a = p(x, keys_for(4, seed=1, step=3))
    b = p(x.clone(), keys_for(4, seed=1, step=3))
    assert torch.equal(a, b)
    for other in (keys_for(4, seed=2, step=3), keys_for(4, seed=1, step=4)):
        c = p(x, other)
        assert all(not torch.equal(a[i], c[i]) for i in range(4)), f"{name}: new keys repeated a perturbation"


@pytest.mark.parametrize("name", ALL)
def test_a_row_does_not_depend_on_the_rest_of_the_batch(name):
    """What RPR's batching relies on: image i with key i gives the same output alone or in any batch."""
    p = make_perturbation(name)
    x = images_like(6, (3, 32, 32))
    k = keys_for(6, seed=5, step=2)
    together = p(x, k)
    for i in (0, 3, 5):
        alone = p(x[i : i + 1], k[i : i + 1])
        assert torch.equal(alone[0], together[i])
    perm = torch.tensor([4, 1, 5, 0, 3, 2])
    assert torch.equal(p(x[perm], k[perm]), together[perm])


@pytest.mark.parametrize("name", ALL)
def test_identical_images_with_different_keys_get_different_perturbations(name):
    p = make_perturbation(name)
    x = images_like(1).expand(8, 1, 28, 28).contiguous()
    out = p(x, keys_for(8))
    distinct = {tuple(o.flatten().tolist()) for o in out}
    assert len(distinct) == 8


@pytest.mark.parametrize("name", ALL)
def test_empty_batch_gives_empty_output(name):
    """A batch of zero images (e.g. no fragile example to show) is valid input and gives zero images."""
    p = make_perturbation(name)
    out = p(torch.zeros(0, 1, 28, 28), torch.zeros(0, dtype=torch.int64))
    assert out.shape == (0, 1, 28, 28)


@pytest.mark.parametrize("name", ALL)
def test_float64_images_keep_their_dtype(name):
    x = images_like(3).double()
    out = make_perturbation(name)(x, keys_for(3))
    assert out.dtype == torch.float64 and float(out.min()) >= 0 and float(out.max()) <= 1


@pytest.mark.parametrize(
    "name,params",
    [
        ("gaussian", {"sigma": 0.0}),
        ("salt_pepper", {"rate": 0.0}),
        ("uniform_linf", {"epsilon": 0.0}),
        ("blur", {"kernel_size": 1}),
    ],
)
def test_zero_strength_leaves_images_unchanged(name, params):
    x = images_like(4, (3, 32, 32))
    out = make_perturbation(name, **params)(x, keys_for(4))
    assert torch.equal(out, x)


@pytest.mark.parametrize("name", ALL)
def test_describe_names_the_scheme(name):
    p = make_perturbation(name)
    assert p.name == name
    assert p.describe().startswith(name)


# ---------------------------------------------------------------------------------------------
# pixels: the paper's scheme
# ---------------------------------------------------------------------------------------------


def test_pixels_default_k_is_floor_sqrt_of_pixel_count():
    p = Pixels()
    assert p.resolved_k(28, 28) == 28
    assert p.resolved_k(32, 32) == 32
    assert p.resolved_k(10, 20) == math.isqrt(200) == 14
    assert Pixels(k=5).resolved_k(28, 28) == 5


def test_pixels_changes_at_most_k_pixels():
    x = images_like(200)
    out = Pixels()(x, keys_for(200))
    changed = changed_locations(x, out)
    assert int(changed.max()) <= 28
    assert int(changed.min()) >= 0
    assert int(changed.max()) >= 20  # with n ~ U{1..28} over 200 images some alter nearly all 28


@pytest.mark.parametrize("k", [None, 1, 5, 28, 100])
def test_pixels_exact_count_alters_exactly_k_distinct_pixels(k):
    # 0.5 cannot be drawn by value='binary', so every chosen pixel shows as changed
    x = torch.full((50, 1, 28, 28), 0.5)
    out = Pixels(k=k, count="exact", value="binary")(x, keys_for(50))
    expected = 28 if k is None else k
    assert changed_locations(x, out).tolist() == [expected] * 50
    assert set(out.unique().tolist()) <= {0.0, 0.5, 1.0}


def test_pixels_uniform_count_is_between_1_and_k_and_spread():
    x = torch.full((400, 1, 28, 28), 0.5)
    out = Pixels(k=10, count="uniform", value="binary")(x, keys_for(400))
    counts = changed_locations(x, out)
    assert int(counts.min()) >= 1 and int(counts.max()) <= 10
    hist = torch.bincount(counts, minlength=11)[1:]
    assert bool((hist > 0).all()), f"some counts in 1..10 never drawn: {hist.tolist()}"
    assert abs(float(counts.float().mean()) - 5.5) < 0.6


def test_pixels_chosen_positions_are_spread_over_the_image():
    x = torch.full((300, 1, 28, 28), 0.5)
    out = Pixels(k=28, count="exact", value="binary")(x, keys_for(300))
    hits = (out != x).sum(dim=0)[0]  # how often each location was chosen
    assert int((hits > 0).sum()) > 0.95 * 784
    quadrants = [hits[:14, :14].sum(), hits[:14, 14:].sum(), hits[14:, :14].sum(), hits[14:, 14:].sum()]
    total = float(hits.sum())
    assert all(abs(float(q) / total - 0.25) < 0.03 for q in quadrants)


def test_pixels_uniform_values_cover_unit_interval():
    x = torch.full((100, 1, 28, 28), 0.5)
    out = Pixels(k=28, count="exact", value="uniform")(x, keys_for(100))
    new = out[out != x]
    assert len(new) >= 100 * 27  # a uniform draw equal to 0.5 exactly is (almost) impossible
    assert abs(float(new.mean()) - 0.5) < 0.03
    assert float(new.min()) < 0.05 and float(new.max()) > 0.95


def test_pixels_binary_values_are_zero_or_one_about_equally():
    x = torch.full((100, 1, 28, 28), 0.5)
    out = Pixels(k=28, count="exact", value="binary")(x, keys_for(100))
    new = out[out != x]
    assert set(new.unique().tolist()) == {0.0, 1.0}
    assert abs(float(new.mean()) - 0.5) < 0.05


def test_pixels_colour_image_changes_whole_locations():
    x = torch.full((20, 3, 32, 32), 0.5)
    out = Pixels(count="exact", value="binary")(x, keys_for(20))
    differs = out != x  # (n, 3, H, W)
    per_location = differs.sum(dim=1)
    assert set(per_location.unique().tolist()) <= {0, 3}, "a chosen pixel must get new values in every channel"
    assert changed_locations(x, out).tolist() == [32] * 20  # default k = floor(sqrt(32 * 32))
    # channels of one location draw their own values
    assert bool((out[:, 0] != out[:, 1]).any())


def test_pixels_on_non_square_image():
    x = torch.full((10, 1, 10, 20), 0.5)
    p = Pixels(count="exact", value="binary")
    p.check_images((1, 10, 20))
    assert changed_locations(x, p(x, keys_for(10))).tolist() == [14] * 10


def test_pixels_k_equal_to_all_pixels_is_allowed():
    x = torch.full((3, 1, 4, 4), 0.5)
    p = Pixels(k=16, count="exact", value="binary")
    p.check_images((1, 4, 4))
    assert changed_locations(x, p(x, keys_for(3))).tolist() == [16] * 3


# ---------------------------------------------------------------------------------------------
# The other schemes
# ---------------------------------------------------------------------------------------------


def test_gaussian_noise_has_the_requested_sigma():
    x = torch.full((40, 1, 28, 28), 0.5)
    out = Gaussian(sigma=0.1)(x, keys_for(40))
    diff = out - x  # clipping at 0 and 1 is 5 sigma away: negligible
    assert abs(float(diff.mean())) < 0.005
    assert abs(float(diff.std()) - 0.1) < 0.005


def test_gaussian_large_sigma_is_clipped_to_unit_range():
    x = images_like(4)
    out = Gaussian(sigma=5.0)(x, keys_for(4))
    assert float(out.min()) == 0.0 and float(out.max()) == 1.0


def test_uniform_linf_stays_in_the_epsilon_box():
    x = torch.full((20, 3, 32, 32), 0.5)
    out = UniformLinf(epsilon=0.2)(x, keys_for(20))
    diff = out - x
    assert float(diff.abs().max()) <= 0.2 + 1e-6
    assert float(diff.max()) > 0.19 and float(diff.min()) < -0.19
    assert abs(float(diff.mean())) < 0.005


def test_salt_pepper_rate_sets_fraction_of_locations_to_0_or_1():
    x = torch.full((50, 3, 32, 32), 0.5)
    out = SaltPepper(rate=0.2)(x, keys_for(50))
    hit = (out != x).any(dim=1)
    assert abs(float(hit.float().mean()) - 0.2) < 0.01
    values = out.permute(0, 2, 3, 1)[hit]  # (hits, 3)
    assert set(values.unique().tolist()) == {0.0, 1.0}
    assert bool((values == values[:, :1]).all()), "salt or pepper must cover every channel of a location"
    assert abs(float(values[:, 0].mean()) - 0.5) < 0.03


def test_salt_pepper_rate_one_hits_every_location():
    x = torch.full((5, 1, 28, 28), 0.5)
    out = SaltPepper(rate=1.0)(x, keys_for(5))
    assert set(out.unique().tolist()) == {0.0, 1.0}


def test_blur_keeps_constant_images_and_smooths_noise():
    flat = torch.full((3, 1, 28, 28), 0.3)
    assert torch.allclose(Blur()(flat, keys_for(3)), flat, atol=1e-6)
    x = images_like(6)
    out = Blur()(x, keys_for(6))
    assert float(out.std()) < 0.7 * float(x.std())
    assert torch.allclose(out.mean(dim=(1, 2, 3)), x.mean(dim=(1, 2, 3)), atol=0.02)  # blur redistributes, keeps mass


def test_blur_width_differs_between_retries():
    x = images_like(1).expand(2, 1, 28, 28).contiguous()
    k = rng.point_keys(0, torch.tensor([0, 0]), torch.tensor([1, 2]))
    out = Blur(sigma_min=0.3, sigma_max=3.0)(x, k)
    assert not torch.allclose(out[0], out[1])


# ---------------------------------------------------------------------------------------------
# Errors: each bad parameter stops with one line
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,params,match",
    [
        ("gaussian", {"sigma": -0.1}, r"perturbation\.sigma must be >= 0, got -0\.1"),
        ("salt_pepper", {"rate": -0.01}, r"perturbation\.rate must be in \[0, 1\]"),
        ("salt_pepper", {"rate": 1.5}, r"perturbation\.rate must be in \[0, 1\]"),
        ("uniform_linf", {"epsilon": -1}, r"perturbation\.epsilon must be >= 0"),
        ("pixels", {"k": 0}, r"perturbation\.k must be >= 1"),
        ("pixels", {"k": -3}, r"perturbation\.k must be >= 1"),
        ("pixels", {"count": "some"}, r"perturbation\.count must be 'uniform' or 'exact'"),
        ("pixels", {"value": "gauss"}, r"perturbation\.value must be 'uniform' or 'binary'"),
        ("blur", {"kernel_size": 4}, r"kernel_size must be odd"),
        ("blur", {"kernel_size": 0}, r"kernel_size must be odd and >= 1"),
        ("blur", {"sigma_min": 2.0, "sigma_max": 1.0}, r"0 < sigma_min <= sigma_max"),
        ("blur", {"sigma_min": 0.0}, r"0 < sigma_min <= sigma_max"),
    ],
)
def test_bad_parameter_is_one_line_error(name, params, match):
    with pytest.raises(RobustlabError, match=match) as error:
        make_perturbation(name, **params)
    assert_one_line(error)


def test_unknown_scheme_lists_the_known_ones():
    with pytest.raises(
        RobustlabError, match=r"unknown perturbation scheme 'nope'; choose one of pixels, gaussian"
    ) as error:
        make_perturbation("nope")
    assert_one_line(error)


@pytest.mark.parametrize(
    "name,params", [("gaussian", {"sgima": 0.1}), ("pixels", {"k": 3, "radius": 2}), ("blur", {"sigma": 1.0})]
)
def test_unknown_parameter_is_named(name, params):
    with pytest.raises(RobustlabError, match=rf"perturbation '{name}' has no parameter\(s\)") as error:
        make_perturbation(name, **params)
    unknown = sorted(set(params) - set(SCHEMES[name].__dataclass_fields__))
    assert str(unknown) in str(error.value)
    assert_one_line(error)


@pytest.mark.parametrize("k,shape", [(785, (1, 28, 28)), (10000, (1, 28, 28)), (1025, (3, 32, 32)), (17, (1, 4, 4))])
def test_pixels_k_larger_than_image_is_refused(k, shape):
    with pytest.raises(
        RobustlabError, match=rf"perturbation\.k={k} is larger than the {shape[1] * shape[2]} pixels"
    ) as error:
        Pixels(k=k).check_images(shape)
    assert_one_line(error)


def test_blur_kernel_larger_than_image_is_refused():
    with pytest.raises(RobustlabError, match=r"kernel_size=9 is too large for 4x4 images") as error:
        Blur(kernel_size=9).check_images((1, 4, 4))
    assert_one_line(error)


@pytest.mark.parametrize("name", ALL)
def test_check_images_wants_chw(name):
    with pytest.raises(RobustlabError, match=r"expects images shaped \(C, H, W\), got \(28, 28\)") as error:
        make_perturbation(name).check_images((28, 28))
    assert_one_line(error)
