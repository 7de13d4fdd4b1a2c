"""Reading IDX files, the format MNIST and Fashion-MNIST are distributed in (gzip-compressed).

An IDX file is a big-endian header and raw bytes: a 4-byte magic number ``0x0000TTDD``
(TT the element type, 0x08 for unsigned bytes; DD the number of dimensions), then DD
4-byte sizes, then prod(sizes) elements. Images are 0x00000803 (N, rows, cols); labels are
0x00000801 (N,). The data length must match the header exactly.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy

from minigen.data.errors import DataError

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
GZIP_MAGIC = b"\x1f\x8b"


def parse_idx(data: bytes, magic: int, source: str = "<bytes>") -> numpy.ndarray:
    """The uint8 array an uncompressed IDX file holds, after checking its magic and sizes.

    ``magic`` is the expected magic number (``IMAGES_MAGIC`` or ``LABELS_MAGIC``); ``source``
    names the file in error messages. The result is a read-only view of ``data``.
    """
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    found = int.from_bytes(data[:4], "big")
    if len(data) >= 4 and found != magic:
        raise DataError(
            f"{source}: bad magic number 0x{found:08x}, expected 0x{magic:08x}; "
            "this is not an IDX file of the expected kind"
        )
    if len(data) < header:
        raise DataError(f"{source}: truncated IDX header ({len(data)} bytes, expected {header})")
    shape = tuple(int(n) for n in numpy.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = int(numpy.prod(shape, dtype=numpy.int64))
    actual = len(data) - header
    if actual != expected:
        problem = "truncated data" if actual < expected else "extra bytes after the data"
        raise DataError(
            f"{source}: {problem}: header says shape {shape} ({expected} bytes), but {actual} bytes follow it"
        )
    return numpy.frombuffer(data, dtype=numpy.uint8, offset=header).reshape(shape)


def read_idx_gz(path, magic: int) -> numpy.ndarray:
    """Decompress the gzip IDX file at ``path`` and parse it (see ``parse_idx``)."""
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] != GZIP_MAGIC:
        raise DataError(f"{path}: not a gzip file (it starts with {raw[:2]!r}, not {GZIP_MAGIC!r})")
    try:
        data = gzip.decompress(raw)
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise DataError(f"{path}: truncated or corrupt gzip data ({error})") from error
    return parse_idx(data, magic, str(path))
