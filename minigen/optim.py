"""Optimisers: SGD (momentum, Nesterov, weight decay), Adam, AdamW and RMSprop, with PyTorch's API.

An optimiser holds parameter groups (each a dict of options with its ``params``) and
per-parameter state. ``step()`` updates every parameter that has a ``.grad`` in place, on its
raw array: ``p.data`` stays the same array object, keeps its dtype, and no graph is recorded;
each update counts as an in-place write (``p._version`` goes up by one), so a retained graph
that saved ``p`` refuses a later backward instead of giving gradients of the old values.
The formulas are those of the algorithm boxes in PyTorch's ``torch.optim`` documentation.
"""

from __future__ import annotations

import functools
import math

from minigen import backend
from minigen.autograd import clear_grad, enable_grad
from minigen.tensor import Tensor


class Optimizer:
    """Base class: parameter groups, state, ``zero_grad``, ``step`` and state dicts.

    ``params`` is an iterable of Tensors, or of dicts (parameter groups) each holding
    ``"params"`` and any options that override ``defaults`` for that group. Subclasses define
    ``_update(param, grad, state, group)``, working on raw arrays, and declare their options in
    ``OPTIONS``: each option's name and its check (``check(options, name)`` raising ValueError,
    or None for any value), run in that order on the defaults, on every group and on every
    loaded state dict. A constructor hands its arguments over with
    ``super().__init__(params, self._declared(locals()))``. A subclass may instead override
    ``_check_options(options)`` itself.
    """

    OPTIONS: dict | None = None  # None: the subclass checks its options in ``_check_options``

    def __init__(self, params, defaults: dict):
        if isinstance(params, Tensor):
            raise TypeError(
                "params argument given to the optimizer should be an iterable of Tensors or dicts, "
                "but got a Tensor; wrap it in a list: [p]"
            )
        self._check_options(defaults)
        self.defaults = defaults
        self.state: dict = {}
        self.param_groups: list[dict] = []
        param_groups = _ordered(params, "params")
        if not param_groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for group in param_groups:
            self.add_param_group(group)

    def add_param_group(self, param_group: dict) -> None:
        """Add a group of parameters with its own options (missing ones come from ``defaults``)."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError("a parameter group needs a 'params' entry")
        index = len(self.param_groups)
        params = param_group["params"]
        params = [params] if isinstance(params, Tensor) else _ordered(params, f"group {index}'s params")
        for i, p in enumerate(params):
            where = f"parameter {i} of group {index}"
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, but {where} is {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError(f"can't optimize a non-leaf Tensor ({where}, shape {p.shape})")
            if not p.requires_grad:
                raise ValueError(
                    f"{where} (shape {p.shape}) does not require grad; call requires_grad_() on it "
                    "or leave it out of the optimizer"
                )
        if len({id(p) for p in params}) != len(params):
            raise ValueError(
                f"optimizer contains a parameter group with duplicate parameters (group {index})"
            )
        seen = {id(p) for group in self.param_groups for p in group["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        group = {**self.defaults, **param_group, "params": params}
        try:
            self._check_options(group)
        except ValueError as error:
            raise ValueError(f"parameter group {index}: {error}") from None
        self.param_groups.append(group)

    def _parameters(self):
        """(group index, parameter index, parameter) for every parameter, in state-dict order."""
        index = 0
        for g, group in enumerate(self.param_groups):
            for p in group["params"]:
                yield g, index, p
                index += 1

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget every parameter's gradient (see ``minigen.autograd.clear_grad``)."""
        for _, _, p in self._parameters():
            clear_grad(p, set_to_none)

    def step(self, closure=None):
        """Update every parameter that has a gradient; return ``closure()``'s loss when given.

        ``closure`` re-evaluates the model and returns the loss; it runs with grad mode on.
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for g, i, p in self._parameters():
            if p.grad is None:
                continue
            grad = p.grad.data
            if grad.shape != p.data.shape or backend.device_of(grad) != backend.device_of(p.data):
                raise ValueError(
                    f"parameter {i} (group {g}) has shape {p.shape} on {p.device} but its .grad has "
                    f"shape {p.grad.shape} on {p.grad.device}"
                )
            self._update(p.data, grad, self.state.setdefault(p, {}), self.param_groups[g])
            p._bump_version()
        return loss

    @classmethod
    def _declared(cls, arguments: dict) -> dict:
        """The options of ``OPTIONS`` picked from a constructor's ``arguments`` (its locals())."""
        return {name: arguments[name] for name in cls.OPTIONS}

    def _check_options(self, options: dict) -> None:
        if self.OPTIONS is None:
            raise NotImplementedError
        for name, check in self.OPTIONS.items():
            if check is not None:
                check(options, name)

    def _update(self, param, grad, state: dict, group: dict) -> None:
        raise NotImplementedError

    # --- state dicts -----------------------------------------------------------------------

    def state_dict(self) -> dict:
        """``{"state": {index: {name: value}}, "param_groups": [{options..., "params": [indices]}]}``.

        Parameters are numbered across groups in order, as in PyTorch. Tensor state is copied,
        so the dict is a snapshot that later steps do not change.
        """
        state, groups = {}, [{**group, "params": []} for group in self.param_groups]
        for g, i, p in self._parameters():
            groups[g]["params"].append(i)
            if self.state.get(p):
                state[i] = {name: _copied(value) for name, value in self.state[p].items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore options and state saved by ``state_dict`` (checked whole before anything changes).

        Tensor state is copied onto each parameter's device (floating state in its dtype), so
        later steps never write into ``state_dict``'s arrays.
        """
        if not isinstance(state_dict, dict) or not {"state", "param_groups"} <= state_dict.keys():
            raise ValueError("an optimizer state dict is a dict with 'state' and 'param_groups' entries")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"loaded state dict has a different number of parameter groups: {len(saved_groups)}, "
                f"but the optimizer has {len(self.param_groups)}"
            )
        by_index = {}
        for g, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"loaded state dict contains a parameter group that doesn't match the size of "
                    f"optimizer's group: group {g} has {len(saved['params'])} parameters in the state "
                    f"dict and {len(group['params'])} in the optimizer"
                )
            by_index.update((i, (g, p)) for i, p in zip(saved["params"], group["params"]))
        state = {}
        for i, values in state_dict["state"].items():
            if i not in by_index:
                raise ValueError(f"loaded state dict has state for parameter {i}, which is in no group")
            g, p = by_index[i]
            where = f"parameter {i} (group {g})"
            state[p] = {name: _restored(v, p, f"state {name!r} of {where}") for name, v in values.items()}
        # Options missing from an older state dict keep their current values.
        groups = [
            {**group, **saved, "params": group["params"]}
            for saved, group in zip(saved_groups, self.param_groups)
        ]
        for g, group in enumerate(groups):
            try:
                self._check_options(group)
            except ValueError as error:
                raise ValueError(f"loaded state dict, parameter group {g}: {error}") from None
        self.param_groups = groups
        self.state = state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for g, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {g}")
            lines.extend(f"    {key}: {group[key]}" for key in sorted(group) if key != "params")
        return "\n".join(lines + [")"])


def _ordered(params, what: str) -> list:
    if isinstance(params, (set, frozenset)):
        raise TypeError(
            f"optimizer {what} need to be organized in ordered collections, but the ordering of "
            "tensors in sets will change between runs. Please use a list instead."
        )
    return list(params)


def _copied(value):
    return Tensor(value.data.copy()) if isinstance(value, Tensor) else value


def _restored(value, p: Tensor, where: str):
    """A copy of saved state ``value`` for parameter ``p``: on its device, floats in its dtype."""
    if not isinstance(value, Tensor):
        return value
    if value.shape != p.shape:
        raise ValueError(f"{where} has shape {value.shape} but the parameter has shape {p.shape}")
    array = backend.to_device(value.data, p.device)
    dtype = p.dtype if array.dtype.kind == "f" else array.dtype
    return Tensor(array.astype(dtype, copy=True))


def _at_least_zero(label: str):
    """The check of an option that must be >= 0, with PyTorch's message ("Invalid {label}: ...")."""

    def check(options: dict, name: str) -> None:
        if not options[name] >= 0:  # also rejects nan
            raise ValueError(f"Invalid {label}: {options[name]}")

    return check


def _beta_pair(options: dict, name: str) -> None:
    betas = options[name]
    if len(betas) != 2:
        raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
    for i, beta in enumerate(betas):
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"Invalid beta parameter at index {i}: {beta}")


def _nesterov_needs_momentum(options: dict, name: str) -> None:
    if options[name] and (options["momentum"] <= 0 or options["dampening"] != 0):
        raise ValueError("Nesterov momentum requires a momentum and zero dampening")


# The checks the optimisers' OPTIONS tables share.
_LR, _EPS = _at_least_zero("learning rate"), _at_least_zero("epsilon value")
_MOMENTUM, _WEIGHT_DECAY = _at_least_zero("momentum value"), _at_least_zero("weight_decay value")


def _descent_direction(xp, param, grad, weight_decay: float, maximize: bool):
    """(d, owned): d = (-grad if maximize else grad) + weight_decay * param.

    ``owned`` says whether d is a new array the caller may overwrite; otherwise d is ``grad``
    itself, which belongs to the user and must not be changed.
    """
    if weight_decay:
        d = xp.multiply(param, weight_decay)
        (xp.subtract if maximize else xp.add)(d, grad, out=d)
        return d, True
    if maximize:
        return xp.negative(grad), True
    return grad, False


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with momentum, Nesterov momentum and weight decay.

    With g = grad (negated when ``maximize``) + weight_decay * p, at step t:
    b_1 = g;  b_t = momentum * b_{t-1} + (1 - dampening) * g  (when momentum != 0),
    then g = g + momentum * b_t (Nesterov) or g = b_t, and p = p - lr * g.
    State: ``momentum_buffer`` (b).
    """

    OPTIONS = {"lr": _LR, "momentum": _MOMENTUM, "dampening": None, "weight_decay": _WEIGHT_DECAY,
               "nesterov": _nesterov_needs_momentum, "maximize": None}  # fmt: skip

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0, dampening: float = 0,
                 weight_decay: float = 0, nesterov: bool = False, *, maximize: bool = False):  # fmt: skip
        super().__init__(params, self._declared(locals()))

    def _update(self, param, grad, state: dict, group: dict) -> None:
        xp = backend.xp_of(param)
        # Python floats never upcast a float32 array (NumPy NEP 50); NumPy float64 scalars would.
        lr, momentum, dampening = float(group["lr"]), float(group["momentum"]), float(group["dampening"])
        d, owned = _descent_direction(xp, param, grad, float(group["weight_decay"]), group["maximize"])
        if momentum:
            buffer = state.get("momentum_buffer")
            if buffer is None:
                buffer = state["momentum_buffer"] = Tensor(xp.array(d, copy=True))
            else:
                b = buffer.data
                b *= momentum
                if dampening:
                    b += (1 - dampening) * d
                else:
                    b += d
            if group["nesterov"]:
                if not owned:
                    d, owned = d.copy(), True
                d += momentum * buffer.data
            else:
                d, owned = buffer.data, False
        if owned:
            d *= lr
            param -= d
        else:
            param -= lr * d


class Adam(Optimizer):
    """Adam (Kingma & Ba 2014, at ICLR 2015) with AMSGrad and coupled or decoupled (AdamW) weight decay.

    With g = grad (negated when ``maximize``), plus weight_decay * p unless the decay is
    decoupled, in which case p = p * (1 - lr * weight_decay) first; at step t:
    m_t = beta1 * m_{t-1} + (1 - beta1) * g
    v_t = beta2 * v_{t-1} + (1 - beta2) * g^2
    v_max = max(v_max, v_t) with ``amsgrad`` (then used in place of v_t below)
    p = p - lr / (1 - beta1^t) * m_t / (sqrt(v_t) / sqrt(1 - beta2^t) + eps).
    State: ``step`` (t), ``exp_avg`` (m), ``exp_avg_sq`` (v), ``max_exp_avg_sq`` (v_max).
    """

    OPTIONS = {"lr": _LR, "eps": _EPS, "betas": _beta_pair, "weight_decay": _WEIGHT_DECAY, "amsgrad": None,
               "maximize": None, "decoupled_weight_decay": None}  # fmt: skip

    def __init__(self, params, lr: float = 1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, amsgrad: bool = False, *, maximize: bool = False,
                 decoupled_weight_decay: bool = False):  # fmt: skip
        betas = tuple(betas)
        super().__init__(params, self._declared(locals()))

    def _update(self, param, grad, state: dict, group: dict) -> None:
        xp = backend.xp_of(param)
        # Python floats never upcast a float32 array (NumPy NEP 50); NumPy float64 scalars would.
        lr, eps, weight_decay = float(group["lr"]), float(group["eps"]), float(group["weight_decay"])
        beta1, beta2 = (float(b) for b in group["betas"])
        if not state:
            state["step"] = 0
            state["exp_avg"] = Tensor(xp.zeros_like(param))
            state["exp_avg_sq"] = Tensor(xp.zeros_like(param))
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = Tensor(xp.zeros_like(param))
        state["step"] += 1
        t = state["step"]
        decoupled = group["decoupled_weight_decay"]
        if decoupled and weight_decay:
            param *= 1 - lr * weight_decay
        d, _ = _descent_direction(xp, param, grad, 0.0 if decoupled else weight_decay, group["maximize"])
        names = ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if group["amsgrad"] else ())
        constants = (beta1, beta2, eps, lr / (1 - beta1**t), math.sqrt(1 - beta2**t))
        _in_chunks(functools.partial(_adam, xp, constants), param, d, *(state[n].data for n in names))


def _adam(xp, constants, param, d, m, v, v_max=None) -> None:
    """One Adam update of ``param`` and its averages ``m``, ``v`` (and ``v_max`` with AMSGrad)
    in place from the descent direction ``d``: the formulas of ``Adam``, with ``constants`` =
    (beta1, beta2, eps, lr / (1 - beta1^t), sqrt(1 - beta2^t))."""
    beta1, beta2, eps, step_size, root_correction = constants
    scratch = xp.multiply(d, 1 - beta1)
    m *= beta1
    m += scratch
    xp.multiply(d, d, out=scratch)
    scratch *= 1 - beta2
    v *= beta2
    v += scratch
    if v_max is not None:
        xp.maximum(v_max, v, out=v_max)
        v = v_max
    denominator = xp.sqrt(v, out=scratch)
    denominator /= root_correction
    denominator += eps
    step = xp.divide(m, denominator, out=scratch)
    step *= step_size
    param -= step


def _in_chunks(update, *arrays) -> None:
    """``update(*arrays)`` on the flattened arrays (all of one shape), one contiguous chunk per
    thread when they are large (``backend.parallel_chunks``; the update is elementwise, so the
    chunks are independent); in one call when any of them cannot be flattened without a copy."""
    if not all(a.flags.c_contiguous and a.shape == arrays[0].shape for a in arrays):
        update(*arrays)
        return
    flat = [a.reshape(-1) for a in arrays]
    backend.parallel_chunks(
        arrays[0], arrays[0].size, lambda start, stop: update(*(a[start:stop] for a in flat))
    )


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019): p = p * (1 - lr * weight_decay).

    The decay shrinks the parameters directly instead of being added to the gradient, so it is
    not rescaled by Adam's per-coordinate step sizes. Default weight_decay 1e-2, as PyTorch.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *, maximize: bool = False):  # fmt: skip
        super().__init__(
            params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize, decoupled_weight_decay=True
        )


class RMSprop(Optimizer):
    """RMSprop (Tieleman & Hinton 2012, lecture 6.5 of the course "Neural Networks for Machine
    Learning"), centred as in Graves 2013, with momentum and weight decay: PyTorch's
    ``torch.optim.RMSprop``, its algorithm box and defaults.

    With g = grad (negated when ``maximize``) + weight_decay * p, at step t, from v_0 = 0:
    v_t = alpha * v_{t-1} + (1 - alpha) * g^2, and u_t = v_t, or with ``centered``
    a_t = alpha * a_{t-1} + (1 - alpha) * g (a_0 = 0) and u_t = v_t - a_t^2 (a variance);
    s = g / (sqrt(u_t) + eps);  b_t = momentum * b_{t-1} + s (b_0 = 0) and p = p - lr * b_t when
    momentum > 0, else p = p - lr * s. No bias correction, so the first steps are large: at t = 1,
    |s| = 1 / sqrt(1 - alpha), 10 for the default alpha (uncentred, eps aside).
    State: ``step`` (t, as PyTorch keeps it), ``square_avg`` (v), ``grad_avg`` (a, centred only),
    ``momentum_buffer`` (b, with momentum only).
    """

    OPTIONS = {"lr": _LR, "alpha": _at_least_zero("alpha value"), "eps": _EPS, "weight_decay": _WEIGHT_DECAY,
               "momentum": _MOMENTUM, "centered": None, "maximize": None}  # fmt: skip

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0, momentum: float = 0, centered: bool = False, *,
                 maximize: bool = False):  # fmt: skip
        super().__init__(params, self._declared(locals()))

    def _update(self, param, grad, state: dict, group: dict) -> None:
        xp = backend.xp_of(param)
        # Python floats never upcast a float32 array (NumPy NEP 50); NumPy float64 scalars would.
        lr, alpha, eps, momentum = (float(group[k]) for k in ("lr", "alpha", "eps", "momentum"))
        d, _ = _descent_direction(xp, param, grad, float(group["weight_decay"]), group["maximize"])
        # The buffers an option needs start at zero when first needed (also after a loaded state).
        wanted = {"square_avg": True, "grad_avg": group["centered"], "momentum_buffer": momentum > 0}
        for name in (name for name, needed in wanted.items() if needed and name not in state):
            state[name] = Tensor(xp.zeros_like(param))
        state["step"] = state.get("step", 0) + 1
        v = state["square_avg"].data
        scratch = xp.multiply(d, d)
        scratch *= 1 - alpha
        v *= alpha
        v += scratch
        if group["centered"]:
            a = state["grad_avg"].data
            xp.multiply(d, 1 - alpha, out=scratch)
            a *= alpha
            a += scratch
            xp.multiply(a, a, out=scratch)
            xp.subtract(v, scratch, out=scratch)
            denominator = xp.sqrt(scratch, out=scratch)
        else:
            denominator = xp.sqrt(v, out=scratch)
        denominator += eps
        step = xp.divide(d, denominator, out=scratch)
        if momentum > 0:
            b = state["momentum_buffer"].data
            b *= momentum
            b += step
            step = xp.multiply(b, lr, out=scratch)
        else:
            step *= lr
        param -= step


class MultiStepLR:
    """Multiply each group's learning rate by ``gamma`` at each epoch in ``milestones``
    (PyTorch's MultiStepLR): after ``step()`` has been called e times, a group whose initial
    rate was lr_0 has lr = lr_0 * gamma^(number of milestones <= e). Call ``step()`` once at
    the end of every epoch; ``state_dict``/``load_state_dict`` let a resumed run continue.
    """

    def __init__(self, optimizer: Optimizer, milestones, gamma: float = 0.1):
        milestones = sorted(int(m) for m in milestones)
        if any(m < 1 for m in milestones):
            raise ValueError(f"milestones must be positive epochs, got {milestones}")
        if not gamma > 0:
            raise ValueError(f"gamma must be positive, got {gamma}")
        self.optimizer, self.milestones, self.gamma = optimizer, milestones, float(gamma)
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        self.last_epoch = 0

    def step(self) -> None:
        self.last_epoch += 1
        self._apply()

    def _apply(self) -> None:
        passed = sum(m <= self.last_epoch for m in self.milestones)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * self.gamma**passed

    def get_last_lr(self) -> list:
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        return {"milestones": list(self.milestones), "gamma": self.gamma, "base_lrs": list(self.base_lrs),
                "last_epoch": self.last_epoch}  # fmt: skip

    def load_state_dict(self, state: dict) -> None:
        self.milestones, self.gamma = [int(m) for m in state["milestones"]], float(state["gamma"])
        self.base_lrs, self.last_epoch = [float(b) for b in state["base_lrs"]], int(state["last_epoch"])
        self._apply()
