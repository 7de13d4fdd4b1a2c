"""The model-family protocol: the registry, the conditional families' label binding, eval mode
as a context manager, and the structure that keeps a new family to one module."""

import ast
import math
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image as mpimg

import minigen
from minigen import families, metrics, nn, training
from minigen.families.base import SAMPLES_PER_CLASS, one_hot, tile_labels
from minigen.families.cgan import ConditionalDCGAN
from minigen.families.cvae import ConditionalVAE
from minigen.generative import gan, vae
from minigen.optim import RMSprop

PACKAGE = Path(__file__).resolve().parent.parent / "minigen"


def labels_of(*values):
    return minigen.tensor(np.array(values, dtype=np.int64))


def values(t):
    return t.detach().numpy()


# --- the registry ------------------------------------------------------------------------------


def test_the_registry_names_every_family_once_and_the_command_line_offers_them():
    assert training.MODELS == ("vae", "conv-vae", "gan", "dcgan", "cvae", "cgan", "seed-gan", "seed-vae")
    for name, family in families.FAMILIES.items():
        assert family.name == name and family.summary
        assert set(family.options) <= set(families.base.OPTIONS)
    assert [f.name for f in families.FAMILIES.values() if f.conditional] == ["cvae", "cgan"]
    with pytest.raises(ValueError, match="unknown model 'flow'; choose one of vae, conv-vae"):
        families.get("flow")


def _string_comparisons(path: Path, names: set) -> list:
    """Comparisons (==, !=, in, not in) of anything with a string constant in ``names``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            for operand in operands:
                values = operand.elts if isinstance(operand, (ast.Tuple, ast.List, ast.Set)) else [operand]
                if any(isinstance(v, ast.Constant) and v.value in names for v in values):
                    found.append(f"{path.name}:{node.lineno}")
    return found


def test_training_metrics_and_the_command_line_do_not_branch_on_model_or_data_names():
    names = set(families.FAMILIES) | set(minigen.data.KNOWN)
    found = [
        hit
        for module in ("training", "metrics", "cli")
        for hit in _string_comparisons(PACKAGE / f"{module}.py", names)
    ]
    assert found == []


def test_no_function_in_the_library_is_over_45_lines():
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > 45:
                    long.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} ({length} lines)")
    assert long == []


# --- the seed chapter's listings, corrected ----------------------------------------------------


def _layers(sequential):
    """Each layer's class name, with its weight's shape for a Linear."""
    return [
        type(m).__name__ + (str(tuple(m.weight.shape)) if isinstance(m, nn.Linear) else "")
        for m in sequential
    ]


def test_the_seed_families_build_the_listings_architectures_with_rmsprop():
    config = training.TrainConfig(model="seed-gan", data="mnist").resolved()
    model = families.get("seed-gan").build(config, (1, 28, 28), 10)
    assert _layers(model.generator) == [
        "Linear(256, 100)",
        "ReLU",
        "Linear(784, 256)",
        "Sigmoid",
        "Unflatten",
    ]
    assert _layers(model.discriminator) == [
        "Flatten",
        "Linear(256, 784)",
        "ReLU",
        "Linear(1, 256)",
        "Flatten",
    ]
    optimizers = families.get("seed-gan").optimizers(config, model)
    for name, part in (
        ("generator_optimizer", model.generator),
        ("discriminator_optimizer", model.discriminator),
    ):
        assert type(optimizers[name]) is RMSprop and optimizers[name].param_groups[0]["lr"] == 1e-3
        assert optimizers[name].param_groups[0]["params"] == list(part.parameters())
    config = training.TrainConfig(model="seed-vae", data="mnist").resolved()
    model = families.get("seed-vae").build(config, (1, 28, 28), 10)
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters() if name.endswith("weight")}
    assert shapes == {
        "fc1.weight": (256, 784), "fc21.weight": (20, 256), "fc22.weight": (20, 256), "fc3.weight": (256, 20),
        "fc4.weight": (784, 256),
    }  # fmt: skip
    (optimizer,) = families.get("seed-vae").optimizers(config, model).values()
    assert type(optimizer) is RMSprop and optimizer.param_groups[0]["lr"] == 1e-3
    with pytest.raises(ValueError, match="activation must be one of"):
        gan.MLPGAN(activation="tanh")


def _log_sigmoid(l):
    return -np.logaddexp(0.0, -l)


def test_a_seed_gan_step_trains_d_on_the_minimax_loss_and_g_on_the_non_saturating_one():
    """d_loss = -mean log D(x) - mean log(1 - D(G(z))) with D before its step, g_loss =
    -mean log D(G(z)) with D after it, D = sigmoid(logit), and both networks move."""
    family = families.get("seed-gan")
    config = training.TrainConfig(model="seed-gan", latent_dim=3).resolved()
    model = family.build(config, (1, 8, 8), 10).double()
    optimizers = family.optimizers(config, model)
    real = minigen.rand(6, 1, 8, 8, dtype=minigen.float64)
    minigen.manual_seed(5)
    with minigen.no_grad():
        fake = model.generator(model.sample_noise(6))
        real_logits, fake_logits = values(model.discriminator(real)), values(model.discriminator(fake))
    before = {name: values(p).copy() for name, p in model.named_parameters()}
    minigen.manual_seed(5)
    losses = family.step(model, optimizers, real, config, 1)
    expected_d = -_log_sigmoid(real_logits).mean() - _log_sigmoid(-fake_logits).mean()
    np.testing.assert_allclose(losses["d_loss"].item(), expected_d, rtol=1e-12)
    with minigen.no_grad():
        after_d_step = values(model.discriminator(fake))  # G has stepped too, but fake was drawn before
    np.testing.assert_allclose(losses["g_loss"].item(), -_log_sigmoid(after_d_step).mean(), rtol=1e-12)
    assert all(not np.array_equal(before[name], values(p)) for name, p in model.named_parameters())


# --- eval mode as a context manager ------------------------------------------------------------


def test_eval_mode_restores_every_part_s_own_mode_even_after_an_error():
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2), nn.Dropout(0.5))
    model[1].eval()  # mixed modes going in
    with pytest.raises(RuntimeError, match="inside"), model.eval_mode() as same:
        assert same is model
        assert not any(m.training for m in model.modules())
        assert not minigen.is_grad_enabled()
        raise RuntimeError("inside")
    assert [m.training for m in model.modules()] == [True, True, False, True]
    assert minigen.is_grad_enabled()


def test_eval_mode_records_no_graph():
    layer = nn.Linear(3, 1)
    with layer.eval_mode():
        y = layer(minigen.randn(4, 3))
    assert not y.requires_grad and y.creator is None


# --- conditional models: labels bound with given() ---------------------------------------------


def test_one_hot_and_tiled_labels():
    codes = one_hot(labels_of(2, 0), 3, minigen.zeros(1, dtype=minigen.float64))
    np.testing.assert_array_equal(codes.numpy(), [[0, 0, 1], [1, 0, 0]])
    assert codes.dtype == minigen.float64
    np.testing.assert_array_equal(tile_labels(labels_of(1, 2), 6).numpy(), [1, 2, 1, 2, 1, 2])
    with pytest.raises(ValueError, match="cannot bind 2 labels to 5 rows"):
        tile_labels(labels_of(1, 2), 5)


def test_conditional_vae_matches_its_formula_and_the_bound_view_is_the_same_model():
    model = ConditionalVAE((1, 2, 2), num_classes=3, hidden_dim=5, latent_dim=2).double()
    x = minigen.rand(2, 1, 2, 2, dtype=minigen.float64)
    y = labels_of(2, 0)
    mu, logvar = model.encode(x, y)
    code = np.eye(3)[[2, 0]]
    inputs = np.concatenate([x.numpy().reshape(2, 4), code], axis=1)
    h = np.maximum(inputs @ values(model.fc1.weight).T + values(model.fc1.bias), 0)
    np.testing.assert_allclose(values(mu), h @ values(model.fc21.weight).T + values(model.fc21.bias))
    np.testing.assert_allclose(values(logvar), h @ values(model.fc22.weight).T + values(model.fc22.bias))
    view = model.given(y)
    np.testing.assert_array_equal(values(view.encode(x)[0]), values(mu))
    z = minigen.randn(2, 2, dtype=minigen.float64)
    np.testing.assert_array_equal(values(view.decode(z)), values(model.decode(z, y)))


def test_the_bound_decoder_tiles_labels_as_the_iwae_bound_stacks_its_draws():
    """If the labels were repeated in the wrong order, decoding all draws at once (chunk=k)
    would give another bound than decoding one draw at a time (chunk=1)."""
    model = ConditionalVAE((1, 2, 2), num_classes=3, hidden_dim=6, latent_dim=2).double()
    x = minigen.rand(3, 1, 2, 2, dtype=minigen.float64)
    view = model.given(labels_of(0, 1, 2))
    minigen.manual_seed(5)
    one_at_a_time = vae.iwae_bound(view, x, k=4, chunk=1)
    minigen.manual_seed(5)
    all_at_once = vae.iwae_bound(view, x, k=4, chunk=4)
    np.testing.assert_allclose(one_at_a_time.numpy(), all_at_once.numpy(), rtol=1e-12)


def test_labels_change_what_the_conditional_decoder_makes():
    model = ConditionalVAE((1, 2, 2), num_classes=2, hidden_dim=4, latent_dim=2)
    z = minigen.randn(1, 2)
    assert not np.allclose(values(model.decode(z, labels_of(0))), values(model.decode(z, labels_of(1))))


def test_projection_discriminator_is_head_plus_embedding_inner_product():
    model = ConditionalDCGAN((1, 8, 8), num_classes=3, noise_dim=4, width=2).double().eval()
    x = minigen.rand(2, 1, 8, 8, dtype=minigen.float64)
    y = labels_of(1, 2)
    d = model.discriminator
    h = values(d.features(x))
    expected = h @ values(d.head.weight)[0] + values(d.head.bias)[0]
    expected = expected + (h * values(d.embed.weight).T[[1, 2]]).sum(axis=1)
    with minigen.no_grad():
        np.testing.assert_allclose(values(model.discriminator(x, y)), expected, rtol=1e-12)
        view = model.given(y)
        np.testing.assert_array_equal(values(view.discriminator(x)), values(model.discriminator(x, y)))
        assert model.generator(model.sample_noise(2), y).shape == (2, 1, 8, 8)


@pytest.mark.parametrize("gp_weight", [10.0, 0.0])
def test_a_conditional_gan_takes_wasserstein_steps_with_a_penalty_or_clipping(tmp_path, gp_weight):
    """WGAN-GP's double backward runs through the bound discriminator; without a penalty the
    bound discriminator's weights are clipped into [-0.01, 0.01]."""
    config = training.TrainConfig(
        model="cgan", epochs=1, batch_size=16, limit=32, latent_dim=4, loss="wasserstein",
        gp_weight=gp_weight, out=str(tmp_path),
    )  # fmt: skip
    model, records = training.fit(config, progress=False)
    assert math.isfinite(records[0]["d_loss"]) and "g_loss" not in records[0]  # 2 steps, n_critic 5
    largest = max(float(abs(p.detach().numpy()).max()) for p in model.discriminator.parameters())
    assert (largest <= 0.01) == (gp_weight == 0.0)


# --- what a conditional run shows ----------------------------------------------------------------


@pytest.mark.parametrize("model", ["cvae", "cgan"])
def test_a_conditional_run_draws_one_row_per_class(tmp_path, model):
    config = training.TrainConfig(
        model=model, epochs=1, batch_size=32, limit=64, latent_dim=4, out=str(tmp_path)
    )
    trained, _ = training.fit(config, progress=False)
    family = families.get(model)
    z, labels = family.picture_inputs(trained, config.resolved(), 64)
    np.testing.assert_array_equal(labels.numpy(), np.repeat(np.arange(10), SAMPLES_PER_CLASS))
    assert z.shape == (10 * SAMPLES_PER_CLASS, 4)
    # viz.image_grid: 2 pixels of padding around 8x8 tiles, scaled by a whole factor.
    height, width = mpimg.imread(tmp_path / "samples.png").shape[:2]
    rows, columns = 10, SAMPLES_PER_CLASS
    assert height * (2 + columns * 10) == width * (2 + rows * 10)


def test_conditional_samples_come_in_equal_runs_of_each_class():
    family = families.get("cvae")
    model = ConditionalVAE((1, 8, 8), num_classes=10, latent_dim=2)
    np.testing.assert_array_equal(family.class_labels(model, 20), np.repeat(np.arange(10), 2))
    assert family.grid_columns(model, 20) == 2 and family.class_labels(model, 25)[-1] == 8
    assert families.get("vae").class_labels(model, 20) is None


class _RowPicker(nn.Module):
    """A classifier head whose logits pick classes 3, 3, 1, 7 for a batch of four."""

    def forward(self, features):
        return minigen.tensor(np.eye(10, dtype=np.float32)[[3, 3, 1, 7]])


def test_class_agreement_counts_the_images_put_in_the_asked_for_class():
    classifier = metrics.FeatureClassifier((1, 8, 8), 10, feature_dim=2)
    classifier.head = _RowPicker()
    images = np.zeros((4, 1, 8, 8), dtype=np.float32)
    assert metrics.class_agreement(classifier, images, [3, 3, 1, 0]) == 0.75
    with pytest.raises(ValueError, match=r"labels must have shape \(4,\)"):
        metrics.class_agreement(classifier, images, [3, 3])


def test_dataset_first_keeps_the_first_examples_and_the_classes():
    dataset = minigen.data.load("digits", "train")
    head = dataset.first(5)
    assert len(head) == 5 and head.num_classes == dataset.num_classes and head.name == dataset.name
    np.testing.assert_array_equal(head.labels, dataset.labels[:5])
    assert dataset.first(None) is dataset
    with pytest.raises(ValueError, match="positive integer"):
        dataset.first(0)


def test_example_shapes_known_without_loading_match_the_data():
    for name in ("digits", "ring"):
        assert minigen.data.load(name, "test").example_shape == minigen.data.EXAMPLE_SHAPES[name]
