"""dtypes: float32 in gives float32 out and float32 gradients for every primitive; Python and
NumPy scalars never upcast a float32 tensor; minigen.tensor() and the creation functions pick
PyTorch's dtypes; manual_seed makes random draws repeat; only floating tensors require grad."""

import operator

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigen
import minigen.functional as F
from minigen.checks import CASES, sample
from minigen.gradcheck import first_order
from minigen.testing import arrays, shapes


def _float32_leaves(case):
    """The case's inputs, drawn from its domains, as float32 leaves that require grad."""
    leaves = []
    for shape, domain in case.inputs:
        x = sample(shape, domain).detach().to(dtype=minigen.float32)
        assert x.dtype == minigen.float32 and x.is_leaf
        leaves.append(x.requires_grad_())
    return leaves


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_float32_primitive_gives_float32_output_and_gradients(case):
    inputs = _float32_leaves(case)
    y = case.fn(*inputs)
    assert y.dtype == minigen.float32
    cotangent = minigen.randn_like(y)
    assert cotangent.dtype == minigen.float32
    (y * cotangent).sum().backward()
    # The same computation in float64 on the same (float32-representable) values agrees.
    twins = [x.detach().double().requires_grad_() for x in inputs]
    y64 = case.fn(*twins)
    np.testing.assert_allclose(y.detach().numpy(), y64.detach().numpy(), rtol=1e-5, atol=1e-6)
    (y64 * cotangent.double()).sum().backward()
    for x, twin in zip(inputs, twins, strict=True):
        assert x.grad is not None
        assert x.grad.dtype == minigen.float32
        assert x.grad.shape == x.shape
        np.testing.assert_allclose(x.grad.numpy(), twin.grad.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_float32_primitive_gives_float32_second_derivatives(case):
    inputs = _float32_leaves(case)
    y = case.fn(*inputs)
    cotangent = minigen.randn_like(y, requires_grad=True)
    grads = first_order(case.fn, len(inputs))(*inputs, cotangent)
    assert all(g.dtype == minigen.float32 for g in grads)
    total = sum((g * minigen.randn_like(g)).sum() for g in grads if g.requires_grad)
    total.backward()
    for x in [*inputs, cotangent]:
        assert x.grad is None or x.grad.dtype == minigen.float32
    assert cotangent.grad is not None


# Elementwise variants that the catalogue reaches through one spelling only.
VARIANTS = {
    "leaky_relu default": (F.leaky_relu, "nonzero"),
    "softplus beta 2": (lambda x: F.softplus(x, beta=2.0), "real"),
    "clip min only": (lambda x: minigen.clip(x, min=-0.3), "distinct"),
    "clip max only": (lambda x: minigen.clip(x, max=0.4), "distinct"),
    "maximum scalar": (lambda x: minigen.maximum(x, np.float64(0.3)), "distinct"),
    "minimum scalar": (lambda x: minigen.minimum(np.float64(0.3), x), "distinct"),
    "where scalar": (lambda x: minigen.where(x > 0, x, np.float64(0.5)), "nonzero"),
    "rsub": (lambda x: 2.0 - x, "real"),
    "rdiv": (lambda x: np.float64(2.0) / x, "nonzero"),
    "rpow": (lambda x: np.float64(2.0) ** x, "real"),
    "pow numpy exponent": (lambda x: x ** np.float64(1.5), "positive"),
    "pow numpy array exponent": (lambda x: x ** np.array([1.0, 2.0, 0.5]), "positive"),
    "pow 0": (lambda x: x**0, "real"),
    "pow 1": (lambda x: x**1, "real"),
}


@pytest.mark.parametrize("name", VARIANTS)
def test_float32_elementwise_variant_gives_float32_output_and_gradient(name):
    fn, domain = VARIANTS[name]
    x = sample((2, 3), domain).detach().to(dtype=minigen.float32).requires_grad_()
    y = fn(x)
    assert y.dtype == minigen.float32
    (y * minigen.randn_like(y)).sum().backward()
    assert x.grad.dtype == minigen.float32


# --- scalars in arithmetic with a float32 tensor -----------------------------------------------

SCALARS = {
    "int": 2,
    "float": 2.0,
    "numpy float64": np.float64(2.0),
    "numpy float64 0-d array": np.array(2.0),
    "numpy float32": np.float32(2.0),
    "numpy int64": np.int64(2),
}
OPERATORS = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "**": operator.pow,
}


@pytest.mark.parametrize("scalar_on_left", [False, True], ids=["tensor op scalar", "scalar op tensor"])
@pytest.mark.parametrize("op_name", OPERATORS)
@pytest.mark.parametrize("scalar_name", SCALARS)
def test_scalar_arithmetic_keeps_float32(scalar_name, op_name, scalar_on_left):
    scalar, op = SCALARS[scalar_name], OPERATORS[op_name]
    values = np.array([[0.5, 1.25, 2.0], [0.75, 1.5, 3.0]], dtype=np.float32)  # positive: fine for **
    x = minigen.tensor(values, requires_grad=True)
    y = op(scalar, x) if scalar_on_left else op(x, scalar)
    assert isinstance(y, minigen.Tensor)
    assert y.dtype == minigen.float32
    expected = op(np.float32(scalar), values) if scalar_on_left else op(values, np.float32(scalar))
    np.testing.assert_allclose(y.detach().numpy(), expected, rtol=1e-6)
    y.sum().backward()
    assert x.grad.dtype == minigen.float32


@given(data=st.data())
def test_numpy_float64_scalar_never_upcasts_float32_tensor(data):
    shape = data.draw(shapes(max_dims=3, max_side=3), label="shape")
    values = data.draw(arrays(shape, "positive", dtype=np.float32, contiguous=None), label="x")
    scalar = np.float64(data.draw(st.floats(0.5, 2.0), label="scalar"))
    x = minigen.tensor(values)
    for y in (x * scalar, scalar * x, x + scalar, scalar - x, x / scalar, scalar / x, x**scalar, scalar**x):
        assert y.dtype == minigen.float32
        assert y.shape == shape


@pytest.mark.parametrize("op_name", ["+", "*", "/"])
def test_mixed_float32_and_float64_tensors_give_each_input_a_gradient_of_its_own_dtype(op_name):
    op = OPERATORS[op_name]
    x = minigen.ones(3, requires_grad=True)
    w = minigen.ones(3, dtype=minigen.float64, requires_grad=True)
    y = op(x, w)
    assert y.dtype == minigen.float64  # promotion, as NumPy and PyTorch do
    y.sum().backward()
    assert w.grad.dtype == minigen.float64
    assert x.grad.dtype == minigen.float32


@pytest.mark.parametrize(
    "combine",
    [
        lambda t: t * 0.5,
        lambda t: 0.5 + t,
        lambda t: t / 2,
        lambda t: t * minigen.ones(4),
        lambda t: minigen.ones(4) - t,
    ],
    ids=["int * float", "float + int", "int / int", "int * float32 tensor", "float32 tensor - int"],
)
def test_integer_tensor_in_float_arithmetic_gives_float32(combine):
    y = combine(minigen.arange(4))
    assert y.dtype == minigen.float32


def test_integer_tensor_true_division_by_int_gives_float():
    y = minigen.arange(4) / 2
    assert y.dtype.kind == "f"
    np.testing.assert_array_equal(y.numpy(), [0.0, 0.5, 1.0, 1.5])


# --- minigen.tensor() -------------------------------------------------------------------------

TENSOR_DTYPES = [
    ("python float", 1.5, minigen.float32),
    ("list of floats", [1.5, 2.0], minigen.float32),
    ("nested list of floats", [[1.0], [2.5]], minigen.float32),
    ("list of ints and floats", [1, 2.5], minigen.float32),
    ("float64 array", np.zeros((2, 3)), minigen.float64),
    ("float64 0-d array", np.array(1.5), minigen.float64),
    ("numpy float64 scalar", np.float64(1.5), minigen.float64),
    ("float32 array", np.zeros(3, dtype=np.float32), minigen.float32),
    ("python int", 3, minigen.int64),
    ("list of ints", [1, 2, 3], minigen.int64),
    ("nested list of ints", [[1, 2], [3, 4]], minigen.int64),
    ("int64 array", np.arange(3), minigen.int64),
    ("int32 array", np.arange(3, dtype=np.int32), np.dtype(np.int32)),
    ("python bool", True, minigen.bool_),
    ("list of bools", [True, False], minigen.bool_),
]


@pytest.mark.parametrize("data, expected", [c[1:] for c in TENSOR_DTYPES], ids=[c[0] for c in TENSOR_DTYPES])
def test_tensor_infers_pytorch_dtype(data, expected):
    t = minigen.tensor(data)
    assert t.dtype == expected
    np.testing.assert_array_equal(t.numpy(), np.asarray(data))


@pytest.mark.parametrize("dtype", [minigen.float32, minigen.float64, "float64", np.float32], ids=str)
def test_tensor_honours_dtype_argument(dtype):
    for data in ([1, 2], [1.5, 2.5], np.array([1.5, 2.5]), np.array([1.5, 2.5], dtype=np.float32)):
        assert minigen.tensor(data, dtype=dtype).dtype == np.dtype(dtype)


def test_tensor_copies_its_data():
    source = np.array([1.0, 2.0])
    t = minigen.tensor(source)
    source[0] = 99.0
    np.testing.assert_array_equal(t.numpy(), [1.0, 2.0])


def test_tensor_of_a_tensor_keeps_its_dtype():
    assert minigen.tensor(minigen.ones(2, dtype=minigen.float64)).dtype == minigen.float64
    assert minigen.tensor(minigen.arange(3)).dtype == minigen.int64


@pytest.mark.parametrize(
    "make",
    [
        lambda: minigen.tensor([1, 2], requires_grad=True),
        lambda: minigen.tensor(True, requires_grad=True),
        lambda: minigen.tensor([1, 2]).requires_grad_(),
        lambda: minigen.zeros(2, dtype=minigen.int64, requires_grad=True),
        lambda: minigen.ones(2, dtype="int32", requires_grad=True),
        lambda: minigen.full((2,), 3, requires_grad=True),
        lambda: minigen.arange(3, requires_grad=True),
        lambda: minigen.zeros_like(minigen.arange(3), requires_grad=True),
    ],
    ids=[
        "tensor ints",
        "tensor bool",
        "requires_grad_",
        "zeros int64",
        "ones int32",
        "full int",
        "arange int",
        "zeros_like int",
    ],
)
def test_requires_grad_on_integer_or_bool_tensor_raises_type_error(make):
    with pytest.raises(TypeError, match="floating"):
        make()


def test_float_tensors_can_require_grad():
    for dtype in (minigen.float32, minigen.float64):
        assert minigen.tensor([1.0], dtype=dtype, requires_grad=True).requires_grad
        assert minigen.zeros(2, dtype=dtype).requires_grad_().requires_grad


# --- conversions --------------------------------------------------------------------------------


def test_float_and_double_convert_and_send_gradients_back_in_the_input_dtype():
    x64 = minigen.tensor(np.array([1.5, -2.0]), requires_grad=True)
    y = x64.float()
    assert y.dtype == minigen.float32
    (y * 3.0).sum().backward()
    assert x64.grad.dtype == minigen.float64
    np.testing.assert_array_equal(x64.grad.numpy(), [3.0, 3.0])

    x32 = minigen.tensor([1.5, -2.0], requires_grad=True)
    z = x32.double()
    assert z.dtype == minigen.float64
    (z * 3.0).sum().backward()
    assert x32.grad.dtype == minigen.float32
    np.testing.assert_array_equal(x32.grad.numpy(), [3.0, 3.0])


def test_to_accepts_a_dtype_positionally_as_pytorch():
    x = minigen.ones(2, requires_grad=True)
    y = x.to(minigen.float64)
    assert y.dtype == minigen.float64
    y.sum().backward()
    assert x.grad.dtype == minigen.float32


def test_to_same_dtype_returns_the_tensor_itself():
    x = minigen.ones(2)
    assert x.to(dtype=minigen.float32) is x


# --- creation functions ---------------------------------------------------------------------

CREATORS = {
    "zeros": lambda **kw: minigen.zeros(2, 3, **kw),
    "zeros tuple": lambda **kw: minigen.zeros((2, 3), **kw),
    "ones": lambda **kw: minigen.ones(2, 3, **kw),
    "full": lambda **kw: minigen.full((2, 3), 1.5, **kw),
    "randn": lambda **kw: minigen.randn(2, 3, **kw),
    "rand": lambda **kw: minigen.rand(2, 3, **kw),
    "arange float": lambda **kw: minigen.arange(0.0, 1.5, 0.25, **kw),
    "eye": lambda **kw: minigen.eye(3, **kw),
    "eye rectangular": lambda **kw: minigen.eye(2, 4, **kw),
}
LIKE = {
    "zeros_like": lambda t, **kw: minigen.zeros_like(t, **kw),
    "ones_like": lambda t, **kw: minigen.ones_like(t, **kw),
    "full_like": lambda t, **kw: minigen.full_like(t, 1.5, **kw),
    "randn_like": lambda t, **kw: minigen.randn_like(t, **kw),
    "rand_like": lambda t, **kw: minigen.rand_like(t, **kw),
}


@pytest.mark.parametrize("name", CREATORS)
def test_creation_defaults_to_float32_and_honours_dtype(name):
    make = CREATORS[name]
    assert make().dtype == minigen.float32
    assert make(dtype=minigen.float64).dtype == minigen.float64
    assert make(dtype="float64").dtype == minigen.float64
    t = make(requires_grad=True)
    assert t.requires_grad and t.is_leaf


@pytest.mark.parametrize("name", LIKE)
def test_like_creation_takes_shape_and_dtype_of_its_argument(name):
    make = LIKE[name]
    for dtype in (minigen.float32, minigen.float64):
        y = make(minigen.zeros(2, 3, dtype=dtype))
        assert y.dtype == dtype and y.shape == (2, 3)
    assert make(minigen.zeros(4), dtype=minigen.float64).dtype == minigen.float64
    assert make(minigen.zeros(4, dtype=minigen.float64), dtype=minigen.float32).dtype == minigen.float32


def test_creation_values():
    np.testing.assert_array_equal(minigen.zeros(2, 3).numpy(), np.zeros((2, 3)))
    np.testing.assert_array_equal(minigen.ones((2, 3)).numpy(), np.ones((2, 3)))
    np.testing.assert_array_equal(minigen.full((2,), 1.5).numpy(), [1.5, 1.5])
    np.testing.assert_array_equal(minigen.full(3, 2.5).numpy(), [2.5, 2.5, 2.5])
    np.testing.assert_array_equal(minigen.eye(3).numpy(), np.eye(3))
    np.testing.assert_array_equal(minigen.eye(2, 4).numpy(), np.eye(2, 4))
    np.testing.assert_array_equal(minigen.arange(0.0, 1.5, 0.25).numpy(), [0.0, 0.25, 0.5, 0.75, 1.0, 1.25])
    np.testing.assert_array_equal(minigen.arange(4).numpy(), [0, 1, 2, 3])
    np.testing.assert_array_equal(minigen.arange(1, 7, 2).numpy(), [1, 3, 5])
    np.testing.assert_array_equal(minigen.full_like(minigen.zeros(2), 7.0).numpy(), [7.0, 7.0])
    u = minigen.rand(1000).numpy()
    assert (u >= 0).all() and (u < 1).all()
    assert minigen.randn(3, 4).shape == (3, 4)


def test_integer_arguments_give_integer_tensors_as_in_pytorch():
    assert minigen.arange(5).dtype == minigen.int64
    assert minigen.arange(1, 7, 2).dtype == minigen.int64
    assert minigen.arange(5.0).dtype == minigen.float32
    assert minigen.arange(0, 1, 0.5).dtype == minigen.float32
    assert minigen.full((2,), 3).dtype == minigen.int64
    assert minigen.full((2,), True).dtype == minigen.bool_
    assert minigen.full((2,), 3, dtype=minigen.float32).dtype == minigen.float32


@pytest.mark.parametrize("dtype", [minigen.float32, minigen.float64], ids=str)
def test_manual_seed_makes_random_draws_repeat_exactly(dtype):
    def draws():
        t = minigen.zeros(2, 2, dtype=dtype)
        return [f(**{"dtype": dtype}).numpy() for f in (CREATORS["randn"], CREATORS["rand"])] + [
            minigen.randn_like(t).numpy(),
            minigen.rand_like(t).numpy(),
        ]

    minigen.manual_seed(1234)
    first = draws()
    minigen.manual_seed(1234)
    second = draws()
    for a, b in zip(first, second, strict=True):
        assert a.dtype == dtype
        np.testing.assert_array_equal(a, b)
    minigen.manual_seed(1235)
    other = draws()
    assert not np.array_equal(first[0], other[0])


def test_draws_without_reseeding_differ():
    minigen.manual_seed(7)
    a, b = minigen.randn(5).numpy(), minigen.randn(5).numpy()
    assert not np.array_equal(a, b)
