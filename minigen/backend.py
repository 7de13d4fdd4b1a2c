"""Array backends: which array module (NumPy or CuPy) holds an array, and where arrays live.

This is the only module that imports CuPy. Everything else asks it for the array module
of its inputs (``xp_of``) and writes one code path that runs on both.
"""

from __future__ import annotations

import concurrent.futures
import functools
import math
import os

import numpy

try:  # CuPy is optional: the cuda12/cuda13 extras install it.
    import cupy as _cupy
except ImportError:  # pragma: no cover - depends on the machine
    _cupy = None

float32 = numpy.dtype("float32")
float64 = numpy.dtype("float64")
int64 = numpy.dtype("int64")
bool_ = numpy.dtype("bool")

DEVICES = ("cpu", "cuda")


def as_dtype(dtype):
    """The NumPy dtype object for a name or type ('float32', numpy.float64, ...)."""
    return numpy.dtype(dtype)


CUDA_INSTALL_HINT = (
    "install the CuPy wheel that matches your CUDA toolkit: "
    "pip install 'minigen[cuda12]' (cupy-cuda12x) or pip install 'minigen[cuda13]' (cupy-cuda13x)"
)


class DeviceError(RuntimeError):
    """A device was asked for that this machine cannot provide, or devices were mixed."""


def normalize_device(device) -> str:
    """Return 'cpu' or 'cuda' for a device name (``'cuda:0'`` is accepted as 'cuda')."""
    name = str(device).lower()
    if name == "cuda:0":
        name = "cuda"
    if name not in DEVICES:
        raise DeviceError(f"unknown device {device!r}; expected one of {', '.join(DEVICES)}")
    return name


def cuda_available() -> bool:
    """True when CuPy is installed and sees at least one GPU."""
    if _cupy is None:
        return False
    try:
        return _cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # CuPy raises its own runtime errors when no driver is present
        return False


def array_module(device: str):
    """The array module that holds arrays on ``device``; a clear error when it is missing."""
    device = normalize_device(device)
    if device == "cpu":
        return numpy
    if _cupy is None:
        raise DeviceError(f"device 'cuda' needs CuPy, which is not installed; {CUDA_INSTALL_HINT}")
    if not cuda_available():
        raise DeviceError(
            "device 'cuda' was requested but CuPy finds no GPU (no NVIDIA driver or device "
            f"visible); if this machine has one, {CUDA_INSTALL_HINT}"
        )
    return _cupy


def xp_of(array):
    """The array module (numpy or cupy) that holds ``array``."""
    if _cupy is not None and isinstance(array, _cupy.ndarray):
        return _cupy
    return numpy


def device_of(array) -> str:
    """'cuda' for a CuPy array, 'cpu' otherwise."""
    if _cupy is not None and isinstance(array, _cupy.ndarray):
        return "cuda"
    return "cpu"


def to_device(array, device: str):
    """Copy ``array`` to ``device`` (no copy when it is already there)."""
    device = normalize_device(device)
    if device_of(array) == device:
        return array
    if device == "cpu":
        return _cupy.asnumpy(array)
    return array_module("cuda").asarray(array)


def to_host(array) -> numpy.ndarray:
    """A NumPy array with the values of ``array``: the one place values leave the device."""
    if device_of(array) == "cuda":
        return _cupy.asnumpy(array)
    return numpy.asarray(array)


def scatter_add(target, index, values) -> None:
    """``target[index] += values`` in place, adding repeated indices (``numpy.add.at``)."""
    if device_of(target) == "cuda":
        _cupy.add.at(target, index, values)
    else:
        numpy.add.at(target, index, values)


# --- default device -------------------------------------------------------------------

_default_device: str | None = None


def default_device() -> str:
    """The device new tensors are created on: set_default_device, else $MINIGEN_DEVICE, else cpu."""
    global _default_device
    if _default_device is None:
        _default_device = normalize_device(os.environ.get("MINIGEN_DEVICE", "cpu"))
        array_module(_default_device)
    return _default_device


def set_default_device(device) -> None:
    """Create new tensors on ``device`` from now on (checks that the device is usable)."""
    global _default_device
    device = normalize_device(device)
    array_module(device)
    _default_device = device


# --- random numbers --------------------------------------------------------------------

_generators: dict[str, object] = {}


def manual_seed(seed: int) -> None:
    """Seed every random generator minigen uses, on every backend, so a run repeats exactly."""
    seed = int(seed)
    _generators.clear()
    _generators["cpu"] = numpy.random.default_rng(seed)
    if _cupy is not None:
        _generators["cuda"] = _cupy.random.default_rng(seed)
    _generators["seed"] = seed


def generator(device: str):
    """The random generator for ``device`` (``numpy.random.Generator`` or CuPy's)."""
    device = normalize_device(device)
    if device not in _generators:
        xp = array_module(device)
        seed = _generators.get("seed")
        _generators[device] = xp.random.default_rng(seed)
    return _generators[device]


# --- CPU threads -----------------------------------------------------------------------

_num_threads: int | None = None
PARALLEL_MIN_SIZE = 1 << 18  # below about a megabyte, starting threads costs more than it saves
# Kernels that evaluate exp, log or tanh spend about 4 ns on each float32 entry (measured on the
# 2-core benchmark machine, against under 1 ns for a product), so they pay from fewer entries.
COSTLY_MIN_SIZE = 1 << 15


def get_num_threads() -> int:
    """Threads minigen uses on the CPU: set by ``set_num_threads``, else $OMP_NUM_THREADS,
    else the cores this process may run on (as PyTorch's default)."""
    if _num_threads is not None:
        return _num_threads
    requested = os.environ.get("OMP_NUM_THREADS", "")
    if requested.isdigit() and int(requested) > 0:
        return int(requested)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def set_num_threads(n: int) -> None:
    """Use ``n`` threads on the CPU (as ``torch.set_num_threads``): in NumPy's BLAS, through
    threadpoolctl, and in minigen's own parallel copies (``parallel_chunks``)."""
    global _num_threads
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads needs a positive int; got {n!r}")
    from threadpoolctl import threadpool_limits  # scikit-learn's dependency, imported on demand

    threadpool_limits(limits=n, user_api="blas")
    _num_threads = n


@functools.cache
def _workers(count: int) -> concurrent.futures.ThreadPoolExecutor:
    """One pool per worker count, started on first use and kept (idle threads cost nothing)."""
    return concurrent.futures.ThreadPoolExecutor(max_workers=count)


def parallel_chunks(array, n: int, work, min_size: int = PARALLEL_MIN_SIZE) -> None:
    """Run ``work(start, stop)`` over ``range(n)`` split into one contiguous chunk per thread.

    For memory-bound host copies (im2col, col2im) that NumPy performs with the GIL released.
    The chunks must touch disjoint memory. Serial on CuPy (its kernels are asynchronous
    already), for arrays under ``min_size`` elements, and with one thread.
    """
    threads = min(get_num_threads(), n)
    if threads < 2 or array.size < min_size or device_of(array) != "cpu":
        work(0, n)
        return
    bounds = [n * k // threads for k in range(threads + 1)]
    pool = _workers(threads - 1)
    futures = [pool.submit(work, lo, hi) for lo, hi in zip(bounds[1:-1], bounds[2:])]
    work(bounds[0], bounds[1])  # this thread takes the first chunk
    for future in futures:
        future.result()


def _chunk_of(array, axis: int, ndim: int, start: int, stop: int):
    """``array``'s part in entries start .. stop - 1 along ``axis`` of an ``ndim``-d broadcast
    result: a slice, or the whole array where it lacks that axis or broadcasts along it."""
    own = axis - (ndim - array.ndim)  # broadcasting aligns the axes from the right
    if own < 0 or array.shape[own] == 1:
        return array
    index = [slice(None)] * array.ndim
    index[own] = slice(start, stop)
    return array[tuple(index)]


def elementwise(kernel, *operands, dtype=None, min_size: int = PARALLEL_MIN_SIZE):
    """``kernel(*operands, out=out)`` for an elementwise ``kernel`` (a ufunc, or a function of
    arrays and ``out`` made of ufuncs) of broadcasting operands, split over threads.

    On the CPU, with two or more threads and a result of at least ``min_size`` entries
    (``PARALLEL_MIN_SIZE``; ``COSTLY_MIN_SIZE`` for transcendental kernels), the result is
    allocated in the layout of the operand of its shape and cut along its outermost axis in
    memory into one contiguous chunk per thread; NumPy's ufuncs release the GIL, so the
    chunks run at once. Each entry is computed exactly as one call would
    compute it. Otherwise it is one call, ``kernel(*operands)``. ``dtype`` is the result's
    (default: the operands' common type).
    """
    if get_num_threads() < 2 or device_of(operands[0]) != "cpu":
        return kernel(*operands)
    shape = numpy.broadcast_shapes(*(a.shape for a in operands))
    if math.prod(shape) < min_size:
        return kernel(*operands)
    dtype = numpy.result_type(*operands) if dtype is None else dtype
    template = next((a for a in operands if a.shape == shape), None)
    out = numpy.empty(shape, dtype) if template is None else numpy.empty_like(template, dtype=dtype)
    axis = max(range(out.ndim), key=lambda a: out.strides[a])

    def work(start, stop):
        chunks = [_chunk_of(a, axis, out.ndim, start, stop) for a in operands]
        kernel(*chunks, out=_chunk_of(out, axis, out.ndim, start, stop))

    parallel_chunks(out, out.shape[axis], work, min_size)
    return out
