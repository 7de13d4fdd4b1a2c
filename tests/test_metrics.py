"""minigen.metrics against values worked out by hand: ring coverage on constructed samples,
Frechet distances in closed form, the ELBO and IWAE bound of tiny stand-in VAEs, and the
feature classifier (training, its cache, and the image metrics read through it).
"""

import json
import math

import numpy as np
import pytest
import scipy.linalg
from hypothesis import given
from hypothesis import strategies as st

import minigen
import minigen.functional as F
import minigen.nn as nn
from minigen import data, metrics
from minigen.generative import gan, vae

# --- the ring ------------------------------------------------------------------------------------

MODES, STD = data.RING_MODES, data.RING_STD


def test_samples_at_every_centre_cover_all_eight_modes():
    samples = np.repeat(MODES, 25, axis=0)
    result = metrics.ring_metrics(samples)
    assert result == {"modes_covered": 8, "num_modes": 8, "high_quality": 1.0, "per_mode": [25] * 8}
    json.dumps(result)  # plain Python values: metrics.jsonl can hold them


def test_samples_at_one_mode_cover_one_mode():
    samples = MODES[3] + STD * np.random.default_rng(0).uniform(-1, 1, (200, 2))  # within sqrt(2) std
    result = metrics.ring_metrics(samples)
    assert result["modes_covered"] == 1 and result["high_quality"] == 1.0
    assert result["per_mode"] == [0, 0, 0, 200, 0, 0, 0, 0]


def test_far_points_are_not_high_quality_and_cover_nothing():
    samples = np.concatenate([np.zeros((50, 2)), 5 * MODES, MODES * 1.05])  # centre, outside, 5 std off
    result = metrics.ring_metrics(samples)
    assert result == {"modes_covered": 0, "num_modes": 8, "high_quality": 0.0, "per_mode": [0] * 8}


def test_high_quality_means_within_three_std_of_the_nearest_mode():
    direction = MODES[0] / np.linalg.norm(MODES[0])
    distances = STD * np.array([0.0, 1.0, 2.9, 2.99, 3.01, 4.0, 10.0])
    result = metrics.ring_metrics(MODES[0] + distances[:, None] * direction)
    assert result["high_quality"] == pytest.approx(4 / 7)
    assert result["per_mode"][0] == 4


def test_a_mode_needs_a_quarter_of_its_uniform_share_to_count_as_covered():
    # 128 samples, 8 modes: the default threshold is 128 / 32 = 4 high-quality samples.
    counts = [100, 4, 3, 4, 1, 8, 8, 0]
    samples = np.repeat(MODES, counts, axis=0)
    result = metrics.ring_metrics(samples)
    assert result["per_mode"] == counts
    assert result["modes_covered"] == 5
    assert metrics.ring_metrics(samples, min_share=0.0)["modes_covered"] == 7  # at least one sample
    assert metrics.ring_metrics(samples, min_share=0.05)["modes_covered"] == 3  # 6.4 samples


def test_nan_samples_count_as_low_quality():
    samples = np.concatenate([MODES, np.full((8, 2), np.nan), np.full((8, 2), np.inf)])
    result = metrics.ring_metrics(samples)
    assert result["high_quality"] == pytest.approx(1 / 3)
    assert result["per_mode"] == [1] * 8


def test_real_ring_data_scores_as_the_chi_distribution_says():
    test_set = data.load("ring", "test")
    result = metrics.ring_metrics(test_set.inputs)
    assert result["modes_covered"] == 8
    # P(|e| <= 3 sigma) for a 2-D standard normal is 1 - exp(-9/2) = 0.98889; 2,000 points.
    assert result["high_quality"] == pytest.approx(1 - math.exp(-4.5), abs=0.01)


def test_ring_metrics_take_other_mixtures_and_reject_bad_shapes():
    modes = np.array([[0.0], [1.0]])
    result = metrics.ring_metrics(np.array([[0.05], [1.4], [0.9]]), modes=modes, std=0.1)
    assert result["per_mode"] == [1, 1] and result["high_quality"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match=r"must share D"):
        metrics.ring_metrics(np.zeros((5, 3)))
    with pytest.raises(ValueError, match="std must be positive"):
        metrics.ring_metrics(MODES, std=0.0)


# --- Frechet distance ----------------------------------------------------------------------------


@st.composite
def gaussians(draw, max_dim=5):
    """(mean, covariance) pairs of one dimension: random SPD covariances, generally non-commuting."""
    d = draw(st.integers(1, max_dim))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    result = []
    for _ in range(2):
        factor = rng.standard_normal((d, d))
        result.append((rng.standard_normal(d), factor @ factor.T + 0.1 * np.eye(d)))
    return result


def reference_frechet(mean_a, cov_a, mean_b, cov_b):
    """The formula as written, with SciPy's general matrix square root of the product."""
    cross = scipy.linalg.sqrtm(cov_a @ cov_b).real
    return float(((mean_a - mean_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * cross))


@given(gaussians())
def test_gaussian_frechet_distance_matches_the_formula_and_is_symmetric(pair):
    (mean_a, cov_a), (mean_b, cov_b) = pair
    value = metrics.gaussian_frechet_distance(mean_a, cov_a, mean_b, cov_b)
    assert value == pytest.approx(reference_frechet(mean_a, cov_a, mean_b, cov_b), rel=1e-7, abs=1e-9)
    assert metrics.gaussian_frechet_distance(mean_b, cov_b, mean_a, cov_a) == pytest.approx(
        value, rel=1e-9, abs=1e-12
    )
    assert metrics.gaussian_frechet_distance(mean_a, cov_a, mean_a, cov_a) == pytest.approx(0, abs=1e-9)


def test_gaussian_frechet_distance_of_diagonal_covariances_in_closed_form():
    a, b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    mean_a, mean_b = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    expected = 1 + 0 + 4 + (1 - 3) ** 2 + (2 - 1) ** 2 + 0  # ||dmu||^2 + sum (sqrt a - sqrt b)^2
    assert metrics.gaussian_frechet_distance(mean_a, np.diag(a), mean_b, np.diag(b)) == pytest.approx(
        expected
    )
    # One dimension: (mu_a - mu_b)^2 + (sigma_a - sigma_b)^2.
    assert metrics.gaussian_frechet_distance([2.0], [[9.0]], [-1.0], [[4.0]]) == pytest.approx(9 + 1)


def test_frechet_distance_of_samples_approaches_the_closed_form():
    rng = np.random.default_rng(0)
    cov_a, cov_b = np.array([[2.0, 0.8], [0.8, 1.0]]), np.array([[0.5, -0.2], [-0.2, 1.5]])
    mean_a, mean_b = np.array([0.0, 1.0]), np.array([1.0, -0.5])
    a = rng.multivariate_normal(mean_a, cov_a, size=40_000)
    b = rng.multivariate_normal(mean_b, cov_b, size=40_000)
    exact = reference_frechet(mean_a, cov_a, mean_b, cov_b)
    assert metrics.frechet_distance(a, b) == pytest.approx(exact, rel=0.03)
    assert metrics.frechet_distance(b, a) == pytest.approx(metrics.frechet_distance(a, b), rel=1e-9)
    # Exactly the moments' distance: sample means and unbiased covariances.
    moments = metrics.gaussian_frechet_distance(a.mean(0), np.cov(a.T), b.mean(0), np.cov(b.T))
    assert metrics.frechet_distance(a, b) == pytest.approx(moments, rel=1e-12)


def test_frechet_distance_is_zero_for_identical_sets_even_with_singular_covariances():
    rng = np.random.default_rng(1)
    few = rng.standard_normal((5, 20))  # 5 samples in 20 dimensions: rank-4 covariance
    assert metrics.frechet_distance(few, few) == pytest.approx(0.0, abs=1e-9)
    other = rng.standard_normal((5, 20))
    value = metrics.frechet_distance(few, other)
    assert np.isfinite(value) and value > 0
    many = minigen.tensor(rng.standard_normal((300, 4)))  # Tensors are accepted too
    assert metrics.frechet_distance(many, many) == pytest.approx(0.0, abs=1e-9)


def test_frechet_distance_rejects_bad_features():
    with pytest.raises(ValueError, match="same dimension D; got 3 and 4"):
        metrics.frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="N >= 2"):
        metrics.frechet_distance(np.zeros((1, 3)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match=r"shape \(N, D\)"):
        metrics.frechet_distance(np.zeros(5), np.zeros((5, 1)))
    with pytest.raises(ValueError, match="NaN"):
        metrics.frechet_distance(np.full((5, 2), np.nan), np.zeros((5, 2)))
    with pytest.raises(ValueError, match=r"cov_a \(D, D\)"):
        metrics.gaussian_frechet_distance(np.zeros(2), np.eye(3), np.zeros(2), np.eye(2))


# --- VAE bounds with stand-in models ---------------------------------------------------------------


def softplus(x):
    return np.logaddexp(0, x)


class TinyVAE(nn.Module):
    """A 4-pixel, 2-latent VAE that follows the protocol; its forward decodes z = mu (no noise),
    so the negative ELBO it yields is a plain function of its weights."""

    def __init__(self):
        super().__init__()
        self.mu, self.logvar, self.out = nn.Linear(4, 2), nn.Linear(4, 2), nn.Linear(2, 4)
        self.modes_seen = []

    def encode(self, x):
        flat = x.reshape(x.shape[0], 4)
        return self.mu(flat), self.logvar(flat)

    def decode(self, z):
        return self.out(z).reshape(z.shape[0], 1, 2, 2)

    def forward(self, x):
        self.modes_seen.append((self.training, minigen.is_grad_enabled()))
        mu, logvar = self.encode(x)
        return self.decode(mu), mu, logvar

    def log_likelihood(self, x, logits):
        return (x * logits - F.softplus(logits)).reshape(x.shape[0], 4).sum(dim=1)


def tiny_inputs(n=7, seed=0):
    return np.random.default_rng(seed).random((n, 1, 2, 2))


def hand_negative_elbo(model, x):
    w = {k: v.numpy().astype(np.float64) for k, v in model.state_dict().items()}
    flat = x.reshape(len(x), 4)
    mu = flat @ w["mu.weight"].T + w["mu.bias"]
    logvar = flat @ w["logvar.weight"].T + w["logvar.bias"]
    logits = mu @ w["out.weight"].T + w["out.bias"]
    log_likelihood = (flat * logits - softplus(logits)).sum(axis=1)
    kl = 0.5 * (mu**2 + np.exp(logvar) - 1 - logvar).sum(axis=1)
    return float((kl - log_likelihood).mean())


@pytest.mark.parametrize("batch_size", [1, 3, 500])
def test_negative_elbo_of_a_tiny_model_equals_the_hand_computation(batch_size):
    model = TinyVAE().double()
    x = tiny_inputs()
    value = metrics.negative_elbo(model, x, batch_size=batch_size)
    assert isinstance(value, float)
    assert value == pytest.approx(hand_negative_elbo(model, x), rel=1e-12)
    assert len(model.modes_seen) == math.ceil(7 / batch_size)


def test_negative_elbo_runs_in_eval_mode_without_a_graph_and_restores_the_mode():
    model = TinyVAE()
    x = tiny_inputs()
    expected = hand_negative_elbo(model, x)
    for training in (True, False):
        model.train(training)
        model.modes_seen.clear()
        assert metrics.negative_elbo(model, minigen.tensor(x)) == pytest.approx(expected, rel=1e-5)
        assert model.modes_seen == [(False, False)]
        assert model.training is training
    dataset = data.Dataset(x, np.zeros(7, dtype=np.int64))
    assert metrics.negative_elbo(model, dataset) == pytest.approx(expected, rel=1e-5)


def test_the_mode_is_restored_when_the_model_fails():
    model = TinyVAE().train()
    with pytest.raises(ValueError):
        metrics.negative_elbo(model, np.zeros((3, 1, 3, 3)))  # 9 pixels do not reshape to 4
    assert model.training


class PriorVAE(nn.Module):
    """q(z|x) = p(z) = N(0, I) and a decoder that ignores z: every importance weight is
    p(x|z) p(z) / q(z|x) = p(x), so L_k = log p(x) exactly, for every k and every draw."""

    latent_dim = 3

    def __init__(self):
        super().__init__()
        self.logits = nn.Parameter(minigen.tensor([[-1.0, 0.5, 2.0, 0.0]], dtype=minigen.float64))

    def encode(self, x):
        zeros = minigen.zeros(x.shape[0], self.latent_dim, dtype=minigen.float64)
        return zeros, zeros

    def decode(self, z):
        return self.logits + 0 * z.sum(dim=1, keepdim=True)

    def forward(self, x):
        mu, logvar = self.encode(x)
        return self.decode(vae.reparameterize(mu, logvar)), mu, logvar

    def log_likelihood(self, x, logits):
        return vae.bernoulli_log_likelihood(x.reshape(x.shape[0], 4), logits)


@pytest.mark.parametrize("k", [1, 7])
def test_iwae_nll_is_the_exact_negative_log_likelihood_when_q_is_the_posterior(k):
    model = PriorVAE()
    x = (tiny_inputs(9) > 0.5).astype(np.float64)
    logits = model.logits.detach().numpy()
    log_px = (x.reshape(9, 4) * logits - softplus(logits)).sum(axis=1)
    assert metrics.iwae_nll(model, x, k=k, batch_size=4) == pytest.approx(-log_px.mean(), rel=1e-12)
    assert metrics.negative_elbo(model, x) == pytest.approx(-log_px.mean(), rel=1e-12)  # KL = 0 here


def test_bad_sizes_are_clear_errors():
    with pytest.raises(ValueError, match="k must be a positive integer"):
        metrics.iwae_nll(PriorVAE(), tiny_inputs(), k=0)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        metrics.negative_elbo(TinyVAE(), tiny_inputs(), batch_size=0)
    with pytest.raises(ValueError, match="non-empty batch"):
        metrics.negative_elbo(TinyVAE(), np.zeros((0, 1, 2, 2)))


def test_mlp_vae_negative_elbo_is_vae_elbo_and_iwae_tightens_it():
    """Integration with minigen.generative.vae: the metric is -vae.elbo(...).elbo averaged,
    drawn with the same noise; IWAE with k = 1 estimates the same quantity, k = 64 less."""
    x = data.load("digits", "test").inputs
    model = vae.MLPVAE(image_shape=(1, 8, 8), hidden_dim=32, latent_dim=4).train()
    minigen.manual_seed(5)
    value = metrics.negative_elbo(model, x, batch_size=100)
    assert model.training
    minigen.manual_seed(5)
    model.eval()
    with minigen.no_grad():
        batches = [minigen.tensor(x[i : i + 100]) for i in range(0, len(x), 100)]
        expected = np.concatenate([-vae.elbo(b, *model(b)).elbo.numpy() for b in batches]).mean()
    assert value == pytest.approx(float(expected), rel=1e-6)
    one, many = metrics.iwae_nll(model, x, k=1), metrics.iwae_nll(model, x, k=64)
    assert one == pytest.approx(value, abs=0.3)  # the same estimator of -ELBO, other noise
    assert many < value and many < one


# --- the feature classifier ----------------------------------------------------------------------


def bars(n, seed, split="train"):
    """8x8 images of four classes: a bright bar at the top, bottom, left or right, plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(4, size=n)
    images = rng.uniform(0, 0.3, (n, 1, 8, 8))
    for i, label in enumerate(labels):
        where = [np.s_[0:2, :], np.s_[6:8, :], np.s_[:, 0:2], np.s_[:, 6:8]][label]
        images[i, 0][where] = rng.uniform(0.7, 1.0)
    return data.Dataset(images.astype(np.float32), labels, "bars", split, num_classes=4)


@pytest.fixture(scope="module")
def toy():
    return bars(192, seed=0), bars(96, seed=1, split="test")


@pytest.fixture(scope="module")
def trained(toy):
    return metrics.train_classifier(*toy, epochs=2, seed=0, batch_size=32)


def test_the_classifier_learns_the_toy_classes(toy, trained):
    model, accuracy = trained
    assert accuracy >= 0.95
    assert accuracy == metrics.classifier_accuracy(model, toy[1])
    assert not model.training
    x = minigen.tensor(toy[1].inputs[:5])
    with minigen.no_grad():
        features = model.features(x)
        assert features.shape == (5, 64) and features.numpy().min() >= 0  # after a ReLU
        np.testing.assert_allclose(model(x).numpy(), model.head(features).numpy(), rtol=1e-6)


def test_the_same_seed_gives_the_same_classifier_whatever_minigens_random_state(toy, trained):
    minigen.manual_seed(3)
    again, accuracy = metrics.train_classifier(*toy, epochs=2, seed=0, batch_size=32)
    assert accuracy == trained[1]
    for key, value in trained[0].state_dict().items():
        np.testing.assert_array_equal(again.state_dict()[key].numpy(), value.numpy(), err_msg=key)
    other, _ = metrics.train_classifier(*toy, epochs=1, seed=1, batch_size=32, train_size=64)
    assert not np.array_equal(other.head.weight.detach().numpy(), trained[0].head.weight.detach().numpy())


def test_the_classifier_needs_images():
    ring = data.load("ring", "test")
    with pytest.raises(ValueError, match="needs an image data set"):
        metrics.train_classifier(ring, ring, epochs=1)
    with pytest.raises(ValueError, match="at least 4 x 4"):
        metrics.FeatureClassifier((1, 3, 3))


@pytest.fixture
def toy_data(monkeypatch, toy):
    """minigen.data.load serving the toy set under the name "toy", and a count of trainings."""
    calls = []
    real_train = metrics.train_classifier

    def load(name, split="train", root=None):
        assert name == "toy"
        return toy[0] if split == "train" else toy[1]

    def counted(*args, **kwargs):
        calls.append(kwargs)
        return real_train(*args, **kwargs)

    monkeypatch.setattr(data, "load", load)
    monkeypatch.setattr(metrics, "train_classifier", counted)
    return calls


def test_the_classifier_is_trained_once_then_loaded_from_its_cache(tmp_path, toy_data):
    options = {"epochs": 1, "seed": 0, "progress": False}
    model, accuracy = metrics.load_or_train_classifier("toy", root=tmp_path, **options)
    path = tmp_path / "classifiers" / "toy-classifier.npz"
    assert path.is_file() and len(toy_data) == 1
    again, cached_accuracy = metrics.load_or_train_classifier("toy", root=tmp_path, **options)
    assert len(toy_data) == 1, "the second call must not train"
    assert cached_accuracy == accuracy and not again.training
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(again.state_dict()[key].numpy(), value.numpy(), err_msg=key)
    assert sorted(p.name for p in path.parent.iterdir()) == ["toy-classifier.npz"]  # no temporary files


def test_a_corrupted_or_mismatched_cache_is_retrained_and_replaced(tmp_path, toy_data):
    options = {"epochs": 1, "progress": False}
    metrics.load_or_train_classifier("toy", root=tmp_path, **options)
    path = metrics.classifier_path("toy", tmp_path)
    path.write_bytes(path.read_bytes()[:200])  # truncated
    with pytest.warns(UserWarning, match="cannot be used"):
        _, accuracy = metrics.load_or_train_classifier("toy", root=tmp_path, **options)
    assert len(toy_data) == 2
    assert minigen.load(path)["accuracy"] == accuracy  # a whole checkpoint again
    with pytest.warns(UserWarning, match="different configuration"):
        metrics.load_or_train_classifier("toy", root=tmp_path, seed=1, **options)
    assert len(toy_data) == 3 and minigen.load(path)["config"]["seed"] == 1
    minigen.save({"accuracy": 1.0}, path)  # a checkpoint, but not of a classifier
    with pytest.warns(UserWarning, match="missing entries"):
        metrics.load_or_train_classifier("toy", root=tmp_path, seed=1, **options)
    assert len(toy_data) == 4


def test_the_cache_lives_under_minigen_data_by_default(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIGEN_DATA", str(tmp_path))
    assert metrics.classifier_path("mnist") == tmp_path / "classifiers" / "mnist-classifier.npz"


# --- GAN image metrics ---------------------------------------------------------------------------


class PixelClassifier(nn.Module):
    """A stand-in with the classifier's interface: features are the four pixels of a 2x2 image
    and the predicted class is the brightest pixel."""

    image_shape, num_classes = (1, 2, 2), 4

    def __init__(self):
        super().__init__()
        self.head = nn.Identity()

    def features(self, x):
        return x.reshape(x.shape[0], 4)


def one_hot_images(classes):
    return np.eye(4)[classes].reshape(-1, 1, 2, 2)


def test_gan_image_metrics_count_classes_as_documented():
    counts = [21, 8, 2, 1]  # 32 samples: class 2 has 2/32 = 1/16, exactly the threshold 1/(4K)
    samples = one_hot_images(np.repeat(np.arange(4), counts)) * 0.9
    test_labels = np.array([0, 1, 2, 3, 0, 1, 2, 3])
    test_set = data.Dataset(one_hot_images([0, 1, 2, 3, 0, 1, 3, 2]), test_labels, "pixels", "test")
    result = metrics.gan_image_metrics(samples, test_set, PixelClassifier())
    p = np.array(counts) / 32
    assert result["class_counts"] == counts
    assert result["class_coverage"] == 0.75
    assert result["class_entropy"] == pytest.approx(-(p * np.log(p)).sum())
    assert result["class_kl_uniform"] == pytest.approx((p * np.log(p * 4)).sum())
    assert result["classifier_accuracy"] == 0.75
    expected_fd = metrics.frechet_distance(samples.reshape(32, 4), test_set.inputs.reshape(8, 4))
    assert result["frechet_distance"] == pytest.approx(expected_fd)
    json.dumps(result)


class ConfidentPixelClassifier(PixelClassifier):
    """PixelClassifier with logits 10 x the pixels: a lone pixel at 1 gives its class probability
    e^10 / (e^10 + 3) = 0.99986, one at 0.2 gives e^2 / (e^2 + 3) = 0.711."""

    def __init__(self):
        super().__init__()
        self.head = nn.Sequential(nn.Identity())
        self.head.forward = lambda f: f * 10.0


def test_confident_samples_is_the_share_above_the_threshold():
    samples = np.concatenate([one_hot_images([0, 1, 2]), 0.2 * one_hot_images([3, 3, 0, 1, 2])])
    test_set = data.Dataset(one_hot_images([0, 1, 2, 3]), np.arange(4), "pixels", "test")
    result = metrics.gan_image_metrics(samples, test_set, ConfidentPixelClassifier())
    assert metrics.CONFIDENT == 0.9 and result["confident_samples"] == 3 / 8
    assert metrics.gan_image_metrics(samples, test_set, PixelClassifier())["confident_samples"] == 0.0


def test_a_classifier_without_epochs_trains_at_least_1000_steps_and_3_epochs(toy, monkeypatch):
    assert metrics.classifier_epochs(1437) == 44  # the digits: 23 batches of 64 an epoch
    assert metrics.classifier_epochs(60_000) == 3  # MNIST: 938 batches
    assert metrics.classifier_epochs(100, batch_size=10) == 100
    seen = []
    monkeypatch.setattr(
        metrics, "_fit_classifier", lambda model, loader, opt, epochs, bar: seen.append(epochs)
    )
    metrics.train_classifier(*toy, batch_size=32)  # 192 images: 6 batches an epoch
    metrics.train_classifier(*toy, epochs=2, batch_size=32)
    assert seen == [167, 2]


def test_a_collapsed_generator_is_caught_by_the_trained_classifier(toy, trained):
    classifier, accuracy = trained
    train_set, test_set = toy
    honest = metrics.gan_image_metrics(train_set.inputs, test_set, classifier)
    collapsed = metrics.gan_image_metrics(train_set.inputs[train_set.labels == 2], test_set, classifier)
    assert honest["class_coverage"] == 1.0 and collapsed["class_coverage"] == 0.25
    assert honest["class_entropy"] > 0.95 * math.log(4) and collapsed["class_entropy"] < 0.2
    assert collapsed["frechet_distance"] > 10 * honest["frechet_distance"]
    assert honest["classifier_accuracy"] == accuracy


def test_gan_image_metrics_reject_samples_that_do_not_fit(trained, toy):
    with pytest.raises(ValueError, match=r"\(N, 1, 8, 8\); got \(4, 1, 4, 4\)"):
        metrics.gan_image_metrics(np.zeros((4, 1, 4, 4)), toy[1], trained[0])
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        metrics.gan_image_metrics(np.full((4, 1, 8, 8), -1.0), toy[1], trained[0])


def test_an_untrained_gan_is_far_from_the_digits():
    """Integration with minigen.data and minigen.generative.gan on the bundled digits."""
    train_set, test_set = data.load("digits", "train"), data.load("digits", "test")
    classifier, accuracy = metrics.train_classifier(train_set, test_set, epochs=2)
    assert accuracy >= 0.9
    generator = gan.MLPGAN(data_shape=(1, 8, 8), noise_dim=8, hidden_dims=(16,))
    untrained = metrics.gan_image_metrics(generator.sample(360), test_set, classifier)
    real = metrics.gan_image_metrics(train_set.inputs[:360], test_set, classifier)
    assert real["class_coverage"] == 1.0
    assert untrained["frechet_distance"] > 5 * real["frechet_distance"]


def test_classifier_cache_falls_back_from_a_read_only_data_folder(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o555)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    try:
        path = metrics.classifier_path("mnist", root=shared)
        assert path == tmp_path / "home" / ".cache" / "minigen" / "classifiers" / "mnist-classifier.npz"
    finally:
        shared.chmod(0o755)
    writable = tmp_path / "data"
    writable.mkdir()
    assert (
        metrics.classifier_path("mnist", root=writable) == writable / "classifiers" / "mnist-classifier.npz"
    )
