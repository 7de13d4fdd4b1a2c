"""Data sets and mini-batches: ``load(name, split)`` gives a Dataset, ``DataLoader`` batches it.

Data sets (``KNOWN``): "digits" (scikit-learn's 8x8 digits, bundled), "mnist" and
"fashion-mnist" (the original IDX files, MD5-checked, downloaded to ``$MINIGEN_DATA`` or
``~/.cache/minigen`` when missing) and "ring" (8 Gaussians on a circle, 2-D points).
"""

from __future__ import annotations

from minigen.data.dataset import Dataset
from minigen.data.digits import load_digits
from minigen.data.errors import DataError
from minigen.data.loader import DataLoader
from minigen.data.mnist import load_mnist_family
from minigen.data.ring import RING_MODES, RING_STD, load_ring

# The shape of one example of each data set, known without loading it.
EXAMPLE_SHAPES = {"digits": (1, 8, 8), "mnist": (1, 28, 28), "fashion-mnist": (1, 28, 28), "ring": (2,)}
KNOWN = tuple(EXAMPLE_SHAPES)
SPLITS = ("train", "test")


def load(name: str, split: str = "train", root=None) -> Dataset:
    """The ``split`` ("train" or "test") of data set ``name`` (one of ``KNOWN``).

    ``root`` (MNIST-family only) is the folder holding ``mnist/`` and ``fashion-mnist/``;
    it defaults to ``$MINIGEN_DATA``, else ``~/.cache/minigen``.
    """
    if name not in KNOWN:
        raise ValueError(f"unknown data set {name!r}; known: {', '.join(map(repr, KNOWN))}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(map(repr, SPLITS))}")
    if name == "digits":
        return load_digits(split)
    if name == "ring":
        return load_ring(split)
    return load_mnist_family(name, split, root)


__all__ = [
    "EXAMPLE_SHAPES",
    "KNOWN",
    "RING_MODES",
    "RING_STD",
    "SPLITS",
    "DataError",
    "DataLoader",
    "Dataset",
    "load",
]
