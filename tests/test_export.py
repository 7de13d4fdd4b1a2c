"""minigen.export: weights moved to and from PyTorch give the same outputs, and safetensors files
written without the safetensors package are read by it (and the other way), with a clear error
for every kind of bad file.

Each model is written a second time, plainly, in PyTorch below. Outputs of the two with the same
float32 weights agree elementwise to |minigen - torch| <= 1e-6 + 1e-5 |torch|, on the
deterministic paths (eval mode and one train-mode batch; a VAE's encoder, and its decoder at a
given z, never a sample). The two libraries sum in different orders, so float32 outputs differ
by rounding alone: measured up to 1.2e-6 absolute (a 6272-term logit of the DCGAN critic, and
BatchNorm's batch statistics), which a bare 1e-6 would refuse; a wrong layout or key would be
off by O(1). Weights themselves move bit for bit. Tests that need PyTorch or safetensors skip
without them.
"""

import functools
import json
import re
import struct
import subprocess
import sys
import tracemalloc
from collections import OrderedDict
from types import SimpleNamespace

import numpy as np
import pytest
import stand_in_gpu as gpu
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigen
from minigen import export, nn
from minigen.generative.gan import DCGAN
from minigen.generative.vae import MLPVAE, ConvVAE
from minigen.io import CheckpointError

ATOL, RTOL = 1e-6, 1e-5  # see the module docstring


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


@functools.cache
def _torch_models():
    """The models under test, written plainly in PyTorch (inside a function, so that this file
    imports without PyTorch)."""
    import torch
    from torch import nn as tnn

    class TorchMLPVAE(tnn.Module):  # minigen's MLPVAE(): 784-400-20
        def __init__(self):
            super().__init__()
            self.fc1, self.fc21, self.fc22 = tnn.Linear(784, 400), tnn.Linear(400, 20), tnn.Linear(400, 20)
            self.fc3, self.fc4 = tnn.Linear(20, 400), tnn.Linear(400, 784)

        def encode(self, x):
            h = torch.relu(self.fc1(x.flatten(1)))
            return self.fc21(h), self.fc22(h)

        def decode(self, z):
            return self.fc4(torch.relu(self.fc3(z))).reshape(-1, 1, 28, 28)

    class TorchConvVAE(tnn.Module):  # minigen's ConvVAE() for 1x28x28
        def __init__(self):
            super().__init__()
            self.encoder = tnn.Sequential(
                tnn.Conv2d(1, 32, 4, 2, 1), tnn.ReLU(), tnn.Conv2d(32, 64, 4, 2, 1), tnn.ReLU(), tnn.Flatten()
            )
            self.fc_mu, self.fc_logvar = tnn.Linear(64 * 7 * 7, 20), tnn.Linear(64 * 7 * 7, 20)
            self.decoder = tnn.Sequential(
                tnn.Linear(20, 64 * 7 * 7), tnn.ReLU(), tnn.Unflatten(1, (64, 7, 7)),
                tnn.ConvTranspose2d(64, 32, 4, 2, 1), tnn.ReLU(), tnn.ConvTranspose2d(32, 1, 4, 2, 1),
            )  # fmt: skip

        def encode(self, x):
            h = self.encoder(x)
            return self.fc_mu(h), self.fc_logvar(h)

        def decode(self, z):
            return self.decoder(z)

    class TorchDCGAN(tnn.Module):  # minigen's DCGAN(): 1x28x28, width 64, 100-d noise
        def __init__(self):
            super().__init__()
            self.generator = tnn.Sequential(
                tnn.Linear(100, 128 * 7 * 7, bias=False), tnn.BatchNorm1d(128 * 7 * 7), tnn.ReLU(),
                tnn.Unflatten(1, (128, 7, 7)),
                tnn.ConvTranspose2d(128, 64, 4, 2, 1, bias=False), tnn.BatchNorm2d(64), tnn.ReLU(),
                tnn.ConvTranspose2d(64, 1, 4, 2, 1), tnn.Sigmoid(),
            )  # fmt: skip
            self.discriminator = tnn.Sequential(
                tnn.Conv2d(1, 64, 4, 2, 1), tnn.LeakyReLU(0.2),
                tnn.Conv2d(64, 128, 4, 2, 1, bias=False), tnn.BatchNorm2d(128), tnn.LeakyReLU(0.2),
                tnn.Flatten(), tnn.Linear(128 * 7 * 7, 1), tnn.Flatten(0),
            )  # fmt: skip

    def batchnorm_net():
        return tnn.Sequential(
            tnn.Conv2d(3, 4, 3, padding=1), tnn.BatchNorm2d(4), tnn.ReLU(),
            tnn.Flatten(), tnn.Linear(4 * 5 * 5, 6), tnn.BatchNorm1d(6),
        )  # fmt: skip

    return SimpleNamespace(
        MLPVAE=TorchMLPVAE, ConvVAE=TorchConvVAE, DCGAN=TorchDCGAN, batchnorm_net=batchnorm_net
    )


def _minigen_batchnorm_net():
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        nn.Flatten(), nn.Linear(4 * 5 * 5, 6), nn.BatchNorm1d(6),
    )  # fmt: skip


# --- comparing a minigen model with its PyTorch twin --------------------------------------------


def max_difference(mine, theirs) -> float:
    """The largest |minigen - torch|, after asserting the tolerance of the module docstring."""
    a = mine.numpy().astype(np.float64)
    b = theirs.detach().numpy().astype(np.float64)
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)
    return float(np.abs(a - b).max())


def _randomise_batchnorm(model) -> None:
    """Non-trivial affine parameters and running statistics in every BatchNorm of a minigen model."""
    rng = np.random.default_rng(1)
    for module in model.modules():
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = module.num_features
            module.weight.data[...] = rng.uniform(0.5, 1.5, n)
            module.bias.data[...] = rng.normal(0, 0.5, n)
            module.running_mean.data[...] = rng.normal(0, 0.5, n)
            module.running_var.data[...] = rng.uniform(0.5, 2.0, n)
            module.num_batches_tracked.data[...] = 7


def _randomise_torch_batchnorm(torch, model) -> None:
    generator = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                n = module.num_features
                module.weight.copy_(0.5 + torch.rand(n, generator=generator))
                module.bias.copy_(0.5 * torch.randn(n, generator=generator))
                module.running_mean.copy_(0.5 * torch.randn(n, generator=generator))
                module.running_var.copy_(0.5 + 1.5 * torch.rand(n, generator=generator))
                module.num_batches_tracked.fill_(7)


def _inputs(shape, seed=0):
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def vae_differences(torch, mine, theirs) -> dict:
    """Encoder (mu, logvar) on a batch of images and decoder logits at given latents."""
    x, z = _inputs((4, 1, 28, 28)), np.random.default_rng(3).standard_normal((4, 20), dtype=np.float32)
    mine.eval(), theirs.eval()
    with minigen.no_grad(), torch.no_grad():
        (mu, logvar), (t_mu, t_logvar) = mine.encode(minigen.tensor(x)), theirs.encode(torch.from_numpy(x))
        return {
            "mu": max_difference(mu, t_mu),
            "logvar": max_difference(logvar, t_logvar),
            "decode": max_difference(mine.decode(minigen.tensor(z)), theirs.decode(torch.from_numpy(z))),
        }


def dcgan_differences(torch, mine, theirs) -> dict:
    """Generator images at given noise and discriminator logits on given images, in eval mode."""
    x, z = _inputs((4, 1, 28, 28)), np.random.default_rng(3).standard_normal((4, 100), dtype=np.float32)
    mine.eval(), theirs.eval()
    with minigen.no_grad(), torch.no_grad():
        fake, t_fake = mine.generator(minigen.tensor(z)), theirs.generator(torch.from_numpy(z))
        logits = mine.discriminator(minigen.tensor(x))
        return {
            "generator": max_difference(fake, t_fake),
            "discriminator": max_difference(logits, theirs.discriminator(torch.from_numpy(x))),
        }


def batchnorm_differences(torch, mine, theirs) -> dict:
    """Eval mode (running statistics), then one train-mode batch: its outputs and the running
    statistics it leaves behind."""
    x = torch.from_numpy(_inputs((8, 3, 5, 5)))
    found = {}
    with minigen.no_grad(), torch.no_grad():
        mine.eval(), theirs.eval()
        found["eval"] = max_difference(mine(minigen.tensor(x.numpy())), theirs(x))
        mine.train(), theirs.train()
        found["train"] = max_difference(mine(minigen.tensor(x.numpy())), theirs(x))
    state, t_state = mine.state_dict(), theirs.state_dict()
    assert list(state) == list(t_state)
    for key in state:
        if key.endswith("num_batches_tracked"):
            assert int(state[key].item()) == int(t_state[key]) == 8
        else:
            found[f"after train: {key}"] = max_difference(state[key], t_state[key])
    return found


# name: (minigen model, name of the torch twin, comparison)
MODELS = {
    "mlp-vae": (MLPVAE, "MLPVAE", vae_differences),
    "conv-vae": (ConvVAE, "ConvVAE", vae_differences),
    "dcgan": (DCGAN, "DCGAN", dcgan_differences),
    "batchnorm": (_minigen_batchnorm_net, "batchnorm_net", batchnorm_differences),
}


def _pair(name):
    make, twin, compare = MODELS[name]
    return make(), getattr(_torch_models(), twin)(), compare


@pytest.mark.parametrize("name", sorted(MODELS))
def test_minigen_weights_give_the_same_outputs_in_torch(torch, name):
    mine, theirs, compare = _pair(name)
    _randomise_batchnorm(mine)
    theirs.load_state_dict(export.to_torch(mine))  # strict: every key, every shape
    compare(torch, mine, theirs)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_torch_weights_give_the_same_outputs_in_minigen(torch, name):
    mine, theirs, compare = _pair(name)
    torch.manual_seed(0)
    for module in theirs.modules():  # PyTorch's own random initialisation, drawn afresh
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    _randomise_torch_batchnorm(torch, theirs)
    mine.load_state_dict(export.from_torch(theirs.state_dict()))
    compare(torch, mine, theirs)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_round_trip_through_torch_is_bit_identical(torch, name):
    mine = MODELS[name][0]()
    _randomise_batchnorm(mine)
    state = mine.state_dict()
    back = export.from_torch(export.to_torch(mine))
    assert list(back) == list(state)
    for key, value in state.items():
        original = value.numpy()
        assert (back[key].dtype, back[key].shape) == (original.dtype, original.shape), key
        assert back[key].tobytes() == original.tobytes(), key


# --- to_torch and from_torch: what they return ---------------------------------------------------


def test_to_torch_gives_cpu_copies_in_torch_layouts_and_dtypes(torch):
    model = _minigen_batchnorm_net()
    _randomise_batchnorm(model)
    state = export.to_torch(model)
    assert type(state) is OrderedDict and list(state) == list(model.state_dict())
    for key, value in state.items():
        mine = model.state_dict()[key].numpy()
        assert isinstance(value, torch.Tensor) and value.device.type == "cpu" and value.is_contiguous()
        assert tuple(value.shape) == mine.shape and not value.requires_grad
        np.testing.assert_array_equal(value.numpy(), mine)
    assert state["1.num_batches_tracked"].dtype == torch.int64 and state["1.num_batches_tracked"].shape == ()
    assert state["1.num_batches_tracked"].item() == 7
    assert {state[k].dtype for k in state if not k.endswith("num_batches_tracked")} == {torch.float32}
    before = model[0].weight.detach().numpy().copy()
    for value in state.values():
        value.add_(1)  # the copies are PyTorch's alone
    np.testing.assert_array_equal(model[0].weight.detach().numpy(), before)
    assert model[1].num_batches_tracked.item() == 7


def test_to_torch_takes_state_dicts_of_arrays_and_keeps_float64(torch):
    weight = np.arange(12, dtype=np.float64).reshape(3, 4).T  # not C-contiguous
    state = export.to_torch({"w": weight, "t": minigen.tensor([1.0, 2.0], requires_grad=True)})
    assert state["w"].is_contiguous() and state["w"].dtype == torch.float64
    np.testing.assert_array_equal(state["w"].numpy(), weight)
    assert state["t"].tolist() == [1.0, 2.0] and not state["t"].requires_grad
    with pytest.raises(TypeError, match="'bad' is a list"):
        export.to_torch({"bad": [1.0]})


def test_from_torch_takes_parameters_non_contiguous_and_modules(torch):
    linear = torch.nn.Linear(4, 3)
    transposed = torch.randn(4, 3).T  # a (3, 4) view with swapped strides
    assert not transposed.is_contiguous() and linear.weight.requires_grad
    state = export.from_torch({"weight": transposed, "bias": linear.bias})
    assert state["weight"].flags.c_contiguous and state["weight"].dtype == np.float32
    np.testing.assert_array_equal(state["weight"], transposed.numpy())
    with torch.no_grad():
        linear.bias.add_(1)  # the minigen arrays share no memory with PyTorch
    np.testing.assert_array_equal(state["bias"] + 1, linear.bias.detach().numpy())
    mine = nn.Linear(4, 3)
    mine.load_state_dict(export.from_torch(linear))
    np.testing.assert_array_equal(mine.weight.detach().numpy(), linear.weight.detach().numpy())


def test_from_torch_refuses_dtypes_numpy_lacks(torch):
    with pytest.raises(TypeError, match=r"'w' has dtype torch.bfloat16.*\.float\(\)"):
        export.from_torch({"w": torch.zeros(2, dtype=torch.bfloat16)})


def test_cuda_arrays_are_copied_to_the_host_and_back(torch, monkeypatch):
    gpu.install(monkeypatch)
    model = _minigen_batchnorm_net()
    _randomise_batchnorm(model)
    expected = {key: value.numpy() for key, value in model.state_dict().items()}
    model.to("cuda")
    state = export.to_torch(model)
    for key, value in state.items():
        assert value.device.type == "cpu"
        np.testing.assert_array_equal(value.numpy(), expected[key])
    back = export.from_torch(state, device="cuda")
    assert {minigen.backend.device_of(a) for a in back.values()} == {"cuda"}
    twin = _minigen_batchnorm_net().to("cuda")
    twin.load_state_dict(back)
    for key, value in twin.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), expected[key])


def test_importing_minigen_does_not_import_torch():
    code = "import sys, minigen; minigen.export.to_torch; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.split() == ["False"], result.stderr


def test_without_torch_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail
    with pytest.raises(ImportError, match="pip install torch"):
        export.to_torch(nn.Linear(2, 2))
    with pytest.raises(ImportError, match="pip install torch"):
        export.from_torch({})


# --- safetensors: our files and the reference implementation's ----------------------------------

DTYPES = ["float64", "float32", "float16", "int64", "int32", "int16", "int8", "uint8", "uint16", "bool"]
arrays = hnp.arrays(
    dtype=st.sampled_from(DTYPES), shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)
)


def assert_bit_identical(found: dict, expected: dict) -> None:
    assert list(found) == list(expected)
    for key, value in expected.items():
        assert (found[key].dtype, found[key].shape) == (value.dtype, value.shape), key
        assert np.ascontiguousarray(found[key]).tobytes() == np.ascontiguousarray(value).tobytes(), key


@given(st.dictionaries(st.text(min_size=1, max_size=8).filter(lambda k: k != "__metadata__"), arrays))
def test_safetensors_round_trip_is_bit_identical(tmp_path_factory, state):
    path = tmp_path_factory.mktemp("st") / "state.safetensors"
    export.save_safetensors(state, path)
    assert_bit_identical(export.load_safetensors(path), state)


@given(st.dictionaries(st.text(min_size=1, max_size=8).filter(lambda k: k != "__metadata__"), arrays))
def test_safetensors_files_agree_with_the_reference_implementation(tmp_path_factory, state):
    reference = pytest.importorskip("safetensors.numpy")
    directory = tmp_path_factory.mktemp("st")
    export.save_safetensors(state, directory / "ours.safetensors")
    theirs = reference.load_file(directory / "ours.safetensors")
    assert_bit_identical({key: theirs[key] for key in state}, state)
    reference.save_file(state, directory / "theirs.safetensors")
    ours = export.load_safetensors(directory / "theirs.safetensors")
    assert_bit_identical({key: ours[key] for key in state}, state)


def test_safetensors_layout_aligns_every_tensor_and_keeps_key_order(tmp_path):
    state = {"byte": np.ones(3, np.uint8), "double": np.ones(2), "half": np.ones(3, np.float16)}
    export.save_safetensors(state, tmp_path / "s.safetensors")
    raw = (tmp_path / "s.safetensors").read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + length])
    assert length % 8 == 0 and list(header) == ["byte", "double", "half"]
    assert [header[k]["data_offsets"] for k in header] == [[22, 25], [0, 16], [16, 22]]
    assert len(raw) == 8 + length + 25


def test_safetensors_with_torch_and_metadata(torch, tmp_path):
    st_torch = pytest.importorskip("safetensors.torch")
    model = _minigen_batchnorm_net()
    _randomise_batchnorm(model)
    export.save_safetensors(model, tmp_path / "ours.safetensors", metadata={"epochs": "3", "note": "é"})
    theirs = st_torch.load_file(tmp_path / "ours.safetensors")
    expected = export.to_torch(model)
    assert sorted(theirs) == sorted(expected)
    for key, value in expected.items():
        assert theirs[key].dtype == value.dtype and torch.equal(theirs[key], value), key
    with pytest.importorskip("safetensors").safe_open(tmp_path / "ours.safetensors", "pt") as file:
        assert file.metadata() == {"epochs": "3", "note": "é"}
    twin = _torch_models().batchnorm_net()
    _randomise_torch_batchnorm(torch, twin)
    st_torch.save_file(twin.state_dict(), tmp_path / "theirs.safetensors", metadata={"format": "pt"})
    model.load_state_dict(export.load_safetensors(tmp_path / "theirs.safetensors"))
    for key, value in model.state_dict().items():
        assert value.numpy().tobytes() == twin.state_dict()[key].numpy().tobytes(), key


def test_load_safetensors_onto_cuda(monkeypatch, tmp_path):
    gpu.install(monkeypatch)
    export.save_safetensors({"w": np.arange(6.0).reshape(2, 3)}, tmp_path / "w.safetensors")
    state = export.load_safetensors(tmp_path / "w.safetensors", device="cuda")
    assert minigen.backend.device_of(state["w"]) == "cuda"
    np.testing.assert_array_equal(minigen.tensor(state["w"]).numpy(), np.arange(6.0).reshape(2, 3))


def test_save_safetensors_refuses_bad_input_and_leaves_the_old_file(tmp_path):
    path = tmp_path / "w.safetensors"
    export.save_safetensors({"w": np.ones(2)}, path)
    before = path.read_bytes()
    bad = [
        ({"w": np.ones(2, dtype=np.complex64)}, {}, TypeError, "complex64"),
        ({"w": "text"}, {}, TypeError, "'w' is a str"),
        ({"__metadata__": np.ones(2)}, {}, ValueError, "reserved"),
        ({"w": np.ones(2)}, {"metadata": {"epochs": 3}}, TypeError, "str -> str"),
    ]
    for state, kwargs, error, message in bad:
        with pytest.raises(error, match=message):
            export.save_safetensors(state, path, **kwargs)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["w.safetensors"]


# --- bad files -----------------------------------------------------------------------------------


def _file(header, data: bytes = b"", length=None) -> bytes:
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(text) if length is None else length) + text + data


def _f32(shape, begin, end, dtype="F32"):
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


VALID = _file({"a": _f32([2], 0, 8), "b": _f32([2], 8, 16)}, bytes(16))

BAD_FILES = {
    "empty": (b"", "truncated: 0 bytes"),
    "cut in the length": (VALID[:5], "truncated: 5 bytes"),
    "cut in the data": (VALID[:-4], "truncated: the tensors need 16 bytes of data, but 12"),
    "header length too big": (_file({"a": _f32([2], 0, 8)}, bytes(8), length=2**60), "header length is"),
    "header length past the end": (VALID[:8] + VALID[8:20], "header length is"),
    "header not an object": (_file(b"[1, 2]"), "must begin with '{'"),
    "header not json": (_file(b"{not json}"), "not valid JSON"),
    "header not utf-8": (_file(b'{"\xff": 1}'), "not valid JSON"),
    "duplicate names": (_file(b'{"a": 1, "a": 2}'), "duplicate keys"),
    "metadata not str": (_file({"__metadata__": {"n": 1}}), "must map str to str"),
    "missing field": (_file({"a": {"dtype": "F32", "shape": [2]}}, bytes(8)), "exactly the fields"),
    "unknown dtype": (_file({"a": _f32([2], 0, 2, "F8_E4M3")}, bytes(2)), "dtype 'F8_E4M3'"),
    "bfloat16": (_file({"a": _f32([2], 0, 4, "BF16")}, bytes(4)), "dtype 'BF16'"),
    "float shape": (_file({"a": _f32([2.0], 0, 8)}, bytes(8)), "not a list of non-negative ints"),
    "negative shape": (_file({"a": _f32([-2], 0, 8)}, bytes(8)), "not a list of non-negative ints"),
    "bad offsets": (_file({"a": _f32([2], 8, 0)}, bytes(8)), "span -8"),
    "shape and bytes differ": (_file({"a": _f32([3], 0, 8)}, bytes(8)), "needs 12 bytes"),
    "overlapping offsets": (_file({"a": _f32([4], 0, 16), "b": _f32([4], 8, 24)}, bytes(24)), "overlaps"),
    "gap between tensors": (_file({"a": _f32([2], 0, 8), "b": _f32([2], 12, 20)}, bytes(20)), "gap"),
    "trailing bytes": (VALID + bytes(4), "4 bytes after the last tensor"),
    "bool not 0 or 1": (_file({"a": _f32([2], 0, 2, "BOOL")}, b"\x01\x02"), "other than 0 and 1"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_safetensors_files_raise_checkpoint_error(tmp_path, name):
    content, message = BAD_FILES[name]
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=re.escape(str(path)) + ".*" + re.escape(message)):
        export.load_safetensors(path)


def test_the_valid_file_of_the_bad_file_table_loads(tmp_path):
    (tmp_path / "ok.safetensors").write_bytes(VALID)
    state = export.load_safetensors(tmp_path / "ok.safetensors")
    assert list(state) == ["a", "b"] and all(v.tolist() == [0.0, 0.0] for v in state.values())


def test_huge_claims_allocate_nothing_outsized(tmp_path):
    path = tmp_path / "huge.safetensors"
    elements = 10**12  # 4 TB of float32, claimed by a 100-byte file
    path.write_bytes(_file({"a": _f32([elements], 0, 4 * elements)}, bytes(8)))
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match="truncated"):
            export.load_safetensors(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_load_safetensors_of_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no safetensors file"):
        export.load_safetensors(tmp_path / "missing.safetensors")
