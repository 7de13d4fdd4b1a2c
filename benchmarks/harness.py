"""What the in-process benchmarks share: optional PyTorch, thread limits and versions (the
timers are in ``timing.py``).

Run the benchmarks as scripts (``python benchmarks/<name>.py``); this file sits beside them.
"""

from __future__ import annotations

import contextlib
import platform

import numpy as np

import minigen

try:
    import torch
except ImportError:
    torch = None

try:
    from threadpoolctl import threadpool_limits
except ImportError:
    threadpool_limits = None


@contextlib.contextmanager
def threads(n: int):
    """Limit NumPy's BLAS (threadpoolctl) and PyTorch to ``n`` threads for the block."""
    if torch is not None:
        previous = torch.get_num_threads()
        torch.set_num_threads(n)
    limits = threadpool_limits(n) if threadpool_limits is not None else None
    try:
        yield
    finally:
        if limits is not None:
            limits.unregister()
        if torch is not None:
            torch.set_num_threads(previous)


def versions() -> str:
    torch_version = f"torch {torch.__version__}" if torch is not None else "torch not installed"
    python = platform.python_version()
    return f"python {python}, numpy {np.__version__}, minigen {minigen.__version__}, {torch_version}"
