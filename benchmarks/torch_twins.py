"""PyTorch twins of minigen's MLPVAE, ConvVAE and DCGAN for the benchmarks: the same layers
with the same state-dict keys, so a minigen state dict loads into them unchanged.

Imported only where PyTorch is installed (the ``bench`` extra).
"""

from __future__ import annotations

import torch

nn, F = torch.nn, torch.nn.functional


class MLPVAE(nn.Module):
    """PyTorch's examples/vae: 784-400-20 and back; logits in the input's shape."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc21, self.fc22 = nn.Linear(784, 400), nn.Linear(400, 20), nn.Linear(400, 20)
        self.fc3, self.fc4 = nn.Linear(20, 400), nn.Linear(400, 784)

    def forward(self, x):
        h = F.relu(self.fc1(x.reshape(x.shape[0], -1)))
        mu, logvar = self.fc21(h), self.fc22(h)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        return self.fc4(F.relu(self.fc3(z))).reshape(x.shape), mu, logvar


class ConvVAE(nn.Module):
    """minigen's ConvVAE for 1x28x28 images."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 32, 4, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(), nn.Flatten()
        )
        self.fc_mu, self.fc_logvar = nn.Linear(64 * 49, 20), nn.Linear(64 * 49, 20)
        self.decoder = nn.Sequential(
            nn.Linear(20, 64 * 49), nn.ReLU(), nn.Unflatten(1, (64, 7, 7)),
            nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(32, 1, 4, 2, 1),
        )  # fmt: skip

    def forward(self, x):
        h = self.encoder(x)
        mu, logvar = self.fc_mu(h), self.fc_logvar(h)
        return self.decoder(mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)), mu, logvar


class DCGAN(nn.Module):
    """minigen's DCGAN for 1x28x28 images (width 64, 100-d noise)."""

    def __init__(self, width=64):
        super().__init__()
        base = 2 * width * 49
        self.generator = nn.Sequential(
            nn.Linear(100, base, bias=False), nn.BatchNorm1d(base), nn.ReLU(),
            nn.Unflatten(1, (2 * width, 7, 7)),
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.ConvTranspose2d(width, 1, 4, 2, 1), nn.Sigmoid(),
        )  # fmt: skip
        self.discriminator = nn.Sequential(
            nn.Conv2d(1, width, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * width),
            nn.LeakyReLU(0.2),
            nn.Flatten(), nn.Linear(base, 1), nn.Flatten(0),
        )  # fmt: skip


MODELS = {"mlp-vae": MLPVAE, "conv-vae": ConvVAE, "dcgan": DCGAN}


def negative_elbo(model, x):
    """Per example: Bernoulli reconstruction on logits plus the closed-form Gaussian KL."""
    logits, mu, logvar = model(x)
    recon = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
    return recon + 0.5 * (mu * mu + logvar.exp() - logvar - 1).sum(1)
