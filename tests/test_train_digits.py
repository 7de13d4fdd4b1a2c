"""End to end: an MLP and a small conv net, written and trained with minigen alone, classify
scikit-learn's 8x8 handwritten digits (1,797 images, a fixed held-out 20%).

This exercises every part of a training step together: Linear, Conv2d, MaxPool2d,
BatchNorm, Dropout, cross_entropy, backward, Adam, train/eval switching, and a state-dict
round trip of the trained model through ``minigen.save``/``minigen.load``.
"""

import numpy as np
import pytest
from sklearn import datasets as sklearn_datasets

import minigen
import minigen.functional as F
import minigen.nn as nn


@pytest.fixture(scope="module")
def digits():
    """Images scaled to [0, 1] as float32 (N, 1, 8, 8), int64 labels, and a fixed 80/20 split."""
    bunch = sklearn_datasets.load_digits()
    images = (bunch.images / 16.0).astype(np.float32)[:, None]
    labels = bunch.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(labels))
    cut = int(0.8 * len(labels))
    train, test = order[:cut], order[cut:]
    return (images[train], labels[train]), (images[test], labels[test])


def train(model, data, epochs, lr, batch_size=64):
    (images, labels), _ = data
    optimizer = minigen.optim.Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(0)
    model.train()
    for _ in range(epochs):
        order = rng.permutation(len(labels))
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            loss = F.cross_entropy(model(minigen.tensor(images[batch])), minigen.tensor(labels[batch]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model


@minigen.no_grad()
def accuracy(model, data) -> float:
    _, (images, labels) = data
    model.eval()
    predictions = model(minigen.tensor(images)).argmax(dim=1).numpy()
    return float((predictions == labels).mean())


def mlp():
    return nn.Sequential(
        nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Dropout(0.1), nn.Linear(128, 10)
    )  # fmt: skip


def conv_net():
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),  # 16 x 8 x 8
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.MaxPool2d(2),  # 32 x 4 x 4
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
        nn.AvgPool2d(2),  # 32 x 2 x 2
        nn.Flatten(), nn.Linear(128, 10),
    )  # fmt: skip


def test_mlp_reaches_95_percent_on_held_out_digits(digits):
    model = train(mlp(), digits, epochs=15, lr=3e-3)
    assert accuracy(model, digits) >= 0.95


def test_conv_net_reaches_97_percent_and_survives_a_save_load_round_trip(digits, tmp_path):
    model = train(conv_net(), digits, epochs=8, lr=3e-3)
    score = accuracy(model, digits)
    assert score >= 0.97
    minigen.save(model.state_dict(), tmp_path / "digits.npz")
    restored = conv_net()
    restored.load_state_dict(minigen.load(tmp_path / "digits.npz"))
    assert accuracy(restored, digits) == score
    for (key, a), b in zip(model.state_dict().items(), restored.state_dict().values()):
        assert np.array_equal(a.numpy(), b.numpy()), key
