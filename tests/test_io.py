"""minigen.io: exact round trips, atomic writes, and clear errors for every kind of bad file."""

import json
import math
import os
import pickle
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigen
from minigen import io
from minigen.io import CheckpointError
from minigen.optim import Adam

# --- round trips ------------------------------------------------------------------------------------


def assert_same(a, b, where="obj"):
    """Equal values of the same types all the way down; arrays bit for bit."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} came back as {type(b).__name__}"
    if isinstance(a, minigen.Tensor):
        assert not b.requires_grad and b.creator is None
        a, b = a.detach().numpy(), b.numpy()
    if isinstance(a, np.ndarray):
        assert (a.dtype, a.shape) == (b.dtype, b.shape), where
        assert np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes(), where
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for key in a:
            assert type(key) is type(next(k for k in b if k == key)), f"{where}: key {key!r}"
            assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, float):
        assert a.hex() == b.hex(), where  # exact, and nan == nan, -0.0 != 0.0
    else:
        assert a == b, where


def _round_trip(obj, path, map_location=None):
    io.save(obj, path)
    return io.load(path, map_location=map_location)


DTYPES = ["float16", "float32", "float64", "int8", "int32", "int64", "uint8", "uint64", "bool"]


@given(
    hnp.arrays(
        dtype=st.sampled_from(DTYPES),
        shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
    ),
    st.booleans(),
)
def test_arrays_and_tensors_round_trip_bit_for_bit(tmp_path_factory, array, transposed):
    """Every value NumPy can hold (nan, inf, -0.0 included), any shape including 0-d and empty."""
    path = tmp_path_factory.mktemp("arrays") / "ckpt"
    array = array.T if transposed else array  # a non-contiguous layout
    obj = {"array": array, "tensor": minigen.tensor(array)}
    assert_same(obj, _round_trip(obj, path))


def test_tensors_keep_dtype_and_shape_and_lose_requires_grad(tmp_path):
    w = minigen.randn(2, 3, dtype=minigen.float64, requires_grad=True)
    loaded = _round_trip({"w": w, "scalar": minigen.tensor(3.5)}, tmp_path / "ckpt")
    assert loaded["w"].dtype == minigen.float64 and loaded["w"].shape == (2, 3)
    assert not loaded["w"].requires_grad and loaded["w"].device == "cpu"
    assert loaded["scalar"].shape == () and loaded["scalar"].dtype == minigen.float32
    np.testing.assert_array_equal(loaded["w"].numpy(), w.detach().numpy())


PLAIN_VALUES = [
    None,
    True,
    False,
    0,
    -7,
    2**100,
    -(2**70),
    0.1,
    -0.0,
    5e-324,
    1.7976931348623157e308,
    math.nan,
    math.inf,
    -math.inf,
    "",
    'Grüße, 世界 \n "quoted" \\ {json}',
]


def test_plain_values_round_trip_exactly(tmp_path):
    assert_same(PLAIN_VALUES, _round_trip(PLAIN_VALUES, tmp_path / "ckpt"))
    assert_same(PLAIN_VALUES[11], _round_trip(PLAIN_VALUES[11], tmp_path / "ckpt"))  # a bare top level


def test_nested_structures_keep_their_types(tmp_path):
    obj = {
        "model": {"encoder.0.weight": minigen.ones(2, 2), "layers": [np.arange(3), (1, [2.5, None])]},
        0: {"step": 3, "exp_avg": minigen.zeros(2)},
        1: [],
        -5: (),
        "empty": {},
        "tuple of tuples": ((1,), ((2, 3),)),
        "list": [[], [[]], ("a", "b")],
        "0": "a str key that looks like an int",
    }
    loaded = _round_trip(obj, tmp_path / "ckpt")
    assert_same(obj, loaded)
    assert 0 in loaded and "0" in loaded and loaded[0] is not loaded["0"]


def test_an_optimizer_state_dict_round_trips(tmp_path):
    p = minigen.randn(3, requires_grad=True)
    opt = Adam([p], lr=0.1, amsgrad=True)
    p.grad = minigen.ones(3)
    opt.step()
    sd = opt.state_dict()
    assert_same(sd, _round_trip(sd, tmp_path / "ckpt"))


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
        lambda children: (
            st.lists(children, max_size=3)
            | st.lists(children, max_size=3).map(tuple)
            | st.dictionaries(st.text(max_size=3) | st.integers(), children, max_size=3)
        ),
        max_leaves=12,
    )
)
def test_any_structure_of_plain_values_round_trips(tmp_path_factory, obj):
    assert_same(obj, _round_trip(obj, tmp_path_factory.mktemp("plain") / "ckpt"))


def test_map_location_places_tensors_and_keeps_numpy_arrays_on_the_host(tmp_path, device):
    t = minigen.randn(2, 3, device=device)
    obj = {"tensor": t, "array": t.data, "host": np.arange(4)}  # a CuPy array is saved from the host
    loaded = _round_trip(obj, tmp_path / "ckpt", map_location=device)
    assert loaded["tensor"].device == device and loaded["tensor"].dtype == minigen.float32
    assert isinstance(loaded["array"], np.ndarray) and isinstance(loaded["host"], np.ndarray)
    np.testing.assert_array_equal(loaded["tensor"].numpy(), t.numpy())
    np.testing.assert_array_equal(loaded["array"], t.numpy())
    assert io.load(tmp_path / "ckpt")["tensor"].device == "cpu"


def test_an_unknown_map_location_is_refused(tmp_path):
    io.save({"x": minigen.ones(1)}, tmp_path / "ckpt")
    with pytest.raises(minigen.backend.DeviceError, match="unknown device 'tpu'"):
        io.load(tmp_path / "ckpt", map_location="tpu")


def test_the_path_is_used_exactly_as_given(tmp_path):
    io.save([1], str(tmp_path / "no_extension"))
    io.save([2], tmp_path / "other.ckpt")
    assert sorted(os.listdir(tmp_path)) == ["no_extension", "other.ckpt"]
    assert io.load(str(tmp_path / "no_extension")) == [1]


def test_saving_again_replaces_the_file(tmp_path):
    io.save({"v": 1}, tmp_path / "ckpt")
    io.save({"v": 2}, tmp_path / "ckpt")
    assert io.load(tmp_path / "ckpt") == {"v": 2}
    assert os.listdir(tmp_path) == ["ckpt"]


# --- what cannot be saved -----------------------------------------------------------------------------


class _Thing:
    pass


@pytest.mark.parametrize(
    "obj, message",
    [
        ({"model": {"layers": [0, 1, {2}]}}, r"type set \(at model\.layers\[2\]\)"),
        ({"opt": {"state": {3: _Thing()}}}, r"type _Thing \(at opt\.state\[3\]\)"),
        ({"a": [np.zeros(2, dtype=complex)]}, r"dtype complex128 \(at a\[0\]\)"),
        ({"a": np.array([None, 1], dtype=object)}, r"dtype object \(at a\)"),
        ({"a": np.array(["text"])}, r"dtype <U4 \(at a\)"),
        ({"x.y": (1, np.float32(2))}, r"type float32 \(at \['x\.y'\]\[1\]\).*float\(\) or int\(\)"),
        ({"a": {1.5: 0}}, r"dict key of type float \(1\.5, at a\)"),
        ({("a", 1): 0}, r"dict key of type tuple \(\('a', 1\), at the top level\)"),
        ({True: 0}, r"dict key of type bool"),
        ({np.int64(3): 0}, r"dict key of type int64"),
        (b"bytes", r"type bytes \(at the top level\)"),
    ],
)
def test_unsupported_values_raise_type_errors_naming_where_they_are(tmp_path, obj, message):
    with pytest.raises(TypeError, match=message):
        io.save(obj, tmp_path / "ckpt")
    assert os.listdir(tmp_path) == []


def test_a_structure_that_contains_itself_is_refused(tmp_path):
    loop = {"a": [1]}
    loop["a"].append(loop)
    with pytest.raises(TypeError, match=r"contains itself \(at a\[1\]\)"):
        io.save(loop, tmp_path / "ckpt")
    shared = [1]
    assert_same([shared, shared], _round_trip([shared, shared], tmp_path / "ckpt"))  # sharing is fine


def test_a_missing_directory_is_named(tmp_path):
    missing = tmp_path / "runs" / "today"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        io.save({}, missing / "ckpt")


# --- atomic writes --------------------------------------------------------------------------------------


def test_a_save_that_fails_on_a_value_leaves_the_old_file(tmp_path):
    path = tmp_path / "ckpt"
    io.save({"good": minigen.arange(5)}, path)
    before = path.read_bytes()
    with pytest.raises(TypeError):
        io.save({"good": minigen.arange(5), "bad": {1, 2}}, path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["ckpt"]


@pytest.mark.parametrize("stage", ["write", "replace"])
def test_a_save_that_fails_while_writing_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch, stage):
    path = tmp_path / "ckpt"
    io.save({"good": minigen.arange(5)}, path)
    before = path.read_bytes()
    temporaries = []

    def broken_savez(file, allow_pickle, **entries):
        file.write(b"PK\x03\x04 half a zip")
        temporaries.extend(set(os.listdir(tmp_path)) - {"ckpt"})
        raise OSError("disk full")

    def broken_replace(source, target):
        temporaries.extend(set(os.listdir(tmp_path)) - {"ckpt"})
        raise OSError("rename refused")

    if stage == "write":
        monkeypatch.setattr(io.numpy, "savez", broken_savez)
    else:
        monkeypatch.setattr(io.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full|rename refused"):
        io.save({"new": minigen.ones(3)}, path)
    monkeypatch.undo()
    assert len(temporaries) == 1  # the temporary file was written beside the target
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["ckpt"]
    assert_same({"good": minigen.arange(5)}, io.load(path))


# --- bad files -------------------------------------------------------------------------------------------


def _checkpoint(path):
    io.save({"w": minigen.randn(4, 4), "b": np.arange(3), "meta": {"epoch": 3}}, path)
    return path.read_bytes()


def _write_npz(path, metadata, **arrays):
    """An .npz with ``metadata`` (a dict, or raw bytes) as minigen's metadata entry."""
    raw = metadata if isinstance(metadata, bytes) else json.dumps(metadata).encode()
    with open(path, "wb") as file:
        np.savez(file, **{io.METADATA_ENTRY: np.frombuffer(raw, dtype=np.uint8)}, **arrays)


def _metadata(path):
    with np.load(path, allow_pickle=False) as npz:
        return json.loads(npz[io.METADATA_ENTRY].tobytes()), {k: npz[k] for k in npz.files}


def _raises_checkpoint_error(path, message):
    return pytest.raises(CheckpointError, match=re.escape(str(path)) + ".*" + message)


def test_a_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nothing"))):
        io.load(tmp_path / "nothing")


def test_a_truncated_file_raises(tmp_path):
    path = tmp_path / "ckpt"
    data = _checkpoint(path)
    for size in [0, 1, 3, 30, 100, len(data) // 2, len(data) - 23, len(data) - 1]:
        path.write_bytes(data[:size])
        with _raises_checkpoint_error(path, "empty file|not a zip|not a readable"):
            io.load(path)


def test_a_flipped_byte_in_array_data_raises(tmp_path):
    path = tmp_path / "ckpt"
    data = bytearray(_checkpoint(path))
    header = data.index(b"\x93NUMPY", data.index(b"a0.npy"))  # entry a0: the 4x4 float32 array
    header_length = int.from_bytes(data[header + 8 : header + 10], "little")
    data[header + 10 + header_length + 5] ^= 0xFF
    path.write_bytes(bytes(data))
    with _raises_checkpoint_error(path, "array 'a0' cannot be read.*CRC"):
        io.load(path)


def test_random_bytes_raise(tmp_path):
    path = tmp_path / "noise"
    rng = np.random.default_rng(0)
    path.write_bytes(b"\x00" + rng.bytes(999))
    with _raises_checkpoint_error(path, "not a zip/npz file"):
        io.load(path)
    path.write_bytes(b"PK\x03\x04" + rng.bytes(996))
    with _raises_checkpoint_error(path, "not a readable .npz"):
        io.load(path)


class MakesDirectory:
    """Unpickling this calls os.mkdir(path): proof that a loader ran code from the file."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def test_the_sentinel_payload_really_runs_when_unpickled(tmp_path):
    pickle.loads(pickle.dumps(MakesDirectory(tmp_path / "ran")))
    assert (tmp_path / "ran").is_dir()


def test_a_pickle_file_is_refused_without_running_it(tmp_path):
    path, sentinel = tmp_path / "model.pt", tmp_path / "sentinel"
    path.write_bytes(pickle.dumps({"weights": MakesDirectory(sentinel)}))
    with _raises_checkpoint_error(path, "looks like a pickle"):
        io.load(path)
    assert not sentinel.exists()


def test_an_object_array_is_refused_without_running_it(tmp_path):
    path, sentinel = tmp_path / "ckpt", tmp_path / "sentinel"
    payload = np.empty(1, dtype=object)
    payload[0] = MakesDirectory(sentinel)
    node = {"type": "ndarray", "array": "a0", "dtype": "object", "shape": [1]}
    _write_npz(path, {"format": io.FORMAT_NAME, "version": io.FORMAT_VERSION, "root": node}, a0=payload)
    with _raises_checkpoint_error(
        path, r"array 'a0' cannot be read.*allow_pickle=False \(at the top level\)"
    ):
        io.load(path)
    assert not sentinel.exists()


def test_a_plain_npz_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "plain.npz"
    np.savez(path, weights=np.ones(3))
    with _raises_checkpoint_error(path, "not a minigen checkpoint: it has no '__minigen__' entry"):
        io.load(path)
    np.save(tmp_path / "single.npy", np.ones(3))
    with _raises_checkpoint_error(tmp_path / "single.npy", "not a zip/npz file"):
        io.load(tmp_path / "single.npy")


def _edited(tmp_path, edit):
    """A real checkpoint rewritten with ``edit`` applied to its metadata and arrays."""
    path = tmp_path / "ckpt"
    _checkpoint(path)
    metadata, arrays = _metadata(path)
    edit(metadata, arrays)
    del arrays[io.METADATA_ENTRY]
    _write_npz(path, metadata, **arrays)
    return path


def test_the_editing_helper_keeps_an_unedited_file_loadable(tmp_path):
    path = _edited(tmp_path, lambda metadata, arrays: None)
    assert io.load(path)["meta"] == {"epoch": 3}


def _items(node):
    """The value nodes of a dict node, by key."""
    return {key["value"]: value for key, value in node["items"]}


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda m, a: a.pop("a0"), r"refers to array 'a0', which the file does not contain \(at w\)"),
        (
            lambda m, a: _items(m["root"])["w"].update(array="a7"),
            r"array 'a7', which the file does not contain",
        ),
        (lambda m, a: m.update(version=2), r"version 2 is not supported \(this minigen reads version 1"),
        (lambda m, a: m.pop("version"), "version None is not supported"),
        (lambda m, a: m.update(format="other"), "does not describe a minigen-checkpoint file"),
        (
            lambda m, a: _items(m["root"])["w"].update(dtype="float64"),
            "'a0' has dtype float32, the metadata says float64",
        ),
        (
            lambda m, a: _items(m["root"])["w"].update(shape=[16]),
            r"'a0' has shape \(4, 4\), the metadata says \[16\]",
        ),
        (lambda m, a: _items(m["root"])["meta"].update(type="set"), r"unknown node type 'set' \(at meta\)"),
        (
            lambda m, a: _items(_items(m["root"])["meta"])["epoch"].update(value="3"),
            r"int node holds '3' \(at meta\.epoch\)",
        ),
        (lambda m, a: _items(m["root"])["meta"]["items"][0][0].update(type="none"), "a dict key None"),
        (lambda m, a: _items(m["root"])["meta"].pop("items"), "dict node without a list of items"),
        (lambda m, a: a.update(a1=np.array(["x"])), "'a1' has dtype <U1, the metadata says int64"),
    ],
)
def test_damaged_metadata_raises(tmp_path, edit, message):
    path = _edited(tmp_path, edit)
    with _raises_checkpoint_error(path, message):
        io.load(path)


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"{not json", "metadata entry is unreadable"),
        (b"\xff\xfe", "metadata entry is unreadable"),
        (b"[1, 2]", "does not describe a minigen-checkpoint file"),
    ],
)
def test_unreadable_metadata_raises(tmp_path, raw, message):
    path = tmp_path / "ckpt"
    _write_npz(path, raw)
    with _raises_checkpoint_error(path, message):
        io.load(path)


def test_deeply_nested_metadata_raises(tmp_path):
    path = tmp_path / "ckpt"
    deep = '{"type":"list","items":[' * 5000 + '{"type":"none"}' + "]}" * 5000
    _write_npz(path, f'{{"format":"{io.FORMAT_NAME}","version":{io.FORMAT_VERSION},"root":{deep}}}'.encode())
    with _raises_checkpoint_error(path, "nested too deeply"):
        io.load(path)
