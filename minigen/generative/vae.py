"""Variational autoencoders: the reparameterisation trick, the ELBO's pieces, the IWAE bound,
and an MLP and a convolutional VAE for images.

The VAE is Kingma & Welling (2013), "Auto-Encoding Variational Bayes", and, independently,
Rezende, Mohamed & Wierstra (2014), "Stochastic Backpropagation and Approximate Inference in
Deep Generative Models". The importance-weighted bound is Burda, Grosse & Salakhutdinov
(2015), "Importance Weighted Autoencoders".

Every VAE model follows one protocol, which ``iwae_bound`` relies on: ``encode(x) -> (mu,
logvar)``, each (N, latent_dim), the Gaussian q(z|x) = N(mu, diag exp(logvar));
``decode(z) -> out``, the parameters of p(x|z); ``log_likelihood(x, out) -> (N,)``, log p(x|z);
``model(x) -> (out, mu, logvar)``; ``latent_dim``; and ``sample(n)``. The prior is N(0, I).
"""

from __future__ import annotations

import math
from typing import NamedTuple

from minigen import functional as F
from minigen import nn
from minigen.autograd import no_grad
from minigen.creation import randn, randn_like
from minigen.ops.elementwise import exp, sigmoid
from minigen.ops.reduce import logsumexp
from minigen.ops.shape import broadcast_to, reshape, stack
from minigen.tensor import Tensor

LOG_2PI = math.log(2.0 * math.pi)

# The image VAEs' likelihoods p(x|z), both parametrised by the decoder's logits l:
# "bernoulli" is Bernoulli(sigmoid(l)) per pixel; "gaussian" is N(sigmoid(l), PIXEL_STD^2) per
# pixel, for grey levels read as intensities. 0.2 is what made the 8x8 digits' reconstructions
# and samples recognisable in our sweep of 0.15-0.25 (chapter 07, section 7.4).
LIKELIHOODS = ("bernoulli", "gaussian")
PIXEL_STD = 0.2

# iwae_bound's default pass size: as many samples per pass as keep samples * N decoded rows
# within this budget (32 samples for a batch of 128 MNIST images).
IWAE_ROWS_PER_PASS = 4096


class ELBO(NamedTuple):
    """The evidence lower bound and its two terms, each of shape (N,):
    elbo = reconstruction - beta * kl."""

    elbo: Tensor
    reconstruction: Tensor
    kl: Tensor


# --- argument checks ----------------------------------------------------------------------------


def _check_tensor(name: str, what: str, t) -> None:
    if not isinstance(t, Tensor):
        raise TypeError(f"{name}: {what} must be a Tensor, got {type(t).__name__}")
    if t.dtype.kind != "f":
        raise TypeError(f"{name}: {what} must be a floating tensor, got {t.dtype}")
    if t.ndim == 0:
        raise ValueError(f"{name}: {what} must have a batch dimension (N, ...), got a 0-d tensor")


def _check_same_shape(name: str, a_name: str, a, b_name: str, b) -> None:
    _check_tensor(name, a_name, a)
    _check_tensor(name, b_name, b)
    if a.shape != b.shape:
        raise ValueError(f"{name}: {a_name} of shape {a.shape} and {b_name} of shape {b.shape} must match")


def _per_example_sum(t: Tensor) -> Tensor:
    """Sum over every dimension but the first: (N, ...) -> (N,)."""
    return reshape(t, t.shape[0], math.prod(t.shape[1:])).sum(dim=1)


def _standard_normal_log_density(eps: Tensor) -> Tensor:
    """log N(eps; 0, I) = -0.5 * sum(eps^2 + log(2 pi)) over the last dimension."""
    return -0.5 * (eps * eps + LOG_2PI).sum(dim=-1)


# --- the objective ------------------------------------------------------------------------------


def reparameterize(mu: Tensor, logvar: Tensor, eps: Tensor | None = None) -> Tensor:
    """A draw z ~ N(mu, diag exp(logvar)) written as a differentiable function of mu and logvar:

    z = mu + exp(logvar / 2) * eps,  eps ~ N(0, I),

    so dz/dmu = 1 and dz/dlogvar = exp(logvar / 2) * eps / 2 (the pathwise gradient). ``eps``
    is drawn with ``randn_like(mu)`` (same shape, dtype and device) when None.
    """
    _check_same_shape("reparameterize", "mu", mu, "logvar", logvar)
    if eps is None:
        eps = randn_like(mu)
    else:
        _check_same_shape("reparameterize", "mu", mu, "eps", eps)
    return mu + exp(logvar * 0.5) * eps


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, diag exp(logvar)) || N(0, I)) per example, in closed form:

    KL = 0.5 * sum(mu^2 + exp(logvar) - logvar - 1) over all non-batch dims -> (N,).

    VJPs: d/dmu = mu, d/dlogvar = (exp(logvar) - 1) / 2 (each times the example's gradient).
    """
    _check_same_shape("gaussian_kl", "mu", mu, "logvar", logvar)
    return 0.5 * _per_example_sum(mu * mu + exp(logvar) - logvar - 1.0)


def bernoulli_log_likelihood(x: Tensor, logits: Tensor) -> Tensor:
    """log p(x | logits) = sum(x log sigmoid(l) + (1 - x) log(1 - sigmoid(l))) over non-batch dims

    = -sum of binary_cross_entropy_with_logits(l, x) -> (N,); x may be any value in [0, 1]
    (grey levels are the usual continuous relaxation). The fused primitive never overflows.
    """
    _check_same_shape("bernoulli_log_likelihood", "x", x, "logits", logits)
    return -_per_example_sum(F.binary_cross_entropy_with_logits(logits, x, reduction="none"))


def gaussian_log_likelihood(x: Tensor, mean: Tensor, logvar: Tensor | float = 0.0) -> Tensor:
    """log N(x; mean, diag exp(logvar)) per example:

    -0.5 * sum(log(2 pi) + logvar + (x - mean)^2 / exp(logvar)) over non-batch dims -> (N,).

    ``logvar`` is a number or a tensor that broadcasts to x's shape (one variance per pixel,
    per example, or shared); it counts once per entry of x either way.
    """
    name = "gaussian_log_likelihood"
    _check_same_shape(name, "x", x, "mean", mean)
    squared = (x - mean) * (x - mean)
    if not isinstance(logvar, Tensor):
        return -0.5 * _per_example_sum(squared * math.exp(-logvar) + (LOG_2PI + logvar))
    fits = logvar.ndim <= x.ndim and all(
        a in (1, b) for a, b in zip(reversed(logvar.shape), reversed(x.shape))
    )
    if not fits:
        raise ValueError(f"{name}: logvar of shape {logvar.shape} does not broadcast to x's shape {x.shape}")
    return -0.5 * _per_example_sum(LOG_2PI + logvar + squared * exp(-logvar))


def image_log_likelihood(x: Tensor, logits: Tensor, likelihood: str = "bernoulli") -> Tensor:
    """log p(x|z) per example (N,) of an image VAE whose decoder gives ``logits``:
    bernoulli_log_likelihood(x, logits) for "bernoulli"; for "gaussian",
    gaussian_log_likelihood(x, sigmoid(logits), 2 log PIXEL_STD), i.e. per pixel
    -0.5 (log 2 pi sigma^2 + (x - sigmoid(l))^2 / sigma^2) with sigma = PIXEL_STD."""
    if likelihood == "gaussian":
        return gaussian_log_likelihood(x, sigmoid(logits), 2.0 * math.log(PIXEL_STD))
    check_likelihood(likelihood)
    return bernoulli_log_likelihood(x, logits)


def check_likelihood(likelihood, owner: str = "") -> None:
    """ValueError, prefixed by ``owner``, unless ``likelihood`` is one of LIKELIHOODS."""
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"{owner}likelihood must be one of {', '.join(LIKELIHOODS)}, got {likelihood!r}")


def elbo(
    x: Tensor, recon_logits: Tensor, mu: Tensor, logvar: Tensor, beta: float = 1.0, log_likelihood=None
) -> ELBO:
    """The (beta-)ELBO per example for a Bernoulli decoder (or ``log_likelihood``) and the
    N(0, I) prior:

    reconstruction = log p(x|z) = bernoulli_log_likelihood(x, recon_logits), z drawn from q(z|x);
    kl = gaussian_kl(mu, logvar) = KL(q(z|x) || p(z));
    elbo = reconstruction - beta * kl  <=  log p(x) when beta = 1 (in expectation over z).

    beta = 1 is the VAE; beta > 1 the beta-VAE (Higgins et al. 2017). Train by minimising
    ``-elbo(...).elbo.mean()``. ``log_likelihood(x, recon_logits) -> (N,)`` replaces the
    Bernoulli term (a model's own ``log_likelihood``, say).
    """
    ll = (log_likelihood or bernoulli_log_likelihood)(x, recon_logits)
    kl = gaussian_kl(mu, logvar)
    if kl.shape != ll.shape:
        raise ValueError(
            f"elbo: x has {x.shape[0]} examples but mu and logvar have {mu.shape[0]} "
            f"(x: {x.shape}, mu: {mu.shape})"
        )
    return ELBO(ll - beta * kl, ll, kl)


@no_grad()
def iwae_bound(model, x: Tensor, k: int, chunk: int | None = None) -> Tensor:
    """The importance-weighted lower bound on log p(x) per example (Burda et al. 2015):

    log p(x) >= L_k = log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x),  z_1..z_k ~ q(z|x),

    computed with logsumexp over the k log-weights. L_1 is a one-sample ELBO; E[L_k] rises with
    k towards log p(x). For a draw z = mu + sigma * eps, log q(z|x) = log N(eps; 0, I) -
    sum(log sigma), so the weights need no division by a density.

    ``chunk`` samples are decoded at a time for the whole batch (chunk * N rows), by default
    as many as keep that within IWAE_ROWS_PER_PASS, and the chunks' log-sum-exps are combined
    exactly: logsumexp over chunks of logsumexp within them. The eps of chunk after chunk come
    from one stream, so for a fixed seed the result does not depend on ``chunk``: the eps of
    sample i of example n is entry [i, n] of randn(k, N, latent_dim) drawn in row order.

    Works for any model that follows this module's protocol (encode, decode, log_likelihood),
    under no_grad; leaves the model's train/eval mode alone. Returns a tensor of shape (N,).
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"iwae_bound: k must be a positive int (the number of samples), got {k!r}")
    _check_tensor("iwae_bound", "x", x)
    n = x.shape[0]
    if chunk is None:
        chunk = max(1, IWAE_ROWS_PER_PASS // max(n, 1))
    elif isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(
            f"iwae_bound: chunk must be a positive int (samples per pass) or None; got {chunk!r}"
        )
    mu, logvar = model.encode(x)
    log_sigma = 0.5 * logvar.sum(dim=-1)
    chunk_lse = []
    for start in range(0, k, chunk):
        c = min(chunk, k - start)
        eps = randn(c, *mu.shape, dtype=mu.dtype, device=mu.device)
        z = reparameterize(broadcast_to(mu, eps.shape), broadcast_to(logvar, eps.shape), eps)
        rows = (c * n,)
        out = model.decode(reshape(z, rows + mu.shape[1:]))
        xs = reshape(broadcast_to(x, (c,) + x.shape), rows + x.shape[1:])
        log_px_z = reshape(model.log_likelihood(xs, out), c, n)
        log_w = log_px_z + _standard_normal_log_density(z) - (_standard_normal_log_density(eps) - log_sigma)
        chunk_lse.append(logsumexp(log_w, dim=0))
    return logsumexp(stack(chunk_lse), dim=0) - math.log(k)


# --- models -------------------------------------------------------------------------------------


class _ImageVAE(nn.Module):
    """What the image VAEs share: the forward pass through reparameterize, the likelihood
    (``likelihood``, one of LIKELIHOODS), sampling and reconstruction; subclasses write
    ``encode`` and ``decode``. Either likelihood has the mean image sigmoid(logits), so
    ``sample`` and ``reconstruct`` are the same for both."""

    def __init__(self, image_shape, latent_dim: int, likelihood: str = "bernoulli"):
        super().__init__()
        image_shape = tuple(image_shape)
        if not image_shape or not all(isinstance(s, int) and s > 0 for s in image_shape):
            raise ValueError(f"{type(self).__name__}: image_shape must be positive ints, got {image_shape}")
        if isinstance(latent_dim, bool) or not isinstance(latent_dim, int) or latent_dim < 1:
            raise ValueError(f"{type(self).__name__}: latent_dim must be a positive int, got {latent_dim!r}")
        check_likelihood(likelihood, f"{type(self).__name__}: ")
        self.image_shape = image_shape
        self.latent_dim = latent_dim
        self.likelihood = likelihood

    def _check_batch(self, what: str, t, tail: tuple) -> None:
        if not isinstance(t, Tensor) or t.shape[1:] != tail:
            shape = t.shape if isinstance(t, Tensor) else type(t).__name__
            expected = ", ".join(["N", *map(str, tail)])
            raise ValueError(f"{type(self).__name__} expects {what} of shape ({expected}); got {shape}")

    def forward(self, x: Tensor):
        """(logits, mu, logvar): the decoded logits of one reparameterised draw z ~ q(z|x)."""
        mu, logvar = self.encode(x)
        return self.decode(reparameterize(mu, logvar)), mu, logvar

    def log_likelihood(self, x: Tensor, logits: Tensor) -> Tensor:
        """log p(x|z) per example from the decoder's logits: bernoulli_log_likelihood(x, logits),
        or for the Gaussian gaussian_log_likelihood(x, sigmoid(logits), log PIXEL_STD^2)."""
        return image_log_likelihood(x, logits, self.likelihood)

    @no_grad()
    def sample(self, n: int) -> Tensor:
        """n images sigmoid(decode(z)), z ~ N(0, I), on the model's device and in its dtype."""
        weight = next(iter(self.parameters()))
        return sigmoid(self.decode(randn(n, self.latent_dim, dtype=weight.dtype, device=weight.device)))

    @no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """sigmoid(decode(mu(x))): the decoder's mean image at the posterior mean."""
        mu, _ = self.encode(x)
        return sigmoid(self.decode(mu))


class MLPVAE(_ImageVAE):
    """The VAE of PyTorch's examples/vae, with its layer names (784-400-20 for MNIST):

    encoder h = relu(fc1(x)), mu = fc21(h), logvar = fc22(h);
    decoder logits = fc4(relu(fc3(z))), reshaped to image_shape (the example applies the
    sigmoid inside decode; here decode returns logits and the loss applies it stably).

    ``hidden_layers`` > 1 adds that many minus one ReLU layers (hidden_dim -> hidden_dim) after
    fc1 (``encoder_hidden``) and after fc3 (``decoder_hidden``); with 1, the default, the
    model and its parameter names are the example's.
    """

    def __init__(
        self,
        image_shape=(1, 28, 28),
        hidden_dim: int = 400,
        latent_dim: int = 20,
        hidden_layers: int = 1,
        likelihood: str = "bernoulli",
    ):
        super().__init__(image_shape, latent_dim, likelihood)
        if isinstance(hidden_layers, bool) or not isinstance(hidden_layers, int) or hidden_layers < 1:
            raise ValueError(f"MLPVAE: hidden_layers must be a positive int, got {hidden_layers!r}")
        pixels = math.prod(self.image_shape)
        self.hidden_dim, self.hidden_layers = hidden_dim, hidden_layers
        self.fc1 = nn.Linear(pixels, hidden_dim)
        self.encoder_hidden = _relu_layers(hidden_dim, hidden_layers - 1)
        self.fc21 = nn.Linear(hidden_dim, latent_dim)
        self.fc22 = nn.Linear(hidden_dim, latent_dim)
        self.fc3 = nn.Linear(latent_dim, hidden_dim)
        self.decoder_hidden = _relu_layers(hidden_dim, hidden_layers - 1)
        self.fc4 = nn.Linear(hidden_dim, pixels)

    def encode(self, x: Tensor):
        self._check_batch("images", x, self.image_shape)
        h = self.encoder_hidden(F.relu(self.fc1(reshape(x, x.shape[0], self.fc1.in_features))))
        return self.fc21(h), self.fc22(h)

    def decode(self, z: Tensor) -> Tensor:
        self._check_batch("latents", z, (self.latent_dim,))
        h = self.decoder_hidden(F.relu(self.fc3(z)))
        return reshape(self.fc4(h), (z.shape[0],) + self.image_shape)


def _relu_layers(width: int, count: int) -> nn.Sequential:
    """``count`` blocks Linear(width, width) ReLU; with 0, the identity (and no parameters)."""
    return nn.Sequential(*[m for _ in range(count) for m in (nn.Linear(width, width), nn.ReLU())])


class ConvVAE(_ImageVAE):
    """A convolutional VAE for (C, H, W) images with H and W multiples of 4:

    encoder: Conv2d(C, 32, 4, stride 2, padding 1) ReLU -> H/2; Conv2d(32, 64, 4, 2, 1) ReLU
    -> H/4; flatten; heads fc_mu and fc_logvar (Linear 64 * H/4 * W/4 -> latent_dim).
    decoder, the mirror image: Linear(latent_dim, 64 * H/4 * W/4) ReLU, unflatten,
    ConvTranspose2d(64, 32, 4, 2, 1) ReLU -> H/2, ConvTranspose2d(32, C, 4, 2, 1) -> H (logits).

    The feature maps follow from image_shape: 28 -> 14 -> 7 for MNIST, 8 -> 4 -> 2 for the
    8x8 digits.
    """

    def __init__(self, image_shape=(1, 28, 28), latent_dim: int = 20, likelihood: str = "bernoulli"):
        super().__init__(image_shape, latent_dim, likelihood)
        if len(self.image_shape) != 3 or self.image_shape[1] % 4 or self.image_shape[2] % 4:
            raise ValueError(
                f"ConvVAE needs images (C, H, W) with H and W multiples of 4 (two stride-2 "
                f"convolutions halve them exactly, e.g. (1, 28, 28) or (1, 8, 8)); got {self.image_shape}"
            )
        channels, height, width = self.image_shape
        features = (64, height // 4, width // 4)
        flat = math.prod(features)
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, 32, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(),
        )  # fmt: skip
        self.fc_mu = nn.Linear(flat, latent_dim)
        self.fc_logvar = nn.Linear(flat, latent_dim)
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, flat), nn.ReLU(),
            nn.Unflatten(1, features),
            nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(32, channels, 4, stride=2, padding=1),
        )  # fmt: skip

    def encode(self, x: Tensor):
        self._check_batch("images", x, self.image_shape)
        h = self.encoder(x)
        return self.fc_mu(h), self.fc_logvar(h)

    def decode(self, z: Tensor) -> Tensor:
        self._check_batch("latents", z, (self.latent_dim,))
        return self.decoder(z)


__all__ = [
    "ELBO",
    "LIKELIHOODS",
    "PIXEL_STD",
    "ConvVAE",
    "MLPVAE",
    "bernoulli_log_likelihood",
    "check_likelihood",
    "elbo",
    "gaussian_kl",
    "gaussian_log_likelihood",
    "image_log_likelihood",
    "iwae_bound",
    "reparameterize",
]
