"""Layer forward and forward+backward times, minigen next to PyTorch CPU in the same run.

Both libraries get the same float32 inputs, the same weights and the same thread count
(NumPy's BLAS through threadpoolctl, PyTorch through torch.set_num_threads). Forward+backward
is ``layer(x).backward(g)`` for a fixed output gradient g, with gradients for x and the
parameters.

    python benchmarks/layers.py [--threads 1 2] [--repeat 7]
"""

from __future__ import annotations

import argparse

import numpy as np
from harness import threads, time_us, torch, versions

import minigen
import minigen.nn as nn

# (name, minigen layer factory, torch layer factory name and arguments, input shape)
LAYERS = [
    ("Linear 784->400", lambda: nn.Linear(784, 400), ("Linear", (784, 400), {}), (128, 784)),
    (
        "Conv2d 32->64 3x3 p1",
        lambda: nn.Conv2d(32, 64, 3, padding=1),
        ("Conv2d", (32, 64, 3), {"padding": 1}),
        (128, 32, 14, 14),
    ),
    (
        "ConvTranspose2d 64->32 4x4 s2 p1",
        lambda: nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1),
        ("ConvTranspose2d", (64, 32, 4), {"stride": 2, "padding": 1}),
        (128, 64, 7, 7),
    ),
]


def _timings(library, layer, x, g, repeat) -> tuple[float, float]:
    """(forward, forward+backward) microseconds of ``layer`` on ``x`` in minigen or torch."""

    def forward():
        with library.no_grad():
            layer(x)

    def step():
        layer.zero_grad()
        x.grad = None
        layer(x).backward(g)

    return time_us(forward, repeat), time_us(step, repeat)


def _torch_twin(spec, state):
    """The PyTorch layer of ``spec`` holding the same parameter values as the minigen one."""
    kind, args, kwargs = spec
    layer = getattr(torch.nn, kind)(*args, **kwargs)
    with torch.no_grad():
        for name, param in layer.named_parameters():
            param.copy_(torch.from_numpy(state[name]))
    return layer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts to run")
    parser.add_argument("--repeat", type=int, default=7, help="timing rounds; the median is shown")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    print("layer times, float32, milliseconds (median); ratio = minigen / torch")
    print(versions())
    header = f"{'layer':<34}{'threads':>8}{'fwd':>9}{'torch fwd':>11}{'ratio':>7}"
    header += f"{'fwd+bwd':>10}{'torch f+b':>11}{'ratio':>7}"
    print(header)
    print("-" * len(header))
    for name, make, spec, shape in LAYERS:
        layer = make()
        state = {k: v.numpy() for k, v in layer.state_dict().items()}
        x = rng.standard_normal(shape).astype(np.float32)
        with minigen.no_grad():
            g = rng.standard_normal(layer(minigen.tensor(x)).shape).astype(np.float32)
        for n in args.threads:
            with threads(n):
                fwd, step = _timings(
                    minigen, layer, minigen.tensor(x, requires_grad=True), minigen.tensor(g), args.repeat
                )
                line = f"{name:<34}{n:>8}{fwd / 1e3:>9.2f}"
                if torch is None:
                    print(line + f"{'-':>11}{'-':>7}{step / 1e3:>10.2f}{'-':>11}{'-':>7}")
                    continue
                twin = _torch_twin(spec, state)
                x_torch = torch.tensor(x, requires_grad=True)
                torch_fwd, torch_step = _timings(torch, twin, x_torch, torch.from_numpy(g), args.repeat)
            line += f"{torch_fwd / 1e3:>11.2f}{fwd / torch_fwd:>7.2f}"
            print(line + f"{step / 1e3:>10.2f}{torch_step / 1e3:>11.2f}{step / torch_step:>7.2f}")


if __name__ == "__main__":
    main()
