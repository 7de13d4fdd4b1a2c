"""Layers: each module's forward against a formula written out here, its parameters' shapes,
layouts and default initialisations (PyTorch's), and its train/eval behaviour.

The convolution and pooling arithmetic itself is checked against direct loops in
test_conv.py and test_pooling.py; here the layers are checked to call it with their settings.
"""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigen
import minigen.functional as F
import minigen.nn as nn
from minigen.gradcheck import gradcheck, gradgradcheck
from minigen.nn import init


def host(t):
    return minigen.backend.to_host(t.data)


# --- Linear -----------------------------------------------------------------------------------


@given(batch=st.lists(st.integers(1, 3), max_size=2), n_in=st.integers(1, 5), n_out=st.integers(1, 4))
def test_linear_forward_is_x_wt_plus_b(batch, n_in, n_out):
    layer = nn.Linear(n_in, n_out).double()
    x = np.random.default_rng(0).standard_normal((*batch, n_in))
    y = layer(minigen.tensor(x))
    expected = x @ host(layer.weight).T + host(layer.bias)
    np.testing.assert_allclose(host(y), expected, rtol=1e-12, atol=1e-12)
    assert y.shape == (*batch, n_out)


def test_linear_layout_and_default_init_bounds():
    layer = nn.Linear(50, 40)
    assert layer.weight.shape == (40, 50) and layer.bias.shape == (40,)
    bound = 1 / math.sqrt(50)  # kaiming_uniform_(a=sqrt(5)) works out to 1/sqrt(fan_in)
    for p in (layer.weight, layer.bias):
        assert p.dtype == minigen.float32 and p.requires_grad
        assert np.abs(host(p)).max() <= bound
    assert np.abs(host(layer.weight)).max() > 0.9 * bound  # spread over the whole interval


def test_linear_gradients_first_and_second_order():
    layer = nn.Linear(3, 2).double()
    x = minigen.randn(4, 3, dtype="float64", requires_grad=True)
    assert gradcheck(lambda x, w, b: F.linear(x, w, b), [x, layer.weight, layer.bias])
    assert gradgradcheck(lambda x, w, b: F.linear(x, w, b).tanh(), [x, layer.weight, layer.bias])


def test_linear_without_bias_and_shape_errors():
    layer = nn.Linear(3, 2, bias=False)
    assert layer.bias is None and [n for n, _ in layer.named_parameters()] == ["weight"]
    assert repr(layer) == "Linear(in_features=3, out_features=2, bias=False)"
    with pytest.raises(ValueError, match=r"input of shape \(4, 5\) does not end in in_features=3"):
        layer(minigen.zeros(4, 5))
    with pytest.raises(ValueError, match="weight must be 2-D"):
        F.linear(minigen.zeros(2, 3), minigen.zeros(3))


def test_layers_take_device_and_dtype():
    layer = nn.Linear(2, 3, dtype="float64", device="cpu")
    assert layer.weight.dtype == minigen.float64 and layer.bias.device == "cpu"


# --- convolution and pooling layers ------------------------------------------------------------


def test_conv2d_layer_layout_init_and_forward():
    layer = nn.Conv2d(3, 8, kernel_size=(3, 5), stride=2, padding=(1, 2), dilation=1)
    assert layer.weight.shape == (8, 3, 3, 5) and layer.bias.shape == (8,)
    bound = 1 / math.sqrt(3 * 3 * 5)
    assert np.abs(host(layer.weight)).max() <= bound and np.abs(host(layer.bias)).max() <= bound
    x = minigen.randn(2, 3, 9, 10)
    expected = F.conv2d(x, layer.weight, layer.bias, stride=2, padding=(1, 2))
    np.testing.assert_array_equal(host(layer(x)), host(expected))
    assert layer(x).shape == (2, 8, 5, 5)
    assert repr(layer) == "Conv2d(3, 8, kernel_size=(3, 5), stride=(2, 2), padding=(1, 2))"


def test_conv_transpose2d_layer_layout_init_and_forward():
    layer = nn.ConvTranspose2d(16, 4, 4, stride=2, padding=1, output_padding=1, bias=False)
    assert layer.weight.shape == (16, 4, 4, 4) and layer.bias is None
    # PyTorch's fan_in for the transposed layout is weight.shape[1] * kh * kw = out_channels * 16.
    assert np.abs(host(layer.weight)).max() <= 1 / math.sqrt(4 * 16)
    assert np.abs(host(layer.weight)).max() > 0.9 / math.sqrt(4 * 16)
    x = minigen.randn(2, 16, 3, 3)
    y = layer(x)
    assert y.shape == (2, 4, 7, 7)  # (3 - 1) * 2 - 2 + 4 + 1
    expected = F.conv_transpose2d(x, layer.weight, None, 2, 1, 1)
    np.testing.assert_array_equal(host(y), host(expected))
    assert "output_padding=(1, 1)" in repr(layer) and "bias=False" in repr(layer)


def test_conv_layers_reject_groups():
    with pytest.raises(ValueError, match="only groups=1"):
        nn.Conv2d(4, 4, 3, groups=2)


def test_pool_layers_pass_their_settings():
    x = minigen.randn(2, 3, 7, 7)
    pool = nn.MaxPool2d(3, stride=2, padding=1)
    np.testing.assert_array_equal(host(pool(x)), host(F.max_pool2d(x, 3, 2, 1)))
    assert pool.stride == 3 - 1 and pool(x).shape == (2, 3, 4, 4)
    assert nn.MaxPool2d(2).stride == 2  # the stride defaults to the kernel size
    avg = nn.AvgPool2d(2, padding=1, count_include_pad=False)
    np.testing.assert_array_equal(host(avg(x)), host(F.avg_pool2d(x, 2, None, 1, count_include_pad=False)))
    assert (
        repr(nn.MaxPool2d(2)) == "MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)"
    )


# --- batch norm -------------------------------------------------------------------------------


def test_batchnorm_defaults_and_state_keys():
    bn = nn.BatchNorm2d(3)
    assert list(bn.state_dict()) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    np.testing.assert_array_equal(host(bn.weight), np.ones(3))
    np.testing.assert_array_equal(host(bn.bias), np.zeros(3))
    np.testing.assert_array_equal(host(bn.running_var), np.ones(3))
    assert bn.num_batches_tracked.item() == 0 and bn.num_batches_tracked.dtype == minigen.int64


@pytest.mark.parametrize("momentum", [0.1, 0.5, None])
def test_batchnorm2d_running_statistics_follow_the_momentum_formula(momentum):
    bn = nn.BatchNorm2d(2, momentum=momentum).double()
    rng = np.random.default_rng(1)
    mean, var = np.zeros(2), np.ones(2)
    for step in range(1, 5):
        x = rng.normal(step, step, size=(4, 2, 3, 3))
        y = bn(minigen.tensor(x))
        batch_mean = x.mean(axis=(0, 2, 3))
        biased = x.var(axis=(0, 2, 3))
        unbiased = x.var(axis=(0, 2, 3), ddof=1)
        factor = 1 / step if momentum is None else momentum  # None: the cumulative average
        mean = (1 - factor) * mean + factor * batch_mean
        var = (1 - factor) * var + factor * unbiased
        normalised = (x - batch_mean[:, None, None]) / np.sqrt(biased[:, None, None] + 1e-5)
        np.testing.assert_allclose(host(y), normalised, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(host(bn.running_mean), mean, rtol=1e-12)
        np.testing.assert_allclose(host(bn.running_var), var, rtol=1e-12)
        assert bn.num_batches_tracked.item() == step


def test_batchnorm_eval_uses_running_statistics_and_does_not_update_them():
    bn = nn.BatchNorm1d(3).double()
    bn.running_mean.data[...] = [1.0, 2.0, 3.0]
    bn.running_var.data[...] = [4.0, 1.0, 0.25]
    bn.weight.data[...] = [2.0, 1.0, 1.0]
    bn.bias.data[...] = [0.5, 0.0, -1.0]
    bn.eval()
    x = np.arange(12.0).reshape(4, 3)
    y = host(bn(minigen.tensor(x)))
    expected = (x - [1.0, 2.0, 3.0]) / np.sqrt(np.array([4.0, 1.0, 0.25]) + 1e-5) * [2.0, 1.0, 1.0] + [
        0.5,
        0,
        -1,
    ]
    np.testing.assert_allclose(y, expected, rtol=1e-12)
    np.testing.assert_array_equal(host(bn.running_mean), [1.0, 2.0, 3.0])
    assert bn.num_batches_tracked.item() == 0


def test_batchnorm_without_running_stats_uses_batch_statistics_in_eval():
    bn = nn.BatchNorm1d(2, track_running_stats=False, affine=False).double().eval()
    assert list(bn.state_dict()) == []
    x = np.random.default_rng(2).normal(size=(5, 2, 3))
    y = host(bn(minigen.tensor(x)))
    expected = (x - x.mean(axis=(0, 2), keepdims=True)) / np.sqrt(x.var(axis=(0, 2), keepdims=True) + 1e-5)
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-12)


def test_batchnorm_gradients_through_the_module():
    bn = nn.BatchNorm1d(3).double()
    x = minigen.randn(5, 3, dtype="float64", requires_grad=True)
    assert gradcheck(lambda x, w, b: bn(x) * w + b, [x, bn.weight, bn.bias])


def test_batchnorm_rejects_wrong_ranks():
    with pytest.raises(ValueError, match=r"BatchNorm1d expected 2D or 3D input \(got 4D input\)"):
        nn.BatchNorm1d(3)(minigen.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError, match=r"BatchNorm2d expected 4D input \(got 2D input\)"):
        nn.BatchNorm2d(3)(minigen.zeros(2, 3))


# --- dropout ----------------------------------------------------------------------------------


def test_dropout_drops_with_probability_p_and_rescales():
    x = minigen.ones(200, 500)
    y = host(nn.Dropout(0.3)(x))
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.01  # 100,000 Bernoulli draws: the std is 0.0015
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)


def test_dropout_gradient_uses_the_same_mask():
    x = minigen.randn(4, 6, dtype="float64", requires_grad=True)
    y = F.dropout(x, 0.5, training=True)
    y.sum().backward()
    np.testing.assert_array_equal(host(x.grad), (host(y) != 0) * 2.0)


def test_dropout_in_eval_and_at_the_edges():
    x = minigen.randn(3, 4)
    layer = nn.Dropout(0.5).eval()
    assert layer(x) is x
    assert F.dropout(x, 0.0) is x
    assert not host(F.dropout(x, 1.0)).any()
    assert F.dropout(x, 0.2).dtype == minigen.float32
    for p in (-0.1, 1.5):
        with pytest.raises(ValueError, match="between 0 and 1"):
            nn.Dropout(p)
        with pytest.raises(ValueError, match="between 0 and 1"):
            F.dropout(x, p)


def test_dropout_is_reproducible_under_a_seed():
    x = minigen.ones(10, 10)
    minigen.manual_seed(3)
    first = host(F.dropout(x, 0.5))
    minigen.manual_seed(3)
    np.testing.assert_array_equal(host(F.dropout(x, 0.5)), first)


# --- activations, flatten ----------------------------------------------------------------------

ACTIVATIONS = [
    (nn.ReLU(), lambda x: np.maximum(x, 0)),
    (nn.LeakyReLU(), lambda x: np.where(x > 0, x, 0.01 * x)),
    (nn.LeakyReLU(0.2), lambda x: np.where(x > 0, x, 0.2 * x)),
    (nn.Sigmoid(), lambda x: 1 / (1 + np.exp(-x))),
    (nn.Tanh(), np.tanh),
    (nn.Softplus(), lambda x: np.log1p(np.exp(x))),
    (nn.Softplus(beta=2.0), lambda x: np.log1p(np.exp(2 * x)) / 2),
    (nn.Identity(3, key="ignored"), lambda x: x),
]


@pytest.mark.parametrize(
    ("layer", "formula"), ACTIVATIONS, ids=lambda v: repr(v) if isinstance(v, nn.Module) else ""
)
def test_activation_layers_match_their_formulas(layer, formula):
    x = np.linspace(-3, 3, 13)
    np.testing.assert_allclose(host(layer(minigen.tensor(x))), formula(x), rtol=1e-12, atol=1e-15)


def test_activation_reprs():
    assert repr(nn.LeakyReLU(0.2)) == "LeakyReLU(negative_slope=0.2)"
    assert repr(nn.Sigmoid()) == "Sigmoid()"


def test_flatten_and_unflatten_are_inverse():
    x = minigen.randn(2, 1, 4, 7)
    flat = nn.Flatten()(x)
    assert flat.shape == (2, 28)
    back = nn.Unflatten(1, (1, 4, 7))(flat)
    np.testing.assert_array_equal(host(back), host(x))
    assert nn.Flatten(0, 1)(x).shape == (2, 4, 7)
    assert nn.Unflatten(-1, (4, -1))(flat).shape == (2, 4, 7)
    with pytest.raises(ValueError, match=r"cannot split dim 1 of size 28 into \(5, 5\)"):
        nn.Unflatten(1, (5, 5))(flat)


# --- nn.init ------------------------------------------------------------------------------------


def test_calculate_gain_values():
    assert init.calculate_gain("linear") == 1.0 and init.calculate_gain("sigmoid") == 1.0
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert init.calculate_gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2 / 1.04))
    assert init.calculate_gain("leaky_relu") == pytest.approx(math.sqrt(2 / 1.0001))
    with pytest.raises(ValueError, match="unsupported nonlinearity 'swish'"):
        init.calculate_gain("swish")


def test_fans_of_linear_and_conv_layouts():
    assert init.calculate_fan_in_and_fan_out(minigen.zeros(40, 50)) == (50, 40)
    assert init.calculate_fan_in_and_fan_out(minigen.zeros(8, 3, 3, 5)) == (45, 120)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        init.calculate_fan_in_and_fan_out(minigen.zeros(5))


# A 400x500 tensor has 200,000 draws: the sample std is within 0.5% of the truth (4 std errors).
INITS = [
    (lambda t: init.kaiming_normal_(t, nonlinearity="relu"), "normal", math.sqrt(2 / 500)),
    (lambda t: init.kaiming_normal_(t, mode="fan_out", nonlinearity="relu"), "normal", math.sqrt(2 / 400)),
    (lambda t: init.kaiming_uniform_(t, a=math.sqrt(5)), "uniform", 1 / math.sqrt(500)),
    (lambda t: init.kaiming_uniform_(t, nonlinearity="relu"), "uniform", math.sqrt(6 / 500)),
    (lambda t: init.xavier_normal_(t), "normal", math.sqrt(2 / 900)),
    (lambda t: init.xavier_uniform_(t, gain=2.0), "uniform", 2 * math.sqrt(6 / 900)),
    (lambda t: init.normal_(t, 1.0, 0.02), "normal", 0.02),
    (lambda t: init.uniform_(t, -0.5, 0.5), "uniform", 0.5),
]


@pytest.mark.parametrize(("fill", "kind", "scale"), INITS)
def test_init_distributions_have_the_pytorch_scale(fill, kind, scale):
    """``scale`` is the std for normal fills and the bound for uniform ones."""
    t = minigen.zeros(400, 500, dtype="float64")
    assert fill(t) is t
    values = host(t)
    if kind == "normal":
        assert values.std() == pytest.approx(scale, rel=0.01)
    else:
        assert np.abs(values).max() <= scale  # every uniform fill here is centred on 0
        assert values.std() == pytest.approx(scale / math.sqrt(3), rel=0.01)


def test_init_keeps_dtype_records_no_graph_and_fills_constants():
    w = nn.Linear(3, 4).weight
    init.normal_(w)
    assert w.dtype == minigen.float32 and w.is_leaf and w.requires_grad
    init.zeros_(w)
    assert not host(w).any()
    init.ones_(w)
    assert (host(w) == 1).all()
    init.constant_(w, 0.5)
    assert (host(w) == 0.5).all()


def test_init_is_reproducible_under_a_seed():
    minigen.manual_seed(11)
    first = host(nn.Conv2d(2, 3, 3).weight).copy()
    minigen.manual_seed(11)
    np.testing.assert_array_equal(host(nn.Conv2d(2, 3, 3).weight), first)
