"""The autograd engine: accumulation, graph release, memory, deep graphs, minigen.grad,
higher-order derivatives, grad mode, and the Tensor methods that need no primitive.

Every test computes a value and compares it with a closed form derived in its docstring or
comments, so a wrong engine fails here rather than only in a gradient check.
"""

import gc
import re
import weakref

import numpy as np
import pytest

import minigen
from minigen import Function, Tensor
from minigen.ops.reduce import log_softmax


def f64(values, requires_grad=True):
    return minigen.tensor(np.asarray(values, dtype=np.float64), requires_grad=requires_grad)


def values(t):
    """The values of a tensor as a NumPy array, whether or not it requires grad."""
    return t.detach().numpy()


# --- gradient accumulation -------------------------------------------------------------------


def test_two_backward_calls_add_into_grad():
    x = f64([1.0, -2.0, 3.0])
    y = (x * x).sum()
    y.backward(retain_graph=True)
    np.testing.assert_allclose(values(x.grad), 2 * x.data)
    y.backward()
    np.testing.assert_allclose(values(x.grad), 4 * x.data)


def test_grad_accumulates_across_separate_graphs_and_keeps_dtype():
    x = minigen.tensor([1.0, 2.0], requires_grad=True)
    (x * 3.0).sum().backward()
    (x * x).sum().backward()
    assert x.grad.dtype == minigen.float32
    np.testing.assert_allclose(values(x.grad), 3.0 + 2 * x.data, rtol=1e-6)


@pytest.mark.parametrize(
    ("expression", "derivative"),
    [
        (lambda x: x * x, lambda x: 2 * x),
        (lambda x: x + x, lambda x: 2 + 0 * x),
        (lambda x: x * x * x, lambda x: 3 * x**2),
        (lambda x: x / x.exp(), lambda x: (1 - x) * np.exp(-x)),
        (lambda x: x - x * x, lambda x: 1 - 2 * x),
    ],
    ids=["x*x", "x+x", "x*x*x", "x/exp(x)", "x-x*x"],
)
def test_tensor_used_twice_gets_the_summed_gradient(expression, derivative):
    x = f64([0.5, -1.5, 2.0])
    expression(x).sum().backward()
    np.testing.assert_allclose(values(x.grad), derivative(x.data), rtol=1e-12)


def test_diamond_graph_sums_both_paths():
    """y = (2x) * exp(x): dy/dx = 2 exp(x) + 2x exp(x)."""
    x = f64([0.3, -0.7, 1.1])
    a = x * 2.0
    b = x.exp()
    (a * b).sum().backward()
    expected = 2 * np.exp(x.data) + 2 * x.data * np.exp(x.data)
    np.testing.assert_allclose(values(x.grad), expected, rtol=1e-12)


def test_deep_diamond_graph_gradient():
    """h = x + x; k = h * h; y = k + h: dy/dx = (2h + 1) * 2 with h = 2x."""
    x = f64([0.5, 2.0])
    h = x + x
    k = h * h
    (k + h).sum().backward()
    np.testing.assert_allclose(values(x.grad), (2 * 2 * x.data + 1) * 2)


def test_only_leaves_that_require_grad_receive_grad():
    x = f64([1.0, 2.0])
    c = f64([3.0, 4.0], requires_grad=False)
    h = x * c
    h.exp().sum().backward()
    np.testing.assert_allclose(values(x.grad), c.data * np.exp(x.data * c.data))
    assert h.grad is None
    assert c.grad is None
    assert not h.is_leaf and x.is_leaf


def test_retain_grad_keeps_gradient_of_non_leaf():
    x = f64([1.0, 2.0])
    h = x * 3.0
    h.retain_grad()
    y = (h * h).sum()
    y.retain_grad()
    y.backward()
    np.testing.assert_allclose(values(h.grad), 2 * h.data)
    np.testing.assert_allclose(values(y.grad), 1.0)
    np.testing.assert_allclose(values(x.grad), 18 * x.data)


def test_multi_output_function_with_one_output_unused():
    """A two-output node (2x, x^2) where only x^2 reaches the loss gets zeros for the other."""

    class TwoOutputs(Function):
        def forward(self, x):
            return x * 2, x * x

        def backward(self, g_double, g_square):
            return g_double * 2.0 + g_square * 2.0 * self.inputs[0]

    x = f64([1.0, -3.0])
    double, square = TwoOutputs()(x)
    square.sum().backward()
    np.testing.assert_allclose(values(x.grad), 2 * x.data)
    x.grad = None
    double, square = TwoOutputs()(x)
    (double.sum() + square.sum()).backward()
    np.testing.assert_allclose(values(x.grad), 2 + 2 * x.data)
    # The unused output may already be gone (never bound to a name): backward still works.
    x.grad = None
    square = TwoOutputs()(x)[1]
    square.sum().backward()
    np.testing.assert_allclose(values(x.grad), 2 * x.data)
    (g,) = minigen.grad(TwoOutputs()(x)[0].sum(), x)
    np.testing.assert_allclose(values(g), [2.0, 2.0])


def test_leaf_grad_has_the_leaf_dtype_when_mixed_with_float64():
    """As in PyTorch, a gradient takes its input's dtype even when the graph mixed precisions."""
    x = minigen.tensor([1.0, 2.0], requires_grad=True)
    w = f64([3.0, -1.0])
    (x * w).sum().backward()
    assert x.grad.dtype == minigen.float32 and w.grad.dtype == minigen.float64
    np.testing.assert_allclose(values(x.grad), [3.0, -1.0])
    (gx,) = minigen.grad((x * w).sum(), x)
    assert gx.dtype == minigen.float32


def test_float64_seed_gradient_gives_float32_leaf_grad():
    x = minigen.tensor([1.0, 2.0], requires_grad=True)
    (x * 2.0).backward(f64([1.0, -1.0], requires_grad=False))
    assert x.grad.dtype == minigen.float32
    np.testing.assert_allclose(values(x.grad), [2.0, -2.0])


# --- backward's gradient argument ----------------------------------------------------------


def test_backward_on_non_scalar_without_gradient_names_the_shape():
    x = f64(np.ones((2, 3)))
    y = x * 2.0
    with pytest.raises(RuntimeError, match=re.escape("(2, 3)")):
        y.backward()


def test_backward_with_gradient_of_matching_shape():
    x = f64([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    v = np.array([[1.0, -1.0, 2.0], [0.5, 0.0, 3.0]])
    (x * x).backward(minigen.tensor(v))
    np.testing.assert_allclose(values(x.grad), 2 * x.data * v)


def test_backward_accepts_a_numpy_gradient():
    x = f64([1.0, 2.0])
    (x * 3.0).backward(np.array([2.0, -1.0]))
    np.testing.assert_allclose(values(x.grad), [6.0, -3.0])


def test_backward_with_gradient_of_wrong_shape_names_both_shapes():
    x = f64(np.ones((2, 3)))
    y = x * 2.0
    with pytest.raises(ValueError) as info:
        y.backward(minigen.ones(3, 2, dtype="float64"))
    message = str(info.value)
    assert "(3, 2)" in message and "(2, 3)" in message


def test_backward_on_tensor_without_graph_raises():
    x = f64([1.0], requires_grad=False)
    with pytest.raises(RuntimeError, match="does not require grad"):
        (x * 2.0).sum().backward()


# --- errors from forward ---------------------------------------------------------------------


class _Refuses(Function):
    """A forward that raises one known ValueError."""

    error = ValueError("refused by forward")

    def forward(self, x):
        raise self.error


def test_forward_error_adds_the_shapes_and_keeps_the_original_as_its_cause():
    with pytest.raises(ValueError) as info:
        _Refuses()(f64(np.ones((2, 3))))
    assert str(info.value) == "_Refuses got tensors of shapes (2, 3): refused by forward"
    assert info.value.__cause__ is _Refuses.error
    # the cause's traceback still reaches the line in forward that raised
    frames = []
    tb = info.value.__cause__.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    assert frames[-1] == "forward"


def test_broadcast_error_names_both_shapes_and_chains_numpys_error():
    with pytest.raises(ValueError, match=re.escape("Add got tensors of shapes (2,) and (3,)")) as info:
        f64([1.0, 2.0]) + f64([1.0, 2.0, 3.0])
    assert isinstance(info.value.__cause__, ValueError)
    assert "broadcast" in str(info.value.__cause__)


# --- releasing the graph ---------------------------------------------------------------------


def test_second_backward_through_released_graph_raises_clear_error():
    x = f64([1.0, 2.0])
    y = (x.exp() * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time") as info:
        y.backward()
    assert "retain_graph" in str(info.value)


def test_new_loss_on_released_intermediate_raises():
    x = f64([1.0, 2.0])
    h = x * x
    h.sum().backward()
    with pytest.raises(RuntimeError, match="second time"):
        (h * 2.0).sum().backward()


def test_retain_graph_allows_second_backward():
    x = f64([1.0, 2.0])
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    y.backward(retain_graph=True)
    y.backward()
    expected = np.exp(x.data) * (1 + x.data)
    np.testing.assert_allclose(values(x.grad), 3 * expected)


def test_create_graph_implies_retain_graph():
    x = f64([0.5, -1.0])
    y = (x**3).sum()
    y.backward(create_graph=True)
    first = x.grad
    np.testing.assert_allclose(values(first), 3 * x.data**2)
    assert first.requires_grad and first.creator is not None
    x.grad = None
    y.backward()  # the graph was kept
    np.testing.assert_allclose(values(x.grad), 3 * x.data**2)
    x.grad = None
    first.sum().backward()  # d/dx sum(3x^2) = 6x
    np.testing.assert_allclose(values(x.grad), 6 * x.data)


def test_grad_releases_graph_by_default_and_create_graph_retains_it():
    x = f64([0.5, -1.0])
    y = (x**3).sum()
    minigen.grad(y, x, create_graph=True)
    (g,) = minigen.grad(y, x)
    np.testing.assert_allclose(values(g), 3 * x.data**2)
    with pytest.raises(RuntimeError, match="second time"):
        minigen.grad(y, x)


# --- memory: no reference cycles ---------------------------------------------------------------


def _chain(x):
    a = x * 2.0
    b = a.exp()
    c = b.tanh()
    d = c * x
    return [a, b, c, d], d.sum()


class _GcDisabled:
    def __enter__(self):
        self.was_enabled = gc.isenabled()
        gc.collect()
        gc.disable()

    def __exit__(self, *exc):
        if self.was_enabled:
            gc.enable()


def test_graph_is_freed_by_reference_counting_when_loss_is_deleted():
    with _GcDisabled():
        x = f64([0.1, 0.2, 0.3])
        intermediates, loss = _chain(x)
        tensor_refs = [weakref.ref(t) for t in intermediates]
        node_refs = [weakref.ref(t.creator) for t in intermediates] + [weakref.ref(loss.creator)]
        del intermediates
        # Still reachable from the loss: the references are alive, so the test can fail.
        assert all(r() is not None for r in tensor_refs[:-1] + node_refs)
        del loss
        assert [r() for r in tensor_refs] == [None] * len(tensor_refs)
        assert [r() for r in node_refs] == [None] * len(node_refs)
        assert x.grad is None


@pytest.mark.parametrize("retain_graph", [False, True])
def test_graph_is_freed_after_backward(retain_graph):
    with _GcDisabled():
        x = f64([0.1, 0.2, 0.3])
        intermediates, loss = _chain(x)
        tensor_refs = [weakref.ref(t) for t in intermediates] + [weakref.ref(loss)]
        node_refs = [weakref.ref(t.creator) for t in intermediates] + [weakref.ref(loss.creator)]
        loss.backward(retain_graph=retain_graph)
        del intermediates, loss
        assert [r() for r in tensor_refs] == [None] * len(tensor_refs)
        assert [r() for r in node_refs] == [None] * len(node_refs)
        assert x.grad is not None and x.grad.creator is None


def test_graph_of_create_graph_gradient_is_freed_with_the_gradient():
    with _GcDisabled():
        x = f64([0.1, 0.2, 0.3])
        intermediates, loss = _chain(x)
        node_refs = [weakref.ref(t.creator) for t in intermediates]
        (g,) = minigen.grad(loss, x, create_graph=True)
        g_node = weakref.ref(g.creator)
        del intermediates, loss
        assert g_node() is not None
        del g
        assert g_node() is None
        assert [r() for r in node_refs] == [None] * len(node_refs)


def test_released_node_keeps_nothing_saved():
    x = f64([0.1, 0.2])
    y = x.exp()
    node = y.creator
    y.sum().backward()
    assert node.released
    assert not hasattr(node, "inputs")


# --- deep graphs ------------------------------------------------------------------------------


def test_chain_of_20000_multiplications_backpropagates():
    x = f64(1.0)
    y = x
    for _ in range(20_000):
        y = y * 1.0001
    y.backward()
    np.testing.assert_allclose(x.grad.item(), 1.0001**20_000, rtol=1e-9)


def test_chain_of_20000_additions_with_grad():
    x = f64(0.5)
    y = x
    for _ in range(20_000):
        y = y + x
    (g,) = minigen.grad(y, x)
    assert g.item() == 20_001.0


# --- minigen.grad -----------------------------------------------------------------------------


def test_grad_returns_tuple_for_tensor_and_list_inputs():
    x = f64([1.0, 2.0])
    w = f64([3.0, -1.0])
    y = (x * w).sum()
    single = minigen.grad(y, x, retain_graph=True)
    assert isinstance(single, tuple) and len(single) == 1
    np.testing.assert_allclose(values(single[0]), w.data)
    both = minigen.grad([y], [x, w])
    assert isinstance(both, tuple) and len(both) == 2
    np.testing.assert_allclose(values(both[0]), w.data)
    np.testing.assert_allclose(values(both[1]), x.data)


def test_grad_does_not_touch_dot_grad():
    x = f64([1.0, 2.0])
    (g,) = minigen.grad((x * x).sum(), x)
    np.testing.assert_allclose(values(g), 2 * x.data)
    assert x.grad is None
    x.grad = minigen.tensor(np.array([7.0, 7.0]))
    minigen.grad((x * x).sum(), x)
    np.testing.assert_array_equal(values(x.grad), [7.0, 7.0])


def test_grad_without_create_graph_is_not_differentiable():
    x = f64([1.0, 2.0])
    (g,) = minigen.grad((x * x).sum(), x)
    assert not g.requires_grad and g.creator is None


def test_grad_unused_input_raises_naming_it():
    x = f64([1.0, 2.0])
    unused = f64([1.0, 2.0, 3.0])
    with pytest.raises(RuntimeError) as info:
        minigen.grad((x * x).sum(), [x, unused])
    message = str(info.value)
    assert "input 1" in message and "(3,)" in message and "allow_unused" in message


def test_grad_allow_unused_returns_none():
    x = f64([1.0, 2.0])
    unused = f64([1.0, 2.0, 3.0])
    gx, gu = minigen.grad((x * x).sum(), [x, unused], allow_unused=True)
    np.testing.assert_allclose(values(gx), 2 * x.data)
    assert gu is None


def test_grad_input_that_does_not_require_grad_raises():
    x = f64([1.0, 2.0])
    c = f64([1.0, 2.0], requires_grad=False)
    with pytest.raises(RuntimeError, match="does not require grad"):
        minigen.grad((x * c).sum(), [x, c])


def test_grad_with_respect_to_intermediate_tensor():
    """h = 3x, y = sum(h^2): dy/dh = 2h and dy/dx = 18x, in one call."""
    x = f64([1.0, -2.0])
    h = x * 3.0
    y = (h * h).sum()
    gh, gx = minigen.grad(y, [h, x])
    np.testing.assert_allclose(values(gh), 2 * h.data)
    np.testing.assert_allclose(values(gx), 18 * x.data)


def test_grad_with_respect_to_intermediate_only():
    x = f64([1.0, -2.0])
    h = x.exp()
    y = (h * h).sum()
    (gh,) = minigen.grad(y, h)
    np.testing.assert_allclose(values(gh), 2 * np.exp(x.data))
    assert x.grad is None


def test_grad_outputs_for_non_scalar_output():
    x = f64([[1.0, 2.0], [3.0, 4.0]])
    v = minigen.tensor(np.array([[1.0, 0.0], [-2.0, 0.5]]))
    (g,) = minigen.grad(x * x, x, grad_outputs=v)
    np.testing.assert_allclose(values(g), 2 * x.data * v.data)


def test_grad_non_scalar_output_without_grad_outputs_raises():
    x = f64([1.0, 2.0])
    with pytest.raises(RuntimeError, match=re.escape("(2,)")):
        minigen.grad(x * x, x)


def test_grad_several_outputs_sum_their_vjps():
    x = f64([0.5, -1.0])
    y1 = (x * x).sum()
    y2 = x.exp() * 2.0
    v2 = minigen.tensor(np.array([1.0, 3.0]))
    (g,) = minigen.grad([y1, y2], x, grad_outputs=[None, v2])
    np.testing.assert_allclose(values(g), 2 * x.data + 2 * np.exp(x.data) * v2.data)


def test_grad_outputs_count_mismatch_raises():
    x = f64([0.5, -1.0])
    with pytest.raises(ValueError, match="grad_outputs"):
        minigen.grad([x.sum(), x.exp().sum()], x, grad_outputs=[None])


# --- higher-order derivatives -------------------------------------------------------------------


def test_second_derivative_of_cube_is_6x():
    x = f64([0.5, -1.0, 2.0])
    (g,) = minigen.grad((x**3).sum(), x, create_graph=True)
    assert g.requires_grad
    np.testing.assert_allclose(values(g), 3 * x.data**2)
    (h,) = minigen.grad(g.sum(), x)
    np.testing.assert_allclose(values(h), 6 * x.data)


def test_third_derivative_of_cube_is_6():
    x = f64([0.5, -1.0, 2.0])
    (g,) = minigen.grad((x**3).sum(), x, create_graph=True)
    (h,) = minigen.grad(g.sum(), x, create_graph=True)
    (k,) = minigen.grad(h.sum(), x)
    np.testing.assert_allclose(values(k), [6.0, 6.0, 6.0])


def test_mixed_partials_of_x_y_squared():
    """f = x y^2: f_x = y^2, f_y = 2xy, f_xx = 0, f_xy = f_yx = 2y, f_yy = 2x."""
    x = f64(1.5)
    y = f64(-0.7)
    fx, fy = minigen.grad(x * y * y, [x, y], create_graph=True)
    assert fx.item() == pytest.approx(0.49)
    assert fy.item() == pytest.approx(2 * 1.5 * -0.7)
    fxx, fxy = minigen.grad(fx, [x, y], retain_graph=True, allow_unused=True)
    fyx, fyy = minigen.grad(fy, [x, y])
    assert fxx is None or fxx.item() == 0.0
    assert fxy.item() == pytest.approx(2 * -0.7)
    assert fyx.item() == pytest.approx(2 * -0.7)
    assert fyy.item() == pytest.approx(2 * 1.5)


def test_hessian_vector_product_of_sum_exp():
    """H of sum(exp(x)) is diag(exp(x)), so H v = exp(x) * v."""
    x = f64([0.2, -1.0, 0.7, 1.3])
    v = minigen.tensor(np.array([1.0, 2.0, -1.0, 0.5]))
    (g,) = minigen.grad(x.exp().sum(), x, create_graph=True)
    (hv,) = minigen.grad((g * v).sum(), x)
    np.testing.assert_allclose(values(hv), np.exp(x.data) * v.data, rtol=1e-12)


def test_hessian_vector_product_of_quadratic_form():
    """f = x^T A x: H = A + A^T, so H v = (A + A^T) v."""
    a = np.array([[1.0, 2.0, 0.0], [-1.0, 3.0, 0.5], [0.0, 1.0, -2.0]])
    A = minigen.tensor(a)
    x = f64([0.3, -0.2, 0.9])
    v = minigen.tensor(np.array([1.0, -1.0, 2.0]))
    (g,) = minigen.grad(x @ (A @ x), x, create_graph=True)
    np.testing.assert_allclose(values(g), (a + a.T) @ x.data)
    (hv,) = minigen.grad(g @ v, x)
    np.testing.assert_allclose(values(hv), (a + a.T) @ v.data)


def test_gradient_penalty_reaches_discriminator_parameters():
    """D(x_n) = tanh(w . x_n + b) for a batch; g_n = dD(x_n)/dx_n = u_n w with t_n = D(x_n),
    u_n = 1 - t_n^2; penalty P = mean_n (|g_n|^2 - 1)^2 = mean_n (u_n^2 s - 1)^2 with s = |w|^2.

    dP/dw = mean_n 2 (u_n^2 s - 1) (2 u_n^2 w - 4 u_n^2 t_n s x_n)     (du_n/dw = -2 t_n u_n x_n)
    dP/db = mean_n 2 (u_n^2 s - 1) (-4 u_n^2 t_n s)
    """
    xs = np.array([[0.3, -0.5, 0.8], [-0.2, 0.1, 0.4], [1.0, 0.7, -0.3], [0.05, -0.9, 0.2]])
    w = f64([0.9, -1.3, 0.6])
    b = f64(0.25)
    x = minigen.tensor(xs, requires_grad=True)

    out = (x @ w + b).tanh()
    (g,) = minigen.grad(out, x, grad_outputs=minigen.ones(4, dtype="float64"), create_graph=True)
    penalty = (((g * g).sum(dim=1) - 1.0) ** 2).mean()
    penalty.backward()

    t = np.tanh(xs @ w.data + b.data)
    u = 1 - t**2
    s = w.data @ w.data
    np.testing.assert_allclose(values(g), u[:, None] * w.data[None, :], rtol=1e-12)
    common = 2 * (u**2 * s - 1)
    expected_w = (common[:, None] * (2 * u[:, None] ** 2 * w.data - 4 * (u**2 * t * s)[:, None] * xs)).mean(0)
    expected_b = (common * (-4 * u**2 * t * s)).mean()
    assert penalty.item() == pytest.approx(np.mean((u**2 * s - 1) ** 2), rel=1e-12)
    np.testing.assert_allclose(values(w.grad), expected_w, rtol=1e-10)
    np.testing.assert_allclose(b.grad.item(), expected_b, rtol=1e-10)


# --- grad mode ---------------------------------------------------------------------------------


def test_no_grad_records_nothing():
    x = f64([1.0, 2.0])
    with minigen.no_grad():
        assert not minigen.is_grad_enabled()
        y = (x * 2.0).exp()
    assert minigen.is_grad_enabled()
    assert y.creator is None and not y.requires_grad
    np.testing.assert_allclose(values(y), np.exp(2 * x.data))


def test_graph_is_recorded_only_when_an_input_requires_grad():
    c = f64([1.0, 2.0], requires_grad=False)
    y = c * 2.0
    assert y.creator is None and not y.requires_grad
    x = f64([1.0, 2.0])
    z = c * x
    assert type(z.creator).__name__ == "Mul" and z.requires_grad


def test_no_grad_as_decorator():
    @minigen.no_grad()
    def double(t):
        assert not minigen.is_grad_enabled()
        return t * 2.0

    x = f64([1.0, 2.0])
    y = double(x)
    assert y.creator is None and not y.requires_grad
    assert minigen.is_grad_enabled()
    assert double.__name__ == "double"


def test_enable_grad_inside_no_grad_records():
    x = f64([1.0, 2.0])
    with minigen.no_grad():
        with minigen.enable_grad():
            assert minigen.is_grad_enabled()
            y = x * x
        z = x * x
        assert not minigen.is_grad_enabled()
    assert y.requires_grad and y.creator is not None
    assert z.creator is None
    y.sum().backward()
    np.testing.assert_allclose(values(x.grad), 2 * x.data)


def test_enable_grad_as_decorator_inside_no_grad():
    @minigen.enable_grad()
    def square(t):
        return t * t

    x = f64([3.0])
    with minigen.no_grad():
        y = square(x)
        assert not minigen.is_grad_enabled()
    assert y.creator is not None


def test_grad_mode_restored_after_exception():
    with pytest.raises(ValueError, match="boom"), minigen.no_grad():
        raise ValueError("boom")
    assert minigen.is_grad_enabled()

    @minigen.no_grad()
    def fails():
        raise KeyError("inside")

    with pytest.raises(KeyError):
        fails()
    assert minigen.is_grad_enabled()

    with minigen.no_grad():
        with pytest.raises(ValueError), minigen.enable_grad():
            raise ValueError("nested")
        assert not minigen.is_grad_enabled()
    assert minigen.is_grad_enabled()


def test_backward_leaves_grad_mode_unchanged():
    x = f64([1.0, 2.0])
    (x * x).sum().backward()
    assert minigen.is_grad_enabled()
    y = f64([1.0])
    z = (y * 2.0).sum()
    with minigen.no_grad():  # a graph built outside no_grad can be backpropagated inside it
        z.backward()
        assert not minigen.is_grad_enabled()
    np.testing.assert_allclose(values(y.grad), [2.0])


# --- Tensor basics ------------------------------------------------------------------------------


def test_detach_shares_memory_and_cuts_graph():
    x = f64([1.0, 2.0])
    y = x * 3.0
    d = y.detach()
    assert d.creator is None and not d.requires_grad
    assert np.shares_memory(d.data, y.data)
    d.data[0] = 10.0
    assert y.data[0] == 10.0
    w = f64([1.0, 1.0])
    (d * w).sum().backward()
    np.testing.assert_allclose(values(w.grad), [10.0, 6.0])
    assert x.grad is None


def test_requires_grad_toggles_leaves_and_rejects_integers_and_non_leaves():
    x = minigen.tensor([1.0, 2.0])
    assert not x.requires_grad
    assert x.requires_grad_() is x
    assert x.requires_grad
    (x * x).sum().backward()
    np.testing.assert_allclose(values(x.grad), [2.0, 4.0])
    x.requires_grad_(False)
    assert not x.requires_grad
    with pytest.raises(TypeError, match="floating"):
        minigen.tensor([1, 2]).requires_grad_()
    with pytest.raises(RuntimeError, match="non-leaf"):
        (f64([1.0]) * 2.0).requires_grad_(False)


def test_item_returns_the_python_number_of_a_one_element_tensor():
    x = f64([[2.5]])
    value = x.item()
    assert value == 2.5 and isinstance(value, float)
    assert minigen.tensor(3).item() == 3
    with pytest.raises(ValueError, match=re.escape("(2,)")):
        f64([1.0, 2.0]).item()


def test_numpy_on_tensor_that_requires_grad_raises():
    x = f64([1.0, 2.0])
    with pytest.raises(RuntimeError, match="detach"):
        x.numpy()
    with pytest.raises(RuntimeError):
        (x * 2.0).numpy()
    out = x.detach().numpy()
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, [1.0, 2.0])


_X = np.array([[0.5, -1.2, 2.0], [1.5, 0.3, -0.7]])
_P = np.abs(_X) + 0.5
_Y = np.array([[1.0, -2.0, 0.1], [0.0, 0.4, -1.0]])
_W = np.array([[1.0, 0.5], [-2.0, 0.0], [0.1, 3.0]])


def _y():
    return minigen.tensor(_Y)


@pytest.mark.parametrize(
    ("name", "method", "function", "data"),
    [
        ("exp", lambda x: x.exp(), minigen.exp, _X),
        ("log", lambda x: x.log(), minigen.log, _P),
        ("sqrt", lambda x: x.sqrt(), minigen.sqrt, _P),
        ("abs", lambda x: x.abs(), minigen.abs, _X),
        ("tanh", lambda x: x.tanh(), minigen.tanh, _X),
        ("sigmoid", lambda x: x.sigmoid(), minigen.sigmoid, _X),
        ("relu", lambda x: x.relu(), minigen.relu, _X),
        ("clip", lambda x: x.clip(-1.0, 1.0), lambda x: minigen.clip(x, -1.0, 1.0), _X),
        ("clamp", lambda x: x.clamp(min=0.0), lambda x: minigen.clamp(x, min=0.0), _X),
        ("maximum", lambda x: x.maximum(_y()), lambda x: minigen.maximum(x, _y()), _X),
        ("minimum", lambda x: x.minimum(_y()), lambda x: minigen.minimum(x, _y()), _X),
        ("sum", lambda x: x.sum(dim=1), lambda x: minigen.sum(x, dim=1), _X),
        ("mean", lambda x: x.mean(0, keepdim=True), lambda x: minigen.mean(x, 0, keepdim=True), _X),
        ("var", lambda x: x.var(dim=1), lambda x: minigen.var(x, dim=1), _X),
        ("std", lambda x: x.std(), minigen.std, _X),
        ("max", lambda x: x.max(dim=0), lambda x: minigen.max(x, dim=0), _X),
        ("min", lambda x: x.min(), minigen.min, _X),
        ("logsumexp", lambda x: x.logsumexp(dim=1), lambda x: minigen.logsumexp(x, dim=1), _X),
        ("softmax", lambda x: x.softmax(dim=0), lambda x: minigen.softmax(x, dim=0), _X),
        ("log_softmax", lambda x: x.log_softmax(dim=1), lambda x: log_softmax(x, dim=1), _X),
        ("reshape", lambda x: x.reshape(3, 2), lambda x: minigen.reshape(x, (3, 2)), _X),
        ("view", lambda x: x.view(6), lambda x: minigen.reshape(x, 6), _X),
        ("permute", lambda x: x.permute(1, 0), lambda x: minigen.permute(x, 1, 0), _X),
        ("transpose", lambda x: x.transpose(0, 1), lambda x: minigen.transpose(x, 0, 1), _X),
        ("flatten", lambda x: x.flatten(), minigen.flatten, _X),
        ("unsqueeze", lambda x: x.unsqueeze(1), lambda x: minigen.unsqueeze(x, 1), _X),
        (
            "squeeze",
            lambda x: x.reshape(1, 2, 3).squeeze(0),
            lambda x: minigen.squeeze(x.reshape(1, 2, 3), 0),
            _X,
        ),
        (
            "matmul",
            lambda x: x.matmul(minigen.tensor(_W)),
            lambda x: minigen.matmul(x, minigen.tensor(_W)),
            _X,
        ),
        ("pow", lambda x: x**2.0, lambda x: minigen.pow(x, 2.0), _X),
        ("argmax", lambda x: x.argmax(dim=1), lambda x: minigen.argmax(x, dim=1), _X),
    ],
    ids=lambda p: p if isinstance(p, str) else "",
)
def test_tensor_method_matches_function(name, method, function, data):
    x = minigen.tensor(data, requires_grad=True)
    by_method, by_function = method(x), function(x)
    assert by_method.shape == by_function.shape
    assert by_method.dtype == by_function.dtype
    np.testing.assert_array_equal(values(by_method), values(by_function))
    assert type(by_method.creator) is type(by_function.creator)


def test_tensor_where_method_matches_function():
    x = minigen.tensor(_X, requires_grad=True)
    cond = minigen.tensor(_X > 0)
    other = minigen.tensor(_Y)
    np.testing.assert_array_equal(values(x.where(cond, other)), values(minigen.where(cond, x, other)))


def test_T_reverses_dimensions_and_is_differentiable():
    x = minigen.tensor(np.arange(24.0).reshape(2, 3, 4), requires_grad=True)
    np.testing.assert_array_equal(values(x.T), np.arange(24.0).reshape(2, 3, 4).T)
    m = minigen.tensor(_X, requires_grad=True)
    assert m.T.shape == (3, 2)
    w = minigen.tensor(np.array([1.0, 2.0]))
    (m.T @ w).sum().backward()
    np.testing.assert_allclose(values(m.grad), np.repeat(w.data[:, None], 3, axis=1))


def test_len_is_the_first_dimension():
    assert len(minigen.zeros(3, 2)) == 3
    assert len(minigen.zeros(5)) == 5
    with pytest.raises(TypeError):
        len(minigen.tensor(1.0))


def test_repr_shows_grad_fn_for_non_leaves():
    x = f64([1.0, 2.0])
    assert "grad_fn=<Mul>" in repr(x * 2.0)
    assert "grad_fn=<Exp>" in repr(x.exp())
    assert "requires_grad=True" in repr(x) and "grad_fn" not in repr(x)
    with minigen.no_grad():
        assert "grad_fn" not in repr(x * 2.0)
    assert "grad_fn" not in repr(minigen.tensor([1.0]))


def test_tensor_is_hashable_while_eq_is_elementwise():
    a = minigen.tensor([1.0, 2.0, 3.0])
    b = minigen.tensor([1.0, 5.0, 3.0])
    c = minigen.tensor([1.0, 2.0, 3.0])
    table = {a: "a", b: "b", c: "c"}
    assert len(table) == 3
    assert table[a] == "a" and table[c] == "c"
    assert a in {a} and c not in {a}
    equal = a == b
    assert isinstance(equal, Tensor)
    np.testing.assert_array_equal(equal.numpy(), [True, False, True])
    np.testing.assert_array_equal((a != b).numpy(), [False, True, False])


def test_leaf_gradients_are_arrays_of_their_own():
    """As PyTorch: changing one .grad in place changes no other gradient and no caller's array."""
    a = minigen.randn(3, 4, requires_grad=True)
    b = minigen.randn(3, 4, requires_grad=True)
    (a + b).sum().backward()  # both get the same gy, a broadcast (read-only) view of the seed
    a.grad.data *= 2.0
    assert a.grad.data.flags.writeable
    np.testing.assert_array_equal(a.grad.numpy(), np.full((3, 4), 2.0, dtype=np.float32))
    np.testing.assert_array_equal(b.grad.numpy(), np.ones((3, 4), dtype=np.float32))

    x = minigen.randn(2, 3, requires_grad=True)
    seed = minigen.ones(3, 2)
    x.reshape(3, 2).backward(seed)  # x.grad would be a view of the caller's seed
    x.grad.data[...] = 5.0
    np.testing.assert_array_equal(seed.numpy(), np.ones((3, 2), dtype=np.float32))


def test_retained_gradient_does_not_alias_the_inputs_gradient():
    x = minigen.randn(3, requires_grad=True)
    y = x + 0.0
    y.retain_grad()
    y.sum().backward()
    y.grad.data[...] = 7.0
    np.testing.assert_array_equal(x.grad.numpy(), np.ones(3, dtype=np.float32))
