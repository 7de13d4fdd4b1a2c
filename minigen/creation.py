"""Making tensors: from data, filled with constants, ranges, and random draws.

float32 unless a dtype is asked for; on the default device unless a device is given;
random draws come from the generators that ``minigen.manual_seed`` seeds.
"""

from __future__ import annotations

from minigen import backend
from minigen.tensor import Tensor


def _shape(shape) -> tuple:
    """Accept ``f(2, 3)`` and ``f((2, 3))`` alike."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    return tuple(int(n) for n in shape)


def _make(array, requires_grad: bool) -> Tensor:
    t = Tensor(array)
    if requires_grad:
        t.requires_grad_()
    return t


def _place(device, dtype):
    device = backend.default_device() if device is None else backend.normalize_device(device)
    dtype = backend.float32 if dtype is None else backend.as_dtype(dtype)
    return backend.array_module(device), device, dtype


def tensor(data, dtype=None, requires_grad: bool = False, device=None) -> Tensor:
    """A new tensor holding a copy of ``data`` (numbers, nested lists, or an array).

    Python floats give float32; an array keeps its dtype (float64 stays float64); integer
    data stays integer (int64), as labels should.
    """
    if isinstance(data, Tensor):
        data = data.data
    if device is None:
        is_device_array = hasattr(data, "dtype") and backend.device_of(data) == "cuda"
        device = "cuda" if is_device_array else backend.default_device()
    device = backend.normalize_device(device)
    xp = backend.array_module(device)
    has_dtype = hasattr(data, "dtype")
    if has_dtype:
        data = backend.to_device(data, device)
    array = xp.array(data, dtype=None if dtype is None else backend.as_dtype(dtype))
    if dtype is None and not has_dtype and array.dtype == backend.float64:
        array = array.astype(backend.float32)
    return _make(array, requires_grad)


def zeros(*shape, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    xp, _, dtype = _place(device, dtype)
    return _make(xp.zeros(_shape(shape), dtype=dtype), requires_grad)


def ones(*shape, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    xp, _, dtype = _place(device, dtype)
    return _make(xp.ones(_shape(shape), dtype=dtype), requires_grad)


def full(shape, fill_value, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor of ``shape`` filled with ``fill_value`` (float32, int64 or bool from the value)."""
    if dtype is None and isinstance(fill_value, bool):
        dtype = backend.bool_
    elif dtype is None and isinstance(fill_value, int):
        dtype = backend.int64
    xp, _, dtype = _place(device, dtype)
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return _make(xp.full(shape, fill_value, dtype=dtype), requires_grad)


def eye(n: int, m: int | None = None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    xp, _, dtype = _place(device, dtype)
    return _make(xp.eye(n, m, dtype=dtype), requires_grad)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Numbers from ``start`` to ``end`` (excluded): int64 for integer arguments, else float32."""
    if end is None:
        start, end = 0, start
    if dtype is None and all(isinstance(v, int) for v in (start, end, step)):
        dtype = backend.int64
    xp, _, dtype = _place(device, dtype)
    return _make(xp.arange(start, end, step).astype(dtype), requires_grad)


def randn(*shape, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Draws from the standard normal distribution N(0, 1)."""
    _, device, dtype = _place(device, dtype)
    array = backend.generator(device).standard_normal(_shape(shape), dtype=dtype)
    return _make(array, requires_grad)


def rand(*shape, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Draws from the uniform distribution on [0, 1)."""
    _, device, dtype = _place(device, dtype)
    array = backend.generator(device).random(_shape(shape), dtype=dtype)
    return _make(array, requires_grad)


def _like(make):
    def like(t: Tensor, *args, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
        return make(
            t.shape,
            *args,
            dtype=t.dtype if dtype is None else dtype,
            device=t.device if device is None else device,
            requires_grad=requires_grad,
        )

    like.__name__ = make.__name__ + "_like"
    like.__doc__ = f"``{make.__name__}`` with the shape, dtype and device of ``t`` (each may be overridden)."
    return like


zeros_like = _like(zeros)
ones_like = _like(ones)
full_like = _like(full)
randn_like = _like(randn)
rand_like = _like(rand)
