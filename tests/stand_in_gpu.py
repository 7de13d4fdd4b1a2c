"""A stand-in for CuPy that runs on NumPy but refuses to be copied to the host.

``StandInArray`` wraps a NumPy array the way a CuPy array wraps device memory: NumPy's
functions and ufuncs dispatch to it (``__array_function__``, ``__array_ufunc__``) and give back
stand-in arrays, while every way of turning it into a host value (``numpy.asarray``,
``float()``, ``bool()``, ``.item()``, ``.tolist()``, ``asnumpy``) raises ``HostCopy`` inside
``forbid_host_copies()``. ``install(monkeypatch)`` puts the stand-in where backend.py keeps
CuPy, so ``device="cuda"`` runs the library's GPU code paths on this machine and any silent
device-to-host copy in them fails loudly.
"""

from __future__ import annotations

import contextlib
import types

import numpy
from numpy.lib.mixins import NDArrayOperatorsMixin

from minigen import backend


class HostCopy(AssertionError):
    """A device array was converted to a host value where that is forbidden."""


_forbidden = False


@contextlib.contextmanager
def forbid_host_copies():
    global _forbidden
    previous, _forbidden = _forbidden, True
    try:
        yield
    finally:
        _forbidden = previous


def _host_copy(what: str) -> None:
    if _forbidden:
        raise HostCopy(f"{what} copies a device array to the host inside a training step")


def unwrap(value):
    if isinstance(value, StandInArray):
        return value.array
    if isinstance(value, (tuple, list)):
        return type(value)(unwrap(v) for v in value)
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items()}
    return value


def wrap(value):
    if isinstance(value, numpy.ndarray):
        return StandInArray(value)
    if isinstance(value, numpy.generic):  # CuPy's reductions give 0-d arrays, never scalars
        return StandInArray(numpy.asarray(value))
    if isinstance(value, tuple):
        return tuple(wrap(v) for v in value)
    if isinstance(value, list):
        return [wrap(v) for v in value]
    return value


class StandInArray(NDArrayOperatorsMixin):
    """A NumPy array behind a device-like wall (see the module docstring)."""

    __slots__ = ("array",)

    def __init__(self, array: numpy.ndarray):
        self.array = array

    # --- what CuPy forbids or makes explicit -------------------------------------------------

    def __array__(self, dtype=None, copy=None):
        _host_copy("numpy.asarray (implicit conversion)")
        return self.array if dtype is None else self.array.astype(dtype)

    def __float__(self):
        _host_copy("float()")
        return float(self.array)

    def __int__(self):
        _host_copy("int()")
        return int(self.array)

    def __index__(self):
        _host_copy("an index")
        return self.array.__index__()

    def __bool__(self):
        _host_copy("bool()")
        return bool(self.array)

    def item(self, *args):
        _host_copy(".item()")
        return self.array.item(*args)

    def tolist(self):
        _host_copy(".tolist()")
        return self.array.tolist()

    def get(self):
        _host_copy(".get()")
        return self.array

    # --- everything else behaves like the array it wraps -------------------------------------

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if "out" in kwargs:
            kwargs["out"] = unwrap(kwargs["out"])
        result = getattr(ufunc, method)(*unwrap(inputs), **kwargs)
        return None if method == "at" else wrap(result)

    def __array_function__(self, func, types_, args, kwargs):
        return wrap(func(*unwrap(args), **unwrap(kwargs)))

    def __getitem__(self, key):
        return wrap(self.array[unwrap(key)])

    def __setitem__(self, key, value):
        self.array[unwrap(key)] = unwrap(value)

    def __len__(self):
        return len(self.array)

    def __iter__(self):
        return (wrap(row) for row in self.array)

    def __repr__(self):
        return f"StandInArray({self.array!r})"

    def __getattr__(self, name):
        if name.startswith("__"):  # __array_interface__ and friends would hand NumPy the memory
            raise AttributeError(name)
        attribute = getattr(self.array, name)
        if callable(attribute):
            return lambda *args, **kwargs: wrap(attribute(*unwrap(args), **unwrap(kwargs)))
        return wrap(attribute)


class _Generator:
    """The stand-in device's random generator. It draws from minigen's CPU generator (seeded by
    the same manual_seed), so a run on the stand-in repeats a CPU run number for number."""

    def __init__(self, seed):
        del seed  # the CPU generator carries the seed

    def __getattr__(self, name):
        method = getattr(backend.generator("cpu"), name)
        return lambda *args, **kwargs: wrap(method(*unwrap(args), **unwrap(kwargs)))


def _asnumpy(array):
    _host_copy("asnumpy")
    return unwrap(array)


def _module() -> types.SimpleNamespace:
    """The stand-in ``cupy`` module: NumPy's functions, returning stand-in arrays."""

    class Module(types.SimpleNamespace):
        def __getattr__(self, name):
            attribute = getattr(numpy, name)
            if isinstance(attribute, numpy.ufunc) or not callable(attribute):
                return attribute  # ufuncs dispatch to StandInArray themselves
            return lambda *args, **kwargs: wrap(attribute(*unwrap(args), **unwrap(kwargs)))

    runtime = types.SimpleNamespace(getDeviceCount=lambda: 1)
    return Module(
        ndarray=StandInArray,
        asnumpy=_asnumpy,
        random=types.SimpleNamespace(default_rng=_Generator),
        cuda=types.SimpleNamespace(runtime=runtime),
    )


def install(monkeypatch) -> None:
    """Make ``device="cuda"`` mean the stand-in for the rest of the test."""
    monkeypatch.setattr(backend, "_cupy", _module())
    monkeypatch.setattr(backend, "_generators", {})
    backend.manual_seed(0)
