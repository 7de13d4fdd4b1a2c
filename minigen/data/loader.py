"""DataLoader: a data set in mini-batches of tensors, optionally shuffled, resumable by epoch.

The data set stays on the host; each batch is gathered there and copied to the device once.
With ``shuffle``, epoch e's order is the (e+1)-th ``permutation(len(dataset))`` drawn from
``numpy.random.default_rng(seed)``, so the order depends only on the seed and the epoch:
``state_dict()`` records the epoch and ``load_state_dict`` rebuilds the generator there.
"""

from __future__ import annotations

import operator

import numpy

from minigen import backend
from minigen.creation import tensor
from minigen.data.dataset import Dataset


class DataLoader:
    """Iterate over ``dataset`` in batches ``(x, y)``: float32 inputs and int64 labels on ``device``.

    The last, smaller batch is kept unless ``drop_last``. ``device=None`` means the default
    device when each batch is made. ``seed=None`` draws the shuffling seed from minigen's
    generator (so ``minigen.manual_seed`` fixes it); pass a seed to resume in a new process.
    An epoch counts as begun when iteration starts: ``state_dict()`` after e complete epochs
    is ``{"epoch": e}``, and a loader given that state continues with epoch e's order.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int = 128,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int | None = None,
        device=None,
    ):
        if not isinstance(dataset, Dataset):
            raise TypeError(f"DataLoader needs a minigen.data.Dataset; got {type(dataset).__name__}")
        batch_size = operator.index(batch_size)
        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer; got {batch_size}")
        if device is not None:
            device = backend.normalize_device(device)
            backend.array_module(device)  # fail now, with the install hint, rather than mid-epoch
        if shuffle and seed is None:
            seed = int(backend.generator("cpu").integers(2**63))
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.device = device
        self.load_state_dict({"epoch": 0})

    def __len__(self) -> int:
        """The number of batches in an epoch."""
        n, b = len(self.dataset), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def __iter__(self):
        order = self._rng.permutation(len(self.dataset)) if self.shuffle else None
        self.epoch += 1
        return self._batches(order)

    def _batches(self, order):
        inputs, labels = self.dataset.inputs, self.dataset.labels
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            stop = start + self.batch_size
            # Without shuffling a batch is a slice (a view): the tensor makes the only copy.
            index = slice(start, stop) if order is None else order[start:stop]
            yield tensor(inputs[index], device=self.device), tensor(labels[index], device=self.device)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        """Continue from ``state["epoch"]``: replay the generator past the epochs already begun."""
        if set(state) != {"epoch"}:
            raise ValueError(f"a DataLoader state dict holds just the key 'epoch'; got keys {sorted(state)}")
        epoch = operator.index(state["epoch"])
        if epoch < 0:
            raise ValueError(f"epoch must be a non-negative integer; got {epoch}")
        if self.shuffle:
            self._rng = numpy.random.default_rng(self.seed)
            for _ in range(epoch):
                self._rng.permutation(len(self.dataset))
        self.epoch = epoch
