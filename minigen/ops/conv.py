"""2-D convolution and transposed convolution (NCHW, PyTorch weight layouts) by im2col.

``im2col`` copies every kernel position's view of the (padded) input into one array with
kh*kw strided slices, so a convolution becomes one matrix product; ``col2im`` is its adjoint
and adds the columns back. Both are plain array code, so they run unchanged on CuPy.

Memory layout. Tensors are (N, C, H, W), but the arrays behind them are laid out as
(C, H, W, N): the batch is the innermost, contiguous axis. Then each of im2col's kh*kw slices
copies runs of N contiguous numbers (a window offset moves whole rows of the batch), and the
convolution is a large matrix product (O, C kh kw) @ (C kh kw, OH OW N) rather than N small
ones. A Function returns its (C, H, W, N) result as an (N, C, H, W) view (a transpose, no
copy); elementwise operations keep that layout, so in a stack of convolutions the next layer
finds its input already in place. Chapter 06 keeps to the mathematics, which does not depend
on the layout.

Row blocks. On the CPU the columns are built a block of output rows at a time (``row_blocks``)
and each block is multiplied at once: its copy is still in cache when the product reads it,
and a layer's extra memory is one block of at most ``COLUMN_BLOCK_BYTES``. Each block of
columns gives its block of output rows; the weight gradient sums the blocks' products, and the
transposed convolution adds each block's columns back as it goes.

Three Functions close under differentiation. With c = conv2d(x, w) and t = conv_transpose2d,
conv_transpose2d(., w) is the adjoint of conv2d(., w) (its input gradient) and vice versa, and
the weight gradient of both is one bilinear map W(x, g) (``Conv2dWeightGrad``) whose VJPs are
again conv2d and conv_transpose2d. Chapter 06 derives these identities.
"""

from __future__ import annotations

from minigen.autograd import Function
from minigen.backend import device_of, parallel_chunks, xp_of
from minigen.ops.shape import reshape
from minigen.tensor import Tensor

# --- window geometry, layouts and the array helpers -------------------------------------------


def as_pair(value, name: str) -> tuple[int, int]:
    """(height, width) from an int or a pair of ints, as PyTorch's conv and pool arguments."""
    pair = (
        (value, value) if isinstance(value, int) else tuple(value) if isinstance(value, (tuple, list)) else ()
    )
    if len(pair) != 2 or not all(isinstance(v, int) for v in pair):
        raise ValueError(f"{name} must be an int or a pair of ints; got {value!r}")
    return pair


def output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """Windows along one axis: floor((size + 2 padding - dilation (kernel - 1) - 1) / stride) + 1."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def transposed_output_size(size, kernel, stride, padding, dilation, output_padding) -> int:
    """Pixels along one axis of conv_transpose2d's output:
    (size - 1) stride - 2 padding + dilation (kernel - 1) + output_padding + 1."""
    return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1


def batch_last(x):
    """An (N, C, H, W) array as its (C, H, W, N) view: the layout im2col and col2im work in."""
    return x.transpose(1, 2, 3, 0)


def batch_first(x):
    """A (C, H, W, N) array as its (N, C, H, W) view (the inverse of ``batch_last``)."""
    return x.transpose(3, 0, 1, 2)


def _window(k: int, first: int, stop: int, stride: int, dilation: int) -> slice:
    """The padded positions that kernel offset ``k`` sees in windows ``first .. stop - 1`` along one axis."""
    start = k * dilation + first * stride
    return slice(start, start + (stop - first - 1) * stride + 1, stride)


def _windows(kernel, rows, columns, stride, dilation) -> list:
    """(i, j, rows, columns) for every kernel offset: the slices of the padded input it sees in
    the windows of rows ``rows`` = (first, stop) and all ``columns`` columns."""
    return [
        (i, j, _window(i, *rows, stride[0], dilation[0]), _window(j, 0, columns, stride[1], dilation[1]))
        for i in range(kernel[0])
        for j in range(kernel[1])
    ]


def _padded_shape(size, out, kernel, stride, padding, dilation) -> tuple:
    """Spatial extent of the padded buffer: left padding plus the input, extended on the right
    as far as the last window reaches (past the right padding for ceil-mode pooling, short of
    it when the last rows fall between strides and are never read)."""
    return tuple(
        max(n + p, (o - 1) * s + d * (k - 1) + 1)
        for n, o, k, s, p, d in zip(size, out, kernel, stride, padding, dilation)
    )


def _pad(x, kernel, out, stride, padding, dilation, fill):
    """x (C, H, W, N) inside a contiguous (C, *extent, N) buffer at offset ``padding``, the
    border set to ``fill`` (extent from ``_padded_shape``); x itself when it is contiguous and
    needs no border."""
    (c, h, w, n), (top, left) = x.shape, padding
    extent = _padded_shape((h, w), out, kernel, stride, padding, dilation)
    if (h, w) == extent and x.flags.c_contiguous:
        return x
    padded = xp_of(x).empty((c, *extent, n), dtype=x.dtype)
    padded[:, :top] = fill
    padded[:, top + h :] = fill
    padded[:, top : top + h, :left] = fill
    padded[:, top : top + h, left + w :] = fill
    padded[:, top : top + h, left : left + w] = x
    return padded


def _columns(x_pad, kernel, rows, columns, stride, dilation):
    """The im2col columns of the windows in rows ``rows`` = (first, stop), (C, kh, kw, stop - first,
    columns, N), copied from the padded input x_pad (C, H', W', N)."""
    c, n = x_pad.shape[0], x_pad.shape[-1]
    cols = xp_of(x_pad).empty((c, *kernel, rows[1] - rows[0], columns, n), dtype=x_pad.dtype)
    windows = _windows(kernel, rows, columns, stride, dilation)

    def copy(start, stop):  # the channels [start, stop): threads split the copy by channel
        for i, j, window_rows, window_columns in windows:
            cols[start:stop, i, j] = x_pad[start:stop, window_rows, window_columns]

    parallel_chunks(cols, c, copy)
    return cols


def _add_columns(x_pad, cols, first_row, stride, dilation) -> None:
    """x_pad += the adjoint of ``_columns``: each entry of cols (C, kh, kw, R, OW, N), the windows
    of rows first_row .. first_row + R - 1, added back to the padded position it was copied from."""
    c, kh, kw, count, columns, _ = cols.shape
    windows = _windows((kh, kw), (first_row, first_row + count), columns, stride, dilation)

    def add(start, stop):  # by channel, as _columns; the windows of one channel overlap
        for i, j, window_rows, window_columns in windows:
            # The positions of one kernel offset are distinct, so += adds each entry once.
            x_pad[start:stop, window_rows, window_columns] += cols[start:stop, i, j]

    parallel_chunks(cols, c, add)


def im2col(x, kernel, out, stride, padding, dilation, fill=0.0):
    """cols[c, i, j, p, q, n] = x_pad[c, i dh + p sh, j dw + q sw, n] for x of shape (C, H, W, N),
    giving (C, kh, kw, *out, N).

    ``x_pad`` is x with ``padding`` rows/columns of ``fill`` before it and as many after as the
    ``out`` windows need. One strided slice per kernel offset (i, j); no loop over pixels.
    """
    x_pad = _pad(x, kernel, out, stride, padding, dilation, fill)
    return _columns(x_pad, kernel, (0, out[0]), out[1], stride, dilation)


def _zero_padded(channels, batch, size, out, kernel, stride, padding, dilation, like):
    """The zero (C, H', W', N) buffer, in like's dtype, that columns are added back into: the
    padded extent of an input of spatial ``size`` seen by ``out`` windows of ``kernel``."""
    extent = _padded_shape(size, out, kernel, stride, padding, dilation)
    return xp_of(like).zeros((channels, *extent, batch), dtype=like.dtype)


def _crop(x_pad, size, padding):
    """The (C, H, W, N) view of the input's own pixels inside a padded buffer."""
    (top, left), (h, w) = padding, size
    return x_pad[:, top : top + h, left : left + w]


def col2im(cols, size, stride, padding, dilation):
    """The adjoint of ``im2col``: x[c, h, w, n] = sum of the cols entries that im2col copied
    from position (h, w), for cols of shape (C, kh, kw, OH, OW, N) and an input of spatial
    ``size``; what lands in the padding is dropped. Returns a (C, H, W, N) view."""
    (c, kh, kw, *out, n), geometry = cols.shape, (stride, padding, dilation)
    x_pad = _zero_padded(c, n, size, out, (kh, kw), *geometry, cols)
    _add_columns(x_pad, cols, 0, stride, dilation)
    return _crop(x_pad, size, padding)


# Convolutions build their columns a block of rows at a time, each block at most this size,
# so that a layer's extra memory is one block rather than all its columns (kh kw / stride^2
# times its input). Measured on the benchmark's Conv2d 32->64 3x3 layer at batch 128: peak
# working memory 40 MiB instead of 66, at the same speed on one thread (blocks of 1 to 16 MiB
# and whole columns all within the machine's noise).
COLUMN_BLOCK_BYTES = 4 << 20


def row_blocks(rows: int, bytes_per_row: int, like) -> list:
    """[(first, stop), ...] covering range(rows) in blocks of at most COLUMN_BLOCK_BYTES (at
    least one row each); one block on CuPy, where every product is a kernel launch."""
    if device_of(like) != "cpu":
        return [(0, rows)]
    step = max(1, COLUMN_BLOCK_BYTES // max(1, bytes_per_row))
    return [(first, min(rows, first + step)) for first in range(0, rows, step)]


# --- the three Functions -------------------------------------------------------------------------


class _Convolution(Function):
    """Settings shared by the three: stride, padding, dilation (pairs) and ``size``, the spatial
    size (height, width) of the output, given explicitly so that each Function can produce the
    exact shape its adjoint started from."""

    def __init__(self, size, stride, padding, dilation):
        self.size, self.stride, self.padding, self.dilation = tuple(size), stride, padding, dilation

    def geometry(self) -> tuple:
        return self.stride, self.padding, self.dilation

    def stride_dilation(self) -> tuple:
        return self.stride, self.dilation

    def input_grad(self, i: int, function: type, *operands):
        """``function`` (one of the three, with these settings) applied to ``operands`` and sized
        to input i: the VJP for that input; None when input i needs no gradient."""
        if not self.needs_input_grad[i]:
            return None
        return function(self.inputs[i].shape[2:], *self.geometry())(*operands)


class Conv2d(_Convolution):
    """y[n, o, p, q] = sum_{c, i, j} w[o, c, i, j] x_pad[n, c, p sh + i dh, q sw + j dw]
    (cross-correlation, as PyTorch), for x (N, C, H, W), w (O, C, kh, kw), y (N, O, *size).

    Computed as matrix products w (O, C kh kw) @ im2col(x) (C kh kw, OH OW N), a block of
    output rows at a time (``row_blocks``).
    VJP: gx = conv_transpose2d(gy, w) back to x's size; gw = W(x, gy) (``Conv2dWeightGrad``).
    """

    def forward(self, x, w):
        (o, _, *kernel), n, (rows, columns) = w.shape, x.shape[0], self.size
        x_pad = _pad(batch_last(x), kernel, self.size, *self.geometry(), 0.0)
        flat_w = w.reshape(o, -1)
        y = xp_of(x).empty((o, rows, columns, n), dtype=x.dtype)
        for block in row_blocks(rows, flat_w.shape[1] * columns * n * x.itemsize, x):
            cols = _columns(x_pad, kernel, block, columns, *self.stride_dilation())
            xp_of(x).matmul(flat_w, cols.reshape(flat_w.shape[1], -1), out=y[:, slice(*block)].reshape(o, -1))
        return batch_first(y)

    def backward(self, gy):
        x, w = self.inputs
        return self.input_grad(0, ConvTranspose2d, gy, w), self.input_grad(1, Conv2dWeightGrad, x, gy)


class ConvTranspose2d(_Convolution):
    """y = col2im(w^T x): y[n, o, p sh + i dh - ph, q sw + j dw - pw] += sum_c x[n, c, p, q] w[c, o, i, j]
    for x (N, C, H, W), w (C, O, kh, kw), y (N, O, *size): each input pixel stamps its
    weighted kernel onto the output. It is the adjoint of conv2d: <t(x, w), z> = <x, c(z, w)>.

    Computed as matrix products w^T (O kh kw, C) @ x (C, H W N) added back by col2im, a block
    of input rows at a time (``row_blocks``).
    VJP: gx = conv2d(gy, w) (to x's size); gw = W(gy, x), the conv2d weight gradient with the
    roles of input and output swapped (gw[c, o] pairs x's channel c with y's channel o).
    """

    def forward(self, x, w):
        (n, c, rows, columns), (o, kh, kw) = x.shape, w.shape[1:]
        flat_wt, x_last = w.reshape(c, -1).T, batch_last(x)
        y_pad = _zero_padded(o, n, self.size, (rows, columns), (kh, kw), *self.geometry(), x)
        for first, stop in row_blocks(rows, flat_wt.shape[0] * columns * n * x.itemsize, x):
            cols = flat_wt @ x_last[:, first:stop].reshape(c, -1)
            _add_columns(
                y_pad, cols.reshape(o, kh, kw, stop - first, columns, n), first, *self.stride_dilation()
            )
        return batch_first(_crop(y_pad, self.size, self.padding))

    def backward(self, gy):
        x, w = self.inputs
        return self.input_grad(0, Conv2d, gy, w), self.input_grad(1, Conv2dWeightGrad, gy, x)


class Conv2dWeightGrad(_Convolution):
    """W(x, g)[o, c, i, j] = sum_{n, p, q} g[n, o, p, q] x_pad[n, c, p sh + i dh, q sw + j dw]:
    the weight gradient of conv2d at input x and output gradient g; ``size`` is (kh, kw).

    Computed as matrix products g (O, OH OW N) @ im2col(x)^T (OH OW N, C kh kw), summed over
    blocks of output rows (``row_blocks``).
    It is bilinear, with <W(x, g), v> = <g, conv2d(x, v)>, so for a cotangent v of w's shape
    VJP: gx = conv_transpose2d(g, v) (to x's size); gg = conv2d(x, v) (to g's size).
    """

    def forward(self, x, g):
        (n, c), (o, rows, columns) = x.shape[:2], g.shape[1:]
        x_pad = _pad(batch_last(x), self.size, (rows, columns), *self.geometry(), 0.0)
        g_last, taps = batch_last(g), c * self.size[0] * self.size[1]
        gw = None
        for first, stop in row_blocks(rows, taps * columns * n * x.itemsize, x):
            cols = _columns(x_pad, self.size, (first, stop), columns, *self.stride_dilation())
            part = g_last[:, first:stop].reshape(o, -1) @ cols.reshape(taps, -1).T
            gw = part if gw is None else xp_of(x).add(gw, part, out=gw)
        return gw.reshape(o, c, *self.size)

    def backward(self, gw):
        x, g = self.inputs
        return self.input_grad(0, ConvTranspose2d, g, gw), self.input_grad(1, Conv2d, x, gw)


# --- public functions ------------------------------------------------------------------------------


def _settings(name, stride, padding, dilation, groups) -> tuple:
    """Validated (stride, padding, dilation) pairs for ``name`` (errors name the culprit)."""
    if groups != 1:
        raise ValueError(f"{name}: only groups=1 is supported; got groups={groups}")
    stride, padding, dilation = (
        as_pair(v, n) for v, n in ((stride, "stride"), (padding, "padding"), (dilation, "dilation"))
    )
    if min(stride) < 1 or min(dilation) < 1:
        raise ValueError(
            f"{name}: stride and dilation must be positive; got stride={stride}, dilation={dilation}"
        )
    if min(padding) < 0:
        raise ValueError(f"{name}: padding must be non-negative; got {padding}")
    return stride, padding, dilation


def _check_shapes(name, input, weight, in_axis: int, out_axis: int, bias) -> None:
    layout = "(out_c, in_c, kh, kw)" if in_axis == 1 else "(in_c, out_c, kh, kw)"
    if input.ndim != 4:
        raise ValueError(f"{name} expects a 4-D input (N, C, H, W); got shape {input.shape}")
    if weight.ndim != 4:
        raise ValueError(f"{name} expects a 4-D weight {layout}; got shape {weight.shape}")
    if input.shape[1] != weight.shape[in_axis]:
        raise ValueError(
            f"{name}: input of shape {input.shape} has {input.shape[1]} channels but the weight of "
            f"shape {weight.shape} {layout} expects {weight.shape[in_axis]}"
        )
    if bias is not None and bias.shape != (weight.shape[out_axis],):
        raise ValueError(
            f"{name}: bias must have shape ({weight.shape[out_axis]},) for weight of shape "
            f"{weight.shape}; got {bias.shape}"
        )


def _check_output(name, out, input, weight) -> None:
    if min(out) < 1:
        raise ValueError(
            f"{name}: output would be {out[0]}x{out[1]} for input of shape {input.shape} and weight "
            f"of shape {weight.shape}; it must be at least 1x1 (the dilated kernel is larger than "
            "the padded input)"
        )


def _add_bias(y, bias) -> Tensor:
    return y if bias is None else y + reshape(bias, (1, -1, 1, 1))


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> Tensor:
    """2-D convolution (cross-correlation) of an (N, C, H, W) input with an (O, C, kh, kw) weight.

    Output size per axis: floor((H + 2 padding - dilation (k - 1) - 1) / stride) + 1.
    """
    stride, padding, dilation = _settings("conv2d", stride, padding, dilation, groups)
    _check_shapes("conv2d", input, weight, 1, 0, bias)
    out = tuple(
        output_size(*axis) for axis in zip(input.shape[2:], weight.shape[2:], stride, padding, dilation)
    )
    _check_output("conv2d", out, input, weight)
    return _add_bias(Conv2d(out, stride, padding, dilation)(input, weight), bias)


def conv_transpose2d(
    input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1
) -> Tensor:
    """Transposed convolution of an (N, C, H, W) input with a (C, O, kh, kw) weight: the input
    gradient of conv2d, used to upsample.

    Output size per axis: (H - 1) stride - 2 padding + dilation (k - 1) + output_padding + 1;
    ``output_padding`` (smaller than stride or dilation) picks among the input sizes that
    conv2d maps to H.
    """
    stride, padding, dilation = _settings("conv_transpose2d", stride, padding, dilation, groups)
    output_padding = as_pair(output_padding, "output_padding")
    if min(output_padding) < 0 or any(op >= max(s, d) for op, s, d in zip(output_padding, stride, dilation)):
        raise ValueError(
            f"conv_transpose2d: output_padding must be non-negative and smaller than either stride or "
            f"dilation; got output_padding={output_padding}, stride={stride}, dilation={dilation}"
        )
    _check_shapes("conv_transpose2d", input, weight, 0, 1, bias)
    out = tuple(
        transposed_output_size(*axis)
        for axis in zip(input.shape[2:], weight.shape[2:], stride, padding, dilation, output_padding)
    )
    _check_output("conv_transpose2d", out, input, weight)
    return _add_bias(ConvTranspose2d(out, stride, padding, dilation)(input, weight), bias)
