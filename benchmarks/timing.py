"""The timers every benchmark shares: medians of repeated rounds, on the standard library only.

No NumPy, minigen or PyTorch here: ``run.py``'s children import it before the one library they
measure, so that its import costs them nothing (see run.py on peak working memory).
"""

from __future__ import annotations

import time
import timeit


def median(values):
    """The middle value (the upper one of the two middle values for an even count)."""
    return sorted(values)[len(values) // 2]


def time_once(fn) -> float:
    """Seconds of one call of ``fn``."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def time_us(fn, repeat: int) -> float:
    """Median over ``repeat`` rounds of the mean time of one call, in microseconds (the rounds
    as long as ``timeit``'s autorange makes them)."""
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()
    return median(timer.repeat(repeat=repeat, number=number)) / number * 1e6


def median_seconds(step, repeat: int, sync=lambda: None) -> float:
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
    return median(rounds)
