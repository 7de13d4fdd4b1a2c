"""Linear (y = x W^T + b, weight of shape (out_features, in_features)) and Identity."""

from __future__ import annotations

from minigen import functional as F
from minigen.creation import zeros
from minigen.nn.init import default_layer_init_
from minigen.nn.module import Module, Parameter


def new_parameter(shape, device, dtype) -> Parameter:
    """An uninitialised-looking (zero) Parameter; layers fill it in ``reset_parameters``."""
    return Parameter(zeros(*shape, device=device, dtype=dtype))


class WeightAndBias(Module):
    """A layer with a weight and an optional bias, initialised as PyTorch's Linear and Conv
    layers (``default_layer_init_``)."""

    def init_parameters(self, weight_shape, bias_features: int, bias: bool, device, dtype) -> None:
        self.weight = new_parameter(weight_shape, device, dtype)
        if bias:
            self.bias = new_parameter((bias_features,), device, dtype)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        default_layer_init_(self.weight, self.bias)


class Identity(Module):
    """Returns its input; any constructor arguments are ignored (a placeholder in a model)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return x


class Linear(WeightAndBias):
    """y = x W^T + b for inputs of shape (..., in_features); W is (out_features, in_features)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.init_parameters((out_features, in_features), out_features, bias, device, dtype)

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
        )
