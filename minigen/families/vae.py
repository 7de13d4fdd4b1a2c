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
from minigen.families.base import Family
from minigen.generative import vae
from minigen.optim import Adam

RECONSTRUCTED = 8  # test images shown with their reconstructions after every epoch


def vae_step(model, optimizer, x, beta: float = 1.0) -> dict:
    """One optimisation step on the batch mean of the negative (beta-)ELBO: forward, loss,
    backward, ``optimizer.step()``. Returns the step's loss, reconstruction and KL terms as
    detached device tensors (reading them is the caller's choice: each read is a host copy)."""
    out, mu, logvar = model(x)
    terms = vae.elbo(x, out, mu, logvar, beta=beta)
    loss = -terms.elbo.mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    with no_grad():
        return {"loss": loss.detach(), "recon": -terms.reconstruction.mean(), "kl": terms.kl.mean()}


class VAEFamily(Family):
    """VAEs of one architecture: ``architecture(image_shape=..., latent_dim=...)`` is an image
    VAE with ``encode``, ``decode`` (logits), ``reconstruct`` and ``log_likelihood``."""

    options = ("beta",)
    defaults = {"lr": 1e-3, "latent_dim": 20, "beta": 1.0}

    def __init__(self, name: str, architecture, summary: str):
        self.name, self.architecture, self.summary = name, architecture, summary

    def check(self, settings: dict, example_shape: tuple) -> None:
        super().check(settings, example_shape)
        if settings["beta"] < 0:
            raise ValueError(f"beta must be non-negative, got {settings['beta']}")

    def build(self, config, example_shape: tuple, num_classes: int):
        return self.architecture(image_shape=example_shape, latent_dim=config.latent_dim)

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
        labels = self.labels(originals)
        with model.eval_mode():
            bound = self.condition(model, None if labels is None else tensor(labels, device=config.device))
            rebuilt = bound.reconstruct(tensor(originals.inputs, device=config.device))
        viz.reconstructions(originals.inputs, backend.to_host(rebuilt.data), out / "reconstructions.png")

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

    def likelihood_metrics(self, model, test_set, k: int) -> dict:
        """The test negative ELBO and the IWAE estimate of the negative log-likelihood with
        ``k`` importance samples, in nats per image."""
        labels = self.labels(test_set)
        return {
            "test_negative_elbo": metrics.negative_elbo(model, test_set.inputs, labels=labels),
            f"iwae_nll_k{k}": metrics.iwae_nll(model, test_set.inputs, k=k, labels=labels),
        }


MLP_VAE = VAEFamily("vae", vae.MLPVAE, "the MLP VAE (784-400-20 on MNIST, as PyTorch's example)")
CONV_VAE = VAEFamily("conv-vae", vae.ConvVAE, "a convolutional VAE")
