"""Let OpenBLAS's idle threads sleep at once instead of spinning (applied before NumPy loads).

After each matrix product OpenBLAS keeps its worker threads spinning, waiting for the next
one, for 2^28 cycles (about a tenth of a second) before they sleep. A training step spends
that time in NumPy's elementwise kernels, the convolutions' copies and minigen's own threads
(``backend.parallel_chunks``), which then share their cores with the spinning workers. With
``OPENBLAS_THREAD_TIMEOUT=12`` (2^12 cycles, about 2 microseconds) the workers sleep between
products. Measured on the benchmarks' DCGAN step at two threads on two cores: 658 ms with the
default, 527-543 ms with 4, 8 or 12; one thread is unchanged (it has no workers).

OpenBLAS reads the variable once, when it is loaded, so this only takes effect when minigen is
imported before NumPy (as the ``minigen`` command and the benchmarks do); after that it does
nothing. A value the user has set is left alone. ``applied`` says whether it was set here.
"""

from __future__ import annotations

import os
import sys

VARIABLE = "OPENBLAS_THREAD_TIMEOUT"
TIMEOUT = "12"  # OpenBLAS's exponent: workers spin 2^12 cycles, then sleep (it accepts 4-30)

applied = False


def let_idle_threads_sleep() -> bool:
    """Set ``OPENBLAS_THREAD_TIMEOUT`` as the module docstring says; True if it was set."""
    global applied
    if VARIABLE in os.environ or "numpy" in sys.modules:
        return False
    os.environ[VARIABLE] = TIMEOUT
    applied = True
    return applied


let_idle_threads_sleep()  # on import, from minigen/__init__.py, before anything imports NumPy
