"""Training-step times and peak working memory, minigen next to PyTorch CPU, in one run.

For each model, a full float32 training step (forward, loss, backward, optimiser step) on
MNIST-shaped random data (batch 128, or each of ``--batch``; the rows also give the time per
example) is timed in minigen and in PyTorch on the identical
architecture with the same weights, at each thread count. The layer rows time one layer's
forward and backward. Every measurement runs in its own child process that imports one
library only, so each one's peak working memory is its own: peak RSS minus the RSS right after
the import (``import torch`` alone is hundreds of MiB, which raw RSS would count against it).
minigen is measured twice, with its malloc thresholds (the default, ``minigen.allocator``)
and with glibc's defaults (``MINIGEN_MALLOC=system``).

GFLOP/s is each step's matrix-product and convolution arithmetic (counted by PyTorch's
FlopCounterMode on the twin) over its time, next to this machine's float32 matrix-product peak
(a 2048 x 2048 NumPy product) at the same thread count.

    python benchmarks/run.py [--threads 1 2] [--batch 128] [--repeat 7] [--rounds 3]
        [--models mlp-vae ...] [--json benchmarks/results-cpu.json]
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
import tempfile
from pathlib import Path

from programs import BATCH, DESCRIPTIONS, MODELS, minigen_program, torch_program
from timing import median, median_seconds, time_once

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


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
    device, batch = spec.get("device", "cpu"), spec.get("batch", BATCH)
    measure = _torch_child if spec["library"] == "torch" else _minigen_child
    result, baseline, device_peak = measure(spec, device, batch)
    result["memory_mib"] = device_peak if device == "cuda" else _peak_rss_mib() - baseline
    return result


def _torch_child(spec: dict, device: str, batch: int) -> tuple[dict, float, float | None]:
    """(result, baseline RSS, GPU allocator peak or None) of PyTorch's step, with its FLOP count."""
    import numpy as np
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    cuda = device == "cuda"
    torch.set_num_threads(spec["threads"])
    _warm_up(torch)
    baseline = _rss_mib()
    with np.load(spec["state"]) as archive:
        state = {key: archive[key] for key in archive.files}
    step = torch_program(spec["model"], state, batch, device)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    result = {"seconds": median_seconds(step, spec["repeat"], sync)}
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    result["flops"] = counter.get_total_flops()
    return result, baseline, torch.cuda.max_memory_allocated() / 2**20 if cuda else None


def _minigen_child(spec: dict, device: str, batch: int) -> tuple[dict, float, float | None]:
    """(result, baseline RSS, GPU allocator peak or None) of minigen's step; it also saves the
    weights to ``spec["state"]`` (when given) for PyTorch's twin."""
    # isort: off
    import minigen  # before NumPy, as the minigen command does: see minigen.blas_wait
    import minigen.training  # noqa: F401 - the step functions and everything they import
    import numpy as np

    # isort: on

    cuda = device == "cuda"
    minigen.set_num_threads(spec["threads"])
    _warm_up(minigen)
    baseline = _rss_mib()
    step, state = minigen_program(spec["model"], batch, device)
    if spec.get("state"):
        np.savez(spec["state"], **state)
    sync = lambda: None  # noqa: E731
    if cuda:
        import cupy

        sync = cupy.cuda.Device().synchronize
    result = {
        "seconds": median_seconds(step, spec["repeat"], sync),
        "malloc_tuned": minigen.allocator.applied,
    }
    # CuPy's memory pool keeps what the step needed at its peak
    device_peak = cupy.get_default_memory_pool().total_bytes() / 2**20 if cuda else None
    return result, baseline, device_peak


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
    best = min(time_once(lambda: a @ a) for _ in range(5))
    return {"gflops": 2 * 2048**3 / best / 1e9}


# --- the table ---------------------------------------------------------------------------------------


def _take_turns(rounds: int, children: dict) -> tuple[dict, dict, dict]:
    """Run each child ``rounds`` times, the children taking turns, so that a change in the
    machine's load hits all of them alike. ``children`` maps a name to (spec, malloc). Returns
    the runs by name and the medians of their seconds and memory."""
    runs = {name: [] for name in children}
    for _ in range(rounds):
        for name, (spec, malloc) in children.items():
            runs[name].append(_spawn(spec, malloc))
    seconds = {k: median([r["seconds"] for r in v]) for k, v in runs.items()}
    memory = {k: median([r["memory_mib"] for r in v]) for k, v in runs.items()}
    return runs, seconds, memory


def _round_times(runs: dict) -> dict:
    return {k: [r["seconds"] * 1e3 for r in v] for k, v in runs.items()}


def _columns(values: dict, columns: dict, unit: str, scale: float = 1) -> dict:
    """The table's columns ``<column>_<unit>`` holding ``values[child] * scale``, for the
    children named in ``columns`` (child name -> column name), in that order."""
    return {f"{column}_{unit}": values[name] * scale for name, column in columns.items()}


def measure(models, thread_counts, batches, repeat: int, rounds: int, state_dir: Path) -> dict:
    """Each (model, batch, threads) is measured ``rounds`` times, the libraries taking turns, so
    that a change in the machine's load between children hits all of them alike; the medians
    over the rounds are reported."""
    rows = []
    peaks = {n: matmul_peak_gflops(n) for n in thread_counts}
    columns = {"minigen": "minigen", "system": "minigen_glibc_default", "torch": "torch"}
    for model, batch, n in ((m, b, n) for m in models for b in batches for n in thread_counts):
        state = str(state_dir / f"{model}-{batch}.npz")
        base = {"model": model, "threads": n, "repeat": repeat, "batch": batch}
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
                "batch": batch,
                "threads": n,
                **_columns(seconds, columns, "ms", 1e3),
                "minigen_us_per_example": seconds["minigen"] / batch * 1e6,
                "torch_us_per_example": seconds["torch"] / batch * 1e6,
                "ratio": seconds["minigen"] / seconds["torch"],
                **_columns(memory, columns, "mib"),
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
    return {"machine": machine(), "rounds": rounds, "rows": rows}


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
                    **_columns(
                        seconds,
                        {"cuda": "minigen_cuda", "cpu": "minigen_cpu", "torch": "torch_cuda"},
                        "ms",
                        1e3,
                    ),
                    "gpu_speedup": seconds["cpu"] / seconds["cuda"],
                    "ratio": seconds["cuda"] / seconds["torch"],
                    **_columns(memory, {"cuda": "minigen_gpu", "torch": "torch_gpu"}, "mib"),
                    "gflop_per_step": runs["torch"][0]["flops"] / 1e9,
                    "rounds": _round_times(runs),
                }
            )
            _print_gpu_row(rows[-1])
    return {"machine": {**machine(), "gpu": _gpu_name()}, "rounds": rounds, "rows": rows}


GPU_HEADER = (
    f"{'model':<34}{'batch':>6}{'cuda ms':>11}{'cpu ms':>11}{'speedup':>9}{'torch ms':>10}{'ratio':>7}"
    f"{'mg MiB':>9}{'pt MiB':>9}"
)


def _print_gpu_row(r: dict) -> None:
    print(
        f"{DESCRIPTIONS[r['model']]:<34}{r['batch']:>6}{r['minigen_cuda_ms']:>11.2f}{r['minigen_cpu_ms']:>11.2f}"
        f"{r['gpu_speedup']:>9.1f}{r['torch_cuda_ms']:>10.2f}{r['ratio']:>7.2f}"
        f"{r['minigen_gpu_mib']:>9.1f}{r['torch_gpu_mib']:>9.1f}",
        flush=True,
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
    f"{'model':<34}{'batch':>6}{'thr':>4}{'minigen ms':>11}{'glibc ms':>10}{'torch ms':>10}{'ratio':>7}"
    f"{'mg MiB':>8}{'pt MiB':>8}{'mem':>6}{'mg GF/s':>9}{'pt GF/s':>9}{'peak':>7}"
)


def _print_row(r: dict) -> None:
    print(
        f"{DESCRIPTIONS[r['model']]:<34}{r['batch']:>6}{r['threads']:>4}{r['minigen_ms']:>11.2f}"
        f"{r['minigen_glibc_default_ms']:>10.2f}{r['torch_ms']:>10.2f}{r['ratio']:>7.2f}"
        f"{r['minigen_mib']:>8.1f}{r['torch_mib']:>8.1f}{r['memory_ratio']:>6.2f}"
        f"{r['minigen_gflops']:>9.1f}{r['torch_gflops']:>9.1f}{r['matmul_peak_gflops']:>7.1f}",
        flush=True,
    )


def _parser() -> argparse.ArgumentParser:
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
        "--batch", type=int, nargs="+", default=None,
        help=f"batch sizes (default {BATCH} on the CPU, {BATCH} and 1024 with --device cuda)",
    )  # fmt: skip
    parser.add_argument("--child", help=argparse.SUPPRESS)
    return parser


def _gpu_table(args) -> dict:
    print(f"training step on {_gpu_name()}, float32; ms = median step time; speedup = cpu / cuda;")
    print("ratio = minigen / PyTorch on the GPU; MiB = the GPU allocator's peak")
    print(GPU_HEADER)
    print("-" * len(GPU_HEADER))
    with tempfile.TemporaryDirectory() as state_dir:
        return measure_gpu(
            args.models, args.batch or [BATCH, 1024], args.repeat, args.rounds, Path(state_dir)
        )


def _cpu_table(args) -> dict:
    info = machine()
    print(
        f"training step, float32; {info['cpu']}, {info['cores']} cores; "
        f"python {info['python']}, numpy {info['numpy']}, minigen {info['minigen']}, torch {info['torch']}"
    )
    print("ratio = minigen / torch time; mem = minigen / torch peak working memory")
    print("(peak RSS - RSS after import); glibc ms = minigen with MINIGEN_MALLOC=system;")
    print("GF/s = matmul/conv GFLOP per second; peak = a NumPy float32 matmul")
    print(HEADER)
    print("-" * len(HEADER))
    with tempfile.TemporaryDirectory() as state_dir:
        batches = args.batch or [BATCH]
        return measure(args.models, args.threads, batches, args.repeat, args.rounds, Path(state_dir))


def main() -> None:
    parser = _parser()
    args = parser.parse_args()
    if args.child:
        spec = json.loads(args.child)
        print(json.dumps(_peak_child(spec["threads"]) if spec["library"] == "numpy-peak" else child(spec)))
        return
    if args.device == "cuda":
        import minigen

        if not minigen.cuda_available():
            parser.error("--device cuda needs CuPy and a GPU (pip install -e '.[cuda12]' or '.[cuda13]')")
        results = _gpu_table(args)
    else:
        results = _cpu_table(args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
