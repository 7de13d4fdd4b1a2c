"""Module and Parameter: the containers that hold a network's learnable tensors and state.

A Module registers three kinds of attributes as they are assigned: Parameters (learned by an
optimiser), buffers (state that is saved but not learned, such as BatchNorm's running mean)
and sub-modules. From those registries come ``parameters()``, ``state_dict()`` with PyTorch's
dotted key names, ``to(device, dtype)`` and the nested ``repr``.
"""

from __future__ import annotations

import contextlib
from collections import namedtuple

from minigen import backend
from minigen.autograd import clear_grad, no_grad
from minigen.tensor import Tensor


class Parameter(Tensor):
    """A Tensor that a Module learns: assigning one to a module attribute registers it.

    It requires grad unless told otherwise, and shares the array of the tensor it wraps.
    """

    __slots__ = ()

    def __init__(self, data=None, requires_grad: bool = True):
        if data is None:
            data = backend.array_module(backend.default_device()).zeros((0,), dtype=backend.float32)
        super().__init__(data.data if isinstance(data, Tensor) else data)
        if requires_grad:
            self.requires_grad_()

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Module:
    """Base class of every layer and model: subclasses set attributes in ``__init__`` and
    write ``forward``; calling the module calls ``forward``."""

    training: bool

    def __init__(self):
        # object.__setattr__ because our __setattr__ needs these registries to exist.
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", {})

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # --- registration ---------------------------------------------------------------------
    def _registries(self):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}.__init__ must call super().__init__() first")
        return self._parameters, self._buffers, self._modules

    def __setattr__(self, name, value):
        parameters, buffers, modules = self._registries()
        if isinstance(value, Parameter):
            self._forget(name)
            parameters[name] = value
        elif isinstance(value, Module):
            self._forget(name)
            modules[name] = value
        elif name in parameters:
            if value is not None:
                raise TypeError(
                    f"cannot assign a {type(value).__name__} to parameter {name!r} "
                    "(a Parameter or None is required)"
                )
            parameters[name] = None
        elif name in buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign a {type(value).__name__} to buffer {name!r} (Tensor or None)")
            buffers[name] = value
        elif name in modules:
            if value is not None:
                raise TypeError(f"cannot assign a {type(value).__name__} to sub-module {name!r}")
            modules[name] = None
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        # Called only when normal lookup fails, i.e. for registered names.
        for registry in ("_parameters", "_buffers", "_modules"):
            entries = self.__dict__.get(registry, {})
            if name in entries:
                return entries[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name):
        if not self._forget(name):
            object.__delattr__(self, name)

    def _forget(self, name) -> bool:
        """Remove ``name`` from every registry and the instance dict; True if it was registered."""
        found = False
        for registry in self._registries():
            found = registry.pop(name, None) is not None or found
        self._non_persistent.discard(name)
        self.__dict__.pop(name, None)
        return found

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"parameter {name!r} must be a Parameter or None, not {type(param).__name__}")
        self._forget(name)
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """State that is not learned; saved in ``state_dict`` unless ``persistent=False``."""
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"buffer {name!r} must be a Tensor or None, not {type(tensor).__name__}")
        self._forget(name)
        self._buffers[name] = tensor
        if not persistent:
            self._non_persistent.add(name)

    def add_module(self, name: str, module: Module | None) -> None:
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"sub-module {name!r} must be a Module, not {type(module).__name__}")
        self._forget(name)
        self._modules[name] = module

    register_module = add_module

    # --- walking the tree -----------------------------------------------------------------
    def named_modules(self, prefix: str = "", memo: set | None = None):
        """(dotted name, module) for this module and every descendant, each module once."""
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(f"{prefix}.{name}" if prefix else name, memo)

    def modules(self):
        for _, module in self.named_modules():
            yield module

    def named_children(self):
        for name, child in self._modules.items():
            if child is not None:
                yield name, child

    def children(self):
        for _, child in self.named_children():
            yield child

    def _named_members(self, registry: str, prefix: str, recurse: bool):
        seen = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for module_prefix, module in modules:
            for name, value in getattr(module, registry).items():
                if value is None or id(value) in seen:
                    continue
                seen.add(id(value))
                yield (f"{module_prefix}.{name}" if module_prefix else name), value

    def named_parameters(self, prefix: str = "", recurse: bool = True):
        """(dotted name, Parameter) pairs; a parameter shared by two modules appears once."""
        return self._named_members("_parameters", prefix, recurse)

    def parameters(self, recurse: bool = True):
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(self, prefix: str = "", recurse: bool = True):
        return self._named_members("_buffers", prefix, recurse)

    def buffers(self, recurse: bool = True):
        for _, buffer in self.named_buffers(recurse=recurse):
            yield buffer

    def apply(self, fn) -> Module:
        """Call ``fn`` on every sub-module (children first) and then on this module."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # --- state ----------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Parameters and persistent buffers by PyTorch's dotted names (``encoder.0.weight``).

        Values are detached tensors sharing the module's arrays, as in PyTorch; save them with
        ``minigen.save`` or copy them before changing the module if you need a snapshot.
        """
        return {key: t.detach() for key, t in self._state_slots().items()}

    def _state_slots(self) -> dict:
        """Every key of ``state_dict()`` mapped to the live tensor that holds it."""
        slots = {}
        for name, module in self.named_modules():
            stem = f"{name}." if name else ""
            for key, param in module._parameters.items():
                if param is not None:
                    slots[stem + key] = param
            for key, buffer in module._buffers.items():
                if buffer is not None and key not in module._non_persistent:
                    slots[stem + key] = buffer
        return slots

    def load_state_dict(self, state_dict: dict, strict: bool = True) -> IncompatibleKeys:
        """Copy ``state_dict``'s values into this module's parameters and buffers, in place.

        Values may be Tensors or arrays; each is cast to the dtype and moved to the device of
        the tensor it fills. With ``strict``, missing and unexpected keys are an error; a
        shape mismatch is always an error. All problems are listed in one error, and nothing
        is changed unless everything fits.
        """
        slots = self._state_slots()
        missing = [k for k in slots if k not in state_dict]
        unexpected = [k for k in state_dict if k not in slots]
        problems = []
        values = {}
        for key, target in slots.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            array = value.data if isinstance(value, Tensor) else value
            if not hasattr(array, "shape"):
                problems.append(f"value of {key!r} is a {type(value).__name__}, not a tensor or array")
            elif tuple(array.shape) != target.shape:
                problems.append(
                    f"size mismatch for {key}: copying a param with shape {tuple(array.shape)}, "
                    f"the shape in the current model is {target.shape}"
                )
            else:
                values[key] = array
        if strict:
            if missing:
                problems.insert(0, "Missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in missing))
            if unexpected:
                problems.insert(
                    int(bool(missing)),
                    "Unexpected key(s) in state_dict: " + ", ".join(f'"{k}"' for k in unexpected),
                )
        if problems:
            raise RuntimeError(
                f"Error(s) in loading state_dict for {type(self).__name__}:\n\t" + "\n\t".join(problems)
            )
        for key, array in values.items():
            target = slots[key]
            target.data[...] = backend.to_device(array, target.device).astype(target.dtype, copy=False)
            target._bump_version()  # a graph recorded before the load must not backward through it
        return IncompatibleKeys(missing, unexpected)

    # --- modes, gradients, devices -----------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Training mode (the default): BatchNorm uses batch statistics, Dropout drops."""
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self) -> Module:
        """Evaluation mode: BatchNorm uses its running statistics, Dropout passes inputs through."""
        return self.train(False)

    @contextlib.contextmanager
    def eval_mode(self):
        """``with model.eval_mode():`` evaluation mode and no graph inside (DeZero's
        ``test_mode()``, PyTorch's ``model.eval()`` plus ``torch.no_grad()``); on the way out,
        even through an exception, every sub-module gets back the mode it had, so a model
        whose parts were in mixed modes comes back exactly as it went in."""
        modes = [(module, module.training) for module in self.modules()]
        self.eval()
        try:
            with no_grad():
                yield self
        finally:
            for module, mode in modes:
                object.__setattr__(module, "training", mode)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        for param in self.parameters():
            param.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget every parameter's gradient (see ``minigen.autograd.clear_grad``)."""
        for param in self.parameters():
            clear_grad(param, set_to_none)

    def to(self, device=None, dtype=None) -> Module:
        """Move parameters, gradients and buffers to ``device`` and cast the floating ones to
        ``dtype``, in place (the Parameter objects stay the same, so optimisers keep working)."""
        device = None if device is None else backend.normalize_device(device)
        dtype = None if dtype is None else backend.as_dtype(dtype)
        if dtype is not None and dtype.kind != "f":
            raise TypeError(f"Module.to() casts only to floating dtypes, not {dtype}")
        if device is not None:
            backend.array_module(device)  # a clear error now if the device is unusable

        def convert(t: Tensor) -> None:
            array = t.data if device is None else backend.to_device(t.data, device)
            if dtype is not None and array.dtype.kind == "f":
                array = array.astype(dtype, copy=False)
            t.data = array

        for module in self.modules():
            for param in module._parameters.values():
                if param is not None:
                    convert(param)
                    if param.grad is not None:
                        convert(param.grad)
            for buffer in module._buffers.values():
                if buffer is not None:
                    convert(buffer)
        return self

    def float(self) -> Module:
        return self.to(dtype=backend.float32)

    def double(self) -> Module:
        return self.to(dtype=backend.float64)

    def cpu(self) -> Module:
        return self.to(device="cpu")

    def cuda(self) -> Module:
        return self.to(device="cuda")

    # --- printing -------------------------------------------------------------------------
    def extra_repr(self) -> str:
        """The settings shown between the parentheses of this module's repr."""
        return ""

    def __repr__(self) -> str:
        children = [f"({name}): {child!r}".replace("\n", "\n  ") for name, child in self.named_children()]
        extra = self.extra_repr()
        if not children:
            return f"{type(self).__name__}({extra})"
        lines = ([extra] if extra else []) + children
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"
