"""The GAN family (Goodfellow et al. 2014): ``minigen train gan`` (the MLP GAN, also the ring's
model) and ``minigen train dcgan`` (Radford et al. 2015's convolutional GAN).

A step trains the discriminator on a real batch and a fresh fake one and, every ``n_critic``
steps, the generator on the same fakes, with the chosen losses (minimax, non-saturating,
Wasserstein with a gradient penalty or weight clipping, hinge), optionally Mescheder et al.'s
R1 penalty on the discriminator, and Adam.
"""

from __future__ import annotations

import contextlib

from minigen import backend
from minigen.autograd import no_grad
from minigen.families.base import Family
from minigen.generative import gan
from minigen.optim import Adam

# The MLP GAN on 2-D points (the ring): three hidden layers in G and in D, and a linear output.
POINTS_HIDDEN = (128, 128, 128)
CLIP = 0.01  # Arjovsky et al.'s weight-clipping bound for a Wasserstein critic without a penalty


def gan_step(
    model, generator_optimizer, discriminator_optimizer, real, loss: str = "non-saturating",
    gp_weight: float = 0.0, update_generator: bool = True, r1_weight: float = 0.0,
) -> dict:  # fmt: skip
    """One discriminator step on ``real`` and a fresh fake batch and, if ``update_generator``,
    one generator step on the same fakes. Returns the losses as detached device tensors.

    The discriminator minimises its loss + gp_weight * ``gan.gradient_penalty`` +
    (r1_weight / 2) * ``gan.r1_penalty``: r1_weight is Mescheder et al.'s gamma."""
    noise = model.sample_noise(real.shape[0])
    # A critic-only step (n_critic > 1) needs the fakes as data only: no graph through G.
    with contextlib.nullcontext() if update_generator else no_grad():
        fake = model.generator(noise)
    detached = fake.detach()
    d_loss = gan.discriminator_loss(model.discriminator(real), model.discriminator(detached), loss)
    if gp_weight:
        d_loss = d_loss + gp_weight * gan.gradient_penalty(model.discriminator, real, detached)
    if r1_weight:
        d_loss = d_loss + 0.5 * r1_weight * gan.r1_penalty(model.discriminator, real)
    discriminator_optimizer.zero_grad()
    d_loss.backward()
    discriminator_optimizer.step()
    if loss == "wasserstein" and not gp_weight:
        clip_weights(model.discriminator, CLIP)  # Arjovsky et al.'s original Lipschitz constraint
    losses = {"d_loss": d_loss.detach()}
    if update_generator:
        g_loss = gan.generator_loss(model.discriminator(fake), loss)
        generator_optimizer.zero_grad()
        g_loss.backward()
        generator_optimizer.step()
        losses["g_loss"] = g_loss.detach()
    return losses


@no_grad()
def clip_weights(module, bound: float) -> None:
    """Clip every parameter of ``module`` to [-bound, bound], in place."""
    for param in module.parameters():
        xp = backend.xp_of(param.data)
        xp.clip(param.data, -bound, bound, out=param.data)
        param._bump_version()  # a graph that saved this weight must not backward through it now


class GANFamily(Family):
    """GANs of one architecture, built by ``build`` (the MLP GAN and the DCGAN differ there)."""

    options = ("loss", "gp_weight", "r1_weight", "n_critic")
    # Radford et al.'s 2e-4 for image GANs (the ring's small MLPs learn at 1e-3: its data defaults).
    defaults = {"lr": 2e-4, "latent_dim": 100, "loss": "non-saturating", "r1_weight": 0.0}
    drop_last = True

    def __init__(self, name: str, summary: str):
        self.name, self.summary = name, summary

    def fill(self, settings: dict) -> None:
        super().fill(settings)
        # Wasserstein critics train with a gradient penalty (Gulrajani et al.: weight 10, and 5
        # critic steps per generator step); the other losses alternate one step each.
        wasserstein = settings["loss"] == "wasserstein"
        if settings["gp_weight"] is None:
            settings["gp_weight"] = 10.0 if wasserstein else 0.0
        if settings["n_critic"] is None:
            settings["n_critic"] = 5 if wasserstein else 1

    def check(self, settings: dict, example_shape: tuple) -> None:
        if settings["loss"] not in gan.LOSSES:
            raise ValueError(f"unknown GAN loss {settings['loss']!r}; choose one of {', '.join(gan.LOSSES)}")
        for name in ("gp_weight", "r1_weight"):
            if settings[name] < 0:
                raise ValueError(f"{name.replace('_', '-')} must be non-negative, got {settings[name]}")
        if settings["n_critic"] < 1:
            raise ValueError(f"n-critic must be at least 1, got {settings['n_critic']}")
        super().check(settings, example_shape)

    def optimizers(self, config, model) -> dict:
        # Radford et al.'s beta1 = 0.5 steadies the adversarial game; WGAN-GP uses (0, 0.9).
        betas = (0.0, 0.9) if config.loss == "wasserstein" else (0.5, 0.999)
        return {
            "generator_optimizer": Adam(model.generator.parameters(), lr=config.lr, betas=betas),
            "discriminator_optimizer": Adam(model.discriminator.parameters(), lr=config.lr, betas=betas),
        }

    def step(self, model, optimizers: dict, x, config, step: int) -> dict:
        return gan_step(
            model, optimizers["generator_optimizer"], optimizers["discriminator_optimizer"], x,
            config.loss, config.gp_weight, update_generator=step % config.n_critic == 0,
            r1_weight=config.r1_weight,
        )  # fmt: skip

    def draw(self, model, z):
        return model.generator(z)


class MLPGANFamily(GANFamily):
    """The fully connected GAN: on images the classic MNIST model, on 2-D points (the ring)
    ``POINTS_HIDDEN`` with a linear output; PacGAN's ``pack`` is an option of this family."""

    options = (*GANFamily.options, "pack")
    defaults = {**GANFamily.defaults, "pack": 1}
    models_points = True

    def check(self, settings: dict, example_shape: tuple) -> None:
        super().check(settings, example_shape)
        if settings["pack"] < 1:
            raise ValueError(f"pack must be at least 1, got {settings['pack']}")
        if settings["batch_size"] % settings["pack"]:
            raise ValueError(
                f"batch-size {settings['batch_size']} must be a multiple of pack {settings['pack']}"
            )

    def build(self, config, example_shape: tuple, num_classes: int):
        if len(example_shape) == 1:
            return gan.MLPGAN(
                data_shape=example_shape, noise_dim=config.latent_dim, hidden_dims=POINTS_HIDDEN,
                output="linear", pack=config.pack,
            )  # fmt: skip
        return gan.MLPGAN(data_shape=example_shape, noise_dim=config.latent_dim, pack=config.pack)


class DCGANFamily(GANFamily):
    """Radford et al.'s convolutional GAN (``gan.DCGAN``). With the gradient penalty on
    (``gp_weight`` > 0) the critic has no batch norm, as Gulrajani et al.'s WGAN-GP critic: the
    penalty pins each example's input gradient, which batch norm would mix across the batch."""

    def build(self, config, example_shape: tuple, num_classes: int):
        return gan.DCGAN(
            image_shape=example_shape,
            noise_dim=config.latent_dim,
            critic_batch_norm=self.critic_batch_norm(config),
        )

    @staticmethod
    def critic_batch_norm(config) -> bool:
        """Whether the critic has batch norm: unless the gradient penalty is on."""
        return not config.gp_weight


MLP_GAN = MLPGANFamily("gan", "the MLP GAN (G 100-256-784, D 784-256-1 on MNIST; the ring's model)")
DCGAN = DCGANFamily("dcgan", "the DCGAN of Radford et al. (2015)")
