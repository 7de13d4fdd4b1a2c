"""minigen's own threads: elementwise kernels, batch norm and Adam split large arrays into one
chunk per thread. Each entry is computed as one call would compute it, so every result here
must equal the one-thread result exactly, for every layout and broadcast the models produce."""

import numpy as np
import pytest

import minigen
import minigen.functional as F
from minigen import backend
from minigen.optim import Adam, AdamW

BIG = backend.PARALLEL_MIN_SIZE  # entries at which the work is split


def rng():
    return np.random.default_rng(0)


def batch_last_view(shape):
    """An (N, C, H, W) array whose memory is (C, H, W, N), as the convolutions return them."""
    n, c, h, w = shape
    return rng().standard_normal((c, h, w, n), dtype=np.float32).transpose(3, 0, 1, 2)


def at_threads(monkeypatch, threads, fn):
    monkeypatch.setattr(backend, "_num_threads", threads)
    return fn()


def test_elementwise_cuts_the_outermost_axis_in_memory_into_one_chunk_per_thread(monkeypatch):
    x = batch_last_view((64, 16, 16, 32))  # 524,288 entries, C outermost in memory
    bias = rng().standard_normal((1, 16, 1, 1), dtype=np.float32)
    calls = []

    def kernel(a, b, out=None):
        calls.append((a.shape, b.shape, None if out is None else out.shape))
        return np.add(a, b, out=out)

    serial = at_threads(monkeypatch, 1, lambda: backend.elementwise(kernel, x, bias))
    assert calls == [(x.shape, bias.shape, None)]
    calls.clear()
    parallel = at_threads(monkeypatch, 3, lambda: backend.elementwise(kernel, x, bias))
    # the channel axis, split 5 + 5 + 6, with the bias cut alongside it
    assert sorted(calls) == sorted([((64, k, 16, 32), (1, k, 1, 1), (64, k, 16, 32)) for k in (5, 5, 6)])
    np.testing.assert_array_equal(parallel, serial)
    assert parallel.strides == serial.strides  # the result keeps the operand's layout


@pytest.mark.parametrize(
    "shapes",
    [
        ((BIG,), ()),  # a 0-d constant
        ((512, 1024), (1024,)),  # a row broadcast along the axis that is cut
        ((512, 1024), (512, 1)),
        ((1, 1024), (512, 1)),  # neither operand has the result's shape
    ],
)
def test_elementwise_broadcasts_as_one_call(monkeypatch, shapes):
    a, b = (rng().standard_normal(s, dtype=np.float32) for s in shapes)
    serial = at_threads(monkeypatch, 1, lambda: backend.elementwise(np.multiply, a, b))
    parallel = at_threads(monkeypatch, 2, lambda: backend.elementwise(np.multiply, a, b))
    np.testing.assert_array_equal(parallel, serial)
    np.testing.assert_array_equal(parallel, a * b)


def test_small_arrays_take_one_call(monkeypatch):
    calls = []

    def kernel(a, out=None):
        calls.append(out)
        return np.negative(a, out=out)

    at_threads(monkeypatch, 4, lambda: backend.elementwise(kernel, np.ones(BIG - 1, np.float32)))
    assert calls == [None]


UNARY = {
    "neg": lambda x: -x,
    "exp": lambda x: minigen.exp(x * 0.1),
    "log": lambda x: minigen.log(x * x + 1.0),
    "sqrt": lambda x: minigen.sqrt(x * x + 1.0),
    "relu": F.relu,
    "leaky_relu": lambda x: F.leaky_relu(x, 0.2),
    "leaky_relu slope 3": lambda x: F.leaky_relu(x, 3.0),
    "sigmoid": F.sigmoid,
    "tanh": minigen.tanh,
    "softplus": F.softplus,
    "bce_with_logits": lambda x: F.binary_cross_entropy_with_logits(
        x, (x > 0.5).float() * 0.75, reduction="none"
    ),
    "div": lambda x: x / (x * x + 1.0),
    "batch_norm": lambda x: F.batch_norm(x, None, None, training=True),
}


@pytest.mark.parametrize("shape", [(64, 16, 16, 32), (128, 784)], ids=["batch-last images", "MLP batch"])
@pytest.mark.parametrize("name", UNARY)
def test_primitives_give_the_one_thread_values_and_gradients(monkeypatch, name, shape):
    """The images are split by every kernel; the MLP batch (100,352 entries) only by the costly
    ones (exp, log, tanh, sigmoid, softplus, the loss), from ``COSTLY_MIN_SIZE``."""
    data = batch_last_view(shape) if len(shape) == 4 else rng().standard_normal(shape, dtype=np.float32)
    g = rng().standard_normal(data.shape, dtype=np.float32)

    def run():
        x = minigen.tensor(data, requires_grad=True)
        y = UNARY[name](x)
        y.backward(minigen.tensor(g))
        return y.detach().numpy(), x.grad.numpy()

    serial = at_threads(monkeypatch, 1, run)
    parallel = at_threads(monkeypatch, 3, run)
    for one, many in zip(serial, parallel):
        np.testing.assert_array_equal(many, one)


@pytest.mark.parametrize(
    "make",
    [
        lambda p: Adam(p, lr=1e-2),
        lambda p: Adam(p, lr=1e-2, weight_decay=0.1, amsgrad=True),
        lambda p: AdamW(p, lr=1e-2, maximize=True),
    ],
)
def test_adam_gives_the_one_thread_update(monkeypatch, make):
    start = rng().standard_normal((700, 400), dtype=np.float32)  # 280,000 entries
    grads = rng().standard_normal((3, 700, 400), dtype=np.float32)

    def run():
        p = minigen.tensor(start.copy(), requires_grad=True)
        optimizer = make([p])
        for g in grads:
            p.grad = minigen.tensor(g)
            optimizer.step()
        return p.detach().numpy(), *(v.numpy() for k, v in optimizer.state[p].items() if k != "step")

    serial = at_threads(monkeypatch, 1, run)
    parallel = at_threads(monkeypatch, 2, run)
    assert not np.array_equal(serial[0], start)
    for one, many in zip(serial, parallel):
        np.testing.assert_array_equal(many, one)
