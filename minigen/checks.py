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
from minigen.creation import rand, randn, tensor
from minigen.gradcheck import GradcheckReport, compare_gradients, first_order, second_order_inputs
from minigen.ops import elementwise as E
from minigen.ops import linalg as L
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
    Case("where", lambda a, b: E.where(tensor(_MASK), a, b), (((2, 3), "real"), ((3,), "real")), (E.Where,)),
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
    Case("reshape", lambda x: S.reshape(x, (3, -1)), (((2, 3, 2), "real"),), (S.Reshape,)),
    Case("permute", lambda x: S.permute(x, 2, 0, 1), (((2, 3, 4), "real"),), (S.Permute,)),
    Case("transpose", lambda x: S.transpose(x, 0, 1), (((2, 3), "real"),), (S.Permute,)),
    Case("broadcast_to", lambda x: S.broadcast_to(x, (2, 3, 4)), (((3, 1), "real"),), (S.BroadcastTo,)),
    Case("sum_to", lambda x: S.sum_to(x, (3, 1)), (((2, 3, 4), "real"),), (S.SumTo,)),
    Case("getitem slices", lambda x: x[1:, ::2, None], (((3, 4), "real"),), (S.GetItem, S.IndexAdd)),
    Case("getitem ints", lambda x: x[tensor([0, 2, 0])], (((3, 2), "real"),), (S.GetItem, S.IndexAdd)),
    Case("getitem mask", lambda x: x[tensor(_MASK)], (((2, 3), "real"),), (S.GetItem, S.IndexAdd)),
    Case("cat", lambda a, b: S.cat([a, b], dim=1), (((2, 1), "real"), ((2, 3), "real")), (S.Concatenate,)),
    Case(
        "stack", lambda a, b: S.stack([a, b], dim=-1), (((2, 3), "real"), ((2, 3), "real")), (S.Concatenate,)
    ),
    Case("pad", lambda x: S.pad(x, (1, 2, 0, 1)), (((2, 3), "real"),), (S.Pad,)),
    Case("flatten", lambda x: S.flatten(x, 1), (((2, 3, 2), "real"),), (S.Reshape,)),
    Case("squeeze", lambda x: S.squeeze(x, 1), (((2, 1, 3), "real"),), (S.Reshape,)),
    Case("unsqueeze", lambda x: S.unsqueeze(x, 0), (((2, 3), "real"),), (S.Reshape,)),
    Case("to device", lambda x: S.Convert("cpu", None)(x), (((2, 3), "real"),), (S.Convert,)),
)


def run_case(case: Case, device: str = "cpu") -> tuple[GradcheckReport, GradcheckReport]:
    """The first- and second-order reports of one case, on fresh random inputs."""
    inputs = case.sample_inputs(device)
    first = compare_gradients(case.fn, inputs)
    second = compare_gradients(first_order(case.fn, len(inputs)), second_order_inputs(case.fn, inputs))
    return first, second
