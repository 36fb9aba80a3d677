"""The data module over tiny files in the real layouts, read by torchvision's own readers."""

from __future__ import annotations

from urllib.error import URLError

import numpy as np
import pytest
import torch

from robustlab.data import SOURCES, VisionDataModule, load_split, train_val_split
from robustlab.errors import RobustlabError

IDX_FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
CIFAR_FILES = [
    "data_batch_1",
    "data_batch_2",
    "data_batch_3",
    "data_batch_4",
    "data_batch_5",
    "test_batch",
    "batches.meta",
]


@pytest.fixture
def tiny(tiny_mnist, tiny_fashion, tiny_cifar):
    return {"mnist": tiny_mnist, "fashion_mnist": tiny_fashion, "cifar10": tiny_cifar}


def as_nchw(images: np.ndarray) -> torch.Tensor:
    """The written uint8 arrays ((N, H, W) or (N, H, W, C)) as the module should hold them."""
    x = torch.as_tensor(images)
    x = x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2)
    return x.float() / 255.0


def assert_one_line(error):
    assert "\n" not in str(error.value), str(error.value)


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,shape", [("mnist", (1, 28, 28)), ("fashion_mnist", (1, 28, 28)), ("cifar10", (3, 32, 32))]
)
def test_module_reads_the_files_exactly(tiny, name, shape):
    root, arrays = tiny[name]
    data = VisionDataModule(name, str(root), download=False)
    data.setup()
    assert data.input_shape == shape and data.num_classes == 10
    train_images, train_labels = arrays["train"]
    test_images, test_labels = arrays["test" if name == "cifar10" else "t10k"]
    assert data.train.images.shape == (len(train_labels), *shape)
    assert data.test.images.shape == (len(test_labels), *shape)
    for split in (data.train, data.test):
        assert split.images.dtype == torch.float32 and split.labels.dtype == torch.int64
        assert float(split.images.min()) >= 0.0 and float(split.images.max()) <= 1.0
        assert float(split.images.max()) > 0.7  # the bright blocks came through, not scaled twice
    assert torch.equal(data.train.images, as_nchw(train_images))
    assert torch.equal(data.train.labels, torch.as_tensor(train_labels, dtype=torch.int64))
    assert torch.equal(data.test.images, as_nchw(test_images))
    assert torch.equal(data.test.labels, torch.as_tensor(test_labels, dtype=torch.int64))
    assert torch.equal(data.train.index, torch.arange(len(train_labels)))
    assert torch.equal(data.test.index, torch.arange(len(test_labels)))
    assert len(data.val) == 0 and data.val_dataloader() == []


def test_load_split_for_cifar10_channel_order(tiny_cifar):
    """(N, H, W, C) arrays from the reader become (N, C, H, W): channel 0 of image 0 matches the file."""
    root, arrays = tiny_cifar
    images, labels = load_split("cifar10", root, train=False, download=False)
    written = arrays["test"][0]
    assert images.shape == (len(written), 3, 32, 32)
    assert torch.equal(images[0, 2], torch.as_tensor(written[0, :, :, 2]).float() / 255)


def test_already_present_files_are_not_downloaded_again(tiny_mnist_root, monkeypatch):
    import torchvision.datasets.mnist as tv_mnist

    def fail(*args, **kwargs):
        raise AssertionError("tried to download files that are present")

    monkeypatch.setattr(tv_mnist, "download_and_extract_archive", fail)
    images, labels = load_split("mnist", tiny_mnist_root, train=True, download="auto")
    assert len(images) == len(labels) == 300


def test_relative_root_is_resolved(tiny_mnist_root, monkeypatch):
    monkeypatch.chdir(tiny_mnist_root.parent)
    images, _ = load_split("mnist", tiny_mnist_root.name, train=False, download=False)
    assert len(images) == 100


# ---------------------------------------------------------------------------------------------
# Subsets, validation split, training index
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "train_subset,val_fraction,n_train,n_val",
    [(None, 0.0, 300, 0), (100, 0.0, 100, 0), (100, 0.2, 80, 20), (None, 0.1, 270, 30), (1, 0.0, 1, 0)],
)
def test_train_subset_and_val_fraction_sizes(tiny_mnist_root, train_subset, val_fraction, n_train, n_val):
    data = VisionDataModule(
        "mnist", str(tiny_mnist_root), download=False, train_subset=train_subset, val_fraction=val_fraction, seed=1
    )
    data.setup()
    assert (len(data.train), len(data.val), len(data.test)) == (n_train, n_val, 100)
    assert not set(data.train.index.tolist()) & set(data.val.index.tolist())
    assert (torch.diff(data.train.index) > 0).all()  # kept in dataset order


def test_split_points_are_the_files_points_with_their_dataset_index(tiny_mnist):
    root, arrays = tiny_mnist
    data = VisionDataModule("mnist", str(root), download=False, train_subset=50, val_fraction=0.2, seed=3)
    data.setup()
    images, labels = arrays["train"]
    for split in (data.train, data.val):
        idx = split.index.numpy()
        assert torch.equal(split.images, as_nchw(images[idx]))
        assert torch.equal(split.labels, torch.as_tensor(labels[idx], dtype=torch.int64))


def test_split_is_deterministic_per_seed_and_differs_across_seeds(tiny_mnist_root):
    def split(seed):
        data = VisionDataModule(
            "mnist", str(tiny_mnist_root), download=False, train_subset=60, val_fraction=0.25, seed=seed
        )
        data.setup()
        return data.train.index.tolist(), data.val.index.tolist()

    assert split(0) == split(0)
    assert split(0) != split(1)
    assert split(0)[0] != split(1)[0] and split(0)[1] != split(1)[1]


def test_train_val_split_function():
    train, val = train_val_split(1000, 200, 0.25, seed=5)
    assert len(train) == 150 and len(val) == 50
    assert len(set(train.tolist()) | set(val.tolist())) == 200
    again = train_val_split(1000, 200, 0.25, seed=5)
    assert torch.equal(train, again[0]) and torch.equal(val, again[1])
    everything, none = train_val_split(10, None, 0.0, seed=0)
    assert everything.tolist() == list(range(10)) and len(none) == 0


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(train_subset=301), r"data\.train_subset must be in 1\.\.300 \(the training images found\), got 301"),
        (dict(train_subset=0), r"data\.train_subset must be in 1\.\.300"),
        (dict(val_fraction=1.0), r"data\.val_fraction must be in \[0, 1\), got 1\.0"),
        (dict(val_fraction=-0.1), r"data\.val_fraction must be in \[0, 1\)"),
    ],
)
def test_bad_split_settings(tiny_mnist_root, kwargs, match):
    data = VisionDataModule("mnist", str(tiny_mnist_root), download=False, **kwargs)
    with pytest.raises(RobustlabError, match=match) as error:
        data.setup()
    assert_one_line(error)


def test_unknown_dataset_and_bad_batch_size():
    with pytest.raises(RobustlabError, match=r"unknown dataset 'svhn'; choose one of mnist, fashion_mnist, cifar10"):
        VisionDataModule("svhn")
    with pytest.raises(RobustlabError, match=r"data\.batch_size and data\.eval_batch_size must be >= 1"):
        VisionDataModule("mnist", batch_size=0)


def test_with_train_index_keeps_val_and_test(tiny_mnist_root):
    data = VisionDataModule(
        "mnist", str(tiny_mnist_root), download=False, train_subset=100, val_fraction=0.2, seed=2, batch_size=7
    )
    data.setup()
    wanted = data.train.index[[5, 0, 60, 33]]
    sub = data.with_train_index(wanted)
    assert sub.train.index.tolist() == wanted.tolist()
    pos = [5, 0, 60, 33]
    assert torch.equal(sub.train.images, data.train.images[pos])
    assert torch.equal(sub.train.labels, data.train.labels[pos])
    assert sub.val is data.val and sub.test is data.test
    assert sub.batch_size == 7 and sub.seed == 2 and sub.name == "mnist"
    sub.setup()  # a Trainer calls setup again: it must not reload the full training split
    assert len(sub.train) == 4
    assert sum(len(b[1]) for b in sub.train_dataloader()) == 4
    assert len(data.train) == 80  # the original is unchanged


def test_with_train_index_outside_training_split(tiny_mnist_root):
    data = VisionDataModule("mnist", str(tiny_mnist_root), download=False, train_subset=100, val_fraction=0.2, seed=2)
    data.setup()
    outside = data.val.index[:2]
    with pytest.raises(
        RobustlabError, match=r"train_index names points outside the training split, e\.g\. \["
    ) as error:
        data.with_train_index(outside)
    assert_one_line(error)


def test_train_index_argument(tiny_mnist_root):
    data = VisionDataModule("mnist", str(tiny_mnist_root), download=False, train_index=torch.tensor([9, 2, 250]))
    data.setup()
    assert data.train.index.tolist() == [9, 2, 250]


def test_loaders(tiny_mnist_root):
    data = VisionDataModule(
        "mnist", str(tiny_mnist_root), download=False, batch_size=32, eval_batch_size=64, seed=4, val_fraction=0.1
    )
    data.setup()

    def order(loader):
        return torch.cat([y for _, y in loader]).tolist(), torch.cat([x.sum((1, 2, 3)) for x, _ in loader])

    first = order(data.train_dataloader())
    assert first[0] == order(data.train_dataloader())[0]  # shuffled the same way for one seed
    assert sorted(first[0]) == sorted(data.train.labels.tolist())
    assert first[0] != data.train.labels.tolist()  # but shuffled
    batch = next(iter(data.test_dataloader()))
    assert batch[0].shape == (64, 1, 28, 28)
    assert torch.equal(torch.cat([y for _, y in data.test_dataloader()]), data.test.labels)
    assert sum(len(y) for _, y in data.val_dataloader()) == 30


# ---------------------------------------------------------------------------------------------
# Missing or damaged files: one line naming the folder and the files
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10"])
def test_missing_folder_without_download(tmp_path, name):
    source = SOURCES[name]
    data = VisionDataModule(name, str(tmp_path), download=False)
    with pytest.raises(RobustlabError) as error:
        data.setup()
    text = str(error.value)
    assert_one_line(error)
    assert text.startswith(f"{name} not found")
    assert str(tmp_path.resolve() / source.folder) in text
    for f in source.files:
        assert f in text
    assert "ROBUSTLAB_DATA" in text


def test_partly_missing_files_are_named(tmp_path, tiny_mnist_root):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in IDX_FILES[:2]:
        (raw / f).write_bytes((tiny_mnist_root / "MNIST" / "raw" / f).read_bytes())
    with pytest.raises(RobustlabError, match=r"expected t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte in ") as error:
        load_split("mnist", tmp_path, train=True, download=False)
    assert "train-images" not in str(error.value)


@pytest.mark.parametrize("name,module", [("mnist", "mnist"), ("fashion_mnist", "mnist"), ("cifar10", "cifar")])
@pytest.mark.parametrize("download", ["auto", True])
def test_missing_folder_with_failing_download(tmp_path, monkeypatch, name, module, download):
    import importlib

    tv = importlib.import_module(f"torchvision.datasets.{module}")
    attempts = []

    def offline(url, *args, **kwargs):
        attempts.append(url)
        raise URLError("no network in tests")

    monkeypatch.setattr(tv, "download_and_extract_archive", offline)
    with pytest.raises(RobustlabError) as error:
        load_split(name, tmp_path, train=True, download=download)
    assert attempts, "download was allowed but never attempted"
    text = str(error.value)
    assert_one_line(error)
    assert text.startswith(f"could not download {name} into {tmp_path.resolve()}")
    assert str(tmp_path.resolve() / SOURCES[name].folder) in text
    for f in SOURCES[name].files:
        assert f in text
    assert "Traceback" not in text and "http" not in text


def test_download_that_leaves_files_missing(tmp_path, monkeypatch):
    import torchvision.datasets.mnist as tv_mnist

    monkeypatch.setattr(tv_mnist, "download_and_extract_archive", lambda *a, **k: None)  # "succeeds", writes nothing
    with pytest.raises(RobustlabError, match=r"mnist") as error:
        load_split("mnist", tmp_path, train=False, download="auto")
    assert_one_line(error)
    assert "t10k-images-idx3-ubyte" in str(error.value)


def test_truncated_file_is_a_one_line_error(tmp_path, tiny_mnist_root):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in IDX_FILES:
        (raw / f).write_bytes((tiny_mnist_root / "MNIST" / "raw" / f).read_bytes())
    images = raw / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:5000])
    with pytest.raises(RobustlabError, match=r"could not read mnist from .*MNIST/raw: ") as error:
        load_split("mnist", tmp_path, train=True, download=False)
    assert_one_line(error)


def test_images_of_the_wrong_size_are_refused(tmp_path):
    import struct

    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix in ("train", "t10k"):
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 0x803, 2, 14, 14) + bytes(2 * 196))
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 0x801, 2) + bytes([0, 1]))
    with pytest.raises(RobustlabError, match=r"has images shaped \(1, 14, 14\), expected \(1, 28, 28\)"):
        load_split("mnist", tmp_path, train=True, download=False)
