"""minigen.nn: modules with PyTorch's names, layouts, default initialisations and state-dict keys."""

from minigen.nn import init
from minigen.nn.activation import LeakyReLU, ReLU, Sigmoid, Softplus, Tanh
from minigen.nn.containers import ModuleList, Sequential
from minigen.nn.conv import Conv2d, ConvTranspose2d
from minigen.nn.dropout import Dropout
from minigen.nn.flatten import Flatten, Unflatten
from minigen.nn.linear import Identity, Linear
from minigen.nn.module import Module, Parameter
from minigen.nn.normalization import BatchNorm1d, BatchNorm2d
from minigen.nn.pooling import AvgPool2d, MaxPool2d

__all__ = [
    "AvgPool2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv2d",
    "ConvTranspose2d",
    "Dropout",
    "Flatten",
    "Identity",
    "LeakyReLU",
    "Linear",
    "MaxPool2d",
    "Module",
    "ModuleList",
    "Parameter",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Softplus",
    "Tanh",
    "Unflatten",
    "init",
]
