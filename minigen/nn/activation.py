"""Activation layers: module forms of the elementwise nonlinearities in ``minigen.functional``."""

from __future__ import annotations

from minigen import functional as F
from minigen.nn.module import Module


class _Activation(Module):
    """A layer that applies ``function`` to its input, declared as ``class ReLU(_Activation,
    function=F.relu)``. The attributes named in ``settings`` are passed to the function after
    the input, in that order, and shown in the repr."""

    settings: tuple[str, ...] = ()

    def __init_subclass__(cls, function=None, settings=None, **kwargs):
        super().__init_subclass__(**kwargs)
        if function is not None:  # a subclass of a subclass keeps what it inherits
            cls.function = staticmethod(function)
        if settings is not None:
            cls.settings = tuple(settings)

    def forward(self, x):
        return self.function(x, *(getattr(self, name) for name in self.settings))

    def extra_repr(self) -> str:
        return ", ".join(f"{name}={getattr(self, name)}" for name in self.settings)


class ReLU(_Activation, function=F.relu):
    """max(x, 0)."""


class Sigmoid(_Activation, function=F.sigmoid):
    """1 / (1 + e^-x)."""


class Tanh(_Activation, function=F.tanh):
    """tanh(x)."""


class LeakyReLU(_Activation, function=F.leaky_relu, settings=("negative_slope",)):
    """x for x > 0, negative_slope * x otherwise."""

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = negative_slope


class Softplus(_Activation, function=F.softplus, settings=("beta",)):
    """(1/beta) log(1 + e^(beta x)), a smooth relu."""

    def __init__(self, beta: float = 1.0):
        super().__init__()
        self.beta = beta
