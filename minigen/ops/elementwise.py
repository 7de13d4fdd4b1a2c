"""Elementwise primitives: arithmetic, powers, exp/log, activations, comparisons.

Binary ops broadcast their inputs as NumPy does, so each backward ends with ``sum_to``,
which sums the gradient over the axes that broadcasting stretched.
"""

from __future__ import annotations

from minigen import backend
from minigen.autograd import Function
from minigen.backend import xp_of
from minigen.ops.shape import sum_to
from minigen.tensor import Tensor


def _ufunc(name: str, *arrays, min_size: int = backend.PARALLEL_MIN_SIZE):
    """The array module's ufunc ``name`` applied to ``arrays``, split over threads when they are
    large (``backend.elementwise``)."""
    return backend.elementwise(getattr(xp_of(arrays[0]), name), *arrays, min_size=min_size)


def _costly(name: str, x):
    """A transcendental ufunc (exp, log, tanh), split over threads from fewer entries."""
    return _ufunc(name, x, min_size=backend.COSTLY_MIN_SIZE)


def _into(out, value):
    """``value``, or written into ``out`` when a chunk's output is given: how a kernel built on
    a function without ``out`` (``where``) takes part in ``backend.elementwise``."""
    if out is None:
        return value
    out[...] = value
    return out


def _reduce_pair(self, g0, g1):
    """Bring both input gradients back to their input shapes; None where none is needed."""
    a, b = self.inputs
    need_a, need_b = self.needs_input_grad
    return (sum_to(g0, a.shape) if need_a else None, sum_to(g1, b.shape) if need_b else None)


class Add(Function):
    """y = a + b.  VJP: ga = sum_to(gy, a.shape), gb = sum_to(gy, b.shape)."""

    def forward(self, a, b):
        return _ufunc("add", a, b)

    def backward(self, gy):
        return _reduce_pair(self, gy, gy)


class Sub(Function):
    """y = a - b.  VJP: ga = sum_to(gy), gb = -sum_to(gy)."""

    def forward(self, a, b):
        return _ufunc("subtract", a, b)

    def backward(self, gy):
        return _reduce_pair(self, gy, -gy)


class Mul(Function):
    """y = a * b.  VJP: ga = sum_to(gy * b), gb = sum_to(gy * a)."""

    def forward(self, a, b):
        return _ufunc("multiply", a, b)

    def backward(self, gy):
        a, b = self.inputs
        need_a, need_b = self.needs_input_grad
        return _reduce_pair(self, gy * b if need_a else None, gy * a if need_b else None)


class Div(Function):
    """y = a / b, in float32 when neither operand is floating (as PyTorch divides integers).

    VJP: ga = sum_to(gy / b), gb = sum_to(-gy * a / b^2).
    """

    def forward(self, a, b):
        # Function gives the operands one floating dtype when any of them is floating, so only
        # integer and boolean operands arrive here not floating.
        if a.dtype.kind != "f":
            a, b = a.astype(backend.float32), b.astype(backend.float32)
        return _ufunc("true_divide", a, b)

    def backward(self, gy):
        a, b = self.inputs
        need_a, need_b = self.needs_input_grad
        return _reduce_pair(self, gy / b if need_a else None, -gy * a / (b * b) if need_b else None)


class Neg(Function):
    """y = -x.  VJP: gx = -gy."""

    def forward(self, x):
        return _ufunc("negative", x)

    def backward(self, gy):
        return -gy


class PowScalar(Function):
    """y = x^p for a constant exponent p.  VJP: gx = gy * p * x^(p-1)."""

    def __init__(self, exponent):
        self.exponent = exponent

    def forward(self, x):
        return x**self.exponent

    def backward(self, gy):
        (x,) = self.inputs
        p = self.exponent
        if p == 0:
            return gy * 0.0
        return gy * (p * x ** (p - 1) if p != 1 else 1.0)


class Pow(Function):
    """y = a^b for tensors a > 0 (where b is not an integer) and b.

    VJP: ga = sum_to(gy * b * a^(b-1)), gb = sum_to(gy * y * log(a)).
    """

    def forward(self, a, b):
        return a**b

    def backward(self, gy):
        a, b = self.inputs
        need_a, need_b = self.needs_input_grad
        ga = gy * b * a ** (b - 1.0) if need_a else None
        gb = gy * self.output() * log(a) if need_b else None
        return _reduce_pair(self, ga, gb)


def pow(a, b) -> Tensor:
    """a ** b: a constant exponent gives the cheaper one-input primitive."""
    if isinstance(b, Tensor) or getattr(b, "ndim", 0) > 0:  # an array of exponents broadcasts
        return Pow()(a, b)
    if isinstance(a, Tensor):
        return PowScalar(float(b))(a)  # a NumPy float64 exponent must not upcast float32
    raise TypeError("pow() needs a Tensor base or exponent")


class Exp(Function):
    """y = e^x.  VJP: gx = gy * y."""

    def forward(self, x):
        return _costly("exp", x)

    def backward(self, gy):
        return gy * self.output()


class Log(Function):
    """y = ln x.  VJP: gx = gy / x."""

    def forward(self, x):
        return _costly("log", x)

    def backward(self, gy):
        return gy / self.inputs[0]


class Sqrt(Function):
    """y = sqrt(x).  VJP: gx = gy / (2 y)."""

    def forward(self, x):
        return _ufunc("sqrt", x)

    def backward(self, gy):
        return gy / (2.0 * self.output())


class MaskedScale(Function):
    """y = g * s(x): the input gradient of a piecewise-linear op (``_Masked``) as a function of
    its output gradient g, with s the op's slope at its input x, a constant per entry.

    ``kernel(x, g, out=None)`` computes g * s(x) in as few passes as the op allows.
    VJP: gg = gy * s(x) (a diagonal map is its own adjoint), again a MaskedScale, so second
    and higher derivatives of ReLU, LeakyReLU, Abs and Clip flow through it.
    """

    def __init__(self, kernel, x):
        self.kernel, self.x = kernel, x

    def forward(self, g):
        return backend.elementwise(self.kernel, self.x, g)

    def backward(self, gy):
        return MaskedScale(self.kernel, self.x)(gy)


class _Masked(Function):
    """Piecewise-linear ops: gx = gy * slope(x), where the slope is a constant per entry.

    The slope is piecewise constant, so its own derivative is zero almost everywhere, which
    makes the double backward of these ops exact away from the kinks. Backward is a
    ``MaskedScale`` of gy with the op's ``scale_kernel``.
    """

    def scale_kernel(self):
        """(x, g, out=None) -> g * slope(x), holding the op's settings by value (the node is
        cleared after its backward, while the MaskedScale it made may live on in a graph)."""
        raise NotImplementedError

    def backward(self, gy):
        return MaskedScale(self.scale_kernel(), self.inputs[0].data)(gy)


class Abs(_Masked):
    """y = |x|.  VJP: gx = gy * sign(x) (0 at x = 0, as PyTorch)."""

    def forward(self, x):
        return xp_of(x).abs(x)

    def scale_kernel(self):
        return lambda x, g, out=None: xp_of(x).multiply(g, xp_of(x).sign(x), out=out)


class ReLU(_Masked):
    """y = max(x, 0).  VJP: gx = gy * [x > 0]."""

    def forward(self, x):
        xp = xp_of(x)
        return backend.elementwise(lambda x, out=None: xp.maximum(x, 0, out=out), x)

    def scale_kernel(self):
        return lambda x, g, out=None: xp_of(x).multiply(g, x > 0, out=out)


class LeakyReLU(_Masked):
    """y = x if x > 0 else a*x.  VJP: gx = gy * (1 if x > 0 else a)."""

    def __init__(self, negative_slope):
        self.negative_slope = negative_slope

    def forward(self, x):
        # max(x, a x) is x for x > 0 and a x below when a <= 1 (min when a > 1): two passes
        # over x instead of where's three.
        pick = xp_of(x).maximum if self.negative_slope <= 1 else xp_of(x).minimum
        return backend.elementwise(lambda x, out=None: pick(x, x * self.negative_slope, out=out), x)

    def scale_kernel(self):
        negative_slope = self.negative_slope
        if not 0 <= negative_slope <= 2:
            return _select_kernel(negative_slope)

        def kernel(x, g, out=None):
            # slope = [x > 0] (1 - a) + a in arithmetic, three times faster than a select:
            # exactly a where x <= 0, and exactly 1 where x > 0 for every 0 <= a <= 2 (1 - a is
            # exact for a in [1/2, 2] by Sterbenz's lemma, and below 1/2 its rounding error is
            # under half an ulp of 1, so the sum rounds back to 1).
            xp, kind = xp_of(x), g.dtype.type
            scaled = xp.empty_like(g) if out is None else out  # an array even for 0-d g
            xp.greater(x, 0, out=scaled)  # 0s and 1s in g's dtype
            scaled *= kind(1) - kind(negative_slope)
            scaled += kind(negative_slope)
            scaled *= g
            return scaled

        return kernel


def _select_kernel(negative_slope):
    """LeakyReLU's g * slope for any slope: a g everywhere, then g itself where x > 0."""

    def kernel(x, g, out=None):
        xp = xp_of(x)
        scaled = xp.empty_like(g) if out is None else out  # an array even for 0-d g
        xp.multiply(g, g.dtype.type(negative_slope), out=scaled)
        xp.copyto(scaled, g, where=x > 0)
        return scaled

    return kernel


class Clip(_Masked):
    """y = min(max(x, low), high).  VJP: gx = gy * [low <= x <= high] (PyTorch's clamp)."""

    def __init__(self, low, high):
        self.low, self.high = low, high

    def forward(self, x):
        return xp_of(x).clip(x, self.low, self.high)

    def scale_kernel(self):
        low, high = self.low, self.high

        def kernel(x, g, out=None):
            inside = xp_of(x).ones(x.shape, dtype=bool)
            if low is not None:
                inside &= x >= low
            if high is not None:
                inside &= x <= high
            return xp_of(x).multiply(g, inside, out=out)

        return kernel


class _Choose(Function):
    """Elementwise choice between a and b; the chosen operand gets the gradient.

    VJP: ga = sum_to(gy * m), gb = sum_to(gy * (1 - m)), where m = 1 where a is chosen, 0
    where b is, and 1/2 on a tie: a tie splits the gradient evenly, as PyTorch does.
    """

    def a_wins(self, a, b):
        raise NotImplementedError

    def backward(self, gy):
        a, b = self.inputs[0].data, self.inputs[1].data
        share = self.a_wins(a, b) + 0.5 * (a == b)
        mask = Tensor(share.astype(gy.dtype, copy=False))
        return _reduce_pair(self, gy * mask, gy * (1.0 - mask))


class Maximum(_Choose):
    """y = max(a, b) elementwise; m = [a > b] + [a = b]/2 (see _Choose)."""

    def forward(self, a, b):
        return xp_of(a).maximum(a, b)

    def a_wins(self, a, b):
        return a > b


class Minimum(_Choose):
    """y = min(a, b) elementwise; m = [a < b] + [a = b]/2 (see _Choose)."""

    def forward(self, a, b):
        return xp_of(a).minimum(a, b)

    def a_wins(self, a, b):
        return a < b


class Where(Function):
    """y = a where cond else b (cond is a constant boolean array).

    VJP: ga = sum_to(where(cond, gy, 0)), gb = sum_to(where(cond, 0, gy)).
    """

    def __init__(self, condition):
        self.condition = condition

    def forward(self, a, b):
        if hasattr(self.condition, "dtype") and backend.device_of(self.condition) != backend.device_of(a):
            raise backend.DeviceError(
                f"where: the condition is on {backend.device_of(self.condition)} but the values are on "
                f"{backend.device_of(a)}"
            )
        return xp_of(a).where(self.condition, a, b)

    def backward(self, gy):
        zero = Tensor(xp_of(gy.data).zeros((), dtype=gy.dtype))
        return _reduce_pair(self, Where(self.condition)(gy, zero), Where(self.condition)(zero, gy))


def where(condition, a, b) -> Tensor:
    """Entries of ``a`` where ``condition`` holds, of ``b`` elsewhere (all three broadcast)."""
    if isinstance(condition, Tensor):
        condition = condition.data
    return Where(condition)(a, b)


class Sigmoid(Function):
    """y = 1 / (1 + e^-x), computed without overflow for large |x|.  VJP: gx = gy * y * (1 - y)."""

    def forward(self, x):
        xp = xp_of(x)

        def kernel(x, out=None):  # e^-|x| never overflows; the algebraically equal form per sign
            e = xp.exp(-xp.abs(x))
            return _into(out, xp.where(x >= 0, 1 / (1 + e), e / (1 + e)))

        return backend.elementwise(kernel, x, min_size=backend.COSTLY_MIN_SIZE)

    def backward(self, gy):
        y = self.output()
        return gy * y * (1.0 - y)


class Tanh(Function):
    """y = tanh(x).  VJP: gx = gy * (1 - y^2)."""

    def forward(self, x):
        return _costly("tanh", x)

    def backward(self, gy):
        y = self.output()
        return gy * (1.0 - y * y)


class Softplus(Function):
    """y = log(1 + e^x) = max(x, 0) + log1p(e^-|x|), stable for any x.  VJP: gx = gy * sigmoid(x)."""

    def forward(self, x):
        xp = xp_of(x)

        def kernel(x, out=None):
            return xp.add(xp.maximum(x, 0), xp.log1p(xp.exp(-xp.abs(x))), out=out)

        return backend.elementwise(kernel, x, min_size=backend.COSTLY_MIN_SIZE)

    def backward(self, gy):
        return gy * Sigmoid()(self.inputs[0])


# --- public functions ------------------------------------------------------------------------


def _named(apply, function):
    """``apply`` under the primitive's lower-case name, with its docstring (forward and VJP)."""
    apply.__name__ = apply.__qualname__ = function.__name__.lower()
    apply.__doc__ = function.__doc__
    return apply


def _unary(function):
    """The public function of a one-input primitive that has no settings: function()(x)."""

    def apply(x) -> Tensor:
        return function()(x)

    return _named(apply, function)


def _binary(function):
    """The public function of a two-input primitive that has no settings: function()(a, b)."""

    def apply(a, b) -> Tensor:
        return function()(a, b)

    return _named(apply, function)


add, sub, mul, div, maximum, minimum = map(_binary, (Add, Sub, Mul, Div, Maximum, Minimum))
neg, exp, log, sqrt, abs, relu, sigmoid, tanh = map(_unary, (Neg, Exp, Log, Sqrt, Abs, ReLU, Sigmoid, Tanh))


def leaky_relu(x, negative_slope: float = 0.01) -> Tensor:
    return LeakyReLU(float(negative_slope))(x)


def softplus(x, beta: float = 1.0) -> Tensor:
    """(1/beta) log(1 + e^(beta x)), computed exactly (PyTorch switches to x above a threshold)."""
    if beta == 1.0:
        return Softplus()(x)
    return Softplus()(x * beta) / beta


def clip(x, min=None, max=None) -> Tensor:
    """Entries of x limited to [min, max] (either bound may be None). ``clamp`` is the same."""
    if min is None and max is None:
        raise ValueError("clip() needs at least one of min and max")
    return Clip(None if min is None else float(min), None if max is None else float(max))(x)


def _compare(name):
    def compare(a, b) -> Tensor:
        """Elementwise comparison; a boolean tensor that carries no gradient."""
        other = b.data if isinstance(b, Tensor) else b
        try:
            result = getattr(a.data, name)(other)
        except ValueError as error:
            shapes = f"{a.shape} and {xp_of(a.data).asarray(other).shape}"
            raise ValueError(f"{compare.__name__} got tensors of shapes {shapes}: {error}") from error
        return Tensor(xp_of(a.data).asarray(result))  # a 0-d result is a NumPy scalar otherwise

    compare.__name__ = name.strip("_")
    return compare


eq, ne, lt, le, gt, ge = (_compare(f"__{n}__") for n in ("eq", "ne", "lt", "le", "gt", "ge"))
