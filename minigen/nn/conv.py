"""Conv2d and ConvTranspose2d with PyTorch's weight layouts and default initialisation.

Conv2d weight: (out_channels, in_channels, kh, kw). ConvTranspose2d weight:
(in_channels, out_channels, kh, kw), because a transposed convolution is the input-gradient
of the convolution that maps out_channels back to in_channels.
"""

from __future__ import annotations

from minigen import functional as F
from minigen.nn.linear import WeightAndBias


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


class _ConvNd(WeightAndBias):
    """Settings, parameters and repr shared by the two convolutions."""

    def __init__(
        self, in_channels, out_channels, kernel_size, stride, padding, dilation, output_padding, groups,
        bias, device, dtype, transposed,
    ):  # fmt: skip
        super().__init__()
        if groups != 1:
            raise ValueError(f"only groups=1 is supported, got groups={groups}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size, self.stride, self.padding = _pair(kernel_size), _pair(stride), _pair(padding)
        self.dilation, self.output_padding = _pair(dilation), _pair(output_padding)
        channels = (in_channels, out_channels) if transposed else (out_channels, in_channels)
        self.init_parameters(channels + self.kernel_size, out_channels, bias, device, dtype)

    def extra_repr(self) -> str:
        text = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        )
        defaults = {"padding": (0, 0), "dilation": (1, 1), "output_padding": (0, 0)}
        for name, default in defaults.items():
            value = getattr(self, name)
            if value != default:
                text += f", {name}={value}"
        if self.bias is None:
            text += ", bias=False"
        return text


class Conv2d(_ConvNd):
    """2-D cross-correlation over NCHW images (what deep-learning libraries call convolution):

    y[n, o, i, j] = b[o] + sum_{c, p, q} x_pad[n, c, i*sh + p*dh, j*sw + q*dw] * W[o, c, p, q].
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
        groups: int = 1, bias: bool = True, device=None, dtype=None,
    ):  # fmt: skip
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, 0, groups, bias, device, dtype,
            transposed=False,
        )  # fmt: skip

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation)


class ConvTranspose2d(_ConvNd):
    """The transpose (adjoint) of Conv2d: each input pixel scatters a weighted copy of the
    kernel into the output; output size (n - 1) s - 2p + d (k - 1) + output_padding + 1."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, output_padding=0,
        groups: int = 1, bias: bool = True, dilation=1, device=None, dtype=None,
    ):  # fmt: skip
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, output_padding, groups, bias,
            device, dtype, transposed=True,
        )  # fmt: skip

    def forward(self, x):
        return F.conv_transpose2d(
            x, self.weight, self.bias, self.stride, self.padding, self.output_padding, 1, self.dilation
        )
