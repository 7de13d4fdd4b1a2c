"""Flatten and Unflatten: reshape between images and vectors inside a Sequential."""

from __future__ import annotations

import math

from minigen.nn.module import Module
from minigen.ops.shape import flatten, reshape


class Flatten(Module):
    """Merge dims start_dim..end_dim into one (by default all but the batch dim)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        return flatten(x, self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Split dim ``dim`` into ``unflattened_size`` (e.g. 784 -> (1, 28, 28))."""

    def __init__(self, dim: int, unflattened_size):
        super().__init__()
        self.dim, self.unflattened_size = dim, tuple(unflattened_size)

    def forward(self, x):
        dim = self.dim % x.ndim
        size = self.unflattened_size
        if -1 not in size and math.prod(size) != x.shape[dim]:
            raise ValueError(
                f"Unflatten: cannot split dim {self.dim} of size {x.shape[dim]} into {size} "
                f"for an input of shape {x.shape}"
            )
        return reshape(x, x.shape[:dim] + size + x.shape[dim + 1 :])

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"
