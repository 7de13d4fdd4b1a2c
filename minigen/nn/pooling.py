"""MaxPool2d and AvgPool2d: the layer forms of ``F.max_pool2d`` and ``F.avg_pool2d``."""

from __future__ import annotations

from minigen import functional as F
from minigen.nn.module import Module


class _Pool2d(Module):
    def __init__(self, **settings):
        super().__init__()
        if settings["stride"] is None:  # PyTorch: the stride defaults to the kernel size
            settings["stride"] = settings["kernel_size"]
        self.setting_names = tuple(settings)
        for name, value in settings.items():
            setattr(self, name, value)

    @property
    def settings(self) -> dict:
        return {name: getattr(self, name) for name in self.setting_names}

    def extra_repr(self) -> str:
        return ", ".join(f"{name}={value}" for name, value in self.settings.items())


class MaxPool2d(_Pool2d):
    """The maximum of each kernel_size window; the gradient goes to the arg-max only."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False):
        super().__init__(
            kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation, ceil_mode=ceil_mode
        )

    def forward(self, x):
        return F.max_pool2d(x, **self.settings)


class AvgPool2d(_Pool2d):
    """The mean of each kernel_size window (zero padding counted unless count_include_pad=False)."""

    def __init__(
        self, kernel_size, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True,
        divisor_override=None,
    ):  # fmt: skip
        super().__init__(
            kernel_size=kernel_size, stride=stride, padding=padding, ceil_mode=ceil_mode,
            count_include_pad=count_include_pad, divisor_override=divisor_override,
        )  # fmt: skip

    def forward(self, x):
        return F.avg_pool2d(x, **self.settings)
