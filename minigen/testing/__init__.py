"""Hypothesis strategies for writing your own property tests of minigen code.

    from hypothesis import given
    from minigen.testing import arrays, broadcastable_shapes

Values come from domains that keep a check away from kinks and poles: real [-3, 3];
positive [0.5, 2]; nonzero |x| in [0.2, 1.2]; unit [0.1, 0.9]; and ``distinct_arrays`` for ops
where ties are kinks (max, min, maximum, clip). ``minigen.checks.sample`` draws the same named
domains without hypothesis, with one difference: its "real" values are standard normal rather
than uniform on [-3, 3] (bounded values suit shrinking; normal ones are what a layer sees).
"""

from __future__ import annotations

import numpy

try:
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "minigen.testing needs hypothesis: pip install 'minigen[dev]' (or pip install hypothesis)"
    ) from error

import minigen
from minigen.checks import DOMAINS

_BOUNDS = {"real": (-3.0, 3.0), "positive": (0.5, 2.0), "nonzero": (0.2, 1.2), "unit": (0.1, 0.9)}


def shapes(min_dims: int = 0, max_dims: int = 4, min_side: int = 1, max_side: int = 4):
    """Array shapes, 0-d included by default; size-1 axes come up often."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


def broadcastable_shapes(num_shapes: int = 2, min_dims: int = 0, max_dims: int = 4, max_side: int = 4):
    """A tuple of ``num_shapes`` shapes that broadcast together (leading and size-1 axes differ)."""
    return hnp.mutually_broadcastable_shapes(
        num_shapes=num_shapes, min_dims=min_dims, max_dims=max_dims, max_side=max_side
    ).map(lambda b: b.input_shapes)


@st.composite
def arrays(draw, shape, domain: str = "real", dtype=numpy.float64, contiguous: bool | None = None):
    """A NumPy array of ``shape`` with entries from ``domain`` (see the module docstring).

    ``contiguous=False`` always, and None sometimes, returns a transposed (non-contiguous)
    layout of the same values, the layout a ``permute`` produces.
    """
    if domain not in _BOUNDS:
        raise ValueError(
            f"unknown domain {domain!r}; expected one of {', '.join(_BOUNDS)} (or distinct_arrays)"
        )
    low, high = _BOUNDS[domain]
    elements = st.floats(low, high, allow_nan=False, allow_infinity=False)
    if domain == "nonzero":
        elements = st.tuples(elements, st.booleans()).map(lambda p: -p[0] if p[1] else p[0])
    order = draw(st.permutations(range(len(shape)))) if contiguous is not True else list(range(len(shape)))
    if contiguous is False and len(shape) > 1 and order == sorted(order):
        order = order[1:] + order[:1]
    stored_shape = tuple(shape[i] for i in order)
    stored = draw(hnp.arrays(dtype, stored_shape, elements=elements))
    inverse = numpy.argsort(order) if order else ()
    return stored.transpose(inverse) if len(shape) else stored


@st.composite
def distinct_arrays(draw, shape, gap: float = 0.25, dtype=numpy.float64):
    """A float array of ``shape`` whose entries are all different, at least ``gap`` apart."""
    size = int(numpy.prod(shape, dtype=numpy.int64))
    ranks = draw(st.permutations(range(size))) if size else []
    values = (numpy.asarray(ranks, dtype=dtype) - size / 2) * gap
    return values.reshape(shape)


@st.composite
def tensors(draw, shape=None, domain: str = "real", requires_grad: bool = True, dtype=numpy.float64):
    """A minigen Tensor drawn from ``domain`` (float64 and requiring grad, for gradient checks)."""
    if shape is None:
        shape = draw(shapes())
    data = draw(distinct_arrays(shape, dtype=dtype) if domain == "distinct" else arrays(shape, domain, dtype))
    return minigen.tensor(data, dtype=dtype, requires_grad=requires_grad)


@st.composite
def reduction_dims(draw, ndim: int):
    """None (all axes), one axis (possibly negative) or a tuple of distinct axes of an ndim array."""
    if ndim == 0:
        return draw(st.sampled_from([None, 0, -1, ()]))
    single = st.integers(-ndim, ndim - 1)
    several = st.lists(st.integers(0, ndim - 1), unique=True, min_size=1, max_size=ndim).map(tuple)
    return draw(st.one_of(st.none(), single, several))


@st.composite
def conv_configs(
    draw, max_batch: int = 2, max_channels: int = 3, max_size: int = 7, transposed: bool = False
):
    """A valid 2-D (transposed) convolution setting as a dict: batch, in/out channels, input
    height/width, kernel, stride, padding, dilation (pairs), and output_padding when transposed.
    Every drawn setting has an output of at least 1x1."""
    pair = lambda low, high: st.tuples(st.integers(low, high), st.integers(low, high))  # noqa: E731
    config = {
        "batch": draw(st.integers(1, max_batch)),
        "in_channels": draw(st.integers(1, max_channels)),
        "out_channels": draw(st.integers(1, max_channels)),
        "kernel_size": draw(pair(1, 3)),
        "stride": draw(pair(1, 3)),
        "dilation": draw(pair(1, 2)),
    }
    config["padding"] = draw(
        st.tuples(*(st.integers(0, (k - 1) * d) for k, d in zip(config["kernel_size"], config["dilation"])))
    )
    size = []
    for k, s, p, d in zip(config["kernel_size"], config["stride"], config["padding"], config["dilation"]):
        span = d * (k - 1) + 1  # the extent of the dilated kernel
        if transposed:  # output (n - 1) s - 2p + span (+ output_padding) must be at least 1
            smallest = 1 + max(0, -(-(2 * p + 1 - span) // s))
        else:  # output (n + 2p - span) // s + 1 must be at least 1
            smallest = max(1, span - 2 * p)
        size.append(draw(st.integers(smallest, max(smallest, max_size))))
    config["input_size"] = tuple(size)
    if transposed:
        # output_padding must be smaller than stride or dilation (PyTorch's rule)
        config["output_padding"] = tuple(
            draw(st.integers(0, max(s, d) - 1)) for s, d in zip(config["stride"], config["dilation"])
        )
    return config


@st.composite
def pool_configs(draw, max_batch: int = 2, max_channels: int = 2, max_size: int = 6, dilation: bool = True):
    """A valid 2-D pooling setting as a dict: kernel and stride (pairs), ``stride_argument`` (the
    stride to pass; sometimes None, which means the kernel), padding (at most half the kernel),
    dilation ((1, 1) unless ``dilation``), ceil_mode, and an input ``shape`` (N, C, H, W) with
    at least one window along each axis."""
    pair = lambda low, high: st.tuples(st.integers(low, high), st.integers(low, high))  # noqa: E731
    config = {"kernel": draw(pair(1, 3)), "ceil_mode": draw(st.booleans())}
    config["stride_argument"] = draw(st.none() | pair(1, 3))
    config["stride"] = config["stride_argument"] or config["kernel"]
    config["padding"] = tuple(draw(st.integers(0, k // 2)) for k in config["kernel"])
    config["dilation"] = draw(pair(1, 2)) if dilation else (1, 1)
    size = []
    for k, s, p, d in zip(config["kernel"], config["stride"], config["padding"], config["dilation"]):
        # The first window spans d (k - 1) + 1 from -p: it must end inside the padded input or,
        # with ceil_mode, hang past its end by less than a stride (PyTorch's rule).
        slack = s - 1 if config["ceil_mode"] else 0
        smallest = max(1, d * (k - 1) + 1 - 2 * p - slack)
        size.append(draw(st.integers(smallest, max(smallest, max_size))))
    config["shape"] = (draw(st.integers(1, max_batch)), draw(st.integers(1, max_channels)), *size)
    return config


__all__ = [
    "DOMAINS",
    "arrays",
    "broadcastable_shapes",
    "conv_configs",
    "distinct_arrays",
    "pool_configs",
    "reduction_dims",
    "shapes",
    "tensors",
]
