"""Random perturbation schemes R for the RPR measure.

Each scheme maps a batch of original images in [0, 1] and one random key per image (see
``counter_rng``) to perturbed copies. Every retry starts from the original image (the caller
passes the original each time), inputs are never modified in place, outputs stay in [0, 1],
and all work is batched on the images' device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from robustlab.errors import require
from robustlab.robustness import counter_rng as rng


class Perturbation:
    """Base class: subclasses implement ``_apply``; ``__call__`` adds the shared guarantees."""

    name = "perturbation"

    def check_images(self, shape: tuple[int, ...]) -> None:
        """Raise a one-line error if images of ``shape`` (C, H, W) cannot be perturbed."""
        require(len(shape) == 3, f"perturbation '{self.name}' expects images shaped (C, H, W), got {tuple(shape)}")

    def __call__(self, images: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        if len(images) == 0:  # e.g. no point failed: nothing to regenerate
            return images.clone()
        out = self._apply(images, keys)
        return out.clamp_(0.0, 1.0)

    def _apply(self, images: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def describe(self) -> str:
        return self.name


@dataclass
class Pixels(Perturbation):
    """The paper's scheme: alter at most ``k`` pixels, each set to a uniformly random value.

    ``k=None`` means floor(sqrt(H * W)), 28 for MNIST. Readings of the paper's sentence, as config:
    ``count='uniform'`` alters a random number n ~ U{1..k} of distinct pixels (default: "a random
    number of at most k"); ``count='exact'`` alters exactly k. ``value='uniform'`` draws each new
    value from U[0, 1] (default: "a uniformly random value"); ``value='binary'`` from {0, 1}.
    For colour images a pixel is a location: all its channels get new values.
    """

    k: int | None = None
    count: Literal["uniform", "exact"] = "uniform"
    value: Literal["uniform", "binary"] = "uniform"
    name = "pixels"

    def __post_init__(self) -> None:
        require(self.k is None or self.k >= 1, f"perturbation.k must be >= 1 (got {self.k}); use null for sqrt(pixels)")
        require(
            self.count in ("uniform", "exact"), f"perturbation.count must be 'uniform' or 'exact', got '{self.count}'"
        )
        require(
            self.value in ("uniform", "binary"), f"perturbation.value must be 'uniform' or 'binary', got '{self.value}'"
        )

    def resolved_k(self, height: int, width: int) -> int:
        return self.k if self.k is not None else math.isqrt(height * width)

    def check_images(self, shape: tuple[int, ...]) -> None:
        super().check_images(shape)
        pixels = shape[1] * shape[2]
        k = self.resolved_k(shape[1], shape[2])
        require(
            k <= pixels,
            f"perturbation.k={k} is larger than the {pixels} pixels of a {shape[1]}x{shape[2]} image; lower it",
        )

    def _apply(self, images: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        n, c, h, w = images.shape
        k = self.resolved_k(h, w)
        # Distinct positions: the k smallest of one random score per pixel. The pixel index sits in the
        # low bits so no two scores tie and top-k is the same on every device.
        pixel = torch.arange(h * w, device=keys.device)
        scores = (rng.combine(keys.unsqueeze(-1), pixel) << (h * w).bit_length()) | pixel
        positions = scores.topk(k, dim=1, largest=False, sorted=True).indices  # (n, k)
        if self.count == "uniform":
            altered = rng.integers(keys, 1, k, 1, stream=1)  # (n, 1)
            chosen = torch.arange(k, device=keys.device) < altered
        else:
            chosen = torch.ones(n, k, dtype=torch.bool, device=keys.device)
        values = rng.uniform(keys, k * c, stream=2).view(n, k, c).transpose(1, 2).to(images.dtype)
        if self.value == "binary":
            values = (values >= 0.5).to(images.dtype)
        flat = images.reshape(n, c, h * w).clone()
        index = positions.unsqueeze(1).expand(n, c, k)
        new = torch.where(chosen.unsqueeze(1), values, flat.gather(2, index))
        flat.scatter_(2, index, new)
        return flat.view(n, c, h, w)

    def describe(self) -> str:
        return f"pixels(k={self.k or 'sqrt'}, count={self.count}, value={self.value})"


@dataclass
class Gaussian(Perturbation):
    """Add N(0, sigma^2) noise to every pixel and channel."""

    sigma: float = 0.3
    name = "gaussian"

    def __post_init__(self) -> None:
        require(self.sigma >= 0, f"perturbation.sigma must be >= 0, got {self.sigma}")

    def _apply(self, images: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        noise = rng.normal(keys, images[0].numel()).view_as(images).to(images.dtype)
        return images + self.sigma * noise

    def describe(self) -> str:
        return f"gaussian(sigma={self.sigma})"


@dataclass
class SaltPepper(Perturbation):
    """Set each pixel location, with probability ``rate``, to 0 or 1 (equally likely)."""

    rate: float = 0.05
    name = "salt_pepper"

    def __post_init__(self) -> None:
        require(0 <= self.rate <= 1, f"perturbation.rate must be in [0, 1], got {self.rate}")

    def _apply(self, images: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        n, c, h, w = images.shape
        hit = rng.uniform(keys, h * w, stream=0).view(n, 1, h, w) < self.rate
        salt = (rng.uniform(keys, h * w, stream=1).view(n, 1, h, w) >= 0.5).to(images.dtype)
        return torch.where(hit, salt.expand(n, c, h, w), images)

    def describe(self) -> str:
        return f"salt_pepper(rate={self.rate})"


@dataclass
class UniformLinf(Perturbation):
    """Add noise drawn uniformly from the l-infinity box [-epsilon, epsilon]^d."""

    epsilon: float = 0.3
    name = "uniform_linf"

    def __post_init__(self) -> None:
        require(self.epsilon >= 0, f"perturbation.epsilon must be >= 0, got {self.epsilon}")

    def _apply(self, images: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        u = rng.uniform(keys, images[0].numel()).view_as(images).to(images.dtype)
        return images + self.epsilon * (2.0 * u - 1.0)

    def describe(self) -> str:
        return f"uniform_linf(epsilon={self.epsilon})"


@dataclass
class Blur(Perturbation):
    """Gaussian blur with a random width sigma ~ U[sigma_min, sigma_max] per retry."""

    kernel_size: int = 5
    sigma_min: float = 0.5
    sigma_max: float = 1.5
    name = "blur"

    def __post_init__(self) -> None:
        require(
            self.kernel_size >= 1 and self.kernel_size % 2 == 1,
            f"perturbation.kernel_size must be odd and >= 1, got {self.kernel_size}",
        )
        require(
            0 < self.sigma_min <= self.sigma_max,
            f"perturbation needs 0 < sigma_min <= sigma_max, got {self.sigma_min}, {self.sigma_max}",
        )

    def check_images(self, shape: tuple[int, ...]) -> None:
        super().check_images(shape)
        require(
            self.kernel_size // 2 < min(shape[1:]),
            f"perturbation.kernel_size={self.kernel_size} is too large for {shape[1]}x{shape[2]} images",
        )

    def _apply(self, images: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        n, c, h, w = images.shape
        sigma = self.sigma_min + (self.sigma_max - self.sigma_min) * rng.uniform(keys, 1)  # (n, 1)
        half = self.kernel_size // 2
        offsets = torch.arange(-half, half + 1, device=images.device, dtype=images.dtype)
        kernel = torch.exp(-0.5 * (offsets / sigma.to(images.dtype)) ** 2)
        kernel = (kernel / kernel.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)  # (n*c, K)
        x = F.pad(images.reshape(1, n * c, h, w), (half, half, half, half), mode="reflect")
        x = F.conv2d(x, kernel.view(n * c, 1, 1, -1), groups=n * c)
        x = F.conv2d(x, kernel.view(n * c, 1, -1, 1), groups=n * c)
        return x.view(n, c, h, w)

    def describe(self) -> str:
        return f"blur(kernel={self.kernel_size}, sigma=[{self.sigma_min}, {self.sigma_max}])"


SCHEMES = {cls.name: cls for cls in (Pixels, Gaussian, SaltPepper, UniformLinf, Blur)}
