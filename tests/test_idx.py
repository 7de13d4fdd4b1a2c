"""The IDX parser on small files the tests write themselves: valid ones round-trip, and every
kind of damage (bad magic, short header, short or long data, not gzip, cut gzip) is an error
that names the file and the problem."""

import gzip
import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minigen.data.errors import DataError
from minigen.data.idx import IMAGES_MAGIC, LABELS_MAGIC, parse_idx, read_idx_gz


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    """An IDX file written out by hand: big-endian magic, one 4-byte size per axis, raw uint8."""
    header = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_gz(path, data: bytes):
    path.write_bytes(gzip.compress(data))
    return path


def test_magic_numbers_are_the_idx_ubyte_codes():
    assert (IMAGES_MAGIC, LABELS_MAGIC) == (0x803, 0x801)


@given(
    n=st.integers(0, 4), rows=st.integers(1, 5), cols=st.integers(1, 5), seed=st.integers(0, 2**32 - 1)
)  # fmt: skip
def test_images_round_trip(n, rows, cols, seed):
    images = np.random.default_rng(seed).integers(0, 256, size=(n, rows, cols), dtype=np.uint8)
    parsed = parse_idx(idx_bytes(images, IMAGES_MAGIC), IMAGES_MAGIC)
    assert parsed.dtype == np.uint8 and parsed.shape == (n, rows, cols)
    np.testing.assert_array_equal(parsed, images)


def test_gzip_labels_file_round_trips(tmp_path):
    labels = np.array([5, 0, 4, 1, 9, 255], dtype=np.uint8)
    path = write_gz(tmp_path / "labels.gz", idx_bytes(labels, LABELS_MAGIC))
    np.testing.assert_array_equal(read_idx_gz(path, LABELS_MAGIC), labels)


def test_bad_magic_is_an_error_naming_both_numbers():
    data = idx_bytes(np.zeros(3, np.uint8), LABELS_MAGIC)
    with pytest.raises(DataError, match=r"f\.idx: bad magic number 0x00000801, expected 0x00000803"):
        parse_idx(data, IMAGES_MAGIC, "f.idx")


@pytest.mark.parametrize("length", [0, 2, 4, 12, 15])
def test_truncated_header_is_an_error(length):
    data = idx_bytes(np.zeros((1, 2, 2), np.uint8), IMAGES_MAGIC)[:length]
    with pytest.raises(DataError, match=rf"f\.idx: truncated IDX header \({length} bytes, expected 16\)"):
        parse_idx(data, IMAGES_MAGIC, "f.idx")


def test_truncated_data_is_an_error_with_both_sizes():
    data = idx_bytes(np.zeros((2, 3, 3), np.uint8), IMAGES_MAGIC)[:-1]
    expected = r"f\.idx: truncated data: header says shape \(2, 3, 3\) \(18 bytes\), but 17 bytes follow"
    with pytest.raises(DataError, match=expected):
        parse_idx(data, IMAGES_MAGIC, "f.idx")


def test_extra_bytes_are_an_error():
    data = idx_bytes(np.zeros(4, np.uint8), LABELS_MAGIC) + b"\x00"
    expected = r"f\.idx: extra bytes after the data: header says shape \(4,\) \(4 bytes\), but 5 bytes"
    with pytest.raises(DataError, match=expected):
        parse_idx(data, LABELS_MAGIC, "f.idx")


def test_a_file_that_is_not_gzip_is_an_error_naming_it(tmp_path):
    path = tmp_path / "plain.idx"
    path.write_bytes(idx_bytes(np.zeros(4, np.uint8), LABELS_MAGIC))
    with pytest.raises(DataError, match=r"plain\.idx: not a gzip file"):
        read_idx_gz(path, LABELS_MAGIC)


@pytest.mark.parametrize("keep", [10, 30, -4])  # header only, mid-stream, without the CRC trailer
def test_truncated_gzip_is_an_error_naming_the_file(tmp_path, keep):
    data = gzip.compress(idx_bytes(np.arange(200, dtype=np.uint8), LABELS_MAGIC))
    path = tmp_path / "cut.gz"
    path.write_bytes(data[:keep])
    with pytest.raises(DataError, match=r"cut\.gz: truncated or corrupt gzip data"):
        read_idx_gz(path, LABELS_MAGIC)


def test_corrupt_gzip_checksum_is_an_error(tmp_path):
    data = bytearray(gzip.compress(idx_bytes(np.arange(200, dtype=np.uint8), LABELS_MAGIC)))
    data[-5] ^= 0xFF  # inside the CRC-32 trailer
    path = tmp_path / "crc.gz"
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"crc\.gz: truncated or corrupt gzip data"):
        read_idx_gz(path, LABELS_MAGIC)


def test_a_gzip_header_declaring_more_than_the_file_can_hold_is_refused(tmp_path):
    """Deflate expands at most 1032-fold: a 40-byte file cannot hold 47 MB, so nothing is inflated."""
    path = write_gz(tmp_path / "short.gz", struct.pack(">4I", IMAGES_MAGIC, 60000, 28, 28) + bytes(10))
    expected = (
        r"short\.gz: truncated data: header says shape \(60000, 28, 28\) \(47040000 bytes\), "
        rf"more than a {path.stat().st_size}-byte gzip file can hold"
    )
    with pytest.raises(DataError, match=expected):
        read_idx_gz(path, IMAGES_MAGIC)
