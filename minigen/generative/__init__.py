"""minigen.generative: the objectives and models of the two families of generative models.

``vae``: variational autoencoders (reparameterisation, ELBO, IWAE bound, MLP and conv VAEs).
``gan``: generative adversarial networks (losses, gradient penalty, MLP GAN and DCGAN).
"""

from minigen.generative import gan, vae
from minigen.generative.gan import (
    DCGAN,
    GAN,
    LOSSES,
    MLPGAN,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
)
from minigen.generative.vae import (
    ELBO,
    MLPVAE,
    ConvVAE,
    bernoulli_log_likelihood,
    elbo,
    gaussian_kl,
    gaussian_log_likelihood,
    iwae_bound,
    reparameterize,
)

__all__ = [
    "DCGAN",
    "ELBO",
    "GAN",
    "LOSSES",
    "MLPGAN",
    "ConvVAE",
    "discriminator_loss",
    "generator_loss",
    "gradient_penalty",
    "MLPVAE",
    "bernoulli_log_likelihood",
    "elbo",
    "gan",
    "gaussian_kl",
    "gaussian_log_likelihood",
    "iwae_bound",
    "reparameterize",
    "vae",
]
