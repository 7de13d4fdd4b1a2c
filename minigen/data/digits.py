"""scikit-learn's 8x8 handwritten digits (1,797 images, bundled: no download), split 80/20."""

from __future__ import annotations

import numpy

from minigen.data.dataset import Dataset

SPLIT_SEED = 0
TRAIN_FRACTION = 0.8


def load_digits(split: str) -> Dataset:
    """Pixels / 16 as float32 (N, 1, 8, 8); train is the first 80% of a fixed permutation, test the rest."""
    # Deferred: importing sklearn.datasets takes about a second, and most runs never need it.
    from sklearn.datasets import load_digits as sklearn_load_digits

    bunch = sklearn_load_digits()
    order = numpy.random.default_rng(SPLIT_SEED).permutation(len(bunch.target))
    cut = int(TRAIN_FRACTION * len(order))
    chosen = order[:cut] if split == "train" else order[cut:]
    inputs = (bunch.images[chosen, None] / 16).astype(numpy.float32)
    return Dataset(inputs, bunch.target[chosen].astype(numpy.int64), "digits", split, num_classes=10)
