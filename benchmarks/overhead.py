"""Per-op overhead of the autograd engine, next to raw NumPy and (when installed) PyTorch CPU.

For small arrays an op's cost is bookkeeping, not arithmetic: this measures, in microseconds,
one forward and backward of a small op in minigen, the same arithmetic written directly in
NumPy (forward and hand-written backward), minigen's forward under no_grad, and PyTorch.

    python benchmarks/overhead.py [--size 16] [--repeat 7]
"""

from __future__ import annotations

import argparse

import numpy as np
from harness import threads, torch, versions
from timing import time_us

import minigen

# The NumPy twins do the arithmetic of the whole timed step: the op, the .sum() of its result,
# the gradient of that sum (ones) and the op's hand-written backward.


def np_add(a, b):
    y = a + b
    y.sum()
    g = np.ones_like(y)
    return g.copy(), g.copy()


def np_mul(a, b):
    y = a * b
    y.sum()
    g = np.ones_like(y)
    return g * b, g * a


def np_exp(a):
    y = np.exp(a)
    y.sum()
    return np.ones_like(y) * y


def np_tanh(a):
    y = np.tanh(a)
    y.sum()
    return np.ones_like(y) * (1 - y * y)


def np_matmul(a, b):
    y = a @ b
    y.sum()
    g = np.ones_like(y)
    return g @ b.T, a.T @ g


def np_sum(a):
    a.sum().sum()
    return np.broadcast_to(np.ones((), a.dtype), a.shape).copy()


def _cases(n: int):
    """(name, minigen fn of tensors, numpy fn of arrays (above), torch fn of tensors, input shapes)."""
    return [
        ("add", lambda a, b: a + b, np_add, lambda a, b: a + b, [(n,), (n,)]),
        ("mul", lambda a, b: a * b, np_mul, lambda a, b: a * b, [(n,), (n,)]),
        ("exp", lambda a: a.exp(), np_exp, lambda a: a.exp(), [(n,)]),
        ("tanh", lambda a: a.tanh(), np_tanh, lambda a: a.tanh(), [(n,)]),
        ("matmul", lambda a, b: a @ b, np_matmul, lambda a, b: a @ b, [(n, n), (n, n)]),
        ("sum", lambda a: a.sum(), np_sum, lambda a: a.sum(), [(n, n)]),
    ]


def measure(size: int, repeat: int) -> list[dict]:
    """One row per case: the median microseconds of each column, at 1 thread."""
    rng = np.random.default_rng(0)
    rows = []
    with threads(1):
        for name, mg_fn, np_fn, torch_fn, shapes in _cases(size):
            arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]
            tensors = [minigen.tensor(a, requires_grad=True) for a in arrays]

            def minigen_step(tensors=tensors, mg_fn=mg_fn):
                mg_fn(*tensors).sum().backward()

            def minigen_forward(tensors=tensors, mg_fn=mg_fn):
                with minigen.no_grad():
                    mg_fn(*tensors)

            row = {
                "op": name,
                "numpy": time_us(lambda arrays=arrays, np_fn=np_fn: np_fn(*arrays), repeat),
                "minigen": time_us(minigen_step, repeat),
                "minigen no_grad fwd": time_us(minigen_forward, repeat),
            }
            if torch is not None:
                ts = [torch.tensor(a, requires_grad=True) for a in arrays]
                row["torch"] = time_us(
                    lambda ts=ts, torch_fn=torch_fn: torch_fn(*ts).sum().backward(), repeat
                )
            rows.append(row)
    return rows


def print_table(rows: list[dict], size: int) -> None:
    columns = ["numpy", "minigen", "minigen no_grad fwd"] + (["torch"] if torch is not None else [])
    print(f"per-op forward+backward, float32, arrays of side {size}, 1 thread, microseconds (median)")
    print(versions())
    header = f"{'op':<8}" + "".join(f"{c:>22}" for c in columns) + f"{'minigen / numpy':>18}"
    if torch is not None:
        header += f"{'minigen / torch':>18}"
    print(header)
    print("-" * len(header))
    for row in rows:
        line = f"{row['op']:<8}" + "".join(f"{row[c]:>22.1f}" for c in columns)
        line += f"{row['minigen'] / row['numpy']:>18.1f}"
        if torch is not None:
            line += f"{row['minigen'] / row['torch']:>18.2f}"
        print(line)
    print("\nEvery column times the op, a .sum() of its result and the backward of both.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=16, help="side of the small arrays (default 16)")
    parser.add_argument("--repeat", type=int, default=7, help="timing rounds; the median is shown")
    args = parser.parse_args()
    print_table(measure(args.size, args.repeat), args.size)


if __name__ == "__main__":
    main()
