"""Matrix product: NumPy's rules for 1-D operands, broadcast batch dims, and its gradients.

Values are compared with ``numpy.matmul``; first and second derivatives with finite
differences in float64 over random shapes (1-D and 2-D operands, batched and broadcast
batch dims, non-contiguous layouts); gradients are also asserted by their closed form.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigen
from minigen.gradcheck import gradcheck, gradgradcheck
from minigen.testing import arrays, broadcastable_shapes


def leaf(values, dtype=np.float64):
    return minigen.tensor(np.asarray(values, dtype=dtype), requires_grad=True)


@st.composite
def matmul_shapes(draw):
    """Shapes (a, b) that matmul accepts: either may be 1-D; batch dims broadcast."""
    n, k, m = (draw(st.integers(1, 3)) for _ in range(3))
    batch_a, batch_b = draw(broadcastable_shapes(2, min_dims=0, max_dims=2, max_side=3))
    a_is_vector, b_is_vector = draw(st.booleans()), draw(st.booleans())
    a = (k,) if a_is_vector else batch_a + (n, k)
    b = (k,) if b_is_vector else batch_b + (k, m)
    return a, b


@st.composite
def matmul_operands(draw):
    a, b = draw(matmul_shapes())
    return draw(arrays(a, contiguous=None)), draw(arrays(b, contiguous=None))


# Every kind of operand pair, named, so each is covered whatever hypothesis draws.
NAMED_SHAPES = {
    "1-D @ 1-D": ((3,), (3,)),
    "1-D @ 2-D": ((3,), (3, 2)),
    "2-D @ 1-D": ((2, 3), (3,)),
    "2-D @ 2-D": ((2, 3), (3, 4)),
    "batched": ((4, 2, 3), (4, 3, 2)),
    "batch broadcast": ((2, 1, 3, 4), (5, 4, 2)),
    "batched @ 2-D": ((2, 3, 4), (4, 2)),
    "2-D @ batched": ((3, 4), (2, 4, 2)),
    "1-D @ batched": ((3,), (2, 3, 4)),
    "batched @ 1-D": ((2, 3, 4), (4,)),
    "size-1 everywhere": ((1, 1, 1), (1, 1)),
}


@given(operands=matmul_operands())
def test_matmul_matches_numpy(operands):
    a, b = operands
    y = minigen.matmul(minigen.tensor(a), minigen.tensor(b))
    expected = np.matmul(a, b)
    assert y.shape == expected.shape
    assert y.dtype == np.float64
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-12, atol=1e-12)


@given(operands=matmul_operands())
def test_matmul_gradients_match_finite_differences(operands):
    a, b = operands
    assert gradcheck(minigen.matmul, [leaf(a), leaf(b)])
    assert gradgradcheck(minigen.matmul, [leaf(a), leaf(b)])


@pytest.mark.parametrize("shapes", NAMED_SHAPES.values(), ids=NAMED_SHAPES.keys())
def test_matmul_of_each_operand_kind_matches_numpy_and_finite_differences(shapes):
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal(s) for s in shapes)
    y = leaf(a) @ leaf(b)
    np.testing.assert_allclose(y.detach().numpy(), np.matmul(a, b), rtol=1e-12, atol=1e-12)
    assert gradcheck(minigen.matmul, [leaf(a), leaf(b)])
    assert gradgradcheck(minigen.matmul, [leaf(a), leaf(b)])


def test_matmul_gradients_are_gy_times_transposes():
    rng = np.random.default_rng(1)
    a_values, b_values, gy = (
        rng.standard_normal((2, 3)),
        rng.standard_normal((3, 4)),
        rng.standard_normal((2, 4)),
    )
    a, b = leaf(a_values), leaf(b_values)
    (a @ b).backward(minigen.tensor(gy))
    np.testing.assert_allclose(a.grad.numpy(), gy @ b_values.T, rtol=1e-12)
    np.testing.assert_allclose(b.grad.numpy(), a_values.T @ gy, rtol=1e-12)


def test_matmul_gradient_sums_over_broadcast_batch_dims():
    rng = np.random.default_rng(2)
    a_values, b_values = rng.standard_normal((1, 2, 3)), rng.standard_normal((4, 3, 2))
    gy = rng.standard_normal((4, 2, 2))
    a, b = leaf(a_values), leaf(b_values)
    (a @ b).backward(minigen.tensor(gy))
    assert a.grad.shape == (1, 2, 3)
    np.testing.assert_allclose(
        a.grad.numpy(), (gy @ b_values.transpose(0, 2, 1)).sum(0, keepdims=True), rtol=1e-12
    )
    np.testing.assert_allclose(b.grad.numpy(), a_values.transpose(0, 2, 1) @ gy, rtol=1e-12)


def test_vector_matmul_batched_matrix_gradient_sums_over_the_batch():
    rng = np.random.default_rng(3)
    v_values, m_values = rng.standard_normal(3), rng.standard_normal((2, 3, 4))
    v, m = leaf(v_values), leaf(m_values)
    y = v @ m
    assert y.shape == (2, 4)
    y.sum().backward()
    np.testing.assert_allclose(v.grad.numpy(), m_values.sum(axis=(0, 2)), rtol=1e-12)
    np.testing.assert_allclose(
        m.grad.numpy(), np.broadcast_to(v_values[None, :, None], (2, 3, 4)), rtol=1e-12
    )


def test_dot_product_of_vectors_is_0d_with_the_other_vector_as_gradient():
    a, b = leaf([1.0, 2.0, 3.0]), leaf([4.0, -5.0, 6.0])
    y = minigen.matmul(a, b)
    assert y.shape == ()
    assert y.item() == 12.0
    y.backward()
    np.testing.assert_array_equal(a.grad.numpy(), [4.0, -5.0, 6.0])
    np.testing.assert_array_equal(b.grad.numpy(), [1.0, 2.0, 3.0])


def test_matmul_operator_method_and_function_agree():
    rng = np.random.default_rng(4)
    a_values, b_values = rng.standard_normal((2, 3)), rng.standard_normal((3, 2))
    a, b = minigen.tensor(a_values), minigen.tensor(b_values)
    expected = a_values @ b_values
    np.testing.assert_allclose((a @ b).numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(a.matmul(b).numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(minigen.matmul(a, b).numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose((a_values @ b).numpy(), expected, rtol=1e-12)  # reflected: array @ tensor


def test_matmul_keeps_float32():
    y = minigen.ones(2, 3) @ minigen.ones(3, 4)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y.numpy(), np.full((2, 4), 3.0, dtype=np.float32))


@pytest.mark.parametrize(
    "shape_a, shape_b",
    [((2, 3), (4, 2)), ((3,), (4,)), ((2, 3), (2,)), ((5,), (2, 3, 4)), ((2, 3, 4), (3, 4))],
)
def test_matmul_of_mismatched_inner_sizes_raises_naming_both_shapes(shape_a, shape_b):
    with pytest.raises(ValueError) as info:
        minigen.matmul(minigen.ones(*shape_a), minigen.ones(*shape_b))
    assert str(shape_a) in str(info.value)
    assert str(shape_b) in str(info.value)


def test_matmul_of_mismatched_batch_dims_raises_naming_both_shapes():
    with pytest.raises(ValueError) as info:
        minigen.ones(2, 3, 4) @ minigen.ones(5, 4, 2)
    assert "(2, 3, 4)" in str(info.value)
    assert "(5, 4, 2)" in str(info.value)


def test_matmul_of_0d_operand_raises():
    with pytest.raises(ValueError, match=r"\(\)"):
        minigen.matmul(minigen.tensor(2.0), minigen.ones(2, 3))
