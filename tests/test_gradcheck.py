"""Gradient checking: finite differences, gradcheck / gradgradcheck catching wrong Functions,
and the catalogue of checks covering every primitive in minigen.ops.
"""

import importlib
import pkgutil
import re

import numpy as np
import pytest

import minigen
import minigen.ops
from minigen import Function, Tensor
from minigen.checks import CASES, run_case
from minigen.gradcheck import GradcheckError, compare_gradients, gradcheck, gradgradcheck, numerical_grad


def f64(values, requires_grad=True):
    return minigen.tensor(np.asarray(values, dtype=np.float64), requires_grad=requires_grad)


# --- numerical_grad ----------------------------------------------------------------------------


def test_numerical_grad_of_sum_of_squares_is_2x():
    x = f64([[0.5, -1.25, 2.0], [3.0, 0.1, -0.7]])
    (g,) = numerical_grad(lambda t: (t * t).sum(), [x])
    np.testing.assert_allclose(g, 2 * x.data, rtol=1e-8, atol=1e-8)


def test_numerical_grad_of_sum_exp_is_exp():
    x = f64([0.3, -2.0, 1.7, 0.0])
    (g,) = numerical_grad(lambda t: t.exp().sum(), [x])
    np.testing.assert_allclose(g, np.exp(x.data), rtol=1e-8, atol=1e-8)


def test_numerical_grad_of_two_inputs_and_constant_input():
    """f(a, c, b) = sum(a * b * c): df/da = b c, df/db = a c, nothing for the constant c."""
    a = f64([1.0, 2.0])
    c = f64([0.5, -3.0], requires_grad=False)
    b = f64([-1.5, 4.0])
    ga, gc, gb = numerical_grad(lambda a, c, b: (a * b * c).sum(), [a, c, b])
    assert gc is None
    np.testing.assert_allclose(ga, b.data * c.data, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(gb, a.data * c.data, rtol=1e-8, atol=1e-8)


def test_numerical_grad_restores_inputs():
    data = np.array([[0.5, -1.0], [2.0, 3.0]])
    x = Tensor(data.T).requires_grad_()  # a non-contiguous view that must come back unchanged
    original = x.data
    assert not original.flags.c_contiguous
    numerical_grad(lambda t: (t * t * t).sum(), [x])
    assert x.data is original
    np.testing.assert_array_equal(x.data, data.T)
    np.testing.assert_array_equal(data, [[0.5, -1.0], [2.0, 3.0]])


def test_numerical_grad_of_float32_input_raises():
    x = minigen.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(TypeError, match="float64"):
        numerical_grad(lambda t: (t * t).sum(), [x])


def test_gradcheck_of_float32_input_raises():
    x = minigen.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(TypeError, match="float64"):
        gradcheck(lambda t: t * t, [x])


# --- gradcheck and gradgradcheck on hand-written Functions --------------------------------------


class Square(Function):
    """Correct: y = x^2, gx = gy * 2x written in Tensor ops (so it is differentiable)."""

    def forward(self, x):
        return x * x

    def backward(self, gy):
        return gy * (2.0 * self.inputs[0])


class WrongSquare(Function):
    """Wrong first derivative: gx = gy * x instead of gy * 2x."""

    def forward(self, x):
        return x * x

    def backward(self, gy):
        return gy * self.inputs[0]


class ConstantSlopeSquare(Function):
    """Right first derivative from a constant: gx = gy * Tensor(2 x.data).

    The value is right, but the slope is a constant cut from the graph, so the second derivative
    d(gx)/dx is lost (DeZero's batch-norm bug). gradcheck passes; gradgradcheck must not.
    """

    def forward(self, x):
        return x * x

    def backward(self, gy):
        return gy * Tensor(2 * self.inputs[0].data)


_ROW = re.compile(r"^\s*(\d+)\s+(\([^)]*\))\s+(\S+)\s+(\S+)\s+(\S+)\s*$")


def _table_rows(message):
    rows = []
    for line in message.splitlines():
        match = _ROW.match(line)
        if match:
            position, index, analytic, numeric, error = match.groups()
            rows.append((int(position), index, float(analytic), float(numeric), float(error)))
    return rows


def test_gradcheck_passes_correct_functions():
    x = f64([0.5, -1.5, 2.0, 0.25])
    y = f64([1.0, 2.0, -3.0, 0.5])
    assert gradcheck(lambda t: Square()(t), [x]) is True
    assert gradcheck(lambda a, b: (a * b).exp() / (b * b + 1.0), [x, y]) is True
    assert gradcheck(lambda a, b: (a @ b, a.tanh()), [x, y]) is True


def test_gradcheck_catches_wrong_first_derivative_with_a_table():
    x = f64([0.5, -1.5, 3.0, 0.25])
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda t: WrongSquare()(t), [x])
    message = str(info.value)
    header = [line.split()[:4] for line in message.splitlines() if line.split()[:1] == ["input"]]
    assert header == [["input", "index", "analytic", "numeric"]], message
    rows = _table_rows(message)
    assert len(rows) == 4
    # Entry i: analytic v_i x_i against numeric 2 v_i x_i (v the random cotangent), so every
    # row has numeric = 2 * analytic and abs error = |analytic|, worst first.
    for position, _, analytic, numeric, error in rows:
        assert position == 0
        assert numeric == pytest.approx(2 * analytic, rel=1e-5)
        assert error == pytest.approx(abs(analytic), rel=1e-2)  # printed to 3 digits
    assert sorted(index for _, index, *_ in rows) == ["(0,)", "(1,)", "(2,)", "(3,)"]
    errors = [row[4] for row in rows]
    assert errors == sorted(errors, reverse=True)


def test_gradcheck_table_locates_the_wrong_entry_of_a_matrix():
    """Only entry (1, 2) is wrong: the table's first row must name it."""

    class OneWrongEntry(Function):
        def forward(self, x):
            return x * 3.0

        def backward(self, gy):
            mask = np.ones(self.inputs[0].shape)
            mask[1, 2] = 0.0
            return gy * Tensor(3.0 * mask)

    x = f64(np.arange(6.0).reshape(2, 3) - 2.5)
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda t: OneWrongEntry()(t), [x])
    rows = _table_rows(str(info.value))
    position, index, analytic, numeric, error = rows[0]
    assert (position, index) == (0, "(1, 2)")
    assert analytic == 0.0
    assert error == pytest.approx(abs(numeric), rel=1e-2) and abs(numeric) > 1e-3  # 3 digits
    assert all(row[4] == 0.0 or row[4] < 1e-6 for row in rows[1:])


def test_gradcheck_names_the_wrong_input_position():
    """Inputs 0 and 2 require grad, only input 2's gradient is wrong."""

    class WrongSecondOperand(Function):
        def forward(self, a, b):
            return a * b

        def backward(self, gy):
            a, b = self.inputs
            return gy * b, gy * a * 2.0

    a = f64([1.0, 2.0])
    constant = f64([5.0, 5.0], requires_grad=False)
    b = f64([3.0, -1.0])
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda a, c, b: WrongSecondOperand()(a, b) + c, [a, constant, b])
    rows = _table_rows(str(info.value))
    bad = [row for row in rows if row[4] > 1e-6]
    assert bad and all(row[0] == 2 for row in bad)


def test_compare_gradients_reports_max_errors_and_pass_flag():
    x = f64([0.5, -1.5, 3.0])
    good = compare_gradients(lambda t: Square()(t), [x])
    assert good.passed and good.max_abs_error < 1e-7
    bad = compare_gradients(lambda t: WrongSquare()(t), [x])
    assert not bad.passed and bad.max_abs_error > 1e-2


def test_gradgradcheck_passes_differentiable_backward():
    x = f64([0.5, -1.5, 2.0])
    assert gradgradcheck(lambda t: Square()(t), [x]) is True
    assert gradgradcheck(lambda t: (t.exp() * t).sum(), [x]) is True


def test_gradgradcheck_catches_backward_built_from_constants():
    x = f64([0.5, -1.5, 2.0])
    assert gradcheck(lambda t: ConstantSlopeSquare()(t), [x]) is True
    with pytest.raises(GradcheckError) as info:
        gradgradcheck(lambda t: ConstantSlopeSquare()(t), [x])
    rows = _table_rows(str(info.value))
    # The VJP g = v * 2x, differentiated with respect to x (input 0): analytic 0, numeric 2 w v.
    wrong = [row for row in rows if row[0] == 0]
    assert wrong
    for _, _, analytic, numeric, _ in wrong:
        assert analytic == 0.0 and abs(numeric) > 1e-4


# --- the catalogue -------------------------------------------------------------------------------


def _import_all_ops():
    for info in pkgutil.walk_packages(minigen.ops.__path__, "minigen.ops."):
        importlib.import_module(info.name)


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _primitive_functions():
    """Every concrete Function in minigen.ops: defined there, not a private abstract base
    (``_Masked``, ``_Reduction``, ``_Extremum``), and with a forward of its own or inherited
    from such a base (Max and Min inherit _Extremum's)."""
    _import_all_ops()
    found = set()
    for cls in _subclasses(Function):
        if not cls.__module__.startswith("minigen.ops"):
            continue
        if cls.__name__.startswith("_"):
            continue
        if cls.forward is Function.forward:
            continue
        found.add(cls)
    return found


def test_catalogue_walk_finds_the_known_primitives():
    names = {cls.__name__ for cls in _primitive_functions()}
    expected = {"Add", "Mul", "Exp", "ReLU", "Max", "Min", "Sum", "MatMul", "GetItem", "IndexAdd", "Convert"}
    assert expected <= names
    assert not names & {"_Masked", "_Reduction", "_Extremum", "Function"}


def test_every_primitive_is_in_the_catalogue():
    covered = {cls for case in CASES for cls in case.covers}
    missing = sorted(f"{cls.__module__}.{cls.__qualname__}" for cls in _primitive_functions() - covered)
    assert not missing, f"primitives without a gradient check in minigen.checks.CASES: {missing}"


def test_catalogue_case_names_are_unique():
    names = [case.name for case in CASES]
    assert len(names) == len(set(names))


def test_catalogue_case_covers_what_it_runs():
    """Each case's ``covers`` must name Functions that its fn actually records."""
    for case in CASES:
        minigen.manual_seed(0)
        outputs = case.fn(*case.sample_inputs())
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        recorded, stack, seen = set(), [y.creator for y in outputs if y.creator], set()
        while stack:
            node = stack.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            recorded.add(type(node))
            stack.extend(x.creator for x in node.inputs if x.creator)
        first_order_only = {c for c in case.covers if c.__name__ == "IndexAdd"}  # runs in backward
        assert set(case.covers) - first_order_only <= recorded, (case.name, case.covers, recorded)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_catalogue_case_passes_first_and_second_order(case, seed):
    minigen.manual_seed(seed)
    first, second = run_case(case)
    assert first.passed, f"{case.name}: first order\n{first.table}"
    assert second.passed, f"{case.name}: second order\n{second.table}"
