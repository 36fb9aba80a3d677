"""A pair of digits as a binary task (the blog of shared/seeds/002: MNIST zeros vs ones).

Labels are -1 for the first digit and +1 for the second, the convention of the hinge loss
max(0, 1 - y f(x)); pixels stay in [0, 1] (image / 255) as the source reads them. ``train_subset``
and ``val_fraction`` count images of the two digits only, so a subset keeps its size whatever
share of the dataset the two digits are.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from robustlab.data.module import Split, VisionDataModule, train_val_split
from robustlab.errors import require


def check_digits(digits, classes: int) -> tuple[int, int]:
    """Two different class numbers of the source, as a tuple; one line naming the fix otherwise."""
    pair = list(digits) if isinstance(digits, Sequence) and not isinstance(digits, str) else [digits]
    usage = f"data.digits must be two different digits in 0..{classes - 1}, e.g. [0, 1]"
    require(len(pair) == 2, f"{usage}; got {pair}")
    require(all(isinstance(d, int) and not isinstance(d, bool) for d in pair), f"{usage}; got {pair} (not integers)")
    require(all(0 <= d < classes for d in pair), f"{usage}; got {pair} (outside 0..{classes - 1})")
    require(pair[0] != pair[1], f"{usage}; got the same digit twice: {pair}")
    return pair[0], pair[1]


class BinaryDataModule(VisionDataModule):
    """The images of two digits of a 10-class source, labelled -1 (first digit) and +1 (second)."""

    def __init__(
        self,
        digits=(0, 1),
        name: str = "mnist",
        root: str = "data",
        download: bool | str = "auto",
        train_subset: int | None = None,
        val_fraction: float = 0.0,
        batch_size: int = 100,
        eval_batch_size: int = 1000,
        num_workers: int = 0,
        seed: int = 0,
    ):
        # The parent reads every image of the source; the subset and validation split are taken
        # here, among the images of the two digits.
        super().__init__(name, root, download, None, 0.0, batch_size, eval_batch_size, num_workers, seed)
        self.digits = check_digits(digits, self.source.classes)
        self.pair_subset, self.pair_val_fraction = train_subset, val_fraction

    @property
    def num_classes(self) -> int:
        return 2

    def setup(self, stage: str | None = None) -> None:
        if self.train is not None:
            return
        super().setup(stage)
        train = self.pair(self.train, "training")
        train_pos, val_pos = train_val_split(len(train), self.pair_subset, self.pair_val_fraction, self.seed)
        self.train, self.val = train.take(train_pos), train.take(val_pos)
        self.test = self.pair(self.test, "test")

    def pair(self, split: Split, which: str) -> Split:
        """The images of the two digits, labels mapped to -1/+1; ``index`` keeps the dataset index."""
        first, second = self.digits
        for digit in self.digits:
            require(
                bool((split.labels == digit).any()),
                f"no images of digit {digit} in the {which} split of {self.name} under {self.root}; "
                "check data.digits and the data folder (ROBUSTLAB_DATA)",
            )
        kept = split.take(torch.nonzero((split.labels == first) | (split.labels == second)).flatten())
        kept.labels = torch.where(kept.labels == first, -1, 1).to(torch.int64)
        return kept

    def describe(self) -> dict:
        """What metrics.json records about the data."""
        return {
            "name": self.name,
            "digits": list(self.digits),
            "labels": {str(self.digits[0]): -1, str(self.digits[1]): 1},
            "root": str(Path(self.root).resolve()),
            "train_images": len(self.train),
            "test_images": len(self.test),
        }
