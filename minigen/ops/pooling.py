"""Max and average pooling over 2-D windows of NCHW images, with PyTorch's padding and ceil_mode rules.

The windows come from conv's ``im2col`` (kh*kw strided slices) and gradients go back through
its adjoint ``col2im``. Max pooling records which offset of each window won (the first
maximum on ties, as PyTorch) and routes each output gradient there only; average pooling
spreads gy / divisor evenly over its window.
"""

from __future__ import annotations

from minigen.autograd import Function
from minigen.backend import xp_of
from minigen.ops.conv import ConvTranspose2d, as_pair, batch_first, batch_last, col2im, im2col
from minigen.ops.shape import reshape
from minigen.tensor import Tensor


class _Pooling(Function):
    """Settings shared by the pooling Functions: kernel, stride, padding, dilation (pairs) and
    ``size``, the spatial size (height, width) of the output."""

    def __init__(self, kernel, size, stride, padding, dilation=(1, 1)):
        self.kernel, self.size = tuple(kernel), tuple(size)
        self.stride, self.padding, self.dilation = stride, padding, dilation

    def windows(self, x, fill):
        """im2col of x (N, C, H, W) with the kernel offsets flattened, in conv's batch-last
        layout: shape (C, kh kw, OH, OW, N)."""
        cols = im2col(batch_last(x), self.kernel, self.size, self.stride, self.padding, self.dilation, fill)
        return cols.reshape(x.shape[1], -1, *self.size, x.shape[0])


class _ArgMaxPooling(_Pooling):
    """Pooling settings plus ``argmax``, the winning offset of each window, (C, 1, OH, OW, N)."""

    def __init__(self, kernel, size, stride, padding, dilation, argmax=None):
        super().__init__(kernel, size, stride, padding, dilation)
        self.argmax = argmax

    def transpose(self, size) -> Function:
        """The other one of the MaxPool2d / MaxPool2dBackward pair, with the same windows and
        arg-max, producing spatial ``size``: each is the other's VJP."""
        other = MaxPool2dBackward if isinstance(self, MaxPool2d) else MaxPool2d
        return other(self.kernel, size, self.stride, self.padding, self.dilation, self.argmax)


class MaxPool2d(_ArgMaxPooling):
    """y[n, c, p, q] = max_{i, j} x_pad[n, c, p sh + i dh, q sw + j dw], with x padded by -inf
    (also past the right padding, where a ceil_mode window hangs over). It records
    a[n, c, p, q], the offset (i kw + j) of the window's first maximum.

    Given ``argmax``, it picks those offsets instead of searching: y = x_pad at offset a, a map
    linear in x (MaxPool2dBackward's VJP); its padding is then zero, since x is a gradient.
    VJP: gx = MaxPool2dBackward(a)(gy): each gy entry goes to the arg-max of its window only.
    """

    def forward(self, x):
        xp = xp_of(x)
        if self.argmax is None:
            windows = self.windows(x, -xp.inf)
            self.argmax = windows.argmax(axis=1)[:, None]  # argmax takes the first of equal maxima
        else:
            windows = self.windows(x, 0.0)
        return batch_first(xp.take_along_axis(windows, self.argmax, axis=1)[:, 0])

    def backward(self, gy):
        return self.transpose(self.inputs[0].shape[2:])(gy)


class MaxPool2dBackward(_ArgMaxPooling):
    """gx = col2im(r) with the one-hot routing r[c, k, p, q, n] = g[n, c, p, q] [k = a[c, p, q, n]]:
    every output gradient lands on the arg-max of its window (where windows overlap, the
    shares add; what lands in the padding is dropped). ``size`` is the input's (H, W).

    It is linear in g and the transpose of MaxPool2d at fixed a, so
    VJP: gg = MaxPool2d(argmax=a)(ggx), the entries of ggx at the same positions.
    """

    def forward(self, g):
        n, c, *out = g.shape
        offsets = xp_of(g).arange(self.kernel[0] * self.kernel[1]).reshape(-1, 1, 1, 1)
        routed = (batch_last(g)[:, None] * (offsets == self.argmax)).reshape(c, *self.kernel, *out, n)
        return batch_first(col2im(routed, self.size, self.stride, self.padding, self.dilation))

    def backward(self, ggx):
        return self.transpose(self.inputs[0].shape[2:])(ggx)


class AvgPool2d(_Pooling):
    """y[n, c, p, q] = scale[p, q] sum_{i, j} x_pad[n, c, p sh + i, q sw + j] (zero padding),
    where scale = 1 / divisor holds each window's divisor (see ``avg_pool2d``).

    VJP: gx = col2im of gy scale copied over each window, i.e. a transposed convolution of
    gy scale (one channel at a time) with a kh x kw kernel of ones.
    """

    def __init__(self, kernel, size, stride, padding, scale):
        super().__init__(kernel, size, stride, padding)
        self.scale = scale

    def forward(self, x):
        pooled = self.windows(x, 0.0).sum(axis=1) * self.scale.astype(x.dtype, copy=False)[:, :, None]
        return batch_first(pooled)

    def backward(self, gy):
        x = self.inputs[0]
        n, c, h, w = x.shape
        xp = xp_of(gy.data)
        spread = reshape(gy * Tensor(self.scale.astype(gy.dtype, copy=False)), (n * c, 1, *self.size))
        ones = Tensor(xp.ones((1, 1, *self.kernel), dtype=gy.dtype))
        return reshape(
            ConvTranspose2d((h, w), self.stride, self.padding, self.dilation)(spread, ones), x.shape
        )


# --- public functions ------------------------------------------------------------------------------


def pooled_size(size: int, kernel: int, stride: int, padding: int, dilation: int, ceil_mode: bool) -> int:
    """Windows along one axis, as PyTorch: (size + 2 padding - dilation (kernel - 1) - 1) / stride
    rounded down (or up, in ceil_mode) plus 1; in ceil_mode the last window must still start
    inside the input or the left padding, else it is dropped."""
    reach = size + 2 * padding - dilation * (kernel - 1) - 1
    out = (reach + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def _pool_settings(name, input, kernel_size, stride, padding, dilation, ceil_mode) -> tuple:
    """Validated (kernel, output size, stride, padding, dilation), the pairs a _Pooling takes."""
    if input.ndim != 4:
        raise ValueError(f"{name} expects a 4-D input (N, C, H, W); got shape {input.shape}")
    kernel = as_pair(kernel_size, "kernel_size")
    stride = kernel if stride is None else as_pair(stride, "stride")
    padding, dilation = as_pair(padding, "padding"), as_pair(dilation, "dilation")
    if min(kernel) < 1 or min(stride) < 1 or min(dilation) < 1:
        raise ValueError(
            f"{name}: kernel_size, stride and dilation must be positive; got kernel_size={kernel}, "
            f"stride={stride}, dilation={dilation}"
        )
    if min(padding) < 0 or any(p > k // 2 for p, k in zip(padding, kernel)):
        raise ValueError(
            f"{name}: padding must be non-negative and at most half the kernel size; got "
            f"padding={padding}, kernel_size={kernel}"
        )
    out = tuple(
        pooled_size(*axis, ceil_mode) for axis in zip(input.shape[2:], kernel, stride, padding, dilation)
    )
    if min(out) < 1:
        raise ValueError(
            f"{name}: output would be {out[0]}x{out[1]} for input of shape {input.shape} with "
            f"kernel_size={kernel}, stride={stride}, padding={padding}, dilation={dilation}; "
            "it must be at least 1x1"
        )
    return kernel, out, stride, padding, dilation


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False) -> Tensor:
    """The maximum of each (dilated) kh x kw window of an (N, C, H, W) input.

    ``stride`` defaults to ``kernel_size``; padding (at most half the kernel) counts as -inf.
    A window that sees only padding (possible with dilation) gives -inf and passes no gradient.
    """
    settings = _pool_settings("max_pool2d", input, kernel_size, stride, padding, dilation, ceil_mode)
    return MaxPool2d(*settings)(input)


def _window_counts(xp, size, out, kernel, stride, padding, count_include_pad):
    """Per axis, how many positions of each window count toward the divisor: as PyTorch, those
    inside the padded input (count_include_pad) or inside the input itself, never the part of a
    ceil_mode window that hangs past the right padding."""
    start = xp.arange(out) * stride - padding
    stop = xp.minimum(start + kernel, size + padding)
    if not count_include_pad:
        start, stop = xp.maximum(start, 0), xp.minimum(stop, size)
    return stop - start


def avg_pool2d(
    input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None
) -> Tensor:
    """The mean of each kh x kw window of an (N, C, H, W) input, zero padding included.

    The divisor of each window is ``divisor_override`` when given, else the number of its
    positions inside the padded input (count_include_pad=True, PyTorch's default) or inside
    the input itself (False); positions of a ceil_mode window past the right padding never count.
    """
    kernel, out, stride, padding, _ = _pool_settings(
        "avg_pool2d", input, kernel_size, stride, padding, 1, ceil_mode
    )
    xp = xp_of(input.data)
    if divisor_override is not None:
        if divisor_override == 0:
            raise ValueError("avg_pool2d: divisor_override must not be zero")
        divisor = xp.full(out, float(divisor_override))
    else:
        rows, cols = (
            _window_counts(xp, *axis, count_include_pad)
            for axis in zip(input.shape[2:], out, kernel, stride, padding)
        )
        divisor = rows[:, None] * cols[None, :]
    return AvgPool2d(kernel, out, stride, padding, 1.0 / divisor)(input)
