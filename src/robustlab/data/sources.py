"""The image datasets, read by torchvision's own loaders, turned into tensors in [0, 1].

A missing folder stops with one line that names the folder and the files expected there, instead
of torchvision's "Dataset not found" or a network traceback from a failed download.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torchvision import datasets

from robustlab.errors import RobustlabError, require

_IDX = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_CIFAR = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch", "batches.meta")


class _CIFAR10Files(datasets.CIFAR10):
    """torchvision's CIFAR-10 reader without its md5 checks (it then checks only that files exist).

    The md5s only accept the exact published archive, which rules out any subset or the tiny files
    tests write; the reader itself (pickle batches) is unchanged.
    """

    train_list = [[name, None] for name, _ in datasets.CIFAR10.train_list]
    test_list = [[name, None] for name, _ in datasets.CIFAR10.test_list]
    meta = {**datasets.CIFAR10.meta, "md5": None}


@dataclass(frozen=True)
class Source:
    name: str
    reader: type
    folder: str  # where, under the data root, torchvision looks for the files
    files: tuple[str, ...]
    shape: tuple[int, int, int]
    classes: int


SOURCES = {
    "mnist": Source("mnist", datasets.MNIST, "MNIST/raw", _IDX, (1, 28, 28), 10),
    "fashion_mnist": Source("fashion_mnist", datasets.FashionMNIST, "FashionMNIST/raw", _IDX, (1, 28, 28), 10),
    "cifar10": Source("cifar10", _CIFAR10Files, "cifar-10-batches-py", _CIFAR, (3, 32, 32), 10),
}


def get_source(name: str) -> Source:
    require(name in SOURCES, f"unknown dataset '{name}'; choose one of {', '.join(SOURCES)}")
    return SOURCES[name]


def _missing(source: Source, root: Path) -> list[str]:
    return [f for f in source.files if not (root / source.folder / f).is_file()]


def _download(source: Source, root: Path) -> None:
    try:
        source.reader(root=str(root), train=True, download=True)
        source.reader(root=str(root), train=False, download=True)
    except Exception as error:  # any network or archive failure becomes the one-line message below
        raise RobustlabError(
            f"could not download {source.name} into {root} ({type(error).__name__}); without internet put "
            f"{', '.join(_missing(source, root))} into {root / source.folder} or point ROBUSTLAB_DATA (data.root) "
            "elsewhere"
        ) from None


def ensure_files(source: Source, root: Path, download: bool | str) -> None:
    """Make sure the files are under ``root``: download them if allowed, else fail in one line."""
    missing = _missing(source, root)
    if missing and download in (True, "auto"):
        _download(source, root)
        missing = _missing(source, root)
    require(
        not missing,
        f"{source.name} not found: expected {', '.join(missing)} in {root / source.folder}; "
        "set ROBUSTLAB_DATA (or data.root) to the folder that holds it, or data.download=true with internet",
    )


def _as_tensor(data) -> torch.Tensor:
    """torchvision keeps images as uint8 (N, H, W) tensors or (N, H, W, C) arrays: make (N, C, H, W) floats."""
    x = torch.as_tensor(np.asarray(data))
    x = x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2)
    return x.to(torch.float32).div_(255.0).contiguous()


def load_split(
    name: str, root: str | Path, train: bool, download: bool | str = "auto"
) -> tuple[torch.Tensor, torch.Tensor]:
    """All images (N, C, H, W) in [0, 1] and labels (N,) of one split, through torchvision's reader."""
    source = get_source(name)
    root = Path(root).expanduser().resolve()
    ensure_files(source, root, download)
    try:
        dataset = source.reader(root=str(root), train=train, download=False)
    except Exception as error:
        raise RobustlabError(
            f"could not read {source.name} from {root / source.folder}: {error}".splitlines()[0]
        ) from None
    images, labels = _as_tensor(dataset.data), torch.as_tensor(np.asarray(dataset.targets), dtype=torch.int64)
    require(
        tuple(images.shape[1:]) == source.shape,
        f"{source.name} in {root} has images shaped {tuple(images.shape[1:])}, expected {source.shape}",
    )
    return images, labels
