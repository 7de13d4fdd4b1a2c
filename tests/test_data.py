"""minigen.data: the four data sets (shapes, dtypes, values, fixed splits, label counts), MD5
checks and downloading (with fake mirrors: tests never touch the network), and the DataLoader
(order, drop_last, seeded shuffling, resuming from a state dict, devices).

MNIST and Fashion-MNIST are read from $MINIGEN_DATA (CI sets it to ../shared/data); the tests
that need them skip, saying why, when it is unset or the files are not there.
"""

import gzip
import hashlib
import io
import math
import os
import shutil
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest

import minigen
from minigen.backend import DeviceError
from minigen.data import KNOWN, RING_MODES, RING_STD, DataError, DataLoader, Dataset, load, sources
from minigen.data.sources import FILES, MD5, MIRRORS, data_root, download, fetch, file_md5

# README of the shared data: the label histograms of the original files.
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Any download a test did not set up itself fails loudly instead of reaching the network."""

    def refuse(url, timeout):
        raise AssertionError(f"a test tried to download {url}")

    monkeypatch.setattr(sources, "urlopen", refuse)


def shared_root(name: str, split: str) -> Path:
    """$MINIGEN_DATA when it holds ``name``'s files for ``split``; otherwise skip the test."""
    value = os.environ.get("MINIGEN_DATA")
    if not value:
        pytest.skip("MINIGEN_DATA is unset; point it at a folder with mnist/ and fashion-mnist/")
    root = Path(value)
    for filename in FILES[split]:
        if not (root / name / filename).is_file():
            pytest.skip(f"{root / name / filename} is absent (MINIGEN_DATA={value})")
    return root


@pytest.fixture(scope="module")
def mnist_train():
    shared_root("mnist", "train")
    return load("mnist", "train")


# --- load() ----------------------------------------------------------------------------------


def test_unknown_name_is_an_error_listing_the_known_ones():
    assert KNOWN == ("digits", "mnist", "fashion-mnist", "ring")
    with pytest.raises(
        ValueError, match="unknown data set 'cifar10'; known: 'digits', 'mnist', 'fashion-mnist', 'ring'"
    ):
        load("cifar10")


def test_unknown_split_is_an_error_listing_train_and_test():
    with pytest.raises(ValueError, match="unknown split 'valid'; expected one of 'train', 'test'"):
        load("digits", "valid")


# --- Dataset ---------------------------------------------------------------------------------


def test_dataset_indexes_pairs_and_describes_itself():
    ds = Dataset(np.arange(12, dtype=np.float64).reshape(3, 2, 2), [2, 0, 1], name="toy", split="test")
    assert ds.inputs.dtype == np.float32 and ds.labels.dtype == np.int64
    assert (len(ds), ds.example_shape, ds.num_classes, ds.name, ds.split) == (3, (2, 2), 3, "toy", "test")
    x, y = ds[1]
    np.testing.assert_array_equal(x, [[4, 5], [6, 7]])
    assert y == 0
    assert repr(ds) == "Dataset(name='toy', split='test', 3 examples of shape (2, 2), num_classes=3)"


def test_dataset_rejects_mismatched_lengths():
    with pytest.raises(
        ValueError, match=r"same number of examples .* inputs of shape \(3, 2\) and labels of shape \(2,\)"
    ):
        Dataset(np.zeros((3, 2)), [0, 1])


@pytest.mark.parametrize(
    "labels, message",
    [
        ([0.0, 1.0], r"labels must be a 1-D integer array; got shape \(2,\) and dtype float64"),
        ([[0], [1]], r"labels must be a 1-D integer array; got shape \(2, 1\)"),
        ([0, 10], r"labels must lie in \[0, num_classes=10\); got values from 0 to 10"),
        ([-1, 1], r"labels must lie in \[0, num_classes=10\); got values from -1 to 1"),
    ],
)
def test_dataset_rejects_bad_labels(labels, message):
    with pytest.raises(ValueError, match=message):
        Dataset(np.zeros((2, 2)), labels, num_classes=10)


# --- digits ----------------------------------------------------------------------------------


def test_digits_is_a_fixed_80_20_split_of_all_1797_images():
    from sklearn.datasets import load_digits

    train, test = load("digits", "train"), load("digits", "test")
    assert (len(train), len(test)) == (1437, 360)
    for ds in (train, test):
        assert ds.inputs.shape == (len(ds), 1, 8, 8) and ds.inputs.dtype == np.float32
        assert ds.labels.dtype == np.int64 and ds.num_classes == 10 and ds.example_shape == (1, 8, 8)
        assert ds.inputs.min() == 0.0 and ds.inputs.max() == 1.0
    bunch = load_digits()
    together = np.concatenate([train.inputs, test.inputs]), np.concatenate([train.labels, test.labels])
    assert as_multiset(*together) == as_multiset(bunch.images / 16, bunch.target)


def as_multiset(images, labels):
    """Each example as bytes (its 64 pixel values 0..16, then its label), sorted."""
    pixels = np.rint(np.reshape(images, (len(labels), 64)) * 16).astype(np.uint8)
    return sorted(row.tobytes() + bytes([int(label)]) for row, label in zip(pixels, labels))


def test_digits_split_is_the_same_in_every_run():
    again = load("digits", "train")
    np.testing.assert_array_equal(again.inputs, load("digits", "train").inputs)
    # Pinned: a change here would silently change every digits result.
    assert again.labels[:8].tolist() == [6, 6, 6, 2, 5, 6, 6, 2]
    assert np.bincount(load("digits", "test").labels).tolist() == [39, 37, 47, 28, 42, 32, 37, 27, 30, 41]


# --- ring ------------------------------------------------------------------------------------


def test_ring_modes_are_eight_points_at_radius_two():
    expected = [[2 * math.cos(2 * math.pi * k / 8), 2 * math.sin(2 * math.pi * k / 8)] for k in range(8)]
    np.testing.assert_allclose(RING_MODES, expected, rtol=0, atol=1e-15)
    assert RING_STD == 0.02


@pytest.mark.parametrize("split, n", [("train", 10_000), ("test", 2_000)])
def test_ring_points_are_gaussians_around_their_labelled_mode(split, n):
    ds = load("ring", split)
    assert ds.inputs.shape == (n, 2) and ds.inputs.dtype == np.float32 and ds.labels.dtype == np.int64
    assert (ds.num_classes, ds.example_shape) == (8, (2,))
    counts = np.bincount(ds.labels, minlength=8)
    assert counts.sum() == n and np.all(np.abs(counts - n / 8) < 5 * math.sqrt(n / 8))  # uniform modes
    for k in range(8):
        points = ds.inputs[ds.labels == k].astype(np.float64)
        standard_error = RING_STD / math.sqrt(len(points))
        np.testing.assert_allclose(points.mean(axis=0), RING_MODES[k], rtol=0, atol=5 * standard_error)
        np.testing.assert_allclose(points.std(axis=0), RING_STD, rtol=5 / math.sqrt(2 * len(points)))
    nearest = np.argmin(((ds.inputs[:, None, :] - RING_MODES[None]) ** 2).sum(axis=2), axis=1)
    np.testing.assert_array_equal(nearest, ds.labels)


def test_ring_is_fixed_and_its_splits_differ():
    train = load("ring", "train")
    np.testing.assert_array_equal(train.inputs, load("ring", "train").inputs)
    assert not np.allclose(train.inputs[:2000], load("ring", "test").inputs)


# --- MNIST and Fashion-MNIST (real files) ----------------------------------------------------


def check_images(ds, n):
    assert ds.inputs.shape == (n, 1, 28, 28) and ds.inputs.dtype == np.float32
    assert ds.labels.shape == (n,) and ds.labels.dtype == np.int64
    assert (ds.num_classes, ds.example_shape, len(ds)) == (10, (1, 28, 28), n)
    assert ds.inputs.min() == 0.0 and ds.inputs.max() == 1.0
    sample = ds.inputs[:100] * 255
    np.testing.assert_allclose(sample, np.rint(sample), atol=1e-4)  # every pixel is k / 255


def raw_first_image(path):
    """The first image's 784 bytes, read straight out of the gzip file past its 16-byte header."""
    with gzip.open(path) as f:
        return np.frombuffer(f.read(16 + 784)[16:], dtype=np.uint8).reshape(28, 28)


def test_mnist_train_has_60000_images_and_the_original_labels(mnist_train):
    check_images(mnist_train, 60_000)
    assert mnist_train.labels[0] == 5
    assert np.bincount(mnist_train.labels).tolist() == MNIST_TRAIN_COUNTS
    raw = raw_first_image(shared_root("mnist", "train") / "mnist" / FILES["train"][0])
    np.testing.assert_array_equal(mnist_train.inputs[0, 0], raw.astype(np.float32) / 255)


def test_mnist_test_has_10000_images_and_the_original_labels():
    shared_root("mnist", "test")
    ds = load("mnist", "test")
    check_images(ds, 10_000)
    assert (ds.name, ds.split) == ("mnist", "test")
    assert ds.labels[:4].tolist() == [7, 2, 1, 0]
    assert np.bincount(ds.labels).tolist() == MNIST_TEST_COUNTS


def test_fashion_mnist_test_has_1000_images_of_each_class():
    root = shared_root("fashion-mnist", "test")
    ds = load("fashion-mnist", "test")
    check_images(ds, 10_000)
    assert np.bincount(ds.labels).tolist() == [1000] * 10
    raw = raw_first_image(root / "fashion-mnist" / FILES["test"][0])
    np.testing.assert_array_equal(ds.inputs[0, 0], raw.astype(np.float32) / 255)


def test_root_argument_overrides_the_environment(monkeypatch, tmp_path):
    root = shared_root("mnist", "test")
    monkeypatch.setenv("MINIGEN_DATA", str(tmp_path / "empty"))
    assert len(load("mnist", "test", root=root)) == 10_000
    assert not (tmp_path / "empty").exists()


def test_data_root_is_the_argument_then_the_environment_then_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("MINIGEN_DATA", "some/where")
    assert data_root("else/where") == Path("else/where")
    assert data_root() == Path("some/where")
    monkeypatch.delenv("MINIGEN_DATA")
    assert data_root() == tmp_path / ".cache" / "minigen"


def test_shared_files_match_the_md5_table():
    root = shared_root("mnist", "test")
    for name in MD5:
        for filename, md5 in MD5[name].items():
            if (root / name / filename).is_file():
                assert file_md5(root / name / filename) == md5, filename


def copy_split(root, tmp_path, name, split):
    (tmp_path / name).mkdir()
    for filename in FILES[split]:
        shutil.copy(root / name / filename, tmp_path / name / filename)
    return [tmp_path / name / filename for filename in FILES[split]]


def test_a_corrupt_cached_file_is_an_error_that_says_to_delete_it(tmp_path):
    root = shared_root("mnist", "test")
    _, labels = copy_split(root, tmp_path, "mnist", "test")
    data = bytearray(labels.read_bytes())
    data[100] ^= 1
    labels.write_bytes(bytes(data))
    expected = (
        rf"{labels} is corrupt or not the original file "
        rf"\(md5 [0-9a-f]{{32}}, expected {MD5['mnist'][labels.name]}\); delete it"
    )
    with pytest.raises(DataError, match=expected):
        load("mnist", "test", root=tmp_path)
    assert labels.read_bytes() == bytes(data)  # the user's file is reported, not removed behind their back


# --- downloading (fake mirrors) --------------------------------------------------------------


class FakeResponse(io.BytesIO):
    """What urlopen returns, as far as the downloader uses it: read(n), headers, a context manager."""

    def __init__(self, payload: bytes, fail_after: int | None = None):
        super().__init__(payload)
        self.headers = {"Content-Length": str(len(payload))}
        self.fail_after = fail_after

    def read(self, n=-1):
        if self.fail_after is not None and self.tell() >= self.fail_after:
            raise ConnectionResetError("connection reset by peer")
        return super().read(n)


class FakeMirrors:
    """An opener serving ``routes[url]``: bytes, a FakeResponse, or an exception to raise."""

    def __init__(self, routes):
        self.routes = routes
        self.calls = []

    def __call__(self, url, timeout):
        self.calls.append(url)
        served = self.routes.get(url, URLError("404 not found"))
        if isinstance(served, Exception):
            raise served
        return served if isinstance(served, FakeResponse) else FakeResponse(served)


PAYLOAD = bytes(range(256)) * 1000  # several read chunks
PAYLOAD_MD5 = hashlib.md5(PAYLOAD).hexdigest()


def test_download_tries_mirrors_in_order_until_one_works(tmp_path, capsys):
    urls = ["https://a/f.gz", "https://b/f.gz", "https://c/f.gz"]
    opener = FakeMirrors({"https://a/f.gz": URLError("name resolution failed"), "https://b/f.gz": PAYLOAD})
    path = download(urls, tmp_path / "sub" / "f.gz", PAYLOAD_MD5, opener)
    assert path == tmp_path / "sub" / "f.gz" and path.read_bytes() == PAYLOAD
    assert opener.calls == urls[:2]
    assert os.listdir(tmp_path / "sub") == ["f.gz"]  # no temporary file left behind
    assert "f.gz" in capsys.readouterr().err  # the progress bar names the file


def test_download_skips_a_corrupt_mirror_and_one_that_drops_the_connection(tmp_path):
    corrupt = bytearray(PAYLOAD)
    corrupt[5] ^= 1
    opener = FakeMirrors(
        {
            "u1": bytes(corrupt),
            "u2": FakeResponse(PAYLOAD, fail_after=70_000),
            "u3": PAYLOAD[:-1] + b"!",
            "u4": PAYLOAD,
        }
    )
    path = download(["u1", "u2", "u3", "u4"], tmp_path / "f.gz", PAYLOAD_MD5, opener)
    assert path.read_bytes() == PAYLOAD and os.listdir(tmp_path) == ["f.gz"]


def test_download_that_fails_everywhere_lists_each_mirror_and_leaves_nothing(tmp_path):
    opener = FakeMirrors({"https://a/f.gz": PAYLOAD[:1000], "https://b/f.gz": URLError("timed out")})
    expected = (
        r"could not download f\.gz from any mirror:\n"
        r"  https://a/f\.gz: md5 [0-9a-f]{32}, expected " + PAYLOAD_MD5 + r": corrupt or wrong file\n"
        r"  https://b/f\.gz: <urlopen error timed out>\n"
        rf"fetch it yourself \(md5 {PAYLOAD_MD5}\) and put it at {tmp_path / 'f.gz'}, or set MINIGEN_DATA"
    )
    with pytest.raises(DataError, match=expected):
        download(["https://a/f.gz", "https://b/f.gz"], tmp_path / "f.gz", PAYLOAD_MD5, opener)
    assert os.listdir(tmp_path) == []


def test_fetch_downloads_a_missing_file_from_the_mirrors_in_order(tmp_path):
    root = shared_root("mnist", "test")
    filename = FILES["test"][1]
    first, second = (mirror + filename for mirror in MIRRORS["mnist"])
    opener = FakeMirrors({first: URLError("403 forbidden"), second: (root / "mnist" / filename).read_bytes()})
    path = fetch("mnist", filename, root=tmp_path, opener=opener)
    assert path == tmp_path / "mnist" / filename and opener.calls == [first, second]
    assert file_md5(path) == MD5["mnist"][filename]


def test_load_downloads_missing_files_and_reads_them(tmp_path, monkeypatch):
    root = shared_root("mnist", "test")
    mirror = MIRRORS["mnist"][-1]
    opener = FakeMirrors({mirror + f: (root / "mnist" / f).read_bytes() for f in FILES["test"]})
    monkeypatch.setattr(sources, "urlopen", opener)
    downloaded = load("mnist", "test", root=tmp_path)
    assert sorted(os.listdir(tmp_path / "mnist")) == sorted(FILES["test"])
    np.testing.assert_array_equal(downloaded.labels, load("mnist", "test", root=root).labels)
    calls = len(opener.calls)
    load("mnist", "test", root=tmp_path)
    assert len(opener.calls) == calls  # read from the cache the second time


# --- DataLoader ------------------------------------------------------------------------------


def numbered(n: int) -> Dataset:
    """Example i is the value i with label i % 3, so a batch shows which examples it holds."""
    return Dataset(np.arange(n, dtype=np.float32)[:, None], np.arange(n) % 3)


def epoch(loader) -> list[list[int]]:
    return [x.numpy()[:, 0].astype(int).tolist() for x, _ in loader]


def test_loader_yields_batches_in_order_and_keeps_the_last_partial_one(device):
    loader = DataLoader(numbered(10), batch_size=4, device=device)
    batches = list(loader)
    assert len(loader) == len(batches) == 3
    for (x, y), expected in zip(batches, [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]):
        assert x.device == device and y.device == device
        assert x.dtype == np.float32 and y.dtype == np.int64 and x.shape == (len(expected), 1)
        assert x.numpy()[:, 0].tolist() == expected and y.numpy().tolist() == [i % 3 for i in expected]


def test_loader_drop_last_drops_the_partial_batch():
    loader = DataLoader(numbered(10), batch_size=4, drop_last=True)
    assert len(loader) == 2 and epoch(loader) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    small = DataLoader(numbered(3), batch_size=4, drop_last=True)
    assert len(small) == 0 and epoch(small) == []


def test_loader_batch_size_defaults_to_128():
    loader = DataLoader(numbered(300))
    assert loader.batch_size == 128 and [len(b) for b in epoch(loader)] == [128, 128, 44]


def test_shuffled_epoch_e_is_the_e_th_permutation_of_default_rng_seed():
    loader = DataLoader(numbered(10), batch_size=3, shuffle=True, seed=7)
    rng = np.random.default_rng(7)
    for _ in range(3):
        expected = rng.permutation(10).tolist()
        assert sum(epoch(loader), []) == expected


def test_shuffling_is_reproducible_from_the_seed_and_differs_between_epochs():
    def three_epochs(seed):
        loader = DataLoader(numbered(50), batch_size=8, shuffle=True, seed=seed)
        return [epoch(loader) for _ in range(3)]

    first = three_epochs(1)
    assert first == three_epochs(1)
    assert first[0] != first[1] != first[2]
    assert first != three_epochs(2)
    assert all(sorted(sum(e, [])) == list(range(50)) for e in first)


def test_without_a_seed_shuffling_follows_minigen_manual_seed():
    minigen.manual_seed(3)
    a = epoch(DataLoader(numbered(50), batch_size=50, shuffle=True))
    minigen.manual_seed(3)
    assert epoch(DataLoader(numbered(50), batch_size=50, shuffle=True)) == a


def test_an_unshuffled_loader_leaves_minigen_random_stream_alone():
    minigen.manual_seed(0)
    expected = minigen.randn(4).numpy()
    minigen.manual_seed(0)
    DataLoader(numbered(5))
    np.testing.assert_array_equal(minigen.randn(4).numpy(), expected)


def test_resumed_loader_continues_the_uninterrupted_sequence():
    def make():
        return DataLoader(numbered(20), batch_size=6, shuffle=True, seed=11)

    uninterrupted = make()
    reference = [epoch(uninterrupted) for _ in range(4)]
    interrupted = make()
    epoch(interrupted)
    for _ in interrupted:  # an epoch cut short still counts as begun
        break
    state = interrupted.state_dict()
    assert state == {"epoch": 2}
    resumed = make()
    resumed.load_state_dict(state)
    assert [epoch(resumed), epoch(resumed)] == reference[2:]
    assert resumed.state_dict() == uninterrupted.state_dict() == {"epoch": 4}


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"batch_size": 0}, ValueError, "batch_size must be a positive integer; got 0"),
        ({"batch_size": 2.5}, TypeError, "'float' object cannot be interpreted as an integer"),
        ({"device": "tpu"}, DeviceError, "unknown device 'tpu'; expected one of cpu, cuda"),
    ],
)
def test_loader_rejects_bad_settings(kwargs, error, message):
    with pytest.raises(error, match=message):
        DataLoader(numbered(4), **kwargs)


def test_loader_needs_a_dataset():
    with pytest.raises(TypeError, match="DataLoader needs a minigen.data.Dataset; got tuple"):
        DataLoader((np.zeros((2, 1)), np.zeros(2)))


@pytest.mark.parametrize(
    "state, message",
    [
        ({"epoch": -1}, "epoch must be a non-negative integer; got -1"),
        ({"epoch": 1, "seed": 2}, r"holds just the key 'epoch'; got keys \['epoch', 'seed'\]"),
        ({}, r"holds just the key 'epoch'; got keys \[\]"),
    ],
)
def test_loader_rejects_bad_state_dicts(state, message):
    with pytest.raises(ValueError, match=message):
        DataLoader(numbered(4), shuffle=True, seed=0).load_state_dict(state)
