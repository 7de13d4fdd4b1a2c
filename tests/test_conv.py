"""2-D convolution and transposed convolution: values against direct loops, gradients to
second order, the adjoint identity that ties the two together, shapes, dtypes and errors.

The references below are written as plainly as possible (one Python loop per index of the
formula) so that they share nothing with the im2col implementation they check.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigen
from minigen.gradcheck import gradcheck, gradgradcheck
from minigen.ops import conv as conv_module
from minigen.ops.conv import Conv2d, Conv2dWeightGrad, ConvTranspose2d, conv2d, conv_transpose2d
from minigen.testing import arrays, conv_configs


@pytest.fixture(autouse=True, params=["one block", "one row per block"])
def column_blocks(request, monkeypatch):
    """Every test runs twice: with the columns built whole (the small shapes here fit in one
    block) and a block per output row (input row for the transposed convolution), so that the
    blocks' seams (window offsets, partial weight gradients, overlapping stamps) are checked."""
    if request.param == "one row per block":
        monkeypatch.setattr(conv_module, "COLUMN_BLOCK_BYTES", 1)


def leaf(values, dtype=np.float64, device="cpu"):
    return minigen.tensor(np.asarray(values, dtype=dtype), requires_grad=True, device=device)


def conv2d_direct(x, w, b, stride, padding, dilation):
    """y[n, o, i, j] = b[o] + sum_{c, ki, kj} w[o, c, ki, kj] x[n, c, i sh + ki dh - ph, j sw + kj dw - pw]"""
    batch, channels, height, width = x.shape
    out_channels, _, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    oh = (height + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (width + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    y = np.zeros((batch, out_channels, oh, ow))
    for n in range(batch):
        for o in range(out_channels):
            for i in range(oh):
                for j in range(ow):
                    total = 0.0 if b is None else b[o]
                    for c in range(channels):
                        for ki in range(kh):
                            for kj in range(kw):
                                row, col = i * sh + ki * dh - ph, j * sw + kj * dw - pw
                                if 0 <= row < height and 0 <= col < width:
                                    total += w[o, c, ki, kj] * x[n, c, row, col]
                    y[n, o, i, j] = total
    return y


def conv_transpose2d_direct(x, w, b, stride, padding, output_padding, dilation):
    """Every input pixel stamps its weighted kernel on the output:
    y[n, o, i sh + ki dh - ph, j sw + kj dw - pw] += x[n, c, i, j] w[c, o, ki, kj]."""
    batch, channels, height, width = x.shape
    _, out_channels, kh, kw = w.shape
    (sh, sw), (ph, pw), (oph, opw), (dh, dw) = stride, padding, output_padding, dilation
    oh = (height - 1) * sh - 2 * ph + dh * (kh - 1) + oph + 1
    ow = (width - 1) * sw - 2 * pw + dw * (kw - 1) + opw + 1
    y = np.zeros((batch, out_channels, oh, ow))
    for n in range(batch):
        for c in range(channels):
            for i in range(height):
                for j in range(width):
                    for o in range(out_channels):
                        for ki in range(kh):
                            for kj in range(kw):
                                row, col = i * sh + ki * dh - ph, j * sw + kj * dw - pw
                                if 0 <= row < oh and 0 <= col < ow:
                                    y[n, o, row, col] += x[n, c, i, j] * w[c, o, ki, kj]
    if b is not None:
        y += b.reshape(1, -1, 1, 1)
    return y


def weight_grad_direct(x, g, kernel, stride, padding, dilation):
    """gw[o, c, ki, kj] = sum_{n, i, j} g[n, o, i, j] x[n, c, i sh + ki dh - ph, j sw + kj dw - pw]."""
    batch, channels, height, width = x.shape
    _, out_channels, oh, ow = g.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    gw = np.zeros((out_channels, channels, kh, kw))
    for o in range(out_channels):
        for c in range(channels):
            for ki in range(kh):
                for kj in range(kw):
                    for n in range(batch):
                        for i in range(oh):
                            for j in range(ow):
                                row, col = i * sh + ki * dh - ph, j * sw + kj * dw - pw
                                if 0 <= row < height and 0 <= col < width:
                                    gw[o, c, ki, kj] += g[n, o, i, j] * x[n, c, row, col]
    return gw


def conv_arguments(config):
    return {key: config[key] for key in ("stride", "padding", "dilation")}


def transposed_arguments(config):
    return {key: config[key] for key in ("stride", "padding", "output_padding", "dilation")}


@st.composite
def conv_operands(draw, transposed=False, **limits):
    """(config, x, w, b) as float64 NumPy arrays for a drawn (transposed) convolution."""
    config = draw(conv_configs(transposed=transposed, **limits))
    c_in, c_out = config["in_channels"], config["out_channels"]
    weight_shape = (c_in, c_out) if transposed else (c_out, c_in)
    x = draw(arrays((config["batch"], c_in, *config["input_size"])))
    w = draw(arrays(weight_shape + config["kernel_size"]))
    b = draw(st.none() | arrays((c_out,)))
    return config, x, w, b


# --- values ------------------------------------------------------------------------------------


def test_conv2d_of_a_known_3x3_image():
    """x = 0..8 as a 3x3 image and a 2x2 kernel [[1, 2], [3, 4]]: y[0, 0] = 0 + 2 + 9 + 16 = 27."""
    x = minigen.tensor(np.arange(9.0).reshape(1, 1, 3, 3))
    w = minigen.tensor(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]))
    np.testing.assert_array_equal(conv2d(x, w).numpy(), [[[[27.0, 37.0], [57.0, 67.0]]]])
    np.testing.assert_array_equal(
        conv2d(x, w, minigen.tensor(np.array([0.5]))).numpy()[0, 0, 0], [27.5, 37.5]
    )
    # padding 1, stride 2: the windows at the four corners of the zero-padded 5x5 image
    np.testing.assert_array_equal(conv2d(x, w, stride=2, padding=1).numpy(), [[[[0.0, 11.0], [30.0, 67.0]]]])


def test_conv2d_input_gradient_counts_the_windows_covering_each_pixel():
    """With a kernel of ones, d sum(y) / dx[h, w] is the number of windows that contain (h, w)."""
    x = leaf(np.zeros((1, 1, 3, 3)))
    conv2d(x, minigen.tensor(np.ones((1, 1, 2, 2)))).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy()[0, 0], [[1, 2, 1], [2, 4, 2], [1, 2, 1]])


def test_conv_transpose2d_of_known_values_stamps_the_kernel():
    """Stride 2 puts a 2x2 copy of the kernel, scaled by each input pixel, side by side."""
    x = minigen.tensor(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]))
    w = minigen.tensor(np.array([[[[1.0, 10.0], [100.0, 1000.0]]]]))
    expected = [[1, 10, 2, 20], [100, 1000, 200, 2000], [3, 30, 4, 40], [300, 3000, 400, 4000]]
    np.testing.assert_array_equal(conv_transpose2d(x, w, stride=2).numpy()[0, 0], expected)
    # stride 1: the stamps overlap and add up
    overlapped = [[1, 12, 20], [103, 1234, 2040], [300, 3400, 4000]]
    np.testing.assert_array_equal(conv_transpose2d(x, w).numpy()[0, 0], overlapped)


@given(operands=conv_operands())
def test_conv2d_matches_direct_loop(operands):
    config, x, w, b = operands
    y = conv2d(
        minigen.tensor(x),
        minigen.tensor(w),
        None if b is None else minigen.tensor(b),
        **conv_arguments(config),
    )
    expected = conv2d_direct(x, w, b, config["stride"], config["padding"], config["dilation"])
    assert y.shape == expected.shape
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-12, atol=1e-12)


@given(operands=conv_operands(transposed=True))
def test_conv_transpose2d_matches_direct_loop(operands):
    config, x, w, b = operands
    bias = None if b is None else minigen.tensor(b)
    y = conv_transpose2d(minigen.tensor(x), minigen.tensor(w), bias, **transposed_arguments(config))
    expected = conv_transpose2d_direct(
        x, w, b, config["stride"], config["padding"], config["output_padding"], config["dilation"]
    )
    assert y.shape == expected.shape
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-12, atol=1e-12)


@given(operands=conv_operands(), data=st.data())
def test_conv2d_weight_grad_matches_direct_loop(operands, data):
    config, x, w, _ = operands
    out = conv2d(minigen.tensor(x), minigen.tensor(w), **conv_arguments(config)).shape
    g = data.draw(arrays(out))
    kernel = config["kernel_size"]
    fn = Conv2dWeightGrad(kernel, config["stride"], config["padding"], config["dilation"])
    expected = weight_grad_direct(x, g, kernel, config["stride"], config["padding"], config["dilation"])
    np.testing.assert_allclose(
        fn(minigen.tensor(x), minigen.tensor(g)).numpy(), expected, rtol=1e-12, atol=1e-12
    )


# --- the adjoint identity ----------------------------------------------------------------------


def needed_output_padding(config):
    """The output_padding that makes conv_transpose2d return conv2d's input size exactly."""
    pairs = zip(
        config["input_size"], config["kernel_size"], config["stride"], config["padding"], config["dilation"]
    )
    padding = []
    for size, k, s, p, d in pairs:
        out = (size + 2 * p - d * (k - 1) - 1) // s + 1
        padding.append(size - ((out - 1) * s - 2 * p + d * (k - 1) + 1))
    return tuple(padding)


@given(operands=conv_operands(), data=st.data())
def test_conv_transpose2d_is_the_adjoint_of_conv2d(operands, data):
    """<conv2d(x, w), z> = <x, conv_transpose2d(z, w)> for every x and z of matching shapes."""
    config, x, w, _ = operands
    x_t, w_t = minigen.tensor(x), minigen.tensor(w)
    y = conv2d(x_t, w_t, **conv_arguments(config))
    z = data.draw(arrays(y.shape))
    back = conv_transpose2d(
        minigen.tensor(z), w_t, output_padding=needed_output_padding(config), **conv_arguments(config)
    )
    assert back.shape == x.shape
    np.testing.assert_allclose(np.sum(y.numpy() * z), np.sum(x * back.numpy()), rtol=1e-10, atol=1e-10)


# --- gradients -----------------------------------------------------------------------------------

# Finite differences cost two evaluations per input entry (second order: of the VJP), so small.
SMALL = {"max_batch": 2, "max_channels": 2, "max_size": 5}


@given(operands=conv_operands(**SMALL))
def test_conv2d_gradients_match_finite_differences(operands):
    config, x, w, b = operands
    inputs = [leaf(x), leaf(w)] + ([] if b is None else [leaf(b)])
    assert gradcheck(lambda *t: conv2d(*t, **conv_arguments(config)), inputs)


@given(operands=conv_operands(**SMALL))
def test_conv2d_second_derivatives_match_finite_differences(operands):
    config, x, w, b = operands
    inputs = [leaf(x), leaf(w)] + ([] if b is None else [leaf(b)])
    assert gradgradcheck(lambda *t: conv2d(*t, **conv_arguments(config)), inputs)


@given(operands=conv_operands(transposed=True, **SMALL))
def test_conv_transpose2d_gradients_match_finite_differences(operands):
    config, x, w, b = operands
    inputs = [leaf(x), leaf(w)] + ([] if b is None else [leaf(b)])
    assert gradcheck(lambda *t: conv_transpose2d(*t, **transposed_arguments(config)), inputs)


@given(operands=conv_operands(transposed=True, **SMALL))
def test_conv_transpose2d_second_derivatives_match_finite_differences(operands):
    config, x, w, b = operands
    inputs = [leaf(x), leaf(w)] + ([] if b is None else [leaf(b)])
    assert gradgradcheck(lambda *t: conv_transpose2d(*t, **transposed_arguments(config)), inputs)


@given(operands=conv_operands(**SMALL), data=st.data())
def test_conv2d_weight_grad_first_and_second_derivatives(operands, data):
    config, x, w, _ = operands
    out = conv2d(minigen.tensor(x), minigen.tensor(w), **conv_arguments(config)).shape
    g = data.draw(arrays(out))
    settings = config["kernel_size"], config["stride"], config["padding"], config["dilation"]

    def fn(x, g):  # a Function node is used once: a fresh one per call
        return Conv2dWeightGrad(*settings)(x, g)

    assert gradcheck(fn, [leaf(x), leaf(g)])
    assert gradgradcheck(fn, [leaf(x), leaf(g)])


def test_conv2d_backward_records_transposed_convolution_and_weight_grad():
    """conv_transpose2d is conv2d's input gradient and vice versa (the graph of the gradients)."""
    x, w = leaf(np.ones((1, 2, 4, 4))), leaf(np.ones((3, 2, 3, 3)))
    gx, gw = minigen.grad(conv2d(x, w, padding=1).sum(), [x, w], create_graph=True)
    assert isinstance(gx.creator, ConvTranspose2d) and isinstance(gw.creator, Conv2dWeightGrad)
    y, v = leaf(np.ones((1, 3, 4, 4))), leaf(np.ones((3, 2, 3, 3)))
    gy, gv = minigen.grad(conv_transpose2d(y, v, padding=1).sum(), [y, v], create_graph=True)
    assert isinstance(gy.creator, Conv2d) and isinstance(gv.creator, Conv2dWeightGrad)
    assert gv.shape == v.shape == (3, 2, 3, 3)


# --- shapes, dtypes, devices --------------------------------------------------------------------


@pytest.mark.parametrize(
    "size, kernel, stride, padding, dilation, expected",
    [(28, 4, 2, 1, 1, 14), (7, 3, 1, 1, 1, 7), (5, 3, 2, 0, 1, 2), (8, 3, 3, 1, 2, 2), (4, 5, 1, 2, 1, 4)],
)
def test_conv2d_output_size_formula(size, kernel, stride, padding, dilation, expected):
    """floor((H + 2 padding - dilation (k - 1) - 1) / stride) + 1."""
    y = conv2d(
        minigen.zeros(2, 3, size, size + 1),
        minigen.zeros(5, 3, kernel, kernel),
        None,
        stride,
        padding,
        dilation,
    )
    assert y.shape == (2, 5, expected, (size + 1 + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1)


@pytest.mark.parametrize(
    "size, kernel, stride, padding, output_padding, dilation, expected",
    [(14, 4, 2, 1, 0, 1, 28), (7, 4, 2, 1, 0, 1, 14), (2, 3, 2, 0, 1, 1, 6), (3, 3, 1, 1, 1, 2, 6)],
)
def test_conv_transpose2d_output_size_formula(
    size, kernel, stride, padding, output_padding, dilation, expected
):
    """(H - 1) stride - 2 padding + dilation (k - 1) + output_padding + 1."""
    x, w = minigen.zeros(2, 3, size, size), minigen.zeros(3, 4, kernel, kernel)
    y = conv_transpose2d(x, w, None, stride, padding, output_padding, 1, dilation)
    assert y.shape == (2, 4, expected, expected)


def test_conv_transpose2d_undoes_a_strided_conv2d_size():
    """DCGAN's pair: a 4x4 stride-2 conv halves 28 -> 14, the transposed one doubles it back."""
    w = minigen.zeros(8, 1, 4, 4)
    down = conv2d(minigen.zeros(1, 1, 28, 28), w, stride=2, padding=1)
    assert down.shape == (1, 8, 14, 14)
    assert conv_transpose2d(down, w, stride=2, padding=1).shape == (1, 1, 28, 28)


def test_a_convolution_holds_one_block_of_columns_at_a_time(monkeypatch):
    """The benchmark's Conv2d layer (29 MB of columns whole): forward, input gradient and weight
    gradient each build and add back their columns in blocks of at most COLUMN_BLOCK_BYTES (or
    one row, if a row is larger), and the blocks of one call cover every window once."""
    built, added = [], []
    build, add_back = conv_module._columns, conv_module._add_columns

    def spy_build(x_pad, kernel, rows, *rest):
        cols = build(x_pad, kernel, rows, *rest)
        built.append((rows, cols.nbytes))
        return cols

    def spy_add(x_pad, cols, *rest):
        added.append(cols.nbytes)
        return add_back(x_pad, cols, *rest)

    monkeypatch.setattr(conv_module, "_columns", spy_build)
    monkeypatch.setattr(conv_module, "_add_columns", spy_add)
    rng = np.random.default_rng(0)
    x = leaf(rng.standard_normal((128, 32, 14, 14)), dtype=np.float32)
    w = leaf(rng.standard_normal((64, 32, 3, 3)), dtype=np.float32)
    conv2d(x, w, padding=1).backward(minigen.ones(128, 64, 14, 14))
    row = 32 * 9 * 14 * 128 * 4  # the columns of one output row
    limit = max(conv_module.COLUMN_BLOCK_BYTES, row)
    assert max(size for _, size in built) <= limit and max(added) <= limit
    # forward and weight gradient each build all 14 rows once; the input gradient adds them back
    assert sorted(r for (first, stop), _ in built for r in range(first, stop)) == sorted(list(range(14)) * 2)
    assert sum(added) == 14 * row
    assert len(added) > 1


def test_float32_stays_float32():
    x = minigen.randn(2, 3, 6, 6, requires_grad=True)
    w = minigen.randn(4, 3, 3, 3, requires_grad=True)
    b = minigen.randn(4, requires_grad=True)
    y = conv2d(x, w, b, stride=2, padding=1)
    z = conv_transpose2d(y, w, b[:3], stride=2, padding=1, output_padding=1)
    assert y.dtype == z.dtype == np.float32
    z.sum().backward()
    assert x.grad.dtype == w.grad.dtype == b.grad.dtype == np.float32


def test_gradients_agree_on_every_device(device):
    rng = np.random.default_rng(0)
    x_values, w_values = rng.standard_normal((2, 3, 5, 5)), rng.standard_normal((2, 3, 3, 3))
    results = []
    for where in ("cpu", device):
        x, w = leaf(x_values, device=where), leaf(w_values, device=where)
        # conv_transpose2d(conv2d(x, w), w) = J^T J x, with J the conv2d of x
        y = conv_transpose2d(conv2d(x, w, padding=1, stride=2), w, stride=2, padding=1)
        gx, gw = minigen.grad((y * y).sum(), [x, w])
        results.append([t.detach().cpu().numpy() for t in (y, gx, gw)])
    for on_cpu, on_device in zip(*results):
        np.testing.assert_allclose(on_device, on_cpu, rtol=1e-10, atol=1e-10)


# --- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [conv2d, conv_transpose2d])
@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"groups": 2}, "only groups=1 is supported; got groups=2"),
        ({"stride": 0}, r"stride and dilation must be positive; got stride=\(0, 0\)"),
        ({"dilation": (1, -1)}, r"stride and dilation must be positive.*dilation=\(1, -1\)"),
        ({"padding": (-1, 0)}, r"padding must be non-negative; got \(-1, 0\)"),
        ({"stride": (1, 2, 3)}, r"stride must be an int or a pair of ints; got \(1, 2, 3\)"),
        ({"padding": 1.5}, "padding must be an int or a pair of ints; got 1.5"),
    ],
)
def test_bad_settings_raise(fn, kwargs, match):
    with pytest.raises(ValueError, match=match):
        fn(minigen.zeros(1, 2, 5, 5), minigen.zeros(2, 2, 3, 3), **kwargs)


def test_wrong_dimensions_raise():
    with pytest.raises(ValueError, match=r"conv2d expects a 4-D input \(N, C, H, W\); got shape \(2, 5, 5\)"):
        conv2d(minigen.zeros(2, 5, 5), minigen.zeros(1, 2, 3, 3))
    with pytest.raises(
        ValueError, match=r"conv2d expects a 4-D weight \(out_c, in_c, kh, kw\); got shape \(2, 3, 3\)"
    ):
        conv2d(minigen.zeros(1, 2, 5, 5), minigen.zeros(2, 3, 3))
    with pytest.raises(ValueError, match=r"conv_transpose2d expects a 4-D input"):
        conv_transpose2d(minigen.zeros(5, 5), minigen.zeros(2, 2, 3, 3))
    with pytest.raises(ValueError, match=r"conv_transpose2d expects a 4-D weight \(in_c, out_c, kh, kw\)"):
        conv_transpose2d(minigen.zeros(1, 2, 5, 5), minigen.zeros(2, 2, 3))


def test_channel_mismatch_names_both_shapes():
    with pytest.raises(
        ValueError, match=r"input of shape \(1, 2, 5, 5\) has 2 channels.*\(4, 3, 3, 3\).*expects 3"
    ):
        conv2d(minigen.zeros(1, 2, 5, 5), minigen.zeros(4, 3, 3, 3))
    with pytest.raises(
        ValueError, match=r"input of shape \(1, 2, 5, 5\) has 2 channels.*\(3, 4, 3, 3\).*expects 3"
    ):
        conv_transpose2d(minigen.zeros(1, 2, 5, 5), minigen.zeros(3, 4, 3, 3))


def test_bias_of_the_wrong_shape_raises():
    with pytest.raises(ValueError, match=r"bias must have shape \(4,\).*got \(3,\)"):
        conv2d(minigen.zeros(1, 2, 5, 5), minigen.zeros(4, 2, 3, 3), minigen.zeros(3))
    with pytest.raises(ValueError, match=r"bias must have shape \(4,\).*got \(2,\)"):
        conv_transpose2d(minigen.zeros(1, 2, 5, 5), minigen.zeros(2, 4, 3, 3), minigen.zeros(2))


def test_output_smaller_than_1x1_raises():
    with pytest.raises(ValueError, match="conv2d: output would be 0x1 .* at least 1x1"):
        conv2d(minigen.zeros(1, 1, 2, 3), minigen.zeros(1, 1, 3, 3))
    with pytest.raises(ValueError, match="conv2d: output would be 1x0"):
        conv2d(minigen.zeros(1, 1, 5, 6), minigen.zeros(1, 1, 3, 3), dilation=(2, 3))
    with pytest.raises(ValueError, match="conv_transpose2d: output would be 0x0"):
        conv_transpose2d(minigen.zeros(1, 1, 1, 1), minigen.zeros(1, 1, 2, 2), padding=1)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"stride": 2, "output_padding": 2},
        {"output_padding": 1},
        {"stride": 1, "dilation": 2, "output_padding": 2},
    ],
)
def test_output_padding_not_below_stride_or_dilation_raises(kwargs):
    with pytest.raises(
        ValueError, match="output_padding must be non-negative and smaller than either stride or dilation"
    ):
        conv_transpose2d(minigen.zeros(1, 1, 3, 3), minigen.zeros(1, 1, 3, 3), **kwargs)


def test_output_padding_below_dilation_is_allowed():
    """PyTorch's rule is max(stride, dilation): stride 1 with dilation 2 allows output_padding 1."""
    y = conv_transpose2d(minigen.zeros(1, 1, 3, 3), minigen.zeros(1, 1, 2, 2), dilation=2, output_padding=1)
    assert y.shape == (1, 1, 6, 6)
