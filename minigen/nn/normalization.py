"""BatchNorm1d and BatchNorm2d (Ioffe & Szegedy 2015).

y = (x - mean) / sqrt(var + eps) * weight + bias, with the batch's statistics over every axis
but the channel axis in training mode and the running statistics in evaluation mode. After each
training batch: running = (1 - momentum) running + momentum batch_statistic (the unbiased
variance for running_var); momentum=None gives the cumulative average 1/num_batches_tracked.
"""

from __future__ import annotations

from minigen import backend
from minigen import functional as F
from minigen.creation import ones, tensor, zeros
from minigen.nn.init import ones_, zeros_
from minigen.nn.linear import new_parameter
from minigen.nn.module import Module


class _BatchNorm(Module):
    accepted_ndims: tuple

    def __init__(
        self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
        track_running_stats: bool = True, device=None, dtype=None,
    ):  # fmt: skip
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = new_parameter((num_features,), device, dtype)
            self.bias = new_parameter((num_features,), device, dtype)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", zeros(num_features, device=device, dtype=dtype))
            self.register_buffer("running_var", ones(num_features, device=device, dtype=dtype))
            self.register_buffer("num_batches_tracked", tensor(0, dtype=backend.int64, device=device))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            zeros_(self.running_mean)
            ones_(self.running_var)
            self.num_batches_tracked.data[...] = 0
            self.num_batches_tracked._bump_version()

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            ones_(self.weight)
            zeros_(self.bias)

    def forward(self, x):
        if x.ndim not in self.accepted_ndims:
            expected = " or ".join(f"{n}D" for n in self.accepted_ndims)
            raise ValueError(f"{type(self).__name__} expected {expected} input (got {x.ndim}D input)")
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.data += 1  # augmented assignment sets .data: one version bump
            if self.momentum is None:
                momentum = 1.0 / int(self.num_batches_tracked.data)
        use_batch_stats = self.training or self.running_mean is None
        track = not self.training or self.track_running_stats
        return F.batch_norm(
            x,
            self.running_mean if track else None,
            self.running_var if track else None,
            self.weight,
            self.bias,
            use_batch_stats,
            momentum,
            self.eps,
        )

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
            f"track_running_stats={self.track_running_stats}"
        )


class BatchNorm1d(_BatchNorm):
    """Batch norm over (N, C) or (N, C, L) inputs; statistics per channel C."""

    accepted_ndims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch norm over (N, C, H, W) images; statistics per channel over N, H and W."""

    accepted_ndims = (4,)
