"""The class-conditional VAE (Sohn, Lee & Yan 2015's CVAE, in its simplest MLP form):
``minigen train cvae``. It models p(x|y) for a class label y, so one can ask for a given digit.

With y as a one-hot code appended to the inputs of both networks,

    q(z|x, y) = N(mu(x, y), diag sigma^2(x, y)),   p(x|z, y) = Bernoulli(sigmoid(f(z, y))),

and the prior p(z) = N(0, I) independent of y, the per-example bound is the VAE's with y
given everywhere: log p(x|y) >= E_q[log p(x|z, y)] - KL(q(z|x, y) || N(0, I)). Because the
decoder is told the class, the latent is free to encode only the style (slant, thickness).
"""

from __future__ import annotations

import math

from minigen import functional as F
from minigen import nn
from minigen.autograd import no_grad
from minigen.creation import randn
from minigen.families.base import one_hot, tile_labels
from minigen.families.vae import VAEFamily
from minigen.generative import vae
from minigen.ops.shape import cat, reshape
from minigen.tensor import Tensor


class ConditionalVAE(nn.Module):
    """An MLP CVAE for (C, H, W) images in K classes (layer names as ``vae.MLPVAE``'s):

    encoder h = relu(fc1([x, onehot(y)])), mu = fc21(h), logvar = fc22(h);
    decoder logits = fc4(relu(fc3([z, onehot(y)]))), reshaped to image_shape.

    ``given(labels)`` binds a batch's labels, returning a view with the unconditional VAE's
    methods (``encode(x)``, ``decode(z)``, ``log_likelihood``, ``reconstruct(x)``, called
    as ``view(x)``), which is what the VAE family's step and the metrics use.
    """

    def __init__(
        self, image_shape=(1, 28, 28), num_classes=10, hidden_dim=400, latent_dim=20, likelihood="bernoulli"
    ):
        super().__init__()
        vae.check_likelihood(likelihood, "ConditionalVAE: ")
        self.image_shape, self.num_classes, self.likelihood = tuple(image_shape), num_classes, likelihood
        self.hidden_dim, self.latent_dim = hidden_dim, latent_dim
        pixels = math.prod(self.image_shape)
        self.fc1 = nn.Linear(pixels + num_classes, hidden_dim)
        self.fc21 = nn.Linear(hidden_dim, latent_dim)
        self.fc22 = nn.Linear(hidden_dim, latent_dim)
        self.fc3 = nn.Linear(latent_dim + num_classes, hidden_dim)
        self.fc4 = nn.Linear(hidden_dim, pixels)

    def encode(self, x: Tensor, labels: Tensor):
        flat = reshape(x, x.shape[0], self.fc4.out_features)
        h = F.relu(self.fc1(cat([flat, one_hot(labels, self.num_classes, flat)], dim=1)))
        return self.fc21(h), self.fc22(h)

    def decode(self, z: Tensor, labels: Tensor) -> Tensor:
        h = F.relu(self.fc3(cat([z, one_hot(labels, self.num_classes, z)], dim=1)))
        return reshape(self.fc4(h), (z.shape[0],) + self.image_shape)

    def forward(self, x: Tensor, labels: Tensor):
        """(logits, mu, logvar): the decoded logits of one reparameterised draw z ~ q(z|x, y)."""
        mu, logvar = self.encode(x, labels)
        return self.decode(vae.reparameterize(mu, logvar), labels), mu, logvar

    def log_likelihood(self, x: Tensor, logits: Tensor) -> Tensor:
        """log p(x|z, y) per example from the decoder's logits (``vae.image_log_likelihood``)."""
        return vae.image_log_likelihood(x, logits, self.likelihood)

    @no_grad()
    def sample(self, labels: Tensor) -> Tensor:
        """One image sigmoid(decode(z, y)), z ~ N(0, I), for each label."""
        weight = self.fc1.weight
        z = randn(labels.shape[0], self.latent_dim, dtype=weight.dtype, device=weight.device)
        return self.decode(z, labels).sigmoid()

    def given(self, labels: Tensor) -> _GivenLabels:
        return _GivenLabels(self, labels)


class _GivenLabels:
    """A ConditionalVAE with the labels of one batch bound: the unconditional VAE protocol.
    ``decode`` accepts c N rows too (the IWAE bound decodes c draws of the batch at once)."""

    def __init__(self, model: ConditionalVAE, labels: Tensor):
        self.model, self.labels, self.latent_dim = model, labels, model.latent_dim

    def __call__(self, x: Tensor):
        return self.model(x, self.labels)

    def encode(self, x: Tensor):
        return self.model.encode(x, self.labels)

    def decode(self, z: Tensor) -> Tensor:
        return self.model.decode(z, tile_labels(self.labels, z.shape[0]))

    def log_likelihood(self, x: Tensor, logits: Tensor) -> Tensor:
        return self.model.log_likelihood(x, logits)

    @no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        mu, _ = self.encode(x)
        return self.decode(mu).sigmoid()


class ConditionalVAEFamily(VAEFamily):
    """The VAE family with labels bound to every batch; the sample grid has one row per class."""

    conditional = True

    def build(self, config, example_shape: tuple, num_classes: int):
        return ConditionalVAE(
            example_shape, num_classes, latent_dim=config.latent_dim, likelihood=config.likelihood
        )

    def final_pictures(self, model, test_set, config, out) -> None:
        """None: the class-conditioned sample grid is this family's picture of its latent space."""


CVAE = ConditionalVAEFamily(
    "cvae", ConditionalVAE, "a class-conditional MLP VAE (Sohn et al. 2015): one row per class"
)
