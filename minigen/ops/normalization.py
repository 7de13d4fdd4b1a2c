"""Batch normalisation: y = gamma * (x - mu) / sqrt(var + eps) + beta, per channel (axis 1).

In training the statistics mu and var come from the batch (over every axis but the channel
axis) and the running estimates are updated; in evaluation the running estimates are used,
which makes the layer an affine map of x.
"""

from __future__ import annotations

import math
import numbers

from minigen import backend
from minigen.autograd import Function, is_grad_enabled
from minigen.backend import parallel_chunks, xp_of
from minigen.ops.reduce import mean
from minigen.ops.shape import reshape
from minigen.tensor import Tensor


class BatchNorm(Function):
    """x_hat = (x - mu) / sigma per channel, with mu = mean(x), sigma^2 = mean((x - mu)^2) + eps,
    the means taken over ``axes`` (every axis but the channel axis 1): the biased batch variance.

    VJP. With n entries per channel, d mu / d x_j = 1/n and, since sum_i (x_i - mu) = 0,
    d sigma / d x_j = (x_j - mu) / (n sigma) = x_hat_j / n. So
    d x_hat_i / d x_j = (1/sigma) (delta_ij - 1/n - x_hat_i x_hat_j / n), and
    gx = (1/sigma) * (g - mean(g) - x_hat * mean(g * x_hat)), means over ``axes``.

    Only x is an input: the affine part gamma * x_hat + beta is applied by ``batch_norm`` with
    broadcasting Tensor ops, so gamma's and beta's gradients (sum(g x_hat) and sum(g)) come from
    Mul and Add, and the g that reaches this node already has gamma folded in. That leaves one
    formula to derive here, and makes x_hat this node's own output: backward reuses it, and a
    second derivative flows through it back into this node. 1/sigma must also stay a function
    of x for the second derivative (caching it as a constant was DeZero's batch-norm bug), so
    when the backward is itself recorded (create_graph) it is rebuilt from x with Tensor ops;
    otherwise the value saved by forward is used, and the whole formula runs on arrays, a
    block of channels per thread.

    Forward saves the batch statistics (``batch_mean``, ``batch_var``, biased, kept dims) so
    that ``batch_norm`` can update the running estimates from them.
    """

    def __init__(self, axes, eps):
        self.axes, self.eps = axes, eps

    def forward(self, x):
        xp = xp_of(x)
        kept = (1, x.shape[1], *([1] * (x.ndim - 2)))
        self.batch_mean, self.batch_var, self.inv_std = (xp.empty(kept, dtype=x.dtype) for _ in range(3))
        x_hat = xp.empty_like(x)

        def normalise(first, stop):  # channels first .. stop - 1: threads split by channel
            part, mean = x[:, first:stop], self.batch_mean[:, first:stop]
            part.mean(axis=self.axes, keepdims=True, out=mean)
            centered = part - mean
            var = self.batch_var[:, first:stop]
            xp.multiply(centered, centered).mean(axis=self.axes, keepdims=True, out=var)
            inv_std = self.inv_std[:, first:stop]
            xp.divide(1, xp.sqrt(var + self.eps), out=inv_std)
            xp.multiply(centered, inv_std, out=x_hat[:, first:stop])

        parallel_chunks(x, x.shape[1], normalise)
        return x_hat

    def backward(self, gy):
        x_hat = self.output()
        if not is_grad_enabled():  # nothing records this backward: the same formula on arrays
            return Tensor(self._array_backward(gy.data, x_hat.data))
        mean_g = mean(gy, dim=self.axes, keepdim=True)
        mean_gx = mean(gy * x_hat, dim=self.axes, keepdim=True)
        return self._inv_std() * (gy - mean_g - x_hat * mean_gx)

    def _array_backward(self, gy, x_hat):
        """gx = (1/sigma) * (g - mean(g) - x_hat * mean(g * x_hat)) on arrays, in the order the
        Tensor formula computes it (so the same values), threads splitting the channels."""
        xp, axes = xp_of(gy), self.axes
        gx = xp.empty_like(gy)

        def channels(first, stop):
            g, x, out = gy[:, first:stop], x_hat[:, first:stop], gx[:, first:stop]
            mean_g = g.mean(axis=axes, keepdims=True)
            mean_gx = (g * x).mean(axis=axes, keepdims=True)
            xp.subtract(g, mean_g, out=out)
            out -= x * mean_gx
            out *= self.inv_std[:, first:stop]

        parallel_chunks(gy, gy.shape[1], channels)
        return gx

    def _inv_std(self) -> Tensor:
        """1/sigma rebuilt from x with Tensor ops, for a backward that is itself recorded."""
        x = self.inputs[0]
        centered = x - mean(x, dim=self.axes, keepdim=True)
        return (mean(centered * centered, dim=self.axes, keepdim=True) + self.eps) ** -0.5


def _check_per_channel(name, t, input) -> None:
    channels = input.shape[1]
    if t.shape != (channels,):
        raise ValueError(
            f"batch_norm: {name} has shape {t.shape}, but input of shape {input.shape} has "
            f"{channels} channels (dim 1), so it must have shape ({channels},)"
        )


def _check_arguments(input, running_mean, running_var, weight, bias, training, momentum) -> None:
    if input.ndim < 2:
        raise ValueError(f"batch_norm expects input of shape (N, C, ...) (2 or more dims); got {input.shape}")
    if input.dtype.kind != "f":
        raise TypeError(f"batch_norm needs a floating-point input; got {input.dtype}")
    if (running_mean is None) != (running_var is None):
        raise ValueError("batch_norm: pass both running_mean and running_var, or neither")
    if running_mean is None and not training:
        raise ValueError(
            "batch_norm in evaluation mode (training=False) normalises with running_mean and "
            "running_var; pass both"
        )
    for name, t in (("running_mean", running_mean), ("running_var", running_var)):
        if t is None:
            continue
        _check_per_channel(name, t, input)
        if t.device != input.device:
            raise backend.DeviceError(f"batch_norm: {name} is on {t.device} but input is on {input.device}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None:
            _check_per_channel(name, t, input)
    if training and running_mean is not None and not isinstance(momentum, numbers.Real):
        raise TypeError(
            f"batch_norm: momentum must be a number; got {momentum!r} (for a cumulative average, "
            "pass 1 / num_batches_tracked, as BatchNorm with momentum=None does)"
        )


def _update_running(running: Tensor, statistic, momentum: float) -> None:
    """running = (1 - momentum) * running + momentum * statistic, in place on running.data."""
    data = running.data
    data *= 1 - momentum
    data += momentum * statistic.reshape(data.shape)


def batch_norm(
    input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5
) -> Tensor:
    """Normalise each channel (axis 1) of input (N, C, ...), then scale by weight and shift by bias.

    training=True: y = weight * (x - mu_B) / sqrt(var_B + eps) + bias with the batch mean mu_B
    and biased batch variance var_B over every axis but 1; when running_mean and running_var
    are given they are updated in place, outside the graph:
    running_mean = (1 - momentum) * running_mean + momentum * mu_B and
    running_var = (1 - momentum) * running_var + momentum * var_B * n / (n - 1) (the unbiased
    variance, n entries per channel), as PyTorch.
    training=False: y = weight * (x - running_mean) / sqrt(running_var + eps) + bias.

    weight and bias, of shape (C,), are optional. Running statistics are buffers: they never
    receive gradients. Statistics are computed in the input's dtype.
    """
    _check_arguments(input, running_mean, running_var, weight, bias, training, momentum)
    axes = (0,) + tuple(range(2, input.ndim))
    kept = tuple(n if i == 1 else 1 for i, n in enumerate(input.shape))
    if training:
        count = math.prod(input.shape[a] for a in axes)
        if count <= 1:
            raise ValueError(
                f"Expected more than 1 value per channel when training, got input size {input.shape}"
            )
        node = BatchNorm(axes, eps)
        x_hat = node(input)
        if running_mean is not None:
            _update_running(running_mean, node.batch_mean, momentum)
            _update_running(running_var, node.batch_var * (count / (count - 1)), momentum)
    else:
        xp = xp_of(input.data)
        shift = running_mean.data.reshape(kept).astype(input.dtype)
        scale = (1 / xp.sqrt(running_var.data.reshape(kept) + eps)).astype(input.dtype, copy=False)
        x_hat = (input - Tensor(shift)) * Tensor(scale)
    y = x_hat
    if weight is not None:
        y = y * reshape(weight, kept)
    if bias is not None:
        y = y + reshape(bias, kept)
    return y
