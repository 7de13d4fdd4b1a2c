"""Weights in and out of minigen: PyTorch state dicts, and safetensors files without pickle.

minigen keeps PyTorch's layouts and dotted state-dict keys (docs/architecture.md, "nn,
optim and io"), so moving a model is a copy of each array: ``to_torch`` gives a state dict that a
PyTorch model of the same architecture loads, ``from_torch`` the reverse. PyTorch is imported
only inside those two functions; it is never a dependency of minigen.

``save_safetensors`` and ``load_safetensors`` read and write Hugging Face's safetensors format
with nothing but the standard library and NumPy: an 8-byte little-endian header length, a JSON
header ``{name: {"dtype", "shape", "data_offsets"}, "__metadata__": {str: str}}``, then the raw
little-endian C-order bytes of every tensor, back to back. Like ``minigen.save`` it never
unpickles, and a file's header is checked in full before any tensor data is read.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections import OrderedDict
from collections.abc import Mapping

import numpy

from minigen import backend
from minigen.io import ARRAY_DTYPES, CheckpointError, atomic_write
from minigen.nn import Module
from minigen.tensor import Tensor

# safetensors' dtype names and the little-endian NumPy dtypes they are stored as.
SAFETENSORS_DTYPES = {
    "F64": numpy.dtype("<f8"),
    "F32": numpy.dtype("<f4"),
    "F16": numpy.dtype("<f2"),
    "I64": numpy.dtype("<i8"),
    "I32": numpy.dtype("<i4"),
    "I16": numpy.dtype("<i2"),
    "I8": numpy.dtype("i1"),
    "U64": numpy.dtype("<u8"),
    "U32": numpy.dtype("<u4"),
    "U16": numpy.dtype("<u2"),
    "U8": numpy.dtype("u1"),
    "BOOL": numpy.dtype("?"),
}
_SAFETENSORS_NAME = {dtype.name: name for name, dtype in SAFETENSORS_DTYPES.items()}
METADATA_KEY = "__metadata__"
# The reference implementation refuses larger headers; real ones are a few MB at most.
MAX_HEADER_BYTES = 100_000_000
_TENSOR_FIELDS = {"dtype", "shape", "data_offsets"}


def _import_torch(caller: str):
    try:
        import torch
    except ImportError as error:
        raise ImportError(
            f"minigen.export.{caller} needs PyTorch, which minigen does not depend on: "
            "pip install torch (a CPU build is enough)"
        ) from error
    return torch


def _arrays(state_dict_or_module, caller: str) -> dict:
    """The backend arrays of a Module's state dict, or of a dict of Tensors and arrays."""
    if isinstance(state_dict_or_module, Module):
        state_dict_or_module = state_dict_or_module.state_dict()
    if not isinstance(state_dict_or_module, Mapping):
        raise TypeError(
            f"{caller} takes a minigen Module or a state dict, not {type(state_dict_or_module).__name__}"
        )
    arrays = {}
    for key, value in state_dict_or_module.items():
        if not isinstance(key, str):
            raise TypeError(f"{caller}: state-dict keys must be str, got {key!r}")
        array = value.data if isinstance(value, Tensor) else value
        if not isinstance(array, numpy.ndarray) and backend.device_of(array) != "cuda":
            raise TypeError(
                f"{caller}: the value of {key!r} is a {type(value).__name__}, not a Tensor or array"
            )
        arrays[key] = array
    return arrays


def _target_device(device) -> str:
    """'cpu' (the default, as for minigen.load) or 'cuda', checked before any data is copied."""
    device = backend.normalize_device("cpu" if device is None else device)
    backend.array_module(device)  # a missing GPU is reported now, not after the reading
    return device


def _host_copy(array) -> numpy.ndarray:
    """A C-contiguous NumPy array that owns its memory, with the values of ``array``."""
    # A device array already comes back as a fresh host array; a host one must be copied so
    # that the result never aliases the model's weights.
    copy = True if backend.device_of(array) == "cpu" else None
    return numpy.array(backend.to_host(array), order="C", copy=copy)


# --- PyTorch ---------------------------------------------------------------------------------


def to_torch(module_or_state_dict) -> OrderedDict:
    """A PyTorch state dict (``OrderedDict`` of str -> ``torch.Tensor``) of a minigen Module or
    state dict, for ``torch_model.load_state_dict`` on the same architecture.

    Each tensor is a copy on the CPU (CuPy arrays are copied to the host), C-contiguous, with
    the array's dtype and shape: float32 weights stay float32 and BatchNorm's
    ``num_batches_tracked`` stays a 0-d int64, as PyTorch keeps it. Nothing shares memory
    with the minigen model. Needs PyTorch (``pip install torch``); minigen does not.
    """
    torch = _import_torch("to_torch")
    return OrderedDict(
        (key, torch.from_numpy(_host_copy(array)))
        for key, array in _arrays(module_or_state_dict, "to_torch").items()
    )


def from_torch(state_dict, device=None) -> dict:
    """A minigen state dict (str -> backend array on ``device``, default cpu) of a PyTorch
    state dict or ``torch.nn.Module``, for ``minigen_module.load_state_dict``.

    Tensors may require grad, be non-contiguous, or live on any device: each is detached,
    copied to the CPU and then to ``device`` as a C-contiguous array of the same dtype and
    shape, sharing no memory with PyTorch. dtypes NumPy lacks (bfloat16, complex) raise a
    TypeError naming the key; cast them first (``.float()``).
    """
    torch = _import_torch("from_torch")
    device = _target_device(device)
    if isinstance(state_dict, torch.nn.Module):
        state_dict = state_dict.state_dict()
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"from_torch takes a PyTorch state dict or Module, not {type(state_dict).__name__}")
    supported = {getattr(torch, name) for name in ARRAY_DTYPES if hasattr(torch, name)}
    arrays = {}
    for key, value in state_dict.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise TypeError(
                f"from_torch: expected str keys and torch.Tensor values, got {key!r}: {type(value).__name__}"
            )
        if value.dtype not in supported:
            raise TypeError(
                f"from_torch: {key!r} has dtype {value.dtype}, which minigen cannot hold; "
                "cast it first, e.g. value.float()"
            )
        # force=True, so that tensors that require grad, live on a GPU or are conjugate or
        # negative views convert too (detached, copied to the CPU, resolved).
        host = numpy.array(value.numpy(force=True), order="C", copy=True)
        arrays[key] = backend.to_device(host, device)
    return arrays


# --- safetensors -----------------------------------------------------------------------------


def save_safetensors(state_dict_or_module, path, metadata=None) -> None:
    """Write a Module's state dict, or a dict of Tensors and arrays, to ``path`` as a
    safetensors file, atomically (``minigen.io.atomic_write``).

    ``metadata`` is an optional dict of str -> str stored under ``"__metadata__"``. Tensors
    keep their dtype (F64, F32, F16, I64, I32, I16, I8, U64, U32, U16, U8, BOOL) and shape;
    the header lists them in the state dict's order, and the data is laid out widest dtype
    first so that every tensor starts at a multiple of its item size, as the reference
    implementation does for zero-copy readers. The file reads back with ``load_safetensors``
    or ``safetensors.torch.load_file``.
    """
    arrays = _arrays(state_dict_or_module, "save_safetensors")
    _check_savable(arrays, metadata)
    # Every copy is made before the file is opened; little-endian whatever the machine.
    hosts = {
        key: _host_copy(array).astype(SAFETENSORS_DTYPES[_SAFETENSORS_NAME[array.dtype.name]], copy=False)
        for key, array in arrays.items()
    }
    layout = sorted(hosts, key=lambda key: -hosts[key].dtype.itemsize)  # stable: keeps key order
    offsets, end = {}, 0
    for key in layout:
        offsets[key] = [end, end + hosts[key].nbytes]
        end += hosts[key].nbytes
    header = {} if metadata is None else {METADATA_KEY: dict(metadata)}
    for key, host in hosts.items():
        header[key] = {
            "dtype": _SAFETENSORS_NAME[host.dtype.name],
            "shape": list(host.shape),
            "data_offsets": offsets[key],
        }
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # the format allows trailing spaces: the data starts 8-aligned
    with atomic_write(os.fspath(path)) as file:
        file.write(struct.pack("<Q", len(text)))
        file.write(text)
        for key in layout:
            file.write(hosts[key].tobytes())


def _check_savable(arrays: dict, metadata) -> None:
    """Refuse metadata that is not str -> str, a tensor named like the metadata, and dtypes the
    format has no name for, before anything is copied or written."""
    if metadata is not None and (
        not isinstance(metadata, Mapping)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
    ):
        raise TypeError(f"save_safetensors: metadata must be a dict of str -> str, got {metadata!r}")
    if METADATA_KEY in arrays:
        raise ValueError(
            f"save_safetensors: {METADATA_KEY!r} is reserved for the metadata; rename that tensor"
        )
    for key, array in arrays.items():
        if array.dtype.name not in _SAFETENSORS_NAME:
            raise TypeError(
                f"save_safetensors: {key!r} has dtype {array.dtype}; safetensors files hold "
                f"{', '.join(SAFETENSORS_DTYPES)}"
            )


def _refuse_duplicates(pairs):
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        duplicated = sorted({key for key in keys if keys.count(key) > 1})
        raise ValueError(f"duplicate keys {duplicated}")
    return dict(pairs)


def _invalid(file: str, problem: str) -> CheckpointError:
    return CheckpointError(f"{file}: not a valid safetensors file: {problem}")


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class _Header:
    """The checked header of one safetensors file: its tensor names in order, and the entries
    (name, dtype, shape, begin, end) sorted by offset."""

    def __init__(self, file: str, raw: bytes, data_bytes: int):
        self.file = file
        if not raw.startswith(b"{"):
            raise self.fail("the header is not a JSON object (it must begin with '{')")
        try:
            header = json.loads(raw.decode("utf-8"), object_pairs_hook=_refuse_duplicates)
        except (ValueError, RecursionError) as error:  # JSON and UTF-8 errors are ValueErrors
            raise self.fail(f"the header is not valid JSON: {error}") from None
        if not isinstance(header, dict):
            raise self.fail("the header is not a JSON object")
        metadata = header.pop(METADATA_KEY, {})
        if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
            raise self.fail(f"{METADATA_KEY!r} must map str to str")
        self.entries = sorted(
            ((name, *self._entry(name, info)) for name, info in header.items()),
            key=lambda entry: (entry[3], entry[4]),
        )
        self._check_coverage(data_bytes)
        self.names = list(header)

    def fail(self, problem: str) -> CheckpointError:
        return _invalid(self.file, problem)

    def _entry(self, name: str, info):
        """(dtype, shape, begin, end) of one tensor, each checked against the others."""
        if not isinstance(info, dict) or set(info) != _TENSOR_FIELDS:
            raise self.fail(f"tensor {name!r} must have exactly the fields {sorted(_TENSOR_FIELDS)}")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in SAFETENSORS_DTYPES:
            raise self.fail(
                f"tensor {name!r} has dtype {dtype!r}, which minigen does not read "
                f"(known: {', '.join(SAFETENSORS_DTYPES)})"
            )
        if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
            raise self.fail(f"tensor {name!r} has shape {shape!r}, not a list of non-negative ints")
        if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_count(o) for o in offsets):
            raise self.fail(f"tensor {name!r} has data_offsets {offsets!r}, not [begin, end]")
        begin, end = offsets
        # Python ints: a shape claiming 10**30 elements is compared, never allocated.
        expected = math.prod(shape) * SAFETENSORS_DTYPES[dtype].itemsize
        if end - begin != expected:
            raise self.fail(
                f"tensor {name!r} of dtype {dtype} and shape {shape} needs {expected} bytes, "
                f"but its data_offsets [{begin}, {end}] span {end - begin}"
            )
        return SAFETENSORS_DTYPES[dtype], tuple(shape), begin, end

    def _check_coverage(self, data_bytes: int) -> None:
        """The tensors must tile the data exactly: no overlap, no gap, nothing after the last."""
        position = 0
        for name, _, _, begin, end in self.entries:
            if begin != position:
                kind = "overlaps the tensors before it" if begin < position else "leaves a gap after them"
                raise self.fail(
                    f"tensor {name!r} starts at byte {begin} of the data, but the tensors before it "
                    f"end at byte {position}: it {kind}"
                )
            position = end
        if position > data_bytes:
            raise self.fail(
                f"truncated: the tensors need {position} bytes of data, but {data_bytes} follow the header"
            )
        if position < data_bytes:
            raise self.fail(f"{data_bytes - position} bytes after the last tensor belong to no tensor")


def load_safetensors(path, device=None) -> dict:
    """Read a safetensors file into a minigen state dict (str -> backend array on ``device``,
    default cpu), in the header's order, for ``minigen_module.load_state_dict``.

    The header is checked before any data is read: its length must fit in the file (and in
    100 MB), it must be a JSON object without duplicate keys, every tensor must have a known
    dtype, a shape whose size times the item size equals its byte range, and the byte ranges
    must tile the data exactly (no overlaps, gaps or trailing bytes); BOOL bytes must be 0 or
    1. Any violation raises ``CheckpointError`` naming the file and the problem. Nothing in
    the file is executed, and nothing larger than the file is allocated. The metadata is
    checked but not returned (``safetensors.safe_open(path, "np").metadata()`` reads it).
    """
    device = _target_device(device)
    file = os.fspath(path)
    if not os.path.exists(file):
        raise FileNotFoundError(f"no safetensors file at {file}")
    with open(file, "rb") as stream:
        size = os.fstat(stream.fileno()).st_size
        prefix = stream.read(8)
        if len(prefix) < 8:
            raise _invalid(file, f"truncated: {size} bytes, shorter than the 8-byte header length")
        (header_bytes,) = struct.unpack("<Q", prefix)
        if header_bytes > size - 8 or header_bytes > MAX_HEADER_BYTES:
            raise _invalid(
                file,
                f"the header length is {header_bytes} bytes, but the file holds {size - 8} bytes "
                f"after it (and the limit is {MAX_HEADER_BYTES})",
            )
        header = _Header(file, stream.read(header_bytes), size - 8 - header_bytes)
        data = stream.read()
    if len(data) != size - 8 - header_bytes:
        raise CheckpointError(f"{file}: the file changed while it was being read")
    arrays = {}
    for name, dtype, shape, begin, end in header.entries:
        stored = numpy.frombuffer(memoryview(data)[begin:end], dtype=dtype).reshape(shape)
        if dtype.kind == "b" and (stored.view(numpy.uint8) > 1).any():
            raise header.fail(f"BOOL tensor {name!r} holds bytes other than 0 and 1")
        arrays[name] = backend.to_device(stored.astype(dtype.newbyteorder("="), copy=True), device)
    return {name: arrays[name] for name in header.names}


__all__ = ["from_torch", "load_safetensors", "save_safetensors", "to_torch"]
