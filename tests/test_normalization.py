"""Batch normalisation: values against the formula written out per channel, first and second
derivatives in training and evaluation mode (2-D, 3-D and 4-D inputs, with and without the
affine part), running statistics against the momentum rule step by step, and errors."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minigen
from minigen.gradcheck import gradcheck, gradgradcheck
from minigen.ops.normalization import BatchNorm, batch_norm
from minigen.testing import arrays


def f64(values, requires_grad=False):
    return minigen.tensor(np.asarray(values, dtype=np.float64), requires_grad=requires_grad)


def reference(x, mean, var, weight, bias, eps):
    """y[:, c] = (x[:, c] - mean[c]) / sqrt(var[c] + eps) * weight[c] + bias[c], channel by channel."""
    y = np.empty_like(x)
    for c in range(x.shape[1]):
        y[:, c] = (x[:, c] - mean[c]) / math.sqrt(var[c] + eps) * weight[c] + bias[c]
    return y


def batch_statistics(x):
    """Per channel: the mean, the biased variance (sum / n) and the unbiased one (sum / (n - 1))."""
    means, biased, unbiased = [], [], []
    for c in range(x.shape[1]):
        v = x[:, c].reshape(-1)
        n = v.size
        m = sum(v) / n
        squares = sum((v - m) ** 2)
        means.append(m)
        biased.append(squares / n)
        unbiased.append(squares / (n - 1))
    return np.array(means), np.array(biased), np.array(unbiased)


@st.composite
def bn_inputs(draw, ndims=(2, 3, 4)):
    """x of shape (N, C, ...) with at least 2 values per channel, drawn from [-3, 3]."""
    ndim = draw(st.sampled_from(ndims))
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3))) + tuple(
        draw(st.integers(1, 3)) for _ in range(ndim - 2)
    )
    if math.prod(shape) // shape[1] < 2:
        shape = (shape[0] + 1,) + shape[1:]
    return draw(arrays(shape, "real"))


def channel_params(channels, seed):
    rng = np.random.default_rng(seed)
    return (
        rng.normal(size=channels),
        rng.normal(size=channels),
        rng.normal(size=channels),
        0.5 + rng.random(channels),
    )


# --- values ---------------------------------------------------------------------------------------


@given(x=bn_inputs(), affine=st.booleans(), eps=st.sampled_from([1e-5, 0.1]), seed=st.integers(0, 9))
def test_training_normalises_with_biased_batch_statistics(x, affine, eps, seed):
    weight, bias, running_mean, running_var = channel_params(x.shape[1], seed)
    args = (f64(weight), f64(bias)) if affine else (None, None)
    y = batch_norm(f64(x), f64(running_mean), f64(running_var), *args, training=True, eps=eps)
    mean, biased, _ = batch_statistics(x)
    ones, zeros = np.ones(x.shape[1]), np.zeros(x.shape[1])
    expected = reference(x, mean, biased, *((weight, bias) if affine else (ones, zeros)), eps)
    assert y.shape == x.shape and y.dtype == np.float64
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-10, atol=1e-10)


@given(x=bn_inputs(), affine=st.booleans(), seed=st.integers(0, 9))
def test_evaluation_normalises_with_running_statistics(x, affine, seed):
    weight, bias, running_mean, running_var = channel_params(x.shape[1], seed)
    rm, rv = f64(running_mean), f64(running_var)
    args = (f64(weight), f64(bias)) if affine else (None, None)
    y = batch_norm(f64(x), rm, rv, *args, training=False, eps=1e-3)
    ones, zeros = np.ones(x.shape[1]), np.zeros(x.shape[1])
    expected = reference(x, running_mean, running_var, *((weight, bias) if affine else (ones, zeros)), 1e-3)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(rm.numpy(), running_mean)  # evaluation leaves them alone
    np.testing.assert_array_equal(rv.numpy(), running_var)


def test_evaluation_accepts_one_value_per_channel():
    y = batch_norm(f64([[1.0, 2.0]]), f64([0.5, 1.0]), f64([4.0, 0.25]), training=False, eps=0.0)
    np.testing.assert_allclose(y.numpy(), [[0.25, 2.0]])


def test_training_without_running_statistics_uses_the_batch_only():
    x = np.array([[1.0, -2.0], [3.0, 0.0], [5.0, 4.0]])
    y = batch_norm(f64(x), None, None, training=True, eps=0.0)
    # channel 0: mean 3, biased var 8/3; channel 1: mean 2/3, biased var 56/9
    expected = np.stack([(x[:, 0] - 3) / math.sqrt(8 / 3), (x[:, 1] - 2 / 3) / math.sqrt(56 / 9)], axis=1)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-12)


def test_constant_channel_normalises_to_zero_with_finite_gradient():
    x = f64([[[2.0, 2.0]], [[2.0, 2.0]]], requires_grad=True)  # (2, 1, 2): every value equal
    y = batch_norm(x, None, None, training=True)
    np.testing.assert_array_equal(y.detach().numpy(), np.zeros((2, 1, 2)))
    assert gradcheck(lambda t: batch_norm(t, None, None, training=True), [x])
    assert gradgradcheck(lambda t: batch_norm(t, None, None, training=True, eps=1e-2), [x])


@pytest.mark.parametrize("training", [True, False])
def test_float32_stays_float32(training):
    rng = np.random.default_rng(0)
    data = rng.normal(size=(4, 3, 2)).astype(np.float32)
    x = minigen.tensor(data, requires_grad=True)
    rm, rv = minigen.zeros(3), minigen.ones(3)
    weight, bias = minigen.ones(3, requires_grad=True), minigen.zeros(3, requires_grad=True)
    y = batch_norm(x, rm, rv, weight, bias, training=training)
    y.sum().backward()
    assert y.dtype == np.float32 and rm.dtype == np.float32 and rv.dtype == np.float32
    assert x.grad.dtype == np.float32 and weight.grad.dtype == np.float32
    node = BatchNorm((0, 2), 1e-5)
    node(minigen.tensor(data))
    assert node.batch_mean.dtype == node.batch_var.dtype == node.inv_std.dtype == np.float32
    mean, biased, _ = batch_statistics(data.astype(np.float64))
    stats = (mean, biased) if training else (np.zeros(3), np.ones(3))
    np.testing.assert_allclose(
        y.detach().numpy(), reference(data, *stats, np.ones(3), np.zeros(3), 1e-5), atol=1e-5
    )


# --- running statistics ---------------------------------------------------------------------------


@pytest.mark.parametrize("momentum", [0.1, 0.5, 1.0, "cumulative"])
def test_running_statistics_follow_the_momentum_rule(momentum):
    rng = np.random.default_rng(3)
    rm, rv = f64(np.zeros(3)), f64(np.ones(3))
    expected_mean, expected_var = np.zeros(3), np.ones(3)
    batch_means = []
    for step in range(1, 5):
        x = rng.normal(loc=step, scale=step, size=(4, 3, 2))
        m = 1.0 / step if momentum == "cumulative" else momentum
        y = batch_norm(f64(x), rm, rv, training=True, momentum=m)
        mean, biased, unbiased = batch_statistics(x)
        batch_means.append(mean)
        expected_mean = (1 - m) * expected_mean + m * mean
        expected_var = (1 - m) * expected_var + m * unbiased
        np.testing.assert_allclose(rm.numpy(), expected_mean, rtol=1e-12)
        np.testing.assert_allclose(rv.numpy(), expected_var, rtol=1e-12)
        # the output is normalised with the biased variance of this batch, not the running one
        np.testing.assert_allclose(y.numpy(), reference(x, mean, biased, np.ones(3), np.zeros(3), 1e-5))
    if momentum == "cumulative":  # momentum 1/k gives the plain average over the batches
        np.testing.assert_allclose(rm.numpy(), sum(batch_means) / 4, rtol=1e-12)


def test_running_statistics_are_updated_in_place_and_stay_out_of_the_graph():
    rm, rv = f64(np.zeros(2)), f64(np.ones(2))
    arrays_before = rm.data, rv.data
    x = f64(np.arange(8.0).reshape(4, 2), requires_grad=True)
    y = batch_norm(x, rm, rv, training=True)
    assert rm.data is arrays_before[0] and rv.data is arrays_before[1]
    assert not rm.requires_grad and rm.creator is None and not rv.requires_grad and rv.creator is None
    nodes, stack = [], [y.creator]
    while stack:
        node = stack.pop()
        nodes.append(node)
        stack.extend(t.creator for t in node.inputs if t.creator)
    assert all(t is not rm and t is not rv for node in nodes for t in node.inputs)
    # changing the running statistics afterwards does not change the gradient
    rm.data[:] = 100.0
    (g,) = minigen.grad(y, x, f64(np.ones((4, 2)) * [[1.0], [2.0], [0.0], [-1.0]]))
    x_hat = (x.data - x.data.mean(0)) / np.sqrt(x.data.var(0) + 1e-5)
    gy = np.ones((4, 2)) * [[1.0], [2.0], [0.0], [-1.0]]
    expected = (gy - gy.mean(0) - x_hat * (gy * x_hat).mean(0)) / np.sqrt(x.data.var(0) + 1e-5)
    np.testing.assert_allclose(g.numpy(), expected, rtol=1e-10, atol=1e-12)


def test_evaluation_never_differentiates_the_running_statistics():
    rm = f64([0.5, -0.5], requires_grad=True)
    rv = f64([1.0, 2.0], requires_grad=True)
    x = f64([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    with pytest.raises(RuntimeError, match="was not used"):
        minigen.grad(batch_norm(x, rm, rv).sum(), [x, rm])


# --- gradients ------------------------------------------------------------------------------------


def _function(training, affine, running):
    def fn(x, *params):
        rm, rv = running
        return batch_norm(x, rm, rv, *(params if affine else ()), training=training, eps=1e-3)

    return fn


@pytest.mark.parametrize("ndim", [2, 3, 4])
@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
@settings(max_examples=4)
@given(data=st.data())
def test_training_gradients_first_and_second_order(ndim, affine, data):
    x = data.draw(bn_inputs(ndims=(ndim,)))
    channels = x.shape[1]
    inputs = [f64(x, requires_grad=True)]
    if affine:
        inputs += [f64(data.draw(arrays((channels,), "real")), requires_grad=True) for _ in range(2)]
    running = (f64(np.zeros(channels)), f64(np.ones(channels)))
    fn = _function(True, affine, running)
    assert gradcheck(fn, inputs)
    assert gradgradcheck(fn, inputs)


@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
@settings(max_examples=6)
@given(x=bn_inputs())
def test_evaluation_gradients_first_and_second_order(affine, x):
    channels = x.shape[1]
    inputs = [f64(x, requires_grad=True)]
    if affine:
        inputs += [
            f64(np.linspace(-1, 1, channels), requires_grad=True),
            f64(np.ones(channels), requires_grad=True),
        ]
    running = (f64(np.linspace(-0.5, 0.5, channels)), f64(np.linspace(0.5, 2, channels)))
    fn = _function(False, affine, running)
    assert gradcheck(fn, inputs)
    assert gradgradcheck(fn, inputs)


@settings(max_examples=6)
@given(x=bn_inputs())
def test_batchnorm_function_gradients_first_and_second_order(x):
    axes = (0,) + tuple(range(2, x.ndim))
    inputs = [f64(x, requires_grad=True)]
    assert gradcheck(lambda t: BatchNorm(axes, 1e-5)(t), inputs)
    assert gradgradcheck(lambda t: BatchNorm(axes, 1e-5)(t), inputs)


@given(x=bn_inputs(), seed=st.integers(0, 9))
def test_backward_gives_the_same_gradient_with_and_without_create_graph(x, seed):
    """The closed form uses the saved 1/sigma, or rebuilds it from x when recording; same values."""
    t = f64(x, requires_grad=True)
    v = f64(np.random.default_rng(seed).normal(size=x.shape))
    (plain,) = minigen.grad(batch_norm(t, None, None, training=True), t, v)
    (recorded,) = minigen.grad(batch_norm(t, None, None, training=True), t, v, create_graph=True)
    assert recorded.requires_grad and not plain.requires_grad
    np.testing.assert_allclose(recorded.detach().numpy(), plain.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_gives_the_cpu_values_gradients_and_statistics_on_every_device(device, training):
    rng = np.random.default_rng(0)
    x, w, b = rng.normal(size=(4, 3, 2, 2)), rng.normal(size=3), rng.normal(size=3)

    def run(on):
        inputs = [minigen.tensor(a, device=on, requires_grad=True) for a in (x, w, b)]
        rm, rv = minigen.zeros(3, dtype="float64", device=on), minigen.ones(3, dtype="float64", device=on)
        y = batch_norm(inputs[0], rm, rv, inputs[1], inputs[2], training=training, momentum=0.3)
        v = minigen.tensor(np.cos(np.arange(48.0)).reshape(4, 3, 2, 2), device=on)
        grads = minigen.grad(y, inputs, v)
        assert y.device == rm.device == on
        return [y.detach().numpy(), rm.numpy(), rv.numpy()] + [g.numpy() for g in grads]

    for here, cpu in zip(run(device), run("cpu")):
        np.testing.assert_allclose(here, cpu, rtol=1e-12, atol=1e-12)


# --- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 3), (1, 3, 1), (1, 2, 1, 1)])
def test_one_value_per_channel_in_training_raises(shape):
    x = f64(np.ones(shape))
    message = (
        rf"Expected more than 1 value per channel when training, got input size \({shape[0]}, {shape[1]}"
    )
    with pytest.raises(ValueError, match=message):
        batch_norm(x, f64(np.zeros(shape[1])), f64(np.ones(shape[1])), training=True)


def test_input_with_fewer_than_two_dims_raises():
    with pytest.raises(ValueError, match=r"input of shape \(N, C, \.\.\.\) \(2 or more dims\); got \(3,\)"):
        batch_norm(f64([1.0, 2.0, 3.0]), None, None, training=True)


def test_integer_input_raises():
    with pytest.raises(TypeError, match="floating-point input; got int64"):
        batch_norm(minigen.tensor([[1, 2], [3, 4]]), None, None, training=True)


@pytest.mark.parametrize("name", ["running_mean", "running_var", "weight", "bias"])
def test_per_channel_tensor_of_wrong_shape_raises(name):
    kwargs = {"running_mean": f64(np.zeros(3)), "running_var": f64(np.ones(3)), "weight": None, "bias": None}
    kwargs[name] = f64(np.ones(4))
    message = rf"{name} has shape \(4,\), but input of shape \(2, 3\) has 3 channels \(dim 1\)"
    with pytest.raises(ValueError, match=message):
        batch_norm(f64(np.ones((2, 3))), training=True, **kwargs)


def test_evaluation_without_running_statistics_raises():
    with pytest.raises(ValueError, match=r"evaluation mode \(training=False\) normalises with running_mean"):
        batch_norm(f64(np.ones((2, 3))), None, None, training=False)


def test_only_one_running_statistic_raises():
    with pytest.raises(ValueError, match="pass both running_mean and running_var, or neither"):
        batch_norm(f64(np.ones((2, 3))), f64(np.zeros(3)), None, training=True)


def test_momentum_none_raises():
    with pytest.raises(TypeError, match=r"momentum must be a number; got None .*1 / num_batches_tracked"):
        batch_norm(f64(np.ones((2, 3))), f64(np.zeros(3)), f64(np.ones(3)), training=True, momentum=None)
