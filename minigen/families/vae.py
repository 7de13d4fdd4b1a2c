"""The VAE family (Kingma & Welling 2013; Rezende, Mohamed & Wierstra 2014): ``minigen train
vae`` (the MLP VAE) and ``minigen train conv-vae`` (the convolutional one).

A step maximises the batch mean of the (beta-)ELBO, E_q[log p(x|z)] - beta KL(q(z|x) || p(z)),
with Adam. After every epoch the test set's negative ELBO is recorded and reconstructions are
drawn; at the end, walks through the latent space.
"""

from __future__ import annotations

from pathlib import Path

from minigen import backend, metrics, viz
from minigen.autograd import no_grad
from minigen.creation import tensor
from minigen.families.base import OPTIONS, Family
from minigen.generative import vae
from minigen.optim import Adam

RECONSTRUCTED = 8  # test images shown with their reconstructions after every epoch


def vae_step(model, optimizer, x, beta: float = 1.0) -> dict:
    """One optimisation step on the batch mean of the negative (beta-)ELBO: forward, loss,
    backward, ``optimizer.step()``. Returns the step's loss, reconstruction and KL terms as
    detached device tensors (reading them is the caller's choice: each read is a host copy)."""
    out, mu, logvar = model(x)
    terms = vae.elbo(x, out, mu, logvar, beta=beta, log_likelihood=model.log_likelihood)
    loss = -terms.elbo.mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    with no_grad():
        return {"loss": loss.detach(), "recon": -terms.reconstruction.mean(), "kl": terms.kl.mean()}


class VAEFamily(Family):
    """VAEs of one architecture: ``architecture(image_shape=..., latent_dim=..., likelihood=...,
    **extra)`` is an image VAE with ``encode``, ``decode`` (logits), ``reconstruct`` and
    ``log_likelihood``; ``extra`` names the further settings it takes (``hidden_layers``)."""

    defaults = {"lr": 1e-3, "latent_dim": 20, "beta": 1.0, "likelihood": "bernoulli", "hidden_layers": 1}

    def __init__(self, name: str, architecture, summary: str, extra=(), data_defaults=None):
        self.name, self.architecture, self.summary = name, architecture, summary
        self.extra = tuple(extra)
        self.options = ("beta", "likelihood", *self.extra)
        self.defaults = {k: v for k, v in VAEFamily.defaults.items() if k not in OPTIONS or k in self.options}
        self.data_defaults = data_defaults or {}

    def check(self, settings: dict, example_shape: tuple) -> None:
        super().check(settings, example_shape)
        if settings["beta"] < 0:
            raise ValueError(f"beta must be non-negative, got {settings['beta']}")
        vae.check_likelihood(settings["likelihood"])
        if "hidden_layers" in self.extra and settings["hidden_layers"] < 1:
            raise ValueError(f"hidden-layers must be at least 1, got {settings['hidden_layers']}")

    def build(self, config, example_shape: tuple, num_classes: int):
        extra = {name: getattr(config, name) for name in self.extra}
        return self.architecture(
            image_shape=example_shape, latent_dim=config.latent_dim, likelihood=config.likelihood, **extra
        )

    def optimizers(self, config, model) -> dict:
        return {"optimizer": Adam(model.parameters(), lr=config.lr)}

    def step(self, model, optimizers: dict, x, config, step: int) -> dict:
        return vae_step(model, optimizers["optimizer"], x, config.beta)

    def draw(self, model, z):
        return model.decode(z).sigmoid()  # the decoder's mean image

    def epoch_metrics(self, model, test_set, config) -> dict:
        return {"test_loss": metrics.negative_elbo(model, test_set.inputs, labels=self.labels(test_set))}

    def epoch_pictures(self, model, test_set, config, out: Path) -> None:
        originals = test_set.first(RECONSTRUCTED)
        rebuilt = self.reconstruct(model, originals, config)
        viz.reconstructions(originals.inputs, rebuilt, out / "reconstructions.png")

    def reconstruct(self, model, dataset, config):
        """The reconstructions (host array) of ``dataset``'s images, in eval mode, with their
        labels bound for a conditional model."""
        labels = self.labels(dataset)
        with model.eval_mode():
            bound = self.condition(model, None if labels is None else tensor(labels, device=config.device))
            return backend.to_host(bound.reconstruct(tensor(dataset.inputs, device=config.device)).data)

    def final_pictures(self, model, test_set, config, out: Path) -> None:
        """Straight lines between the latent codes of test images and, for a 2-D latent, the
        whole learned manifold."""
        with model.eval_mode():
            mu, _ = model.encode(tensor(test_set.inputs[:16], device=config.device))
            viz.latent_interpolation(self.decoder(model), mu[:8], mu[8:16], out / "interpolation.png")
            if config.latent_dim == 2:
                viz.latent_manifold(self.decoder(model), out / "manifold.png", device=config.device)

    def decoder(self, model):
        """z -> the decoder's mean image, for the latent pictures."""
        return lambda z: self.draw(model, z)

    def classifier_metrics(self, model, config, test_set, classifier) -> dict:
        """ "reconstruction_agreement": the share of test images whose reconstruction the
        classifier puts in the image's class."""
        rebuilt = self.reconstruct(model, test_set, config)
        return {"reconstruction_agreement": metrics.class_agreement(classifier, rebuilt, test_set.labels)}

    def likelihood_metrics(self, model, test_set, k: int) -> dict:
        """The test negative ELBO and the IWAE estimate of the negative log-likelihood with
        ``k`` importance samples, in nats per image."""
        labels = self.labels(test_set)
        return {
            "test_negative_elbo": metrics.negative_elbo(model, test_set.inputs, labels=labels),
            f"iwae_nll_k{k}": metrics.iwae_nll(model, test_set.inputs, k=k, labels=labels),
        }


# The 8x8 digits are 1,437 grey images: the example's one-layer Bernoulli VAE, 60 epochs of
# batch 128 (660 steps), kept about 3 nats in its latent and reconstructed other digits. A
# Gaussian likelihood, a second hidden layer, a 4-d latent and 100 epochs of batch 32 (4,500
# steps) give recognisable reconstructions and samples within a minute (chapter 07, section 7.4).
MLP_VAE = VAEFamily(
    "vae",
    vae.MLPVAE,
    "the MLP VAE (784-400-20 on MNIST, as PyTorch's example)",
    extra=("hidden_layers",),
    data_defaults={
        "digits": {
            "epochs": 100,
            "batch_size": 32,
            "latent_dim": 4,
            "likelihood": "gaussian",
            "hidden_layers": 2,
        }  # fmt: skip
    },
)
CONV_VAE = VAEFamily("conv-vae", vae.ConvVAE, "a convolutional VAE")
