"""Max and average pooling: values against direct loops over PyTorch's window rules (padding,
dilation, ceil_mode, count_include_pad, divisor_override), arg-max routing of the gradient with
its tie rule, gradients to second order, shapes, dtypes and errors.
"""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigen
from minigen.gradcheck import gradcheck, gradgradcheck
from minigen.ops.pooling import MaxPool2d, MaxPool2dBackward, avg_pool2d, max_pool2d
from minigen.testing import arrays, distinct_arrays, pool_configs


def leaf(values, dtype=np.float64, device="cpu"):
    return minigen.tensor(np.asarray(values, dtype=dtype), requires_grad=True, device=device)


# --- the reference ---------------------------------------------------------------------------------


def windows_1d(size, kernel, stride, padding, dilation, ceil_mode):
    """The input positions each window covers along one axis (outside [0, size) is padding).

    Windows start at -padding and step by stride. Without ceil_mode a window must end inside
    the padded input. With it, windows go on while the one before fell short of the end of the
    padded input, provided they start inside the input or the left padding (PyTorch's rule).
    """
    span = dilation * (kernel - 1) + 1
    windows, start = [], -padding
    while True:
        if ceil_mode:
            more = start - stride + span < size + padding and start < size
        else:
            more = start + span <= size + padding
        if not more:
            return windows
        windows.append([start + k * dilation for k in range(kernel)])
        start += stride


def windows_along(axis, size, config):
    """``windows_1d`` along spatial axis ``axis`` (0: height, 1: width) of a pooling config."""
    settings = (config[key][axis] for key in ("kernel", "stride", "padding", "dilation"))
    return windows_1d(size, *settings, config["ceil_mode"])


def pool_direct(x, config, reduce):
    """Pool with loops: ``reduce(values, counted)`` gets the input values inside one window and
    how many of its positions lie inside the padded input."""
    batch, channels, height, width = x.shape
    rows, cols = windows_along(0, height, config), windows_along(1, width, config)
    (ph, pw) = config["padding"]
    y = np.zeros((batch, channels, len(rows), len(cols)))
    for n in range(batch):
        for c in range(channels):
            for i, window_rows in enumerate(rows):
                for j, window_cols in enumerate(cols):
                    values, counted = [], 0
                    for r in window_rows:
                        for q in window_cols:
                            if 0 <= r < height and 0 <= q < width:
                                values.append(x[n, c, r, q])
                            if -ph <= r < height + ph and -pw <= q < width + pw:
                                counted += 1
                    y[n, c, i, j] = reduce(values, counted)
    return y


def max_pool_direct(x, config):
    return pool_direct(x, config, lambda values, counted: max(values, default=-np.inf))


def avg_pool_direct(x, config, count_include_pad, divisor_override):
    def average(values, counted):
        if divisor_override is not None:
            return sum(values) / divisor_override
        return sum(values) / (counted if count_include_pad else len(values))

    return pool_direct(x, config, average)


def max_pool_grad_direct(x, gy, config):
    """Each gy entry goes to the first maximum of its window, scanning rows then columns."""
    batch, channels, height, width = x.shape
    rows, cols = windows_along(0, height, config), windows_along(1, width, config)
    gx = np.zeros(x.shape)
    for n in range(batch):
        for c in range(channels):
            for i, window_rows in enumerate(rows):
                for j, window_cols in enumerate(cols):
                    best = None
                    for r in window_rows:
                        for q in window_cols:
                            inside = 0 <= r < height and 0 <= q < width
                            if inside and (best is None or x[n, c, r, q] > x[n, c, best[0], best[1]]):
                                best = (r, q)
                    if best is not None:
                        gx[n, c, best[0], best[1]] += gy[n, c, i, j]
    return gx


def every_window_sees_the_input(shape, config):
    """False when some window covers only padding (possible with dilation): its max is -inf."""
    for axis, size in enumerate(shape[2:]):
        for window in windows_along(axis, size, config):
            if not any(0 <= position < size for position in window):
                return False
    return True


# --- configurations --------------------------------------------------------------------------------


@given(config=pool_configs(max_size=1))
def test_pool_configs_draw_the_smallest_input_with_a_window_per_axis(config):
    """minigen.testing.pool_configs sizes the input in closed form; with max_size=1 it draws
    the smallest size that has a window, which the reference loop must confirm."""
    for axis, size in enumerate(config["shape"][2:]):
        assert windows_along(axis, size, config)
        assert size == 1 or not windows_along(axis, size - 1, config)


def max_arguments(config):
    keys = {
        "kernel_size": "kernel",
        "stride": "stride_argument",
        "padding": "padding",
        "dilation": "dilation",
    }
    return {name: config[key] for name, key in keys.items()} | {"ceil_mode": config["ceil_mode"]}


def avg_arguments(config):
    keys = {"kernel_size": "kernel", "stride": "stride_argument", "padding": "padding"}
    return {name: config[key] for name, key in keys.items()} | {"ceil_mode": config["ceil_mode"]}


average_options = st.fixed_dictionaries(
    {"count_include_pad": st.booleans(), "divisor_override": st.none() | st.sampled_from([1, 3, -2])}
)

# Finite differences cost two evaluations per input entry (second order: of the VJP), so small.
SMALL = {"max_batch": 2, "max_channels": 2, "max_size": 5}


# --- known values ------------------------------------------------------------------------------------


def test_pooling_a_known_4x4_image():
    x = leaf(np.arange(16.0).reshape(1, 1, 4, 4))
    np.testing.assert_array_equal(max_pool2d(x, 2).detach().numpy()[0, 0], [[5, 7], [13, 15]])
    np.testing.assert_array_equal(avg_pool2d(x, 2).detach().numpy()[0, 0], [[2.5, 4.5], [10.5, 12.5]])
    max_pool2d(x, 2).sum().backward()
    np.testing.assert_array_equal(
        x.grad.numpy()[0, 0], [[0, 0, 0, 0], [0, 1, 0, 1], [0, 0, 0, 0], [0, 1, 0, 1]]
    )


def test_avg_pool2d_divisors_with_and_without_padding():
    """3x3 windows, stride 1, padding 1 on ones: count_include_pad divides the corners by 9
    (4 real entries), the edges by 9 (6); without it every window's mean is 1."""
    x = minigen.ones(1, 1, 3, 3, dtype=np.float64)
    with_pad = avg_pool2d(x, 3, stride=1, padding=1).numpy()[0, 0]
    np.testing.assert_allclose(with_pad, np.array([[4, 6, 4], [6, 9, 6], [4, 6, 4]]) / 9, rtol=1e-15)
    without_pad = avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False).numpy()[0, 0]
    np.testing.assert_array_equal(without_pad, np.ones((3, 3)))
    np.testing.assert_array_equal(
        avg_pool2d(x, 3, stride=1, padding=1, divisor_override=2).numpy()[0, 0, 1, 1], 4.5
    )


def test_avg_pool2d_ceil_mode_does_not_count_what_hangs_past_the_padding():
    """6x6 ones, kernel 3, stride 2, padding 1, ceil_mode: the last window covers input row 5,
    padding row 6 and row 7 past the padding, so its divisor counts 2 rows (PyTorch's values)."""
    y = avg_pool2d(minigen.ones(1, 1, 6, 6, dtype=np.float64), 3, stride=2, padding=1, ceil_mode=True)
    edge = [4 / 9, 6 / 9, 6 / 9, 2 / 6]
    expected = [edge, [6 / 9, 1, 1, 3 / 6], [6 / 9, 1, 1, 3 / 6], [2 / 6, 3 / 6, 3 / 6, 1 / 4]]
    np.testing.assert_allclose(y.numpy()[0, 0], expected, rtol=1e-15)


def test_max_pool2d_gradient_goes_to_the_first_maximum_on_ties():
    x = leaf([[[[1.0, 1.0], [1.0, 0.0]]]])
    max_pool2d(x, 2).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy()[0, 0], [[1, 0], [0, 0]])


def test_max_pool2d_gradients_of_overlapping_windows_add_up():
    """Stride 1: both top windows pick the 5; the bottom windows are all zeros and pick their
    first (top-left) entry."""
    x = leaf([[[[0.0, 5.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]]])
    y = max_pool2d(x, 2, stride=1)
    np.testing.assert_array_equal(y.detach().numpy()[0, 0], [[5, 5], [0, 0]])
    y.backward(minigen.tensor(np.array([[[[1.0, 10.0], [100.0, 1000.0]]]])))
    np.testing.assert_array_equal(x.grad.numpy()[0, 0], [[0, 11, 0], [100, 1000, 0], [0, 0, 0]])


def test_max_pool2d_window_of_only_padding_gives_minus_infinity_and_no_gradient():
    """Kernel 2 with dilation 3 and padding 1 on a 2x2 image: the one window sees rows -1 and 2."""
    x = leaf(np.arange(4.0).reshape(1, 1, 2, 2))
    y = max_pool2d(x, 2, stride=1, padding=1, dilation=3)
    np.testing.assert_array_equal(y.detach().numpy(), [[[[-np.inf]]]])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.zeros((1, 1, 2, 2)))


# --- values against the loops ----------------------------------------------------------------------


@given(config=pool_configs(), data=st.data())
def test_max_pool2d_matches_direct_loop(config, data):
    x = data.draw(arrays(config["shape"]))
    y = max_pool2d(minigen.tensor(x), **max_arguments(config))
    expected = max_pool_direct(x, config)
    assert y.shape == expected.shape
    np.testing.assert_array_equal(y.numpy(), expected)


@given(config=pool_configs(dilation=False), options=average_options, data=st.data())
def test_avg_pool2d_matches_direct_loop(config, options, data):
    x = data.draw(arrays(config["shape"]))
    y = avg_pool2d(minigen.tensor(x), **avg_arguments(config), **options)
    expected = avg_pool_direct(x, config, **options)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-12, atol=1e-12)


@given(config=pool_configs(), data=st.data())
def test_max_pool2d_gradient_goes_to_the_arg_max_only(config, data):
    """Values from {0, 1, 2} make ties common: each window's gradient must reach its first maximum."""
    x_values = data.draw(hnp.arrays(np.float64, config["shape"], elements=st.sampled_from([0.0, 1.0, 2.0])))
    x = leaf(x_values)
    y = max_pool2d(x, **max_arguments(config))
    gy = data.draw(arrays(y.shape))
    y.backward(minigen.tensor(gy))
    np.testing.assert_allclose(
        x.grad.numpy(), max_pool_grad_direct(x_values, gy, config), rtol=1e-12, atol=1e-12
    )


# --- gradients -------------------------------------------------------------------------------------


@given(config=pool_configs(**SMALL), data=st.data())
def test_max_pool2d_first_and_second_derivatives(config, data):
    assume(every_window_sees_the_input(config["shape"], config))
    x = leaf(data.draw(distinct_arrays(config["shape"])))  # no ties: a tie is a kink

    def fn(t):
        return max_pool2d(t, **max_arguments(config))

    assert gradcheck(fn, [x])
    assert gradgradcheck(fn, [x])


@given(config=pool_configs(dilation=False, **SMALL), options=average_options, data=st.data())
def test_avg_pool2d_first_and_second_derivatives(config, options, data):
    x = leaf(data.draw(arrays(config["shape"])))

    def fn(t):
        return avg_pool2d(t, **avg_arguments(config), **options)

    assert gradcheck(fn, [x])
    assert gradgradcheck(fn, [x])


def test_max_pool2d_gradient_of_the_gradient_gathers_at_the_arg_max():
    """gx = scatter(gy) is linear in gy; differentiating <gx, u> by gy gathers u at each arg-max
    (recorded as a MaxPool2d at the saved arg-max, so it can be differentiated by u again)."""
    x = leaf([[[[3.0, 1.0, 0.0, 2.0], [0.0, 2.0, 4.0, 1.0]]]])
    gy = leaf([[[[1.0, 1.0]]]])
    (gx,) = minigen.grad(max_pool2d(x, 2), x, gy, create_graph=True)
    assert isinstance(gx.creator, MaxPool2dBackward)
    np.testing.assert_array_equal(gx.detach().numpy()[0, 0], [[1, 0, 0, 0], [0, 0, 1, 0]])
    u = leaf(np.arange(8.0).reshape(1, 1, 2, 4))
    (ggy,) = minigen.grad((gx * u).sum(), gy, create_graph=True)
    assert isinstance(ggy.creator, MaxPool2d)
    np.testing.assert_array_equal(ggy.detach().numpy(), [[[[0.0, 6.0]]]])


# --- shapes, dtypes, devices --------------------------------------------------------------------


@pytest.mark.parametrize(
    "size, kernel, stride, padding, ceil_mode, expected",
    [
        (5, 2, 2, 0, False, 2),
        (5, 2, 2, 0, True, 3),  # the last window hangs past the input
        (6, 3, 2, 1, True, 4),  # ... and past the right padding
        (5, 2, 2, 1, True, 3),  # a 4th window would start in the right padding: dropped
        (28, 2, None, 0, False, 14),
        (7, 3, 1, 1, False, 7),
    ],
)
def test_pooled_size_follows_pytorch(size, kernel, stride, padding, ceil_mode, expected):
    x = minigen.zeros(1, 2, size, size)
    assert max_pool2d(x, kernel, stride, padding, ceil_mode=ceil_mode).shape == (1, 2, expected, expected)
    assert avg_pool2d(x, kernel, stride, padding, ceil_mode=ceil_mode).shape == (1, 2, expected, expected)


def test_stride_defaults_to_the_kernel_and_pairs_are_height_then_width():
    x = minigen.zeros(2, 3, 8, 9)
    assert max_pool2d(x, (2, 3)).shape == (2, 3, 4, 3)
    assert avg_pool2d(x, (4, 3), stride=(2, 3), padding=(1, 0)).shape == (2, 3, 4, 3)


def test_float32_stays_float32():
    x = minigen.randn(2, 3, 6, 6, requires_grad=True)
    y = max_pool2d(x, 3, stride=2, padding=1, ceil_mode=True) + avg_pool2d(x, 3, 2, 1, True, False)
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32


def test_gradients_agree_on_every_device(device):
    rng = np.random.default_rng(0)
    values = rng.permutation(2 * 3 * 7 * 7).reshape(2, 3, 7, 7) * 0.25
    results = []
    for where in ("cpu", device):
        x = leaf(values, device=where)
        y = max_pool2d(x, 3, stride=2, padding=1, ceil_mode=True) * avg_pool2d(x, 3, 2, 1, True, False)
        (gx,) = minigen.grad((y * y).sum(), x)
        results.append([t.detach().cpu().numpy() for t in (y, gx)])
    for on_cpu, on_device in zip(*results):
        np.testing.assert_allclose(on_device, on_cpu, rtol=1e-12, atol=1e-12)


# --- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [max_pool2d, avg_pool2d])
@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        (
            (2,),
            {"padding": 2},
            r"padding must be non-negative and at most half the kernel size; got padding=\(2, 2\)",
        ),
        (
            (3,),
            {"padding": (0, 2)},
            r"at most half the kernel size; got padding=\(0, 2\), kernel_size=\(3, 3\)",
        ),
        ((3,), {"padding": -1}, "padding must be non-negative"),
        ((0,), {}, r"kernel_size, stride and dilation must be positive; got kernel_size=\(0, 0\)"),
        ((2,), {"stride": (1, 0)}, r"must be positive; .*stride=\(1, 0\)"),
        ((2,), {"stride": 1.5}, "stride must be an int or a pair of ints; got 1.5"),
        ((7,), {}, r"output would be 0x0 for input of shape \(1, 1, 5, 5\).*at least 1x1"),
    ],
)
def test_bad_settings_raise(fn, args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        fn(minigen.zeros(1, 1, 5, 5), *args, **kwargs)


@pytest.mark.parametrize("fn", [max_pool2d, avg_pool2d])
def test_input_that_is_not_4d_raises(fn):
    with pytest.raises(ValueError, match=r"expects a 4-D input \(N, C, H, W\); got shape \(1, 5, 5\)"):
        fn(minigen.zeros(1, 5, 5), 2)


def test_bad_dilation_and_divisor_raise():
    with pytest.raises(ValueError, match=r"max_pool2d: .*must be positive.*dilation=\(0, 0\)"):
        max_pool2d(minigen.zeros(1, 1, 5, 5), 2, dilation=0)
    with pytest.raises(ValueError, match="avg_pool2d: divisor_override must not be zero"):
        avg_pool2d(minigen.zeros(1, 1, 5, 5), 2, divisor_override=0)
