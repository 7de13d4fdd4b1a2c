"""Reading IDX files, the format MNIST and Fashion-MNIST are distributed in (gzip-compressed).

An IDX file is a big-endian header and raw bytes: a 4-byte magic number ``0x0000TTDD``
(TT the element type, 0x08 for unsigned bytes; DD the number of dimensions), then DD
4-byte sizes, then prod(sizes) elements. Images are 0x00000803 (N, rows, cols); labels are
0x00000801 (N,). The data length must match the header exactly.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy

from minigen.data.errors import DataError

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
GZIP_MAGIC = b"\x1f\x8b"
# Deflate emits at least 2 bits for each 258-byte match, so it never expands data beyond this.
MAX_DEFLATE_RATIO = 1032
_CHUNK = 1 << 20


def _header_size(magic: int) -> int:
    return 4 + 4 * (magic & 0xFF)


def _declared_shape(header: bytes, magic: int, source: str) -> tuple[int, ...]:
    """The shape the IDX header at the start of ``header`` declares, after checking its magic."""
    size = _header_size(magic)
    found = int.from_bytes(header[:4], "big")
    if len(header) >= 4 and found != magic:
        raise DataError(
            f"{source}: bad magic number 0x{found:08x}, expected 0x{magic:08x}; "
            "this is not an IDX file of the expected kind"
        )
    if len(header) < size:
        raise DataError(f"{source}: truncated IDX header ({len(header)} bytes, expected {size})")
    return struct.unpack(f">{magic & 0xFF}I", header[4:size])


def _check_length(shape: tuple[int, ...], actual: int, source: str) -> None:
    # Python ints: the product of three 32-bit sizes can pass 2**64 (and wrap to 0 in int64).
    expected = math.prod(shape)
    if actual != expected:
        problem = "truncated data" if actual < expected else "extra bytes after the data"
        raise DataError(
            f"{source}: {problem}: header says shape {shape} ({expected} bytes), but {actual} bytes follow it"
        )


def _as_array(data, offset: int, shape: tuple[int, ...], source: str) -> numpy.ndarray:
    try:
        return numpy.frombuffer(data, dtype=numpy.uint8, offset=offset).reshape(shape)
    except ValueError as error:  # an empty payload under sizes like (0, 2**32 - 1, 2**32 - 1)
        raise DataError(f"{source}: header says shape {shape}, which no array can have ({error})") from error


def parse_idx(data: bytes, magic: int, source: str = "<bytes>") -> numpy.ndarray:
    """The uint8 array an uncompressed IDX file holds, after checking its magic and sizes.

    ``magic`` is the expected magic number (``IMAGES_MAGIC`` or ``LABELS_MAGIC``); ``source``
    names the file in error messages. The result is a read-only view of ``data``.
    """
    shape = _declared_shape(data, magic, source)
    _check_length(shape, len(data) - _header_size(magic), source)
    return _as_array(data, _header_size(magic), shape, source)


def read_idx_gz(path, magic: int) -> numpy.ndarray:
    """Decompress the gzip IDX file at ``path`` and parse it (see ``parse_idx``).

    The header is inflated first and only what it declares is kept: sizes that a file this
    short could not hold are refused before anything is allocated, and extra data (a gzip bomb
    behind a small header) is counted, not kept.
    """
    path = Path(path)
    with open(path, "rb") as file:
        start = file.read(2)
        if start != GZIP_MAGIC:
            raise DataError(f"{path}: not a gzip file (it starts with {start!r}, not {GZIP_MAGIC!r})")
        file.seek(0)
        size = os.fstat(file.fileno()).st_size
        try:
            with gzip.GzipFile(fileobj=file) as stream:
                shape = _declared_shape(stream.read(_header_size(magic)), magic, str(path))
                if math.prod(shape) > MAX_DEFLATE_RATIO * size:
                    raise DataError(
                        f"{path}: truncated data: header says shape {shape} ({math.prod(shape)} bytes), "
                        f"more than a {size}-byte gzip file can hold"
                    )
                data = stream.read(math.prod(shape))
                # Reading on to the end also checks the CRC-32 and length in the gzip trailer.
                actual = len(data) + sum(len(chunk) for chunk in iter(lambda: stream.read(_CHUNK), b""))
        except (gzip.BadGzipFile, EOFError, zlib.error) as error:
            raise DataError(f"{path}: truncated or corrupt gzip data ({error})") from error
    _check_length(shape, actual, str(path))
    return _as_array(data, 0, shape, str(path))
