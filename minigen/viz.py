"""Pictures of what a generative model learned: sample grids, reconstructions, loss curves,
latent interpolations and manifolds, and 2-D scatter plots, each written to a PNG file.

Drawing uses matplotlib's object API (``Figure`` with an Agg canvas), never ``pyplot``: no
window opens, no global figure list grows, and the caller's matplotlib backend is left alone.
Every file is written atomically (a temporary file beside it, then a rename), so a crash or
an error while drawing leaves the previous picture intact and never a half-written one.
"""

from __future__ import annotations

import math
import numbers
import os
from statistics import NormalDist

import numpy
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

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
