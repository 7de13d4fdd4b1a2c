"""The model families that ``minigen train`` knows, by name: the registry.

Each entry is a ``Family`` (``minigen.families.base``): the object that builds a kind of
model, trains it one step at a time, draws its pictures and evaluates it. Adding a kind of
model is one new module that defines its Family, plus its line here.
"""

from __future__ import annotations

from minigen.families import cgan, cvae, gan, seed, vae
from minigen.families.base import Family

FAMILIES = {
    family.name: family
    for family in (
        vae.MLP_VAE,
        vae.CONV_VAE,
        gan.MLP_GAN,
        gan.DCGAN,
        cvae.CVAE,
        cgan.CGAN,
        seed.SEED_GAN,
        seed.SEED_VAE,
    )
}


def get(name: str) -> Family:
    """The family ``minigen train NAME`` trains; a ValueError that lists the names otherwise."""
    if name not in FAMILIES:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(FAMILIES)}")
    return FAMILIES[name]


__all__ = ["FAMILIES", "Family", "get"]
