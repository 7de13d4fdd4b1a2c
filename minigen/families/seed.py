"""The two Keras listings of the blog chapter this book grew from, corrected (chapter 09,
section 10): ``minigen train seed-gan`` and ``minigen train seed-vae``.

Both listings build the same MLP GAN, G: 100-256 ReLU-784 sigmoid and D: 784-256 ReLU-1
sigmoid, optimised with RMSprop on the loss ``-y_pred``, which is no GAN loss; the one titled
"VAE" is no VAE. Corrected, each keeps the listings' one hidden layer of 256 ReLU units and
their optimiser:

- ``seed-gan``: those two networks trained as a GAN (Goodfellow et al. 2014), D on the minimax
  loss -E[log D(x)] - E[log(1 - D(G(z)))] and G on the non-saturating -E[log D(G(z))] (the
  GAN family's default loss), D updated on every step, each network by its own RMSprop;
- ``seed-vae``: the VAE the title promised (Kingma & Welling 2013; Rezende, Mohamed & Wierstra
  2014): encoder 784-256 ReLU -> (mu, log sigma^2) of a 20-d latent, decoder 20-256 ReLU-784
  Bernoulli logits, the reparameterised ELBO, RMSprop.

The optimiser is PyTorch's RMSprop (alpha 0.99, eps 1e-8) at Keras's default rate, 1e-3, for
both, not PyTorch's 1e-2 (on MNIST one epoch of the GAN at 1e-3 reached a Frechet distance of
532, against 1369 at the image GANs' 2e-4).
"""

from __future__ import annotations

import functools

from minigen.families.gan import GANFamily
from minigen.families.vae import VAEFamily
from minigen.generative import gan, vae
from minigen.optim import RMSprop

HIDDEN = 256  # the listings' one hidden layer


class SeedGANFamily(GANFamily):
    """The listings' MLP GAN with ReLU (``gan.MLPGAN(activation="relu")``; D returns the logit
    l, with D(x) = sigmoid(l) applied inside the losses), trained with RMSprop."""

    defaults = {**GANFamily.defaults, "lr": 1e-3}

    def build(self, config, example_shape: tuple, num_classes: int):
        return gan.MLPGAN(
            data_shape=example_shape, noise_dim=config.latent_dim, hidden_dims=(HIDDEN,), activation="relu"
        )

    def optimizers(self, config, model) -> dict:
        return {
            "generator_optimizer": RMSprop(model.generator.parameters(), lr=config.lr),
            "discriminator_optimizer": RMSprop(model.discriminator.parameters(), lr=config.lr),
        }


class SeedVAEFamily(VAEFamily):
    """The MLP VAE with the listings' 256 hidden units, trained with RMSprop (at the VAE family's
    default rate, 1e-3)."""

    def optimizers(self, config, model) -> dict:
        return {"optimizer": RMSprop(model.parameters(), lr=config.lr)}


SEED_GAN = SeedGANFamily(
    "seed-gan", "the seed chapter's Keras GAN, corrected (G 100-256-784, D 784-256-1, ReLU, RMSprop)"
)
SEED_VAE = SeedVAEFamily(
    "seed-vae",
    functools.partial(vae.MLPVAE, hidden_dim=HIDDEN),
    "the VAE the seed chapter's 'VAE' listing should have been (784-256-20, RMSprop)",
)
