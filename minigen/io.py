"""Saving and loading state dicts and checkpoints as .npz files, without pickle.

A checkpoint is a zip of ``.npy`` arrays (NumPy's .npz layout) plus one entry of JSON
metadata that describes the saved object: nested dicts (str or int keys), lists, tuples,
Tensors, arrays and plain values, each array referred to by its entry name. Loading reads
arrays with ``allow_pickle=False`` and the structure with ``json``: nothing in the file is
ever executed. Writes are atomic, so a crash mid-save never leaves a half-written checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import zipfile
import zlib

import numpy

from minigen import backend
from minigen.tensor import Tensor

FORMAT_NAME = "minigen-checkpoint"
FORMAT_VERSION = 1
METADATA_ENTRY = "__minigen__"
ARRAY_DTYPES = frozenset(
    ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]
    + ["float16", "float32", "float64"]
)


class CheckpointError(ValueError):
    """A file that is not a readable minigen checkpoint: truncated, garbled, foreign or too new."""


# What reading a damaged zip entry can raise; NumPy raises ValueError for object arrays too.
_READ_ERRORS = (ValueError, zipfile.BadZipFile, zlib.error, OSError, EOFError)


# --- saving ----------------------------------------------------------------------------------


def _child(path: str, key) -> str:
    """The readable path of ``key`` inside the object at ``path`` (``model.layers[2]``)."""
    if isinstance(key, str) and key.isidentifier():
        return f"{path}.{key}" if path else key
    return f"{path}[{key!r}]"


def _where(path: str) -> str:
    return f"at {path}" if path else "at the top level"


class _Encoder:
    """Turns an object into a JSON-able description, collecting its arrays on the host."""

    def __init__(self):
        self.arrays: dict[str, numpy.ndarray] = {}
        self._open: set[int] = set()  # containers on the current path, to refuse cycles

    def encode(self, obj, path: str = ""):
        if obj is None:
            return {"type": "none"}
        if isinstance(obj, bool):
            return {"type": "bool", "value": obj}
        if isinstance(obj, int):
            return {"type": "int", "value": int(obj)}
        if isinstance(obj, float):  # NumPy float64 scalars too: it subclasses float
            return {"type": "float", "value": repr(float(obj))}  # exact, and spells nan and inf
        if isinstance(obj, str):
            return {"type": "str", "value": str(obj)}
        if isinstance(obj, Tensor):
            return self._array(obj.data, "tensor", path)
        if isinstance(obj, numpy.ndarray) or backend.device_of(obj) == "cuda":
            return self._array(obj, "ndarray", path)
        if isinstance(obj, (dict, list, tuple)):
            if id(obj) in self._open:
                raise TypeError(f"cannot save an object that contains itself ({_where(path)})")
            self._open.add(id(obj))
            try:
                return self._container(obj, path)
            finally:
                self._open.discard(id(obj))
        hint = "; convert NumPy scalars with float() or int()" if isinstance(obj, numpy.generic) else ""
        raise TypeError(
            f"cannot save a value of type {type(obj).__name__} ({_where(path)}): minigen.save takes "
            f"dicts, lists, tuples, Tensors, arrays, None, bool, int, float and str{hint}"
        )

    def _container(self, obj, path: str):
        if isinstance(obj, dict):
            items = []
            for key, value in obj.items():
                if isinstance(key, bool) or not isinstance(key, (str, int)):
                    raise TypeError(
                        f"cannot save a dict key of type {type(key).__name__} ({key!r}, {_where(path)}): "
                        "keys must be str or int"
                    )
                key_node = self.encode(key, path)
                items.append([key_node, self.encode(value, _child(path, key))])
            return {"type": "dict", "items": items}
        kind = "tuple" if isinstance(obj, tuple) else "list"
        return {"type": kind, "items": [self.encode(v, f"{path}[{i}]") for i, v in enumerate(obj)]}

    def _array(self, array, kind: str, path: str):
        if array.dtype.name not in ARRAY_DTYPES:
            raise TypeError(
                f"cannot save an array of dtype {array.dtype} ({_where(path)}): supported dtypes are "
                f"{', '.join(sorted(ARRAY_DTYPES))}"
            )
        name = f"a{len(self.arrays)}"
        self.arrays[name] = backend.to_host(array)
        return {"type": kind, "array": name, "dtype": array.dtype.name, "shape": list(array.shape)}


def _metadata_entry(root) -> numpy.ndarray:
    metadata = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "root": root}
    text = json.dumps(metadata, allow_nan=False, separators=(",", ":"))
    return numpy.frombuffer(text.encode("utf-8"), dtype=numpy.uint8)


def save(obj, path) -> None:
    """Write ``obj`` to ``path`` (used exactly as given) as a minigen checkpoint, atomically.

    ``obj`` is made of nested dicts (str or int keys), lists and tuples of Tensors, NumPy or
    CuPy arrays (saved from the host) and None, bool, int, float or str. Anything else raises a
    TypeError naming where it sits in ``obj``. The file appears whole or not at all: it is
    written to a temporary file beside ``path``, flushed to disk, then renamed over ``path``.
    """
    path = os.fspath(path)
    encoder = _Encoder()
    root = encoder.encode(obj)  # every TypeError comes before any file is touched
    entries = {METADATA_ENTRY: _metadata_entry(root), **encoder.arrays}
    with atomic_write(path) as file:
        # To an open file, so NumPy appends no ".npz" to the name.
        numpy.savez(file, allow_pickle=False, **entries)


@contextlib.contextmanager
def atomic_write(path):
    """Open a temporary binary file beside ``path`` for writing; on success it is flushed to
    disk and renamed over ``path``, so readers see the old file or the whole new one, never a
    part. On any error the temporary file is removed and ``path`` is left as it was."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot write {path}: directory {directory} does not exist")
    temporary = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    # os.open with 0o666 lets the umask decide the mode, as for any new file.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable (POSIX)
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


# --- loading ---------------------------------------------------------------------------------


class _Decoder:
    """Rebuilds the saved object from its description, checking every node."""

    def __init__(self, file: str, npz, device: str):
        self.file, self.npz, self.device = file, npz, device
        self.names = set(npz.files) - {METADATA_ENTRY}

    def fail(self, path: str, problem: str):
        return CheckpointError(f"{self.file}: {problem} ({_where(path)})")

    def decode(self, node, path: str = ""):
        if not isinstance(node, dict) or not isinstance(node.get("type"), str):
            raise self.fail(path, "malformed metadata: a node without a type")
        kind = node["type"]
        if kind == "none":
            return None
        if kind in ("bool", "int", "str"):
            value = node.get("value")
            expected = {"bool": bool, "int": int, "str": str}[kind]
            if type(value) is not expected:
                raise self.fail(path, f"malformed metadata: a {kind} node holds {value!r}")
            return value
        if kind == "float":
            try:
                return float(node["value"])
            except (KeyError, TypeError, ValueError):
                raise self.fail(
                    path, f"malformed metadata: a float node holds {node.get('value')!r}"
                ) from None
        if kind in ("list", "tuple"):
            items = [self.decode(v, f"{path}[{i}]") for i, v in enumerate(self._items(node, path))]
            return tuple(items) if kind == "tuple" else items
        if kind == "dict":
            result = {}
            for pair in self._items(node, path):
                if not isinstance(pair, list) or len(pair) != 2:
                    raise self.fail(path, "malformed metadata: a dict item that is not a [key, value] pair")
                key = self.decode(pair[0], path)
                if isinstance(key, bool) or not isinstance(key, (str, int)):
                    raise self.fail(path, f"malformed metadata: a dict key {key!r}")
                result[key] = self.decode(pair[1], _child(path, key))
            return result
        if kind in ("tensor", "ndarray"):
            array = self._array(node, path)
            return Tensor(backend.to_device(array, self.device)) if kind == "tensor" else array
        raise self.fail(path, f"malformed metadata: unknown node type {kind!r}")

    def _items(self, node, path: str) -> list:
        items = node.get("items")
        if not isinstance(items, list):
            raise self.fail(path, f"malformed metadata: a {node['type']} node without a list of items")
        return items

    def _array(self, node, path: str):
        name = node.get("array")
        if not isinstance(name, str) or name not in self.names:
            raise self.fail(path, f"the metadata refers to array {name!r}, which the file does not contain")
        try:
            array = self.npz[name]
        except _READ_ERRORS as error:  # a damaged entry, or an object array (needs pickle: refused)
            raise self.fail(path, f"array {name!r} cannot be read: {error}") from None
        if array.dtype.name not in ARRAY_DTYPES or array.dtype.name != node.get("dtype"):
            raise self.fail(
                path, f"array {name!r} has dtype {array.dtype}, the metadata says {node.get('dtype')}"
            )
        if list(array.shape) != node.get("shape"):
            raise self.fail(
                path, f"array {name!r} has shape {array.shape}, the metadata says {node.get('shape')}"
            )
        return array


def _read_metadata(file: str, npz) -> dict:
    if METADATA_ENTRY not in npz.files:
        raise CheckpointError(
            f"{file}: a .npz (zip) file but not a minigen checkpoint: it has no {METADATA_ENTRY!r} entry"
        )
    try:
        raw = npz[METADATA_ENTRY]
        if raw.dtype != numpy.uint8 or raw.ndim != 1:
            raise ValueError(f"the entry is a {raw.dtype} array of shape {raw.shape}, not uint8 bytes")
        metadata = json.loads(raw.tobytes().decode("utf-8"))
    except _READ_ERRORS as error:  # JSON and UTF-8 errors are ValueErrors
        raise CheckpointError(f"{file}: the metadata entry is unreadable: {error}") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{file}: the metadata does not describe a {FORMAT_NAME} file")
    if metadata.get("version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{file}: checkpoint format version {metadata.get('version')!r} is not supported "
            f"(this minigen reads version {FORMAT_VERSION}; a newer minigen may have written it)"
        )
    return metadata


def load(path, map_location=None):
    """Read a checkpoint written by ``save``; Tensors are placed on ``map_location`` (default cpu).

    Tensors come back with their saved dtype and shape (requires_grad False); NumPy and CuPy
    arrays come back as NumPy arrays; tuples stay tuples and int dict keys stay ints. Any file
    that is not an intact minigen checkpoint raises ``CheckpointError`` naming the file and
    the problem; nothing in the file is executed.
    """
    device = backend.normalize_device("cpu" if map_location is None else map_location)
    backend.array_module(device)  # a missing GPU is reported before the file is read
    file = os.fspath(path)
    if not os.path.exists(file):
        raise FileNotFoundError(f"no checkpoint file at {file}")
    with open(file, "rb") as stream:
        head = stream.read(4)
        if not head.startswith(b"PK"):
            hint = " (it looks like a pickle, e.g. from torch.save; minigen never unpickles)"
            hint = hint if head[:1] == b"\x80" else ""
            what = "an empty file" if not head else "not a zip/npz file"
            raise CheckpointError(f"{file}: not a minigen checkpoint: {what}{hint}")
        stream.seek(0)
        try:
            npz = numpy.load(stream, allow_pickle=False)
        except _READ_ERRORS as error:
            raise CheckpointError(f"{file}: not a readable .npz (zip) file: {error}") from None
        with npz:
            try:
                metadata = _read_metadata(file, npz)
                return _Decoder(file, npz, device).decode(metadata.get("root"))
            except RecursionError:
                raise CheckpointError(f"{file}: the metadata is nested too deeply") from None
