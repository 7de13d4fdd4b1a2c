"""minigen.functional (import as F): the functions layers are built from, by PyTorch's names.

Activations and softmax-family functions are the primitives in ``minigen.ops``; this module
gathers them under the names ``torch.nn.functional`` uses.
"""

from minigen.ops.elementwise import leaky_relu, relu, sigmoid, softplus, tanh
from minigen.ops.reduce import log_softmax, logsumexp, softmax
from minigen.ops.shape import pad

__all__ = ["leaky_relu", "log_softmax", "logsumexp", "pad", "relu", "sigmoid", "softmax", "softplus", "tanh"]
