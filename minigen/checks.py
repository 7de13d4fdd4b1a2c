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
from minigen.ops import conv as C
from minigen.ops import elementwise as E
from minigen.ops import linalg as L
from minigen.ops import losses as LOSS
from minigen.ops import normalization as NORM
from minigen.ops import pooling as P
from minigen.ops import reduce as R
from minigen.ops import shape as S
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
    (gx,) = grad(P.max_pool2d(x, 3, stride=2, padding=1, ceil_mode=True), x, g, create_graph=True)
    return gx


CASES = (
    Case("add", lambda a, b: a + b, (((3, 1, 4), "real"), ((2, 4), "real")), (E.Add,)),
    Case("add 0-d", lambda a, b: a + b, (((), "real"), ((2, 3), "real")), (E.Add,)),
    Case("sub", lambda a, b: a - b, (((2, 3), "real"), ((3,), "real")), (E.Sub,)),
    Case("mul", lambda a, b: a * b, (((2, 1), "real"), ((1, 3), "real")), (E.Mul,)),
    Case("div", lambda a, b: a / b, (((2, 3), "real"), ((2, 3), "nonzero")), (E.Div,)),
    Case("neg", lambda x: -x, (((2, 3), "real"),), (E.Neg,)),
    Case("pow scalar", lambda x: x**2.5, (((2, 3), "positive"),), (E.PowScalar,)),
    Case("pow integer", lambda x: x**3, (((2, 3), "real"),), (E.PowScalar,)),
    Case("pow tensor", lambda a, b: a**b, (((2, 3), "positive"), ((3,), "real")), (E.Pow,)),
    Case("exp", E.exp, (((2, 3), "real"),), (E.Exp,)),
    Case("log", E.log, (((2, 3), "positive"),), (E.Log,)),
    Case("sqrt", E.sqrt, (((2, 3), "positive"),), (E.Sqrt,)),
    Case("abs", E.abs, (((2, 3), "nonzero"),), (E.Abs,)),
    Case("relu", E.relu, (((2, 3), "nonzero"),), (E.ReLU,)),
    Case("leaky_relu", lambda x: E.leaky_relu(x, 0.1), (((2, 3), "nonzero"),), (E.LeakyReLU,)),
    Case("sigmoid", E.sigmoid, (((2, 3), "real"),), (E.Sigmoid,)),
    Case("tanh", E.tanh, (((2, 3), "real"),), (E.Tanh,)),
    Case("softplus", E.softplus, (((2, 3), "real"),), (E.Softplus,)),
    # Both operands come from one distinct grid, so no pair ties (ties are kinks).
    Case("maximum", lambda x: E.maximum(x[0], x[1, 0]), (((2, 3, 4), "distinct"),), (E.Maximum,)),
    Case("minimum", lambda x: E.minimum(x[0], x[1]), (((2, 3, 4), "distinct"),), (E.Minimum,)),
    Case("clip", lambda x: E.clip(x, -0.9, 0.9), (((3, 4), "distinct"),), (E.Clip,)),
    Case(
        "where",
        lambda a, b: E.where(tensor(_MASK, device=a.device), a, b),
        (((2, 3), "real"), ((3,), "real")),
        (E.Where,),
    ),
    Case("sum", lambda x: R.sum(x, dim=1), (((2, 3, 4), "real"),), (R.Sum,)),
    Case("sum all", R.sum, (((2, 3), "real"),), (R.Sum,)),
    Case("mean", lambda x: R.mean(x, dim=(0, 2), keepdim=True), (((2, 3, 4), "real"),), (R.Mean,)),
    Case("var", lambda x: R.var(x, dim=0), (((4, 3), "real"),), (R.Mean, R.Sum)),
    Case("max", lambda x: R.max(x, dim=-1), (((3, 4), "distinct"),), (R.Max,)),
    Case("min", R.min, (((3, 4), "distinct"),), (R.Min,)),
    Case("logsumexp", lambda x: R.logsumexp(x, dim=1), (((2, 5), "real"),), (R.LogSumExp,)),
    Case("softmax", lambda x: R.softmax(x, dim=-1), (((2, 5), "real"),), (R.Softmax,)),
    Case("log_softmax", lambda x: R.log_softmax(x, dim=0), (((4, 3), "real"),), (R.LogSoftmax,)),
    Case("matmul 2-D", L.matmul, (((2, 3), "real"), ((3, 4), "real")), (L.MatMul,)),
    Case("matmul batched", L.matmul, (((2, 1, 2, 3), "real"), ((3, 3, 2), "real")), (L.MatMul,)),
    Case("matmul 1-D @ 2-D", L.matmul, (((3,), "real"), ((3, 2), "real")), (L.MatMul,)),
    Case("matmul 2-D @ 1-D", L.matmul, (((2, 3), "real"), ((3,), "real")), (L.MatMul,)),
    Case("matmul 1-D @ 1-D", L.matmul, (((3,), "real"), ((3,), "real")), (L.MatMul,)),
    Case("linear", L.linear, (((4, 3), "real"), ((2, 3), "real"), ((2,), "real")), (L.Linear,)),
    Case("linear batched, no bias", L.linear, (((2, 2, 3), "real"), ((4, 3), "real")), (L.Linear,)),
    Case("linear 1-D input", L.linear, (((3,), "real"), ((2, 3), "real"), ((2,), "real")), (L.Linear,)),
    Case("reshape", lambda x: S.reshape(x, (3, -1)), (((2, 3, 2), "real"),), (S.Reshape,)),
    Case("permute", lambda x: S.permute(x, 2, 0, 1), (((2, 3, 4), "real"),), (S.Permute,)),
    Case("transpose", lambda x: S.transpose(x, 0, 1), (((2, 3), "real"),), (S.Permute,)),
    Case("broadcast_to", lambda x: S.broadcast_to(x, (2, 3, 4)), (((3, 1), "real"),), (S.BroadcastTo,)),
    Case("sum_to", lambda x: S.sum_to(x, (3, 1)), (((2, 3, 4), "real"),), (S.SumTo,)),
    Case("getitem slices", lambda x: x[1:, ::2, None], (((3, 4), "real"),), (S.GetItem, S.IndexAdd)),
    Case(
        "getitem ints",
        lambda x: x[tensor([0, 2, 0], device=x.device)],
        (((3, 2), "real"),),
        (S.GetItem, S.IndexAdd),
    ),
    Case(
        "getitem mask",
        lambda x: x[tensor(_MASK, device=x.device)],
        (((2, 3), "real"),),
        (S.GetItem, S.IndexAdd),
    ),
    Case("cat", lambda a, b: S.cat([a, b], dim=1), (((2, 1), "real"), ((2, 3), "real")), (S.Concatenate,)),
    Case(
        "stack", lambda a, b: S.stack([a, b], dim=-1), (((2, 3), "real"), ((2, 3), "real")), (S.Concatenate,)
    ),
    Case("pad", lambda x: S.pad(x, (1, 2, 0, 1)), (((2, 3), "real"),), (S.Pad,)),
    Case("flatten", lambda x: S.flatten(x, 1), (((2, 3, 2), "real"),), (S.Reshape,)),
    Case("squeeze", lambda x: S.squeeze(x, 1), (((2, 1, 3), "real"),), (S.Reshape,)),
    Case("unsqueeze", lambda x: S.unsqueeze(x, 0), (((2, 3), "real"),), (S.Reshape,)),
    Case("to device", lambda x: S.Convert("cpu", None)(x), (((2, 3), "real"),), (S.Convert,)),
    Case(
        "conv2d",
        lambda x, w, b: C.conv2d(x, w, b, stride=(2, 1), padding=(1, 2), dilation=(1, 2)),
        (((2, 2, 5, 4), "real"), ((3, 2, 3, 2), "real"), ((3,), "real")),
        (C.Conv2d,),
    ),
    Case(
        "conv_transpose2d",
        lambda x, w, b: C.conv_transpose2d(
            x, w, b, stride=(2, 1), padding=(1, 0), output_padding=(1, 1), dilation=(1, 2)
        ),
        (((2, 2, 3, 3), "real"), ((2, 3, 2, 3), "real"), ((3,), "real")),
        (C.ConvTranspose2d,),
    ),
    Case(
        "conv2d weight grad",
        lambda x, g: C.Conv2dWeightGrad((3, 2), (2, 1), (1, 2), (1, 2))(x, g),
        (((2, 2, 5, 4), "real"), ((2, 3, 3, 6), "real")),
        (C.Conv2dWeightGrad,),
    ),
    Case(
        "max_pool2d",
        lambda x: P.max_pool2d(x, (3, 2), stride=(2, 1), padding=1, dilation=(1, 2), ceil_mode=True),
        (((2, 2, 6, 5), "distinct"),),
        (P.MaxPool2d,),
    ),
    Case(
        "max_pool2d backward",
        _max_pool2d_input_grad,
        (((1, 2, 4, 4), "real"),),
        (P.MaxPool2dBackward,),
    ),
    Case(
        "avg_pool2d",
        lambda x: P.avg_pool2d(x, (3, 2), stride=(2, 1), padding=1, ceil_mode=True, count_include_pad=False),
        (((2, 2, 6, 5), "real"),),
        (P.AvgPool2d,),
    ),
    Case(
        "avg_pool2d count_include_pad",
        lambda x: P.avg_pool2d(x, 3, stride=2, padding=1, ceil_mode=True),
        (((1, 2, 6, 6), "real"),),
        (P.AvgPool2d,),
    ),
    Case(
        "batch_norm 2-D",
        lambda x: NORM.batch_norm(x, None, None, training=True),
        (((4, 3), "real"),),
        (NORM.BatchNorm,),
    ),
    Case(
        "batch_norm 4-D affine",
        lambda x, w, b: NORM.batch_norm(x, None, None, w, b, training=True),
        (((2, 3, 2, 2), "real"), ((3,), "real"), ((3,), "real")),
        (NORM.BatchNorm,),
    ),
    Case(
        "binary_cross_entropy",
        lambda x, y: LOSS.binary_cross_entropy(x, y, reduction="none"),
        (((2, 3), "unit"), ((2, 3), "unit")),
        (LOSS.BinaryCrossEntropy,),
    ),
    Case(
        "binary_cross_entropy_with_logits",
        lambda x, y: LOSS.binary_cross_entropy_with_logits(x, y, reduction="none"),
        (((2, 3), "real"), ((2, 3), "unit")),
        (LOSS.BinaryCrossEntropyWithLogits,),
    ),
    Case(
        "bce_with_logits pos_weight",
        lambda x, y, p: LOSS.binary_cross_entropy_with_logits(x, y, reduction="none", pos_weight=p),
        (((2, 3), "real"), ((2, 3), "unit"), ((3,), "positive")),
        (LOSS.BinaryCrossEntropyWithLogits,),
    ),
    Case(
        "cross_entropy",
        lambda x: LOSS.cross_entropy(x, tensor([2, 0, -100], device=x.device), label_smoothing=0.1),
        (((3, 4), "real"),),
        (R.LogSoftmax, E.Where),
    ),
    Case("mse_loss", lambda x, y: LOSS.mse_loss(x, y), (((2, 3), "real"), ((2, 3), "real")), (E.Sub,)),
)


def run_case(case: Case, device: str = "cpu") -> tuple[GradcheckReport, GradcheckReport]:
    """The first- and second-order reports of one case, on fresh random inputs."""
    inputs = case.sample_inputs(device)
    first = compare_gradients(case.fn, inputs)
    second = compare_gradients(first_order(case.fn, len(inputs)), second_order_inputs(case.fn, inputs))
    return first, second
