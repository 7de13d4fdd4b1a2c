"""Shape primitives: they move, copy or select entries, so their backward moves gradients back."""

from __future__ import annotations

from minigen import backend
from minigen.autograd import Function
from minigen.tensor import Tensor


def normalize_axis(axis: int, ndim: int) -> int:
    """``axis`` (negative counts from the end) as an index in [0, ndim); IndexError out of range.

    The one rule for every op that takes a dim (the reductions use it through
    ``reduce.normalize_dims``).
    """
    bound = max(ndim, 1)  # a 0-d tensor accepts dim 0 or -1, as in PyTorch
    if not -bound <= axis < bound:
        raise IndexError(f"dimension {axis} is out of range for a tensor with {ndim} dimensions")
    return axis % bound


class _ToShape(Function):
    """An op whose one setting is its output's ``shape``: reshape, broadcast_to and sum_to."""

    def __init__(self, shape):
        self.shape = tuple(shape)

    @classmethod
    def of(cls, x, shape) -> Tensor:
        """x taken to ``shape`` by this op; x itself, with no node recorded, when it has that shape."""
        shape = tuple(shape)
        return x if x.shape == shape else cls(shape)(x)


class Reshape(_ToShape):
    """y = x viewed with a new shape (same entries in row-major order).

    VJP: gx = reshape(gy, x.shape).
    """

    def forward(self, x):
        return x.reshape(self.shape)

    def backward(self, gy):
        return reshape(gy, self.inputs[0].shape)


def reshape(x, *shape) -> Tensor:
    """x with shape ``shape`` (one entry may be -1); a view when the layout allows."""
    shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    return Reshape.of(x, shape)


class Permute(Function):
    """y = x with its axes reordered: y.shape[i] = x.shape[axes[i]].

    VJP: gx = permute(gy, inverse(axes)), where inverse(axes)[axes[i]] = i.
    """

    def __init__(self, axes):
        self.axes = axes

    def forward(self, x):
        return x.transpose(self.axes)

    def backward(self, gy):
        inverse = [0] * len(self.axes)
        for i, a in enumerate(self.axes):
            inverse[a] = i
        return permute(gy, *inverse)


def permute(x, *dims) -> Tensor:
    """x with dimensions reordered as ``dims`` (a view)."""
    dims = tuple(dims[0]) if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims
    axes = tuple(normalize_axis(d, x.ndim) for d in dims) if len(dims) == x.ndim else ()
    if len(dims) != x.ndim or sorted(axes) != list(range(x.ndim)):
        raise ValueError(f"permute dims {dims} are not a permutation of the {x.ndim} dims of shape {x.shape}")
    return Permute(axes)(x)


def transpose(x, dim0: int = -2, dim1: int = -1) -> Tensor:
    """x with dimensions ``dim0`` and ``dim1`` swapped (PyTorch's transpose)."""
    axes = list(range(x.ndim))
    dim0, dim1 = normalize_axis(dim0, x.ndim), normalize_axis(dim1, x.ndim)
    if x.ndim == 0:
        return x
    axes[dim0], axes[dim1] = axes[dim1], axes[dim0]
    return Permute(tuple(axes))(x)


def T(x) -> Tensor:
    """All dimensions reversed (x.T); for a matrix, its transpose."""
    return Permute(tuple(reversed(range(x.ndim))))(x)


class BroadcastTo(_ToShape):
    """y = x repeated along new leading axes and along its size-1 axes to ``shape``.

    VJP: gx = sum_to(gy, x.shape): every copy of an entry sends its gradient back to it.
    """

    def forward(self, x):
        return backend.xp_of(x).broadcast_to(x, self.shape)

    def backward(self, gy):
        return sum_to(gy, self.inputs[0].shape)


def broadcast_to(x, shape) -> Tensor:
    return BroadcastTo.of(x, shape)


def _sum_to_axes(shape, target):
    """The axes to sum (and which to keep) to bring an array of ``shape`` to ``target``."""
    lead = len(shape) - len(target)
    if lead < 0:
        raise ValueError(f"cannot sum shape {shape} to the larger shape {target}")
    kept = tuple(lead + i for i, n in enumerate(target) if n == 1 and shape[lead + i] != 1)
    for i, n in enumerate(target):
        if n not in (1, shape[lead + i]):
            raise ValueError(f"cannot sum shape {shape} to shape {target}")
    return tuple(range(lead)), kept


class SumTo(_ToShape):
    """y = x summed over the axes that broadcasting added or stretched, so y.shape = shape.

    This undoes broadcasting in the backward of every binary op.
    VJP: gx = broadcast_to(gy, x.shape).
    """

    def forward(self, x):
        leading, kept = _sum_to_axes(x.shape, self.shape)
        y = x.sum(axis=leading + kept, keepdims=True) if leading or kept else x
        return y.reshape(self.shape)

    def backward(self, gy):
        return broadcast_to(gy, self.inputs[0].shape)


def sum_to(x, shape) -> Tensor:
    return SumTo.of(x, shape)


def _index_to_arrays(index, xp):
    """Turn tensors and lists inside an index into backend arrays."""
    if not isinstance(index, tuple):
        index = (index,)
    converted = []
    for item in index:
        if isinstance(item, Tensor):
            item = item.data
        elif isinstance(item, list):
            item = xp.asarray(item)
        converted.append(item)
    return tuple(converted)


def _is_basic(index) -> bool:
    """True when the index has only ints, slices, None and Ellipsis (no repeated entries)."""
    return all(i is None or i is Ellipsis or isinstance(i, (int, slice)) for i in index)


class GetItem(Function):
    """y = x[index], for ints, slices, None, Ellipsis, integer arrays and boolean masks.

    VJP: gx = zeros(x.shape) with gy scattered back: gx[index] += gy (indices that repeat add).
    """

    def __init__(self, index):
        self.index = index

    def forward(self, x):
        return x[self.index]

    def backward(self, gy):
        return IndexAdd(self.index, self.inputs[0].shape)(gy)


class IndexAdd(Function):
    """y = zeros(shape) with y[index] += g: the scatter that getitem's backward needs.

    VJP: gg = gy[index] (this is getitem again, so double backward closes the loop).
    """

    def __init__(self, index, shape):
        self.index, self.shape = index, shape

    def forward(self, g):
        y = backend.xp_of(g).zeros(self.shape, dtype=g.dtype)
        if _is_basic(self.index):
            y[self.index] = g
        else:
            backend.scatter_add(y, self.index, g)
        return y

    def backward(self, gy):
        return GetItem(self.index)(gy)


def getitem(x, index) -> Tensor:
    return GetItem(_index_to_arrays(index, backend.xp_of(x.data)))(x)


class Concatenate(Function):
    """y = the inputs joined along ``axis``.

    VJP: the i-th input gets the slice of gy that it filled.
    """

    def __init__(self, axis):
        self.axis = axis

    def forward(self, *xs):
        return backend.xp_of(xs[0]).concatenate(xs, axis=self.axis)

    def backward(self, gy):
        grads, start = [], 0
        for x, needed in zip(self.inputs, self.needs_input_grad):
            stop = start + x.shape[self.axis]
            index = (slice(None),) * self.axis + (slice(start, stop),)
            grads.append(GetItem(index)(gy) if needed else None)
            start = stop
        return tuple(grads)


def cat(tensors, dim: int = 0) -> Tensor:
    """Join tensors of equal shape except along ``dim``."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat() needs at least one tensor")
    ndim = tensors[0].ndim
    if ndim == 0:
        raise ValueError("cat() cannot join 0-d tensors; use stack()")
    axis = normalize_axis(dim, ndim)
    for t in tensors[1:]:
        if (
            t.ndim != ndim
            or t.shape[:axis] + t.shape[axis + 1 :] != tensors[0].shape[:axis] + tensors[0].shape[axis + 1 :]
        ):
            shapes = ", ".join(str(u.shape) for u in tensors)
            raise ValueError(f"cat() along dim {dim} needs equal shapes elsewhere; got {shapes}")
    return Concatenate(axis)(*tensors)


def unsqueeze(x, dim: int) -> Tensor:
    """x with a new axis of length 1 at position ``dim``."""
    dim = normalize_axis(dim, x.ndim + 1)
    return reshape(x, x.shape[:dim] + (1,) + x.shape[dim:])


def stack(tensors, dim: int = 0) -> Tensor:
    """Join tensors of one shape along a new axis ``dim``."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack() needs at least one tensor")
    shapes = {t.shape for t in tensors}
    if len(shapes) > 1:
        raise ValueError(f"stack() needs tensors of one shape; got {', '.join(map(str, shapes))}")
    dim = normalize_axis(dim, tensors[0].ndim + 1)
    return Concatenate(dim)(*(unsqueeze(t, dim) for t in tensors))


def squeeze(x, dim: int | None = None) -> Tensor:
    """x without its size-1 axes (or only axis ``dim``, when it has size 1)."""
    if dim is None:
        shape = tuple(n for n in x.shape if n != 1)
    else:
        dim = normalize_axis(dim, x.ndim)
        shape = x.shape[:dim] + x.shape[dim + 1 :] if x.ndim and x.shape[dim] == 1 else x.shape
    return reshape(x, shape)


def flatten(x, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """x with dimensions ``start_dim``..``end_dim`` merged into one."""
    if x.ndim == 0:
        return reshape(x, (1,))
    start, end = normalize_axis(start_dim, x.ndim), normalize_axis(end_dim, x.ndim)
    if start > end:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} (shape {x.shape})")
    merged = 1
    for n in x.shape[start : end + 1]:
        merged *= n
    return reshape(x, x.shape[:start] + (merged,) + x.shape[end + 1 :])


class Pad(Function):
    """y = x surrounded by ``value``: widths[i] = (before, after) entries along axis i.

    VJP: gx = the centre of gy, the slice where x was copied.
    """

    def __init__(self, widths, value):
        self.widths, self.value = widths, value

    def forward(self, x):
        return backend.xp_of(x).pad(x, self.widths, mode="constant", constant_values=self.value)

    def backward(self, gy):
        index = tuple(slice(before, n - after) for (before, after), n in zip(self.widths, gy.shape))
        return GetItem(index)(gy)


def pad(x, pad, value: float = 0.0) -> Tensor:
    """Pad with a constant, PyTorch's order: ``pad=(left, right, top, bottom, ...)`` from the last dim.

    Only non-negative widths (PyTorch crops with negative ones; use slicing for that).
    """
    pad = tuple(int(p) for p in pad)
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ValueError(f"pad needs pairs for at most {x.ndim} dims of shape {x.shape}; got {pad}")
    if any(p < 0 for p in pad):
        raise ValueError(f"pad widths must be non-negative; got {pad}")
    widths = [(0, 0)] * x.ndim
    for i in range(len(pad) // 2):
        widths[x.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    return Pad(tuple(widths), value)(x)


class Convert(Function):
    """y = x on another device and/or with another dtype (same values, rounded to the dtype).

    VJP: gx = gy converted back to x's device and dtype.
    """

    def __init__(self, device, dtype):
        self.device, self.dtype = device, dtype

    def forward(self, x):
        y = backend.to_device(x, self.device) if self.device else x
        return y.astype(self.dtype, copy=False) if self.dtype is not None else y

    def backward(self, gy):
        x = self.inputs[0]
        return Convert(x.device, x.dtype)(gy)


def to(x, device=None, dtype=None) -> Tensor:
    """x on ``device`` with ``dtype`` (either may be omitted); x itself when nothing changes.

    Like PyTorch's ``.to``, the copy is differentiable: the gradient flows back to x.
    """
    if device is not None and dtype is None and not isinstance(device, str):
        device, dtype = None, device  # x.to(minigen.float64), as PyTorch's x.to(torch.float64)
    if device is not None:
        device = backend.normalize_device(device)
        backend.array_module(device)
        if device == x.device:
            device = None
    if dtype is not None:
        dtype = backend.as_dtype(dtype)
        if dtype == x.dtype:
            dtype = None
    if device is None and dtype is None:
        return x
    if dtype is not None and dtype.kind != "f":
        x = x.detach()  # integer and boolean tensors carry no gradient
    return Convert(device, dtype)(x)
