"""Where a minigen training step spends its time: matrix products, copies, elementwise work,
the optimiser, and the autograd bookkeeping around them.

Every array computation in minigen happens inside a ``Function.forward`` (the backward pass
is made of Functions too) or in ``Optimizer.step``. This script wraps each of them in a timer
that keeps exclusive time (a region's time minus the regions inside it), sorted by kind:

- matrix products: ``minigen.ops.linalg`` and the convolutions' products;
- copies: the convolutions' padding and columns (``im2col``, ``col2im``) and the shape
  Functions (``minigen.ops.shape``);
- elementwise: every other Function (arithmetic, activations, reductions, losses, batch norm),
  the masks that Maximum's and Minimum's backward builds and batch norm's array backward;
- optimiser: ``Optimizer.step``;
- autograd and Python: the rest of the step's wall time (graph building, the sweep, modules).

    python benchmarks/shares.py [--models mlp-vae conv-vae dcgan] [--threads 1 2] [--batch 128]

The timers add about a microsecond to each of a step's few hundred Functions.
"""

from __future__ import annotations

import argparse
import contextlib
import time

from programs import BATCH, DESCRIPTIONS, MODELS, minigen_program

import minigen
import minigen.ops.conv as conv
from minigen.autograd import Function
from minigen.optim import Optimizer

KINDS = ("matrix products", "copies", "elementwise", "optimiser", "autograd and Python")


class Timers:
    """Exclusive seconds per kind: each region's time less that of the regions inside it."""

    def __init__(self):
        self.seconds = dict.fromkeys(KINDS, 0.0)
        self._inner = [0.0]  # time spent in inner regions, one entry per open region

    def wrap(self, fn, kind: str):
        def timed(*args, **kwargs):
            self._inner.append(0.0)
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                inner = self._inner.pop()
                self.seconds[kind] += elapsed - inner
                self._inner[-1] += elapsed

        return timed


def _kind(function: type) -> str:
    module = function.__module__
    if module in ("minigen.ops.linalg", "minigen.ops.conv"):
        return "matrix products"  # the convolutions' copies are timed on their own
    return "copies" if module == "minigen.ops.shape" else "elementwise"


def _functions(root=Function):
    for sub in root.__subclasses__():
        yield sub
        yield from _functions(sub)


@contextlib.contextmanager
def instrumented(timers: Timers):
    """Every Function's forward, the convolutions' copies and Optimizer.step timed while inside."""
    functions = set(_functions())
    patches = [(f, "forward", _kind(f)) for f in functions if "forward" in vars(f)]
    # the masks of the piecewise-linear ops are computed in backward, outside any Function
    patches += [
        (f, name, "elementwise") for f in functions for name in ("slope", "a_wins") if name in vars(f)
    ]
    patches += [(conv, name, "copies") for name in ("_pad", "_columns", "_zero_padded", "_add_columns")]
    patches += [(Optimizer, "step", "optimiser")]
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    for owner, name, kind in patches:
        setattr(owner, name, timers.wrap(vars(owner)[name], kind))
    try:
        yield
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)


def shares(model: str, threads: int, batch: int, steps: int) -> dict:
    """Milliseconds per step of each kind, and the total, over ``steps`` timed steps."""
    minigen.set_num_threads(threads)
    step, _ = minigen_program(model, batch)
    for _ in range(2):
        step()
    timers = Timers()
    with instrumented(timers):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        total = time.perf_counter() - start
    timers.seconds["autograd and Python"] = total - sum(timers.seconds.values())
    return {"total_ms": total / steps * 1e3, **{k: v / steps * 1e3 for k, v in timers.seconds.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mlp-vae", "conv-vae", "dcgan"], choices=MODELS)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    print(f"share of a minigen training step's time (float32, batch {args.batch}); ms per step")
    header = f"{'model':<34}{'thr':>4}{'ms':>9}" + "".join(f"{k:>22}" for k in KINDS)
    print(header + "\n" + "-" * len(header))
    for model in args.models:
        for n in args.threads:
            r = shares(model, n, args.batch, args.steps)
            cells = "".join(f"{r[k]:>12.2f} ({r[k] / r['total_ms']:>5.1%})" for k in KINDS)
            print(f"{DESCRIPTIONS[model]:<34}{n:>4}{r['total_ms']:>9.2f}{cells}", flush=True)


if __name__ == "__main__":
    main()
