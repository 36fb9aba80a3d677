"""Datasets (torchvision readers) and the Lightning data module over them."""

from robustlab.data.module import Split, VisionDataModule, sample_points, train_val_split
from robustlab.data.sources import SOURCES, load_split

__all__ = ["SOURCES", "Split", "VisionDataModule", "load_split", "sample_points", "train_val_split"]
