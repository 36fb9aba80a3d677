"""Shared by the examples: a small image folder (two classes of coloured squares) written as PNG files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def write_image_folder(root: Path, per_class: int = 6, size: int = 40) -> Path:
    """``root/images/{bright,dark}/*.png``: torchvision ImageFolder's layout."""
    rng = np.random.default_rng(0)
    for name, level in (("bright", 200), ("dark", 40)):
        folder = root / "images" / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 30, size=(size, size, 3)) + level
            Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(folder / f"{i}.png")
    return root / "images"
