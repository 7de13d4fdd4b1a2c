"""Reductions: sum, mean, var, std, max, min, logsumexp, softmax, log_softmax, argmax, argmin.

Each reduction is checked three ways: its values against NumPy (or a direct formula) on the
same inputs, its first and second derivatives against finite differences (float64, random
shapes including 0-d tensors and size-1 axes, every spelling of ``dim``), and PyTorch's
semantics asserted by value (ties in max/min share the gradient, var is unbiased by default).
"""

import math
import warnings

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import minigen
import minigen.functional as F
from minigen.gradcheck import gradcheck, gradgradcheck
from minigen.testing import arrays, distinct_arrays, reduction_dims, shapes

# How a reduction is called: PyTorch keywords, NumPy keywords, positionally, or as a method.
SPELLINGS = ("torch", "numpy", "positional", "method")


def leaf(values, dtype=np.float64):
    return minigen.tensor(np.asarray(values, dtype=dtype), requires_grad=True)


def reduce_with(name, x, dim, keepdim, spelling, **kwargs):
    fn = getattr(minigen, name)
    if spelling == "torch":
        return fn(x, dim=dim, keepdim=keepdim, **kwargs)
    if spelling == "numpy":
        return fn(x, axis=dim, keepdims=keepdim, **kwargs)
    if spelling == "positional":
        return fn(x, dim, keepdim, **kwargs)
    return getattr(x, name)(dim=dim, keepdim=keepdim, **kwargs)


def numpy_axis(dim, ndim):
    """The NumPy ``axis`` for a minigen ``dim`` (a 0-d tensor accepts dim 0 and -1: no axes)."""
    if dim is None:
        return None
    return () if ndim == 0 else dim


def reduced_count(shape, dim):
    """How many entries each output entry of a reduction over ``dim`` summarises."""
    if dim is None:
        axes = range(len(shape))
    elif not shape:
        axes = ()
    else:
        axes = {d % len(shape) for d in ((dim,) if isinstance(dim, int) else dim)}
    return math.prod(shape[a] for a in axes)


@st.composite
def reductions(draw, distinct=False, max_dims=4):
    """(values, dim, keepdim, spelling) for a reduction over a random shape."""
    shape = draw(shapes(max_dims=max_dims, max_side=3))
    values = draw(distinct_arrays(shape) if distinct else arrays(shape, "real", contiguous=None))
    dim = draw(reduction_dims(len(shape)))
    return values, dim, draw(st.booleans()), draw(st.sampled_from(SPELLINGS))


@st.composite
def variances(draw, distinct=False):
    """A reduction case plus a correction (0 or 1) that leaves n - correction > 0, and how it is passed."""
    values, dim, keepdim, spelling = draw(reductions(distinct=distinct))
    n = reduced_count(values.shape, dim)
    correction = draw(st.sampled_from((0, 1))) if n > 1 else 0
    spellings = [{"correction": correction}, {"unbiased": bool(correction)}]
    if correction == 1:
        spellings.append({})  # the default is unbiased
    return values, dim, keepdim, spelling, correction, draw(st.sampled_from(spellings))


@st.composite
def softmax_cases(draw):
    """(values, dim) with dim a valid, possibly negative, axis (0 or -1 for a 0-d tensor)."""
    shape = draw(shapes(max_dims=3, max_side=3))
    bound = max(len(shape), 1)
    return draw(arrays(shape, "real", contiguous=None)), draw(st.integers(-bound, bound - 1))


def _logsumexp_reference(a, axis, keepdims):
    return np.log(np.sum(np.exp(a), axis=axis, keepdims=keepdims))


NUMPY_REFERENCES = {
    "sum": np.sum,
    "mean": np.mean,
    "max": np.max,
    "min": np.min,
    "logsumexp": _logsumexp_reference,
}


# --- values against NumPy ------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(NUMPY_REFERENCES))
@given(case=reductions())
def test_reduction_matches_numpy(name, case):
    values, dim, keepdim, spelling = case
    y = reduce_with(name, minigen.tensor(values), dim, keepdim, spelling)
    expected = np.asarray(NUMPY_REFERENCES[name](values, axis=numpy_axis(dim, values.ndim), keepdims=keepdim))
    assert y.shape == expected.shape
    assert y.dtype == np.float64
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["var", "std"])
@given(case=variances())
def test_var_and_std_match_numpy_with_ddof_equal_to_correction(name, case):
    values, dim, keepdim, spelling, correction, kwargs = case
    y = reduce_with(name, minigen.tensor(values), dim, keepdim, spelling, **kwargs)
    reference = {"var": np.var, "std": np.std}[name]
    axis = numpy_axis(dim, values.ndim)
    expected = np.asarray(reference(values, axis=axis, keepdims=keepdim, ddof=correction))
    assert y.shape == expected.shape
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "name", ["sum", "mean", "var", "std", "max", "min", "logsumexp", "softmax", "log_softmax"]
)
def test_reductions_keep_float32(name):
    x = minigen.tensor([[0.5, -1.0, 2.0], [3.0, 0.25, -0.75]])
    fn = F.log_softmax if name == "log_softmax" else getattr(minigen, name)
    assert fn(x, dim=1).dtype == np.float32
    assert fn(x, dim=-1).numpy().dtype == np.float32


# --- first and second derivatives ----------------------------------------------------------


@pytest.mark.parametrize("name", ["sum", "mean", "logsumexp"])
@given(case=reductions())
def test_smooth_reduction_gradients_match_finite_differences(name, case):
    values, dim, keepdim, spelling = case

    def fn(x):
        return reduce_with(name, x, dim, keepdim, spelling)

    assert gradcheck(fn, [leaf(values)])
    assert gradgradcheck(fn, [leaf(values)])


@pytest.mark.parametrize("name", ["max", "min"])
@given(case=reductions(distinct=True))
def test_max_min_gradients_match_finite_differences_without_ties(name, case):
    values, dim, keepdim, spelling = case

    def fn(x):
        return reduce_with(name, x, dim, keepdim, spelling)

    assert gradcheck(fn, [leaf(values)])
    assert gradgradcheck(fn, [leaf(values)])


@given(case=variances())
def test_var_gradients_match_finite_differences(case):
    values, dim, keepdim, spelling, _, kwargs = case

    def fn(x):
        return reduce_with("var", x, dim, keepdim, spelling, **kwargs)

    assert gradcheck(fn, [leaf(values)])
    assert gradgradcheck(fn, [leaf(values)])


@given(case=variances(distinct=True))
def test_std_gradients_match_finite_differences(case):
    values, dim, keepdim, spelling, _, kwargs = case
    # std = sqrt(var) has a kink where var = 0, i.e. when a single entry is reduced.
    assume(reduced_count(values.shape, dim) >= 2)

    def fn(x):
        return reduce_with("std", x, dim, keepdim, spelling, **kwargs)

    assert gradcheck(fn, [leaf(values)])
    assert gradgradcheck(fn, [leaf(values)])


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@given(case=softmax_cases())
def test_softmax_gradients_match_finite_differences(name, case):
    values, dim = case
    fn = F.log_softmax if name == "log_softmax" else minigen.softmax

    assert gradcheck(lambda x: fn(x, dim=dim), [leaf(values)])
    assert gradgradcheck(lambda x: fn(x, dim=dim), [leaf(values)])


# --- var and std ---------------------------------------------------------------------------


def test_var_is_unbiased_by_default():
    x = minigen.tensor([1.0, 2.0, 3.0, 4.0], dtype=np.float64)
    assert minigen.var(x).item() == pytest.approx(5 / 3)
    assert x.var().item() == pytest.approx(5 / 3)
    assert minigen.var(x, unbiased=True).item() == pytest.approx(5 / 3)
    assert minigen.var(x, unbiased=False).item() == pytest.approx(1.25)
    assert minigen.var(x, correction=0).item() == pytest.approx(1.25)
    assert minigen.std(x).item() == pytest.approx(math.sqrt(5 / 3))
    assert minigen.std(x, correction=0).item() == pytest.approx(math.sqrt(1.25))


def test_var_gradient_is_twice_the_deviation_over_n_minus_correction():
    for correction in (0, 1):
        x = leaf([1.0, 2.0, 3.0, 4.0])
        minigen.var(x, correction=correction).backward()
        expected = 2 * (np.array([1.0, 2.0, 3.0, 4.0]) - 2.5) / (4 - correction)
        np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-12)


def test_var_over_one_dim_reduces_each_column_separately():
    x = minigen.tensor([[1.0, 10.0], [3.0, 10.0], [5.0, 40.0]], dtype=np.float64)
    np.testing.assert_allclose(minigen.var(x, dim=0).numpy(), [4.0, 300.0])
    np.testing.assert_allclose(minigen.std(x, dim=0, keepdim=True).numpy(), [[2.0, math.sqrt(300.0)]])


# --- max and min ---------------------------------------------------------------------------


def test_max_with_ties_spreads_gradient_evenly():
    x = leaf([1.0, 3.0, 3.0])
    y = minigen.max(x)
    assert y.item() == 3.0
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.5, 0.5])


def test_min_with_ties_spreads_gradient_evenly():
    x = leaf([2.0, 1.0, 1.0, 1.0])
    x.min().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.0, 1 / 3, 1 / 3, 1 / 3])


def test_max_with_dim_spreads_gradient_among_ties_of_each_slice():
    x = leaf([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0], [5.0, 4.0, 4.0]])
    y = minigen.max(x, dim=1)
    np.testing.assert_array_equal(y.detach().numpy(), [3.0, 2.0, 5.0])
    y.backward(minigen.tensor([1.0, 2.0, 4.0], dtype=np.float64))
    np.testing.assert_array_equal(x.grad.numpy(), [[0.0, 0.5, 0.5], [1.0, 1.0, 0.0], [4.0, 0.0, 0.0]])


def test_min_over_several_dims_spreads_gradient_among_all_ties():
    x = leaf([[[0.0, 1.0], [2.0, 0.0]], [[0.0, 3.0], [4.0, 5.0]]])
    y = minigen.min(x, dim=(0, 2))  # the slices x[:, j, :]
    np.testing.assert_array_equal(y.detach().numpy(), [0.0, 0.0])
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [[[0.5, 0.0], [0.0, 1.0]], [[0.5, 0.0], [0.0, 0.0]]])


def test_max_without_dim_returns_a_0d_tensor():
    x = minigen.tensor([[1.0, 7.0], [-2.0, 4.0]])
    assert x.max().shape == ()
    assert x.max().item() == 7.0
    assert minigen.min(x).shape == ()
    assert minigen.min(x).item() == -2.0


def test_max_with_dim_returns_values_only():
    x = minigen.tensor([[1.0, 7.0, 3.0], [-2.0, 4.0, 9.0]])
    values = x.max(dim=1)
    assert isinstance(values, minigen.Tensor)
    np.testing.assert_array_equal(values.numpy(), [7.0, 9.0])
    lowest = x.min(dim=0, keepdim=True)
    assert isinstance(lowest, minigen.Tensor)
    np.testing.assert_array_equal(lowest.numpy(), [[-2.0, 4.0, 3.0]])


def test_max_of_empty_tensor_raises():
    with pytest.raises(ValueError, match="empty"):
        minigen.max(minigen.zeros(0, 3))


# --- logsumexp, softmax, log_softmax --------------------------------------------------------


def test_logsumexp_is_stable_for_large_inputs():
    # The gradient is exp(x - y); float32 rounds y = 1000.69 to its spacing there (6.1e-5),
    # so in float32 the gradient is only that accurate (PyTorch's formula is the same).
    for dtype, atol in ((np.float32, 1e-4), (np.float64, 1e-12)):
        x = leaf([[1000.0, 1000.0], [-1000.0, -1000.0], [1000.0, -1000.0]], dtype=dtype)
        y = minigen.logsumexp(x, dim=1)
        assert y.dtype == dtype
        expected = [1000.0 + math.log(2.0), -1000.0 + math.log(2.0), 1000.0]
        np.testing.assert_allclose(y.detach().numpy(), expected, rtol=1e-7)
        y.sum().backward()
        assert x.grad.dtype == dtype
        np.testing.assert_allclose(x.grad.numpy(), [[0.5, 0.5], [0.5, 0.5], [1.0, 0.0]], atol=atol)


def test_logsumexp_of_all_minus_inf_slice_is_minus_inf():
    x = minigen.tensor([[-np.inf, -np.inf], [0.0, -np.inf], [np.log(2.0), np.log(2.0)]], dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # log(0) for the empty slice is expected
        y = minigen.logsumexp(x, dim=-1)
    np.testing.assert_array_equal(y.numpy()[0], -np.inf)
    np.testing.assert_allclose(y.numpy()[1:], [0.0, np.log(4.0)], rtol=1e-15)


def test_logsumexp_gives_no_gradient_to_minus_inf_entries():
    x = leaf([[0.0, -np.inf, 0.0]])
    y = minigen.logsumexp(x, dim=1, keepdim=True)
    assert y.item() == pytest.approx(math.log(2.0))
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0.5, 0.0, 0.5]])


@given(case=softmax_cases())
def test_softmax_and_log_softmax_match_direct_formulas(case):
    values, dim = case
    x = minigen.tensor(values)
    axis = () if values.ndim == 0 else dim
    expected = np.exp(values) / np.sum(np.exp(values), axis=axis, keepdims=True)
    np.testing.assert_allclose(minigen.softmax(x, dim=dim).numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(x.softmax(dim).numpy(), expected, rtol=1e-12)
    expected_log = values - np.log(np.sum(np.exp(values), axis=axis, keepdims=True))
    np.testing.assert_allclose(F.log_softmax(x, dim=dim).numpy(), expected_log, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(x.log_softmax(dim).numpy(), expected_log, rtol=1e-12, atol=1e-12)


def test_softmax_defaults_to_the_last_dim():
    values = np.array([[0.0, 1.0, 2.0], [3.0, -1.0, 0.5]])
    x = minigen.tensor(values)
    expected = np.exp(values) / np.exp(values).sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(minigen.softmax(x).numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(F.log_softmax(x).numpy(), np.log(expected), rtol=1e-12)


def test_softmax_rows_sum_to_one_at_extreme_logits():
    logits = [[1000.0, 0.0, -1000.0], [-1000.0, -1000.0, -1000.0], [1e4, 1e4, 0.0], [88.0, 89.0, -88.0]]
    for dtype in (np.float32, np.float64):
        y = minigen.softmax(minigen.tensor(np.array(logits, dtype=dtype)), dim=1).numpy()
        assert y.dtype == dtype
        assert np.isfinite(y).all()
        np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-6)
        np.testing.assert_allclose(
            y[:3], [[1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3], [0.5, 0.5, 0.0]], atol=1e-7
        )
        np.testing.assert_allclose(y[3, :2], [1 / (1 + math.e), math.e / (1 + math.e)], rtol=1e-6)


def test_log_softmax_is_finite_at_extreme_logits():
    for dtype in (np.float32, np.float64):
        x = leaf([[1000.0, 0.0, -1000.0]], dtype=dtype)
        y = F.log_softmax(x, dim=-1)
        np.testing.assert_allclose(y.detach().numpy(), [[0.0, -1000.0, -2000.0]], rtol=1e-6)
        y.backward(minigen.tensor(np.array([[1.0, 0.0, 0.0]], dtype=dtype)))
        # d log_softmax_0 / dx = e_0 - softmax(x) = [0, 0, 0] here (softmax is one-hot)
        np.testing.assert_allclose(x.grad.numpy(), [[0.0, 0.0, 0.0]], atol=1e-7)


def test_softmax_gradient_is_zero_along_constant_cotangent():
    # softmax sums to one, so a cotangent that is constant along the dim sends back nothing
    x = leaf([[0.3, -1.2, 2.0], [0.0, 0.5, 0.1]])
    minigen.softmax(x, dim=1).backward(minigen.tensor(np.full((2, 3), 3.0)))
    np.testing.assert_allclose(x.grad.numpy(), np.zeros((2, 3)), atol=1e-15)


# --- argmax and argmin ---------------------------------------------------------------------


@st.composite
def arg_cases(draw):
    shape = draw(shapes(min_dims=1, max_dims=3, max_side=4))
    values = draw(distinct_arrays(shape))
    dim = draw(st.none() | st.integers(-len(shape), len(shape) - 1))
    return values, dim, draw(st.booleans())


@pytest.mark.parametrize("name", ["argmax", "argmin"])
@given(case=arg_cases())
def test_argmax_argmin_match_numpy(name, case):
    values, dim, keepdim = case
    x = minigen.tensor(values, requires_grad=True)
    index = getattr(minigen, name)(x, dim=dim, keepdim=keepdim) if dim is not None else getattr(x, name)()
    expected = (
        getattr(np, name)(values, axis=dim, keepdims=keepdim)
        if dim is not None
        else getattr(np, name)(values)
    )
    assert index.dtype.kind == "i"
    np.testing.assert_array_equal(index.numpy(), expected)
    assert not index.requires_grad
    assert index.creator is None


def test_argmax_argmin_pick_the_first_of_tied_entries():
    x = minigen.tensor([[1.0, 3.0, 3.0], [0.0, 0.0, 2.0]])
    np.testing.assert_array_equal(minigen.argmax(x, dim=1).numpy(), [1, 2])
    np.testing.assert_array_equal(minigen.argmin(x, dim=1).numpy(), [0, 0])
    assert minigen.argmax(x).item() == 1  # of the flattened tensor


def test_argmax_accepts_numpy_spelling():
    x = minigen.tensor([[1.0, 5.0, 3.0], [4.0, 0.0, 2.0]])
    np.testing.assert_array_equal(minigen.argmax(x, axis=0).numpy(), [1, 0, 0])
    np.testing.assert_array_equal(minigen.argmin(x, axis=1, keepdims=True).numpy(), [[0], [1]])


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["sum", "mean", "var", "std", "max", "min", "logsumexp", "softmax", "argmax", "argmin"]
)
@pytest.mark.parametrize("dim", [2, -3, (0, 2)])
def test_out_of_range_dim_raises_index_error(name, dim):
    x = minigen.ones(2, 3)
    if name in ("softmax", "argmax", "argmin") and isinstance(dim, tuple):
        dim = 5
    with pytest.raises(IndexError):
        getattr(minigen, name)(x, dim=dim)


def test_out_of_range_dim_of_log_softmax_raises_index_error():
    with pytest.raises(IndexError):
        F.log_softmax(minigen.ones(2, 3), dim=2)


def test_reduction_given_both_dim_and_axis_raises():
    with pytest.raises(TypeError):
        minigen.sum(minigen.ones(2, 3), dim=0, axis=1)


def test_reduction_over_a_repeated_dim_raises():
    with pytest.raises(ValueError, match="repeated"):
        minigen.mean(minigen.ones(2, 3), dim=(1, -1))
