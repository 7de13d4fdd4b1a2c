"""Training-step times and peak working memory, minigen next to PyTorch CPU, in one run.

For each model, a full float32 training step (forward, loss, backward, optimiser step) on
MNIST-shaped random data (batch 128) is timed in minigen and in PyTorch on the identical
architecture with the same weights, at each thread count. The layer rows time one layer's
forward and backward. Every measurement runs in its own child process that imports one
library only, so each one's peak working memory is its own: peak RSS minus the RSS right after
the import (``import torch`` alone is hundreds of MiB, which raw RSS would count against it).
minigen is measured twice, with its malloc thresholds (the default, ``minigen.allocator``)
and with glibc's defaults (``MINIGEN_MALLOC=system``).

GFLOP/s is each step's matrix-product and convolution arithmetic (counted by PyTorch's
FlopCounterMode on the twin) over its time, next to this machine's float32 matrix-product peak
(a 2048 x 2048 NumPy product) at the same thread count.

    python benchmarks/run.py [--threads 1 2] [--repeat 7] [--rounds 3] [--models mlp-vae ...]
        [--json benchmarks/results-cpu.json]
    python benchmarks/run.py --device cuda [--batch 128 1024] [--json benchmarks/results-gpu.json]

With ``--device cuda`` it makes the GPU table instead: each model's step at each batch size in
minigen on the GPU and on the CPU, and in PyTorch on the same GPU, timed with a device sync.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

BATCH = 128
IMAGE = (1, 28, 28)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


# --- the measured programs, written once for each library -----------------------------------------


def _minigen_program(model: str, batch: int = BATCH, device: str = "cpu"):
    """(step, state): a no-argument function doing one minigen training step on ``device``, and
    the weights (as host arrays, for the PyTorch twin)."""
    import numpy as np

    import minigen
    import minigen.nn as nn
    from minigen.generative.gan import DCGAN
    from minigen.generative.vae import MLPVAE, ConvVAE
    from minigen.optim import Adam
    from minigen.training import gan_step, vae_step

    minigen.manual_seed(0)
    rng = np.random.default_rng(0)
    if model in LAYERS:
        layer = LAYERS[model][0](nn).to(device)
        shape = (batch, *LAYERS[model][2])
        x = minigen.tensor(rng.standard_normal(shape, dtype=np.float32), device=device, requires_grad=True)
        with minigen.no_grad():
            g = minigen.tensor(rng.standard_normal(layer(x).shape, dtype=np.float32), device=device)

        def layer_step():
            layer.zero_grad()
            x.grad = None
            layer(x).backward(g)

        return layer_step, {k: v.numpy() for k, v in layer.state_dict().items()}
    x = minigen.tensor(rng.random((batch, *IMAGE), dtype=np.float32), device=device)
    if model == "dcgan":
        gan = DCGAN(IMAGE).to(device)
        g_opt = Adam(gan.generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
        d_opt = Adam(gan.discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
        return (lambda: gan_step(gan, g_opt, d_opt, x)), _state(gan)
    vae = (MLPVAE(IMAGE) if model == "mlp-vae" else ConvVAE(IMAGE)).to(device)
    optimizer = Adam(vae.parameters(), lr=1e-3)
    return (lambda: vae_step(vae, optimizer, x)), _state(vae)


def _state(module) -> dict:
    return {k: v.numpy() for k, v in module.state_dict().items()}


def _torch_program(model: str, state: dict, batch: int = BATCH, device: str = "cpu"):
    """The same step in PyTorch, its weights copied from minigen's ``state``."""
    import numpy as np
    import torch
    from torch_twins import MODELS, negative_elbo

    functional = torch.nn.functional
    torch.manual_seed(0)
    layer = LAYERS[model][0](torch.nn) if model in LAYERS else MODELS[model]()
    layer.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    layer.to(device)
    rng = np.random.default_rng(0)
    if model in LAYERS:
        shape = (batch, *LAYERS[model][2])
        x = torch.from_numpy(rng.standard_normal(shape, dtype="float32")).to(device).requires_grad_()
        g = torch.from_numpy(rng.standard_normal(tuple(layer(x).shape), dtype="float32")).to(device)

        def layer_step():
            layer.zero_grad()
            x.grad = None
            layer(x).backward(g)

        return layer_step
    x = torch.from_numpy(rng.random((batch, *IMAGE), dtype="float32")).to(device)
    if model == "dcgan":
        g_opt = torch.optim.Adam(layer.generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
        d_opt = torch.optim.Adam(layer.discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
        ones, zeros = torch.ones(batch, device=device), torch.zeros(batch, device=device)

        def gan_step():
            fake = layer.generator(torch.randn(batch, 100, device=device))
            d_real, d_fake = layer.discriminator(x), layer.discriminator(fake.detach())
            d_loss = functional.binary_cross_entropy_with_logits(
                d_real, ones
            ) + functional.binary_cross_entropy_with_logits(d_fake, zeros)
            d_opt.zero_grad()
            d_loss.backward()
            d_opt.step()
            g_loss = functional.binary_cross_entropy_with_logits(layer.discriminator(fake), ones)
            g_opt.zero_grad()
            g_loss.backward()
            g_opt.step()

        return gan_step
    optimizer = torch.optim.Adam(layer.parameters(), lr=1e-3)

    def vae_step():
        loss = negative_elbo(layer, x).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return vae_step


# name -> (factory given an nn module namespace, description, shape of one input example)
LAYERS = {
    "linear": (lambda nn: nn.Linear(784, 400), "Linear 784->400", (784,)),
    "conv2d": (lambda nn: nn.Conv2d(32, 64, 3, padding=1), "Conv2d 32->64 3x3 p1", (32, 14, 14)),
    "conv-transpose2d": (
        lambda nn: nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1),
        "ConvTranspose2d 64->32 4x4 s2 p1",
        (64, 7, 7),
    ),
}
MODELS = ("mlp-vae", "conv-vae", "dcgan", *LAYERS)
DESCRIPTIONS = {"mlp-vae": "MLP VAE 784-400-20", "conv-vae": "conv VAE", "dcgan": "DCGAN (D + G step)"}
DESCRIPTIONS.update({name: spec[1] for name, spec in LAYERS.items()})


# --- one measurement, in a child process -------------------------------------------------------------


def _status_mib(field: str) -> float:
    with open("/proc/self/status") as status:
        fields = dict(line.split(":", 1) for line in status)
    return int(fields[field].split()[0]) / 1024


def _rss_mib() -> float:
    return _status_mib("VmRSS")


def _peak_rss_mib() -> float:
    """VmHWM, this process image's own peak (getrusage's ru_maxrss would also count the parent's
    RSS at the fork that started this child)."""
    return _status_mib("VmHWM")


def _median_seconds(step, repeat: int, sync=lambda: None) -> float:
    """Median over ``repeat`` rounds of the mean time of one step (each round lasts >= 0.2 s).
    ``sync`` waits for the device, so that a GPU's queued work is inside the time."""
    step()  # warm-up: first-touch allocations, BLAS thread start-up, kernel compilation
    sync()
    start, calls = time.perf_counter(), 0
    while time.perf_counter() - start < 0.2:
        step()
        sync()
        calls += 1
    rounds = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(calls):
            step()
        sync()
        rounds.append((time.perf_counter() - start) / calls)
    return sorted(rounds)[len(rounds) // 2]


def _warm_up(library) -> None:
    """One Adam step of a 64 -> 64 linear layer, so that what a library loads or allocates
    once on first use (BLAS buffers, PyTorch's autograd engine and optimiser modules, about
    40-70 MiB) is part of the baseline rather than of the measured step."""
    layer = library.nn.Linear(64, 64)
    optimizer = library.optim.Adam(layer.parameters())
    layer(library.ones(64, 64)).sum().backward()
    optimizer.step()


def child(spec: dict) -> dict:
    """Time one (library, model, threads, device, batch) and measure its peak working memory:
    host memory on the CPU (everything the step needs is imported before the baseline RSS is
    read, so only the step's arrays count), the allocator's peak on a GPU."""
    import numpy as np

    threads, state_file = spec["threads"], spec.get("state")
    device, batch = spec.get("device", "cpu"), spec.get("batch", BATCH)
    cuda = device == "cuda"
    if spec["library"] == "torch":
        import torch
        from torch.utils.flop_counter import FlopCounterMode

        torch.set_num_threads(threads)
        _warm_up(torch)
        baseline = _rss_mib()
        with np.load(state_file) as archive:
            state = {key: archive[key] for key in archive.files}
        step = _torch_program(spec["model"], state, batch, device)
        sync = torch.cuda.synchronize if cuda else (lambda: None)
        result = {"seconds": _median_seconds(step, spec["repeat"], sync)}
        counter = FlopCounterMode(display=False)
        with counter:
            step()
        result["flops"] = counter.get_total_flops()
        device_peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else None
    else:
        import minigen
        import minigen.training  # noqa: F401 - the step functions and everything they import

        minigen.set_num_threads(threads)
        _warm_up(minigen)
        baseline = _rss_mib()
        step, state = _minigen_program(spec["model"], batch, device)
        if state_file:
            np.savez(state_file, **state)
        sync = lambda: None  # noqa: E731
        if cuda:
            import cupy

            sync = cupy.cuda.Device().synchronize
        seconds = _median_seconds(step, spec["repeat"], sync)
        result = {"seconds": seconds, "malloc_tuned": minigen.allocator.applied}
        # CuPy's memory pool keeps what the step needed at its peak
        device_peak = cupy.get_default_memory_pool().total_bytes() / 2**20 if cuda else None
    result["memory_mib"] = device_peak if cuda else _peak_rss_mib() - baseline
    return result


def _spawn(spec: dict, malloc: str | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "MINIGEN_MALLOC"}
    env.update({name: str(spec["threads"]) for name in THREAD_VARIABLES})
    if malloc:
        env["MINIGEN_MALLOC"] = malloc
    out = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)], env=env, capture_output=True, text=True
    )
    if out.returncode != 0:
        raise RuntimeError(f"benchmark child {spec} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def matmul_peak_gflops(threads: int) -> float:
    """This machine's float32 matrix-product rate: a 2048 x 2048 NumPy product, best of 5."""
    return _spawn({"library": "numpy-peak", "threads": threads})["gflops"]


def _peak_child(threads: int) -> dict:
    import numpy as np
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads, user_api="blas")
    a = np.random.default_rng(0).standard_normal((2048, 2048), dtype=np.float32)
    a @ a
    best = min(_time_once(lambda: a @ a) for _ in range(5))
    return {"gflops": 2 * 2048**3 / best / 1e9}


def _time_once(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# --- the table ---------------------------------------------------------------------------------------


def _median(values):
    return sorted(values)[len(values) // 2]


def _take_turns(rounds: int, children: dict) -> tuple[dict, dict, dict]:
    """Run each child ``rounds`` times, the children taking turns, so that a change in the
    machine's load hits all of them alike. ``children`` maps a name to (spec, malloc). Returns
    the runs by name and the medians of their seconds and memory."""
    runs = {name: [] for name in children}
    for _ in range(rounds):
        for name, (spec, malloc) in children.items():
            runs[name].append(_spawn(spec, malloc))
    seconds = {k: _median([r["seconds"] for r in v]) for k, v in runs.items()}
    memory = {k: _median([r["memory_mib"] for r in v]) for k, v in runs.items()}
    return runs, seconds, memory


def _round_times(runs: dict) -> dict:
    return {k: [r["seconds"] * 1e3 for r in v] for k, v in runs.items()}


def measure(models, thread_counts, repeat: int, rounds: int, state_dir: Path) -> dict:
    """Each (model, threads) is measured ``rounds`` times, the libraries taking turns, so that a
    change in the machine's load between children hits all of them alike; the medians over the
    rounds are reported."""
    rows = []
    peaks = {n: matmul_peak_gflops(n) for n in thread_counts}
    for model in models:
        for n in thread_counts:
            state = str(state_dir / f"{model}.npz")
            base = {"model": model, "threads": n, "repeat": repeat}
            runs, seconds, memory = _take_turns(
                rounds,
                {
                    "minigen": ({**base, "library": "minigen", "state": state}, None),
                    "system": ({**base, "library": "minigen"}, "system"),
                    "torch": ({**base, "library": "torch", "state": state}, None),
                },
            )
            flops = runs["torch"][0]["flops"]
            rows.append(
                {
                    "model": model,
                    "threads": n,
                    "minigen_ms": seconds["minigen"] * 1e3,
                    "minigen_glibc_default_ms": seconds["system"] * 1e3,
                    "torch_ms": seconds["torch"] * 1e3,
                    "ratio": seconds["minigen"] / seconds["torch"],
                    "minigen_mib": memory["minigen"],
                    "minigen_glibc_default_mib": memory["system"],
                    "torch_mib": memory["torch"],
                    "memory_ratio": memory["minigen"] / memory["torch"],
                    "gflop_per_step": flops / 1e9,
                    "minigen_gflops": flops / seconds["minigen"] / 1e9,
                    "torch_gflops": flops / seconds["torch"] / 1e9,
                    "matmul_peak_gflops": peaks[n],
                    "malloc_tuned": runs["minigen"][0]["malloc_tuned"],
                    "rounds": _round_times(runs),
                }
            )
            _print_row(rows[-1])
    return {"machine": machine(), "batch": BATCH, "rounds": rounds, "rows": rows}


def measure_gpu(models, batches, repeat: int, rounds: int, state_dir: Path) -> dict:
    """The GPU table: each model's step at each batch size in minigen on cuda and on the CPU
    (all cores), and in PyTorch on the same GPU; medians over ``rounds`` turns."""
    rows = []
    threads = os.cpu_count() or 1
    for model in models:
        for batch in batches:
            state = str(state_dir / f"{model}-{batch}.npz")
            base = {"model": model, "threads": threads, "repeat": repeat, "batch": batch}
            runs, seconds, memory = _take_turns(
                rounds,
                {
                    "cuda": ({**base, "library": "minigen", "device": "cuda", "state": state}, None),
                    "cpu": ({**base, "library": "minigen", "device": "cpu"}, None),
                    "torch": ({**base, "library": "torch", "device": "cuda", "state": state}, None),
                },
            )
            rows.append(
                {
                    "model": model,
                    "batch": batch,
                    "minigen_cuda_ms": seconds["cuda"] * 1e3,
                    "minigen_cpu_ms": seconds["cpu"] * 1e3,
                    "torch_cuda_ms": seconds["torch"] * 1e3,
                    "gpu_speedup": seconds["cpu"] / seconds["cuda"],
                    "ratio": seconds["cuda"] / seconds["torch"],
                    "minigen_gpu_mib": memory["cuda"],
                    "torch_gpu_mib": memory["torch"],
                    "gflop_per_step": runs["torch"][0]["flops"] / 1e9,
                    "rounds": _round_times(runs),
                }
            )
            r = rows[-1]
            print(
                f"{DESCRIPTIONS[model]:<34}{batch:>6}{r['minigen_cuda_ms']:>11.2f}{r['minigen_cpu_ms']:>11.2f}"
                f"{r['gpu_speedup']:>9.1f}{r['torch_cuda_ms']:>10.2f}{r['ratio']:>7.2f}"
                f"{r['minigen_gpu_mib']:>9.1f}{r['torch_gpu_mib']:>9.1f}",
                flush=True,
            )
    return {"machine": {**machine(), "gpu": _gpu_name()}, "rounds": rounds, "rows": rows}


GPU_HEADER = (
    f"{'model':<34}{'batch':>6}{'cuda ms':>11}{'cpu ms':>11}{'speedup':>9}{'torch ms':>10}{'ratio':>7}"
    f"{'mg MiB':>9}{'pt MiB':>9}"
)


def _gpu_name() -> str:
    import cupy

    return cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()


def machine() -> dict:
    import numpy as np

    import minigen

    try:
        import torch

        torch_version = torch.__version__
    except ImportError:
        torch_version = None
    with open("/proc/cpuinfo") as info:
        names = [line.split(":", 1)[1].strip() for line in info if line.startswith("model name")]
    cpu = names[0] if names else platform.processor()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "minigen": minigen.__version__,
        "torch": torch_version,
    }


HEADER = (
    f"{'model':<34}{'thr':>4}{'minigen ms':>11}{'glibc ms':>10}{'torch ms':>10}{'ratio':>7}"
    f"{'mg MiB':>8}{'pt MiB':>8}{'mem':>6}{'mg GF/s':>9}{'pt GF/s':>9}{'peak':>7}"
)


def _print_row(r: dict) -> None:
    print(
        f"{DESCRIPTIONS[r['model']]:<34}{r['threads']:>4}{r['minigen_ms']:>11.2f}"
        f"{r['minigen_glibc_default_ms']:>10.2f}{r['torch_ms']:>10.2f}{r['ratio']:>7.2f}"
        f"{r['minigen_mib']:>8.1f}{r['torch_mib']:>8.1f}{r['memory_ratio']:>6.2f}"
        f"{r['minigen_gflops']:>9.1f}{r['torch_gflops']:>9.1f}{r['matmul_peak_gflops']:>7.1f}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts to run")
    parser.add_argument("--repeat", type=int, default=7, help="timing rounds per step; the median is shown")
    parser.add_argument("--rounds", type=int, default=3, help="child processes per library, taking turns")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS, help="what to run")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here as JSON")
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default="cpu",
        help="cuda: the GPU table (minigen on cuda and on the CPU, PyTorch on the same GPU)",
    )  # fmt: skip
    parser.add_argument(
        "--batch", type=int, nargs="+", default=[128, 1024], help="batch sizes (--device cuda)"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        spec = json.loads(args.child)
        print(json.dumps(_peak_child(spec["threads"]) if spec["library"] == "numpy-peak" else child(spec)))
        return

    import tempfile

    if args.device == "cuda":
        import minigen

        if not minigen.cuda_available():
            parser.error("--device cuda needs CuPy and a GPU (pip install -e '.[cuda12]' or '.[cuda13]')")
        print(f"training step on {_gpu_name()}, float32; ms = median step time; speedup = cpu / cuda;")
        print("ratio = minigen / PyTorch on the GPU; MiB = the GPU allocator's peak")
        print(GPU_HEADER)
        print("-" * len(GPU_HEADER))
        with tempfile.TemporaryDirectory() as state_dir:
            results = measure_gpu(args.models, args.batch, args.repeat, args.rounds, Path(state_dir))
        if args.json:
            args.json.write_text(json.dumps(results, indent=2) + "\n")
        return

    info = machine()
    print(
        f"training step, float32, batch {BATCH}; {info['cpu']}, {info['cores']} cores; "
        f"python {info['python']}, numpy {info['numpy']}, minigen {info['minigen']}, torch {info['torch']}"
    )
    print("ratio = minigen / torch time; mem = minigen / torch peak working memory")
    print("(peak RSS - RSS after import); glibc ms = minigen with MINIGEN_MALLOC=system;")
    print("GF/s = matmul/conv GFLOP per second; peak = a NumPy float32 matmul")
    print(HEADER)
    print("-" * len(HEADER))
    with tempfile.TemporaryDirectory() as state_dir:
        results = measure(args.models, args.threads, args.repeat, args.rounds, Path(state_dir))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
