"""Saved tensors against in-place change: every in-place write bumps a tensor's version, and
backward through a node that saved a tensor at an older version raises instead of computing
gradients from the new values (chapter 03, "Saved values and in-place changes").

The scenario that used to be silently wrong: a retained graph of (w * w).sum(), an optimiser
step, then a second backward, which would have read the stepped w.
"""

import re

import numpy as np
import pytest

import minigen
from minigen import nn
from minigen.autograd import clear_grad
from minigen.generative import gan
from minigen.optim import SGD, Adam, AdamW

MODIFIED = "modified in place"


def leaf(values, dtype=np.float32):
    return minigen.tensor(np.asarray(values, dtype=dtype), requires_grad=True)


def square_loss(w):
    """(w * w).sum(), whose gradient 2w needs w as forward saw it."""
    return (w * w).sum()


OPTIMIZERS = {
    "SGD": lambda ps: SGD(ps, lr=0.5),
    "SGD momentum": lambda ps: SGD(ps, lr=0.5, momentum=0.9, nesterov=True, weight_decay=0.1),
    "Adam": lambda ps: Adam(ps, lr=0.1),
    "AdamW": lambda ps: AdamW(ps, lr=0.1),
}


# --- the scenario ------------------------------------------------------------------------


def test_step_between_backwards_of_a_retained_graph_raises_naming_function_tensor_and_versions():
    w = leaf([1.0, 2.0])
    loss = square_loss(w)
    loss.backward(retain_graph=True)
    SGD([w], lr=0.5).step()
    with pytest.raises(RuntimeError, match=MODIFIED) as info:
        loss.backward()
    message = str(info.value)
    assert message.startswith("Mul's backward")
    parts = ("input 0", "shape (2,)", "float32", "saved at version 0", "now at version 1", "optimizer.step()")
    for part in parts:
        assert part in message, part
    # the failed backward wrote nothing: .grad is the first backward's 2 w0
    np.testing.assert_array_equal(w.grad.numpy(), [2.0, 4.0])
    np.testing.assert_array_equal(w.detach().numpy(), [0.0, 0.0])


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_step_bumps_the_version_once_and_guards_the_graph(name):
    w, unused = leaf([1.0, 2.0]), leaf([3.0])
    optimizer = OPTIMIZERS[name]([w, unused])
    loss = square_loss(w)
    loss.backward(retain_graph=True)
    optimizer.step()
    assert (w._version, unused._version) == (1, 0)  # no .grad, no update, no write
    with pytest.raises(RuntimeError, match=re.escape("saved at version 0 and is now at version 1")):
        loss.backward()
    (w * 1.0).sum().backward()
    optimizer.step()
    assert w._version == 2


def test_assigning_data_between_forward_and_backward_raises():
    w = leaf([1.0, 2.0])
    loss = square_loss(w)
    w.data = np.array([5.0, 6.0], dtype=np.float32)
    assert w._version == 1
    with pytest.raises(RuntimeError, match=MODIFIED):
        loss.backward()
    assert w.grad is None


def test_bump_version_marks_a_write_made_through_the_raw_array():
    w = leaf([-3.0, 0.5, 3.0])
    loss = square_loss(w)
    np.clip(w.data, -1.0, 1.0, out=w.data)  # as WGAN's weight clipping does
    w._bump_version()
    assert w._version == 1
    with pytest.raises(RuntimeError, match="now at version 1"):
        loss.backward()


FILLS = {
    "uniform_": lambda t: nn.init.uniform_(t, -1.0, 1.0),
    "normal_": nn.init.normal_,
    "constant_": lambda t: nn.init.constant_(t, 0.3),
    "zeros_": nn.init.zeros_,
    "ones_": nn.init.ones_,
    "xavier_uniform_": nn.init.xavier_uniform_,
    "xavier_normal_": nn.init.xavier_normal_,
    "kaiming_uniform_": nn.init.kaiming_uniform_,
    "kaiming_normal_": nn.init.kaiming_normal_,
}


@pytest.mark.parametrize("name", FILLS)
def test_an_init_fill_bumps_the_version_and_guards_the_graph(name):
    w = leaf(np.ones((3, 2)))
    array = w.data
    loss = square_loss(w)
    FILLS[name](w)
    assert w._version == 1
    assert w.data is array  # filled in place, not replaced
    with pytest.raises(RuntimeError, match="Mul's backward"):
        loss.backward()


def test_load_state_dict_bumps_every_entry_and_guards_the_graph():
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    saved = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2)).state_dict()
    slots = model._state_slots()
    loss = model(minigen.randn(4, 3)).sum()  # in training mode this writes BatchNorm's buffers
    before = {key: t._version for key, t in slots.items()}
    model.load_state_dict(saved)
    after = {key: t._version for key, t in slots.items()}
    assert after == {key: v + 1 for key, v in before.items()}
    with pytest.raises(RuntimeError, match=MODIFIED) as info:
        loss.backward()
    assert "Parameter" in str(info.value)


def test_a_changed_output_that_backward_reads_raises_naming_the_output():
    """exp's backward is gy * y, with y its own output: changing y must be caught."""
    w = leaf([0.0, 1.0])
    y = w.exp()
    y.data = np.zeros(2, dtype=np.float32)
    with pytest.raises(RuntimeError, match=MODIFIED) as info:
        y.backward(minigen.ones(2))
    message = str(info.value)
    assert message.startswith("Exp's backward") and "output 0" in message
    assert "saved at version 0 and is now at version 1" in message


# --- what does not raise -------------------------------------------------------------------


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_a_training_loop_forward_backward_step_runs(name):
    w = leaf([1.0, -2.0], dtype=np.float64)
    optimizer = OPTIMIZERS[name]([w])
    for step in range(1, 4):
        optimizer.zero_grad()
        before = w.detach().numpy().copy()
        square_loss(w).backward()
        np.testing.assert_allclose(w.grad.numpy(), 2 * before)  # the gradient at the current w
        optimizer.step()
        assert w._version == step


def test_plain_sgd_loop_follows_the_closed_form():
    """w_{t+1} = w_t - lr * 2 w_t = (1 - 2 lr)^t w_0 for loss sum(w^2)."""
    w = leaf([1.0, 2.0], dtype=np.float64)
    optimizer = SGD([w], lr=0.1)
    for _ in range(3):
        optimizer.zero_grad()
        square_loss(w).backward()
        optimizer.step()
    np.testing.assert_allclose(w.detach().numpy(), 0.8**3 * np.array([1.0, 2.0]))


def test_a_write_after_the_last_backward_leaves_later_graphs_alone():
    w = leaf([1.0, 2.0])
    square_loss(w).backward()
    w.data = w.data * 3  # the first graph is released; only new graphs see the new w
    w.grad = None
    square_loss(w).backward()
    np.testing.assert_allclose(w.grad.numpy(), [6.0, 12.0])


def test_double_backward_of_a_gradient_penalty_with_steps_in_between():
    """WGAN-GP style: minigen.grad(create_graph=True), backward of the penalty, a step, again.

    For a linear critic D(x) = x w^T, grad_x D = w for every example, so the penalty is
    (||w|| - 1)^2 and its gradient 2 (||w|| - 1) w / ||w||.
    """
    critic = nn.Linear(2, 1, bias=False, dtype="float64")
    critic.weight.data[...] = [[3.0, 4.0]]
    optimizer = SGD(critic.parameters(), lr=0.1)
    real, fake = minigen.randn(5, 2, dtype="float64"), minigen.randn(5, 2, dtype="float64")
    start = critic.weight._version  # construction's init fill counts too
    for step in range(1, 4):
        w = critic.weight.detach().numpy().copy()
        norm = np.linalg.norm(w)
        optimizer.zero_grad()
        penalty = gan.gradient_penalty(critic, real, fake)
        np.testing.assert_allclose(penalty.item(), (norm - 1) ** 2, rtol=1e-12)
        penalty.backward()
        np.testing.assert_allclose(critic.weight.grad.numpy(), 2 * (norm - 1) * w / norm, rtol=1e-12)
        optimizer.step()
        assert critic.weight._version == start + step


def test_grad_with_create_graph_then_second_derivative():
    """y = sum(x^3): g = 3 x^2, d/dx sum(g^2) = 36 x^3, with a write only after both passes."""
    x = leaf([1.0, -2.0], dtype=np.float64)
    (g,) = minigen.grad((x**3).sum(), x, create_graph=True)
    (g * g).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 36 * np.array([1.0, -8.0]))
    SGD([x], lr=0.01).step()
    assert x._version == 1


# --- every in-place writer counts ------------------------------------------------------------


def test_module_to_counts_as_a_write_of_every_parameter():
    model = nn.Linear(2, 2)
    assert [p._version for p in model.parameters()] == [1, 1]  # the default init fills
    model.double()
    assert [p._version for p in model.parameters()] == [2, 2]


def test_zero_grad_without_set_to_none_bumps_the_gradient():
    w = leaf([1.0, 2.0])
    square_loss(w).backward()
    g = w.grad
    clear_grad(w, set_to_none=False)
    assert w.grad is g and g._version == 1
    np.testing.assert_array_equal(g.numpy(), [0.0, 0.0])


def test_batchnorm_counts_its_writes_to_num_batches_tracked():
    bn = nn.BatchNorm1d(3)
    counter = bn.num_batches_tracked
    start = counter._version
    bn(minigen.randn(4, 3))
    bn(minigen.randn(4, 3))
    assert counter._version == start + 2 and int(counter.item()) == 2
    bn.reset_running_stats()
    assert counter._version == start + 3 and int(counter.item()) == 0


def test_new_tensors_and_reads_start_and_stay_at_version_zero():
    w = leaf([1.0, 2.0])
    _ = w.data, w.shape, w.detach().numpy(), w.grad
    y = w * 2.0
    assert (w._version, y._version, w.detach()._version) == (0, 0, 0)
