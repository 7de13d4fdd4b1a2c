"""MNIST and Fashion-MNIST: 28x28 grey images of digits or clothes, ten classes, from IDX files."""

from __future__ import annotations

import numpy

from minigen.data.dataset import Dataset
from minigen.data.idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx_gz
from minigen.data.sources import FILES, fetch


def load_mnist_family(name: str, split: str, root=None) -> Dataset:
    """Data set ``name`` ("mnist" or "fashion-mnist"): pixels / 255 as float32 (N, 1, 28, 28)."""
    images_file, labels_file = FILES[split]
    images = read_idx_gz(fetch(name, images_file, root), IMAGES_MAGIC)
    labels = read_idx_gz(fetch(name, labels_file, root), LABELS_MAGIC)
    inputs = images[:, None].astype(numpy.float32)
    inputs /= 255  # in place: the training set is 188 MB as float32
    return Dataset(inputs, labels.astype(numpy.int64), name, split, num_classes=10)
