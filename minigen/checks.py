"""The catalogue of gradient checks: one or more cases for every primitive.

Each case names the primitive Functions it exercises, builds them from tensors, and says from
which domain each input is drawn, so that the check stays away from kinks and poles (relu at
0, log at 0, ties in max). ``minigen gradcheck`` runs every case to first and second order;
the test suite checks that no primitive is missing from the catalogue.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from minigen import backend
from minigen.autograd import grad
from minigen.creation import rand, randn, tensor
from minigen.gradcheck import GradcheckReport, compare_gradients, first_order, second_order_inputs
from minigen.ops import conv, elementwise, linalg, losses, normalization, pooling, reduce, shape
from minigen.tensor import Tensor

DOMAINS = ("real", "positive", "nonzero", "unit", "distinct")


def sample(shape, domain: str = "real", device: str = "cpu") -> Tensor:
    """A float64 tensor requiring grad, with values drawn from ``domain``:

    real: N(0, 1); positive: [0.5, 2); nonzero: |x| in [0.2, 1.2) with random sign (away from
    the kink of relu/abs at 0); unit: [0.1, 0.9) (inside (0, 1)); distinct: a shuffled grid
    with gaps of 0.25 (no ties for max/min/sort-like ops).
    """
    shape = tuple(shape)
    kw = {"dtype": backend.float64, "device": device}
    if domain == "real":
        x = randn(*shape, **kw).data
    elif domain == "positive":
        x = 0.5 + 1.5 * rand(*shape, **kw).data
    elif domain == "nonzero":
        sign = (rand(*shape, **kw).data < 0.5) * 2.0 - 1.0
        x = sign * (0.2 + rand(*shape, **kw).data)
    elif domain == "unit":
        x = 0.1 + 0.8 * rand(*shape, **kw).data
    elif domain == "distinct":
        ranks = rand(*shape, **kw).data.reshape(-1).argsort().argsort().reshape(shape)
        x = 0.25 * ranks.astype(backend.float64) - 0.125 * ranks.size
    else:
        raise ValueError(f"unknown domain {domain!r}; expected one of {', '.join(DOMAINS)}")
    return tensor(x, dtype=backend.float64, device=device, requires_grad=True)


@dataclass(frozen=True)
class Case:
    """One gradient check: ``fn`` applied to inputs drawn as ``inputs`` = ((shape, domain), ...)."""

    name: str
    fn: Callable
    inputs: tuple
    covers: tuple

    def sample_inputs(self, device: str = "cpu") -> list:
        return [sample(shape, domain, device) for shape, domain in self.inputs]


_MASK = ((True, False, True), (False, False, True))


def _max_pool2d_input_grad(g):
    """max_pool2d's input gradient as a function of the output gradient g, so that
    MaxPool2dBackward is recorded; the input is a fixed shuffle of 0..71 (no ties)."""
    shuffle = [(7 * i) % 72 for i in range(72)]
    x = tensor(shuffle, dtype=g.dtype, device=g.device).reshape(1, 2, 6, 6).requires_grad_()
    (gx,) = grad(pooling.max_pool2d(x, 3, stride=2, padding=1, ceil_mode=True), x, g, create_graph=True)
    return gx


def _leaky_relu_input_grad(g):
    """leaky_relu's input gradient as a function of the output gradient g (a MaskedScale), at a
    fixed input with entries on both sides of the kink."""
    x = tensor([[-1.5, 0.5, 2.0], [0.25, -0.75, -3.0]], dtype=g.dtype, device=g.device).requires_grad_()
    (gx,) = grad(elementwise.leaky_relu(x, 0.1), x, g, create_graph=True)
    return gx


CASES = (
    Case("add", lambda a, b: a + b, (((3, 1, 4), "real"), ((2, 4), "real")), (elementwise.Add,)),
    Case("add 0-d", lambda a, b: a + b, (((), "real"), ((2, 3), "real")), (elementwise.Add,)),
    Case("sub", lambda a, b: a - b, (((2, 3), "real"), ((3,), "real")), (elementwise.Sub,)),
    Case("mul", lambda a, b: a * b, (((2, 1), "real"), ((1, 3), "real")), (elementwise.Mul,)),
    Case("div", lambda a, b: a / b, (((2, 3), "real"), ((2, 3), "nonzero")), (elementwise.Div,)),
    Case("neg", lambda x: -x, (((2, 3), "real"),), (elementwise.Neg,)),
    Case("pow scalar", lambda x: x**2.5, (((2, 3), "positive"),), (elementwise.PowScalar,)),
    Case("pow integer", lambda x: x**3, (((2, 3), "real"),), (elementwise.PowScalar,)),
    Case("pow tensor", lambda a, b: a**b, (((2, 3), "positive"), ((3,), "real")), (elementwise.Pow,)),
    Case("exp", elementwise.exp, (((2, 3), "real"),), (elementwise.Exp,)),
    Case("log", elementwise.log, (((2, 3), "positive"),), (elementwise.Log,)),
    Case("sqrt", elementwise.sqrt, (((2, 3), "positive"),), (elementwise.Sqrt,)),
    Case("abs", elementwise.abs, (((2, 3), "nonzero"),), (elementwise.Abs,)),
    Case("relu", elementwise.relu, (((2, 3), "nonzero"),), (elementwise.ReLU,)),
    Case(
        "leaky_relu",
        lambda x: elementwise.leaky_relu(x, 0.1),
        (((2, 3), "nonzero"),),
        (elementwise.LeakyReLU,),
    ),
    Case(
        "leaky_relu input gradient",
        _leaky_relu_input_grad,
        (((2, 3), "real"),),
        (elementwise.MaskedScale,),
    ),
    Case("sigmoid", elementwise.sigmoid, (((2, 3), "real"),), (elementwise.Sigmoid,)),
    Case("tanh", elementwise.tanh, (((2, 3), "real"),), (elementwise.Tanh,)),
    Case("softplus", elementwise.softplus, (((2, 3), "real"),), (elementwise.Softplus,)),
    # Both operands come from one distinct grid, so no pair ties (ties are kinks).
    Case(
        "maximum",
        lambda x: elementwise.maximum(x[0], x[1, 0]),
        (((2, 3, 4), "distinct"),),
        (elementwise.Maximum,),
    ),
    Case(
        "minimum",
        lambda x: elementwise.minimum(x[0], x[1]),
        (((2, 3, 4), "distinct"),),
        (elementwise.Minimum,),
    ),
    Case("clip", lambda x: elementwise.clip(x, -0.9, 0.9), (((3, 4), "distinct"),), (elementwise.Clip,)),
    Case(
        "where",
        lambda a, b: elementwise.where(tensor(_MASK, device=a.device), a, b),
        (((2, 3), "real"), ((3,), "real")),
        (elementwise.Where,),
    ),
    Case("sum", lambda x: reduce.sum(x, dim=1), (((2, 3, 4), "real"),), (reduce.Sum,)),
    Case("sum all", reduce.sum, (((2, 3), "real"),), (reduce.Sum,)),
    Case("mean", lambda x: reduce.mean(x, dim=(0, 2), keepdim=True), (((2, 3, 4), "real"),), (reduce.Mean,)),
    Case("var", lambda x: reduce.var(x, dim=0), (((4, 3), "real"),), (reduce.Mean, reduce.Sum)),
    Case("max", lambda x: reduce.max(x, dim=-1), (((3, 4), "distinct"),), (reduce.Max,)),
    Case("min", reduce.min, (((3, 4), "distinct"),), (reduce.Min,)),
    Case("logsumexp", lambda x: reduce.logsumexp(x, dim=1), (((2, 5), "real"),), (reduce.LogSumExp,)),
    Case("softmax", lambda x: reduce.softmax(x, dim=-1), (((2, 5), "real"),), (reduce.Softmax,)),
    Case("log_softmax", lambda x: reduce.log_softmax(x, dim=0), (((4, 3), "real"),), (reduce.LogSoftmax,)),
    Case("matmul 2-D", linalg.matmul, (((2, 3), "real"), ((3, 4), "real")), (linalg.MatMul,)),
    Case("matmul batched", linalg.matmul, (((2, 1, 2, 3), "real"), ((3, 3, 2), "real")), (linalg.MatMul,)),
    Case("matmul 1-D @ 2-D", linalg.matmul, (((3,), "real"), ((3, 2), "real")), (linalg.MatMul,)),
    Case("matmul 2-D @ 1-D", linalg.matmul, (((2, 3), "real"), ((3,), "real")), (linalg.MatMul,)),
    Case("matmul 1-D @ 1-D", linalg.matmul, (((3,), "real"), ((3,), "real")), (linalg.MatMul,)),
    Case("linear", linalg.linear, (((4, 3), "real"), ((2, 3), "real"), ((2,), "real")), (linalg.Linear,)),
    Case("linear batched, no bias", linalg.linear, (((2, 2, 3), "real"), ((4, 3), "real")), (linalg.Linear,)),
    Case(
        "linear 1-D input",
        linalg.linear,
        (((3,), "real"), ((2, 3), "real"), ((2,), "real")),
        (linalg.Linear,),
    ),
    Case("reshape", lambda x: shape.reshape(x, (3, -1)), (((2, 3, 2), "real"),), (shape.Reshape,)),
    Case("permute", lambda x: shape.permute(x, 2, 0, 1), (((2, 3, 4), "real"),), (shape.Permute,)),
    Case("transpose", lambda x: shape.transpose(x, 0, 1), (((2, 3), "real"),), (shape.Permute,)),
    Case(
        "broadcast_to", lambda x: shape.broadcast_to(x, (2, 3, 4)), (((3, 1), "real"),), (shape.BroadcastTo,)
    ),
    Case("sum_to", lambda x: shape.sum_to(x, (3, 1)), (((2, 3, 4), "real"),), (shape.SumTo,)),
    Case("getitem slices", lambda x: x[1:, ::2, None], (((3, 4), "real"),), (shape.GetItem, shape.IndexAdd)),
    Case(
        "getitem ints",
        lambda x: x[tensor([0, 2, 0], device=x.device)],
        (((3, 2), "real"),),
        (shape.GetItem, shape.IndexAdd),
    ),
    Case(
        "getitem mask",
        lambda x: x[tensor(_MASK, device=x.device)],
        (((2, 3), "real"),),
        (shape.GetItem, shape.IndexAdd),
    ),
    Case(
        "cat",
        lambda a, b: shape.cat([a, b], dim=1),
        (((2, 1), "real"), ((2, 3), "real")),
        (shape.Concatenate,),
    ),
    Case(
        "stack",
        lambda a, b: shape.stack([a, b], dim=-1),
        (((2, 3), "real"), ((2, 3), "real")),
        (shape.Concatenate,),
    ),
    Case("pad", lambda x: shape.pad(x, (1, 2, 0, 1)), (((2, 3), "real"),), (shape.Pad,)),
    Case("flatten", lambda x: shape.flatten(x, 1), (((2, 3, 2), "real"),), (shape.Reshape,)),
    Case("squeeze", lambda x: shape.squeeze(x, 1), (((2, 1, 3), "real"),), (shape.Reshape,)),
    Case("unsqueeze", lambda x: shape.unsqueeze(x, 0), (((2, 3), "real"),), (shape.Reshape,)),
    Case("to device", lambda x: shape.Convert("cpu", None)(x), (((2, 3), "real"),), (shape.Convert,)),
    Case(
        "conv2d",
        lambda x, w, b: conv.conv2d(x, w, b, stride=(2, 1), padding=(1, 2), dilation=(1, 2)),
        (((2, 2, 5, 4), "real"), ((3, 2, 3, 2), "real"), ((3,), "real")),
        (conv.Conv2d,),
    ),
    Case(
        "conv_transpose2d",
        lambda x, w, b: conv.conv_transpose2d(
            x, w, b, stride=(2, 1), padding=(1, 0), output_padding=(1, 1), dilation=(1, 2)
        ),
        (((2, 2, 3, 3), "real"), ((2, 3, 2, 3), "real"), ((3,), "real")),
        (conv.ConvTranspose2d,),
    ),
    Case(
        "conv2d weight grad",
        lambda x, g: conv.Conv2dWeightGrad((3, 2), (2, 1), (1, 2), (1, 2))(x, g),
        (((2, 2, 5, 4), "real"), ((2, 3, 3, 6), "real")),
        (conv.Conv2dWeightGrad,),
    ),
    Case(
        "max_pool2d",
        lambda x: pooling.max_pool2d(x, (3, 2), stride=(2, 1), padding=1, dilation=(1, 2), ceil_mode=True),
        (((2, 2, 6, 5), "distinct"),),
        (pooling.MaxPool2d,),
    ),
    Case(
        "max_pool2d backward",
        _max_pool2d_input_grad,
        (((1, 2, 4, 4), "real"),),
        (pooling.MaxPool2dBackward,),
    ),
    Case(
        "avg_pool2d",
        lambda x: pooling.avg_pool2d(
            x, (3, 2), stride=(2, 1), padding=1, ceil_mode=True, count_include_pad=False
        ),
        (((2, 2, 6, 5), "real"),),
        (pooling.AvgPool2d,),
    ),
    Case(
        "avg_pool2d count_include_pad",
        lambda x: pooling.avg_pool2d(x, 3, stride=2, padding=1, ceil_mode=True),
        (((1, 2, 6, 6), "real"),),
        (pooling.AvgPool2d,),
    ),
    Case(
        "batch_norm 2-D",
        lambda x: normalization.batch_norm(x, None, None, training=True),
        (((4, 3), "real"),),
        (normalization.BatchNorm,),
    ),
    Case(
        "batch_norm 4-D affine",
        lambda x, w, b: normalization.batch_norm(x, None, None, w, b, training=True),
        (((2, 3, 2, 2), "real"), ((3,), "real"), ((3,), "real")),
        (normalization.BatchNorm,),
    ),
    Case(
        "binary_cross_entropy",
        lambda x, y: losses.binary_cross_entropy(x, y, reduction="none"),
        (((2, 3), "unit"), ((2, 3), "unit")),
        (losses.BinaryCrossEntropy,),
    ),
    Case(
        "binary_cross_entropy_with_logits",
        lambda x, y: losses.binary_cross_entropy_with_logits(x, y, reduction="none"),
        (((2, 3), "real"), ((2, 3), "unit")),
        (losses.BinaryCrossEntropyWithLogits,),
    ),
    Case(
        "bce_with_logits pos_weight",
        lambda x, y, p: losses.binary_cross_entropy_with_logits(x, y, reduction="none", pos_weight=p),
        (((2, 3), "real"), ((2, 3), "unit"), ((3,), "positive")),
        (losses.BinaryCrossEntropyWithLogits,),
    ),
    Case(
        "cross_entropy",
        lambda x: losses.cross_entropy(x, tensor([2, 0, -100], device=x.device), label_smoothing=0.1),
        (((3, 4), "real"),),
        (reduce.LogSoftmax, elementwise.Where),
    ),
    Case(
        "mse_loss",
        lambda x, y: losses.mse_loss(x, y),
        (((2, 3), "real"), ((2, 3), "real")),
        (elementwise.Sub,),
    ),
)


def run_case(case: Case, device: str = "cpu") -> tuple[GradcheckReport, GradcheckReport]:
    """The first- and second-order reports of one case, on fresh random inputs."""
    inputs = case.sample_inputs(device)
    first = compare_gradients(case.fn, inputs)
    second = compare_gradients(first_order(case.fn, len(inputs)), second_order_inputs(case.fn, inputs))
    return first, second
