"""Reductions over axes: sum, mean, var, max/min, logsumexp, and softmax / log_softmax.

Reductions take ``dim`` (an int, a tuple, or None for all axes) and ``keepdim``, as PyTorch;
NumPy's ``axis``/``keepdims`` spellings are accepted too. Each backward first reshapes the
gradient to the kept-dims shape, then broadcasts it back over the reduced axes.
"""

from __future__ import annotations

import functools
import inspect
import math

from minigen.autograd import Function
from minigen.backend import xp_of
from minigen.ops.elementwise import exp
from minigen.ops.shape import broadcast_to, normalize_axis, reshape
from minigen.tensor import Tensor


def normalize_dims(dim, ndim: int) -> tuple:
    """The reduced axes as a sorted tuple of non-negative ints (all axes for None)."""
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    out = [normalize_axis(d, ndim) for d in dims]
    if len(set(out)) != len(out):
        raise ValueError(f"dimension repeated in {dim}")
    return tuple(sorted(a for a in out if a < ndim))


_NUMPY_SPELLINGS = (
    inspect.Parameter("axis", inspect.Parameter.KEYWORD_ONLY, default=None),
    inspect.Parameter("keepdims", inspect.Parameter.KEYWORD_ONLY, default=False),
)


def _numpy_spellings(reduction):
    """Let ``reduction(x, dim=None, keepdim=False, ...)`` also take NumPy's ``axis``/``keepdims``
    (keyword-only aliases of ``dim``/``keepdim``), so that no reduction repeats the translation."""

    @functools.wraps(reduction)
    def reduce(x, dim=None, keepdim=False, *, axis=None, keepdims=False, **options):
        if axis is not None:
            if dim is not None:
                raise TypeError("pass dim or axis, not both")
            dim = axis
        return reduction(x, dim, bool(keepdim or keepdims), **options)

    signature = inspect.signature(reduction)
    reduce.__signature__ = signature.replace(parameters=[*signature.parameters.values(), *_NUMPY_SPELLINGS])
    return reduce


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


@_numpy_spellings
def sum(x, dim=None, keepdim=False) -> Tensor:
    return Sum(normalize_dims(dim, x.ndim), keepdim)(x)


@_numpy_spellings
def mean(x, dim=None, keepdim=False) -> Tensor:
    axes = normalize_dims(dim, x.ndim)
    if x.numel() == 0:
        raise ValueError(f"mean() of an empty tensor of shape {x.shape}")
    return Mean(axes, keepdim)(x)


@_numpy_spellings
def var(x, dim=None, keepdim=False, *, correction=1, unbiased=None) -> Tensor:
    """Variance sum((x - mean)^2) / (n - correction): unbiased (correction=1) by default, as PyTorch.

    A composite of mean, sub, mul and sum, so its gradient comes from theirs:
    d var / d x_i = 2 (x_i - mean) / (n - correction).
    """
    if unbiased is not None:
        correction = 1 if unbiased else 0
    axes = normalize_dims(dim, x.ndim)
    n = math.prod(x.shape[a] for a in axes)
    if n - correction <= 0:
        raise ValueError(f"var() over {n} entries with correction={correction} divides by zero")
    centered = x - Mean(axes, True)(x)
    return Sum(axes, keepdim)(centered * centered) * (1.0 / (n - correction))


@_numpy_spellings
def std(x, dim=None, keepdim=False, *, correction=1, unbiased=None) -> Tensor:
    """sqrt(var(x)) with the same arguments."""
    return var(x, dim, keepdim, correction=correction, unbiased=unbiased) ** 0.5


@_numpy_spellings
def max(x, dim=None, keepdim=False) -> Tensor:
    """The largest entry (0-d), or the largest along ``dim``: values only, unlike PyTorch's
    ``max(dim)`` which also returns indices; use ``argmax`` for those."""
    return Max(normalize_dims(dim, x.ndim), keepdim)(x)


@_numpy_spellings
def min(x, dim=None, keepdim=False) -> Tensor:
    """The smallest entry (0-d), or the smallest along ``dim`` (values only; see ``argmin``)."""
    return Min(normalize_dims(dim, x.ndim), keepdim)(x)


@_numpy_spellings
def logsumexp(x, dim=None, keepdim=False) -> Tensor:
    return LogSumExp(normalize_dims(dim, x.ndim), keepdim)(x)


def softmax(x, dim: int = -1) -> Tensor:
    return Softmax(normalize_dims(dim, x.ndim))(x)


def log_softmax(x, dim: int = -1) -> Tensor:
    return LogSoftmax(normalize_dims(dim, x.ndim))(x)


@_numpy_spellings
def argmax(x, dim=None, keepdim=False) -> Tensor:
    """Index of the largest entry (of the flattened tensor when ``dim`` is None); no gradient."""
    return Tensor(x.data.argmax(axis=dim, keepdims=keepdim))


@_numpy_spellings
def argmin(x, dim=None, keepdim=False) -> Tensor:
    """Index of the smallest entry (of the flattened tensor when ``dim`` is None); no gradient."""
    return Tensor(x.data.argmin(axis=dim, keepdims=keepdim))
