"""Devices and random numbers: default device, clear errors for missing CuPy and for mixed
devices, and seeding.

Tests that need a CuPy-less machine set ``backend._cupy = None`` so they also hold where CuPy
is installed; the mixed-device test uses a small fake CuPy whose arrays report 'cuda'.
"""

import types

import numpy as np
import pytest

import minigen
from minigen import backend


@pytest.fixture
def fresh_default_device(monkeypatch):
    """Forget the cached default device (restored after the test) and clear MINIGEN_DEVICE."""
    monkeypatch.setattr(backend, "_default_device", None)
    monkeypatch.delenv("MINIGEN_DEVICE", raising=False)
    return monkeypatch


@pytest.fixture
def no_cupy(monkeypatch):
    monkeypatch.setattr(backend, "_cupy", None)
    return monkeypatch


def _assert_install_hint(message: str):
    assert "cupy-cuda12x" in message and "cupy-cuda13x" in message, message


# --- default device -------------------------------------------------------------------------


def test_default_device_is_cpu(fresh_default_device):
    assert backend.default_device() == "cpu"
    x = minigen.zeros(2)
    assert x.device == "cpu"
    assert isinstance(x.data, np.ndarray)
    assert minigen.randn(3).device == "cpu"
    assert minigen.tensor([1.0]).device == "cpu"


def test_minigen_device_environment_variable_cpu(fresh_default_device):
    fresh_default_device.setenv("MINIGEN_DEVICE", "cpu")
    assert backend.default_device() == "cpu"
    assert minigen.ones(2, 2).device == "cpu"


def test_minigen_device_environment_variable_unknown_raises(fresh_default_device):
    fresh_default_device.setenv("MINIGEN_DEVICE", "tpu")
    with pytest.raises(backend.DeviceError) as info:
        backend.default_device()
    message = str(info.value)
    assert "tpu" in message and "cpu" in message and "cuda" in message


def test_minigen_device_environment_variable_cuda_without_cupy(fresh_default_device, no_cupy):
    fresh_default_device.setenv("MINIGEN_DEVICE", "cuda")
    with pytest.raises(backend.DeviceError) as info:
        minigen.zeros(2)
    _assert_install_hint(str(info.value))


@pytest.mark.parametrize("name", ["tpu", "gpu", "cuda:1", "", "mps"])
def test_unknown_device_name_lists_the_known_ones(name):
    with pytest.raises(backend.DeviceError) as info:
        minigen.zeros(2, device=name)
    message = str(info.value)
    assert repr(name) in message
    assert "cpu" in message and "cuda" in message


_NAMES = [("cpu", "cpu"), ("CPU", "cpu"), ("cuda", "cuda"), ("cuda:0", "cuda")]


@pytest.mark.parametrize(("name", "expected"), _NAMES)
def test_device_names_are_normalized(name, expected):
    assert backend.normalize_device(name) == expected


def test_device_error_is_a_runtime_error():
    assert issubclass(backend.DeviceError, RuntimeError)


# --- cuda without CuPy ----------------------------------------------------------------------


def test_cuda_not_available_without_cupy(no_cupy):
    assert backend.cuda_available() is False
    assert minigen.cuda_available() is False


@pytest.mark.parametrize(
    "make",
    [
        lambda: minigen.zeros(2, device="cuda"),
        lambda: minigen.randn(2, device="cuda"),
        lambda: minigen.tensor([1.0], device="cuda"),
        lambda: minigen.tensor([1.0]).to("cuda"),
        lambda: minigen.tensor([1.0], requires_grad=True).cuda(),
        lambda: minigen.set_default_device("cuda"),
        lambda: backend.array_module("cuda"),
    ],
    ids=["zeros", "randn", "tensor", "to", "cuda()", "set_default_device", "array_module"],
)
def test_asking_for_cuda_without_cupy_says_how_to_install_it(no_cupy, fresh_default_device, make):
    with pytest.raises(backend.DeviceError) as info:
        make()
    _assert_install_hint(str(info.value))
    assert "CuPy" in str(info.value)


def test_failed_set_default_device_keeps_the_previous_device(no_cupy, fresh_default_device):
    with pytest.raises(backend.DeviceError):
        minigen.set_default_device("cuda")
    assert backend.default_device() == "cpu"
    assert minigen.zeros(1).device == "cpu"


def test_set_default_device_cpu_creates_tensors_on_cpu(fresh_default_device):
    minigen.set_default_device("cpu")
    assert backend.default_device() == "cpu"
    assert minigen.ones(1).device == "cpu"


def test_to_cpu_is_identity_on_cpu():
    x = minigen.tensor([1.0, 2.0], requires_grad=True)
    assert x.to("cpu") is x
    assert x.cpu() is x


# --- mixed devices, with a fake CuPy --------------------------------------------------------


class FakeDeviceArray(np.ndarray):
    """A NumPy array that the fake CuPy below claims as its own, so it reports device 'cuda'."""


def _fake_cupy(device_count: int = 1):
    return types.SimpleNamespace(
        ndarray=FakeDeviceArray,
        asarray=lambda a, dtype=None: np.array(a, dtype=dtype).view(FakeDeviceArray),
        asnumpy=lambda a: np.array(a).view(np.ndarray),
        cuda=types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=lambda: device_count)),
    )


@pytest.fixture
def fake_cupy(monkeypatch):
    fake = _fake_cupy()
    monkeypatch.setattr(backend, "_cupy", fake)
    return fake


def _on_fake_cuda(values, requires_grad=False):
    t = minigen.Tensor(np.asarray(values, dtype=np.float64).view(FakeDeviceArray))
    return t.requires_grad_() if requires_grad else t


def test_fake_cuda_array_reports_cuda(fake_cupy):
    t = _on_fake_cuda([1.0, 2.0])
    assert t.device == "cuda"
    assert backend.xp_of(t.data) is fake_cupy
    assert minigen.tensor([1.0]).device == "cpu"


@pytest.mark.parametrize(
    "op",
    [
        lambda a, b: a + b,
        lambda a, b: a * b,
        lambda a, b: a - b,
        lambda a, b: a / b,
        lambda a, b: minigen.maximum(a, b),
        lambda a, b: minigen.matmul(a, b),
        lambda a, b: minigen.cat([a, b]),
    ],
    ids=["add", "mul", "sub", "div", "maximum", "matmul", "cat"],
)
@pytest.mark.parametrize("cuda_first", [False, True])
def test_mixing_devices_in_one_op_names_both(fake_cupy, op, cuda_first):
    cpu = minigen.tensor(np.array([1.0, 2.0]), requires_grad=True)
    cuda = _on_fake_cuda([3.0, 4.0])
    a, b = (cuda, cpu) if cuda_first else (cpu, cuda)
    with pytest.raises(backend.DeviceError) as info:
        op(a, b)
    message = str(info.value)
    assert "cpu" in message and "cuda" in message


def test_where_with_a_condition_on_another_device_names_both(fake_cupy):
    values = _on_fake_cuda([1.0, 2.0], requires_grad=True)
    with pytest.raises(
        backend.DeviceError, match="where: the condition is on cpu but the values are on cuda"
    ):
        minigen.where(minigen.tensor([True, False]), values, values)


def test_to_cuda_with_cupy_but_no_gpu_says_so(monkeypatch):
    monkeypatch.setattr(backend, "_cupy", _fake_cupy(device_count=0))
    assert backend.cuda_available() is False
    with pytest.raises(backend.DeviceError) as info:
        minigen.tensor([1.0]).to("cuda")
    assert "no GPU" in str(info.value)
    _assert_install_hint(str(info.value))


def test_to_fake_cuda_and_gradient_comes_back_to_cpu(fake_cupy):
    x = minigen.tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    y = x.to("cuda")
    assert y.device == "cuda" and x.device == "cpu"
    np.testing.assert_array_equal(backend.to_host(y.data), x.data)
    (g,) = minigen.grad(y, x, grad_outputs=_on_fake_cuda([1.0, 2.0, 3.0]))
    assert g.device == "cpu"
    np.testing.assert_array_equal(g.numpy(), [1.0, 2.0, 3.0])


# --- random numbers ------------------------------------------------------------------------


def _draws():
    return (
        minigen.randn(4, 3).numpy(),
        minigen.rand(5).numpy(),
        minigen.randn(2, dtype="float64").numpy(),
        minigen.randn_like(minigen.zeros(3)).numpy(),
    )


def test_manual_seed_repeats_the_same_sequence():
    minigen.manual_seed(1234)
    first = _draws()
    minigen.manual_seed(1234)
    second = _draws()
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


def test_different_seeds_give_different_draws():
    minigen.manual_seed(1)
    first = _draws()
    minigen.manual_seed(2)
    second = _draws()
    for a, b in zip(first, second, strict=True):
        assert not np.array_equal(a, b)


def test_successive_draws_differ():
    minigen.manual_seed(7)
    a, b = minigen.randn(5).numpy(), minigen.randn(5).numpy()
    assert not np.array_equal(a, b)


def test_random_draws_have_requested_dtype_and_range():
    minigen.manual_seed(0)
    u = minigen.rand(1000)
    assert u.dtype == minigen.float32
    assert u.numpy().min() >= 0.0 and u.numpy().max() < 1.0
    n = minigen.randn(1000, dtype="float64")
    assert n.dtype == minigen.float64
    assert abs(n.numpy().mean()) < 0.2 and 0.8 < n.numpy().std() < 1.2


# --- every device --------------------------------------------------------------------------


@pytest.mark.cuda
def test_forward_and_backward_on_each_device(device):
    x = minigen.tensor(np.array([[0.5, -1.0], [2.0, 0.25]]), device=device, requires_grad=True)
    w = minigen.tensor(np.array([1.5, -0.5]), device=device, requires_grad=True)
    loss = ((x @ w).tanh() * 2.0).sum()
    loss.backward()
    assert loss.device == device and x.grad.device == device and w.grad.device == device
    xs, ws = backend.to_host(x.data), backend.to_host(w.data)
    u = 1 - np.tanh(xs @ ws) ** 2
    np.testing.assert_allclose(x.grad.cpu().numpy(), 2 * u[:, None] * ws[None, :], rtol=1e-12)
    np.testing.assert_allclose(w.grad.cpu().numpy(), 2 * xs.T @ u, rtol=1e-12)


def test_parallel_copies_give_the_serial_result(monkeypatch):
    """im2col and col2im split their copies by channel over threads; the result must not change."""
    rng = np.random.default_rng(0)
    x = minigen.tensor(rng.standard_normal((32, 16, 20, 20), dtype=np.float32), requires_grad=True)
    w = minigen.tensor(rng.standard_normal((8, 16, 4, 4), dtype=np.float32), requires_grad=True)
    results = []
    for threads in (1, 3):
        monkeypatch.setattr(backend, "_num_threads", threads)
        x.grad = w.grad = None
        y = minigen.functional.conv2d(x, w, stride=2, padding=1)
        y.backward(minigen.ones(*y.shape))  # col2im runs in the input gradient
        results.append((y.detach().numpy(), x.grad.numpy(), w.grad.numpy()))
    for serial, parallel in zip(*results):
        np.testing.assert_array_equal(serial, parallel)


def test_set_num_threads_sets_blas_and_minigen(monkeypatch):
    from threadpoolctl import threadpool_info, threadpool_limits

    monkeypatch.setattr(backend, "_num_threads", None)
    with threadpool_limits(limits=None):  # whatever set_num_threads does to BLAS is undone after
        minigen.set_num_threads(1)
        assert minigen.get_num_threads() == 1
        assert all(pool["num_threads"] == 1 for pool in threadpool_info() if pool["user_api"] == "blas")
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="positive int"):
            minigen.set_num_threads(bad)


def test_thread_count_defaults_to_omp_num_threads(monkeypatch):
    monkeypatch.setattr(backend, "_num_threads", None)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert minigen.get_num_threads() == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "")
    assert minigen.get_num_threads() >= 1
