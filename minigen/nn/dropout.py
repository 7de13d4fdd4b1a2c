"""Dropout (Srivastava et al. 2014): zero each entry with probability p while training."""

from __future__ import annotations

from minigen import functional as F
from minigen.nn.module import Module


class Dropout(Module):
    """In training, y = x * m / (1 - p) with m ~ Bernoulli(1 - p), so E[y] = x; in eval, y = x."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p

    def forward(self, x):
        return F.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
