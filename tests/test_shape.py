"""Shape primitives: reshape/view, permute/transpose/.T, broadcast_to, sum_to, getitem, cat,
stack, pad, flatten, squeeze, unsqueeze and to(dtype=...).

They only move, copy or select entries, so their values are compared exactly with NumPy, and
their gradients (first and second order, float64, random shapes and layouts) with finite
differences; getitem's gradient is also compared with an independent scatter (bincount) so
that repeated indices must accumulate.
"""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigen
import minigen.functional as F
from minigen.gradcheck import gradcheck, gradgradcheck
from minigen.testing import arrays, shapes


def leaf(values, dtype=np.float64):
    return minigen.tensor(np.asarray(values, dtype=dtype), requires_grad=True)


def check_gradients(fn, *values):
    """First- and second-order gradient checks of ``fn`` at float64 leaves holding ``values``."""
    assert gradcheck(fn, [leaf(v) for v in values])
    assert gradgradcheck(fn, [leaf(v) for v in values])


def small_arrays(min_dims=0, max_dims=3):
    """Float64 arrays of random small shapes, sometimes in a non-contiguous layout."""
    return shapes(min_dims=min_dims, max_dims=max_dims, max_side=3).flatmap(
        lambda s: arrays(s, contiguous=None)
    )


# --- reshape and view ----------------------------------------------------------------------


@st.composite
def reshape_cases(draw):
    """(values, target): target has the same number of entries, maybe with size-1 axes and a -1."""
    values = draw(small_arrays(max_dims=4))
    target = []
    for n in draw(st.permutations(values.shape)):
        if target and draw(st.booleans()):
            target[-1] *= n
        else:
            target.append(n)
    for _ in range(draw(st.integers(0, 2))):
        target.insert(draw(st.integers(0, len(target))), 1)
    if target and draw(st.booleans()):
        target[draw(st.integers(0, len(target) - 1))] = -1
    return values, tuple(target), draw(st.sampled_from(("function", "method", "varargs", "view", "list")))


def reshape_with(x, target, spelling):
    if spelling == "function":
        return minigen.reshape(x, target)
    if spelling == "method":
        return x.reshape(target)
    if spelling == "varargs":
        return x.reshape(*target)
    if spelling == "view":
        return x.view(*target)
    return x.reshape(list(target))


@given(case=reshape_cases())
def test_reshape_matches_numpy_row_major_order(case):
    values, target, spelling = case
    y = reshape_with(minigen.tensor(values), target, spelling)
    np.testing.assert_array_equal(y.numpy(), values.reshape(target))
    assert y.shape == values.reshape(target).shape


@given(case=reshape_cases())
def test_reshape_gradients_match_finite_differences(case):
    values, target, spelling = case
    check_gradients(lambda x: reshape_with(x, target, spelling), values)


def test_reshape_infers_the_minus_one_size():
    x = minigen.arange(24).reshape(2, 3, 4)
    assert x.reshape(-1).shape == (24,)
    assert x.reshape(4, -1).shape == (4, 6)
    assert x.view(2, -1, 3).shape == (2, 4, 3)
    assert x.view(-1, 1).shape == (24, 1)


def test_reshape_of_a_transposed_tensor_reads_its_logical_order():
    values = np.arange(6.0).reshape(2, 3)
    x = leaf(values)
    y = x.T.reshape(-1)
    np.testing.assert_array_equal(y.detach().numpy(), [0.0, 3.0, 1.0, 4.0, 2.0, 5.0])
    y.backward(minigen.tensor(np.arange(6.0)))
    np.testing.assert_array_equal(x.grad.numpy(), [[0.0, 2.0, 4.0], [1.0, 3.0, 5.0]])


def test_reshape_to_a_different_size_raises():
    with pytest.raises(ValueError):
        minigen.ones(2, 3).reshape(4, 2)


# --- permute, transpose, .T ----------------------------------------------------------------


@st.composite
def permute_cases(draw):
    values = draw(small_arrays(max_dims=4))
    ndim = values.ndim
    dims = tuple(d - ndim if draw(st.booleans()) else d for d in draw(st.permutations(range(ndim))))
    return values, dims, draw(st.sampled_from(("varargs", "tuple", "method")))


def permute_with(x, dims, spelling):
    if spelling == "varargs":
        return minigen.permute(x, *dims)
    if spelling == "tuple":
        return minigen.permute(x, dims)
    return x.permute(list(dims))


@given(case=permute_cases())
def test_permute_matches_numpy_transpose(case):
    values, dims, spelling = case
    y = permute_with(minigen.tensor(values), dims, spelling)
    np.testing.assert_array_equal(y.numpy(), np.transpose(values, [d % max(values.ndim, 1) for d in dims]))


@given(case=permute_cases())
def test_permute_gradients_match_finite_differences(case):
    values, dims, spelling = case
    check_gradients(lambda x: permute_with(x, dims, spelling), values)


@st.composite
def transpose_cases(draw):
    values = draw(small_arrays(min_dims=1, max_dims=4))
    axis = st.integers(-values.ndim, values.ndim - 1)
    return values, draw(axis), draw(axis)


@given(case=transpose_cases())
def test_transpose_swaps_two_dims_like_numpy_swapaxes(case):
    values, d0, d1 = case
    x = minigen.tensor(values)
    np.testing.assert_array_equal(minigen.transpose(x, d0, d1).numpy(), np.swapaxes(values, d0, d1))
    np.testing.assert_array_equal(x.transpose(d0, d1).numpy(), np.swapaxes(values, d0, d1))


@given(case=transpose_cases())
def test_transpose_gradients_match_finite_differences(case):
    values, d0, d1 = case
    check_gradients(lambda x: x.transpose(d0, d1), values)


@given(values=small_arrays(max_dims=4))
def test_T_reverses_all_dims_and_its_gradients_match_finite_differences(values):
    np.testing.assert_array_equal(minigen.tensor(values).T.numpy(), values.T)
    check_gradients(lambda x: x.T, values)


def test_transpose_of_a_0d_tensor_is_that_tensor():
    x = minigen.tensor(3.0)
    assert x.transpose(0, -1).shape == ()
    assert x.transpose(0, 0).item() == 3.0


@pytest.mark.parametrize("dims", [(0, 0), (1, 1), (0,), (0, 1, 2), (1, 0, 1)])
def test_permute_with_a_non_permutation_raises(dims):
    with pytest.raises(ValueError, match="permutation"):
        minigen.ones(2, 3).permute(*dims)


@pytest.mark.parametrize("dims", [(0, 3), (-3, 0), (2, 0)])
def test_permute_with_an_out_of_range_dim_raises_index_error(dims):
    with pytest.raises(IndexError):
        minigen.ones(2, 3).permute(*dims)


@pytest.mark.parametrize("dims", [(0, 2), (-3, 1)])
def test_transpose_with_an_out_of_range_dim_raises_index_error(dims):
    with pytest.raises(IndexError):
        minigen.ones(2, 3).transpose(*dims)


# --- broadcast_to and sum_to ---------------------------------------------------------------


@st.composite
def broadcast_pairs(draw):
    """(small, large): shapes such that small broadcasts to large (and large sums to small)."""
    small = draw(shapes(max_dims=3, max_side=3))
    lead = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    large = lead + tuple(draw(st.integers(1, 3)) if n == 1 else n for n in small)
    return small, large


@given(pair=broadcast_pairs(), data=st.data())
def test_broadcast_to_matches_numpy(pair, data):
    small, large = pair
    values = data.draw(arrays(small, contiguous=None))
    y = minigen.tensor(values).broadcast_to(large)
    np.testing.assert_array_equal(y.numpy(), np.broadcast_to(values, large))
    np.testing.assert_array_equal(
        minigen.broadcast_to(minigen.tensor(values), large).numpy(), np.broadcast_to(values, large)
    )


@given(pair=broadcast_pairs(), data=st.data())
def test_broadcast_to_gradients_match_finite_differences(pair, data):
    small, large = pair
    check_gradients(lambda x: minigen.broadcast_to(x, large), data.draw(arrays(small, contiguous=None)))


def test_broadcast_to_sends_back_the_sum_over_the_copies():
    x = leaf([[1.0], [2.0], [3.0]])
    minigen.broadcast_to(x, (2, 3, 4)).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full((3, 1), 8.0))


def test_broadcast_to_an_incompatible_shape_raises():
    with pytest.raises(ValueError):
        minigen.broadcast_to(minigen.ones(2, 3), (3, 3))


@given(pair=broadcast_pairs(), data=st.data())
def test_sum_to_matches_numpy_sum_over_broadcast_dims(pair, data):
    small, large = pair
    values = data.draw(arrays(large, contiguous=None))
    lead = len(large) - len(small)
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(small) if n == 1)
    expected = values.sum(axis=axes, keepdims=True).reshape(small)
    y = minigen.sum_to(minigen.tensor(values), small)
    assert y.shape == small
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(minigen.tensor(values).sum_to(small).numpy(), expected, rtol=1e-12, atol=1e-12)


@given(pair=broadcast_pairs(), data=st.data())
def test_sum_to_gradients_match_finite_differences(pair, data):
    small, large = pair
    check_gradients(lambda x: minigen.sum_to(x, small), data.draw(arrays(large, contiguous=None)))


@pytest.mark.parametrize("target", [(2, 3, 4), (2,), (2, 1, 1), (4, 3)])
def test_sum_to_a_shape_that_does_not_broadcast_raises(target):
    with pytest.raises(ValueError):
        minigen.sum_to(minigen.ones(2, 3), target)


# --- getitem -------------------------------------------------------------------------------

_MASK = np.array([[True, False, True], [False, False, True]])

# (shape, index) pairs: every kind of index, alone and mixed.
INDEX_CASES = {
    "int": ((4,), 2),
    "negative int": ((3, 4), -1),
    "ints to 0-d": ((3, 4), (1, -2)),
    "slice with step": ((4, 4), (slice(None, None, 2), slice(3, 0, -2))),
    "reversed": ((4,), slice(None, None, -1)),
    "negative slice bounds": ((3, 5), (slice(-2, None), slice(-4, -1, 2))),
    "empty slice": ((3,), slice(2, 2)),
    "None": ((3, 4), (None, slice(1, None), None)),
    "Ellipsis": ((2, 3, 4), (Ellipsis, 1)),
    "Ellipsis and None": ((2, 3, 4), (0, Ellipsis, None, slice(None, None, -2))),
    "0-d with None": ((), (None, Ellipsis)),
    "repeated int list": ((3, 4), [0, 0, 1]),
    "repeated negative ints": ((4,), [-1, -1, 0, 3]),
    "repeated 2-D int array": ((3,), np.array([[0, 2], [2, 2]])),
    "int tensor": ((3, 4), minigen.tensor([2, 0, 2])),
    "0-d int tensor": ((3, 4), minigen.tensor(1)),
    "two int arrays": ((3, 4), ([0, 0, 2], [1, 1, 3])),
    "bool mask": ((2, 3), _MASK),
    "bool mask of dim 0": ((3, 2), [True, False, True]),
    "bool tensor mask": ((2, 3), minigen.tensor(_MASK)),
    "slice, ints, int": ((3, 4, 2), (slice(None), [1, 1, 3], 0)),
    "ints, slice, ints": ((3, 4, 2), ([0, 2, 0], slice(None), [1, 1, 0])),
    "tensor and slice": ((3, 4), (minigen.tensor([1, 1]), slice(None, None, 3))),
    "mask then int": ((2, 3, 2), (minigen.tensor([True, True]), 1, slice(1, None))),
}


def numpy_index(index):
    """The same index with tensors and lists as NumPy arrays."""
    if isinstance(index, tuple):
        return tuple(numpy_index(i) for i in index)
    if isinstance(index, minigen.Tensor):
        return index.numpy()
    if isinstance(index, list):
        return np.asarray(index)
    return index


def scattered(shape, index, cotangent):
    """gx for y = x[index]: every entry of x collects the cotangents of all its copies in y."""
    size = math.prod(shape)
    positions = np.arange(size).reshape(shape)[numpy_index(index)]
    return np.bincount(np.ravel(positions), weights=np.ravel(cotangent), minlength=size).reshape(shape)


@pytest.mark.parametrize("shape, index", INDEX_CASES.values(), ids=INDEX_CASES.keys())
@given(data=st.data())
def test_getitem_matches_numpy_and_scatters_gradient_back(shape, index, data):
    values = data.draw(arrays(shape, contiguous=None))
    x = leaf(values)
    y = x[index]
    expected = values[numpy_index(index)]
    assert y.shape == expected.shape
    np.testing.assert_array_equal(y.detach().numpy(), expected)
    cotangent = data.draw(arrays(expected.shape))
    y.backward(minigen.tensor(cotangent))
    np.testing.assert_allclose(x.grad.numpy(), scattered(shape, index, cotangent), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape, index", INDEX_CASES.values(), ids=INDEX_CASES.keys())
@given(data=st.data())
def test_getitem_gradients_match_finite_differences(shape, index, data):
    check_gradients(lambda x: x[index], data.draw(arrays(shape, contiguous=None)))


def test_getitem_with_repeated_indices_accumulates_gradient():
    x = leaf([10.0, 20.0, 30.0, 40.0])
    x[[0, 0, 1]].sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 1.0, 0.0, 0.0])

    rows = leaf(np.arange(6.0).reshape(3, 2))
    rows[minigen.tensor([2, 0, 2, 2])].sum().backward()
    np.testing.assert_array_equal(rows.grad.numpy(), [[1.0, 1.0], [0.0, 0.0], [3.0, 3.0]])


def test_getitem_with_a_boolean_mask_selects_in_row_major_order():
    x = leaf(np.arange(6.0).reshape(2, 3))
    y = x[x.detach() > 2.5]
    np.testing.assert_array_equal(y.detach().numpy(), [3.0, 4.0, 5.0])
    y.backward(minigen.tensor([1.0, 2.0, 3.0], dtype=np.float64))
    np.testing.assert_array_equal(x.grad.numpy(), [[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]])


# --- cat and stack -------------------------------------------------------------------------


@st.composite
def cat_cases(draw):
    """(parts, dim): 1 to 3 arrays that differ only in their size along dim."""
    shape = draw(shapes(min_dims=1, max_dims=3, max_side=3))
    dim = draw(st.integers(-len(shape), len(shape) - 1))
    parts = []
    for _ in range(draw(st.integers(1, 3))):
        part_shape = list(shape)
        part_shape[dim] = draw(st.integers(1, 3))
        parts.append(draw(arrays(tuple(part_shape), contiguous=None)))
    return parts, dim


@given(case=cat_cases())
def test_cat_matches_numpy_concatenate(case):
    parts, dim = case
    y = minigen.cat([minigen.tensor(p) for p in parts], dim=dim)
    np.testing.assert_array_equal(y.numpy(), np.concatenate(parts, axis=dim))


@given(case=cat_cases())
def test_cat_gradients_match_finite_differences(case):
    parts, dim = case
    check_gradients(lambda *xs: minigen.cat(xs, dim=dim), *parts)


def test_cat_sends_each_input_its_own_slice_of_the_gradient():
    a, b = leaf(np.zeros((2, 1))), minigen.tensor(np.zeros((2, 2)))  # b needs no gradient
    y = minigen.cat([a, b], dim=1)
    y.backward(minigen.tensor(np.arange(6.0).reshape(2, 3)))
    np.testing.assert_array_equal(a.grad.numpy(), [[0.0], [3.0]])
    assert b.grad is None


@st.composite
def stack_cases(draw):
    shape = draw(shapes(max_dims=3, max_side=3))
    parts = [draw(arrays(shape, contiguous=None)) for _ in range(draw(st.integers(1, 3)))]
    return parts, draw(st.integers(-len(shape) - 1, len(shape)))


@given(case=stack_cases())
def test_stack_matches_numpy_stack(case):
    parts, dim = case
    y = minigen.stack([minigen.tensor(p) for p in parts], dim=dim)
    np.testing.assert_array_equal(y.numpy(), np.stack(parts, axis=dim))


@given(case=stack_cases())
def test_stack_gradients_match_finite_differences(case):
    parts, dim = case
    check_gradients(lambda *xs: minigen.stack(xs, dim=dim), *parts)


def test_cat_of_mismatched_shapes_raises_naming_the_shapes():
    with pytest.raises(ValueError) as info:
        minigen.cat([minigen.ones(2, 3), minigen.ones(4, 2)], dim=0)
    assert "(2, 3)" in str(info.value)
    assert "(4, 2)" in str(info.value)
    with pytest.raises(ValueError) as info:
        minigen.cat([minigen.ones(2, 3), minigen.ones(2)], dim=1)
    assert "(2, 3)" in str(info.value)
    assert "(2,)" in str(info.value)


def test_stack_of_mismatched_shapes_raises_naming_the_shapes():
    with pytest.raises(ValueError) as info:
        minigen.stack([minigen.ones(2, 3), minigen.ones(3, 2)])
    assert "(2, 3)" in str(info.value)
    assert "(3, 2)" in str(info.value)


@pytest.mark.parametrize("join", [minigen.cat, minigen.stack])
def test_joining_nothing_raises(join):
    with pytest.raises(ValueError):
        join([])


def test_cat_of_0d_tensors_raises():
    with pytest.raises(ValueError, match="stack"):
        minigen.cat([minigen.tensor(1.0), minigen.tensor(2.0)])


def test_cat_and_stack_with_an_out_of_range_dim_raise_index_error():
    with pytest.raises(IndexError):
        minigen.cat([minigen.ones(2, 3), minigen.ones(2, 3)], dim=2)
    with pytest.raises(IndexError):
        minigen.stack([minigen.ones(2, 3), minigen.ones(2, 3)], dim=3)
    with pytest.raises(IndexError):
        minigen.stack([minigen.ones(2, 3), minigen.ones(2, 3)], dim=-4)


# --- pad -----------------------------------------------------------------------------------


@st.composite
def pad_cases(draw):
    """(values, pad, value): pad = (before, after) pairs for the last dims, last dim first."""
    values = draw(small_arrays(min_dims=1))
    pairs = draw(st.integers(1, values.ndim))
    widths = tuple(draw(st.lists(st.integers(0, 2), min_size=2 * pairs, max_size=2 * pairs)))
    return values, widths, draw(st.sampled_from((0.0, 1.5, -2.0)))


def padded(values, pad, value):
    """values surrounded by ``value``, built entry by entry from PyTorch's pad order."""
    before, after = [0] * values.ndim, [0] * values.ndim
    for i in range(len(pad) // 2):
        before[-1 - i], after[-1 - i] = pad[2 * i], pad[2 * i + 1]
    out = np.full(tuple(b + n + a for b, n, a in zip(before, values.shape, after, strict=True)), value)
    out[tuple(slice(b, b + n) for b, n in zip(before, values.shape, strict=True))] = values
    return out


@given(case=pad_cases())
def test_pad_matches_a_direct_construction(case):
    values, widths, value = case
    np.testing.assert_array_equal(
        F.pad(minigen.tensor(values), widths, value=value).numpy(), padded(values, widths, value)
    )


@given(case=pad_cases())
def test_pad_gradients_match_finite_differences(case):
    values, widths, value = case
    check_gradients(lambda x: F.pad(x, widths, value=value), values)


def test_pad_follows_pytorch_order_last_dim_first():
    x = minigen.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    y = F.pad(x, (1, 2, 0, 1))  # left 1, right 2, top 0, bottom 1
    assert y.shape == (3, 6)
    np.testing.assert_array_equal(y.numpy(), [[0, 1, 2, 3, 0, 0], [0, 4, 5, 6, 0, 0], [0, 0, 0, 0, 0, 0]])
    assert F.pad(minigen.ones(2, 3, 4), (0, 0, 3, 0)).shape == (2, 6, 4)


def test_pad_gradient_is_the_centre_of_the_output_gradient():
    x = leaf(np.zeros((2, 2)))
    g = np.arange(20.0).reshape(4, 5)
    F.pad(x, (2, 1, 1, 1), value=7.0).backward(minigen.tensor(g))
    np.testing.assert_array_equal(x.grad.numpy(), g[1:3, 2:4])


@pytest.mark.parametrize("widths", [(1,), (1, 1, 1), (1, 1, 1, 1, 1, 1), (1, -1)])
def test_pad_with_invalid_widths_raises(widths):
    with pytest.raises(ValueError):
        F.pad(minigen.ones(2, 3), widths)


# --- flatten, squeeze, unsqueeze -----------------------------------------------------------


@st.composite
def flatten_cases(draw):
    values = draw(small_arrays(min_dims=1, max_dims=4))
    ndim = values.ndim
    start, end = sorted((draw(st.integers(0, ndim - 1)), draw(st.integers(0, ndim - 1))))
    # spell each either way round (start_dim=1 or start_dim=1 - ndim)
    start = start - ndim if draw(st.booleans()) else start
    end = end - ndim if draw(st.booleans()) else end
    return values, start, end


@given(case=flatten_cases())
def test_flatten_merges_the_dims_from_start_to_end(case):
    values, start, end = case
    s, e = start % values.ndim, end % values.ndim
    expected = values.reshape(
        values.shape[:s] + (math.prod(values.shape[s : e + 1]),) + values.shape[e + 1 :]
    )
    y = minigen.flatten(minigen.tensor(values), start, end)
    assert y.shape == expected.shape
    np.testing.assert_array_equal(y.numpy(), expected)
    np.testing.assert_array_equal(
        minigen.tensor(values).flatten(start_dim=start, end_dim=end).numpy(), expected
    )


@given(case=flatten_cases())
def test_flatten_gradients_match_finite_differences(case):
    values, start, end = case
    check_gradients(lambda x: x.flatten(start, end), values)


def test_flatten_defaults_to_all_dims_and_makes_0d_one_dimensional():
    x = minigen.ones(2, 3, 4)
    assert x.flatten().shape == (24,)
    assert x.flatten(1).shape == (2, 12)
    assert x.flatten(0, 1).shape == (6, 4)
    assert minigen.tensor(5.0).flatten().shape == (1,)


def test_flatten_with_start_after_end_raises():
    with pytest.raises(ValueError):
        minigen.ones(2, 1).flatten(1, 0)
    with pytest.raises(ValueError):
        minigen.ones(2, 3, 4).flatten(-1, 0)


def test_flatten_with_an_out_of_range_dim_raises_index_error():
    with pytest.raises(IndexError):
        minigen.ones(2, 3).flatten(2)


@st.composite
def squeeze_cases(draw):
    values = draw(small_arrays(max_dims=4))
    bound = max(values.ndim, 1)
    return values, draw(st.none() | st.integers(-bound, bound - 1))


def squeezed(values, dim):
    """PyTorch's squeeze: all size-1 dims, or dim only when it has size 1 (else unchanged)."""
    if dim is None:
        return np.squeeze(values)
    if values.ndim and values.shape[dim] == 1:
        return np.squeeze(values, axis=dim)
    return values


@given(case=squeeze_cases())
def test_squeeze_removes_size_one_dims_like_pytorch(case):
    values, dim = case
    expected = squeezed(values, dim)
    y = minigen.squeeze(minigen.tensor(values), dim)
    assert y.shape == expected.shape
    np.testing.assert_array_equal(y.numpy(), expected)


@given(case=squeeze_cases())
def test_squeeze_gradients_match_finite_differences(case):
    values, dim = case
    check_gradients(lambda x: x.squeeze(dim), values)


def test_squeeze_of_a_dim_not_of_size_one_leaves_the_shape():
    x = minigen.ones(2, 1, 3, 1)
    assert x.squeeze().shape == (2, 3)
    assert x.squeeze(1).shape == (2, 3, 1)
    assert x.squeeze(-1).shape == (2, 1, 3)
    assert x.squeeze(0).shape == (2, 1, 3, 1)
    assert x.squeeze(2).shape == (2, 1, 3, 1)


def test_squeeze_of_a_0d_tensor_is_0d():
    x = minigen.tensor(4.0)
    assert x.squeeze().shape == ()
    assert x.squeeze(0).shape == ()
    assert x.squeeze(-1).item() == 4.0


@st.composite
def unsqueeze_cases(draw):
    values = draw(small_arrays())
    return values, draw(st.integers(-values.ndim - 1, values.ndim))


@given(case=unsqueeze_cases())
def test_unsqueeze_matches_numpy_expand_dims(case):
    values, dim = case
    y = minigen.unsqueeze(minigen.tensor(values), dim)
    np.testing.assert_array_equal(y.numpy(), np.expand_dims(values, dim))
    assert minigen.tensor(values).unsqueeze(dim).shape == np.expand_dims(values, dim).shape


@given(case=unsqueeze_cases())
def test_unsqueeze_gradients_match_finite_differences(case):
    values, dim = case
    check_gradients(lambda x: x.unsqueeze(dim), values)


def test_unsqueeze_with_negative_dim_counts_from_the_new_end():
    x = minigen.ones(2, 3)
    assert x.unsqueeze(-1).shape == (2, 3, 1)
    assert x.unsqueeze(-2).shape == (2, 1, 3)
    assert x.unsqueeze(-3).shape == (1, 2, 3)


@pytest.mark.parametrize("op, dim", [("squeeze", 2), ("squeeze", -3), ("unsqueeze", 3), ("unsqueeze", -4)])
def test_squeeze_unsqueeze_with_an_out_of_range_dim_raise_index_error(op, dim):
    with pytest.raises(IndexError):
        getattr(minigen.ones(2, 1), op)(dim)


# --- to(dtype=...) -------------------------------------------------------------------------


@given(values=small_arrays())
def test_to_float32_rounds_like_numpy_astype(values):
    y = minigen.tensor(values).to(dtype="float32")
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y.numpy(), values.astype(np.float32))


@given(values=small_arrays())
def test_to_float32_gradients_match_finite_differences(values):
    # The output is rounded to float32 (relative error 6e-8, |x| <= 3), so the central
    # difference uses a wider step, and tolerances to match.
    def fn(x):
        return x.to(dtype=minigen.float32)

    assert gradcheck(fn, [leaf(values)], eps=1e-3, atol=1e-3, rtol=1e-3)
    assert gradgradcheck(fn, [leaf(values)], eps=1e-3, atol=1e-3, rtol=1e-3)


def test_to_float32_sends_a_float64_gradient_back():
    x = leaf([[1.0, 2.0], [3.0, 4.0]])
    y = x.to(dtype=minigen.float32)
    assert y.dtype == np.float32
    assert y.requires_grad
    (y * minigen.tensor([[1.0, 2.0], [3.0, 4.0]])).sum().backward()
    assert x.grad.dtype == np.float64
    np.testing.assert_array_equal(x.grad.numpy(), [[1.0, 2.0], [3.0, 4.0]])


def test_to_float64_and_back_gives_the_identity_gradient():
    x = leaf(np.array([0.1, -2.5, 3.25], dtype=np.float32), dtype=np.float32)
    y = x.to(dtype="float64")
    assert y.dtype == np.float64
    (g,) = minigen.grad(y, x, minigen.tensor(np.array([1.0, -2.0, 0.5])))
    assert g.dtype == np.float32
    np.testing.assert_array_equal(g.numpy(), [1.0, -2.0, 0.5])


def test_to_the_same_dtype_returns_the_tensor_itself():
    x = leaf([1.0, 2.0])
    assert x.to(dtype="float64") is x
    assert x.to(dtype=minigen.float64) is x


def test_to_an_integer_dtype_carries_no_gradient():
    x = leaf([1.7, -2.2])
    y = x.to(dtype=minigen.int64)
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y.numpy(), [1, -2])
    assert not y.requires_grad


def test_to_accepts_a_dtype_positionally_like_pytorch():
    x = minigen.tensor([1.5, 2.5])
    assert x.to(minigen.float64).dtype == np.float64
    assert x.to(np.float64).dtype == np.float64


def test_float_and_double_convert_dtype():
    x = minigen.tensor([1.5, 2.5])
    assert x.double().dtype == np.float64
    assert x.double().float().dtype == np.float32


@pytest.mark.parametrize(
    "op",
    [
        lambda x: x.reshape(3, 2),
        lambda x: x.permute(1, 0),
        lambda x: x.T,
        lambda x: x[::-1],
        lambda x: minigen.broadcast_to(x, (4, 2, 3)),
        lambda x: minigen.cat([x, x], dim=1),
        lambda x: minigen.stack([x, x]),
        lambda x: F.pad(x, (1, 1)),
        lambda x: x.unsqueeze(0).squeeze(0),
        lambda x: x.flatten(),
    ],
    ids=["reshape", "permute", "T", "getitem", "broadcast_to", "cat", "stack", "pad", "squeeze", "flatten"],
)
def test_shape_ops_keep_float32(op):
    assert op(minigen.ones(2, 3)).dtype == np.float32
