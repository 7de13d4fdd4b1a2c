"""Dataset: a labelled collection of examples held on the host as NumPy arrays."""

from __future__ import annotations

import numpy


class Dataset:
    """Examples ``inputs`` (float32, first axis indexes them) and their int64 ``labels``.

    Images are (N, C, H, W) with values in [0, 1]; 2-D points are (N, 2). ``ds[i]`` is the
    pair ``(inputs[i], labels[i])``; ``example_shape`` is the shape of one input.
    ``num_classes`` defaults to ``labels.max() + 1``.
    """

    def __init__(self, inputs, labels, name: str = "custom", split: str = "train", num_classes=None):
        inputs = numpy.asarray(inputs, dtype=numpy.float32)
        labels = numpy.asarray(labels)
        if labels.ndim != 1 or not numpy.issubdtype(labels.dtype, numpy.integer):
            raise ValueError(
                f"labels must be a 1-D integer array; got shape {labels.shape} and dtype {labels.dtype}"
            )
        if inputs.ndim == 0 or len(inputs) != len(labels):
            raise ValueError(
                f"inputs and labels must hold the same number of examples along their first axis; "
                f"got inputs of shape {inputs.shape} and labels of shape {labels.shape}"
            )
        if num_classes is None:
            num_classes = int(labels.max()) + 1 if len(labels) else 0
        if len(labels) and not 0 <= labels.min() <= labels.max() < num_classes:
            raise ValueError(
                f"labels must lie in [0, num_classes={num_classes}); "
                f"got values from {labels.min()} to {labels.max()}"
            )
        self.inputs = inputs
        self.labels = labels.astype(numpy.int64, copy=False)
        self.name = name
        self.split = split
        self.num_classes = int(num_classes)

    @property
    def example_shape(self) -> tuple:
        return self.inputs.shape[1:]

    def first(self, n: int | None) -> Dataset:
        """The first ``n`` examples as a Dataset of the same name, split and classes (all of
        them when ``n`` is None); the arrays are views, not copies."""
        if n is None:
            return self
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"the number of examples to keep must be a positive integer; got {n!r}")
        return Dataset(self.inputs[:n], self.labels[:n], self.name, self.split, self.num_classes)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index):
        return self.inputs[index], self.labels[index]

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, split={self.split!r}, {len(self)} examples of shape "
            f"{self.example_shape}, num_classes={self.num_classes})"
        )
