"""Reverse-mode automatic differentiation: Function nodes, grad mode and the backward sweep.

A primitive is a ``Function`` subclass with ``forward`` on raw arrays and ``backward`` written
in Tensor operations. Because backward is itself made of differentiable operations, running
it with grad mode on (``create_graph=True``) records a graph of the gradient, which is how
second derivatives and WGAN-GP's gradient penalty work.
"""

from __future__ import annotations

import functools
import weakref

from minigen import backend
from minigen.tensor import Tensor

# --- grad mode -----------------------------------------------------------------------------

_grad_enabled = True


def is_grad_enabled() -> bool:
    return _grad_enabled


class _GradMode:
    """Context manager and decorator that sets grad mode and restores it on exit."""

    mode: bool

    def __enter__(self):
        global _grad_enabled
        self._previous = _grad_enabled
        _grad_enabled = self.mode

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self._previous

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with type(self)():
                return fn(*args, **kwargs)

        return wrapper


class no_grad(_GradMode):
    """Inside ``with no_grad():`` operations record no graph (an op is one array computation)."""

    mode = False


class enable_grad(_GradMode):
    """Turn graph recording back on inside a ``no_grad`` block."""

    mode = True


# --- graph nodes ---------------------------------------------------------------------------


class Function:
    """One recorded operation: ``forward`` on arrays, ``backward`` in Tensor operations.

    Calling a Function instance on tensors runs ``forward`` on their arrays and, when grad
    mode is on and an input requires grad, links the outputs to this node. Non-tensor
    operands (Python or NumPy numbers, arrays) become constant tensors of the first tensor's
    dtype and device, so ``x * 2`` stays float32. Settings that are not differentiated (an
    axis, a slope) are constructor arguments, not inputs.

    Subclasses may save what backward needs on ``self``; ``self.inputs`` holds the input
    tensors, ``self.output()`` the (single) output, and ``self.needs_input_grad[i]`` tells
    whether input i wants a gradient, so backward can skip work and return None for it.

    Backward must see the values forward saw. The node notes its inputs' versions (counts of
    in-place writes, ``Tensor._version``) and the sweep compares them before calling backward;
    outputs are made at version 0 and ``output()`` checks that they still are. A change in
    between raises instead of giving wrong gradients.
    """

    inputs: tuple
    outputs: tuple
    needs_input_grad: tuple
    released = False

    def __call__(self, *operands):
        inputs = _as_tensors(operands)
        reference = inputs[0]._data
        for t in inputs[1:]:
            if backend.device_of(t._data) != backend.device_of(reference):
                raise backend.DeviceError(
                    f"{type(self).__name__}: expected all tensors on one device, "
                    f"found {backend.device_of(reference)} and {backend.device_of(t._data)}"
                )
        try:
            ys = self.forward(*(t._data for t in inputs))
        except ValueError as error:  # chained, so the traceback still shows the line that raised
            shapes = " and ".join(str(t.shape) for t in inputs)
            raise ValueError(f"{type(self).__name__} got tensors of shapes {shapes}: {error}") from error
        single = not isinstance(ys, tuple)
        xp = backend.xp_of(reference)
        # NumPy returns scalars, not 0-d arrays, from full reductions; Tensor.data is always an array.
        # List comprehensions, not generator expressions: this runs for every op, and they are faster.
        outputs = tuple([Tensor(y if y.ndim else xp.asarray(y)) for y in ((ys,) if single else ys)])
        needs = tuple([t.requires_grad for t in inputs]) if _grad_enabled else ()
        if True in needs:
            self.inputs = inputs
            self.input_versions = tuple([t._version for t in inputs])
            self.needs_input_grad = needs
            self.outputs = tuple([weakref.ref(y) for y in outputs])
            if not single:  # to give an output that is gone by backward a zero gradient
                self.output_specs = tuple((y.shape, y.dtype) for y in outputs)
            for y in outputs:
                y.requires_grad = True
                y.creator = self
        return outputs[0] if single else outputs

    def output(self, index: int = 0) -> Tensor:
        """The output tensor of this node (held weakly, alive whenever backward needs it)."""
        y = self.outputs[index]()
        if y is not None and y._version:  # every output is made at version 0
            raise _modified_error(self, f"output {index}", y, 0)
        return y

    def forward(self, *arrays):
        raise NotImplementedError

    def backward(self, *grad_outputs):
        raise NotImplementedError

    def release(self) -> None:
        """Drop everything saved for backward; a second backward through here is an error."""
        self.__dict__.clear()
        self.released = True


def clear_grad(t: Tensor, set_to_none: bool = True) -> None:
    """Forget ``t.grad``: set it to None, or (``set_to_none=False``) fill it with zeros.

    Zeros are written into the gradient's array when it is a writeable array of its own; a
    gradient that is part of a graph, or a read-only or shared view (backward can hand out
    broadcast views, or the caller's own tensor), is replaced by a fresh zero array instead.
    """
    g = t.grad
    if g is None:
        return
    if set_to_none:
        t.grad = None
    elif g.creator is None and g.data.base is None and getattr(g.data.flags, "writeable", True):
        g.data.fill(0)
        g._bump_version()
    else:
        t.grad = Tensor(backend.xp_of(t.data).zeros_like(t.data))


def _as_tensors(operands) -> tuple:
    """Tensors for all operands, in one floating dtype when any operand is floating.

    As in PyTorch: a number or array operand takes the floating dtype of the tensors (x * 2.0
    and x * numpy.float64(2) stay float32); an integer tensor meeting a float is cast to it
    (arange(3) * 0.5 is float32); float32 meeting a float64 *tensor* promotes to float64.
    """
    tensors = [o for o in operands if isinstance(o, Tensor)]
    if not tensors:
        raise TypeError("a Function needs at least one Tensor operand")
    if len(tensors) == len(operands) and all(t._data.dtype == tensors[0]._data.dtype for t in tensors):
        return operands
    floats = [t._data.dtype for t in tensors if t._data.dtype.kind == "f"]
    if floats:
        dtype = max(floats, key=lambda d: d.itemsize)
    elif any(isinstance(o, float) or getattr(o, "dtype", backend.int64).kind == "f" for o in operands):
        dtype = backend.float32
    else:
        dtype = None  # integer and boolean arithmetic follow NumPy
    xp = backend.xp_of(tensors[0].data)
    converted = []
    for o in operands:
        if not isinstance(o, Tensor):
            o = Tensor(xp.asarray(o, dtype=dtype))
        elif dtype is not None and o.data.dtype.kind != "f":
            o = Tensor(o.data.astype(dtype))
        converted.append(o)
    return tuple(converted)


# --- the backward sweep --------------------------------------------------------------------


def _topological_order(roots) -> list:
    """Function nodes reachable from ``roots``, each after every node that feeds it.

    Iterative depth-first search, so a chain of any length needs no recursion.
    """
    order, visited = [], set()
    stack = [(f, False) for f in {id(r.creator): r.creator for r in roots if r.creator}.values()]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        if node.released:
            raise RuntimeError(
                "trying to backward through the graph a second time: its saved values were "
                "released by the first backward; pass retain_graph=True to the first call"
            )
        stack.append((node, True))
        for x in node.inputs:
            if x.creator is not None and id(x.creator) not in visited:
                stack.append((x.creator, False))
    return order


def _needed_nodes(order, targets: set) -> set:
    """ids of the nodes on some path from a target input to the outputs."""
    needed = set()
    for node in order:  # inputs come before the nodes they feed
        for x in node.inputs:
            if id(x) in targets or (x.creator is not None and id(x.creator) in needed):
                needed.add(id(node))
                break
    return needed


def _sweep(outputs, grad_outputs, targets, retain_graph, create_graph) -> dict:
    """Propagate ``grad_outputs`` back from ``outputs``; return {id(tensor): (tensor, grad)}.

    With ``targets`` (ids of tensors) the sweep visits only nodes that lead to them and keeps
    their gradients; without, it keeps the gradients of leaves that require grad.
    """
    grads: dict[int, tuple] = {}

    def accumulate(x, g):
        if id(x) in grads:
            grads[id(x)] = (x, grads[id(x)][1] + g)
        else:
            grads[id(x)] = (x, g)

    for y, g in zip(outputs, grad_outputs):
        accumulate(y, g)
    order = _topological_order(outputs)
    needed = _needed_nodes(order, targets) if targets is not None else None
    with enable_grad() if create_graph else no_grad():
        for node in reversed(order):
            if needed is not None and id(node) not in needed:
                continue
            gys = []
            for ref in node.outputs:
                y = ref()
                entry = None if y is None else grads.get(id(y))
                if entry is not None and (targets is None or id(y) not in targets):
                    del grads[id(y)]
                    if targets is None and y.retains_grad:  # grad() leaves .grad alone
                        # a copy unless create_graph: the same gradient flows on to y's inputs
                        y.grad = _own(entry[1], set(), create_graph) if y.grad is None else y.grad + entry[1]
                gys.append(None if entry is None else entry[1])
            if all(g is None for g in gys):
                continue
            if len(gys) > 1:
                gys = [g if g is not None else _zero_gradient(node, i) for i, g in enumerate(gys)]
            gxs = _checked_backward(node, gys)
            for x, gx in zip(node.inputs, gxs):
                if gx is not None and x.requires_grad:
                    accumulate(x, _as_dtype_of(x, gx))
            if not retain_graph:
                node.release()
    return grads


def _checked_backward(node: Function, gys) -> tuple:
    """``node.backward(*gys)`` as a tuple, after checking that no input was written in place since forward."""
    if node.input_versions != tuple([x._version for x in node.inputs]):
        raise _changed_input_error(node)
    gxs = node.backward(*gys)
    return gxs if isinstance(gxs, tuple) else (gxs,)


def _changed_input_error(node: Function) -> RuntimeError:
    i = next(i for i, x in enumerate(node.inputs) if x._version != node.input_versions[i])
    return _modified_error(node, f"input {i}", node.inputs[i], node.input_versions[i])


def _modified_error(node: Function, which: str, t: Tensor, saved: int) -> RuntimeError:
    """The error for a tensor that ``node`` saved at version ``saved`` and that has been written since."""
    return RuntimeError(
        f"{type(node).__name__}'s backward needs its {which} as forward saw it, but that tensor "
        f"({type(t).__name__} of shape {t.shape}, {t.dtype}) was modified in place afterwards: it was "
        f"saved at version {saved} and is now at version {t._version}. Gradients from the new values "
        "would be silently wrong. Make in-place writes (optimizer.step(), assigning .data, nn.init "
        "fills, load_state_dict) only after the last backward through this graph, or run the "
        "forward pass again after them."
    )


def _zero_gradient(node: Function, index: int) -> Tensor:
    """Zeros for output ``index`` of a multi-output node (that output may no longer exist)."""
    shape, dtype = node.output_specs[index]
    return Tensor(backend.xp_of(node.inputs[0].data).zeros(shape, dtype=dtype))


def _as_dtype_of(x: Tensor, g: Tensor) -> Tensor:
    """``g`` in ``x``'s dtype, as PyTorch: a float32 input mixed with float64 gets a float32 grad.

    ``Tensor.to`` (installed by minigen.ops) is differentiable, so create_graph still works.
    """
    return g if g.dtype == x.dtype else g.to(dtype=x.dtype)


def _seed_gradient(output: Tensor, gradient) -> Tensor:
    if gradient is None:
        if output.data.size != 1:
            raise RuntimeError(
                f"backward() needs a gradient argument for a non-scalar output of shape "
                f"{output.shape}; pass gradient= with that shape, or reduce it (e.g. .sum()) first"
            )
        return Tensor(backend.xp_of(output.data).ones_like(output.data))
    if not isinstance(gradient, Tensor):
        gradient = Tensor(backend.xp_of(output.data).asarray(gradient, dtype=output.dtype))
    if gradient.shape != output.shape:
        raise ValueError(f"gradient has shape {gradient.shape} but the output has shape {output.shape}")
    return _as_dtype_of(output, gradient)


def _check_differentiable(outputs) -> None:
    for y in outputs:
        if not y.requires_grad:
            raise RuntimeError(
                "element of outputs does not require grad and has no graph: was it computed "
                "under no_grad(), or from tensors none of which requires grad?"
            )


def backward(output: Tensor, gradient=None, retain_graph=None, create_graph=False) -> None:
    """Accumulate the gradient of ``output`` into ``.grad`` of the leaves that require grad."""
    _check_differentiable([output])
    retain_graph = create_graph if retain_graph is None else retain_graph
    seed = _seed_gradient(output, gradient)
    grads = _sweep([output], [seed], None, retain_graph, create_graph)
    stored = {id(seed.data)}  # the caller's array: no .grad may alias it
    for x, g in grads.values():
        if x.creator is None:
            x.grad = _own(g, stored, create_graph) if x.grad is None else x.grad + g


def _own(g: Tensor, stored: set, create_graph: bool) -> Tensor:
    """``g`` as a leaf's new ``.grad``: an array of its own, as PyTorch's, so that changing one
    gradient in place (clipping, scaling) changes nothing else. A gradient that is a view
    (a broadcast of a sum's gradient is even read-only) or an array already given to another
    leaf in this pass (``a + b`` hands the same gy to both) is copied. With ``create_graph`` the
    gradient is part of a graph and is kept as it is."""
    if create_graph:
        return g
    if id(g.data) in stored or not g.data.flags.owndata:
        g = Tensor(g.data.copy())
    stored.add(id(g.data))
    return g


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, allow_unused=False):
    """Gradients of ``outputs`` with respect to ``inputs``, returned as a tuple (``.grad`` untouched).

    Computes sum_k grad_outputs[k]^T d outputs[k] / d inputs[i] for each input i. With
    ``create_graph=True`` the result is itself differentiable (for second derivatives).
    """
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    if grad_outputs is None or isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs] * len(outputs) if grad_outputs is None else [grad_outputs]
    if len(grad_outputs) != len(outputs):
        raise ValueError(f"got {len(grad_outputs)} grad_outputs for {len(outputs)} outputs")
    _check_differentiable(outputs)
    for x in inputs:
        if not x.requires_grad:
            raise RuntimeError(f"an input of shape {x.shape} does not require grad")
    seeds = [_seed_gradient(y, g) for y, g in zip(outputs, grad_outputs)]
    retain_graph = create_graph if retain_graph is None else retain_graph
    grads = _sweep(outputs, seeds, {id(x) for x in inputs}, retain_graph, create_graph)
    result = []
    for i, x in enumerate(inputs):
        entry = grads.get(id(x))
        if entry is None and not allow_unused:
            raise RuntimeError(
                f"input {i} (shape {x.shape}) was not used to compute the outputs; "
                "pass allow_unused=True to get None for it"
            )
        result.append(None if entry is None else entry[1])
    return tuple(result)
