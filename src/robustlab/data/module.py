"""Lightning data module over the torchvision datasets, held as tensors.

The datasets here fit in memory as tensors (MNIST: 60,000 x 784 floats), which makes training
and RPR faster than per-item transforms and gives every point a stable *dataset index*: the RPR
measure derives a point's random perturbations from it, so a subset or a shard keeps its numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from robustlab.data.sources import get_source, load_split
from robustlab.errors import require


@dataclass
class Split:
    """Images, labels and their indices in the original torchvision dataset."""

    images: torch.Tensor
    labels: torch.Tensor
    index: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, positions: torch.Tensor) -> Split:
        return Split(self.images[positions], self.labels[positions], self.index[positions])

    def loader(self, batch_size: int, shuffle: bool = False, seed: int = 0, num_workers: int = 0) -> DataLoader:
        generator = torch.Generator().manual_seed(seed) if shuffle else None
        dataset = TensorDataset(self.images, self.labels)
        return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator, num_workers=num_workers)


def sample_points(split: Split, count: int | None, seed: int) -> Split:
    """A seeded random subset of ``count`` points (all when None), kept in dataset order."""
    if count is None or count >= len(split):
        return split
    require(count >= 1, f"rpr point counts must be >= 1 or null (all), got {count}")
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))[:count]
    return split.take(order.sort().values)


def train_val_split(
    n: int, train_subset: int | None, val_fraction: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Deterministic per seed: shuffle 0..n-1, keep ``train_subset`` of them, hold out ``val_fraction``."""
    require(0.0 <= val_fraction < 1.0, f"data.val_fraction must be in [0, 1), got {val_fraction}")
    require(
        train_subset is None or 1 <= train_subset <= n,
        f"data.train_subset must be in 1..{n} (the training images found), got {train_subset}",
    )
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    order = order[: train_subset or n]
    n_val = int(round(val_fraction * len(order)))
    return order[n_val:].sort().values, order[:n_val].sort().values


class VisionDataModule(pl.LightningDataModule):
    """MNIST, Fashion-MNIST or CIFAR-10: train / val / test splits as tensors in [0, 1]."""

    def __init__(
        self,
        name: str = "mnist",
        root: str = "data",
        download: bool | str = "auto",
        train_subset: int | None = None,
        val_fraction: float = 0.0,
        batch_size: int = 128,
        eval_batch_size: int = 1024,
        num_workers: int = 0,
        seed: int = 0,
        train_index: torch.Tensor | None = None,
    ):
        super().__init__()
        self.source = get_source(name)
        require(batch_size >= 1 and eval_batch_size >= 1, "data.batch_size and data.eval_batch_size must be >= 1")
        self.name, self.root, self.download = name, root, download
        self.train_subset, self.val_fraction, self.seed = train_subset, val_fraction, seed
        self.batch_size, self.eval_batch_size, self.num_workers = batch_size, eval_batch_size, num_workers
        self.train_index = train_index
        self.train: Split | None = None
        self._train_loader: DataLoader | None = None
        self._pending_shuffle_state: torch.Tensor | None = None

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.source.shape

    @property
    def num_classes(self) -> int:
        return self.source.classes

    def setup(self, stage: str | None = None) -> None:
        if self.train is not None:
            return
        train_images, train_labels = load_split(self.name, self.root, train=True, download=self.download)
        test_images, test_labels = load_split(self.name, self.root, train=False, download=self.download)
        full = Split(train_images, train_labels, torch.arange(len(train_labels)))
        train_pos, val_pos = train_val_split(len(full), self.train_subset, self.val_fraction, self.seed)
        self.train, self.val = full.take(train_pos), full.take(val_pos)
        self.test = Split(test_images, test_labels, torch.arange(len(test_labels)))
        if self.train_index is not None:
            self.train = self.restrict(self.train, torch.as_tensor(self.train_index))

    @staticmethod
    def restrict(split: Split, index: torch.Tensor) -> Split:
        """The points of ``split`` whose dataset index is in ``index`` (in the order of ``index``)."""
        position = {int(i): p for p, i in enumerate(split.index)}
        missing = [int(i) for i in index if int(i) not in position]
        require(not missing, f"train_index names points outside the training split, e.g. {missing[:5]}")
        return split.take(torch.tensor([position[int(i)] for i in index], dtype=torch.int64))

    def with_train_index(self, index: torch.Tensor) -> VisionDataModule:
        """Same data and validation split, training on the given dataset indices only (for M_R)."""
        module = VisionDataModule(
            self.name,
            self.root,
            self.download,
            self.train_subset,
            self.val_fraction,
            self.batch_size,
            self.eval_batch_size,
            self.num_workers,
            self.seed,
        )
        self.setup()
        module.train, module.val, module.test = self.restrict(self.train, index), self.val, self.test
        return module

    def train_dataloader(self) -> DataLoader:
        loader = self.train.loader(self.batch_size, shuffle=True, seed=self.seed, num_workers=self.num_workers)
        if self._pending_shuffle_state is not None:  # a resumed fit: shuffle on from where the checkpoint was
            loader.generator.set_state(self._pending_shuffle_state)
            self._pending_shuffle_state = None
        self._train_loader = loader
        return loader

    # The shuffling generator's state is part of a Lightning checkpoint (saved at an epoch end, put back
    # before the resumed fit's loader first iterates), so a resumed fit shuffles its next epochs exactly
    # as the uninterrupted fit does (robustlab.pipelines.resume).
    def state_dict(self) -> dict:
        return {} if self._train_loader is None else {"shuffle_generator": self._train_loader.generator.get_state()}

    def load_state_dict(self, state_dict: dict) -> None:
        self._pending_shuffle_state = state_dict.get("shuffle_generator")

    def val_dataloader(self) -> DataLoader | list:
        return self.val.loader(self.eval_batch_size, num_workers=self.num_workers) if len(self.val) else []

    def test_dataloader(self) -> DataLoader:
        return self.test.loader(self.eval_batch_size, num_workers=self.num_workers)
