"""minigen.viz: every picture is a valid PNG with the documented geometry, written atomically.

PNGs are read back with matplotlib.image.imread (RGBA floats in [0, 1]); image grids are drawn
pixel for pixel, so a tile's pixels must equal the input image (to 8-bit rounding).
"""

import math
import os
import re
import subprocess
import sys

import matplotlib.image
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from matplotlib.figure import Figure

import minigen
from minigen import viz
from minigen.autograd import Function

EIGHT_BIT = 1 / 255 + 1e-6  # PNG stores 8 bits per channel


def read_rgb(path):
    picture = matplotlib.image.imread(path)
    assert picture.dtype == np.float32 and picture.ndim == 3 and picture.shape[2] == 4
    assert picture.min() >= 0.0 and picture.max() <= 1.0
    assert np.all(picture[..., 3] == 1.0), "pictures are opaque"
    return picture[..., :3].astype(np.float64)


def expected_grid(images, nrow, padding, pad_value):
    """The documented layout, written out as loops: image i at row i // nrow, column i % nrow."""
    n, c, h, w = images.shape
    rows = math.ceil(n / nrow)
    grid = np.full((rows * (h + padding) + padding, nrow * (w + padding) + padding, 3), pad_value)
    for i in range(n):
        top = padding + (i // nrow) * (h + padding)
        left = padding + (i % nrow) * (w + padding)
        for y in range(h):
            for x in range(w):
                for channel in range(3):
                    grid[top + y, left + x, channel] = images[i, channel if c == 3 else 0, y, x]
    return grid


def leftover_files(directory):
    return sorted(name for name in os.listdir(directory) if name.endswith(".tmp"))


# --- image grids ---------------------------------------------------------------------------------


@given(
    n=st.integers(1, 7),
    channels=st.sampled_from([1, 3]),
    size=st.tuples(st.integers(1, 5), st.integers(1, 5)),
    nrow=st.integers(1, 4),
    padding=st.integers(0, 2),
    pad_value=st.sampled_from([0.0, 1.0, 0.6]),
    seed=st.integers(0, 2**16),
)
def test_image_grid_draws_each_tile_pixel_for_pixel_where_documented(
    tmp_path_factory, n, channels, size, nrow, padding, pad_value, seed
):
    images = np.random.default_rng(seed).random((n, channels, *size))
    path = tmp_path_factory.mktemp("grid") / "grid.png"
    returned = viz.image_grid(images, path, nrow=nrow, padding=padding, pad_value=pad_value, scale=1)
    assert returned == str(path)
    np.testing.assert_allclose(
        read_rgb(path), expected_grid(images, nrow, padding, pad_value), atol=EIGHT_BIT
    )


@pytest.mark.parametrize("height", [29, 57, 58, 113, 1001])
def test_every_row_is_drawn_whatever_the_picture_size(tmp_path, height):
    # 29 / 100 * 100 is 28.999... in floating point: at 100 dpi the top row went missing.
    images = np.zeros((1, 1, height, 3))
    picture = read_rgb(viz.image_grid(images, tmp_path / "g.png", padding=0, scale=1))
    assert picture.shape == (height, 3, 3) and picture.max() == 0.0


def test_a_white_tile_lands_in_the_second_row_third_column(tmp_path):
    images = np.zeros((7, 1, 4, 3))
    images[5] = 1.0  # row 1, column 2 with three images to a row
    picture = read_rgb(viz.image_grid(images, tmp_path / "g.png", nrow=3, padding=1, pad_value=0.0, scale=1))
    assert picture.shape == (3 * 5 + 1, 3 * 4 + 1, 3)
    white = np.argwhere(picture[..., 0] == 1.0)
    assert white.min(axis=0).tolist() == [1 + 5, 1 + 2 * 4]
    assert white.max(axis=0).tolist() == [1 + 5 + 3, 1 + 2 * 4 + 2]
    assert len(white) == 12


def test_image_grid_default_is_square_ish_and_small_images_are_enlarged(tmp_path):
    images = minigen.rand(10, 1, 8, 8)  # a Tensor works as well as an array
    picture = read_rgb(viz.image_grid(images, tmp_path / "g.png", padding=2))
    side = 4 * 10 + 2  # ceil(sqrt(10)) = 4 to a row, 3 rows
    scale = viz.GRID_PIXELS // side
    assert picture.shape == (3 * 10 * scale + 2 * scale, side * scale, 3)
    expected = expected_grid(images.numpy(), 4, 2, 1.0).repeat(scale, axis=0).repeat(scale, axis=1)
    np.testing.assert_allclose(picture, expected, atol=EIGHT_BIT)


def test_image_grid_title_adds_a_band_above_and_leaves_the_grid_alone(tmp_path):
    images = np.zeros((4, 1, 6, 6))
    plain = read_rgb(viz.image_grid(images, tmp_path / "plain.png", scale=3))
    titled = read_rgb(viz.image_grid(images, tmp_path / "titled.png", scale=3, title="epoch 7"))
    assert titled.shape == (plain.shape[0] + viz.TITLE_PIXELS, plain.shape[1], 3)
    np.testing.assert_array_equal(titled[viz.TITLE_PIXELS :], plain)
    band = titled[: viz.TITLE_PIXELS]
    assert band.max() == 1.0 and band.min() < 0.5, "dark text on a white band"


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (np.zeros((2, 8, 8)), r"\(N, C, H, W\)"),
        (np.zeros((2, 2, 8, 8)), "1 \\(gray\\) or 3 \\(RGB\\) channels"),
        (np.zeros((0, 1, 8, 8)), "empty"),
        (np.full((2, 1, 4, 4), 1.5), r"values in \[0, 1\]; got min 1.5, max 1.5"),
        (np.full((2, 1, 4, 4), -0.25), r"values in \[0, 1\]"),
        (np.full((2, 1, 4, 4), np.nan), "NaN"),
    ],
)
def test_image_grid_rejects_bad_images_with_a_clear_error(tmp_path, images, message):
    with pytest.raises(ValueError, match=message):
        viz.image_grid(images, tmp_path / "bad.png")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"nrow": 0}, "nrow"),
        ({"padding": -1}, "padding"),
        ({"pad_value": 2.0}, "pad_value"),
        ({"scale": 0}, "scale"),
    ],
)
def test_image_grid_rejects_bad_options(tmp_path, options, message):
    with pytest.raises(ValueError, match=message):
        viz.image_grid(np.zeros((2, 1, 4, 4)), tmp_path / "bad.png", **options)


# --- reconstructions -----------------------------------------------------------------------------


def constant_images(values, size=3):
    return np.asarray(values, dtype=np.float64)[:, None, None, None] * np.ones((1, 1, size, size))


def tile_values(picture, rows, cols, size=3, padding=2):
    """The value of each (constant) tile of a grid drawn with scale 1."""
    return np.array(
        [
            [picture[padding + r * (size + padding), padding + c * (size + padding), 0] for c in range(cols)]
            for r in range(rows)
        ]
    )


def test_reconstructions_put_each_original_above_its_reconstruction(tmp_path):
    originals = constant_images(np.arange(10) / 20)
    reconstructed = constant_images(0.5 + np.arange(10) / 20)
    picture = read_rgb(viz.reconstructions(originals, reconstructed, tmp_path / "r.png", n=10, scale=1))
    assert picture.shape == (4 * 5 + 2, 8 * 5 + 2, 3)  # two pairs of rows, eight to a row
    expected = np.ones((4, 8))  # empty cells are white
    expected[0], expected[1] = np.arange(8) / 20, 0.5 + np.arange(8) / 20
    expected[2, :2], expected[3, :2] = np.arange(8, 10) / 20, 0.5 + np.arange(8, 10) / 20
    np.testing.assert_allclose(tile_values(picture, 4, 8), expected, atol=EIGHT_BIT)


def test_reconstructions_default_shows_eight_pairs(tmp_path):
    images = np.random.default_rng(0).random((20, 1, 3, 3))
    picture = read_rgb(viz.reconstructions(images, images[::-1], tmp_path / "r.png", scale=1))
    np.testing.assert_allclose(
        picture, expected_grid(np.concatenate([images[:8], images[::-1][:8]]), 8, 2, 1.0), atol=EIGHT_BIT
    )


def test_reconstructions_reject_mismatched_batches(tmp_path):
    with pytest.raises(ValueError, match="different shapes"):
        viz.reconstructions(np.zeros((8, 1, 4, 4)), np.zeros((8, 1, 5, 5)), tmp_path / "r.png")
    with pytest.raises(ValueError, match=r"n must be an integer in \[1, 3\]"):
        viz.reconstructions(np.zeros((3, 1, 4, 4)), np.zeros((8, 1, 4, 4)), tmp_path / "r.png", n=4)


# --- latent spaces -------------------------------------------------------------------------------


class RecordingDecoder:
    """decode(z) -> 3x3 gray images whose value is sigmoid(sum of z); remembers what it saw."""

    def __init__(self):
        self.calls = []

    def __call__(self, z):
        self.calls.append((z.numpy().copy(), z.dtype, z.device, minigen.is_grad_enabled()))
        return minigen.sigmoid(z.sum(dim=1)).reshape(-1, 1, 1, 1) * minigen.ones(1, 1, 3, 3, dtype=z.dtype)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_latent_interpolation_decodes_straight_lines_one_row_per_pair(tmp_path):
    decode = RecordingDecoder()
    start = minigen.tensor([[0.0, -2.0], [1.0, 1.0]], dtype=minigen.float64)
    end = minigen.tensor([[2.0, 0.0], [-1.0, -1.0]], dtype=minigen.float64)
    picture = read_rgb(viz.latent_interpolation(decode, start, end, tmp_path / "i.png", steps=5, scale=1))
    (z, dtype, device, grad_enabled), *more = decode.calls
    assert not more and not grad_enabled
    assert dtype == minigen.float64 and device == "cpu"
    t = np.linspace(0, 1, 5)[:, None]
    expected_z = np.concatenate([(1 - t) * start.numpy()[i] + t * end.numpy()[i] for i in range(2)])
    np.testing.assert_allclose(z, expected_z, rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        tile_values(picture, 2, 5), sigmoid(expected_z.sum(1)).reshape(2, 5), atol=EIGHT_BIT
    )


def test_latent_interpolation_takes_single_codes_and_checks_them(tmp_path):
    decode = RecordingDecoder()
    viz.latent_interpolation(decode, np.zeros(3), np.ones(3), tmp_path / "i.png", steps=2)
    np.testing.assert_array_equal(decode.calls[0][0], [[0, 0, 0], [1, 1, 1]])
    assert decode.calls[0][1] == minigen.float32
    with pytest.raises(ValueError, match="same shape"):
        viz.latent_interpolation(decode, np.zeros(3), np.ones(4), tmp_path / "i.png")
    with pytest.raises(ValueError, match="steps"):
        viz.latent_interpolation(decode, np.zeros(3), np.ones(3), tmp_path / "i.png", steps=1)


def test_latent_interpolation_names_decoder_output_outside_the_unit_interval(tmp_path):
    with pytest.raises(ValueError, match="sigmoid"):
        viz.latent_interpolation(
            lambda z: z.reshape(-1, 1, 1, 2) * 10, np.zeros(2), np.ones(2), tmp_path / "i.png"
        )


def test_latent_manifold_decodes_the_gaussian_quantiles_with_z2_growing_upwards(tmp_path):
    decode = RecordingDecoder()
    picture = read_rgb(viz.latent_manifold(decode, tmp_path / "m.png", n=3, extent=(0.05, 0.95), scale=1))
    z = decode.calls[0][0]
    q = 1.6448536269514722  # Phi^-1(0.95)
    values = np.array([-q, 0.0, q])
    expected = np.array([[values[j], values[2 - i]] for i in range(3) for j in range(3)])
    np.testing.assert_allclose(z, expected, atol=1e-6)
    np.testing.assert_allclose(
        tile_values(picture, 3, 3), sigmoid(expected.sum(1)).reshape(3, 3), atol=EIGHT_BIT
    )


@pytest.mark.parametrize(("options", "message"), [({"n": 1}, "n must"), ({"extent": (0.0, 0.9)}, "extent")])
def test_latent_manifold_rejects_bad_options(tmp_path, options, message):
    with pytest.raises(ValueError, match=message):
        viz.latent_manifold(RecordingDecoder(), tmp_path / "m.png", **options)


# --- curves and scatter plots --------------------------------------------------------------------


def share_near(picture, color, tolerance=0.06):
    """The share of pixels within ``tolerance`` of an RGB colour."""
    return float((np.abs(picture - np.asarray(color)).max(axis=-1) < tolerance).mean())


BLUE, ORANGE, RED = (0.122, 0.467, 0.706), (1.0, 0.498, 0.055), (1.0, 0.0, 0.0)  # tab:blue, tab:orange


def records():
    return [
        {"epoch": 1 + i // 10, "step": 50 * i, "loss": 100 / (i + 1), "kl": 5.0 + i % 3} for i in range(40)
    ]


def test_loss_curves_draw_one_labelled_curve_per_key(tmp_path):
    both = read_rgb(viz.loss_curves(records(), tmp_path / "both.png"))
    only_loss = read_rgb(viz.loss_curves(records(), tmp_path / "loss.png", keys=["loss"]))
    only_kl = read_rgb(viz.loss_curves(records(), tmp_path / "kl.png", keys="kl"))
    assert both.shape == (400, 640, 3)
    assert share_near(both, BLUE) > 1e-3 and share_near(both, ORANGE) > 1e-3
    assert share_near(only_loss, BLUE) > 1e-3 and share_near(only_loss, ORANGE) == 0
    assert share_near(only_kl, BLUE) > 1e-3 and share_near(only_kl, ORANGE) == 0  # first colour again


def test_loss_curves_skip_missing_and_non_finite_values(tmp_path):
    lines = [
        {"epoch": 1, "loss": 3.0},
        {"epoch": 2, "loss": float("nan")},
        {"epoch": 3},
        {"epoch": 4, "loss": 1.0},
    ]
    assert os.path.exists(viz.loss_curves(lines + [{"epoch": 5, "test_loss": 2.0}], tmp_path / "l.png"))


@pytest.mark.parametrize(
    ("lines", "keys", "message"),
    [
        ([], None, "non-empty list of dicts"),
        ([1, 2], None, "non-empty list of dicts"),
        ([{"epoch": 1, "step": 3, "note": "x"}], None, "no numeric values"),
        ([{"epoch": 1, "loss": 2.0}], ["loss", "kl"], r"no record has a numeric value for \['kl'\]"),
    ],
)
def test_loss_curves_reject_bad_records(tmp_path, lines, keys, message):
    with pytest.raises(ValueError, match=message):
        viz.loss_curves(lines, tmp_path / "l.png", keys=keys)


def ring(n, rng):
    angles = 2 * np.pi * rng.integers(8, size=n) / 8
    return 2 * np.stack([np.cos(angles), np.sin(angles)], axis=1) + 0.02 * rng.standard_normal((n, 2))


def test_ring_scatter_draws_one_panel_per_snapshot_and_marks_the_modes(tmp_path):
    rng = np.random.default_rng(0)
    modes = ring(8, rng)
    snapshots = [(f"epoch {e}", ring(200, rng)) for e in range(7)]
    with_modes = read_rgb(viz.ring_scatter(snapshots, tmp_path / "m.png", modes=modes))
    without = read_rgb(viz.ring_scatter(snapshots[:2], tmp_path / "p.png"))
    assert with_modes.shape == (2 * 260, 5 * 260, 3)  # five panels to a row
    assert without.shape == (260, 2 * 260, 3)
    assert share_near(with_modes, RED, 0.1) > 1e-4 and share_near(without, RED, 0.1) == 0
    assert share_near(without, BLUE, 0.35) > 1e-4


def test_ring_scatter_rejects_points_that_are_not_2d(tmp_path):
    with pytest.raises(ValueError, match=r"snapshot 'epoch 1' must have shape \(N, 2\); got \(5, 3\)"):
        viz.ring_scatter([("epoch 1", np.zeros((5, 3)))], tmp_path / "s.png")
    with pytest.raises(ValueError, match="non-empty list"):
        viz.ring_scatter([], tmp_path / "s.png")


# --- files ---------------------------------------------------------------------------------------


def test_writes_leave_no_temporary_files_and_replace_the_old_picture(tmp_path):
    path = tmp_path / "g.png"
    viz.image_grid(np.zeros((1, 1, 2, 2)), path, scale=1, padding=0)
    viz.image_grid(np.ones((1, 1, 2, 2)), path, scale=1, padding=0)
    assert os.listdir(tmp_path) == ["g.png"]
    assert np.all(read_rgb(path) == 1.0)


def test_an_error_while_drawing_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "losses.png"
    viz.loss_curves(records(), path)
    before = path.read_bytes()

    def half_written(self, file, **kwargs):
        file.write(b"\x89PNG half a picture")
        raise RuntimeError("renderer crashed")

    monkeypatch.setattr(Figure, "savefig", half_written)
    with pytest.raises(RuntimeError, match="renderer crashed"):
        viz.loss_curves(records(), path)
    assert path.read_bytes() == before
    assert leftover_files(tmp_path) == []


def test_a_failing_decoder_leaves_the_previous_file_intact(tmp_path):
    path = tmp_path / "manifold.png"
    viz.latent_manifold(RecordingDecoder(), path, n=2)
    before = path.read_bytes()

    def broken(z):
        raise ValueError("decoder exploded")

    with pytest.raises(ValueError, match="decoder exploded"):
        viz.latent_manifold(broken, path, n=2)
    assert path.read_bytes() == before and leftover_files(tmp_path) == []


def test_a_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        viz.image_grid(np.zeros((1, 1, 2, 2)), tmp_path / "nowhere" / "g.png")


def test_drawing_never_imports_pyplot_or_changes_the_backend(tmp_path):
    # rcParams["backend"] would resolve (and import pyplot); read the stored setting instead.
    code = (
        "import sys, matplotlib, numpy\n"
        "setting = lambda: dict.__getitem__(matplotlib.rcParams, 'backend')\n"
        "before = setting()\n"
        "import minigen.viz\n"
        "minigen.viz.image_grid(numpy.zeros((1, 1, 2, 2)), sys.argv[1] + '/g.png')\n"
        "minigen.viz.loss_curves([{'loss': 1.0}], sys.argv[1] + '/l.png')\n"
        "minigen.viz.draw_graph(minigen.ones(2, requires_grad=True).exp().sum(), sys.argv[1] + '/d.png')\n"
        "print('matplotlib.pyplot' in sys.modules, setting() is before)"
    )
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True)
    assert result.stdout.split() == ["False", "True"], result.stderr


# --- autograd graphs -----------------------------------------------------------------------------

NODE_LINE = re.compile(r'^  (n\d+) \[label="(.*?)", shape=(\w+), class="(\w+)"')
EDGE_LINE = re.compile(r'^  (n\d+) -> (n\d+) \[label="(.*?)"\];$')


def parse_dot(text):
    """{id: (label, shape, class)} and the list of (source label, target label, edge label)."""
    lines = text.splitlines()
    assert lines[0] == "digraph minigen {" and lines[-1] == "}"
    nodes = {m[1]: (m[2], m[3], m[4]) for m in map(NODE_LINE.match, lines) if m}
    edges = [(nodes[m[1]][0], nodes[m[2]][0], m[3]) for m in map(EDGE_LINE.match, lines) if m]
    assert len(nodes) + len(edges) == sum(1 for line in lines if "[label=" in line)
    return nodes, edges


def small_expression():
    """s = (x * w + b).relu().sum() with x a (2, 3) constant and w, b (3,) leaves that require grad."""
    x = minigen.randn(2, 3)
    w, b = minigen.randn(3, requires_grad=True), minigen.randn(3, requires_grad=True)
    xw = x * w
    z = xw + b
    r = z.relu()
    s = r.sum()
    return s, {x: "x", w: "w", b: "b", xw: "xw", z: "z", r: "r", s: "s"}


def test_to_dot_of_a_small_expression_has_exactly_its_nodes_and_edges():
    s, names = small_expression()
    nodes, edges = parse_dot(viz.to_dot(s, names=names))
    assert sorted(nodes.values()) == sorted(
        [
            ("x", "ellipse", "constant"),
            ("w", "ellipse", "leaf"),
            ("b", "ellipse", "leaf"),
            ("xw", "ellipse", "tensor"),
            ("z", "ellipse", "tensor"),
            ("r", "ellipse", "tensor"),
            ("s", "ellipse", "output"),
            ("Mul", "box", "function"),
            ("Add", "box", "function"),
            ("ReLU", "box", "function"),
            ("Sum", "box", "function"),
        ]
    )
    assert sorted(edges) == sorted(
        [
            ("x", "Mul", "(2, 3)"),
            ("w", "Mul", "(3,)"),
            ("Mul", "xw", "(2, 3)"),
            ("xw", "Add", "(2, 3)"),
            ("b", "Add", "(3,)"),
            ("Add", "z", "(2, 3)"),
            ("z", "ReLU", "(2, 3)"),
            ("ReLU", "r", "(2, 3)"),
            ("r", "Sum", "(2, 3)"),
            ("Sum", "s", "()"),
        ]
    )


def test_to_dot_names_may_map_names_to_tensors_and_unnamed_tensors_have_no_label():
    s, names = small_expression()
    by_name = {name: t for t, name in names.items() if name in ("w", "b")}
    nodes, edges = parse_dot(viz.to_dot(s * 2.0, names=by_name, title='say "hi"'))
    labels = sorted((label, kind) for label, _, kind in nodes.values())
    assert labels == sorted(
        [("", "constant"), ("w", "leaf"), ("b", "leaf"), ("", "tensor"), ("", "tensor"), ("", "tensor")]
        + [("", "tensor"), ("2", "constant"), ("", "output")]
        + [(f, "function") for f in ("Mul", "Add", "ReLU", "Sum", "Mul")]
    )
    assert len(edges) == 13
    assert '  label="say \\"hi\\"";' in viz.to_dot(s, title='say "hi"').splitlines()
    with pytest.raises(TypeError, match="names must map tensors to strings"):
        viz.to_dot(s, names={"w": 3})
    with pytest.raises(TypeError, match="a Tensor or a non-empty sequence"):
        viz.to_dot([])
    with pytest.raises(TypeError, match="a Tensor or a non-empty sequence"):
        viz.draw_graph(3.0)


def test_a_tensor_used_three_times_is_one_node_with_three_edges():
    x = minigen.randn(4, requires_grad=True)
    h = x.exp()
    L = (h * h + h).sum()
    nodes, edges = parse_dot(viz.to_dot(L, names={x: "x", h: "h"}))
    labels = [label for label, _, _ in nodes.values()]
    assert labels.count("h") == 1 and labels.count("x") == 1 and labels.count("Exp") == 1
    assert sorted(e for e in edges if e[0] == "h") == [("h", "Add", "(4,)"), ("h", "Mul", "(4,)")] + [
        ("h", "Mul", "(4,)")
    ]
    assert len(nodes) == 5 + 4  # x, h, h * h, h * h + h, L and Exp, Mul, Add, Sum
    where = viz.layout(viz._graph(L))
    assert len(where.labels) == len(edges) and sum(p is not None for p in where.labels) == len(edges) - 2


class TwoOutputs(Function):
    def forward(self, x):
        return x * 2, x * x

    def backward(self, g_double, g_square):
        return g_double * 2.0 + g_square * 2.0 * self.inputs[0]


def test_multi_output_nodes_show_every_output_and_mark_the_freed_ones():
    x = minigen.randn(3, requires_grad=True)
    double, square = TwoOutputs()(x)
    L = square.sum()
    _, edges = parse_dot(viz.to_dot(L, names={x: "x", double: "double", square: "square", L: "L"}))
    assert sorted(edges) == [
        ("Sum", "L", "()"),
        ("TwoOutputs", "double", "(3,)"),
        ("TwoOutputs", "square", "(3,)"),
        ("square", "Sum", "(3,)"),
        ("x", "TwoOutputs", "(3,)"),
    ]
    del double  # the node holds its outputs weakly
    nodes, edges = parse_dot(viz.to_dot(L, names={x: "x", square: "square", L: "L"}))
    assert ("(freed)", "ellipse", "freed") in nodes.values()
    assert ("TwoOutputs", "(freed)", "(3,)") in edges


def test_a_graph_released_by_backward_is_refused_with_a_clear_error(tmp_path):
    s, names = small_expression()
    s.backward(retain_graph=True)
    assert viz.draw_graph(s, tmp_path / "kept.png") == str(tmp_path / "kept.png")
    s.backward()
    for draw in (lambda: viz.to_dot(s), lambda: viz.draw_graph(s, tmp_path / "released.png")):
        with pytest.raises(RuntimeError, match=r"its Sum node was released by backward\(\).*before calling"):
            draw()
    assert os.listdir(tmp_path) == ["kept.png"]


def test_a_lone_tensor_is_a_graph_of_one_node(tmp_path):
    w = minigen.randn(2, requires_grad=True)
    nodes, edges = parse_dot(viz.to_dot(w, names={w: "w"}))
    assert list(nodes.values()) == [("w", "ellipse", "leaf")] and edges == []
    assert read_rgb(viz.draw_graph(w, tmp_path / "w.png")).shape[2] == 3


# --- the layered layout ---------------------------------------------------------------------------


def test_layers_put_the_roots_at_0_and_every_node_one_past_its_farthest_use():
    #  0 -> 1 -> 2 -> 3 -> 4 (root), and a shortcut 0 -> 3; 5 feeds 3; 6 is an unused output of 1.
    edges = [(0, 1), (1, 2), (2, 3), (3, 4), (0, 3), (5, 3), (1, 6)]
    assert viz.layers(7, edges, [4]) == [4, 3, 2, 1, 0, 2, 2]
    assert viz.layers(1, [], [0]) == [0]
    # Two roots, one computed from the other: each node is placed by its farthest use.
    assert viz.layers(4, [(0, 1), (1, 2), (2, 3), (1, 3)], [1, 3]) == [3, 2, 1, 0]


def test_order_layers_removes_the_crossings_of_a_planar_graph():
    # Layer 1: nodes 0, 1; layer 0: nodes 2, 3. Numbered as given, 0 -> 3 and 1 -> 2 cross.
    layer = [1, 1, 0, 0]
    links = [(0, 3), (1, 2)]
    down = [[3], [2], [], []]
    assert viz.crossings([[2, 3], [0, 1]], down) == 1
    rows = viz.order_layers(layer, links)
    assert viz.crossings(rows, down) == 0 and sorted(map(sorted, rows)) == [[0, 1], [2, 3]]
    # A ladder of five rungs given in reverse on one side: all ten pairs cross, none after ordering.
    layer, links = [1] * 5 + [0] * 5, [(i, 9 - i) for i in range(5)]
    down = [[9 - i] for i in range(5)] + [[] for _ in range(5)]
    assert viz.crossings([list(range(5, 10)), list(range(5))], down) == 10
    assert viz.crossings(viz.order_layers(layer, links), down) == 0


def test_spread_is_the_closest_placement_that_keeps_the_gaps():
    assert viz._spread([0.0, 0.0, 0.0], [10.0, 10.0]) == [-10.0, 0.0, 10.0]
    assert viz._spread([0.0, 50.0], [10.0]) == [0.0, 50.0]
    assert viz._spread([5.0, 0.0, 100.0], [10.0, 10.0]) == [-2.5, 7.5, 100.0]


def test_layout_puts_the_output_on_the_right_and_every_edge_runs_left_to_right():
    s, names = small_expression()
    graph = viz._graph(s, names)
    where = viz.layout(graph)
    root = graph.roots[0]
    by_label = dict(zip(graph.labels, where.layer))
    expected = {
        "s": 0,
        "Sum": 1,
        "r": 2,
        "ReLU": 3,
        "z": 4,
        "Add": 5,
        "xw": 6,
        "b": 6,
        "Mul": 7,
        "x": 8,
        "w": 8,
    }
    assert by_label == expected
    assert all(where.centres[root][0] > x for v, (x, _) in enumerate(where.centres) if v != root)
    for (source, target, _), points in zip(graph.edges, where.routes):
        xs = [x for x, _ in points]
        assert xs == sorted(xs)
        assert xs[0] == where.centres[source][0] + where.widths[source] / 2
        assert xs[-1] == where.centres[target][0] - where.widths[target] / 2
    width, height = where.size
    assert all(0 < x < width and 0 < y < height for x, y in where.centres)


FUNCTION_FILL, LEAF_FILL, OUTPUT_FILL = ((0.867, 0.910, 0.961), (0.749, 0.890, 0.706), (0.969, 0.773, 0.624))


def test_draw_graph_writes_a_picture_of_the_nodes(tmp_path):
    s, names = small_expression()
    path = tmp_path / "graph.png"
    assert viz.draw_graph(s, path, names=names, title="(x * w + b).relu().sum()") == str(path)
    picture = read_rgb(path)
    assert share_near(picture, (1.0, 1.0, 1.0), 0.02) < 0.95, "not blank"
    for fill in (FUNCTION_FILL, LEAF_FILL, OUTPUT_FILL):
        assert share_near(picture, fill, 0.02) > 1e-3
    picture = read_rgb(viz.draw_graph(s, path, names=names, legend=False))  # the legend has swatches
    output_columns = np.argwhere(np.abs(picture - OUTPUT_FILL).max(axis=-1) < 0.02)[:, 1]
    function_columns = np.argwhere(np.abs(picture - FUNCTION_FILL).max(axis=-1) < 0.02)[:, 1]
    assert output_columns.min() > function_columns.max(), "the output is drawn at the right end"
    figure = viz.draw_graph(s, names=names)
    assert isinstance(figure, Figure) and leftover_files(tmp_path) == []


def test_a_graph_of_a_few_hundred_nodes_is_laid_out_and_drawn_within_the_pixel_limit(tmp_path):
    model = minigen.nn.Sequential(
        *[layer for _ in range(20) for layer in (minigen.nn.Linear(6, 6), minigen.nn.Tanh())]
    )
    x = minigen.randn(5, 6, requires_grad=True)
    (g,) = minigen.grad(model(x).sum(), x, create_graph=True)
    penalty = (((g**2).sum(dim=1).sqrt() - 1) ** 2).mean()  # a gradient penalty: long edges back
    graph = viz._graph(penalty, dict(model.named_parameters()))
    assert len(graph.kinds) > 300
    where = viz.layout(graph)
    assert len(where.layer) > 2 * len(graph.kinds)  # the long edges got their dummy nodes
    picture = read_rgb(viz.draw_graph(penalty, tmp_path / "big.png"))
    assert max(picture.shape[:2]) <= viz.MAX_GRAPH_PIXELS
