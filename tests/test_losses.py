"""Losses: values against the formulas written out with NumPy (every reduction, weights,
pos_weight, ignore_index, label smoothing), stability at huge logits and at probabilities of
exactly 0 and 1, first and second derivatives with respect to every differentiable input,
dtypes, and errors."""

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minigen
from minigen.gradcheck import gradcheck, gradgradcheck
from minigen.ops.losses import (
    BinaryCrossEntropy,
    BinaryCrossEntropyWithLogits,
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    mse_loss,
    nll_loss,
)
from minigen.testing import arrays, shapes

REDUCTIONS = ("none", "mean", "sum")
SHAPES = shapes(min_dims=1, max_dims=3, max_side=3)


def f64(values, requires_grad=False):
    return minigen.tensor(np.asarray(values, dtype=np.float64), requires_grad=requires_grad)


def labels(values):
    return minigen.tensor(np.asarray(values, dtype=np.int64))


def reduce_reference(per_element, reduction):
    if reduction == "none":
        return per_element
    return per_element.sum() if reduction == "sum" else per_element.mean()


def check_gradients(fn, inputs):
    assert gradcheck(fn, inputs)
    assert gradgradcheck(fn, inputs)


def stable_sigmoid(a):
    return 0.5 * (1.0 + np.tanh(0.5 * a))


@st.composite
def trailing_weight(draw, shape, domain="positive"):
    """None, or a weight whose shape broadcasts to ``shape``: the last axis, or the whole shape."""
    kind = draw(st.sampled_from(["none", "last", "full"]))
    if kind == "none":
        return None
    return draw(arrays(shape[-1:] if kind == "last" else shape, domain))


# --- mse_loss -------------------------------------------------------------------------------------


@given(shape=SHAPES, reduction=st.sampled_from(REDUCTIONS), data=st.data())
def test_mse_loss_matches_formula(shape, reduction, data):
    a, b = data.draw(arrays(shape, "real")), data.draw(arrays(shape, "real"))
    loss = mse_loss(f64(a), f64(b), reduction=reduction)
    np.testing.assert_allclose(
        loss.numpy(), reduce_reference((a - b) ** 2, reduction), rtol=1e-12, atol=1e-12
    )


@settings(max_examples=8)
@given(shape=SHAPES, reduction=st.sampled_from(REDUCTIONS), data=st.data())
def test_mse_loss_gradients_for_input_and_target(shape, reduction, data):
    inputs = [f64(data.draw(arrays(shape, "real")), requires_grad=True) for _ in range(2)]
    check_gradients(lambda a, b: mse_loss(a, b, reduction=reduction), inputs)


def test_mse_loss_shape_mismatch_raises_instead_of_broadcasting():
    with pytest.raises(
        ValueError, match=r"mse_loss: target of shape \(3,\) must have the input's shape \(3, 1\)"
    ):
        mse_loss(f64(np.zeros((3, 1))), f64(np.zeros(3)))


# --- binary_cross_entropy -------------------------------------------------------------------------


def bce_reference(x, y, w):
    with np.errstate(divide="ignore"):
        return -w * (y * np.maximum(np.log(x), -100) + (1 - y) * np.maximum(np.log(1 - x), -100))


@given(shape=SHAPES, reduction=st.sampled_from(REDUCTIONS), data=st.data())
def test_binary_cross_entropy_matches_formula(shape, reduction, data):
    x, y = data.draw(arrays(shape, "unit")), data.draw(arrays(shape, "unit"))
    w = data.draw(trailing_weight(shape))
    loss = binary_cross_entropy(f64(x), f64(y), None if w is None else f64(w), reduction=reduction)
    expected = reduce_reference(bce_reference(x, y, 1.0 if w is None else w), reduction)
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_binary_cross_entropy_clamps_the_logs_at_probabilities_0_and_1(dtype):
    x = minigen.tensor(np.array([0.0, 1.0, 0.0, 1.0, 0.5], dtype=dtype), requires_grad=True)
    y = minigen.tensor(np.array([0.0, 0.0, 1.0, 1.0, 0.25], dtype=dtype), requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # log 0 is never evaluated: no divide-by-zero warning
        loss = binary_cross_entropy(x, y, reduction="none")
        gx, gy = minigen.grad(loss.sum(), [x, y])
    expected = [0.0, 100.0, 100.0, 0.0, -(0.25 * math.log(0.5) + 0.75 * math.log(0.5))]
    np.testing.assert_allclose(loss.detach().numpy(), expected, rtol=1e-6)
    assert gx.dtype == gy.dtype == dtype
    # gx = (x - y) / max(x (1 - x), 1e-12); gy = max(log(1 - x), -100) - max(log x, -100)
    np.testing.assert_allclose(gx.numpy(), [0.0, 1e12, -1e12, 0.0, 1.0], rtol=1e-6)
    np.testing.assert_allclose(gy.numpy(), [100.0, -100.0, 100.0, -100.0, 0.0], rtol=1e-6, atol=1e-6)


@settings(max_examples=8)
@given(shape=SHAPES, reduction=st.sampled_from(REDUCTIONS), data=st.data())
def test_binary_cross_entropy_gradients_for_input_target_and_weight(shape, reduction, data):
    x, y = data.draw(arrays(shape, "unit")), data.draw(arrays(shape, "unit"))
    w = data.draw(arrays(shape[-1:], "positive"))
    inputs = [f64(x, requires_grad=True), f64(y, requires_grad=True), f64(w, requires_grad=True)]
    check_gradients(lambda a, b, c: binary_cross_entropy(a, b, c, reduction=reduction), inputs)


def test_binary_cross_entropy_function_gradients():
    x, y = (
        f64([[0.2, 0.7], [0.9, 0.4]], requires_grad=True),
        f64([[1.0, 0.3], [0.0, 0.6]], requires_grad=True),
    )
    check_gradients(lambda a, b: BinaryCrossEntropy()(a, b), [x, y])


@pytest.mark.parametrize("value", [-0.5, 1.5, float("nan")])
def test_binary_cross_entropy_input_outside_unit_interval_raises(value):
    x = f64([0.5, value])
    with pytest.raises(
        ValueError, match=r"input should be between 0 and 1 .*1 are not, e\.g\. (-0\.5|1\.5|nan)"
    ):
        binary_cross_entropy(x, f64([0.0, 1.0]))


def test_binary_cross_entropy_shape_mismatch_raises():
    with pytest.raises(
        ValueError, match=r"binary_cross_entropy: target of shape \(2, 1\) must have the input's"
    ):
        binary_cross_entropy(f64([0.5, 0.5]), f64([[1.0], [0.0]]))


def test_binary_cross_entropy_weight_that_does_not_broadcast_raises():
    with pytest.raises(
        ValueError, match=r"weight of shape \(3,\) does not broadcast to the input's shape \(2, 2\)"
    ):
        binary_cross_entropy(f64(np.full((2, 2), 0.5)), f64(np.ones((2, 2))), f64(np.ones(3)))


# --- binary_cross_entropy_with_logits -------------------------------------------------------------


def bce_logits_reference(x, y, w, p):
    """-[p y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))] with log sigmoid(x) = -log(1 + e^-x)."""
    return w * (p * y * np.logaddexp(0, -x) + (1 - y) * np.logaddexp(0, x))


@given(shape=SHAPES, reduction=st.sampled_from(REDUCTIONS), data=st.data())
def test_binary_cross_entropy_with_logits_matches_formula(shape, reduction, data):
    x, y = data.draw(arrays(shape, "real")), data.draw(arrays(shape, "unit"))
    w, p = data.draw(trailing_weight(shape)), data.draw(trailing_weight(shape))
    loss = binary_cross_entropy_with_logits(
        f64(x), f64(y), None if w is None else f64(w), reduction, None if p is None else f64(p)
    )
    expected = bce_logits_reference(x, y, 1.0 if w is None else w, 1.0 if p is None else p)
    np.testing.assert_allclose(loss.numpy(), reduce_reference(expected, reduction), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("with_pos_weight", [False, True])
def test_binary_cross_entropy_with_logits_is_stable_for_huge_logits(dtype, with_pos_weight):
    x_values = np.array([1e4, -1e4, 1e4, -1e4, 100.0, -100.0, 0.0, 40.0])
    y_values = np.array([1.0, 1.0, 0.0, 0.0, 0.5, 0.5, 0.3, 1.0])
    p_values = np.full(8, 2.5 if with_pos_weight else 1.0)
    x = minigen.tensor(x_values.astype(dtype), requires_grad=True)
    y = minigen.tensor(y_values.astype(dtype), requires_grad=True)
    p = minigen.tensor(p_values.astype(dtype)) if with_pos_weight else None
    loss = binary_cross_entropy_with_logits(x, y, reduction="none", pos_weight=p)
    gx, gy = minigen.grad(loss.sum(), [x, y])
    assert loss.dtype == gx.dtype == gy.dtype == dtype
    for t in (loss, gx, gy):
        assert np.isfinite(t.detach().numpy()).all()
    np.testing.assert_allclose(
        loss.detach().numpy(), bce_logits_reference(x_values, y_values, 1.0, p_values), rtol=1e-6
    )
    # gx = (1 + (p - 1) y) sigmoid(x) - p y; gy = (p - 1) softplus(-x) - x
    expected_gx = (1 + (p_values - 1) * y_values) * stable_sigmoid(x_values) - p_values * y_values
    expected_gy = (p_values - 1) * np.logaddexp(0, -x_values) - x_values
    np.testing.assert_allclose(gx.numpy(), expected_gx, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(gy.numpy(), expected_gy, rtol=1e-6)


@settings(max_examples=8)
@given(shape=SHAPES, reduction=st.sampled_from(REDUCTIONS), pos_weight=st.booleans(), data=st.data())
def test_binary_cross_entropy_with_logits_gradients_for_every_input(shape, reduction, pos_weight, data):
    x, y = data.draw(arrays(shape, "real")), data.draw(arrays(shape, "unit"))
    inputs = [f64(x, requires_grad=True), f64(y, requires_grad=True)]
    inputs.append(f64(data.draw(arrays(shape[-1:], "positive")), requires_grad=True))  # weight
    if pos_weight:
        inputs.append(f64(data.draw(arrays(shape[-1:], "positive")), requires_grad=True))

    def fn(x, y, w, *p):
        return binary_cross_entropy_with_logits(x, y, w, reduction, *p)

    check_gradients(fn, inputs)


@pytest.mark.parametrize("pos_weight", [False, True])
def test_binary_cross_entropy_with_logits_function_gradients(pos_weight):
    inputs = [
        f64([[2.0, -0.5], [0.1, -3.0]], requires_grad=True),
        f64([[1.0, 0.3], [0.0, 0.6]], requires_grad=True),
    ]
    if pos_weight:
        inputs.append(f64([0.5, 3.0], requires_grad=True))
    check_gradients(lambda *t: BinaryCrossEntropyWithLogits()(*t), inputs)


def test_binary_cross_entropy_with_logits_shape_mismatch_raises():
    with pytest.raises(
        ValueError, match=r"with_logits: target of shape \(3,\) must have the input's shape \(1, 3\)"
    ):
        binary_cross_entropy_with_logits(f64(np.zeros((1, 3))), f64(np.zeros(3)))


def test_binary_cross_entropy_with_logits_pos_weight_that_does_not_broadcast_raises():
    with pytest.raises(
        ValueError, match=r"pos_weight of shape \(2,\) does not broadcast to the input's shape \(2, 3\)"
    ):
        binary_cross_entropy_with_logits(
            f64(np.zeros((2, 3))), f64(np.zeros((2, 3))), pos_weight=f64([1.0, 2.0])
        )


# --- nll_loss and cross_entropy -------------------------------------------------------------------


def class_loss_reference(x, target, weight, ignore_index, smoothing, reduction, from_logits):
    """Loop over samples: l = -(1 - e) w[t] log p[t] - (e / C) sum_c w[c] log p[c] (0 if ignored);
    mean = sum l / sum of w[t] over the samples not ignored."""
    label_shape = np.shape(target)
    if x.ndim == 1:  # unbatched (C,) with target ()
        x, target = x[None], np.reshape(target, (1,))
    classes = x.shape[1]
    w = np.ones(classes) if weight is None else weight
    scores = np.moveaxis(x, 1, -1).reshape(-1, classes)
    losses, total = [], 0.0
    for row, t in zip(scores, np.asarray(target).reshape(-1)):
        if t == ignore_index:
            losses.append(0.0)
            continue
        log_p = row - np.log(np.sum(np.exp(row - row.max()))) - row.max() if from_logits else row
        losses.append(-(1 - smoothing) * w[t] * log_p[t] - smoothing / classes * np.sum(w * log_p))
        total += w[t]
    losses = np.array(losses)
    if reduction == "none":
        return losses.reshape(label_shape)
    return losses.sum() if reduction == "sum" else losses.sum() / total


@st.composite
def class_problems(draw, smoothing=True):
    """(scores, labels, weight, ignore_index, label_smoothing, reduction); unbatched now and then."""
    classes = draw(st.integers(1, 4))
    if draw(st.integers(0, 5)) == 0:
        shape, label_shape = (classes,), ()
    else:
        batch, spatial = draw(st.integers(1, 3)), draw(st.lists(st.integers(1, 2), max_size=2))
        shape, label_shape = (batch, classes, *spatial), (batch, *spatial)
    scores = draw(arrays(shape, "real"))
    ignore_index = draw(st.sampled_from([-100, 0, classes - 1]))
    size = math.prod(label_shape)
    values = draw(st.lists(st.integers(0, classes - 1), min_size=size, max_size=size))
    ignored = draw(st.lists(st.booleans(), min_size=size, max_size=size))
    target = np.array([ignore_index if i and k else v for k, (v, i) in enumerate(zip(values, ignored))])
    target = target.reshape(label_shape)
    weight = draw(st.none() | arrays((classes,), "positive"))
    reduction = draw(st.sampled_from(REDUCTIONS))
    if reduction == "mean" and (target == ignore_index).all():
        reduction = "sum"  # the all-ignored mean is 0/0 (nan); tested on its own below
    e = draw(st.sampled_from([0.0, 0.1, 0.35])) if smoothing else 0.0
    return scores, target, weight, ignore_index, e, reduction


def _optional(weight):
    return None if weight is None else f64(weight)


@given(problem=class_problems())
def test_cross_entropy_matches_formula(problem):
    x, target, weight, ignore_index, e, reduction = problem
    loss = cross_entropy(f64(x), labels(target), _optional(weight), ignore_index, reduction, e)
    expected = class_loss_reference(x, target, weight, ignore_index, e, reduction, from_logits=True)
    assert loss.shape == np.shape(expected)
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-10, atol=1e-12)


@given(problem=class_problems(smoothing=False))
def test_nll_loss_matches_formula(problem):
    x, target, weight, ignore_index, _, reduction = problem
    loss = nll_loss(f64(x), labels(target), _optional(weight), ignore_index, reduction)
    expected = class_loss_reference(x, target, weight, ignore_index, 0.0, reduction, from_logits=False)
    assert loss.shape == np.shape(expected)
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-12, atol=1e-12)


@settings(max_examples=10)
@given(problem=class_problems())
def test_cross_entropy_gradients(problem):
    x, target, weight, ignore_index, e, reduction = problem
    t, w = labels(target), _optional(weight)
    check_gradients(
        lambda s: cross_entropy(s, t, w, ignore_index, reduction, e), [f64(x, requires_grad=True)]
    )


@settings(max_examples=8)
@given(problem=class_problems(smoothing=False))
def test_nll_loss_gradients(problem):
    x, target, weight, ignore_index, _, reduction = problem
    t, w = labels(target), _optional(weight)
    check_gradients(lambda s: nll_loss(s, t, w, ignore_index, reduction), [f64(x, requires_grad=True)])


def test_cross_entropy_gradient_is_softmax_minus_one_hot():
    x = f64([[1.0, 2.0, 0.5], [-1.0, 0.0, 3.0]], requires_grad=True)
    cross_entropy(x, labels([1, 2]), reduction="sum").backward()
    p = np.exp(x.data) / np.exp(x.data).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(x.grad.numpy(), p - np.eye(3)[[1, 2]], rtol=1e-12)


def test_nll_loss_ignores_minus_infinity_at_other_classes():
    log_p = f64([[0.0, -np.inf, -np.inf], [-np.inf, math.log(0.25), math.log(0.75)]], requires_grad=True)
    loss = nll_loss(log_p, labels([0, 2]))
    np.testing.assert_allclose(loss.item(), -math.log(0.75) / 2)
    loss.backward()
    np.testing.assert_array_equal(log_p.grad.numpy(), [[-0.5, 0, 0], [0, 0, -0.5]])


def test_cross_entropy_with_every_label_ignored_has_nan_mean_and_zero_sum():
    x, t = f64(np.ones((2, 3))), labels([-100, -100])
    assert cross_entropy(x, t, reduction="sum").item() == 0.0
    with np.errstate(invalid="ignore"):
        assert math.isnan(cross_entropy(x, t).item())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_losses_keep_the_input_dtype(dtype):
    def tensor(values, requires_grad=True):
        return minigen.tensor(np.asarray(values, dtype=dtype), requires_grad=requires_grad)

    x = tensor([[0.2, 0.7], [0.9, 0.4]])
    y = tensor([[1.0, 0.0], [0.5, 0.5]], requires_grad=False)
    results = [
        mse_loss(x, y),
        binary_cross_entropy(x, y, weight=tensor([1.0, 2.0], requires_grad=False)),
        binary_cross_entropy_with_logits(x, y, pos_weight=tensor([1.0, 2.0], requires_grad=False)),
        cross_entropy(x, labels([1, 0]), weight=tensor([1.0, 2.0], requires_grad=False), label_smoothing=0.1),
        nll_loss(x, labels([1, -100])),
    ]
    for loss in results:
        (g,) = minigen.grad(loss, x)
        assert loss.dtype == dtype and g.dtype == dtype


def _on(device, values, requires_grad=False):
    array = np.asarray(values)
    return minigen.tensor(array, device=device, requires_grad=requires_grad and array.dtype.kind == "f")


DEVICE_CASES = {
    "mse_loss": lambda x, p, k, w: mse_loss(x, p),
    "binary_cross_entropy": lambda x, p, k, w: binary_cross_entropy(minigen.sigmoid(x), p, w),
    "with_logits": lambda x, p, k, w: binary_cross_entropy_with_logits(x, p, w, "sum", pos_weight=w),
    "nll_loss": lambda x, p, k, w: nll_loss(minigen.log_softmax(x, 1), k, w, ignore_index=2),
    "cross_entropy": lambda x, p, k, w: cross_entropy(x, k, w, reduction="none", label_smoothing=0.2),
}


@pytest.mark.parametrize("name", sorted(DEVICE_CASES))
def test_losses_give_the_cpu_values_and_gradients_on_every_device(device, name):
    rng = np.random.default_rng(0)
    x, p, w = rng.normal(size=(3, 4)) * 5, rng.random((3, 4)), 0.5 + rng.random(4)
    k = np.array([1, 2, 3])  # 2 is ignored where ignore_index=2

    def run(on):
        logits = _on(on, x, requires_grad=True)
        loss = DEVICE_CASES[name](logits, _on(on, p), _on(on, k), _on(on, w))
        (g,) = minigen.grad(loss.sum(), logits)
        assert loss.device == g.device == on
        return loss.detach().numpy(), g.numpy()

    for here, cpu in zip(run(device), run("cpu")):
        np.testing.assert_allclose(here, cpu, rtol=1e-12, atol=1e-12)


# --- errors ---------------------------------------------------------------------------------------

CALLS = {
    "mse_loss": lambda r: mse_loss(f64([0.5]), f64([0.5]), reduction=r),
    "binary_cross_entropy": lambda r: binary_cross_entropy(f64([0.5]), f64([0.5]), reduction=r),
    "with_logits": lambda r: binary_cross_entropy_with_logits(f64([0.5]), f64([0.5]), reduction=r),
    "nll_loss": lambda r: nll_loss(f64([[0.5, 0.1]]), labels([0]), reduction=r),
    "cross_entropy": lambda r: cross_entropy(f64([[0.5, 0.1]]), labels([0]), reduction=r),
}


@pytest.mark.parametrize("name", sorted(CALLS))
@pytest.mark.parametrize("reduction", ["avg", "elementwise_mean", None])
def test_unknown_reduction_raises(name, reduction):
    with pytest.raises(ValueError, match=r"reduction must be one of 'none', 'mean', 'sum'; got"):
        CALLS[name](reduction)


@pytest.mark.parametrize("loss", [nll_loss, cross_entropy])
def test_float_labels_raise(loss):
    with pytest.raises(TypeError, match=r"target must be a tensor of integer class labels; got float64"):
        loss(f64([[0.5, 0.1]]), f64([1.0]))


@pytest.mark.parametrize("loss", [nll_loss, cross_entropy])
@pytest.mark.parametrize("label", [3, -1, 7])
def test_label_out_of_range_raises(loss, label):
    message = (
        rf"target {label} is out of bounds for 3 classes \(labels must be in \[0, 2\], or ignore_index=-100\)"
    )
    with pytest.raises(IndexError, match=message):
        loss(f64(np.zeros((2, 3))), labels([0, label]))


@pytest.mark.parametrize("loss", [nll_loss, cross_entropy])
def test_label_shape_mismatch_raises(loss):
    message = (
        r"input of shape \(2, 3, 4\) \(classes along dim 1\) needs target of shape \(2, 4\); got \(2, 3\)"
    )
    with pytest.raises(ValueError, match=message):
        loss(f64(np.zeros((2, 3, 4))), labels(np.zeros((2, 3))))


@pytest.mark.parametrize("loss", [nll_loss, cross_entropy])
def test_class_weight_of_wrong_shape_raises(loss):
    with pytest.raises(ValueError, match=r"weight must have shape \(3,\), one per class; got \(2,\)"):
        loss(f64(np.zeros((2, 3))), labels([0, 1]), weight=f64([1.0, 2.0]))


@pytest.mark.parametrize("loss", [nll_loss, cross_entropy])
def test_zero_dimensional_input_raises(loss):
    with pytest.raises(
        TypeError, match=r"input must be a floating tensor \(N, C, \.\.\.\) or \(C,\); got float64 \(\)"
    ):
        loss(f64(1.0), labels(0))


@pytest.mark.parametrize("loss", [nll_loss, cross_entropy])
def test_non_integer_ignore_index_raises(loss):
    with pytest.raises(TypeError, match=r"ignore_index must be an int; got 0\.5"):
        loss(f64(np.zeros((2, 3))), labels([0, 1]), ignore_index=0.5)


@pytest.mark.parametrize("e", [-0.1, 1.5])
def test_label_smoothing_out_of_range_raises(e):
    with pytest.raises(ValueError, match=rf"label_smoothing must be between 0\.0 and 1\.0; got {e}"):
        cross_entropy(f64(np.zeros((2, 3))), labels([0, 1]), label_smoothing=e)
