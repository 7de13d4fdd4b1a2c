"""The ring: a mixture of 8 Gaussians on a circle, the classic picture of GAN mode collapse.

Mode k is centred at 2 (cos(2 pi k / 8), sin(2 pi k / 8)) with standard deviation 0.02 in
each coordinate, the setting of the unrolled-GAN paper (Metz et al. 2017). A generator that
collapses covers a few of the modes; one that works covers all eight.
"""

from __future__ import annotations

import numpy

from minigen.data.dataset import Dataset

RING_RADIUS = 2.0
RING_STD = 0.02
_ANGLES = 2 * numpy.pi * numpy.arange(8) / 8
RING_MODES = RING_RADIUS * numpy.stack([numpy.cos(_ANGLES), numpy.sin(_ANGLES)], axis=1)
RING_MODES.flags.writeable = False  # a shared constant: nobody may move the modes by accident

SIZES = {"train": 10_000, "test": 2_000}
SEEDS = {"train": 0, "test": 1}  # different seeds, so the test points are not the training points


def sample_ring(n: int, rng: numpy.random.Generator) -> tuple[numpy.ndarray, numpy.ndarray]:
    """``n`` points (float32 (n, 2)) and the mode each was drawn from (int64 (n,)), modes uniform."""
    labels = rng.integers(len(RING_MODES), size=n)
    points = RING_MODES[labels] + RING_STD * rng.standard_normal((n, 2))
    return points.astype(numpy.float32), labels.astype(numpy.int64)


def load_ring(split: str) -> Dataset:
    """10,000 training or 2,000 test points, the same every time (a fixed seed per split)."""
    points, labels = sample_ring(SIZES[split], numpy.random.default_rng(SEEDS[split]))
    return Dataset(points, labels, "ring", split, num_classes=len(RING_MODES))
