"""minigen: a from-scratch deep-learning library for learning how generative models work.

The public face mirrors PyTorch's names: ``minigen.tensor``, ``minigen.randn``,
``x.backward()``, ``minigen.no_grad()``, ``minigen.grad(...)``.
"""

from minigen import ops
from minigen.autograd import Function, enable_grad, grad, is_grad_enabled, no_grad
from minigen.backend import (
    bool_,
    cuda_available,
    float32,
    float64,
    int64,
    manual_seed,
    set_default_device,
)
from minigen.creation import (
    arange,
    eye,
    full,
    full_like,
    ones,
    ones_like,
    rand,
    rand_like,
    randn,
    randn_like,
    tensor,
    zeros,
    zeros_like,
)
from minigen.ops.elementwise import (
    abs,
    add,
    clip,
    div,
    exp,
    log,
    maximum,
    minimum,
    mul,
    neg,
    pow,
    relu,
    sigmoid,
    sqrt,
    sub,
    tanh,
    where,
)
from minigen.ops.linalg import matmul
from minigen.ops.reduce import (
    argmax,
    argmin,
    logsumexp,
    max,
    mean,
    min,
    softmax,
    std,
    sum,
    var,
)
from minigen.ops.shape import (
    broadcast_to,
    cat,
    flatten,
    permute,
    reshape,
    squeeze,
    stack,
    sum_to,
    transpose,
    unsqueeze,
)
from minigen.tensor import Tensor

clamp = clip
__version__ = "0.1.0"

__all__ = [
    "Function", "Tensor", "abs", "add", "arange", "argmax", "argmin", "bool_", "broadcast_to",
    "cat", "clamp", "clip", "cuda_available", "div", "enable_grad", "exp", "eye", "flatten",
    "float32", "float64", "full", "full_like", "grad", "int64", "is_grad_enabled", "log",
    "logsumexp", "manual_seed", "matmul", "max", "maximum", "mean", "min", "minimum", "mul",
    "neg", "no_grad", "ones", "ones_like", "ops", "permute", "pow", "rand", "rand_like", "randn",
    "randn_like", "relu", "reshape", "set_default_device", "sigmoid", "softmax", "sqrt",
    "squeeze", "stack", "std", "sub", "sum", "sum_to", "tanh", "tensor", "transpose",
    "unsqueeze", "var", "where", "zeros", "zeros_like",
]  # fmt: skip
