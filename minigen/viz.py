"""Pictures of what a generative model learned: sample grids, reconstructions, loss curves,
latent interpolations and manifolds, and 2-D scatter plots, each written to a PNG file; and
the autograd graph recorded for a tensor, drawn (``draw_graph``) or as Graphviz text (``to_dot``).

Drawing uses matplotlib's object API (``Figure`` with an Agg canvas), never ``pyplot``: no
window opens, no global figure list grows, and the caller's matplotlib backend is left alone.
Every file is written atomically (a temporary file beside it, then a rename), so a crash or
an error while drawing leaves the previous picture intact and never a half-written one.
"""

from __future__ import annotations

import bisect
import collections
import functools
import itertools
import math
import numbers
import os
from statistics import NormalDist
from typing import NamedTuple

import numpy
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch
from matplotlib.path import Path
from matplotlib.textpath import text_to_path

from minigen import backend
from minigen.autograd import no_grad
from minigen.creation import tensor
from minigen.io import atomic_write
from minigen.tensor import Tensor

DPI = 100  # plots: matplotlib's usual scale, fonts in points
# Pixel-exact pictures: a power of two, so that (pixels / dpi) * dpi is exact in floating point
# (at 100 dpi, 29 px becomes 28.999... and the top row of the image is lost).
PICTURE_DPI = 128
TITLE_FONT_PIXELS = 14
GRID_PIXELS = 400  # small grids (8x8 digits) are enlarged by whole factors up to about this size
TITLE_PIXELS = 24  # the band above an image grid that holds its title


# --- writing files ---------------------------------------------------------------------------


def _figure(width: float, height: float, dpi: int = DPI) -> Figure:
    """A figure of ``width`` x ``height`` pixels drawn by Agg (no pyplot, no window)."""
    figure = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    FigureCanvasAgg(figure)
    return figure


def _write_png(figure: Figure, path) -> str:
    """Render ``figure`` to ``path`` atomically (see ``minigen.io.atomic_write``)."""
    with atomic_write(path) as file:
        figure.savefig(file, format="png", dpi=figure.dpi)
    return os.fspath(path)


# --- images ------------------------------------------------------------------------------------


def _host(values) -> numpy.ndarray:
    """A NumPy copy of a Tensor, a NumPy or CuPy array, or nested lists."""
    if isinstance(values, Tensor):
        values = values.data
    return numpy.array(backend.to_host(values) if hasattr(values, "dtype") else values, dtype=numpy.float64)


def _images(images, what: str = "images") -> numpy.ndarray:
    """``images`` as a float64 (N, C, H, W) host array, checked: C is 1 or 3, values in [0, 1]."""
    array = _host(images)
    if array.ndim != 4:
        raise ValueError(f"{what} must be a batch of shape (N, C, H, W); got shape {array.shape}")
    if array.shape[1] not in (1, 3):
        raise ValueError(
            f"{what} must have 1 (gray) or 3 (RGB) channels in dim 1; got shape {array.shape} "
            "(images are NCHW)"
        )
    if array.shape[0] == 0:
        raise ValueError(f"{what} is an empty batch (shape {array.shape})")
    if not numpy.isfinite(array).all():
        raise ValueError(f"{what} contain NaN or infinite values")
    low, high = array.min(), array.max()
    if low < 0.0 or high > 1.0:
        raise ValueError(
            f"{what} must have values in [0, 1]; got min {low:.4g}, max {high:.4g} "
            "(for Bernoulli logits pass sigmoid(logits))"
        )
    return array


def _tile(images: numpy.ndarray, nrow: int, padding: int, pad_value: float) -> numpy.ndarray:
    """Lay (N, C, H, W) images out ``nrow`` to a row, as one (rows*(H+p)+p, nrow*(W+p)+p, 3) picture.

    Image i sits at row i // nrow, column i % nrow, its top-left pixel at
    (p + row*(H+p), p + column*(W+p)); padding and empty cells hold ``pad_value``.
    """
    n, _, h, w = images.shape
    rows = math.ceil(n / nrow)
    grid = numpy.full((rows * (h + padding) + padding, nrow * (w + padding) + padding, 3), float(pad_value))
    for i, image in enumerate(images):
        top, left = padding + (i // nrow) * (h + padding), padding + (i % nrow) * (w + padding)
        grid[top : top + h, left : left + w] = image.transpose(1, 2, 0)  # gray broadcasts to RGB
    return grid


def _save_picture(picture: numpy.ndarray, path, title: str | None, scale: int | None) -> str:
    """Write an (H, W, 3) picture in [0, 1] pixel for pixel, enlarged ``scale`` times, with a title above."""
    if scale is None:
        scale = max(1, GRID_PIXELS // max(picture.shape[:2]))
    if not isinstance(scale, numbers.Integral) or scale < 1:
        raise ValueError(f"scale must be a positive integer; got {scale!r}")
    picture = picture.repeat(scale, axis=0).repeat(scale, axis=1)
    height, width = picture.shape[:2]
    band = TITLE_PIXELS if title else 0
    figure = _figure(width, height + band, dpi=PICTURE_DPI)
    figure.figimage(picture, xo=0, yo=0, origin="upper")  # placed at pixel offsets, never resampled
    if title:
        size = TITLE_FONT_PIXELS * 72 / PICTURE_DPI  # points
        figure.text(0.5, 1 - band / 2 / (height + band), title, ha="center", va="center", fontsize=size)
    return _write_png(figure, path)


def image_grid(images, path, nrow=None, title=None, *, padding=2, pad_value=1.0, scale=None) -> str:
    """Write a grid of images to the PNG file ``path`` and return the path.

    ``images``: (N, C, H, W) values in [0, 1] (a Tensor on any device, or an array); C = 1
    is drawn gray, C = 3 as RGB. ``nrow`` images go in each row, as in torchvision's
    ``make_grid`` (default ceil(sqrt(N)), a square-ish grid). Tiles are separated by
    ``padding`` pixels of ``pad_value`` (white by default, so black backgrounds stay apart),
    and image i has its top-left pixel at (p + (i // nrow)(H + p), p + (i % nrow)(W + p)).
    The grid is drawn pixel for pixel, enlarged by the whole factor ``scale`` (default: the
    largest one that keeps its longer side within GRID_PIXELS, at least 1), with ``title`` above.
    """
    images = _images(images)
    if not isinstance(padding, numbers.Integral) or padding < 0:
        raise ValueError(f"padding must be a non-negative integer; got {padding!r}")
    if not 0.0 <= pad_value <= 1.0:
        raise ValueError(f"pad_value must lie in [0, 1]; got {pad_value!r}")
    if nrow is None:
        nrow = math.ceil(math.sqrt(len(images)))
    if not isinstance(nrow, numbers.Integral) or nrow < 1:
        raise ValueError(f"nrow (images per row) must be a positive integer; got {nrow!r}")
    return _save_picture(_tile(images, int(nrow), padding, pad_value), path, title, scale)


def reconstructions(originals, reconstructed, path, n=8, *, title=None, scale=None) -> str:
    """Write the first ``n`` originals with their reconstructions below them and return the path.

    Up to 8 images go in a row: a row of originals, then the row of their reconstructions,
    repeated for larger ``n`` (empty cells are white). Both batches are (N, C, H, W) in [0, 1].
    """
    originals, reconstructed = _images(originals, "originals"), _images(reconstructed, "reconstructed")
    if originals.shape[1:] != reconstructed.shape[1:]:
        raise ValueError(
            f"originals {originals.shape} and reconstructed {reconstructed.shape} hold images of "
            "different shapes"
        )
    available = min(len(originals), len(reconstructed))
    if not isinstance(n, numbers.Integral) or not 1 <= n <= available:
        raise ValueError(f"n must be an integer in [1, {available}] (the images given); got {n!r}")
    ncol = min(n, 8)
    pairs = math.ceil(n / ncol)
    shape = originals.shape[1:]
    blank = numpy.ones((pairs * ncol - n, *shape))
    rows = [
        numpy.concatenate([batch[:n], blank]).reshape(pairs, 1, ncol, *shape)
        for batch in (originals, reconstructed)
    ]
    cells = numpy.concatenate(rows, axis=1)  # (pair, originals | reconstructions, column, C, H, W)
    picture = _tile(cells.reshape(-1, *shape), ncol, 2, 1.0)
    return _save_picture(picture, path, title, scale)


# --- latent spaces -----------------------------------------------------------------------------


def _decode_grid(decode, z: numpy.ndarray, device, dtype) -> numpy.ndarray:
    """Decode the host latent codes ``z`` (M, D) in one batch, without recording a graph."""
    with no_grad():
        images = decode(tensor(z, dtype=dtype, device=device))
    return _images(images, "decoded images")


def _placement(z) -> tuple:
    """The device and dtype a given latent code lives on (a Tensor's own; else the defaults)."""
    if isinstance(z, Tensor) and z.dtype.kind == "f":
        return z.device, z.dtype
    return None, backend.float32


def latent_interpolation(decode, z_start, z_end, path, steps=10, *, title=None, scale=None) -> str:
    """Write the images decoded along straight lines in latent space and return the path.

    z_k = (1 - t_k) z_start + t_k z_end with t_k = k / (steps - 1), k = 0..steps-1: one row
    per pair of codes (``z_start`` and ``z_end`` are (D,) or (N, D)), from z_start on the
    left to z_end on the right. ``decode`` maps a (M, D) Tensor to (M, C, H, W) images in
    [0, 1] (e.g. ``lambda z: model.decode(z).sigmoid()``); the codes are made on the device
    and with the dtype of ``z_start`` when it is a Tensor.
    """
    start, end = _host(z_start), _host(z_end)
    if start.shape != end.shape or start.ndim not in (1, 2) or start.size == 0:
        raise ValueError(
            f"z_start and z_end must have the same shape, (D,) or (N, D); got {start.shape} and {end.shape}"
        )
    if not isinstance(steps, numbers.Integral) or steps < 2:
        raise ValueError(f"steps must be an integer >= 2 (both ends are drawn); got {steps!r}")
    start, end = start.reshape(-1, start.shape[-1]), end.reshape(-1, end.shape[-1])
    t = numpy.linspace(0.0, 1.0, steps)[None, :, None]
    z = ((1 - t) * start[:, None] + t * end[:, None]).reshape(-1, start.shape[-1])
    device, dtype = _placement(z_start)
    return _save_picture(_tile(_decode_grid(decode, z, device, dtype), steps, 2, 1.0), path, title, scale)


def latent_manifold(
    decode, path, n=15, extent=(0.05, 0.95), *, device=None, dtype=None, title=None, scale=None
) -> str:
    """Write the learned manifold of a 2-D latent space (Kingma & Welling 2013, figure 4).

    An n x n grid of evenly spaced probabilities u_j from extent[0] to extent[1] is mapped
    through the inverse CDF of N(0, 1), z = Phi^-1(u), so the grid covers equal prior mass
    per cell. The image at row i (from the top), column j decodes z = (z_j, z_{n-1-i}): z1
    grows to the right and z2 upwards. ``decode`` maps a (n*n, 2) Tensor (on ``device``, of
    ``dtype``: default device, float32) to images in [0, 1].
    """
    if not isinstance(n, numbers.Integral) or n < 2:
        raise ValueError(f"n must be an integer >= 2; got {n!r}")
    low, high = extent
    if not 0.0 < low < high < 1.0:
        raise ValueError(f"extent must be probabilities 0 < low < high < 1; got {extent!r}")
    values = numpy.array([NormalDist().inv_cdf(u) for u in numpy.linspace(low, high, n)])
    z1, z2 = numpy.meshgrid(values, values[::-1])  # row 0 holds the largest z2: up is up
    z = numpy.stack([z1.ravel(), z2.ravel()], axis=1)
    dtype = backend.float32 if dtype is None else dtype
    return _save_picture(_tile(_decode_grid(decode, z, device, dtype), n, 2, 1.0), path, title, scale)


# --- curves and points -------------------------------------------------------------------------


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def loss_curves(records, path, keys=None, *, title=None) -> str:
    """Plot training metrics and return the path.

    ``records`` are the lines of metrics.jsonl, dicts like {"epoch": 1, "step": 469,
    "loss": 97.2, "recon": 80.1, "kl": 17.1}. Each of ``keys`` (default: every numeric key
    but "step" and "epoch", in order of first appearance) becomes one labelled curve
    against "step" when the records have one, else "epoch", else the record's position.
    A record without a key leaves that point out; NaN and infinite values leave gaps.
    """
    if not isinstance(records, (list, tuple)) or not records or not all(isinstance(r, dict) for r in records):
        raise ValueError("records must be a non-empty list of dicts (the lines of metrics.jsonl)")
    counters = ("step", "epoch")
    x_key = next((k for k in counters if any(_is_number(r.get(k)) for r in records)), None)
    if keys is None:
        keys = list(dict.fromkeys(k for r in records for k, v in r.items() if _is_number(v)))
        keys = [k for k in keys if k not in counters]
        if not keys:
            raise ValueError("records have no numeric values to plot besides step and epoch")
    else:
        keys = [keys] if isinstance(keys, str) else list(keys)
        missing = [k for k in keys if not any(_is_number(r.get(k)) for r in records)]
        if missing:
            raise ValueError(f"no record has a numeric value for {missing}")
    figure = _figure(640, 400)
    axes = figure.add_subplot()
    for key in keys:
        points = [
            (r[x_key] if x_key else i + 1, float(r[key]))
            for i, r in enumerate(records)
            if _is_number(r.get(key)) and (x_key is None or _is_number(r.get(x_key)))
        ]
        x, y = numpy.array(points).T
        y[~numpy.isfinite(y)] = numpy.nan
        axes.plot(x, y, label=key, marker="o" if len(points) <= 20 else None, markersize=3)
    axes.set_xlabel(x_key or "record")
    axes.grid(alpha=0.3)
    axes.legend()
    if title:
        axes.set_title(title)
    figure.tight_layout()
    return _write_png(figure, path)


def _points(points, label) -> numpy.ndarray:
    array = _host(points)
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(f"the points of snapshot {label!r} must have shape (N, 2); got {array.shape}")
    return array


def ring_scatter(snapshots, path, modes=None, *, title=None) -> str:
    """Scatter 2-D samples, one panel per snapshot, and return the path.

    ``snapshots`` is a list of (label, (N, 2) points) pairs, e.g. one per epoch, so mode
    collapse shows as the points gathering on a few modes. ``modes`` (K, 2), when given, are
    marked with red crosses and fix the view to their extent (so panels compare); otherwise
    the view covers all points. Panels go five to a row.
    """
    if not isinstance(snapshots, (list, tuple)) or not snapshots:
        raise ValueError("snapshots must be a non-empty list of (label, points) pairs")
    if not all(isinstance(s, (list, tuple)) and len(s) == 2 for s in snapshots):
        raise ValueError("each snapshot must be a (label, points) pair")
    panels = [(str(label), _points(points, label)) for label, points in snapshots]
    if modes is not None:
        modes = _points(modes, "modes")
        reach = 1.5 * numpy.abs(modes).max() or 1.0
        limits = (-reach, reach), (-reach, reach)
    else:
        everything = numpy.concatenate([p for _, p in panels])
        finite = everything[numpy.isfinite(everything).all(axis=1)]
        low, high = (finite.min(axis=0), finite.max(axis=0)) if len(finite) else ((-1, -1), (1, 1))
        margin = 0.1 * numpy.maximum(high - low, 1e-3)
        limits = (low[0] - margin[0], high[0] + margin[0]), (low[1] - margin[1], high[1] + margin[1])
    ncol = min(len(panels), 5)
    nrows = math.ceil(len(panels) / ncol)
    figure = _figure(260 * ncol, 260 * nrows + (30 if title else 0))
    for i, (label, points) in enumerate(panels):
        axes = figure.add_subplot(nrows, ncol, i + 1)
        axes.scatter(points[:, 0], points[:, 1], s=4, alpha=0.4, color="tab:blue", linewidths=0)
        if modes is not None:
            axes.scatter(modes[:, 0], modes[:, 1], s=40, marker="x", color="red", linewidths=1.5)
        axes.set_xlim(*limits[0])
        axes.set_ylim(*limits[1])
        axes.set_aspect("equal")
        axes.set_title(label, fontsize=10)
        axes.tick_params(labelsize=7)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return _write_png(figure, path)


# --- autograd graphs ---------------------------------------------------------------------------

GRAPH_DPI = 144  # two pixels a point: the layout is computed in points (1/72 inch)
# Agg refuses 2^16 pixels a side, and a PNG of more than ~2^24 pixels takes seconds to encode: a
# graph that large is drawn at a lower dpi (its layout, in points, stays the same).
MAX_GRAPH_PIXELS, MAX_GRAPH_AREA = 2**15, 2**24
NODE_FONT, SHAPE_FONT = 9, 7  # points: node labels, the shapes on the edges
NODE_HEIGHT, NODE_PAD = 18.0, 6.0  # points: every node's height, the room either side of its label
ROW_GAP, CURVE_ROOM = 10.0, 24.0  # points between the nodes of a layer; the width of an edge's curve
MARGIN, TITLE_BAND, LEGEND_BAND = 8.0, 22.0, 22.0  # points

# kind: fill, edge colour, line width, line style, what the legend calls it
NODE_STYLES = {
    "function": ("#dde8f5", "#3b5b7f", 1.0, "solid", "Function"),
    "leaf": ("#bfe3b4", "#2e6b2e", 2.0, "solid", "leaf that requires grad"),
    "constant": ("#ffffff", "#7f7f7f", 1.0, "dashed", "constant"),
    "tensor": ("#f5e6c8", "#806a3c", 1.0, "solid", "tensor"),
    "output": ("#f7c59f", "#a0522d", 2.0, "solid", "output"),
    "freed": ("#ffffff", "#a0a0a0", 1.0, "dotted", "output freed"),
}
_RELEASED = (
    "cannot draw this graph: its {} node was released by backward(), which drops the inputs each node "
    "held; draw the graph before calling backward(), or pass retain_graph=True to backward()"
)


class Graph(NamedTuple):
    """A recorded graph as plain data: node i has ``kinds[i]`` (a key of NODE_STYLES) and
    ``labels[i]``; each edge (source, target, shape text) says that source feeds target; the
    ``roots`` are the nodes of the tensors the graph was drawn for."""

    kinds: list
    labels: list
    edges: list
    roots: list


def _roots(tensors) -> list:
    if isinstance(tensors, Tensor):
        return [tensors]
    roots = list(tensors) if isinstance(tensors, (list, tuple)) else []
    if not roots or not all(isinstance(t, Tensor) for t in roots):
        raise TypeError(f"expected a Tensor or a non-empty sequence of Tensors; got {tensors!r:.80}")
    return roots


def _names(names) -> dict:
    """{id(tensor): name} from a mapping tensor -> name, or name -> tensor (``named_parameters()``)."""
    named = {}
    for key, value in (names or {}).items():
        tensor_, name = (key, value) if isinstance(key, Tensor) else (value, key)
        if not isinstance(tensor_, Tensor) or not isinstance(name, str):
            raise TypeError(f"names must map tensors to strings (or strings to tensors); got {key!r:.40}")
        named[id(tensor_)] = name
    return named


def _walk(roots) -> tuple:
    """Every tensor and Function node that ``roots`` were computed from, each once (by identity).

    An iterative depth-first search from the roots through ``creator`` and each node's inputs;
    a node's other outputs are collected too, when they are still alive.
    """
    tensors, functions = {id(t): t for t in roots}, {}
    stack = list(reversed(roots))
    while stack:
        node = stack.pop().creator
        if node is None or id(node) in functions:
            continue
        if node.released:
            raise RuntimeError(_RELEASED.format(type(node).__name__))
        functions[id(node)] = node
        for y in (ref() for ref in node.outputs):
            if y is not None:
                tensors.setdefault(id(y), y)
        fresh = [x for x in node.inputs if id(x) not in tensors]
        tensors.update((id(x), x) for x in fresh)
        stack.extend(reversed(fresh))
    return tensors, functions


def _shape_text(shape) -> str:
    return str(tuple(int(n) for n in shape))


def _tensor_node(t: Tensor, is_root: bool, name) -> tuple:
    """(kind, label): a one-element constant unnamed is labelled with its value."""
    if t.creator is not None:
        kind = "output" if is_root else "tensor"
    else:
        kind = "leaf" if t.requires_grad else "constant"
    if name is None and kind == "constant" and t.numel() == 1:
        name = f"{t.item():.4g}"
    return kind, name or ""


def _graph(tensors, names=None) -> Graph:
    """The graph that produced ``tensors`` as a ``Graph``: tensors first, then Function nodes."""
    roots = _roots(tensors)
    found, functions = _walk(roots)
    named, root_ids = _names(names), {id(t) for t in roots}
    nodes = [_tensor_node(t, key in root_ids, named.get(key)) for key, t in found.items()]
    number = {key: i for i, key in enumerate(found)}
    edges = []
    for node in functions.values():
        f = len(nodes)
        nodes.append(("function", type(node).__name__))
        edges.extend((number[id(x)], f, _shape_text(x.shape)) for x in node.inputs)
        for i, ref in enumerate(node.outputs):
            y = ref()
            if y is None:  # an unused output of a multi-output node, already freed
                edges.append((f, len(nodes), _shape_text(node.output_specs[i][0])))
                nodes.append(("freed", "(freed)"))
            else:
                edges.append((f, number[id(y)], _shape_text(y.shape)))
    kinds, labels = (list(column) for column in zip(*nodes))
    return Graph(kinds, labels, edges, [number[id(t)] for t in roots])


# --- layered layout: layers, crossings, coordinates ---------------------------------------------


def layers(count: int, edges, roots) -> list:
    """Longest-path layering: ``layers(...)[v]`` is the layer of node v, the roots at layer 0.

    ``edges`` are (source, target) pairs of nodes 0..count-1 of a directed acyclic graph, a
    source feeding its target. Every other node is at 1 + the largest layer of the nodes it
    feeds, so each edge runs from a higher layer to a lower one and a node sits as near the
    output as its farthest use allows. A node that feeds nothing and is no root (an unused
    output) goes one layer below the node that made it.
    """
    consumers, producers = [[] for _ in range(count)], [[] for _ in range(count)]
    for source, target in edges:
        consumers[source].append(target)
        producers[target].append(source)
    root_set = set(roots)
    layer = [0 if v in root_set else None for v in range(count)]
    pending = [len(c) for c in consumers]
    ready = [v for v in range(count) if not pending[v]]
    while ready:  # Kahn's algorithm from the outputs back: a node's consumers are all placed first
        v = ready.pop()
        for u in producers[v]:
            if layer[v] is not None:
                layer[u] = layer[v] + 1 if layer[u] is None else max(layer[u], layer[v] + 1)
            pending[u] -= 1
            if not pending[u]:
                ready.append(u)
    for v in range(count):
        if layer[v] is None:
            layer[v] = max([layer[u] - 1 for u in producers[v] if layer[u] is not None] + [0])
    return layer


def _chains(layer: list, edges) -> tuple:
    """Split each edge longer than one layer with a dummy node per layer it crosses.

    Returns the layers of all nodes (the dummies appended) and, per edge, its chain of nodes
    from source to target, each step joining adjacent layers.
    """
    layer, chains = list(layer), []
    for source, target in edges:
        chain = [source]
        for level in range(layer[source] - 1, layer[target], -1):
            chain.append(len(layer))
            layer.append(level)
        chains.append(chain + [target])
    return layer, chains


def crossings(rows: list, down: list) -> int:
    """How many pairs of edges cross between adjacent layers drawn in the orders ``rows``.

    ``rows[l]`` lists the nodes of layer l top to bottom, ``down[v]`` the neighbours of v in
    the layer below. Two edges (a, b), (c, d) cross when a is above c and b below d: the
    inversions of the targets' positions once the edges are sorted by source, counted with bisect.
    """
    total = 0
    for upper, lower in zip(rows[1:], rows[:-1]):
        position = {v: i for i, v in enumerate(lower)}
        seen = []
        for target in (position[b] for a in upper for b in sorted(down[a], key=position.get)):
            total += len(seen) - bisect.bisect_right(seen, target)
            bisect.insort(seen, target)
    return total


def _sort_by_barycentre(row: list, fixed: list, neighbours: list) -> None:
    """Sort ``row`` by the mean position of each node's neighbours in the ``fixed`` layer
    (a node with none keeps its relative place)."""
    position = {v: i for i, v in enumerate(fixed)}
    scale = len(fixed) / max(len(row), 1)

    def barycentre(item):
        i, v = item
        near = [position[u] for u in neighbours[v]]
        return (sum(near) / len(near) if near else i * scale), i

    row[:] = [v for _, v in sorted(enumerate(row), key=barycentre)]


def order_layers(layer: list, links, sweeps: int = 8) -> list:
    """The nodes of each layer, top to bottom, ordered to reduce crossings (Sugiyama et al. 1981).

    ``links`` are (upper, lower) pairs joining nodes of adjacent layers l + 1 and l. Starting
    from the nodes' numbering, each sweep sorts every layer by the barycentre (mean position)
    of its neighbours in the layer just sorted, from the output towards the inputs and back;
    the orders with the fewest crossings seen are kept.
    """
    rows = [[] for _ in range(max(layer) + 1)]
    for v, level in enumerate(layer):
        rows[level].append(v)
    up, down = [[] for _ in layer], [[] for _ in layer]
    for upper, lower in links:
        up[lower].append(upper)
        down[upper].append(lower)
    best, fewest = [list(row) for row in rows], crossings(rows, down)
    for _ in range(sweeps):
        if not fewest:
            break
        for level in range(1, len(rows)):
            _sort_by_barycentre(rows[level], rows[level - 1], down)
        for level in range(len(rows) - 2, -1, -1):
            _sort_by_barycentre(rows[level], rows[level + 1], up)
        count = crossings(rows, down)
        if count < fewest:
            best, fewest = [list(row) for row in rows], count
    return best


def _spread(wanted: list, gaps: list) -> list:
    """Positions p closest to ``wanted`` in least squares with p[i+1] - p[i] >= gaps[i].

    With offsets o_i = gaps[0] + ... + gaps[i-1], q_i = p_i - o_i must be non-decreasing: an
    isotonic regression of wanted_i - o_i, solved by pooling adjacent violators.
    """
    offsets = list(itertools.accumulate(gaps, initial=0.0))
    blocks = []  # [mean, count] of pooled runs
    for w, o in zip(wanted, offsets):
        blocks.append([w - o, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            mean, count = blocks.pop()
            total = blocks[-1][1] + count
            blocks[-1] = [(blocks[-1][0] * blocks[-1][1] + mean * count) / total, total]
    pooled = [mean for mean, count in blocks for _ in range(count)]
    return [q + o for q, o in zip(pooled, offsets)]


@functools.lru_cache(maxsize=4096)
def _text_width(text: str, size: float) -> float:
    """The width in points of ``text`` in matplotlib's default font at ``size`` points."""
    return text_to_path.get_text_width_height_descent(text, FontProperties(size=size), ismath=False)[0]


class Layout(NamedTuple):
    """Where ``draw_graph`` puts things, in points from the bottom-left corner: the centre and
    width of every node (the dummies of long edges included, width 0), the points each edge
    passes through, where each edge's shape is written (None where another edge out of the
    same tensor already says it), the layer of every node and the size of the drawing."""

    centres: list
    widths: list
    routes: list
    labels: list
    layer: list
    size: tuple


def _columns(layer: list, widths: list, edges) -> tuple:
    """The x of each layer's centre (the deepest on the left), each column's width, the x where
    the straight runs leaving each layer end, and the width of the drawing.

    An edge leaves its source along a straight run that carries its shape, then curves into the
    next layer; the gap after layer l holds the widest shape leaving it and CURVE_ROOM.
    """
    depth = max(layer) + 1
    column, shapes = [0.0] * depth, [0.0] * depth
    for v, w in enumerate(widths):
        column[layer[v]] = max(column[layer[v]], w)
    for source, _, shape in edges:
        shapes[layer[source]] = max(shapes[layer[source]], _text_width(shape, SHAPE_FONT) + 2 * NODE_PAD)
    x, run_end, left = [0.0] * depth, [0.0] * depth, MARGIN
    for level in range(depth - 1, -1, -1):
        x[level] = left + column[level] / 2
        left += column[level]
        run_end[level] = left + shapes[level]
        left = run_end[level] + (CURVE_ROOM if level else 0.0)
    return x, column, run_end, left + MARGIN


def _rows_y(rows: list, heights: list, links) -> list:
    """Vertical centres (downwards): each layer keeps its order and its nodes ROW_GAP apart, and
    sweeps pull every node towards the mean height of its neighbours, so chains run straight."""
    near = [[] for _ in heights]
    for a, b in links:
        near[a].append(b)
        near[b].append(a)
    y = [0.0] * len(heights)
    gaps = [[(heights[a] + heights[b]) / 2 + ROW_GAP for a, b in zip(row, row[1:])] for row in rows]
    for row, gap in zip(rows, gaps):
        for v, p in zip(row, _spread([0.0] * len(row), gap)):
            y[v] = p
    order = list(range(1, len(rows))) + list(range(len(rows) - 2, -1, -1))
    for level in order * 4:
        wanted = [sum(y[u] for u in near[v]) / len(near[v]) if near[v] else y[v] for v in rows[level]]
        for v, p in zip(rows[level], _spread(wanted, gaps[level])):
            y[v] = p
    return y


def _route(chain: list, centres: list, widths: list, column: list, layer: list, run_end: list) -> list:
    """The points an edge passes: out of its source's right side along a straight run, then
    curving into each next layer, straight through the column of each dummy, into its target's left side."""
    (xs, ys), (xt, yt) = centres[chain[0]], centres[chain[-1]]
    points = [(xs + widths[chain[0]] / 2, ys), (run_end[layer[chain[0]]], ys)]
    for d in chain[1:-1]:
        half = column[layer[d]] / 2
        points += [(centres[d][0] - half, centres[d][1]), (centres[d][0] + half, centres[d][1])]
    return points + [(xt - widths[chain[-1]] / 2, yt)]


def _label_places(graph: Graph, routes: list, column_right: list, run_end: list, layer: list) -> list:
    """Where each edge's shape goes: on the straight run out of its source, once per tensor (its
    edges share the run and the shape); the outputs of a multi-output node, whose shapes differ,
    each at the middle of its first curve."""
    outputs = collections.Counter(source for source, _, _ in graph.edges if graph.kinds[source] == "function")
    places, labelled = [], set()
    for (source, _, _), points in zip(graph.edges, routes):
        if outputs[source] > 1:
            (x0, y0), (x1, y1) = points[1:3]
            places.append(((x0 + x1) / 2, (y0 + y1) / 2))
        elif source in labelled:
            places.append(None)
        else:
            labelled.add(source)
            places.append(((column_right[layer[source]] + run_end[layer[source]]) / 2, points[0][1]))
    return places


def layout(graph: Graph, top: float = 0.0, bottom: float = 0.0) -> Layout:
    """The layered drawing of ``graph``: outputs in the rightmost layer, inputs to the left.

    Longest-path layers (``layers``), dummy nodes on long edges, crossings reduced by
    barycentre sweeps (``order_layers``), then heights that line chains up (``_spread``);
    ``top`` and ``bottom`` points are kept free for a title and a legend.
    """
    count, pairs = len(graph.kinds), [edge[:2] for edge in graph.edges]
    layer, chains = _chains(layers(count, pairs, graph.roots), pairs)
    links = [(a, b) for chain in chains for a, b in zip(chain, chain[1:])]
    rows = order_layers(layer, links)
    widths = [max(NODE_HEIGHT, _text_width(label, NODE_FONT) + 2 * NODE_PAD) for label in graph.labels]
    widths += [0.0] * (len(layer) - count)
    heights = [NODE_HEIGHT] * count + [0.0] * (len(layer) - count)
    x, column, run_end, width = _columns(layer, widths, graph.edges)
    down = _rows_y(rows, heights, links)
    low = min(p - h / 2 for p, h in zip(down, heights))
    height = top + MARGIN + max(p + h / 2 for p, h in zip(down, heights)) - low + MARGIN + bottom
    centres = [(x[layer[v]], height - top - MARGIN - (down[v] - low)) for v in range(len(layer))]
    routes = [_route(chain, centres, widths, column, layer, run_end) for chain in chains]
    right = [c + w / 2 for c, w in zip(x, column)]
    labels = _label_places(graph, routes, right, run_end, layer)
    return Layout(centres, widths, routes, labels, layer, (width, height))


def _edge_path(points: list) -> Path:
    """Straight along the runs and through the columns that dummy nodes cross; across each gap
    between layers a cubic curve that leaves and arrives horizontally."""
    vertices, codes = [points[0]], [Path.MOVETO]
    for i, ((x0, y0), (x1, y1)) in enumerate(zip(points, points[1:])):
        if i % 2 == 0:
            vertices.append((x1, y1))
            codes.append(Path.LINETO)
        else:
            half = (x1 - x0) / 2
            vertices += [(x0 + half, y0), (x1 - half, y1), (x1, y1)]
            codes += [Path.CURVE4] * 3
    return Path(vertices, codes)


def _legend(figure: Figure, kinds: list) -> float:
    """A legend of the node kinds present along the bottom; returns its width in points."""
    present = [kind for kind in NODE_STYLES if kind in set(kinds)]
    handles = [
        Patch(facecolor=fill, edgecolor=edge, linewidth=width, linestyle=style, label=text)
        for fill, edge, width, style, text in (NODE_STYLES[kind] for kind in present)
    ]
    figure.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False, fontsize=8)
    return sum(_text_width(NODE_STYLES[kind][4], 8) + 8 * (2.0 + 0.8 + 2.0) for kind in present)


def _draw_edges(axes, graph: Graph, where: Layout) -> None:
    """Each edge as an arrow along its route, each shape on a white patch that hides the lines below."""
    for points in where.routes:
        arrow = FancyArrowPatch(path=_edge_path(points), arrowstyle="-|>", mutation_scale=8, color="0.35")
        axes.add_artist(arrow).set(linewidth=0.8, zorder=1)
    box = {"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none"}
    text = {"fontsize": SHAPE_FONT, "color": "0.25", "ha": "center", "va": "center", "parse_math": False}
    for (_, _, shape), place in zip(graph.edges, where.labels):
        if place is not None:
            axes.text(*place, shape, bbox=box, zorder=2, **text)


def _draw_nodes(axes, graph: Graph, where: Layout) -> None:
    """Function nodes as square boxes, tensors as boxes with round ends, styled by NODE_STYLES."""
    for v, (kind, label) in enumerate(zip(graph.kinds, graph.labels)):
        fill, edge, line_width, style, _ = NODE_STYLES[kind]
        (x, y), w = where.centres[v], where.widths[v]
        shape = "square,pad=0" if kind == "function" else f"round,pad=0,rounding_size={NODE_HEIGHT / 2}"
        patch = FancyBboxPatch((x - w / 2, y - NODE_HEIGHT / 2), w, NODE_HEIGHT, boxstyle=shape)
        axes.add_artist(patch).set(facecolor=fill, edgecolor=edge, linewidth=line_width, linestyle=style)
        patch.set_zorder(3)
        axes.text(x, y, label, fontsize=NODE_FONT, ha="center", va="center", zorder=4, parse_math=False)


def _draw_graph(graph: Graph, where: Layout, title, legend: bool) -> Figure:
    """The figure of ``graph`` laid out as ``where`` says, on axes whose unit is the point."""
    width, height = where.size
    figure = Figure()
    shown = max(width, _legend(figure, graph.kinds) if legend else 0.0)  # a wide legend widens the picture
    area = 72 * math.sqrt(MAX_GRAPH_AREA / (shown * height))
    figure.set_size_inches(shown / 72, height / 72)
    figure.set_dpi(min(GRAPH_DPI, MAX_GRAPH_PIXELS * 72 / max(shown, height), area))
    FigureCanvasAgg(figure)
    axes = figure.add_axes((0, 0, 1, 1))
    axes.set_xlim((width - shown) / 2, (width + shown) / 2)
    axes.set_ylim(0, height)
    axes.axis("off")
    _draw_edges(axes, graph, where)
    _draw_nodes(axes, graph, where)
    if title:
        axes.text(width / 2, height - TITLE_BAND / 2, title, fontsize=10, ha="center", va="center")
    return figure


def draw_graph(tensor, path=None, *, names=None, title=None, legend=True):
    """Draw the autograd graph recorded for ``tensor`` (or a list of tensors) with matplotlib.

    Function nodes are square boxes labelled with their class (``Mul``, ``Sum``), tensors are
    rounded boxes: the output orange, leaves that require grad green with a thick border,
    constants (leaves that do not) white and dashed, one-element constants labelled with their
    value, an unused output of a multi-output node that is already freed dotted. ``names``
    maps tensors to names (``{w: "w"}``, or the other way round, as in
    ``dict(model.named_parameters())``); an unnamed tensor has no label. Each edge carries the
    shape of the tensor it joins. Every tensor and node is drawn once, however often it is used.

    The layout is layered (``layout``): the output on the right, each node one layer to the
    left of its farthest use, crossings reduced by barycentre sweeps. A few hundred nodes take
    about a second. The graph must be drawn before ``backward()`` releases it (or with
    ``retain_graph=True``): a released graph no longer knows its inputs, and drawing it raises
    a RuntimeError that says so.

    Writes the PNG file ``path`` atomically and returns the path; with ``path=None`` returns
    the matplotlib Figure instead.
    """
    graph = _graph(tensor, names)
    where = layout(graph, TITLE_BAND if title else 0.0, LEGEND_BAND if legend else 0.0)
    figure = _draw_graph(graph, where, title, legend)
    return figure if path is None else _write_png(figure, path)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(tensor, *, names=None, title=None) -> str:
    """The graph ``draw_graph`` draws, as Graphviz DOT text (``dot -Tpng graph.dot -o graph.png``).

    One line per node, ``n3 [label="Mul", shape=box, class="function", ...]`` (``class`` is the
    kind: function, output, tensor, leaf, constant or freed; the colours are draw_graph's), then
    one line per edge, ``n1 -> n3 [label="(2, 3)"]`` with the shape of the tensor it joins, in
    the order the graph was found from the output. Released graphs raise as in draw_graph.
    """
    graph = _graph(tensor, names)
    lines = [
        "digraph minigen {",
        "  rankdir=LR;",
        '  node [fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=8];',
    ]
    if title:
        lines.append(f"  label={_quote(title)};\n  labelloc=t;")
    for v, (kind, label) in enumerate(zip(graph.kinds, graph.labels)):
        fill, edge, width, style, _ = NODE_STYLES[kind]
        shape = "box" if kind == "function" else "ellipse"
        lines.append(
            f'  n{v} [label={_quote(label)}, shape={shape}, class="{kind}", style="filled,{style}", '
            f'fillcolor="{fill}", color="{edge}", penwidth={width:g}];'
        )
    lines += [f"  n{source} -> n{target} [label={_quote(shape)}];" for source, target, shape in graph.edges]
    return "\n".join(lines + ["}"]) + "\n"
