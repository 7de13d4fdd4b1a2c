"""The programs ``run.py`` measures, written once for each library: one float32 training step of
a model, or one forward and backward of a layer, on MNIST-shaped random data.

Each program imports its library when called, never at import time: run.py's children import
this module and then exactly one library, whose memory is then theirs alone.
"""

from __future__ import annotations

BATCH = 128
IMAGE = (1, 28, 28)

# name -> (factory given an nn module namespace, description, shape of one input example)
LAYERS = {
    "linear": (lambda nn: nn.Linear(784, 400), "Linear 784->400", (784,)),
    "conv2d": (lambda nn: nn.Conv2d(32, 64, 3, padding=1), "Conv2d 32->64 3x3 p1", (32, 14, 14)),
    "conv-transpose2d": (
        lambda nn: nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1),
        "ConvTranspose2d 64->32 4x4 s2 p1",
        (64, 7, 7),
    ),
}
MODELS = ("mlp-vae", "conv-vae", "dcgan", *LAYERS)
DESCRIPTIONS = {"mlp-vae": "MLP VAE 784-400-20", "conv-vae": "conv VAE", "dcgan": "DCGAN (D + G step)"}
DESCRIPTIONS.update({name: spec[1] for name, spec in LAYERS.items()})


def _backward_step(layer, x, g):
    """One forward of ``layer`` and its backward from output gradient ``g`` (either library)."""

    def layer_step():
        layer.zero_grad()
        x.grad = None
        layer(x).backward(g)

    return layer_step


# --- minigen -------------------------------------------------------------------------------------


def minigen_program(model: str, batch: int = BATCH, device: str = "cpu"):
    """(step, state): a no-argument function doing one minigen training step on ``device``, and
    the weights (as host arrays, for the PyTorch twin)."""
    import numpy as np

    import minigen
    import minigen.nn as nn
    from minigen.families.gan import gan_step
    from minigen.families.vae import vae_step
    from minigen.generative.gan import DCGAN
    from minigen.generative.vae import MLPVAE, ConvVAE
    from minigen.optim import Adam

    minigen.manual_seed(0)
    rng = np.random.default_rng(0)
    if model in LAYERS:
        layer = LAYERS[model][0](nn).to(device)
        shape = (batch, *LAYERS[model][2])
        x = minigen.tensor(rng.standard_normal(shape, dtype=np.float32), device=device, requires_grad=True)
        with minigen.no_grad():
            g = minigen.tensor(rng.standard_normal(layer(x).shape, dtype=np.float32), device=device)
        return _backward_step(layer, x, g), _state(layer)
    x = minigen.tensor(rng.random((batch, *IMAGE), dtype=np.float32), device=device)
    if model == "dcgan":
        gan = DCGAN(IMAGE).to(device)
        g_opt = Adam(gan.generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
        d_opt = Adam(gan.discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
        return (lambda: gan_step(gan, g_opt, d_opt, x)), _state(gan)
    vae = (MLPVAE(IMAGE) if model == "mlp-vae" else ConvVAE(IMAGE)).to(device)
    optimizer = Adam(vae.parameters(), lr=1e-3)
    return (lambda: vae_step(vae, optimizer, x)), _state(vae)


def _state(module) -> dict:
    return {k: v.numpy() for k, v in module.state_dict().items()}


# --- PyTorch -------------------------------------------------------------------------------------


def torch_program(model: str, state: dict, batch: int = BATCH, device: str = "cpu"):
    """The same step in PyTorch, its weights copied from minigen's ``state``."""
    import numpy as np
    import torch
    from torch_twins import MODELS as TWINS

    torch.manual_seed(0)
    layer = LAYERS[model][0](torch.nn) if model in LAYERS else TWINS[model]()
    layer.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    layer.to(device)
    rng = np.random.default_rng(0)
    if model in LAYERS:
        shape = (batch, *LAYERS[model][2])
        x = torch.from_numpy(rng.standard_normal(shape, dtype="float32")).to(device).requires_grad_()
        g = torch.from_numpy(rng.standard_normal(tuple(layer(x).shape), dtype="float32")).to(device)
        return _backward_step(layer, x, g)
    x = torch.from_numpy(rng.random((batch, *IMAGE), dtype="float32")).to(device)
    if model == "dcgan":
        return _torch_gan_step(layer, x, batch, device)
    return _torch_vae_step(layer, x)


def _torch_gan_step(gan, x, batch: int, device: str):
    """minigen.families.gan.gan_step in PyTorch: a discriminator step on real x and fresh fakes, then
    a generator step through the updated discriminator."""
    import torch

    bce = torch.nn.functional.binary_cross_entropy_with_logits
    g_opt = torch.optim.Adam(gan.generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(gan.discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    ones, zeros = torch.ones(batch, device=device), torch.zeros(batch, device=device)

    def gan_step():
        fake = gan.generator(torch.randn(batch, 100, device=device))
        d_real, d_fake = gan.discriminator(x), gan.discriminator(fake.detach())
        d_loss = bce(d_real, ones) + bce(d_fake, zeros)
        d_opt.zero_grad()
        d_loss.backward()
        d_opt.step()
        g_loss = bce(gan.discriminator(fake), ones)
        g_opt.zero_grad()
        g_loss.backward()
        g_opt.step()

    return gan_step


def _torch_vae_step(vae, x):
    """minigen.families.vae.vae_step in PyTorch: Adam on the mean negative ELBO of x."""
    import torch
    from torch_twins import negative_elbo

    optimizer = torch.optim.Adam(vae.parameters(), lr=1e-3)

    def vae_step():
        loss = negative_elbo(vae, x).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return vae_step
