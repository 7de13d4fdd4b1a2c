"""The primitives, and the table that makes them Tensor methods and operators.

Each family lives in its own module (elementwise, reduce, shape, linalg); importing this
package installs ``TENSOR_METHODS`` on ``Tensor`` so that ``x.exp()``, ``x + y`` and
``x @ w`` call the same functions as ``minigen.exp(x)``, ``minigen.add(x, y)`` and
``minigen.matmul(x, w)``.
"""

from __future__ import annotations

from minigen.ops import elementwise, linalg, reduce, shape
from minigen.tensor import Tensor


def _reflected(fn):
    def reflected(self, other):
        return fn(other, self)

    return reflected


def _getitem(self, index):
    return shape.getitem(self, index)


def _view(self, *new_shape):
    return shape.reshape(self, *new_shape)


def _where(self, condition, other):
    """PyTorch's ``x.where(condition, other)``: x where condition holds, other elsewhere."""
    return elementwise.where(condition, self, other)


def _float(self):
    return shape.to(self, dtype="float32")


def _double(self):
    return shape.to(self, dtype="float64")


def _cpu(self):
    return shape.to(self, device="cpu")


def _cuda(self):
    return shape.to(self, device="cuda")


TENSOR_METHODS = {
    "__add__": elementwise.add,
    "__radd__": _reflected(elementwise.add),
    "__sub__": elementwise.sub,
    "__rsub__": _reflected(elementwise.sub),
    "__mul__": elementwise.mul,
    "__rmul__": _reflected(elementwise.mul),
    "__truediv__": elementwise.div,
    "__rtruediv__": _reflected(elementwise.div),
    "__pow__": elementwise.pow,
    "__rpow__": _reflected(elementwise.pow),
    "__neg__": elementwise.neg,
    "__matmul__": linalg.matmul,
    "__rmatmul__": _reflected(linalg.matmul),
    "__eq__": elementwise.eq,
    "__ne__": elementwise.ne,
    "__lt__": elementwise.lt,
    "__le__": elementwise.le,
    "__gt__": elementwise.gt,
    "__ge__": elementwise.ge,
    "__getitem__": _getitem,
    "exp": elementwise.exp,
    "log": elementwise.log,
    "sqrt": elementwise.sqrt,
    "abs": elementwise.abs,
    "relu": elementwise.relu,
    "sigmoid": elementwise.sigmoid,
    "tanh": elementwise.tanh,
    "clip": elementwise.clip,
    "clamp": elementwise.clip,
    "maximum": elementwise.maximum,
    "where": _where,
    "minimum": elementwise.minimum,
    "matmul": linalg.matmul,
    "sum": reduce.sum,
    "mean": reduce.mean,
    "var": reduce.var,
    "std": reduce.std,
    "max": reduce.max,
    "min": reduce.min,
    "argmax": reduce.argmax,
    "argmin": reduce.argmin,
    "logsumexp": reduce.logsumexp,
    "softmax": reduce.softmax,
    "log_softmax": reduce.log_softmax,
    "reshape": shape.reshape,
    "view": _view,
    "permute": shape.permute,
    "transpose": shape.transpose,
    "T": property(shape.T),
    "flatten": shape.flatten,
    "squeeze": shape.squeeze,
    "unsqueeze": shape.unsqueeze,
    "broadcast_to": shape.broadcast_to,
    "sum_to": shape.sum_to,
    "to": shape.to,
    "float": _float,
    "double": _double,
    "cpu": _cpu,
    "cuda": _cuda,
}

for _name, _method in TENSOR_METHODS.items():
    setattr(Tensor, _name, _method)
