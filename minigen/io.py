"""Saving and loading state dicts and checkpoints as .npz files, without pickle.

A checkpoint is a zip of ``.npy`` arrays (NumPy's .npz layout) plus one entry of JSON
metadata that describes the saved object: nested dicts (str or int keys), lists, tuples,
Tensors, arrays and plain values, each array referred to by its entry name. Loading reads
arrays with ``allow_pickle=False`` and the structure with ``json``: nothing in the file is
ever executed, and no size the file declares is allocated before it is checked against the
file's length. Writes are atomic, so a crash mid-save never leaves a half-written checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import tokenize
import zipfile
import zlib

import numpy
import numpy.lib.format

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


# What reading a damaged zip or .npy can raise: ours and NumPy's are ValueErrors; zipfile raises
# RuntimeError or NotImplementedError for what it cannot read (encryption, a newer zip version);
# OverflowError for sizes beyond C integers.
_READ_ERRORS = (ValueError, OverflowError, RuntimeError, zipfile.BadZipFile, zlib.error, OSError, EOFError)
# What NumPy (2.4) lets out of its .npy header parser: ast.literal_eval's RecursionError or
# MemoryError for deep nesting ("-" * 3000 + "1"), tokenize's errors from its fallback parser.
_HEADER_ERRORS = (SyntaxError, tokenize.TokenError, RecursionError, MemoryError)
_MAX_DEFLATE_RATIO = 1032  # deflate never expands data more than this (see minigen/data/idx.py)
_NPY_HEADERS = {
    (1, 0): numpy.lib.format.read_array_header_1_0,
    (2, 0): numpy.lib.format.read_array_header_2_0,
}


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


class _Archive:
    """The ``.npy`` entries of an open zip, each read only once what its zip and .npy headers
    declare has been checked against the file's size: a few damaged bytes can claim terabytes."""

    def __init__(self, archive: zipfile.ZipFile, size: int):
        self.zip, self.size = archive, size
        self.entries = {
            info.filename.removesuffix(".npy"): info
            for info in archive.infolist()
            if info.filename.endswith(".npy")
        }

    def read(self, name: str) -> numpy.ndarray:
        """The array in entry ``name``; raises one of ``_READ_ERRORS`` saying what is wrong."""
        info = self.entries[name]
        expansion = {zipfile.ZIP_STORED: 1, zipfile.ZIP_DEFLATED: _MAX_DEFLATE_RATIO}.get(info.compress_type)
        if expansion is None:
            raise ValueError(
                f"it uses zip compression method {info.compress_type} (minigen reads stored or deflated)"
            )
        if info.compress_size > self.size or info.file_size > expansion * info.compress_size:
            raise ValueError(
                f"the zip directory says it holds {info.file_size} bytes in {info.compress_size}, "
                f"which a {self.size}-byte file cannot"
            )
        with self.zip.open(info) as member:
            version = numpy.lib.format.read_magic(member)
            if version not in _NPY_HEADERS:
                raise ValueError(f".npy format version {version} is not supported")
            try:
                shape, _, dtype = _NPY_HEADERS[version](member)
            except _HEADER_ERRORS as error:  # from parsing a string of at most 10,000 characters
                raise ValueError(
                    f"its .npy header cannot be parsed ({type(error).__name__}: {error})"
                ) from error
            if dtype.hasobject:
                raise ValueError(
                    "it holds Python objects, which only pickle reads; minigen loads with allow_pickle=False"
                )
            declared, held = math.prod(shape) * dtype.itemsize, info.file_size - member.tell()
            if declared != held:
                raise ValueError(
                    f"its header declares shape {shape} of {dtype} ({declared} bytes), but it holds {held}"
                )
            member.seek(0)
            array = numpy.lib.format.read_array(member, allow_pickle=False)
        # A valid .npy may be big-endian, which CuPy cannot hold.
        return array if dtype.isnative else array.astype(dtype.newbyteorder("="))


class _Decoder:
    """Rebuilds the saved object from its description, checking every node."""

    def __init__(self, file: str, archive: _Archive, device: str):
        self.file, self.archive, self.device = file, archive, device
        self.unread = set(archive.entries) - {METADATA_ENTRY}

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
            except (KeyError, TypeError, ValueError) as error:
                raise self.fail(
                    path, f"malformed metadata: a float node holds {node.get('value')!r}"
                ) from error
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
        if not isinstance(name, str) or name == METADATA_ENTRY or name not in self.archive.entries:
            raise self.fail(path, f"the metadata refers to array {name!r}, which the file does not contain")
        if name not in self.unread:  # each reference would be a new copy: 1000 of them, 1000 copies
            raise self.fail(
                path, f"array {name!r} is used twice in the metadata; save writes each array once"
            )
        self.unread.discard(name)
        try:
            array = self.archive.read(name)
        except _READ_ERRORS as error:
            raise self.fail(path, f"array {name!r} cannot be read: {error}") from error
        if array.dtype.name not in ARRAY_DTYPES or array.dtype.name != node.get("dtype"):
            raise self.fail(
                path, f"array {name!r} has dtype {array.dtype}, the metadata says {node.get('dtype')}"
            )
        if list(array.shape) != node.get("shape"):
            raise self.fail(
                path, f"array {name!r} has shape {array.shape}, the metadata says {node.get('shape')}"
            )
        return array


def _read_metadata(file: str, archive: _Archive) -> dict:
    if METADATA_ENTRY not in archive.entries:
        raise CheckpointError(
            f"{file}: a .npz (zip) file but not a minigen checkpoint: it has no {METADATA_ENTRY!r} entry"
        )
    try:
        raw = archive.read(METADATA_ENTRY)
        if raw.dtype != numpy.uint8 or raw.ndim != 1:
            raise ValueError(f"the entry is a {raw.dtype} array of shape {raw.shape}, not uint8 bytes")
        metadata = json.loads(raw.tobytes().decode("utf-8"))
    except RecursionError:  # a RuntimeError, but not damage to the entry: load reports the nesting
        raise
    except _READ_ERRORS as error:  # JSON and UTF-8 errors are ValueErrors
        raise CheckpointError(f"{file}: the metadata entry is unreadable: {error}") from error
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
            archive = zipfile.ZipFile(stream)
        except _READ_ERRORS as error:
            raise CheckpointError(f"{file}: not a readable .npz (zip) file: {error}") from error
        with archive:
            entries = _Archive(archive, os.fstat(stream.fileno()).st_size)
            try:
                metadata = _read_metadata(file, entries)
                return _Decoder(file, entries, device).decode(metadata.get("root"))
            except RecursionError:
                raise CheckpointError(f"{file}: the metadata is nested too deeply") from None
