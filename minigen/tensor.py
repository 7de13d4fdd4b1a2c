"""Tensor: an array, the gradient it receives, and the Function that created it.

The class holds state and the few methods that need no primitive. Arithmetic, reductions
and shape methods are primitives; ``minigen.ops`` installs them on the class (see its
``TENSOR_METHODS`` table), so this file stays short enough to read in one sitting.
"""

from __future__ import annotations

from operator import attrgetter

from minigen import backend


class Tensor:
    """An n-dimensional array that records how it was computed, so gradients can flow back.

    ``data`` is the raw backend array (NumPy or CuPy) and may be reassigned, with the same
    shape, to update a parameter in place. ``grad`` is a Tensor or None. ``creator`` is the
    Function node that produced this tensor (None for leaves and for tensors made without
    grad tracking).

    ``_version`` counts the in-place writes to ``data``: each assignment to ``data`` and each
    ``_bump_version()`` (optimiser steps, nn.init fills, load_state_dict) adds one. A graph
    node remembers the versions of what it saved, and backward refuses to use a tensor whose
    version has moved (chapter 03, "Saved values and in-place changes").
    """

    __slots__ = ("_data", "_version", "grad", "requires_grad", "creator", "retains_grad", "__weakref__")
    # Make NumPy scalars and arrays defer to our reflected operators (np.float64(2) * t).
    __array_ufunc__ = None
    __array_priority__ = 1000

    def __init__(self, data, requires_grad: bool = False):
        self._data = data
        self._version = 0
        self.grad = None
        self.requires_grad = requires_grad
        self.creator = None
        self.retains_grad = False

    def _set_data(self, array) -> None:
        self._data = array
        self._version += 1

    # A C getter (attrgetter), not a Python function: .data is read several times by every op.
    data = property(attrgetter("_data"), _set_data, doc="The raw backend array; assigning it is a write.")

    def _bump_version(self) -> None:
        """Record a write into ``data``'s array made without assigning ``data``, such as
        ``xp.clip(p.data, lo, hi, out=p.data)``: a graph that saved this tensor then refuses
        to backward through the changed values."""
        self._version += 1

    # --- what it is -------------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        return self._data.shape

    @property
    def ndim(self) -> int:
        return self._data.ndim

    @property
    def dtype(self):
        return self._data.dtype

    @property
    def device(self) -> str:
        return backend.device_of(self._data)

    @property
    def is_leaf(self) -> bool:
        return self.creator is None

    def size(self, dim: int | None = None):
        """The shape (as PyTorch's ``size()``), or the length of dimension ``dim``."""
        return self._data.shape if dim is None else self._data.shape[dim]

    def numel(self) -> int:
        return self._data.size

    def dim(self) -> int:
        return self._data.ndim

    def __len__(self) -> int:
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    # --- values out -------------------------------------------------------------------
    def item(self):
        """The value of a one-element tensor as a Python number (a host copy on cuda)."""
        if self._data.size != 1:
            raise ValueError(f"item() needs a tensor with one element; this one has shape {self.shape}")
        return self._data.reshape(()).item()

    def numpy(self):
        """The values as a NumPy array (copied to the host when on cuda; shared on cpu)."""
        if self.requires_grad:
            raise RuntimeError("numpy() on a tensor that requires grad: call .detach().numpy()")
        return backend.to_host(self._data)

    def tolist(self):
        return backend.to_host(self._data).tolist()

    def __bool__(self) -> bool:
        return bool(self._data)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    # --- graph ------------------------------------------------------------------------
    def detach(self) -> Tensor:
        """The same values (shared memory) cut from the graph."""
        return Tensor(self._data)

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if requires_grad and self._data.dtype.kind != "f":
            raise TypeError(f"only floating-point tensors can require gradients, not {self.dtype}")
        if not requires_grad and self.creator is not None:
            raise RuntimeError("requires_grad_(False) on a non-leaf tensor: use detach()")
        self.requires_grad = requires_grad
        return self

    def retain_grad(self) -> None:
        """Keep ``.grad`` on this non-leaf tensor after backward (leaves always keep theirs)."""
        self.retains_grad = True

    def backward(self, gradient=None, retain_graph: bool | None = None, create_graph: bool = False):
        """Accumulate d(self)/d(leaf) into the ``.grad`` of every leaf that requires grad.

        ``gradient`` is the vector of the vector-Jacobian product; it may be omitted only for a
        one-element tensor. The graph is released afterwards unless ``retain_graph`` (which
        defaults to ``create_graph``).
        """
        from minigen.autograd import backward  # autograd builds on Tensor, not the reverse

        backward(self, gradient, retain_graph=retain_graph, create_graph=create_graph)

    def __repr__(self) -> str:
        # NumPy names every dtype but float64 and int64; PyTorch names every dtype but its
        # defaults, float32 and int64. Show what PyTorch would.
        body = repr(backend.to_host(self._data)).replace("array(", "tensor(", 1)[:-1]
        body = body.replace("\n" + " " * len("array("), "\n" + " " * len("tensor("))
        body = body.replace(", dtype=float32", "")
        extras = ["dtype=float64"] if self.dtype == backend.float64 else []
        if self.device != "cpu":
            extras.append(f"device='{self.device}'")
        if self.creator is not None:
            extras.append(f"grad_fn=<{type(self.creator).__name__}>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return body + "".join(", " + e for e in extras) + ")"

    __hash__ = object.__hash__
