"""minigen.functional (import as F): the functions layers are built from, by PyTorch's names.

Most are primitives (and losses composed of them) from ``minigen.ops``, gathered under the
names ``torch.nn.functional`` uses; ``dropout`` is composed here.
"""

from __future__ import annotations

from minigen.creation import rand
from minigen.ops.conv import conv2d, conv_transpose2d
from minigen.ops.elementwise import leaky_relu, relu, sigmoid, softplus, tanh
from minigen.ops.linalg import linear
from minigen.ops.losses import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    mse_loss,
    nll_loss,
)
from minigen.ops.normalization import batch_norm
from minigen.ops.pooling import avg_pool2d, max_pool2d
from minigen.ops.reduce import log_softmax, logsumexp, softmax
from minigen.ops.shape import pad
from minigen.tensor import Tensor


def dropout(input: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """In training, y = x * m / (1 - p) with m ~ Bernoulli(1 - p) drawn per entry, so that
    E[y] = x; otherwise y = x.  VJP: gx = gy * m / (1 - p) (the same mask)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0
    keep = rand(*input.shape, dtype=input.dtype, device=input.device).data >= p
    return input * Tensor(keep.astype(input.dtype) * (1.0 / (1.0 - p)))


__all__ = [
    "avg_pool2d",
    "conv2d",
    "conv_transpose2d",
    "max_pool2d",
    "batch_norm",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "cross_entropy",
    "dropout",
    "leaky_relu",
    "linear",
    "log_softmax",
    "logsumexp",
    "mse_loss",
    "nll_loss",
    "pad",
    "relu",
    "sigmoid",
    "softmax",
    "softplus",
    "tanh",
]
