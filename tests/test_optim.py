"""Optimisers against their update formulas written out in NumPy float64, step by step.

Each test sets ``p.grad`` to chosen arrays before each step, so the expected parameters follow
from the formulas of PyTorch's ``torch.optim`` algorithm boxes alone, with no autograd involved.
"""

import math

import numpy as np
import pytest

import minigen
from minigen import io
from minigen.optim import SGD, Adam, AdamW, MultiStepLR, Optimizer, RMSprop

SHAPES = [(3, 4), (5,)]
STEPS = 5


def _problem(seed: int = 0):
    """Initial parameters and, per step, a gradient for each: large first, then small, so that
    AMSGrad's running maximum differs from Adam's second moment."""
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(s) for s in SHAPES]
    grads = [[rng.standard_normal(s) * (3.0 if t == 0 else 0.3) for s in SHAPES] for t in range(STEPS)]
    return params, grads


def _leaves(arrays, device="cpu", dtype=None):
    return [minigen.tensor(a, dtype=dtype, device=device, requires_grad=True) for a in arrays]


def _run(opt, params, grads, steps, device="cpu"):
    """Set each parameter's .grad to this step's gradient, then step, for ``steps``."""
    for step_grads in steps:
        for p, g in zip(params, grads[step_grads]):
            p.grad = minigen.tensor(g, dtype=p.dtype, device=device)
        opt.step()


def _host(t):
    return t.detach().numpy()


# --- the reference formulas ---------------------------------------------------------------------


def sgd_reference(
    p, grads, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False
):
    """torch.optim.SGD's algorithm box in float64."""
    p, b = p.copy(), None
    for g in grads:
        g = -g if maximize else g
        g = g + weight_decay * p
        if momentum != 0:
            b = g.copy() if b is None else momentum * b + (1 - dampening) * g
            g = g + momentum * b if nesterov else b
        p = p - lr * g
    return p


def adam_reference(
    p,
    grads,
    lr,
    betas=(0.9, 0.999),
    eps=1e-8,
    weight_decay=0.0,
    amsgrad=False,
    maximize=False,
    decoupled=False,
):
    """torch.optim.Adam's (and with ``decoupled``, AdamW's) algorithm box in float64."""
    beta1, beta2 = betas
    p, m, v, v_max = p.copy(), np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        g = -g if maximize else g
        if decoupled:
            p = p * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * p
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        m_hat = m / (1 - beta1**t)
        if amsgrad:
            v_max = np.maximum(v_max, v)
            v_hat = v_max / (1 - beta2**t)
        else:
            v_hat = v / (1 - beta2**t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
    return p


def rmsprop_reference(
    p, grads, lr, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False, maximize=False
):
    """torch.optim.RMSprop's algorithm box in float64."""
    p, v, b, g_avg = p.copy(), np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
    for g in grads:
        g = -g if maximize else g
        g = g + weight_decay * p
        v = alpha * v + (1 - alpha) * g * g
        v_tilde = v
        if centered:
            g_avg = alpha * g_avg + (1 - alpha) * g
            v_tilde = v - g_avg * g_avg
        if momentum > 0:
            b = momentum * b + g / (np.sqrt(v_tilde) + eps)
            p = p - lr * b
        else:
            p = p - lr * g / (np.sqrt(v_tilde) + eps)
    return p


SGD_CASES = [
    {"lr": 0.1},
    {"lr": 0.1, "momentum": 0.9},
    {"lr": 0.1, "momentum": 0.9, "dampening": 0.3},
    {"lr": 0.1, "momentum": 0.9, "nesterov": True},
    {"lr": 0.1, "weight_decay": 0.2},
    {"lr": 0.1, "maximize": True},
    {"lr": 0.05, "momentum": 0.5, "weight_decay": 0.1, "nesterov": True, "maximize": True},
]

ADAM_CASES = [
    {"lr": 0.1},
    {"lr": 0.1, "amsgrad": True},
    {"lr": 0.1, "weight_decay": 0.3},
    {"lr": 0.1, "weight_decay": 0.3, "amsgrad": True},
    {"lr": 0.05, "betas": (0.5, 0.7), "eps": 1e-3, "maximize": True},
]


RMSPROP_CASES = [
    {"lr": 0.01},
    {"lr": 0.01, "alpha": 0.9, "eps": 1e-3},
    {"lr": 0.01, "momentum": 0.9},
    {"lr": 0.01, "centered": True},
    {"lr": 0.01, "weight_decay": 0.3},
    {"lr": 0.01, "maximize": True},
    {"lr": 0.005, "alpha": 0.8, "weight_decay": 0.1, "momentum": 0.5, "centered": True, "maximize": True},
]


def _assert_matches(params, expected, rtol=1e-12):
    for p, e in zip(params, expected):
        np.testing.assert_allclose(_host(p), e, rtol=rtol, atol=rtol)


FORMULA_CASES = [
    *[(SGD, sgd_reference, options) for options in SGD_CASES],
    *[(Adam, adam_reference, options) for options in ADAM_CASES],
    *[(RMSprop, rmsprop_reference, options) for options in RMSPROP_CASES],
]


@pytest.mark.parametrize(
    ("optimizer", "reference", "options"),
    FORMULA_CASES,
    ids=[f"{cls.__name__}-{','.join(options)}" for cls, _, options in FORMULA_CASES],
)
def test_optimizer_matches_its_update_formula(optimizer, reference, options, device):
    p0, grads = _problem()
    params = _leaves(p0, device)
    _run(optimizer(params, **options), params, grads, range(STEPS), device)
    expected = [reference(p, [g[i] for g in grads], **options) for i, p in enumerate(p0)]
    _assert_matches(params, expected)


@pytest.mark.parametrize("options", [{"lr": 0.1}, {"lr": 0.1, "weight_decay": 0.3, "amsgrad": True}])
def test_adamw_matches_its_update_formula(options, device):
    p0, grads = _problem()
    params = _leaves(p0, device)
    _run(AdamW(params, **options), params, grads, range(STEPS), device)
    options = {"weight_decay": 1e-2, **options}  # AdamW's default decay
    expected = [adam_reference(p, [g[i] for g in grads], decoupled=True, **options) for i, p in enumerate(p0)]
    _assert_matches(params, expected)


@pytest.mark.parametrize("options", RMSPROP_CASES, ids=lambda o: ",".join(o))
def test_rmsprop_matches_pytorch(options):
    torch = pytest.importorskip("torch")
    p0, grads = _problem()
    params = _leaves(p0)
    ours = RMSprop(params, **options)
    _run(ours, params, grads, range(STEPS))
    theirs = [torch.tensor(p, requires_grad=True) for p in p0]
    opt = torch.optim.RMSprop(theirs, **options)
    for step_grads in grads:
        for p, g in zip(theirs, step_grads):
            p.grad = torch.tensor(g)
        opt.step()
    _assert_matches(params, [p.detach().numpy() for p in theirs])
    for i in range(len(p0)):  # the same state entries, holding the same values
        mine, torchs = ours.state_dict()["state"][i], opt.state_dict()["state"][i]
        assert set(mine) == set(torchs) and mine["step"] == int(torchs["step"]) == STEPS
        for name in set(mine) - {"step"}:
            np.testing.assert_allclose(_host(mine[name]), torchs[name].numpy(), rtol=1e-12, atol=1e-12)


def test_rmsprop_has_pytorchs_defaults_and_state():
    p0, grads = _problem()
    params = _leaves(p0)
    opt = RMSprop(params)
    assert {k: v for k, v in opt.param_groups[0].items() if k != "params"} == {
        "lr": 1e-2, "alpha": 0.99, "eps": 1e-8, "weight_decay": 0, "momentum": 0, "centered": False,
        "maximize": False,
    }  # fmt: skip
    _run(opt, params, grads, range(2))
    assert set(opt.state_dict()["state"][0]) == {"step", "square_avg"}
    both = RMSprop(_leaves(p0), momentum=0.9, centered=True)
    _run(both, both.param_groups[0]["params"], grads, range(1))
    assert set(both.state_dict()["state"][0]) == {"step", "square_avg", "momentum_buffer", "grad_avg"}
    assert both.state_dict()["state"][0]["step"] == 1


def test_rmsprop_first_step_is_lr_over_sqrt_one_minus_alpha_times_sign():
    """No bias correction: v_1 = (1 - alpha) g^2, so each coordinate moves by
    lr * sign(g) / sqrt(1 - alpha), here 0.25 / 0.2."""
    g = np.array([-4.0, -0.01, 0.5, 100.0])
    p = minigen.tensor(np.zeros(4), requires_grad=True)
    p.grad = minigen.tensor(g)
    RMSprop([p], lr=0.25, alpha=0.96, eps=0.0).step()
    np.testing.assert_allclose(_host(p), -0.25 * np.sign(g) / 0.2, rtol=1e-14)


def test_centered_momentum_and_maximize_change_rmsprop_s_result():
    """The cases above would not catch an ignored option if it made no difference here."""
    p0, grads = _problem()
    runs = {}
    variants = {"plain": {}, "centered": {"centered": True}, "momentum": {"momentum": 0.9}}
    for name, options in {**variants, "maximize": {"maximize": True}}.items():
        params = _leaves(p0)
        _run(RMSprop(params, lr=0.01, **options), params, grads, range(STEPS))
        runs[name] = _host(params[0])
    for name in ("centered", "momentum", "maximize"):
        assert not np.allclose(runs["plain"], runs[name]), name


def test_amsgrad_and_maximize_change_the_result():
    """The cases above would not catch an ignored option if it made no difference here."""
    p0, grads = _problem()
    runs = {}
    for name, options in {"plain": {}, "amsgrad": {"amsgrad": True}, "maximize": {"maximize": True}}.items():
        params = _leaves(p0)
        _run(Adam(params, lr=0.1, **options), params, grads, range(STEPS))
        runs[name] = _host(params[0])
    assert not np.allclose(runs["plain"], runs["amsgrad"])
    assert not np.allclose(runs["plain"], runs["maximize"])


def test_adam_bias_correction_makes_the_first_step_lr_times_sign():
    """At t=1, m_hat = g and v_hat = g^2, so each coordinate moves by lr * g / (|g| + eps)."""
    g = np.array([-4.0, -0.01, 0.5, 100.0])
    p = minigen.tensor(np.zeros(4), requires_grad=True)
    p.grad = minigen.tensor(g)
    Adam([p], lr=0.25, eps=0.0).step()
    np.testing.assert_allclose(_host(p), -0.25 * np.sign(g), rtol=1e-15)


def test_adamw_decay_is_decoupled_from_the_gradient():
    """With zero gradients Adam's moments stay zero: AdamW only shrinks p by (1 - lr*wd) a step,
    while Adam's coupled decay turns into a gradient wd*p and moves p by about lr a step."""
    p0 = np.array([2.0, -3.0])
    adamw, adam = _leaves([p0, p0])
    for p, opt in (
        (adamw, AdamW([adamw], lr=0.1, weight_decay=0.5)),
        (adam, Adam([adam], lr=0.1, weight_decay=0.5)),
    ):
        for _ in range(3):
            p.grad = minigen.zeros(2, dtype=minigen.float64)
            opt.step()
    np.testing.assert_allclose(_host(adamw), p0 * (1 - 0.1 * 0.5) ** 3, rtol=1e-15)
    np.testing.assert_allclose(_host(adam), p0 - 3 * 0.1 * np.sign(p0), atol=1e-3)


def test_param_groups_use_their_own_options(device):
    p0, grads = _problem()
    a, b = _leaves(p0, device)
    opt = SGD([{"params": [a]}, {"params": b, "lr": 0.01, "momentum": 0.5}], lr=0.1, momentum=0.9)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.01]
    assert [g["momentum"] for g in opt.param_groups] == [0.9, 0.5]
    _run(opt, [a, b], grads, range(STEPS), device)
    _assert_matches([a], [sgd_reference(p0[0], [g[0] for g in grads], lr=0.1, momentum=0.9)])
    _assert_matches([b], [sgd_reference(p0[1], [g[1] for g in grads], lr=0.01, momentum=0.5)])


def test_add_param_group_takes_defaults_and_its_own_options():
    p0, grads = _problem()
    a, b = _leaves(p0)
    opt = Adam([a], lr=0.1)
    opt.add_param_group({"params": [b], "betas": (0.5, 0.6)})
    assert opt.param_groups[1]["lr"] == 0.1 and opt.param_groups[1]["betas"] == (0.5, 0.6)
    _run(opt, [a, b], grads, range(STEPS))
    _assert_matches([b], [adam_reference(p0[1], [g[1] for g in grads], lr=0.1, betas=(0.5, 0.6))])


def test_parameters_without_grad_are_skipped():
    p0, grads = _problem()
    a, b = _leaves(p0)
    opt = Adam([a, b], lr=0.1)
    a.grad = minigen.tensor(grads[0][0])
    opt.step()
    np.testing.assert_array_equal(_host(b), p0[1])
    assert b not in opt.state and opt.state[a]["step"] == 1


def test_step_checks_the_gradient_shape():
    p = minigen.zeros(3, requires_grad=True)
    p.grad = minigen.ones(1)
    with pytest.raises(ValueError, match=r"parameter 0 \(group 0\) has shape \(3,\).*grad has shape \(1,\)"):
        SGD([p], lr=0.1).step()


# --- in place, no graph, dtype ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda ps: SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1),
        Adam,
        AdamW,
        lambda ps: RMSprop(ps, momentum=0.9, centered=True, weight_decay=0.1),
    ],
)
def test_step_updates_in_place_without_a_graph(make, device):
    p0, grads = _problem()
    params = _leaves(p0, device)
    arrays = [p.data for p in params]
    opt = make(params)
    for grad_mode in (True, False):
        with minigen.enable_grad() if grad_mode else minigen.no_grad():
            _run(opt, params, grads, range(2), device)
            assert minigen.is_grad_enabled() is grad_mode
    for p, array, start in zip(params, arrays, p0):
        assert p.data is array
        assert p.creator is None and p.is_leaf and p.requires_grad
        assert not np.array_equal(_host(p), start)


def test_step_leaves_the_gradient_untouched():
    p0, grads = _problem()
    params = _leaves(p0)
    opt = SGD(params, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1, maximize=True)
    _run(opt, params, grads, range(2))  # the second step has a momentum buffer
    assert all(np.array_equal(_host(p.grad), g) for p, g in zip(params, grads[1]))


@pytest.mark.parametrize(
    "make",
    [
        lambda ps: SGD(ps, lr=np.float64(0.1), momentum=np.float64(0.9), weight_decay=np.float64(0.1)),
        lambda ps: Adam(ps, lr=np.float64(0.1), betas=(np.float64(0.9), 0.99), amsgrad=True),
        lambda ps: AdamW(ps, lr=0.1, weight_decay=np.float64(0.1)),
        lambda ps: RMSprop(
            ps, lr=np.float64(0.01), alpha=np.float64(0.9), momentum=np.float64(0.5), centered=True
        ),
    ],
)
def test_float32_parameters_stay_float32(make, device):
    """Hyperparameters given as NumPy float64 scalars must not upcast float32 parameters or state."""
    p0, grads = _problem()
    params = _leaves(p0, device, dtype=minigen.float32)
    arrays = [p.data for p in params]
    opt = make(params)
    _run(opt, params, grads, range(3), device)
    for p, array in zip(params, arrays):
        assert p.data is array and p.dtype == minigen.float32
        for value in opt.state[p].values():
            assert not isinstance(value, minigen.Tensor) or value.dtype == minigen.float32


def test_float32_run_follows_the_float64_formula():
    p0, grads = _problem()
    params = _leaves(p0, dtype=minigen.float32)
    _run(Adam(params, lr=0.1, amsgrad=True), params, grads, range(STEPS))
    expected = [adam_reference(p, [g[i] for g in grads], lr=0.1, amsgrad=True) for i, p in enumerate(p0)]
    _assert_matches(params, expected, rtol=1e-5)


# --- zero_grad and closures -------------------------------------------------------------------------


def test_zero_grad_sets_to_none_by_default():
    a, b = _leaves(_problem()[0])
    a.grad = minigen.ones(*a.shape, dtype=a.dtype)
    opt = SGD([a, b], lr=0.1)
    opt.zero_grad()
    assert a.grad is None and b.grad is None


def test_zero_grad_without_none_zeroes_the_arrays_in_place():
    a, b, c = _leaves([np.ones(3), np.ones(2), np.ones(4)])
    a.grad = minigen.ones(3, dtype=a.dtype)
    kept = a.grad.data
    b.sum().backward()  # backward may hand out a read-only broadcast view: replaced, not written
    SGD([a, b, c], lr=0.1).zero_grad(set_to_none=False)
    assert a.grad.data is kept
    np.testing.assert_array_equal(kept, np.zeros(3))
    np.testing.assert_array_equal(_host(b.grad), np.zeros(2))
    assert b.grad.shape == (2,) and c.grad is None


def test_closure_runs_with_grad_enabled_and_its_loss_is_returned():
    p = minigen.tensor(np.array([1.0, -2.0]), requires_grad=True)
    opt = SGD([p], lr=0.1)
    seen = []

    def closure():
        seen.append(minigen.is_grad_enabled())
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    with minigen.no_grad():
        loss = opt.step(closure)
    assert seen == [True]
    assert loss.item() == 5.0
    np.testing.assert_allclose(_host(p), np.array([1.0, -2.0]) * (1 - 0.1 * 2))
    assert opt.step() is None


# --- state dicts ------------------------------------------------------------------------------------


def test_state_dict_has_pytorchs_layout():
    p0, grads = _problem()
    a, b = _leaves(p0)
    c = minigen.tensor(np.zeros(2), requires_grad=True)
    opt = Adam([{"params": [a, b]}, {"params": [c], "lr": 0.5}], lr=0.1, amsgrad=True)
    _run(opt, [a, b], grads, range(2))
    sd = opt.state_dict()
    assert sorted(sd["state"]) == [0, 1]  # c has no gradient, so no state
    assert set(sd["state"][0]) == {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}
    assert sd["state"][0]["step"] == 2
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [2]]
    assert [g["lr"] for g in sd["param_groups"]] == [0.1, 0.5]
    assert sd["param_groups"][0]["betas"] == (0.9, 0.999) and sd["param_groups"][0]["amsgrad"] is True
    momentum = SGD([a], lr=0.1, momentum=0.9)
    _run(momentum, [a], grads, range(1))
    assert set(momentum.state_dict()["state"][0]) == {"momentum_buffer"}


def test_state_dict_is_a_snapshot():
    p0, grads = _problem()
    params = _leaves(p0)
    opt = Adam(params, lr=0.1)
    _run(opt, params, grads, range(2))
    sd = opt.state_dict()
    before = _host(sd["state"][0]["exp_avg"]).copy()
    _run(opt, params, grads, range(2, 4))
    np.testing.assert_array_equal(_host(sd["state"][0]["exp_avg"]), before)
    assert sd["state"][0]["step"] == 2


def test_loaded_state_does_not_alias_the_state_dict():
    p0, grads = _problem()
    params = _leaves(p0)
    opt = SGD(params, lr=0.1, momentum=0.9)
    _run(opt, params, grads, range(2))
    sd = opt.state_dict()
    saved = _host(sd["state"][0]["momentum_buffer"]).copy()
    fresh = _leaves(p0)
    resumed = SGD(fresh, lr=0.1, momentum=0.9)
    resumed.load_state_dict(sd)
    _run(resumed, fresh, grads, range(2, 5))
    np.testing.assert_array_equal(_host(sd["state"][0]["momentum_buffer"]), saved)
    assert not np.array_equal(_host(resumed.state[fresh[0]]["momentum_buffer"]), saved)


RESUMABLE = {
    "sgd-nesterov": lambda groups: SGD(groups, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1),
    "adam-amsgrad": lambda groups: Adam(groups, lr=0.1, amsgrad=True, weight_decay=0.1),
    "adamw": lambda groups: AdamW(groups, lr=0.1, betas=(0.8, 0.9)),
    "rmsprop-centered-momentum": lambda groups: RMSprop(
        groups, lr=0.1, alpha=0.9, momentum=0.5, centered=True, weight_decay=0.1
    ),
}


@pytest.mark.parametrize("name", sorted(RESUMABLE))
def test_resuming_from_a_saved_checkpoint_is_bit_identical(name, device, tmp_path):
    make = RESUMABLE[name]
    p0, grads = _problem()
    k = 2

    def groups(params):
        return [{"params": [params[0]]}, {"params": [params[1]], "lr": 0.03}]

    straight = _leaves(p0, device, dtype=minigen.float32)
    _run(make(groups(straight)), straight, grads, range(STEPS), device)

    first = _leaves(p0, device, dtype=minigen.float32)
    opt = make(groups(first))
    _run(opt, first, grads, range(k), device)
    io.save({"params": [p.detach() for p in first], "optimizer": opt.state_dict()}, tmp_path / "run.ckpt")
    del first, opt

    checkpoint = io.load(tmp_path / "run.ckpt", map_location=device)
    resumed = [minigen.tensor(p, requires_grad=True) for p in checkpoint["params"]]
    opt = make([{"params": [resumed[0]], "lr": 7.0}, {"params": [resumed[1]]}])  # options come from the file
    opt.load_state_dict(checkpoint["optimizer"])
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.03]
    _run(opt, resumed, grads, range(k, STEPS), device)
    for p, q in zip(straight, resumed):
        assert q.dtype == minigen.float32 and q.device == device
        assert np.array_equal(_host(p), _host(q))


def _stepped_adam(shapes=SHAPES):
    params = [minigen.zeros(*s, dtype=minigen.float64, requires_grad=True) for s in shapes]
    opt = Adam(params, lr=0.1)
    for p in params:
        p.grad = minigen.ones(*p.shape, dtype=minigen.float64)
    opt.step()
    return params, opt


def test_load_state_dict_rejects_a_different_number_of_groups():
    params, opt = _stepped_adam()
    other = Adam([{"params": [params[0]]}, {"params": [params[1]]}])
    with pytest.raises(ValueError, match="different number of parameter groups: 1, but the optimizer has 2"):
        other.load_state_dict(opt.state_dict())


def test_load_state_dict_rejects_a_group_of_another_size():
    params, opt = _stepped_adam()
    other = Adam(params[:1])
    with pytest.raises(ValueError, match="group 0 has 2 parameters in the state dict and 1 in the optimizer"):
        other.load_state_dict(opt.state_dict())


def test_load_state_dict_rejects_state_of_the_wrong_shape_and_changes_nothing():
    _, opt = _stepped_adam()
    swapped, other = _stepped_adam(SHAPES[:1] + [(4,)])
    before = _host(other.state[swapped[1]]["exp_avg"]).copy()
    with pytest.raises(
        ValueError, match=r"'exp_avg' of parameter 1 \(group 0\) has shape \(5,\).*shape \(4,\)"
    ):
        other.load_state_dict(opt.state_dict())
    np.testing.assert_array_equal(_host(other.state[swapped[1]]["exp_avg"]), before)


def test_load_state_dict_rejects_state_for_an_unknown_parameter():
    params, opt = _stepped_adam()
    sd = opt.state_dict()
    sd["state"][9] = sd["state"][0]
    with pytest.raises(ValueError, match="state for parameter 9, which is in no group"):
        Adam(params).load_state_dict(sd)


def test_load_state_dict_validates_the_loaded_options():
    params, opt = _stepped_adam()
    sd = opt.state_dict()
    sd["param_groups"][0]["lr"] = -1.0
    with pytest.raises(ValueError, match="parameter group 0: Invalid learning rate: -1.0"):
        Adam(params).load_state_dict(sd)


# --- validation ------------------------------------------------------------------------------------


def _param():
    return minigen.zeros(2, requires_grad=True)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: SGD(p, lr=-0.1), "Invalid learning rate: -0.1"),
        (lambda p: SGD(p, lr=math.nan), "Invalid learning rate: nan"),
        (lambda p: SGD(p, momentum=-0.5), "Invalid momentum value: -0.5"),
        (lambda p: SGD(p, weight_decay=-1), "Invalid weight_decay value: -1"),
        (lambda p: SGD(p, nesterov=True), "Nesterov momentum requires a momentum and zero dampening"),
        (lambda p: SGD(p, momentum=0.9, dampening=0.1, nesterov=True), "Nesterov momentum requires"),
        (lambda p: Adam(p, lr=-1e-3), "Invalid learning rate: -0.001"),
        (lambda p: Adam(p, eps=-1e-8), "Invalid epsilon value"),
        (lambda p: Adam(p, betas=(1.0, 0.999)), "Invalid beta parameter at index 0: 1.0"),
        (lambda p: Adam(p, betas=(0.9, -0.1)), "Invalid beta parameter at index 1: -0.1"),
        (lambda p: Adam(p, betas=(0.9,)), "betas must be a pair"),
        (lambda p: Adam(p, weight_decay=-0.1), "Invalid weight_decay value"),
        (lambda p: AdamW(p, betas=(0.9, 1.5)), "Invalid beta parameter at index 1: 1.5"),
        (lambda p: RMSprop(p, lr=-0.01), "Invalid learning rate: -0.01"),
        (lambda p: RMSprop(p, alpha=-0.5), "Invalid alpha value: -0.5"),
        (lambda p: RMSprop(p, alpha=math.nan), "Invalid alpha value: nan"),
        (lambda p: RMSprop(p, eps=-1e-8), "Invalid epsilon value: -1e-08"),
        (lambda p: RMSprop(p, momentum=-0.9), "Invalid momentum value: -0.9"),
        (lambda p: RMSprop(p, weight_decay=-1), "Invalid weight_decay value: -1"),
    ],
)
def test_invalid_options_raise(make, message):
    with pytest.raises(ValueError, match=message):
        make([_param()])


def test_invalid_group_options_name_the_group():
    with pytest.raises(ValueError, match="parameter group 1: Invalid learning rate: -1"):
        SGD([{"params": [_param()]}, {"params": [_param()], "lr": -1}], lr=0.1)


def test_a_parameter_given_twice_raises():
    p = _param()
    with pytest.raises(ValueError, match="duplicate parameters"):
        SGD([p, p], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        SGD([{"params": [p]}, {"params": [p]}], lr=0.1)
    opt = SGD([p], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [p]})
    assert len(opt.param_groups) == 1


def test_non_leaf_and_frozen_tensors_are_refused():
    p = _param()
    with pytest.raises(ValueError, match=r"can't optimize a non-leaf Tensor \(parameter 1 of group 0"):
        SGD([p, p * 2], lr=0.1)
    with pytest.raises(ValueError, match="parameter 0 of group 0 .* does not require grad"):
        SGD([minigen.zeros(2)], lr=0.1)


@pytest.mark.parametrize(
    "params, error, message",
    [
        ([], ValueError, "empty parameter list"),
        ([np.zeros(2)], TypeError, "can only optimize Tensors, but parameter 0 of group 0 is ndarray"),
        ({1, 2}, TypeError, "ordered collections"),
        ([{"params": {1, 2}}], TypeError, "ordered collections"),
        ([{"lr": 0.1}], ValueError, "needs a 'params' entry"),
    ],
)
def test_bad_params_raise(params, error, message):
    with pytest.raises(error, match=message):
        SGD(params, lr=0.1)


def test_a_single_tensor_is_not_a_parameter_list():
    with pytest.raises(TypeError, match="iterable of Tensors or dicts, but got a Tensor"):
        Adam(_param())


def test_add_param_group_needs_a_dict():
    opt = SGD([_param()], lr=0.1)
    with pytest.raises(TypeError, match="param_group must be a dict, but got list"):
        opt.add_param_group([_param()])


def test_the_base_class_is_abstract():
    with pytest.raises(NotImplementedError):
        Optimizer([_param()], {"lr": 0.1})


def test_repr_lists_each_group():
    text = repr(SGD([{"params": [_param()]}, {"params": [_param()], "lr": 0.5}], lr=0.1, momentum=0.9))
    assert text.startswith("SGD (") and "Parameter Group 1" in text and "lr: 0.5" in text


# --- learning-rate schedule ---------------------------------------------------------------------------


def test_multistep_lr_multiplies_by_gamma_at_each_milestone():
    p = minigen.zeros(2, requires_grad=True)
    q = minigen.zeros(1, requires_grad=True)
    optimizer = SGD([{"params": [p], "lr": 1.0}, {"params": [q], "lr": 0.5}])
    schedule = MultiStepLR(optimizer, milestones=[4, 2], gamma=0.1)
    seen = []
    for _ in range(5):
        seen.append(schedule.get_last_lr())
        schedule.step()
    np.testing.assert_allclose(seen, [[1.0, 0.5], [1.0, 0.5], [0.1, 0.05], [0.1, 0.05], [0.01, 0.005]])
    assert schedule.get_last_lr() == pytest.approx([0.01, 0.005])


def test_multistep_lr_resumes_from_its_state():
    def fresh():
        optimizer = SGD([minigen.zeros(1, requires_grad=True)], lr=2.0)
        return optimizer, MultiStepLR(optimizer, milestones=[1, 3], gamma=0.5)

    optimizer, schedule = fresh()
    for _ in range(2):
        schedule.step()
    state = schedule.state_dict()
    resumed_optimizer, resumed = fresh()
    resumed.load_state_dict(state)
    assert resumed_optimizer.param_groups[0]["lr"] == 1.0
    for s in (schedule, resumed):
        s.step()
    assert resumed.get_last_lr() == schedule.get_last_lr() == [0.5]


def test_multistep_lr_rejects_bad_settings():
    optimizer = SGD([minigen.zeros(1, requires_grad=True)])
    with pytest.raises(ValueError, match="milestones must be positive epochs"):
        MultiStepLR(optimizer, [0])
    with pytest.raises(ValueError, match="gamma must be positive"):
        MultiStepLR(optimizer, [2], gamma=0.0)
