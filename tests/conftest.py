"""Shared fixtures: tiny, learnable datasets written in the real on-disk layouts, read back by
torchvision's own readers, plus helpers to compose the Hydra config in-process.

Images: each class c gets a bright block at its own grid position over a dim noisy background,
so a small CNN learns them in a handful of optimizer steps. Nothing here touches the network or
/work/shared.
"""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

NUM_CLASSES = 10


# ---------------------------------------------------------------------------------------------
# Image synthesis
# ---------------------------------------------------------------------------------------------


def balanced_labels(n: int, seed: int) -> np.ndarray:
    """n labels, classes as even as possible, in a seeded random order."""
    labels = np.arange(n) % NUM_CLASSES
    return np.random.default_rng(seed).permutation(labels).astype(np.uint8)


def block_images(labels: np.ndarray, height: int, width: int, channels: int, seed: int) -> np.ndarray:
    """uint8 images (N, H, W, C): background noise 0..40 and a 200..255 block at the class's place."""
    rng = np.random.default_rng(seed)
    n = len(labels)
    images = rng.integers(0, 41, size=(n, height, width, channels), dtype=np.uint8)
    rows_per, cols_per = height // 2, width // 5
    for i, c in enumerate(labels):
        r0 = (int(c) // 5) * rows_per + 2
        c0 = (int(c) % 5) * cols_per + 1
        images[i, r0 : r0 + rows_per - 4, c0 : c0 + cols_per - 2, :] = rng.integers(200, 256, dtype=np.uint8)
    return images


# ---------------------------------------------------------------------------------------------
# MNIST / Fashion-MNIST (IDX files)
# ---------------------------------------------------------------------------------------------


def write_idx_images(path: Path, images: np.ndarray) -> None:
    """IDX3 uint8: magic 0x00000803, then N, rows, cols big-endian, then the pixels."""
    n, h, w = images.shape
    path.write_bytes(struct.pack(">IIII", 0x00000803, n, h, w) + images.astype(np.uint8).tobytes())


def write_idx_labels(path: Path, labels: np.ndarray) -> None:
    """IDX1 uint8: magic 0x00000801, then N big-endian, then the labels."""
    path.write_bytes(struct.pack(">II", 0x00000801, len(labels)) + labels.astype(np.uint8).tobytes())


def write_tiny_idx(root: Path, folder: str = "MNIST", n_train: int = 300, n_test: int = 100, seed: int = 0) -> dict:
    """Write ``<root>/<folder>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte``; return the arrays."""
    raw = Path(root) / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for prefix, n, s in (("train", n_train, seed), ("t10k", n_test, seed + 1)):
        labels = balanced_labels(n, s)
        images = block_images(labels, 28, 28, 1, s)[..., 0]
        write_idx_images(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx_labels(raw / f"{prefix}-labels-idx1-ubyte", labels)
        arrays[prefix] = (images, labels)
    return arrays


# ---------------------------------------------------------------------------------------------
# CIFAR-10 (python pickles, as torchvision's CIFAR10 reads them)
# ---------------------------------------------------------------------------------------------


def _cifar_batch(images: np.ndarray, labels: np.ndarray) -> dict:
    # The published batches are Python 2 pickles whose str keys load (encoding="latin1") as str:
    # torchvision reads entry["data"] (N x 3072 uint8, channel-major rows) and entry["labels"].
    data = images.transpose(0, 3, 1, 2).reshape(len(images), 3072).astype(np.uint8)
    return {
        "batch_label": "tiny",
        "labels": [int(v) for v in labels],
        "data": data,
        "filenames": ["x.png"] * len(labels),
    }


def write_tiny_cifar10(root: Path, per_batch: int = 20, n_test: int = 50, seed: int = 0) -> dict:
    """Write ``<root>/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}``; return the arrays."""
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    train_images, train_labels = [], []
    for b in range(1, 6):
        labels = balanced_labels(per_batch, seed + b)
        images = block_images(labels, 32, 32, 3, seed + b)
        with open(folder / f"data_batch_{b}", "wb") as handle:
            pickle.dump(_cifar_batch(images, labels), handle)
        train_images.append(images)
        train_labels.append(labels)
    labels = balanced_labels(n_test, seed + 10)
    images = block_images(labels, 32, 32, 3, seed + 10)
    with open(folder / "test_batch", "wb") as handle:
        pickle.dump(_cifar_batch(images, labels), handle)
    meta = {"num_cases_per_batch": per_batch, "label_names": [f"class{i}" for i in range(NUM_CLASSES)], "num_vis": 3072}
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump(meta, handle)
    return {"train": (np.concatenate(train_images), np.concatenate(train_labels)), "test": (images, labels)}


# ---------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_mnist(tmp_path_factory) -> tuple[Path, dict]:
    """(root, arrays): a 300-train / 100-test MNIST-layout folder."""
    root = tmp_path_factory.mktemp("mnist_root")
    return root, write_tiny_idx(root, "MNIST")


@pytest.fixture(scope="session")
def tiny_mnist_root(tiny_mnist) -> Path:
    return tiny_mnist[0]


@pytest.fixture(scope="session")
def tiny_fashion(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("fashion_root")
    return root, write_tiny_idx(root, "FashionMNIST", n_train=200, n_test=60, seed=5)


@pytest.fixture(scope="session")
def tiny_cifar(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("cifar_root")
    return root, write_tiny_cifar10(root)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Any attempt to open a URL fails at once (no test may touch the network)."""
    import socket
    import urllib.request

    def refuse(*args, **kwargs):
        raise OSError("network disabled in tests")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture(scope="session", autouse=True)
def _few_threads():
    """CI machines may have 2 cores shared with other work: one torch thread is as fast for these
    tiny models and leaves the other core free. Session-wide, so module fixtures get it too."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session", autouse=True)
def _outputs_in_tmp(tmp_path_factory):
    """Runs, multiruns and the model cache of every test (and of the CLI subprocesses they start,
    which inherit the environment) go to a temporary folder, never into the repository."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ROBUSTLAB_OUTPUT", str(tmp_path_factory.mktemp("outputs")))
        yield


def compose_config(overrides: list[str]):
    """The root Hydra config composed in-process (no working-dir change, no run folder)."""
    from hydra import compose, initialize_config_dir

    from robustlab.cli import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


def tiny_run_overrides(data_root: Path, **extra) -> list[str]:
    """Overrides for a pipeline run that takes seconds on the tiny MNIST folder."""
    values = {
        "experiment": "rpr_mnist",
        "data.root": str(data_root),
        "data.download": "false",
        "data.batch_size": 16,
        "profile.train_subset": 200,
        "profile.epochs": 1,
        "profile.max_steps": 5,
        "profile.rpr_train_points": 100,
        "profile.rpr_test_points": 40,
        "rpr.balance.per_class": 2,
        "rpr.progress": "false",
        "model.channels": "[4,8]",
        "trainer.enable_progress_bar": "false",
        "result_cache": "null",  # each test measures for itself; tests/test_result_cache.py turns the cache on
    }
    values.update(extra)
    return [f"{k}={v}" for k, v in values.items()]
