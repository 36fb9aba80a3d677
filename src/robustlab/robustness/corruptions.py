"""Corruption schemes modelled on MNIST-C (Mu & Gilmer 2019) and ImageNet-C (Hendrycks & Dietterich 2019).

Each corruption has five severity levels. Unlike the benchmarks' fixed corruption per level, RPR needs a
fresh random corruption per retry: severity s draws its strength uniformly between the level below and
level s (``LEVELS``), plus a random sign or direction, and (fog) a random field. All numbers come from
``counter_rng`` keyed on (seed, point, retry), so a point's corruptions do not depend on the batch.

The operations are torchvision.transforms.v2's, applied to the whole batch at once with one parameter per
image: the geometric ones build torchvision's own inverse affine matrix per image and resample the batch
through torchvision's grid transform; brightness (ImageNet-C: V + c in HSV) uses torchvision's HSV
conversion; contrast is torchvision's blend with the grayscale mean. tests/test_corruptions.py checks each
against the public v2 function applied image by image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF
from torchvision.transforms.v2.functional._color import _hsv_to_rgb, _rgb_to_hsv
from torchvision.transforms.v2.functional._geometry import _apply_grid_transform, _get_inverse_affine_matrix

from robustlab.errors import require
from robustlab.robustness import counter_rng as rng
from robustlab.robustness.perturbations import Perturbation

# Strength at the edges of the five severities: severity s draws between LEVELS[s - 1] and LEVELS[s].
LEVELS = {
    "rotation": (0, 10, 20, 30, 45, 60),  # degrees, either sign (MNIST-C rotate: up to 60)
    "shear": (0, 5, 10, 20, 30, 40),  # degrees of horizontal shear, either sign
    "scale": (1.0, 0.9, 0.8, 0.7, 0.6, 0.5),  # zoom-out factor (MNIST-C scale)
    "translation": (0, 0.05, 0.1, 0.15, 0.2, 0.25),  # shift as a fraction of the image side, random direction
    "brightness": (0, 0.1, 0.2, 0.3, 0.4, 0.5),  # added to HSV value (ImageNet-C brightness)
    "contrast": (1.0, 0.4, 0.3, 0.2, 0.1, 0.05),  # contrast factor (ImageNet-C contrast)
    "motion_blur": (0, 0.05, 0.1, 0.15, 0.2, 0.25),  # blur length as a fraction of the image side, random angle
    "impulse_noise": (0, 0.03, 0.06, 0.09, 0.17, 0.27),  # share of values set to 0 or 1 (ImageNet-C impulse_noise)
}
FOG = ((1.5, 2.0), (2.0, 2.0), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4))  # ImageNet-C fog: (intensity, octave decay)
SEVERITIES = (1, 2, 3, 4, 5)


@dataclass
class Corruption(Perturbation):
    """Base: ``severity`` 1..5 and the strength it draws per retry (``strength``)."""

    severity: int = 3
    name = "corruption"

    def __post_init__(self) -> None:
        require(self.severity in SEVERITIES, f"perturbation.severity must be one of 1..5, got {self.severity}")

    def check_images(self, shape: tuple[int, ...]) -> None:
        super().check_images(shape)
        require(
            shape[0] in (1, 3), f"perturbation '{self.name}' works on 1- or 3-channel images, got {shape[0]} channels"
        )

    def strength(self, keys: torch.Tensor, stream: int = 0) -> torch.Tensor:
        """One strength per image, uniform within this severity's band: shape (n,)."""
        low, high = LEVELS[self.name][self.severity - 1], LEVELS[self.name][self.severity]
        return low + (high - low) * rng.uniform(keys, 1, stream=stream)[:, 0].double()

    def describe(self) -> str:
        return f"{self.name}(severity={self.severity})"


def signs(keys: torch.Tensor, stream: int) -> torch.Tensor:
    return torch.where(rng.uniform(keys, 1, stream=stream)[:, 0] < 0.5, -1.0, 1.0).double()


def affine_batch(images: torch.Tensor, angle, translate, scale, shear) -> torch.Tensor:
    """torchvision's ``affine`` (bilinear, zero fill, centre of the image), one set of parameters per image.

    The matrices are torchvision's (``_get_inverse_affine_matrix``); the grid is its ``_affine_grid`` with a
    batch of matrices instead of one, so the whole batch is resampled in one grid_sample call."""
    n, _, h, w = images.shape
    angle, translate, scale, shear = (torch.as_tensor(t).tolist() for t in (angle, translate, scale, shear))  # one copy
    rows = [_get_inverse_affine_matrix([0.0, 0.0], angle[i], translate[i], scale[i], [shear[i], 0.0]) for i in range(n)]
    theta = torch.tensor(rows, dtype=images.dtype, device=images.device).view(n, 2, 3)
    base = torch.ones(1, h * w, 3, dtype=images.dtype, device=images.device)
    xs = torch.linspace((1.0 - w) * 0.5, (w - 1.0) * 0.5, steps=w, device=images.device)
    ys = torch.linspace((1.0 - h) * 0.5, (h - 1.0) * 0.5, steps=h, device=images.device)
    base[0, :, 0], base[0, :, 1] = xs.repeat(h), ys.repeat_interleave(w)
    scaled = theta.transpose(1, 2) / torch.tensor([0.5 * w, 0.5 * h], dtype=images.dtype, device=images.device)
    grid = base.expand(n, -1, -1).bmm(scaled).view(n, h, w, 2)
    return _apply_grid_transform(images, grid, "bilinear", fill=None)


@dataclass
class Rotation(Corruption):
    """Rotate about the centre by a random angle of either sign."""

    name = "rotation"

    def _apply(self, images, keys):
        n = len(images)
        angle = self.strength(keys) * signs(keys, 1)
        return affine_batch(images, angle, torch.zeros(n, 2), torch.ones(n), torch.zeros(n))


@dataclass
class Shear(Corruption):
    """Horizontal shear by a random angle of either sign."""

    name = "shear"

    def _apply(self, images, keys):
        n = len(images)
        shear = self.strength(keys) * signs(keys, 1)
        return affine_batch(images, torch.zeros(n), torch.zeros(n, 2), torch.ones(n), shear)


@dataclass
class Scale(Corruption):
    """Zoom out about the centre by a random factor."""

    name = "scale"

    def _apply(self, images, keys):
        n = len(images)
        return affine_batch(images, torch.zeros(n), torch.zeros(n, 2), self.strength(keys), torch.zeros(n))


@dataclass
class Translation(Corruption):
    """Shift by a random distance in a random direction (sub-pixel shifts are interpolated)."""

    name = "translation"

    def _apply(self, images, keys):
        n, _, h, w = images.shape
        distance = self.strength(keys)
        direction = 2 * math.pi * rng.uniform(keys, 1, stream=1)[:, 0].double()
        shift = torch.stack([distance * w * torch.cos(direction), distance * h * torch.sin(direction)], dim=1)
        return affine_batch(images, torch.zeros(n), shift, torch.ones(n), torch.zeros(n))


@dataclass
class Brightness(Corruption):
    """ImageNet-C brightness: add c to the value channel in HSV (for grayscale images: to the pixel)."""

    name = "brightness"

    def _apply(self, images, keys):
        c = self.strength(keys).to(images.dtype).view(-1, 1, 1)
        if images.shape[1] == 1:  # HSV value of a gray pixel is the pixel
            return images + c.unsqueeze(1)
        hsv = _rgb_to_hsv(images)
        hsv = torch.stack([hsv[:, 0], hsv[:, 1], (hsv[:, 2] + c).clamp(0, 1)], dim=1)
        return _hsv_to_rgb(hsv)


@dataclass
class Contrast(Corruption):
    """torchvision's adjust_contrast: blend each image with its grayscale mean by a random factor."""

    name = "contrast"

    def _apply(self, images, keys):
        factor = self.strength(keys).to(images.dtype).view(-1, 1, 1, 1)
        gray = TF.rgb_to_grayscale(images) if images.shape[1] == 3 else images
        mean = gray.mean(dim=(-3, -2, -1), keepdim=True)
        return factor * images + (1 - factor) * mean


@dataclass
class MotionBlur(Corruption):
    """Average along a line of random angle through each pixel (ImageNet-C motion_blur), length from the severity."""

    name = "motion_blur"

    def _apply(self, images, keys):
        n, c, h, w = images.shape
        length = (self.strength(keys) * min(h, w)).clamp(min=1.0)  # pixels
        angle = math.pi * rng.uniform(keys, 1, stream=1)[:, 0].double()
        half = math.ceil(LEVELS[self.name][self.severity] * min(h, w) / 2)
        offsets = torch.arange(-half, half + 1, dtype=torch.float64, device=images.device)
        v, u = torch.meshgrid(offsets, offsets, indexing="ij")
        # Anti-aliased line kernel: weight falls off linearly with the distance to the segment.
        dx, dy = torch.cos(angle).view(n, 1, 1), torch.sin(angle).view(n, 1, 1)
        along = (u * dx + v * dy).clamp(-length.view(n, 1, 1) / 2, length.view(n, 1, 1) / 2)
        distance = torch.hypot(u - along * dx, v - along * dy)
        kernel = (1 - distance).clamp(min=0)
        kernel = (kernel / kernel.sum(dim=(1, 2), keepdim=True)).to(images.dtype)
        size = 2 * half + 1
        x = F.pad(images.reshape(1, n * c, h, w), (half, half, half, half), mode="replicate")
        weights = kernel.repeat_interleave(c, dim=0).view(n * c, 1, size, size)
        return F.conv2d(x, weights, groups=n * c).view(n, c, h, w)


@dataclass
class ImpulseNoise(Corruption):
    """ImageNet-C impulse noise: each value (pixel and channel), with a random probability, becomes 0 or 1."""

    name = "impulse_noise"

    def _apply(self, images, keys):
        rate = self.strength(keys).to(images.dtype).view(-1, 1, 1, 1)
        size = images[0].numel()
        hit = rng.uniform(keys, size, stream=1).view_as(images) < rate
        salt = (rng.uniform(keys, size, stream=2).view_as(images) >= 0.5).to(images.dtype)
        return torch.where(hit, salt, images)


@dataclass
class Fog(Corruption):
    """ImageNet-C fog: add a random fractal field and rescale. The plasma fractal is replaced by a sum of
    bilinearly upsampled random grids (octaves) whose amplitude falls by the severity's decay per octave."""

    name = "fog"

    def _apply(self, images, keys):
        n, _, h, w = images.shape
        intensity, decay = FOG[self.severity - 1]
        field = torch.zeros(n, 1, h, w, dtype=images.dtype, device=images.device)
        octaves = max(1, math.ceil(math.log2(max(h, w))) - 1)
        for octave in range(octaves):
            cells = 2 ** (octave + 1) + 1
            grid = rng.uniform(keys, cells * cells, stream=octave + 1).view(n, 1, cells, cells).to(images.dtype)
            up = F.interpolate(grid, size=(h, w), mode="bilinear", align_corners=True)
            field += up / decay**octave
        low = field.amin(dim=(1, 2, 3), keepdim=True)
        field = (field - low) / (field.amax(dim=(1, 2, 3), keepdim=True) - low).clamp(min=1e-6)
        top = images.amax(dim=(1, 2, 3), keepdim=True)
        return (images + intensity * field) * top / (top + intensity)


CORRUPTIONS = (Rotation, Shear, Scale, Translation, Brightness, Contrast, MotionBlur, ImpulseNoise, Fog)
