"""Elementwise primitives: first and second derivatives against finite differences (float64,
random shapes, broadcasting, 0-d and non-contiguous inputs), forward values against NumPy,
PyTorch's conventions at kinks and ties, stable activations at extreme inputs, and errors."""

import operator
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigen
import minigen.functional as F
from minigen.checks import sample
from minigen.gradcheck import gradcheck, gradgradcheck
from minigen.ops import elementwise as E
from minigen.testing import arrays, broadcastable_shapes, distinct_arrays, shapes

SHAPES = shapes(max_dims=3, max_side=3)
PAIRS = broadcastable_shapes(2, max_dims=3, max_side=3)
TRIPLES = broadcastable_shapes(3, max_dims=3, max_side=3)

# Clip bounds and scalar operands of maximum/minimum sit off the 0.125 grid of distinct
# arrays, so no entry lies on a kink.
LOW, HIGH = -0.3, 0.4


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def _leaky(a, slope):
    return np.where(a > 0, a, slope * a)


# name: (function, input domain, NumPy reference)
UNARY = {
    "neg": (minigen.neg, "real", np.negative),
    "neg operator": (lambda x: -x, "real", np.negative),
    "pow 2": (lambda x: x**2, "real", lambda a: a**2),
    "pow 3": (lambda x: x**3, "real", lambda a: a**3),
    "pow -2": (lambda x: x**-2, "nonzero", lambda a: a**-2.0),
    "pow 0": (lambda x: x**0, "real", np.ones_like),
    "pow 1": (lambda x: x**1, "real", lambda a: a),
    "pow 2.5": (lambda x: x**2.5, "positive", lambda a: a**2.5),
    "pow 0.5": (lambda x: x**0.5, "positive", np.sqrt),
    "pow -1.5": (lambda x: x**-1.5, "positive", lambda a: a**-1.5),
    "pow numpy exponent": (lambda x: x ** np.float64(1.5), "positive", lambda a: a**1.5),
    "minigen.pow scalar": (lambda x: minigen.pow(x, 3), "real", lambda a: a**3),
    "add scalar": (lambda x: x + 2.5, "real", lambda a: a + 2.5),
    "radd scalar": (lambda x: 2.5 + x, "real", lambda a: 2.5 + a),
    "sub scalar": (lambda x: x - 2.5, "real", lambda a: a - 2.5),
    "rsub scalar": (lambda x: 2 - x, "real", lambda a: 2 - a),
    "mul scalar": (lambda x: x * -1.5, "real", lambda a: a * -1.5),
    "rmul scalar": (lambda x: -1.5 * x, "real", lambda a: -1.5 * a),
    "div scalar": (lambda x: x / 4, "real", lambda a: a / 4),
    "rdiv scalar": (lambda x: 2 / x, "nonzero", lambda a: 2 / a),
    "rpow scalar": (lambda x: 2**x, "real", lambda a: 2.0**a),
    "rpow fractional base": (lambda x: 0.5**x, "real", lambda a: 0.5**a),
    "exp": (minigen.exp, "real", np.exp),
    "exp method": (lambda x: x.exp(), "real", np.exp),
    "log": (minigen.log, "positive", np.log),
    "log method": (lambda x: x.log(), "positive", np.log),
    "sqrt": (minigen.sqrt, "positive", np.sqrt),
    "sqrt method": (lambda x: x.sqrt(), "positive", np.sqrt),
    "abs": (minigen.abs, "nonzero", np.abs),
    "abs method": (lambda x: x.abs(), "nonzero", np.abs),
    "relu": (minigen.relu, "nonzero", lambda a: np.maximum(a, 0.0)),
    "relu functional": (F.relu, "nonzero", lambda a: np.maximum(a, 0.0)),
    "relu method": (lambda x: x.relu(), "nonzero", lambda a: np.maximum(a, 0.0)),
    "leaky_relu default slope": (F.leaky_relu, "nonzero", lambda a: _leaky(a, 0.01)),
    "leaky_relu slope 0.2": (lambda x: F.leaky_relu(x, 0.2), "nonzero", lambda a: _leaky(a, 0.2)),
    # slopes outside [0, 2] take the select kernel instead of the arithmetic one
    "leaky_relu slope 3": (lambda x: F.leaky_relu(x, 3.0), "nonzero", lambda a: _leaky(a, 3.0)),
    "leaky_relu slope -0.5": (lambda x: F.leaky_relu(x, -0.5), "nonzero", lambda a: _leaky(a, -0.5)),
    "sigmoid": (minigen.sigmoid, "real", _sigmoid),
    "sigmoid method": (lambda x: x.sigmoid(), "real", _sigmoid),
    "tanh": (minigen.tanh, "real", np.tanh),
    "tanh method": (lambda x: x.tanh(), "real", np.tanh),
    "softplus": (F.softplus, "real", lambda a: np.logaddexp(0.0, a)),
    "softplus beta 2": (lambda x: F.softplus(x, beta=2.0), "real", lambda a: np.logaddexp(0.0, 2 * a) / 2),
    "softplus beta 0.5": (lambda x: F.softplus(x, beta=0.5), "real", lambda a: 2 * np.logaddexp(0.0, a / 2)),
    "clip min only": (lambda x: minigen.clip(x, min=LOW), "distinct", lambda a: np.maximum(a, LOW)),
    "clip max only": (lambda x: minigen.clip(x, max=HIGH), "distinct", lambda a: np.minimum(a, HIGH)),
    "clip both": (lambda x: minigen.clip(x, LOW, HIGH), "distinct", lambda a: np.clip(a, LOW, HIGH)),
    "clamp method": (lambda x: x.clamp(LOW, HIGH), "distinct", lambda a: np.clip(a, LOW, HIGH)),
    "minigen.clamp": (lambda x: minigen.clamp(x, max=HIGH), "distinct", lambda a: np.minimum(a, HIGH)),
    "maximum scalar": (lambda x: minigen.maximum(x, LOW), "distinct", lambda a: np.maximum(a, LOW)),
    "maximum scalar first": (lambda x: minigen.maximum(HIGH, x), "distinct", lambda a: np.maximum(HIGH, a)),
    "minimum scalar": (lambda x: minigen.minimum(x, HIGH), "distinct", lambda a: np.minimum(a, HIGH)),
    "minimum method": (lambda x: x.minimum(LOW), "distinct", lambda a: np.minimum(a, LOW)),
    "where scalar other": (
        lambda x: minigen.where(x > 0, x, 0.0),
        "nonzero",
        lambda a: np.where(a > 0, a, 0),
    ),
    "where scalar first": (
        lambda x: minigen.where(x > 0, 1.5, x),
        "nonzero",
        lambda a: np.where(a > 0, 1.5, a),
    ),
}

# name: (function, (domain of a, domain of b), NumPy reference)
BINARY = {
    "add": (minigen.add, ("real", "real"), np.add),
    "add operator": (operator.add, ("real", "real"), np.add),
    "sub": (minigen.sub, ("real", "real"), np.subtract),
    "sub operator": (operator.sub, ("real", "real"), np.subtract),
    "mul": (minigen.mul, ("real", "real"), np.multiply),
    "mul operator": (operator.mul, ("real", "real"), np.multiply),
    "div": (minigen.div, ("real", "nonzero"), np.divide),
    "div operator": (operator.truediv, ("real", "nonzero"), np.divide),
    "pow": (minigen.pow, ("positive", "real"), np.power),
    "pow operator": (operator.pow, ("positive", "real"), np.power),
    "maximum": (minigen.maximum, ("distinct", "distinct"), np.maximum),
    "maximum method": (lambda a, b: a.maximum(b), ("distinct", "distinct"), np.maximum),
    "minimum": (minigen.minimum, ("distinct", "distinct"), np.minimum),
    "minimum method": (lambda a, b: a.minimum(b), ("distinct", "distinct"), np.minimum),
}

COMPARISONS = {
    "==": (operator.eq, np.equal),
    "!=": (operator.ne, np.not_equal),
    "<": (operator.lt, np.less),
    "<=": (operator.le, np.less_equal),
    ">": (operator.gt, np.greater),
    ">=": (operator.ge, np.greater_equal),
}


# --- drawing inputs --------------------------------------------------------------------------


def _relayout(draw, values):
    """The same values, sometimes stored transposed (a non-contiguous layout, as permute makes)."""
    if values.ndim == 0:
        return values
    order = draw(st.permutations(range(values.ndim)))
    stored = np.ascontiguousarray(values.transpose(order))
    return stored.transpose(np.argsort(order))


@st.composite
def _values(draw, shape, domain):
    if domain == "distinct":
        return _relayout(draw, draw(distinct_arrays(shape)))
    return draw(arrays(shape, domain, contiguous=None))


@st.composite
def _value_pair(draw, shape_a, shape_b, domains):
    """Values for two operands; a distinct pair is one distinct array split in two, so that
    no entry of a ever ties with an entry of b."""
    if domains == ("distinct", "distinct"):
        size_a, size_b = int(np.prod(shape_a, dtype=int)), int(np.prod(shape_b, dtype=int))
        flat = draw(distinct_arrays((size_a + size_b,)))
        a = _relayout(draw, flat[:size_a].reshape(shape_a))
        b = _relayout(draw, flat[size_a:].reshape(shape_b))
        return a, b
    return draw(_values(shape_a, domains[0])), draw(_values(shape_b, domains[1]))


def _leaf(values, requires_grad=True):
    return minigen.tensor(values, dtype=minigen.float64, requires_grad=requires_grad)


def _numpy_pair(shape_a, shape_b, domains, seed=0):
    """Deterministic values for a pair (no hypothesis), with the same domain rules."""
    rng = np.random.default_rng(seed)
    if domains == ("distinct", "distinct"):
        size_a = int(np.prod(shape_a, dtype=int))
        size_b = int(np.prod(shape_b, dtype=int))
        flat = 0.25 * (rng.permutation(size_a + size_b) - (size_a + size_b) / 2)
        return flat[:size_a].reshape(shape_a), flat[size_a:].reshape(shape_b)
    return tuple(sample(s, d).detach().numpy() for s, d in zip((shape_a, shape_b), domains, strict=True))


# --- gradients against finite differences -----------------------------------------------------


@pytest.mark.parametrize("name", UNARY)
@given(data=st.data())
def test_unary_first_and_second_derivatives_match_finite_differences(name, data):
    fn, domain, _ = UNARY[name]
    shape = data.draw(SHAPES, label="shape")
    x = _leaf(data.draw(_values(shape, domain), label="x"))
    assert gradcheck(fn, [x])
    assert gradgradcheck(fn, [x])


@pytest.mark.parametrize("shape", [(), (1,), (1, 3, 1)], ids=str)
@pytest.mark.parametrize("name", UNARY)
def test_unary_derivatives_on_zero_dim_and_size_one_axes(name, shape):
    fn, domain, _ = UNARY[name]
    x = sample(shape, domain)
    assert gradcheck(fn, [x])
    assert gradgradcheck(fn, [x])


@pytest.mark.parametrize("name", BINARY)
@given(data=st.data())
def test_binary_first_and_second_derivatives_match_finite_differences(name, data):
    fn, domains, _ = BINARY[name]
    shape_a, shape_b = data.draw(PAIRS, label="shapes")
    a_values, b_values = data.draw(_value_pair(shape_a, shape_b, domains), label="values")
    # Either operand alone may require grad: the other then gets no gradient at all.
    needs = data.draw(st.sampled_from([(True, True), (True, False), (False, True)]), label="requires_grad")
    a, b = _leaf(a_values, needs[0]), _leaf(b_values, needs[1])
    assert gradcheck(fn, [a, b])
    assert gradgradcheck(fn, [a, b])


@pytest.mark.parametrize(
    "shapes", [((), (2, 3)), ((2, 3), ()), ((), ()), ((2, 1), (1, 3)), ((3, 1, 1), (1, 2))], ids=str
)
@pytest.mark.parametrize("name", BINARY)
def test_binary_derivatives_on_zero_dim_and_broadcast_size_one_axes(name, shapes):
    fn, domains, _ = BINARY[name]
    a_values, b_values = _numpy_pair(*shapes, domains)
    a, b = _leaf(a_values), _leaf(b_values)
    assert gradcheck(fn, [a, b])
    assert gradgradcheck(fn, [a, b])


@given(data=st.data())
def test_where_first_and_second_derivatives_match_finite_differences(data):
    shape_c, shape_a, shape_b = data.draw(TRIPLES, label="shapes")
    condition = data.draw(hnp.arrays(np.bool_, shape_c), label="condition")
    if data.draw(st.booleans(), label="condition as tensor"):
        condition = minigen.tensor(condition)
    a = _leaf(data.draw(arrays(shape_a, "real", contiguous=None), label="a"))
    b = _leaf(data.draw(arrays(shape_b, "real", contiguous=None), label="b"))

    def fn(a, b):
        return minigen.where(condition, a, b)

    assert gradcheck(fn, [a, b])
    assert gradgradcheck(fn, [a, b])


# --- forward values against NumPy -------------------------------------------------------------


@pytest.mark.parametrize("name", UNARY)
@given(data=st.data())
def test_unary_matches_numpy(name, data):
    fn, domain, reference = UNARY[name]
    shape = data.draw(SHAPES, label="shape")
    values = data.draw(_values(shape, domain), label="x")
    y = fn(_leaf(values))
    assert y.dtype == minigen.float64
    assert y.shape == shape
    np.testing.assert_allclose(y.detach().numpy(), reference(values), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("name", BINARY)
@given(data=st.data())
def test_binary_matches_numpy(name, data):
    fn, domains, reference = BINARY[name]
    shape_a, shape_b = data.draw(PAIRS, label="shapes")
    a_values, b_values = data.draw(_value_pair(shape_a, shape_b, domains), label="values")
    y = fn(_leaf(a_values), _leaf(b_values))
    expected = reference(a_values, b_values)
    assert y.dtype == minigen.float64
    assert y.shape == np.broadcast_shapes(shape_a, shape_b)
    np.testing.assert_allclose(y.detach().numpy(), expected, rtol=1e-13, atol=1e-15)


@given(data=st.data())
def test_where_matches_numpy(data):
    shape_c, shape_a, shape_b = data.draw(TRIPLES, label="shapes")
    condition = data.draw(hnp.arrays(np.bool_, shape_c), label="condition")
    a = data.draw(arrays(shape_a, "real", contiguous=None), label="a")
    b = data.draw(arrays(shape_b, "real", contiguous=None), label="b")
    y = minigen.where(minigen.tensor(condition), _leaf(a), _leaf(b))
    np.testing.assert_array_equal(y.detach().numpy(), np.where(condition, a, b))


@pytest.mark.parametrize("name", COMPARISONS)
@given(data=st.data())
def test_comparison_matches_numpy_and_carries_no_gradient(name, data):
    op, reference = COMPARISONS[name]
    shape_a, shape_b = data.draw(PAIRS, label="shapes")
    grid = st.sampled_from([-1.0, 0.0, 0.5, 1.0])  # a small grid, so ties are common
    a = data.draw(hnp.arrays(np.float64, shape_a, elements=grid), label="a")
    b = data.draw(hnp.arrays(np.float64, shape_b, elements=grid), label="b")
    ta, tb = _leaf(a), _leaf(b)
    for result, expected in [
        (op(ta, tb), reference(a, b)),
        (op(ta, 0.5), reference(a, 0.5)),
        (op(0.5, tb), reference(0.5, b)),  # reflected: Python turns 0.5 < t into t > 0.5
        (op(ta, b), reference(a, b)),  # a NumPy array on the right
        (op(np.float64(0.5), tb), reference(0.5, b)),  # a NumPy scalar on the left
    ]:
        assert isinstance(result, minigen.Tensor)
        assert result.dtype == np.bool_
        assert not result.requires_grad
        assert result.creator is None
        assert result.shape == np.shape(expected)
        np.testing.assert_array_equal(result.numpy(), expected)


@pytest.mark.parametrize("name", COMPARISONS)
def test_comparison_of_zero_dim_tensors_holds_an_array(name):
    op, reference = COMPARISONS[name]
    result = op(minigen.tensor(1.0), minigen.tensor(2.0))
    assert isinstance(result.data, np.ndarray)
    assert result.shape == ()
    assert result.item() == reference(1.0, 2.0)


def test_zero_dim_result_holds_an_array_that_gradcheck_can_perturb():
    a = minigen.tensor(np.array(1.5), dtype=minigen.float64)
    y = (a * 2.0).exp()
    assert isinstance(y.data, np.ndarray)
    leaf = y.detach().requires_grad_()
    assert gradcheck(lambda t: t * 3.0, [leaf])


# --- PyTorch's conventions at kinks and ties -------------------------------------------------


def _grads(fn, *values):
    leaves = [minigen.tensor(v, dtype=minigen.float64, requires_grad=True) for v in values]
    fn(*leaves).sum().backward()
    return [leaf.grad.numpy() for leaf in leaves]


def test_relu_gradient_at_zero_is_zero():
    (g,) = _grads(minigen.relu, [-1.0, 0.0, -0.0, 2.0])
    np.testing.assert_array_equal(g, [0.0, 0.0, 0.0, 1.0])


def test_abs_gradient_at_zero_is_zero():
    (g,) = _grads(minigen.abs, [-1.0, 0.0, -0.0, 2.0])
    np.testing.assert_array_equal(g, [-1.0, 0.0, 0.0, 1.0])


def test_leaky_relu_gradient_at_zero_is_the_negative_slope():
    (g,) = _grads(F.leaky_relu, [-1.0, 0.0, 2.0])
    np.testing.assert_array_equal(g, [0.01, 0.01, 1.0])


def test_leaky_relu_default_negative_slope_is_pytorchs_001():
    y = F.leaky_relu(minigen.tensor([-2.0, -0.5, 0.0, 3.0], dtype=minigen.float64))
    np.testing.assert_array_equal(y.numpy(), [-0.02, -0.005, 0.0, 3.0])


def test_maximum_tie_splits_gradient_evenly():
    ga, gb = _grads(minigen.maximum, [1.0, 2.0, 3.0, -1.0], [1.0, 0.0, 3.0, 0.0])
    np.testing.assert_array_equal(ga, [0.5, 1.0, 0.5, 0.0])
    np.testing.assert_array_equal(gb, [0.5, 0.0, 0.5, 1.0])


def test_minimum_tie_splits_gradient_evenly():
    ga, gb = _grads(minigen.minimum, [1.0, 2.0, 3.0, -1.0], [1.0, 0.0, 3.0, 0.0])
    np.testing.assert_array_equal(ga, [0.5, 0.0, 0.5, 1.0])
    np.testing.assert_array_equal(gb, [0.5, 1.0, 0.5, 0.0])


def test_maximum_tie_with_broadcast_operand_sums_the_half_shares():
    # b (0-d) ties with two entries of a and beats the third: 0.5 + 0.5 + 1.
    ga, gb = _grads(minigen.maximum, [2.0, 2.0, 1.0, 3.0], 2.0)
    np.testing.assert_array_equal(ga, [0.5, 0.5, 0.0, 1.0])
    assert gb.shape == ()
    assert gb == 2.0


def test_maximum_and_minimum_at_a_tie_return_the_tied_value():
    a, b = minigen.tensor([1.0, 5.0, -2.0]), minigen.tensor([1.0, 4.0, -1.0])
    np.testing.assert_array_equal(minigen.maximum(a, b).numpy(), [1.0, 5.0, -1.0])
    np.testing.assert_array_equal(minigen.minimum(a, b).numpy(), [1.0, 4.0, -2.0])


CLIP_X = [-2.0, -1.0, 0.0, 1.0, 2.0]


@pytest.mark.parametrize(
    "bounds, values, gradient",
    [
        ((-1.0, 1.0), [-1.0, -1.0, 0.0, 1.0, 1.0], [0.0, 1.0, 1.0, 1.0, 0.0]),
        ((-1.0, None), [-1.0, -1.0, 0.0, 1.0, 2.0], [0.0, 1.0, 1.0, 1.0, 1.0]),
        ((None, 1.0), [-2.0, -1.0, 0.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0, 0.0]),
    ],
    ids=["both", "min only", "max only"],
)
def test_clip_gradient_is_one_at_the_bounds_and_zero_outside(bounds, values, gradient):
    x = minigen.tensor(CLIP_X, dtype=minigen.float64, requires_grad=True)
    y = minigen.clip(x, *bounds)
    np.testing.assert_array_equal(y.detach().numpy(), values)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), gradient)


def test_clamp_is_clip():
    x = minigen.tensor(CLIP_X, dtype=minigen.float64)
    np.testing.assert_array_equal(minigen.clamp(x, -1, 1).numpy(), x.clip(-1, 1).numpy())
    np.testing.assert_array_equal(x.clamp(min=0).numpy(), [0.0, 0.0, 0.0, 1.0, 2.0])


def test_pow_zero_exponent_gives_ones_and_zero_gradient():
    x = minigen.tensor([-2.0, 0.0, 3.0], dtype=minigen.float64, requires_grad=True)
    y = x**0
    np.testing.assert_array_equal(y.detach().numpy(), [1.0, 1.0, 1.0])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0, 0.0])


def test_pow_with_numpy_array_exponent_broadcasts_like_a_constant_tensor():
    exponent = np.array([2.0, 3.0, -0.5])
    x = sample((2, 3), "positive")
    y = x**exponent
    np.testing.assert_allclose(y.detach().numpy(), x.detach().numpy() ** exponent, rtol=1e-14)
    assert gradcheck(lambda t: t**exponent, [x])
    assert gradgradcheck(lambda t: t**exponent, [x])


def test_integer_power_of_negative_base_is_real():
    x = minigen.tensor([-2.0, -0.5], dtype=minigen.float64, requires_grad=True)
    y = x**3
    np.testing.assert_array_equal(y.detach().numpy(), [-8.0, -0.125])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [12.0, 0.75])


def test_where_gradient_goes_only_to_the_chosen_operand():
    condition = minigen.tensor([True, False, True])
    ga, gb = _grads(lambda a, b: minigen.where(condition, a, b), [1.0, 2.0, 3.0], [4.0, 5.0, 6.0])
    np.testing.assert_array_equal(ga, [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(gb, [0.0, 1.0, 0.0])


# --- numerically hard inputs -----------------------------------------------------------------


@pytest.fixture
def strict_floats():
    """Turn every overflow, invalid operation and division by zero into an error."""
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        yield


EXTREMES = [-1000.0, -50.0, 0.0, 50.0, 1000.0]


@pytest.mark.parametrize("dtype", [minigen.float32, minigen.float64], ids=str)
def test_sigmoid_matches_exact_limits_at_extremes(dtype, strict_floats):
    x = minigen.tensor(EXTREMES, dtype=dtype, requires_grad=True)
    y = minigen.sigmoid(x)
    values = y.detach().numpy()
    assert values.dtype == dtype
    assert values[0] == 0.0 and values[-1] == 1.0 and values[2] == 0.5
    assert values[3] == 1.0  # 1 - e^-50 rounds to 1 in both dtypes
    np.testing.assert_allclose(values[1], np.exp(-50.0), rtol=1e-6)  # e^-50 is representable
    y.sum().backward()
    g = x.grad.numpy()
    assert np.isfinite(g).all()
    assert g[0] == 0.0 and g[-1] == 0.0 and g[2] == 0.25


def test_sigmoid_keeps_relative_accuracy_in_the_far_negative_tail(strict_floats):
    a = np.array([-700.0, -300.0, -40.0, -20.0])
    y = minigen.sigmoid(minigen.tensor(a, dtype=minigen.float64)).numpy()
    np.testing.assert_allclose(y, np.exp(a) / (1.0 + np.exp(a)), rtol=1e-13)
    assert (y > 0).all()


@pytest.mark.parametrize("beta", [1.0, 2.0, 0.5])
@pytest.mark.parametrize("dtype", [minigen.float32, minigen.float64], ids=str)
def test_softplus_matches_numpy_at_extremes(dtype, beta, strict_floats):
    a = np.array(EXTREMES)
    x = minigen.tensor(a, dtype=dtype, requires_grad=True)
    y = F.softplus(x, beta=beta)
    values = y.detach().numpy()
    assert values.dtype == dtype
    tolerance = {"rtol": 1e-6, "atol": 1e-30} if dtype == minigen.float32 else {"rtol": 1e-14, "atol": 0}
    np.testing.assert_allclose(values, np.logaddexp(0.0, beta * a) / beta, **tolerance)
    assert values[-1] == 1000.0  # the exact limit x, not inf
    y.sum().backward()
    g = x.grad.numpy()
    assert np.isfinite(g).all()
    np.testing.assert_allclose(g, np.exp(-np.logaddexp(0.0, -beta * a)), **tolerance)  # sigmoid(beta x)
    assert g[-1] == 1.0 and g[2] == 0.5
    if beta == 1.0:  # log1p(e^-1000) underflows to exactly 0 in both dtypes
        assert values[0] == 0.0 and g[0] == 0.0


def test_softplus_keeps_relative_accuracy_in_the_far_negative_tail(strict_floats):
    a = np.array([-700.0, -300.0, -40.0, -20.0])
    y = F.softplus(minigen.tensor(a, dtype=minigen.float64)).numpy()
    np.testing.assert_allclose(y, np.log1p(np.exp(a)), rtol=1e-13)
    assert (y > 0).all()


@pytest.mark.parametrize("dtype", [minigen.float32, minigen.float64], ids=str)
def test_tanh_saturates_to_exactly_one_with_zero_gradient(dtype, strict_floats):
    x = minigen.tensor([-1000.0, -25.0, 0.0, 25.0, 1000.0], dtype=dtype, requires_grad=True)
    y = minigen.tanh(x)
    np.testing.assert_array_equal(y.detach().numpy(), [-1.0, -1.0, 0.0, 1.0, 1.0])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0, 1.0, 0.0, 0.0])


# --- errors ----------------------------------------------------------------------------------

MISMATCHED = {
    **{name: fn for name, (fn, _, _) in BINARY.items()},
    **{f"comparison {name}": op for name, (op, _) in COMPARISONS.items()},
    "where": lambda a, b: minigen.where(True, a, b),
}


@pytest.mark.parametrize("name", MISMATCHED)
def test_binary_shape_mismatch_error_names_both_shapes(name):
    a, b = minigen.ones(2, 3), minigen.ones(4)
    with pytest.raises(ValueError) as info:
        MISMATCHED[name](a, b)
    assert "(2, 3)" in str(info.value)
    assert "(4,)" in str(info.value)


def test_clip_without_bounds_raises_value_error():
    with pytest.raises(ValueError, match="min"):
        minigen.clip(minigen.ones(2))


def test_pow_without_a_tensor_raises_type_error():
    with pytest.raises(TypeError):
        E.pow(2.0, 3.0)
