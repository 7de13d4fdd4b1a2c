"""Reductions over axes: sum, mean, var, max/min, logsumexp, and softmax / log_softmax.

Reductions take ``dim`` (an int, a tuple, or None for all axes) and ``keepdim``, as PyTorch;
NumPy's ``axis``/``keepdims`` spellings are accepted too. Each backward first reshapes the
gradient to the kept-dims shape, then broadcasts it back over the reduced axes.
"""

from __future__ import annotations

import builtins
import math

from minigen.autograd import Function
from minigen.backend import xp_of
from minigen.ops.elementwise import exp
from minigen.ops.shape import broadcast_to, reshape
from minigen.tensor import Tensor


def normalize_dims(dim, ndim: int) -> tuple:
    """The reduced axes as a sorted tuple of non-negative ints (all axes for None)."""
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    out = []
    for d in dims:
        # A 0-d tensor accepts dim 0 or -1, as in PyTorch.
        bound = builtins.max(ndim, 1)
        if not -bound <= d < bound:
            raise IndexError(f"dimension {d} is out of range for a tensor with {ndim} dimensions")
        out.append(d % bound)
    if len(set(out)) != len(out):
        raise ValueError(f"dimension repeated in {dim}")
    return tuple(sorted(a for a in out if a < ndim))


def _resolve(dim, keepdim, axis, keepdims):
    """Accept NumPy's ``axis``/``keepdims`` as aliases of ``dim``/``keepdim``."""
    if axis is not None:
        if dim is not None:
            raise TypeError("pass dim or axis, not both")
        dim = axis
    return dim, bool(keepdim or keepdims)


class _Reduction(Function):
    """Shared bookkeeping: the axes, and how to spread a gradient back over them."""

    def __init__(self, axes, keepdims):
        self.axes, self.keepdims = axes, keepdims

    def expand(self, t):
        """Broadcast a reduced tensor (kept dims or not) back to the input's shape."""
        shape = self.inputs[0].shape
        kept = tuple(1 if i in self.axes else n for i, n in enumerate(shape))
        return broadcast_to(reshape(t, kept), shape)


class Sum(_Reduction):
    """y = sum of x over ``axes``.  VJP: gx = broadcast(gy) over the summed axes."""

    def forward(self, x):
        return x.sum(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        return self.expand(gy)


class Mean(_Reduction):
    """y = (1/n) sum of x over ``axes``, n the number of entries reduced.  VJP: gx = broadcast(gy) / n."""

    def forward(self, x):
        self.count = math.prod(x.shape[a] for a in self.axes)
        return x.mean(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        return self.expand(gy) * (1.0 / self.count)


class _Extremum(_Reduction):
    """max or min over ``axes``; the gradient is shared evenly among the entries that attain it.

    VJP: gx = broadcast(gy) * [x = y] / (number of entries equal to y in the reduced slice).
    """

    pick = "max"

    def forward(self, x):
        if x.size == 0:
            raise ValueError(f"{self.pick}() of an empty tensor of shape {x.shape}")
        return getattr(x, self.pick)(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        x = self.inputs[0].data
        y = self.output().data
        if not self.keepdims:
            y = y.reshape(tuple(1 if i in self.axes else n for i, n in enumerate(x.shape)))
        hit = x == y
        share = hit / hit.sum(axis=self.axes, keepdims=True)
        return self.expand(gy) * Tensor(share.astype(x.dtype, copy=False))


class Max(_Extremum):
    pick = "max"


class Min(_Extremum):
    pick = "min"


class LogSumExp(_Reduction):
    """y = log sum exp(x) over ``axes``, as m + log sum exp(x - m) with m = max x (no overflow).

    VJP: gx = broadcast(gy) * exp(x - y) = broadcast(gy) * softmax(x).
    """

    def forward(self, x):
        xp = xp_of(x)
        m = x.max(axis=self.axes, keepdims=True)
        m = xp.where(xp.isfinite(m), m, 0)  # all -inf (or inf) slices: shift by 0 instead
        y = xp.log(xp.exp(x - m).sum(axis=self.axes, keepdims=True)) + m
        return (
            y if self.keepdims else y.reshape(tuple(n for i, n in enumerate(x.shape) if i not in self.axes))
        )

    def backward(self, gy):
        return self.expand(gy) * exp(self.inputs[0] - self.expand(self.output()))


class Softmax(Function):
    """y_i = exp(x_i - max x) / sum_j exp(x_j - max x) along ``axis``.

    VJP: gx = y * (gy - sum(gy * y, axis)).
    """

    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        xp = xp_of(x)
        e = xp.exp(x - x.max(axis=self.axis, keepdims=True))
        return e / e.sum(axis=self.axis, keepdims=True)

    def backward(self, gy):
        y = self.output()
        return y * (gy - sum(gy * y, dim=self.axis, keepdim=True))


class LogSoftmax(Function):
    """y = x - logsumexp(x) along ``axis``.

    VJP: gx = gy - exp(y) * sum(gy, axis) (exp(y) is the softmax).
    """

    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        xp = xp_of(x)
        shifted = x - x.max(axis=self.axis, keepdims=True)
        return shifted - xp.log(xp.exp(shifted).sum(axis=self.axis, keepdims=True))

    def backward(self, gy):
        return gy - exp(self.output()) * sum(gy, dim=self.axis, keepdim=True)


# --- public functions ------------------------------------------------------------------------


def sum(x, dim=None, keepdim=False, *, axis=None, keepdims=False) -> Tensor:
    dim, keepdim = _resolve(dim, keepdim, axis, keepdims)
    return Sum(normalize_dims(dim, x.ndim), keepdim)(x)


def mean(x, dim=None, keepdim=False, *, axis=None, keepdims=False) -> Tensor:
    dim, keepdim = _resolve(dim, keepdim, axis, keepdims)
    axes = normalize_dims(dim, x.ndim)
    if x.numel() == 0:
        raise ValueError(f"mean() of an empty tensor of shape {x.shape}")
    return Mean(axes, keepdim)(x)


def var(x, dim=None, keepdim=False, *, correction=1, unbiased=None, axis=None, keepdims=False) -> Tensor:
    """Variance sum((x - mean)^2) / (n - correction): unbiased (correction=1) by default, as PyTorch.

    A composite of mean, sub, mul and sum, so its gradient comes from theirs:
    d var / d x_i = 2 (x_i - mean) / (n - correction).
    """
    dim, keepdim = _resolve(dim, keepdim, axis, keepdims)
    if unbiased is not None:
        correction = 1 if unbiased else 0
    axes = normalize_dims(dim, x.ndim)
    n = math.prod(x.shape[a] for a in axes)
    if n - correction <= 0:
        raise ValueError(f"var() over {n} entries with correction={correction} divides by zero")
    centered = x - Mean(axes, True)(x)
    return Sum(axes, keepdim)(centered * centered) * (1.0 / (n - correction))


def std(x, dim=None, keepdim=False, *, correction=1, unbiased=None, axis=None, keepdims=False) -> Tensor:
    """sqrt(var(x)) with the same arguments."""
    return var(x, dim, keepdim, correction=correction, unbiased=unbiased, axis=axis, keepdims=keepdims) ** 0.5


def max(x, dim=None, keepdim=False, *, axis=None, keepdims=False) -> Tensor:
    """The largest entry (0-d), or the largest along ``dim``: values only, unlike PyTorch's
    ``max(dim)`` which also returns indices; use ``argmax`` for those."""
    dim, keepdim = _resolve(dim, keepdim, axis, keepdims)
    return Max(normalize_dims(dim, x.ndim), keepdim)(x)


def min(x, dim=None, keepdim=False, *, axis=None, keepdims=False) -> Tensor:
    """The smallest entry (0-d), or the smallest along ``dim`` (values only; see ``argmin``)."""
    dim, keepdim = _resolve(dim, keepdim, axis, keepdims)
    return Min(normalize_dims(dim, x.ndim), keepdim)(x)


def logsumexp(x, dim=None, keepdim=False, *, axis=None, keepdims=False) -> Tensor:
    dim, keepdim = _resolve(dim, keepdim, axis, keepdims)
    return LogSumExp(normalize_dims(dim, x.ndim), keepdim)(x)


def softmax(x, dim: int = -1) -> Tensor:
    return Softmax(normalize_dims(dim, x.ndim))(x)


def log_softmax(x, dim: int = -1) -> Tensor:
    return LogSoftmax(normalize_dims(dim, x.ndim))(x)


def argmax(x, dim=None, keepdim=False, *, axis=None, keepdims=False) -> Tensor:
    """Index of the largest entry (of the flattened tensor when ``dim`` is None); no gradient."""
    dim, keepdim = _resolve(dim, keepdim, axis, keepdims)
    return Tensor(x.data.argmax(axis=dim, keepdims=keepdim))


def argmin(x, dim=None, keepdim=False, *, axis=None, keepdims=False) -> Tensor:
    """Index of the smallest entry (of the flattened tensor when ``dim`` is None); no gradient."""
    dim, keepdim = _resolve(dim, keepdim, axis, keepdims)
    return Tensor(x.data.argmin(axis=dim, keepdims=keepdim))
