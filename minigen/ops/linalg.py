"""Matrix product, with NumPy's rules for 1-D operands and broadcast batch dimensions."""

from __future__ import annotations

from minigen.autograd import Function
from minigen.ops.shape import reshape, sum_to, transpose
from minigen.tensor import Tensor


class MatMul(Function):
    """y = a @ b: y[..., i, j] = sum_k a[..., i, k] b[..., k, j].

    A 1-D a is treated as a row (1, k) and a 1-D b as a column (k, 1), and the added axis is
    dropped from y, as in NumPy. Batch dimensions broadcast.
    VJP: ga = sum_to(gy @ b^T, a.shape), gb = sum_to(a^T @ gy, b.shape), where ^T swaps the
    last two axes and sum_to undoes the broadcasting of batch dimensions.
    """

    def forward(self, a, b):
        return a @ b

    def backward(self, gy):
        a, b = self.inputs
        need_a, need_b = self.needs_input_grad
        a2 = a if a.ndim > 1 else reshape(a, (1, a.shape[0]))
        b2 = b if b.ndim > 1 else reshape(b, (b.shape[0], 1))
        # gy with the axes that a 1-D operand dropped put back, so it is (..., n, m).
        core = 2 - (a.ndim == 1) - (b.ndim == 1)
        gy2 = reshape(gy, gy.shape[: gy.ndim - core] + (a2.shape[-2], b2.shape[-1]))
        ga = reshape(sum_to(gy2 @ transpose(b2, -1, -2), a2.shape), a.shape) if need_a else None
        gb = reshape(sum_to(transpose(a2, -1, -2) @ gy2, b2.shape), b.shape) if need_b else None
        return ga, gb


def matmul(a, b) -> Tensor:
    """a @ b for 1-D, 2-D and batched operands (batch dims broadcast)."""
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(
            f"matmul needs operands with at least 1 dimension; got shapes {a.shape} and {b.shape}"
        )
    if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not match (inner sizes differ)")
    return MatMul()(a, b)


class Linear(Function):
    """y = x W^T + b (b optional), for x (..., in), W (out, in), b (out,): the affine map of a
    dense layer as one primitive, so the bias is added in place to the product's output.

    With the leading dims of x and gy flattened (x2 of shape (M, in), gy2 of shape (M, out)):
    VJP: gx = gy W; gW = gy2^T x2; gb = sum of gy2 over its rows.
    """

    def forward(self, x, w, b=None):
        y = x @ w.T
        if b is None:
            return y
        if y.dtype == b.dtype:
            y += b  # the product's output is ours: no second array for the sum
            return y
        return y + b

    def backward(self, gy):
        x, w = self.inputs[:2]
        need = self.needs_input_grad
        gy2 = reshape(gy, (-1, w.shape[0]))
        gx = None
        if need[0] and x.ndim == 2 and _column_major(x.data):
            # x is the flattened batch-last output of a convolution (see ops/conv.py): give gx
            # the same layout, (W^T gy^T)^T, so the gradient flows back through the
            # convolutions without a transposing copy or elementwise ops on mixed layouts.
            gx = transpose(matmul(transpose(w, 0, 1), transpose(gy, 0, 1)), 0, 1)
        elif need[0]:
            gx = matmul(gy, w)
        gw = matmul(transpose(gy2, 0, 1), reshape(x, (-1, w.shape[1]))) if need[1] else None
        gb = gy2.sum(dim=0) if len(need) == 3 and need[2] else None
        return gx, gw, gb


def _column_major(array) -> bool:
    return array.flags.f_contiguous and not array.flags.c_contiguous


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """y = x W^T + b for x of shape (..., in), W of shape (out, in) and b of shape (out,)."""
    if weight.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (out_features, in_features), got shape {weight.shape}")
    if input.ndim == 0 or input.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"linear: input of shape {input.shape} does not end in in_features={weight.shape[1]} "
            f"of the weight of shape {weight.shape}"
        )
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(
            f"linear: bias must have shape ({weight.shape[0]},) for the weight of shape {weight.shape}; "
            f"got {bias.shape}"
        )
    return Linear()(input, weight) if bias is None else Linear()(input, weight, bias)
