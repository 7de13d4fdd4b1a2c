"""Checking gradients against finite differences, to first and second order, in float64.

A function's analytic vector-Jacobian product v^T J is compared, for every entry of every
input, with the central difference (L(x + h e_i) - L(x - h e_i)) / 2h of the scalar
L(x) = sum_k <v_k, f_k(x)>, where v is a random cotangent. One random v checks every entry
of J^T v; a wrong Jacobian entry survives only on a set of v of measure zero.
"""

from __future__ import annotations

from dataclasses import dataclass

from minigen import backend
from minigen.autograd import grad
from minigen.creation import randn_like
from minigen.tensor import Tensor


class GradcheckError(AssertionError):
    """Analytic and numerical gradients disagree; the message is a table of the worst entries."""


@dataclass
class GradcheckReport:
    """The outcome of comparing analytic and numerical gradients."""

    passed: bool
    max_abs_error: float
    max_rel_error: float
    table: str


def _as_tuple(value) -> tuple:
    return value if isinstance(value, tuple) else (value,)


def numerical_grad(f, inputs, eps: float = 1e-6) -> list:
    """Central-difference gradients of the scalar ``f(*inputs)`` with respect to each input.

    Entry i of input x gets (f(x + eps e_i) - f(x - eps e_i)) / (2 eps), whose error is
    O(eps^2) from truncation plus O(machine epsilon / eps) from round-off. Inputs must be
    float64 so that eps = 1e-6 balances the two (chapter 04 plots the trade-off). Returns
    one backend array per input, None for inputs that do not require grad.
    """
    _require_float64(inputs)
    # Grad mode stays on: f may itself take gradients (the VJP that gradgradcheck checks).
    grads = []
    for x in inputs:
        if not (isinstance(x, Tensor) and x.requires_grad):
            grads.append(None)
            continue
        original = x.data
        x.data = original.copy()  # a private contiguous buffer to perturb in place
        flat = x.data.reshape(-1)
        g = backend.xp_of(original).zeros(flat.shape, dtype=original.dtype)
        for i in range(flat.size):
            centre = flat[i].item()
            flat[i] = centre + eps
            upper = f(*inputs).item()
            flat[i] = centre - eps
            lower = f(*inputs).item()
            flat[i] = centre
            g[i] = (upper - lower) / (2 * eps)
        x.data = original
        grads.append(g.reshape(original.shape))
    return grads


def _require_float64(inputs) -> None:
    for i, x in enumerate(inputs):
        if isinstance(x, Tensor) and x.requires_grad and x.dtype != backend.float64:
            raise TypeError(
                f"gradient checks need float64 inputs (float32 round-off swamps the finite "
                f"difference); input {i} is {x.dtype}: use .double()"
            )


def compare_gradients(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, worst: int = 5) -> GradcheckReport:
    """Compare ``fn``'s analytic VJP with central differences for every input that requires grad.

    An entry passes when |analytic - numeric| <= atol + rtol * |numeric|. The relative error
    reported is |analytic - numeric| / max(|numeric|, atol).
    """
    inputs = tuple(inputs)
    _require_float64(inputs)
    projected = _random_projection(fn, inputs)
    positions = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    wanted = [inputs[i] for i in positions]
    scalar = projected(*inputs)
    # When nothing in the outputs depends on the inputs, every analytic gradient is zero (None).
    analytic = grad(scalar, wanted, allow_unused=True) if scalar.requires_grad else (None,) * len(wanted)
    numeric = [g for g in numerical_grad(projected, inputs, eps) if g is not None]

    rows, max_abs, max_rel, passed = [], 0.0, 0.0, True
    for position, a, n in zip(positions, analytic, numeric):
        a, n = _on_host(position, inputs[position], a, n)
        error = abs(a - n)
        if error.size:
            max_abs = max(max_abs, float(error.max()))
            max_rel = max(max_rel, float((error / abs(n).clip(atol, None)).max()))
            passed = passed and bool((error <= atol + rtol * abs(n)).all())
        rows.extend(_worst_entries(position, error, a, n, worst))
    return GradcheckReport(passed, max_abs, max_rel, _table(rows, worst))


def _random_projection(fn, inputs):
    """L(*xs) = sum_k <v_k, f_k(*xs)>, for cotangents v_k drawn once from N(0, 1) in float64 with
    the shapes of ``fn(*inputs)``'s outputs: the scalar whose gradient is the VJP with v."""
    cotangents = [randn_like(y, dtype=backend.float64) for y in _as_tuple(fn(*inputs))]

    def projected(*xs):
        total = None
        for y, v in zip(_as_tuple(fn(*xs)), cotangents):
            term = (y.to(dtype=backend.float64) * v).sum()
            total = term if total is None else total + term
        return total

    return projected


def _on_host(position: int, x, analytic, numeric) -> tuple:
    """(analytic, numeric) gradients of input ``position`` as host arrays; an analytic gradient
    of None (the input is unused) counts as zeros, one of the wrong shape or dtype is an error."""
    if analytic is not None and (analytic.shape != x.shape or analytic.dtype != x.dtype):
        raise GradcheckError(
            f"input {position}: gradient has shape {analytic.shape} and dtype {analytic.dtype}, "
            f"but the input has shape {x.shape} and dtype {x.dtype}"
        )
    numeric = backend.to_host(numeric)
    return (numeric * 0 if analytic is None else backend.to_host(analytic.data)), numeric


def _worst_entries(position: int, error, a, n, worst: int) -> list:
    """(error, input position, index, analytic, numeric) for the ``worst`` largest errors."""
    rows = []
    for flat in error.reshape(-1).argsort()[::-1][:worst]:
        index = tuple(int(i) for i in _unravel(int(flat), a.shape))
        rows.append(
            (float(error.reshape(-1)[flat]), position, index, a.reshape(-1)[flat], n.reshape(-1)[flat])
        )
    return rows


def _table(rows, worst: int) -> str:
    """The ``worst`` rows of all inputs, largest error first, one line each under a header."""
    lines = [f"{'input':>5}  {'index':<16} {'analytic':>14} {'numeric':>14} {'abs error':>10}"]
    for err, position, index, a_value, n_value in sorted(rows, key=lambda r: -r[0])[:worst]:
        lines.append(f"{position:>5}  {str(index):<16} {a_value:>14.6g} {n_value:>14.6g} {err:>10.3g}")
    return "\n".join(lines)


def _unravel(flat: int, shape) -> tuple:
    """The multi-index of flat position ``flat`` in a row-major array of ``shape``."""
    index = []
    for n in reversed(shape):
        flat, i = divmod(flat, n)
        index.append(i)
    return tuple(reversed(index))


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3) -> bool:
    """True when ``fn``'s gradients match central differences; else a GradcheckError with a table.

    ``fn`` takes the tensors in ``inputs`` and returns a tensor or a tuple of tensors; every
    input that requires grad (float64) is checked entry by entry.
    """
    report = compare_gradients(fn, inputs, eps, atol, rtol)
    if not report.passed:
        raise GradcheckError(
            f"analytic gradient differs from finite differences "
            f"(max abs error {report.max_abs_error:.3g}, atol={atol}, rtol={rtol}); worst entries:\n"
            + report.table
        )
    return True


def first_order(fn, n_inputs: int):
    """The function (inputs..., cotangents...) -> d<cotangents, fn(inputs)>/d inputs, built with
    ``create_graph=True`` so that it can be differentiated again."""

    def vjp(*args):
        xs, vs = args[:n_inputs], args[n_inputs:]
        outputs = _as_tuple(fn(*xs))
        wanted = [x for x in xs if isinstance(x, Tensor) and x.requires_grad]
        grads = grad(outputs, wanted, list(vs), create_graph=True, allow_unused=True)
        return tuple(g for g in grads if g is not None)

    return vjp


def second_order_inputs(fn, inputs) -> tuple:
    """``inputs`` followed by a random float64 cotangent (requiring grad) for each output."""
    inputs = tuple(inputs)
    outputs = _as_tuple(fn(*inputs))
    cotangents = tuple(randn_like(y, dtype=backend.float64, requires_grad=True) for y in outputs)
    return inputs + cotangents


def gradgradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3) -> bool:
    """Check second derivatives: the gradient of ``fn``'s VJP, with respect to both the inputs
    and the cotangent, against central differences of that VJP."""
    inputs = tuple(inputs)
    return gradcheck(first_order(fn, len(inputs)), second_order_inputs(fn, inputs), eps, atol, rtol)
