"""Bad input, swept: checkpoints and IDX files damaged by hypothesis (flipped bytes, cuts, wrong
magic numbers and dtype codes, sizes that disagree with the payload or are huge, appended junk,
pickles). Every damaged file either loads to a value we can check or raises the library's own
error naming the file and the problem; the peak memory of the read stays proportional to the
file's size (tracemalloc sees NumPy's buffers too); and no pickled code ever runs."""

import gzip
import io as pyio
import json
import math
import pickle
import re
import struct
import tracemalloc
import zipfile
import zlib

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from test_idx import idx_bytes
from test_io import MakesDirectory, assert_same

import minigen
from minigen import io
from minigen.data.errors import DataError
from minigen.data.idx import IMAGES_MAGIC, LABELS_MAGIC, parse_idx, read_idx_gz
from minigen.io import CheckpointError

# A read may use this much whatever the file, and otherwise 100 times the file's size.
MEMORY_FLOOR = 64 << 20
MEMORY_FACTOR = 100

CHECKPOINT_PROBLEM = (
    r"not a minigen checkpoint|not a readable \.npz|a \.npz \(zip\) file but not|the metadata|"
    r"checkpoint format version|malformed metadata|array '[^']*' (cannot be read|has dtype|has shape|is used)"
)
IDX_PROBLEM = (
    r"bad magic number|truncated IDX header|truncated data|extra bytes after the data|not a gzip file|"
    r"truncated or corrupt gzip data|header says shape"
)


def attempt(read, size: int, error_type):
    """``read()``'s value and None, or None and the ``error_type`` it raised. Anything else it
    raises propagates (and fails the test); so does a peak of traced memory beyond the bound."""
    tracemalloc.start()
    try:
        return read(), None
    except error_type as error:
        return None, error
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        bound = max(MEMORY_FLOOR, MEMORY_FACTOR * size)
        assert peak <= bound, f"reading a {size}-byte file peaked at {peak} bytes (bound {bound})"


def assert_names_file_and_problem(error, source, problems):
    message = str(error)
    assert re.match(re.escape(str(source)) + ": .*(" + problems + ")", message, re.DOTALL), message


def positions(size: int, hot: list[int]):
    """Offsets into a file of ``size`` bytes: anywhere, or (as often) in its ``hot`` structure."""
    anywhere = st.integers(0, size - 1)
    return st.one_of(anywhere, st.sampled_from(hot)) if hot else anywhere


def flip(data: bytes, flips) -> bytes:
    damaged = bytearray(data)
    for position, mask in flips:
        damaged[position] ^= mask
    return bytes(damaged)


def flips_in(size: int, hot: list[int] = ()):
    return st.lists(st.tuples(positions(size, list(hot)), st.integers(1, 255)), min_size=1, max_size=3)


# --- checkpoints -----------------------------------------------------------------------------------


def saved_object():
    """A small training checkpoint: a state dict, optimizer settings, nested lists and dicts with
    int and str keys, and arrays of several dtypes and shapes (0-d and empty included)."""
    model = minigen.nn.Sequential(minigen.nn.Linear(3, 2), minigen.nn.BatchNorm1d(2))
    return {
        "model": model.state_dict(),
        "optimizer": {"lr": 1e-3, "betas": (0.9, 0.999), "state": {0: {"step": 7}}},
        "history": [0.5, float("nan"), {"epoch": 1, "tags": ["best", "Grüße"]}],
        "arrays": [
            np.arange(6, dtype=np.int64).reshape(2, 3),
            np.array([True, False, True]),
            np.linspace(-1, 1, 5, dtype=np.float16),
            np.array(2.5),
            np.zeros((0, 4), np.uint8),
        ],
        7: None,
    }


def skeleton(obj):
    """``obj`` with each array replaced by its kind, dtype and shape: what damage to array data
    may change without the loader noticing it, since a .npy stores no checksum of its own."""
    if isinstance(obj, (minigen.Tensor, np.ndarray)):
        array = obj.numpy() if isinstance(obj, minigen.Tensor) else obj
        return (type(obj).__name__, array.dtype.name, array.shape)
    if isinstance(obj, dict):
        return {key: skeleton(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(skeleton(value) for value in obj)
    return obj if obj == obj else "nan"  # nan != nan, and dicts compare with ==


def assert_well_formed(obj):
    """Only what ``save`` accepts: plain values, containers with str or int keys, Tensors that need
    no gradient and arrays of a supported dtype."""
    if isinstance(obj, minigen.Tensor):
        assert not obj.requires_grad and obj.creator is None
        obj = obj.numpy()
    if isinstance(obj, np.ndarray):
        assert obj.dtype.name in io.ARRAY_DTYPES and obj.dtype.isnative, obj.dtype
    elif isinstance(obj, dict):
        for key, value in obj.items():
            assert type(key) in (str, int), key
            assert_well_formed(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            assert_well_formed(value)
    else:
        assert obj is None or type(obj) in (bool, int, float, str), type(obj)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


class Checkpoint:
    """The saved object, the bytes of its checkpoint, and the offsets of the file's structure:
    zip headers, .npy headers and the zip directory (not array data or JSON text)."""

    def __init__(self, obj, data: bytes, hot: list[int]):
        self.obj, self.data, self.hot = obj, data, hot

    def __repr__(self):  # hypothesis prints it with every failing example
        return f"Checkpoint({len(self.data)} bytes)"


@pytest.fixture(scope="module")
def checkpoint(workdir):
    obj = saved_object()
    io.save(obj, workdir / "good")
    data = (workdir / "good").read_bytes()
    with zipfile.ZipFile(workdir / "good") as archive:
        hot = [
            offset
            for info in archive.infolist()
            for offset in range(info.header_offset, info.header_offset + 30 + len(info.filename) + 128)
        ]
        hot += list(range(archive.start_dir, len(data)))
    return Checkpoint(obj, data, hot)


def entries(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(pyio.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def rezip(members: dict[str, bytes], compression=zipfile.ZIP_STORED) -> bytes:
    """A well-formed zip (checksums right) of ``members``: damage inside them reaches the parsers."""
    buffer = pyio.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def load_checked(path, marker=None):
    """io.load's value or CheckpointError (with the path and a known problem in its message),
    within the memory bound; the pickle ``marker`` must not appear either way."""
    value, error = attempt(lambda: io.load(path), path.stat().st_size, CheckpointError)
    if marker is not None:
        assert not marker.exists(), "loading ran code from the file"
    if error is not None:
        assert_names_file_and_problem(error, path, CHECKPOINT_PROBLEM)
    return value, error


def test_the_undamaged_checkpoint_loads_to_the_saved_object(checkpoint, workdir):
    obj, data = checkpoint.obj, checkpoint.data
    (workdir / "ckpt").write_bytes(data)
    value, error = load_checked(workdir / "ckpt")
    assert error is None
    assert_same(obj, value)


@given(data=st.data())
def test_flipped_bytes_load_the_saved_object_exactly_or_are_refused(checkpoint, workdir, data):
    """Each zip entry carries a CRC-32 and every entry is read to its end, so a flip the loader
    accepts can only have hit a field nothing reads (a date, the local copy of a size or CRC):
    the value must then be the saved object, bit for bit."""
    obj, good, hot = checkpoint.obj, checkpoint.data, checkpoint.hot
    path = workdir / "ckpt"
    path.write_bytes(flip(good, data.draw(flips_in(len(good), hot))))
    value, error = load_checked(path)
    if error is None:
        assert_same(obj, value)


@given(data=st.data())
def test_flipped_bytes_inside_an_entry_with_a_valid_zip_around_it(checkpoint, workdir, data):
    """The zip is rebuilt around the damaged entry, so no CRC stands in the way. Damage to an
    array entry may change the numbers but never the structure, dtypes or shapes that load
    returns; damage to the JSON metadata may change any value, but what comes back is still
    made only of what ``save`` accepts."""
    obj, good = checkpoint.obj, checkpoint.data
    members = entries(good)
    name = data.draw(st.sampled_from(sorted(members)))
    content = members[name]
    header = list(range(min(len(content), 128)))  # the .npy magic, version and header dict
    members[name] = flip(content, data.draw(flips_in(len(content), header)))
    path = workdir / "ckpt"
    path.write_bytes(rezip(members))
    value, error = load_checked(path)
    if error is None:
        assert_well_formed(value)
        if name != io.METADATA_ENTRY + ".npy":
            assert skeleton(value) == skeleton(obj)


def test_a_deflated_checkpoint_loads_and_other_compressions_are_refused(checkpoint, workdir):
    """numpy.savez_compressed's layout loads (deflate expands at most 1032-fold, so its sizes can
    be bounded); bzip2 and LZMA can expand without such a bound and are refused."""
    path = workdir / "ckpt"
    path.write_bytes(rezip(entries(checkpoint.data), zipfile.ZIP_DEFLATED))
    value, error = load_checked(path)
    assert error is None
    assert_same(checkpoint.obj, value)
    for method in (zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA):
        path.write_bytes(rezip(entries(checkpoint.data), method))
        _, error = load_checked(path)
        assert f"metadata entry is unreadable: it uses zip compression method {method}" in str(error)


@given(data=st.data())
def test_a_truncated_checkpoint_is_refused(checkpoint, workdir, data):
    good = checkpoint.data
    path = workdir / "ckpt"
    path.write_bytes(good[: data.draw(st.integers(0, len(good) - 1))])
    assert load_checked(path)[1] is not None


@given(junk=st.binary(min_size=1, max_size=300) | st.binary(min_size=1, max_size=8).map(lambda b: b * 500))
def test_appended_junk_loads_the_saved_object_or_is_refused(checkpoint, workdir, junk):
    """Zip readers find the directory from the end, so junk after it may be skipped (then the
    value must be exactly the saved object) or may hide the directory (then it is refused)."""
    obj, good = checkpoint.obj, checkpoint.data
    path = workdir / "ckpt"
    path.write_bytes(good + junk)
    value, error = load_checked(path)
    if error is None:
        assert_same(obj, value)


# Where each magic number of the format sits: the first local header, the first entry's .npy
# magic, the zip directory and its end record.
SIGNATURES = [b"PK\x03\x04", b"\x93NUMPY", b"PK\x01\x02", b"PK\x05\x06"]


@given(signature=st.sampled_from(SIGNATURES), replacement=st.binary(min_size=1, max_size=6))
def test_a_wrong_magic_number_is_refused(checkpoint, workdir, signature, replacement):
    good = checkpoint.data
    at = good.rfind(signature) if signature == b"PK\x05\x06" else good.find(signature)
    replacement = (replacement * 6)[: len(signature)]
    if replacement == signature:
        replacement = bytes(b ^ 0xFF for b in signature)
    path = workdir / "ckpt"
    path.write_bytes(good[:at] + replacement + good[at + len(signature) :])
    assert load_checked(path)[1] is not None


def npy_with_header(descr: str, shape: tuple, payload: bytes, fortran=False) -> bytes:
    """A .npy (version 1.0) whose header declares ``descr`` and ``shape``, whatever ``payload`` holds."""
    header = repr({"descr": descr, "fortran_order": fortran, "shape": shape}).encode("latin1")
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + payload


def metadata_text(root) -> bytes:
    return json.dumps({"format": io.FORMAT_NAME, "version": io.FORMAT_VERSION, "root": root}).encode()


def metadata_npy(root) -> bytes:
    text = metadata_text(root)
    return npy_with_header("|u1", (len(text),), text)


def array_node(shape, dtype="float32", name="a0"):
    return {"type": "tensor", "array": name, "dtype": dtype, "shape": list(shape)}


HUGE_COUNTS = st.integers(2**28, 10**15)


@given(count=HUGE_COUNTS, descr=st.sampled_from(["<f4", "<f8", "|u1", "<i8"]), in_metadata=st.booleans())
@example(count=10**9, descr="<f4", in_metadata=False)  # 4 GB: an allocation that would succeed lazily
def test_an_npy_header_declaring_a_huge_shape_is_refused_without_allocating(
    workdir, count, descr, in_metadata
):
    """The data is 64 bytes whatever the header claims; reading must not trust the claim."""
    huge = npy_with_header(descr, (count,), bytes(64))
    node = array_node([count], np.dtype(descr).name)
    if in_metadata:
        members = {io.METADATA_ENTRY + ".npy": huge}
    else:
        members = {io.METADATA_ENTRY + ".npy": metadata_npy(node), "a0.npy": huge}
    path = workdir / "ckpt"
    path.write_bytes(rezip(members))
    assert load_checked(path)[1] is not None


@pytest.mark.parametrize("depth", [3000, 9000])  # Python's parser: a RecursionError, then a MemoryError
@pytest.mark.parametrize("in_metadata", [False, True])
def test_a_deeply_nested_npy_header_is_refused(workdir, depth, in_metadata):
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + "-" * depth + "1,), }"
    nested = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + bytes(4)
    members = {io.METADATA_ENTRY + ".npy": metadata_npy(array_node([1])), "a0.npy": nested}
    members[io.METADATA_ENTRY + ".npy" if in_metadata else "a0.npy"] = nested
    path = workdir / "ckpt"
    path.write_bytes(rezip(members))
    _, error = load_checked(path)
    assert re.search(
        r"(metadata entry is unreadable|'a0' cannot be read): its \.npy header cannot be parsed", str(error)
    )


def patch_sizes(data: bytes, name: bytes, size: int) -> bytes:
    """``data`` with both headers of zip entry ``name`` declaring ``size`` uncompressed bytes."""
    damaged = bytearray(data)
    for signature, field in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = data.find(signature)
        while at >= 0:
            name_at = at + (30 if signature == b"PK\x03\x04" else 46)
            if data[name_at : name_at + len(name)] == name:
                damaged[at + field : at + field + 4] = struct.pack("<I", size)
            at = data.find(signature, at + 4)
    return bytes(damaged)


@given(count=st.integers(2**27, 2**30 - 64), in_metadata=st.booleans())
def test_a_zip_entry_declaring_a_huge_size_is_refused_without_allocating(workdir, count, in_metadata):
    """A deflated entry whose zip headers and .npy header agree on ~GB of data that is not there
    (deflate expands at most 1032-fold, so a small file cannot hold it)."""
    name, descr = (io.METADATA_ENTRY + ".npy", "|u1") if in_metadata else ("a0.npy", "<f4")
    huge = npy_with_header(descr, (count,), bytes(64))
    members = {io.METADATA_ENTRY + ".npy": metadata_npy(array_node([count])), "a0.npy": huge}
    members[name] = huge
    data = rezip(members, zipfile.ZIP_DEFLATED)
    path = workdir / "ckpt"
    path.write_bytes(patch_sizes(data, name.encode(), len(huge) - 64 + np.dtype(descr).itemsize * count))
    assert load_checked(path)[1] is not None


# dtype codes that are not what the metadata says: other numbers, text, objects, structs, dates.
WRONG_DESCRS = ["<f8", "<i4", "<u4", "<c8", "<U1", "|S4", "|V4", "|O", "<M8[s]", [("x", "<f4")], "|b1", "|i1"]


@given(descr=st.sampled_from(WRONG_DESCRS), in_metadata=st.booleans())
def test_a_wrong_dtype_code_is_refused(workdir, descr, in_metadata):
    """The float32 array (or the uint8 metadata bytes) relabelled with another dtype code, its
    payload sized to match, so that only the code is wrong."""
    itemsize = np.dtype(descr).itemsize
    text = metadata_text(array_node([4]))
    text += b" " * (-len(text) % itemsize)
    members = {io.METADATA_ENTRY + ".npy": npy_with_header("|u1", (len(text),), text)}
    members["a0.npy"] = npy_with_header("<f4", (4,), bytes(16))
    if in_metadata:
        members[io.METADATA_ENTRY + ".npy"] = npy_with_header(descr, (len(text) // itemsize,), text)
    else:
        members["a0.npy"] = npy_with_header(descr, (4,), bytes(4 * itemsize))
    path = workdir / "ckpt"
    path.write_bytes(rezip(members))
    assert load_checked(path)[1] is not None


def test_a_big_endian_array_loads_in_native_byte_order(workdir):
    """A valid .npy may be big-endian; CuPy cannot hold that, so load converts it."""
    members = {io.METADATA_ENTRY + ".npy": metadata_npy(array_node([4]))}
    members["a0.npy"] = npy_with_header(">f4", (4,), struct.pack(">4f", 1.5, -2, 0, 3))
    path = workdir / "ckpt"
    path.write_bytes(rezip(members))
    value, error = load_checked(path)
    assert error is None and value.numpy().dtype.isnative
    np.testing.assert_array_equal(value.numpy(), np.array([1.5, -2, 0, 3], np.float32))


def pickle_payloads(marker, protocol: int) -> dict:
    """Files that would run ``os.mkdir(marker)`` if anything unpickled them, by how they arrive."""
    payload = np.empty(1, dtype=object)
    payload[0] = MakesDirectory(marker)
    buffer = pyio.BytesIO()
    np.save(buffer, payload, allow_pickle=True)
    object_npy = buffer.getvalue()
    pickled = pickle.dumps({"weights": MakesDirectory(marker)}, protocol=protocol)
    return {
        "pickle renamed .npz": pickled,
        "object array entry": rezip(
            {io.METADATA_ENTRY + ".npy": metadata_npy(array_node([1], "object")), "a0.npy": object_npy}
        ),
        "object array as the metadata": rezip({io.METADATA_ENTRY + ".npy": object_npy}),
        "pickle as an entry": rezip(
            {io.METADATA_ENTRY + ".npy": metadata_npy(array_node([1])), "a0.npy": pickled}
        ),
        "pickle as a zip": rezip({"archive/data.pkl": pickled}),  # the layout of torch.save
        "object array nobody refers to": rezip(
            {io.METADATA_ENTRY + ".npy": metadata_npy({"type": "int", "value": 3}), "a0.npy": object_npy}
        ),
    }


@pytest.mark.parametrize("kind", list(pickle_payloads("m", 2)))
@given(protocol=st.integers(0, pickle.HIGHEST_PROTOCOL))
def test_a_pickle_payload_never_runs(workdir, kind, protocol):
    """Refused, except an object array the metadata never refers to: it is never read, and the
    file loads to the value its metadata describes."""
    marker = workdir / "ran"
    path = workdir / "payload.npz"
    path.write_bytes(pickle_payloads(marker, protocol)[kind])
    value, error = load_checked(path, marker)
    if kind == "object array nobody refers to":
        assert error is None and value == 3
    else:
        assert error is not None
        if kind.startswith("object array") or (kind == "pickle renamed .npz" and protocol >= 2):
            assert "pickle" in str(error)


def test_an_array_referred_to_many_times_is_refused(workdir):
    """Each reference would be a fresh copy: 1000 references to a 256 kB array would need 256 MB
    from a 300 kB file. ``save`` writes every array once, so a second reference is damage."""
    node = array_node([256 << 10], "uint8")
    text = metadata_text({"type": "list", "items": [node] * 1000})
    members = {io.METADATA_ENTRY + ".npy": npy_with_header("|u1", (len(text),), text)}
    members["a0.npy"] = npy_with_header("|u1", (256 << 10,), bytes(256 << 10))
    path = workdir / "ckpt"
    path.write_bytes(rezip(members))
    _, error = load_checked(path)
    assert re.search(r"array 'a0' is used twice .*\(at \[1\]\)", str(error)), error


NODE_KINDS = ["none", "bool", "int", "float", "str", "list", "tuple", "dict", "tensor", "ndarray", "set"]
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=6,
)
LEAF_NODES = st.fixed_dictionaries(
    {"type": st.sampled_from(NODE_KINDS)},
    optional={
        "value": JSON_VALUES,
        "array": st.sampled_from(["a0", "a1", "a9", io.METADATA_ENTRY]) | JSON_VALUES,
        "dtype": st.sampled_from(["float32", "int64", "object"]) | JSON_VALUES,
        "shape": st.sampled_from([[2, 3], [3], [], [2.0, 3.0]]) | JSON_VALUES,
    },
)
NODES = st.recursive(
    LEAF_NODES | JSON_VALUES,
    lambda children: st.fixed_dictionaries(
        {"type": st.sampled_from(NODE_KINDS)},
        optional={"items": st.lists(children | st.lists(children, max_size=2), max_size=3) | JSON_VALUES},
    ),
    max_leaves=10,
)


@given(root=NODES, version=st.sampled_from([io.FORMAT_VERSION, io.FORMAT_VERSION + 1, "1", None]))
def test_arbitrary_metadata_is_decoded_to_a_well_formed_value_or_refused(workdir, root, version):
    """The JSON is well formed but its description is anything at all: node types, values,
    array names, dtypes and shapes, alone or in any mix."""
    text = json.dumps({"format": io.FORMAT_NAME, "version": version, "root": root}).encode()
    members = {io.METADATA_ENTRY + ".npy": npy_with_header("|u1", (len(text),), text)}
    members["a0.npy"] = npy_with_header("<f4", (2, 3), bytes(24))
    members["a1.npy"] = npy_with_header("<i8", (3,), bytes(24))
    path = workdir / "ckpt"
    path.write_bytes(rezip(members))
    value, error = load_checked(path)
    if error is None:
        assert_well_formed(value)


# --- IDX files ---------------------------------------------------------------------------------------

IDX_SHAPES = {IMAGES_MAGIC: (3, 4, 5), LABELS_MAGIC: (7,)}
MAGICS = st.sampled_from(sorted(IDX_SHAPES))


def idx_file(magic: int) -> bytes:
    array = np.random.default_rng(magic).integers(0, 256, IDX_SHAPES[magic], dtype=np.uint8)
    return idx_bytes(array, magic)


def header_size(magic: int) -> int:
    return 4 + 4 * len(IDX_SHAPES[magic])


def read_idx_checked(workdir, data: bytes, magic: int, compressed: bool):
    """An IDX file read the two ways the library reads one: ``data`` gzip'd in a file, or raw
    bytes parsed in memory. The value or DataError, as ``load_checked`` for checkpoints."""
    path = workdir / ("file.idx.gz" if compressed else "file.idx")
    if compressed:
        path.write_bytes(data)
        value, error = attempt(lambda: read_idx_gz(path, magic), len(data), DataError)
    else:
        value, error = attempt(lambda: parse_idx(data, magic, str(path)), len(data), DataError)
    if error is not None:
        assert_names_file_and_problem(error, path, IDX_PROBLEM)
    return value, error


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def test_undamaged_idx_files_read_back(workdir):
    for magic, shape in IDX_SHAPES.items():
        for compressed in (False, True):
            data = idx_file(magic)
            value, error = read_idx_checked(workdir, gz(data) if compressed else data, magic, compressed)
            assert error is None and value.shape == shape and value.tobytes() == data[header_size(magic) :]


@given(magic=MAGICS, data=st.data())
def test_flipped_bytes_in_a_raw_idx_file_read_as_what_the_header_says_or_are_refused(workdir, magic, data):
    """Raw IDX has no checksum: a flip in the data is read as it is. What comes back must be
    exactly the (damaged) bytes after the header, in the shape the (damaged) header declares."""
    good = idx_file(magic)
    damaged = flip(good, data.draw(flips_in(len(good), list(range(header_size(magic))))))
    value, error = read_idx_checked(workdir, damaged, magic, compressed=False)
    if error is None:
        declared = struct.unpack(f">{len(IDX_SHAPES[magic])}I", damaged[4 : header_size(magic)])
        assert value.dtype == np.uint8 and value.shape == declared
        assert value.tobytes() == damaged[header_size(magic) :]


@given(magic=MAGICS, data=st.data())
def test_flipped_bytes_in_a_gzip_idx_file_read_the_original_or_are_refused(workdir, magic, data):
    """gzip checks a CRC-32 and the length of what it inflates; a flip it lets through (the
    mtime, the OS byte) must leave the array exactly as written."""
    good_idx = idx_file(magic)
    good = gz(good_idx)
    structure = list(range(10)) + list(range(len(good) - 8, len(good)))  # header, CRC and length
    value, error = read_idx_checked(
        workdir, flip(good, data.draw(flips_in(len(good), structure))), magic, True
    )
    if error is None:
        assert value.tobytes() == good_idx[header_size(magic) :] and value.shape == IDX_SHAPES[magic]


@pytest.mark.parametrize("compressed", [False, True])
@given(magic=MAGICS, data=st.data())
def test_a_truncated_idx_file_is_refused(workdir, compressed, magic, data):
    good = gz(idx_file(magic)) if compressed else idx_file(magic)
    cut = good[: data.draw(st.integers(0, len(good) - 1))]
    assert read_idx_checked(workdir, cut, magic, compressed)[1] is not None


@pytest.mark.parametrize("compressed", [False, True])
@given(
    magic=MAGICS,
    found=st.integers(0, 2**32 - 1) | st.sampled_from([0x801, 0x803, 0x802, 0x903, 0x0B03, 0x0803]),
)
def test_a_wrong_magic_number_or_dtype_code_is_refused(workdir, compressed, magic, found):
    """The magic number's third byte is the element type (0x08 unsigned bytes, 0x09 signed,
    0x0B short, ...), the fourth the number of dimensions: any other value is refused."""
    if found == magic:
        found ^= 0x0100  # 0x08 becomes 0x09: a signed-byte file
    data = struct.pack(">I", found) + idx_file(magic)[4:]
    _, error = read_idx_checked(workdir, gz(data) if compressed else data, magic, compressed)
    assert f"bad magic number 0x{found:08x}, expected 0x{magic:08x}" in str(error)


@pytest.mark.parametrize("compressed", [False, True])
@given(magic=MAGICS, data=st.data())
def test_dimensions_that_disagree_with_the_payload_are_refused(workdir, compressed, magic, data):
    """Sizes up to 2**32 - 1 each, so a declared product can reach 10**28; the payload stays 60
    bytes (images) or 7 (labels). Other sizes with the same product (2x5x6 for 3x4x5) agree
    with the payload: the same bytes come back in that shape."""
    ndim = len(IDX_SHAPES[magic])
    dims = data.draw(st.lists(st.integers(0, 2**32 - 1) | st.integers(0, 9), min_size=ndim, max_size=ndim))
    good = idx_file(magic)
    damaged = good[:4] + struct.pack(f">{ndim}I", *dims) + good[header_size(magic) :]
    value, error = read_idx_checked(workdir, gz(damaged) if compressed else damaged, magic, compressed)
    if math.prod(dims) == math.prod(IDX_SHAPES[magic]):
        assert error is None and value.shape == tuple(dims) and value.tobytes() == good[header_size(magic) :]
    else:
        assert re.search(
            rf": (truncated data|extra bytes after the data): header says shape \({dims[0]},", str(error)
        )


@pytest.mark.parametrize("compressed", [False, True])
@pytest.mark.parametrize(
    "dims, message",
    [
        # 2**22 * 2**21 * 2**21 is 2**64: zero in 64-bit arithmetic, the size of an empty payload.
        ((2**22, 2**21, 2**21), f"header says shape (4194304, 2097152, 2097152) ({2**64} bytes)"),
        # Zero bytes indeed, but 2**64 elements in the other axes: more than any array can index.
        ((0, 2**32 - 1, 2**32 - 1), "header says shape (0, 4294967295, 4294967295), which no array can have"),
    ],
)
def test_dimensions_beyond_64_bits_with_an_empty_payload_are_refused(workdir, compressed, dims, message):
    data = struct.pack(">4I", IMAGES_MAGIC, *dims)
    _, error = read_idx_checked(workdir, gz(data) if compressed else data, IMAGES_MAGIC, compressed)
    assert message in str(error)


@pytest.mark.parametrize("compressed", [False, True])
@given(
    magic=MAGICS,
    junk=st.binary(min_size=1, max_size=64) | st.binary(min_size=1, max_size=4).map(lambda b: b * 64),
)
def test_appended_junk_after_an_idx_file(workdir, compressed, magic, junk):
    """Raw: always extra bytes. gzip: junk after the stream is refused, except the zero padding
    gzip itself allows, which must leave the array exactly as written."""
    good = idx_file(magic)
    value, error = read_idx_checked(workdir, (gz(good) if compressed else good) + junk, magic, compressed)
    if not compressed:
        assert "extra bytes after the data" in str(error)
    elif error is None:
        assert value.tobytes() == good[header_size(magic) :]


@pytest.fixture(scope="module")
def gzip_bomb():
    """A 130 kB gzip file of a valid 1x2x2 image followed by 96 MiB of zeros."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [compressor.compress(idx_bytes(np.ones((1, 2, 2), np.uint8), IMAGES_MAGIC))]
    parts += [compressor.compress(bytes(1 << 20)) for _ in range(96)]
    return b"".join(parts) + compressor.flush()


def test_a_gzip_bomb_is_refused_without_inflating_it(workdir, gzip_bomb):
    _, error = read_idx_checked(workdir, gzip_bomb, IMAGES_MAGIC, compressed=True)
    assert "extra bytes after the data: header says shape (1, 2, 2) (4 bytes)" in str(error)
