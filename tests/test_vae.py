"""The VAE: the closed-form KL against Monte Carlo and the textbook formula, the
reparameterisation gradient against the gradient of the expectation, the log-likelihoods
against formulas written out with NumPy and SciPy, first and second derivatives, the IWAE
bound on probabilistic PCA (where log p(x) is known exactly), and the MLP and conv models."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats

import minigen
from minigen import nn
from minigen.generative.vae import (
    ELBO,
    MLPVAE,
    ConvVAE,
    bernoulli_log_likelihood,
    elbo,
    gaussian_kl,
    gaussian_log_likelihood,
    image_log_likelihood,
    iwae_bound,
    reparameterize,
)
from minigen.gradcheck import gradcheck, gradgradcheck
from minigen.testing import arrays, shapes

BATCH_SHAPES = shapes(min_dims=1, max_dims=3, max_side=3)


def f64(values, requires_grad=False):
    return minigen.tensor(np.asarray(values, dtype=np.float64), requires_grad=requires_grad)


def check_gradients(fn, inputs):
    assert gradcheck(fn, inputs)
    assert gradgradcheck(fn, inputs)


def bounded(shape, low, high):
    return hnp.arrays(np.float64, shape, elements=st.floats(low, high, allow_nan=False))


COEFFICIENTS = bounded((3,), -2.0, 2.0)  # a and b of the quadratic test function


@st.composite
def gaussians(draw, shape=None, max_abs_mu=2.0, logvar_range=(-2.0, 1.5)):
    """(mu, logvar) NumPy arrays of one shape with a batch dimension, from bounded ranges."""
    shape = draw(BATCH_SHAPES) if shape is None else shape
    return draw(bounded(shape, -max_abs_mu, max_abs_mu)), draw(bounded(shape, *logvar_range))


# --- gaussian_kl ------------------------------------------------------------------------------


@given(gaussians())
def test_kl_matches_monte_carlo(pair):
    mu, logvar = pair
    kl = gaussian_kl(f64(mu), f64(logvar)).numpy()
    samples = 20_000
    eps = np.random.default_rng(0).standard_normal((samples,) + mu.shape)
    z = mu + np.exp(logvar / 2) * eps
    # log q(z) - log p(z) per entry; the log(2 pi) terms cancel.
    log_ratio = -0.5 * (logvar + eps**2) + 0.5 * z**2
    per_example = log_ratio.reshape(samples, mu.shape[0], -1).sum(axis=2)
    estimate = per_example.mean(axis=0)
    standard_error = per_example.std(axis=0) / math.sqrt(samples)
    assert kl.shape == mu.shape[:1]
    assert np.all(np.abs(kl - estimate) <= 5 * standard_error + 1e-9)


@given(gaussians())
def test_kl_matches_the_textbook_multivariate_formula(pair):
    """KL(N(m, S) || N(0, I)) = (tr S + m^T m - D - log det S) / 2 with S = diag(exp(logvar))."""
    mu, logvar = pair
    kl = gaussian_kl(f64(mu), f64(logvar)).numpy()
    for n in range(mu.shape[0]):
        m, covariance = mu[n].reshape(-1), np.diag(np.exp(logvar[n].reshape(-1)))
        expected = 0.5 * (np.trace(covariance) + m @ m - m.size - np.linalg.slogdet(covariance)[1])
        assert kl[n] == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_kl_is_exactly_zero_at_the_prior_and_keeps_float32(device):
    zero = minigen.zeros(3, 4, device=device)
    kl = gaussian_kl(zero, zero)
    assert kl.dtype == minigen.float32 and kl.device == device and kl.shape == (3,)
    assert np.array_equal(kl.numpy(), np.zeros(3, dtype=np.float32))


@given(gaussians(shape=(2, 3)))
def test_kl_gradients(pair):
    mu, logvar = pair
    check_gradients(gaussian_kl, [f64(mu, True), f64(logvar, True)])


# --- reparameterize ---------------------------------------------------------------------------


def test_reparameterize_draws_eps_with_randn_like(device):
    mu = minigen.tensor([[0.5, -1.0, 2.0]], device=device)
    logvar = minigen.tensor([[0.0, 1.0, -2.0]], device=device)
    minigen.manual_seed(7)
    z = reparameterize(mu, logvar)
    minigen.manual_seed(7)
    eps = minigen.randn_like(mu)
    assert z.dtype == minigen.float32 and z.device == device
    expected = mu.numpy() + np.exp(logvar.numpy() / 2) * eps.numpy()
    np.testing.assert_allclose(z.numpy(), expected, rtol=1e-6)


def quadratic(z, a, b):
    """f(z) = sum(a z^2 + b z) over the last dimension."""
    return (a * z * z + b * z).sum(dim=-1)


@given(gaussians(shape=(1, 3)), COEFFICIENTS, COEFFICIENTS)
def test_reparameterised_gradient_matches_the_gradient_of_the_expectation(pair, a, b):
    """E[f(z)] = sum(a (mu^2 + s^2) + b mu) with s^2 = exp(logvar), so its gradient is
    2 a mu + b in mu and a exp(logvar) in logvar; the average pathwise gradient over many eps
    must agree within Monte Carlo error."""
    (mu,), (logvar,) = pair
    samples = 40_000
    mu_t, logvar_t = f64(mu, True), f64(logvar, True)
    shape = (samples, 3)
    z = reparameterize(minigen.broadcast_to(mu_t, shape), minigen.broadcast_to(logvar_t, shape))
    quadratic(z, f64(a), f64(b)).mean().backward()
    # Per-sample gradients, u = s eps: 2 a (mu + u) + b in mu, with variance 4 a^2 s^2; and
    # a u^2 + (a mu + b/2) u in logvar, with variance 2 a^2 s^4 + (a mu + b/2)^2 s^2.
    s2 = np.exp(logvar)
    se_mu = np.sqrt(4 * a**2 * s2 / samples)
    se_logvar = np.sqrt((2 * a**2 * s2**2 + (a * mu + b / 2) ** 2 * s2) / samples)
    assert np.all(np.abs(mu_t.grad.numpy() - (2 * a * mu + b)) <= 5 * se_mu + 1e-9)
    assert np.all(np.abs(logvar_t.grad.numpy() - a * s2) <= 5 * se_logvar + 1e-9)


@given(gaussians(shape=(4, 3)), bounded((4, 3), -3.0, 3.0), COEFFICIENTS, COEFFICIENTS)
def test_reparameterize_with_given_eps_has_the_exact_pathwise_gradient(pair, eps, a, b):
    mu, logvar = pair
    mu_t, logvar_t = f64(mu, True), f64(logvar, True)
    z = reparameterize(mu_t, logvar_t, f64(eps))
    std = np.exp(logvar / 2)
    np.testing.assert_allclose(z.detach().numpy(), mu + std * eps, rtol=1e-14)
    quadratic(z, f64(a), f64(b)).sum().backward()
    df_dz = 2 * a * (mu + std * eps) + b
    np.testing.assert_allclose(mu_t.grad.numpy(), df_dz, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(logvar_t.grad.numpy(), df_dz * std * eps / 2, rtol=1e-12, atol=1e-12)


@given(gaussians(shape=(2, 3)), bounded((2, 3), -3.0, 3.0))
def test_reparameterize_gradients(pair, eps):
    check_gradients(reparameterize, [f64(pair[0], True), f64(pair[1], True), f64(eps, True)])


# --- log-likelihoods and the ELBO -------------------------------------------------------------


def per_example(values):
    return values.reshape(values.shape[0], -1).sum(axis=1)


@given(st.data())
def test_bernoulli_log_likelihood_matches_the_formula(data):
    shape = data.draw(BATCH_SHAPES)
    x, logits = data.draw(arrays(shape, "unit")), data.draw(arrays(shape))
    p = 1 / (1 + np.exp(-logits))
    expected = per_example(x * np.log(p) + (1 - x) * np.log(1 - p))
    got = bernoulli_log_likelihood(f64(x), f64(logits)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_bernoulli_log_likelihood_is_finite_at_huge_logits():
    x = f64([[1.0, 0.0, 1.0, 0.0]])
    logits = f64([[1e4, -1e4, -1e4, 1e4]])
    np.testing.assert_allclose(bernoulli_log_likelihood(x, logits).numpy(), [-2e4])


@given(st.data())
def test_gaussian_log_likelihood_matches_the_formula_and_scipy(data):
    shape = data.draw(BATCH_SHAPES)
    x, mean, logvar = (data.draw(arrays(shape)) for _ in range(3))
    expected = per_example(-0.5 * (np.log(2 * np.pi) + logvar + (x - mean) ** 2 / np.exp(logvar)))
    got = gaussian_log_likelihood(f64(x), f64(mean), f64(logvar)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    scipy_value = per_example(stats.norm.logpdf(x, loc=mean, scale=np.exp(logvar / 2)))
    np.testing.assert_allclose(got, scipy_value, rtol=1e-10, atol=1e-10)


def test_gaussian_log_likelihood_with_a_number_or_a_shared_logvar():
    x, mean = np.arange(6.0).reshape(2, 3) / 4, np.ones((2, 3))
    for logvar in (0.0, -1.5):
        expected = per_example(stats.norm.logpdf(x, loc=mean, scale=np.exp(logvar / 2)))
        got = gaussian_log_likelihood(f64(x), f64(mean), logvar).numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-12)
    shared = np.array([0.5, -1.0, 0.0])  # one variance per coordinate, shared by the batch
    expected = per_example(stats.norm.logpdf(x, loc=mean, scale=np.exp(shared / 2)))
    np.testing.assert_allclose(gaussian_log_likelihood(f64(x), f64(mean), f64(shared)).numpy(), expected)


@given(st.data())
def test_log_likelihood_gradients(data):
    shape = data.draw(shapes(min_dims=1, max_dims=3, max_side=2))
    x, logits = data.draw(arrays(shape, "unit")), data.draw(arrays(shape))
    check_gradients(bernoulli_log_likelihood, [f64(x, True), f64(logits, True)])
    logvar_shape = data.draw(st.sampled_from([shape, shape[1:], (1,) * len(shape)]))
    logvar = data.draw(bounded(logvar_shape, -1.5, 1.5))
    check_gradients(gaussian_log_likelihood, [f64(x, True), f64(logits, True), f64(logvar, True)])
    check_gradients(lambda x, m: gaussian_log_likelihood(x, m, -0.5), [f64(x, True), f64(logits, True)])


@pytest.mark.parametrize("beta", [0.0, 1.0, 4.0])
def test_elbo_is_reconstruction_minus_beta_kl(beta):
    rng = np.random.default_rng(1)
    x = (rng.random((3, 1, 2, 2)) > 0.5).astype(np.float64)
    logits, mu, logvar = rng.normal(size=(3, 1, 2, 2)), rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
    result = elbo(f64(x), f64(logits), f64(mu), f64(logvar), beta=beta)
    assert isinstance(result, ELBO) and result._fields == ("elbo", "reconstruction", "kl")
    p = 1 / (1 + np.exp(-logits))
    reconstruction = per_example(x * np.log(p) + (1 - x) * np.log(1 - p))
    kl = 0.5 * (mu**2 + np.exp(logvar) - logvar - 1).sum(axis=1)
    np.testing.assert_allclose(result.reconstruction.numpy(), reconstruction, rtol=1e-12)
    np.testing.assert_allclose(result.kl.numpy(), kl, rtol=1e-12)
    np.testing.assert_allclose(result.elbo.numpy(), reconstruction - beta * kl, rtol=1e-12)


@given(st.data())
def test_elbo_gradients(data):
    x = data.draw(arrays((2, 1, 2, 2), "unit"))
    logits, mu, logvar = data.draw(arrays((2, 1, 2, 2))), data.draw(arrays((2, 3))), data.draw(arrays((2, 3)))
    beta = data.draw(st.sampled_from([0.5, 1.0, 2.0]))
    inputs = [f64(v, True) for v in (x, logits, mu, logvar)]
    check_gradients(lambda *args: tuple(elbo(*args, beta=beta)), inputs)


def zeros64(*shape):
    return f64(np.zeros(shape))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: gaussian_kl(zeros64(2, 3), zeros64(2, 4)), r"\(2, 3\) and logvar of shape \(2, 4\)"),
        (lambda: gaussian_kl(f64(0.0), f64(0.0)), "batch dimension"),
        (lambda: reparameterize(zeros64(2, 3), zeros64(2, 3), zeros64(3)), "eps of shape"),
        (lambda: bernoulli_log_likelihood(zeros64(2, 3), zeros64(3, 2)), "logits of shape"),
        (lambda: gaussian_log_likelihood(zeros64(2, 3), zeros64(2, 3), zeros64(2)), "logvar of shape"),
        (lambda: elbo(zeros64(2, 4), zeros64(2, 4), zeros64(3, 2), zeros64(3, 2)), "2 examples"),
    ],
)  # fmt: skip
def test_bad_arguments_raise_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_non_tensor_and_integer_inputs_are_rejected():
    with pytest.raises(TypeError, match="must be a Tensor"):
        gaussian_kl(np.zeros((2, 3)), f64(np.zeros((2, 3))))
    labels = minigen.tensor(np.zeros((2, 3), dtype=np.int64))
    with pytest.raises(TypeError, match="floating"):
        bernoulli_log_likelihood(labels, f64(np.zeros((2, 3))))


# --- the IWAE bound on probabilistic PCA ------------------------------------------------------


class ProbabilisticPCA(nn.Module):
    """p(z) = N(0, I), p(x|z) = N(W z + b, sigma^2 I), and a Gaussian encoder whose mean is
    ``shrink`` times the exact posterior mean and whose variance is ``inflate`` times the exact
    posterior variance (shrink = inflate = 1: the exact posterior). W has orthogonal columns, so
    the exact posterior covariance (I + W^T W / sigma^2)^-1 is diagonal, as the encoder's is."""

    def __init__(self, seed=1, x_dim=5, scales=(2.0, 1.0), sigma=0.5, shrink=1.0, inflate=1.0):
        super().__init__()
        rng = np.random.default_rng(seed)
        q, _ = np.linalg.qr(rng.standard_normal((x_dim, len(scales))))
        self.W_np, self.b_np, self.sigma = q * np.asarray(scales), rng.standard_normal(x_dim), sigma
        posterior_var = 1 / (1 + (self.W_np**2).sum(axis=0) / sigma**2)
        self.A_np = shrink * posterior_var[:, None] * self.W_np.T / sigma**2  # mean = A (x - b)
        self.var_np = inflate * posterior_var
        self.W, self.b, self.A = f64(self.W_np), f64(self.b_np), f64(self.A_np)
        self.logvar = f64(np.log(self.var_np))
        self.latent_dim = len(scales)

    def encode(self, x):
        mu = (x - self.b) @ self.A.T
        return mu, minigen.broadcast_to(self.logvar, mu.shape)

    def decode(self, z):
        return z @ self.W.T + self.b

    def log_likelihood(self, x, out):
        return gaussian_log_likelihood(x, out, 2 * math.log(self.sigma))

    def data(self, n, seed=2):
        rng = np.random.default_rng(seed)
        z = rng.standard_normal((n, self.latent_dim))
        return z @ self.W_np.T + self.b_np + self.sigma * rng.standard_normal((n, self.b_np.size))

    def exact_log_px(self, x):
        """log N(x; b, W W^T + sigma^2 I)."""
        covariance = self.W_np @ self.W_np.T + self.sigma**2 * np.eye(self.b_np.size)
        d = x - self.b_np
        mahalanobis = np.einsum("ni,ni->n", d, np.linalg.solve(covariance, d.T).T)
        return -0.5 * (d.shape[1] * np.log(2 * np.pi) + np.linalg.slogdet(covariance)[1] + mahalanobis)

    def exact_elbo(self, x):
        """E_q[log p(x|z)] - KL(q || p), both in closed form."""
        mu, var = (x - self.b_np) @ self.A_np.T, self.var_np
        residual = x - self.b_np - mu @ self.W_np.T
        spread = ((self.W_np**2) @ var).sum()  # E||W (z - mu)||^2 = tr(W diag(var) W^T)
        reconstruction = -0.5 * (
            x.shape[1] * np.log(2 * np.pi * self.sigma**2)
            + ((residual**2).sum(axis=1) + spread) / self.sigma**2
        )
        return reconstruction - 0.5 * (mu**2 + var - np.log(var) - 1).sum(axis=1)


def test_iwae_and_elbo_equal_log_px_exactly_with_the_exact_posterior():
    model = ProbabilisticPCA()
    x = model.data(16)
    log_px = model.exact_log_px(x)
    np.testing.assert_allclose(model.exact_elbo(x), log_px, rtol=1e-12)
    for k in (1, 10):
        # Every importance weight equals p(x): the estimate has zero variance.
        np.testing.assert_allclose(iwae_bound(model, f64(x), k).numpy(), log_px, rtol=1e-12)


def test_iwae_rises_from_the_elbo_towards_log_px_with_k():
    model = ProbabilisticPCA(shrink=0.5, inflate=3.0)
    x = model.data(64)
    repeats = 16  # independent draws of the bound for each example, to shrink the noise
    log_px, elbo_values = model.exact_log_px(x).mean(), model.exact_elbo(x).mean()
    assert log_px - elbo_values > 2.0  # the encoder is poor: the ELBO is far below log p(x)
    means = {}
    for k in (1, 10, 100, 1000):
        values = iwae_bound(model, f64(np.tile(x, (repeats, 1))), k).numpy()
        means[k], standard_error = values.mean(), values.std() / math.sqrt(values.size)
        assert means[k] <= log_px + 4 * standard_error
        if k == 1:  # one sample: an unbiased estimate of the ELBO
            assert abs(means[1] - elbo_values) <= 4 * standard_error
    # The gaps to log p(x) are about 2.8, 0.28, 0.03 and 0.002, each well beyond the noise.
    assert means[1] < means[10] < means[100] < means[1000]
    assert log_px - means[1000] < 0.02


def test_iwae_chunks_combine_exactly():
    """The bound from one stream of eps, however it is cut into chunks, equals the log-mean-exp
    of the log-weights computed here with NumPy from the same eps."""
    model = ProbabilisticPCA(shrink=0.8, inflate=1.5)
    x, k = model.data(6), 50
    minigen.manual_seed(5)
    eps = minigen.randn(k, 6, 2, dtype=minigen.float64).numpy()
    mu, std = (x - model.b_np) @ model.A_np.T, np.sqrt(model.var_np)
    z = mu + std * eps
    log_px_z = stats.norm.logpdf(x, loc=z @ model.W_np.T + model.b_np, scale=model.sigma).sum(axis=2)
    log_pz = stats.norm.logpdf(z).sum(axis=2)
    log_qz = stats.norm.logpdf(z, loc=mu, scale=std).sum(axis=2)
    log_w = log_px_z + log_pz - log_qz
    expected = np.log(np.exp(log_w - log_w.max(axis=0)).mean(axis=0)) + log_w.max(axis=0)
    for chunk in (1, 7, 50, 1000, None):
        minigen.manual_seed(5)
        np.testing.assert_allclose(iwae_bound(model, f64(x), k, chunk=chunk).numpy(), expected, rtol=1e-12)


def test_iwae_rejects_bad_sample_counts():
    model, x = ProbabilisticPCA(), f64(np.zeros((2, 5)))
    for k in (0, 2.5, True):
        with pytest.raises(ValueError, match="k must be a positive int"):
            iwae_bound(model, x, k)
    with pytest.raises(ValueError, match="chunk must be a positive int"):
        iwae_bound(model, x, 4, chunk=0)


# --- models -----------------------------------------------------------------------------------


def test_mlp_vae_has_the_pytorch_example_layers():
    model = MLPVAE()
    shapes_by_key = {key: value.shape for key, value in model.state_dict().items()}
    assert shapes_by_key == {
        "fc1.weight": (400, 784), "fc1.bias": (400,),
        "fc21.weight": (20, 400), "fc21.bias": (20,),
        "fc22.weight": (20, 400), "fc22.bias": (20,),
        "fc3.weight": (400, 20), "fc3.bias": (400,),
        "fc4.weight": (784, 400), "fc4.bias": (784,),
    }  # fmt: skip
    assert sum(p.numel() for p in model.parameters()) == 652_824  # as torch counts the example's


def test_mlp_vae_computes_the_pytorch_example_forward():
    """encode: h = relu(fc1(x)), (fc21(h), fc22(h)); decode: fc4(relu(fc3(z))), here as logits."""
    model = MLPVAE((1, 3, 2), hidden_dim=5, latent_dim=2).double()
    w = {key: value.detach().numpy() for key, value in model.state_dict().items()}

    def layer(name, v):
        return v @ w[name + ".weight"].T + w[name + ".bias"]

    x = np.random.default_rng(0).random((4, 1, 3, 2))
    h = np.maximum(layer("fc1", x.reshape(4, 6)), 0)
    mu, logvar = model.encode(f64(x))
    np.testing.assert_allclose(mu.detach().numpy(), layer("fc21", h), rtol=1e-12)
    np.testing.assert_allclose(logvar.detach().numpy(), layer("fc22", h), rtol=1e-12)
    z = np.random.default_rng(1).standard_normal((4, 2))
    logits = layer("fc4", np.maximum(layer("fc3", z), 0)).reshape(4, 1, 3, 2)
    np.testing.assert_allclose(model.decode(f64(z)).detach().numpy(), logits, rtol=1e-12)


def test_deeper_mlp_vae_adds_relu_layers_after_fc1_and_fc3():
    """hidden_layers=3: h = relu(e1(relu(e0(relu(fc1(x)))))) and likewise after fc3."""
    model = MLPVAE((1, 3, 2), hidden_dim=5, latent_dim=2, hidden_layers=3).double()
    w = {key: value.detach().numpy() for key, value in model.state_dict().items()}
    extra = [
        f"{side}_hidden.{i}.{p}"
        for side in ("encoder", "decoder")
        for i in (0, 2)
        for p in ("weight", "bias")
    ]
    assert sorted(k for k in w if "hidden" in k) == sorted(extra)

    def layer(name, v):
        return v @ w[name + ".weight"].T + w[name + ".bias"]

    def relu_chain(v, first, side):
        v = np.maximum(layer(first, v), 0)
        for i in (0, 2):  # Sequential indices of the Linear layers (1 and 3 are the ReLUs)
            v = np.maximum(layer(f"{side}_hidden.{i}", v), 0)
        return v

    x = np.random.default_rng(0).random((4, 1, 3, 2))
    h = relu_chain(x.reshape(4, 6), "fc1", "encoder")
    mu, logvar = model.encode(f64(x))
    np.testing.assert_allclose(mu.detach().numpy(), layer("fc21", h), rtol=1e-12)
    np.testing.assert_allclose(logvar.detach().numpy(), layer("fc22", h), rtol=1e-12)
    z = np.random.default_rng(1).standard_normal((4, 2))
    logits = layer("fc4", relu_chain(z, "fc3", "decoder")).reshape(4, 1, 3, 2)
    np.testing.assert_allclose(model.decode(f64(z)).detach().numpy(), logits, rtol=1e-12)
    with pytest.raises(ValueError, match="hidden_layers must be a positive int, got 0"):
        MLPVAE(hidden_layers=0)


@given(hnp.arrays(np.float64, (3, 1, 2, 2), elements=st.floats(0, 1)), bounded((3, 1, 2, 2), -6.0, 6.0))
def test_the_gaussian_image_likelihood_is_a_normal_density_around_the_mean_image(x, logits):
    """log p(x|z) = sum over pixels of log N(x; sigmoid(l), PIXEL_STD^2), checked with scipy."""
    from minigen.generative.vae import PIXEL_STD

    mean = 1 / (1 + np.exp(-logits))
    expected = stats.norm.logpdf(x, mean, PIXEL_STD).reshape(3, -1).sum(axis=1)
    got = image_log_likelihood(f64(x), f64(logits), "gaussian").numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    bern = image_log_likelihood(f64(x), f64(logits), "bernoulli").numpy()
    np.testing.assert_allclose(bern, bernoulli_log_likelihood(f64(x), f64(logits)).numpy(), rtol=0, atol=0)
    model = MLPVAE((1, 2, 2), hidden_dim=3, latent_dim=1, likelihood="gaussian").double()
    from_model = model.log_likelihood(f64(x), f64(logits)).numpy()
    np.testing.assert_allclose(from_model, expected, rtol=1e-12, atol=1e-12)


@given(bounded((2, 1, 2, 2), 0.0, 1.0), bounded((2, 1, 2, 2), -4.0, 4.0))
def test_gaussian_image_likelihood_gradients(x, logits):
    target = f64(x)
    check_gradients(
        lambda lg: image_log_likelihood(target, lg, "gaussian"), [f64(logits, requires_grad=True)]
    )


def test_a_model_s_likelihood_is_its_elbo_s():
    minigen.manual_seed(0)
    model = MLPVAE((1, 2, 2), hidden_dim=3, latent_dim=1, likelihood="gaussian").double()
    x = f64(np.random.default_rng(2).random((5, 1, 2, 2)))
    out, mu, logvar = model(x)
    terms = elbo(x, out, mu, logvar, log_likelihood=model.log_likelihood)
    got = terms.reconstruction.detach().numpy()
    np.testing.assert_allclose(got, image_log_likelihood(x, out, "gaussian").detach().numpy())
    assert not np.allclose(got, elbo(x, out, mu, logvar).reconstruction.detach().numpy())
    with pytest.raises(ValueError, match="likelihood must be one of bernoulli, gaussian, got 'laplace'"):
        ConvVAE((1, 8, 8), likelihood="laplace")


@pytest.mark.parametrize("model_class", [MLPVAE, ConvVAE])
@pytest.mark.parametrize("image_shape", [(1, 28, 28), (1, 8, 8)])
def test_models_follow_the_protocol(model_class, image_shape):
    model = model_class(image_shape=image_shape, latent_dim=3)
    assert model.latent_dim == 3 and model.image_shape == image_shape
    x = minigen.rand(2, *image_shape)
    logits, mu, logvar = model(x)
    assert logits.shape == (2, *image_shape) and mu.shape == logvar.shape == (2, 3)
    assert model.encode(x)[0].shape == (2, 3) and model.decode(mu).shape == (2, *image_shape)
    np.testing.assert_allclose(
        model.log_likelihood(x, logits).detach().numpy(), bernoulli_log_likelihood(x, logits).detach().numpy()
    )
    minigen.manual_seed(3)
    samples = model.sample(5)
    minigen.manual_seed(3)
    from_prior = model.decode(minigen.randn(5, 3)).detach().numpy()
    np.testing.assert_allclose(samples.numpy(), 1 / (1 + np.exp(-from_prior)), rtol=1e-5, atol=1e-7)
    assert samples.shape == (5, *image_shape) and samples.dtype == minigen.float32
    assert not samples.requires_grad
    assert samples.numpy().min() >= 0.0 and samples.numpy().max() <= 1.0
    reconstruction = model.reconstruct(x)
    expected = 1 / (1 + np.exp(-model.decode(model.encode(x)[0]).detach().numpy()))
    assert not reconstruction.requires_grad
    np.testing.assert_allclose(reconstruction.numpy(), expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    "image_shape, feature_side", [((1, 28, 28), 7), ((1, 8, 8), 2), ((3, 16, 12), (4, 3))]
)
def test_conv_vae_halves_the_image_twice(image_shape, feature_side):
    rows, cols = feature_side if isinstance(feature_side, tuple) else (feature_side, feature_side)
    model = ConvVAE(image_shape, latent_dim=4)
    features = model.encoder(minigen.zeros(1, *image_shape))
    assert features.shape == (1, 64 * rows * cols) and model.fc_mu.in_features == 64 * rows * cols


@pytest.mark.parametrize("image_shape", [(1, 10, 10), (1, 28, 30), (28, 28)])
def test_conv_vae_rejects_sizes_it_cannot_handle(image_shape):
    with pytest.raises(ValueError, match="multiples of 4"):
        ConvVAE(image_shape)


def test_models_reject_wrong_input_shapes():
    model = MLPVAE((1, 8, 8), latent_dim=2)
    with pytest.raises(ValueError, match=r"expects images of shape \(N, 1, 8, 8\); got \(2, 64\)"):
        model(minigen.zeros(2, 64))
    with pytest.raises(ValueError, match=r"expects latents of shape \(N, 2\); got \(2, 3\)"):
        model.decode(minigen.zeros(2, 3))
    with pytest.raises(ValueError, match="latent_dim"):
        MLPVAE(latent_dim=0)


@pytest.mark.parametrize("model_class", [MLPVAE, ConvVAE])
def test_a_few_adam_steps_raise_the_elbo(model_class):
    """Binary 8x8 images drawn from four prototypes (each pixel flipped with probability 0.1)."""
    rng = np.random.default_rng(0)
    prototypes = rng.random((4, 1, 8, 8)) < 0.5
    images = prototypes[rng.integers(0, 4, size=32)] ^ (rng.random((32, 1, 8, 8)) < 0.1)
    x = minigen.tensor(images.astype(np.float32))
    model = model_class((1, 8, 8), latent_dim=2)
    optimizer = minigen.optim.Adam(model.parameters(), lr=3e-3)

    def loss():
        logits, mu, logvar = model(x)
        return -elbo(x, logits, mu, logvar).elbo.mean()

    def evaluate():
        minigen.manual_seed(1)  # the same eps before and after training
        with minigen.no_grad():
            return loss().item()

    before = evaluate()
    for _ in range(25):
        optimizer.zero_grad()
        loss().backward()
        optimizer.step()
    after = evaluate()
    assert after < 0.8 * before


def test_iwae_on_an_image_model(device):
    model = MLPVAE((1, 8, 8), hidden_dim=16, latent_dim=2).to(device)
    x = (minigen.rand(4, 1, 8, 8, device=device) > 0.5).float()
    bound = iwae_bound(model, x, k=20, chunk=6)
    assert bound.shape == (4,) and bound.dtype == minigen.float32 and bound.device == device
    assert not bound.requires_grad and np.all(np.isfinite(bound.numpy()))
    assert model.sample(3).device == device
