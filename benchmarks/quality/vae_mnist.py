"""The MLP VAE protocol on MNIST in minigen and in PyTorch, side by side: test negative ELBO.

Protocol (PyTorch's examples/vae): 784-400-20 encoder and 20-400-784 decoder with ReLU,
Bernoulli likelihood on logits, Adam with lr 1e-3, batch 128, 10 epochs, the training images
shuffled every epoch; then the negative ELBO per test image (nats), averaged over the 10,000
test images with one posterior sample each. Both libraries read the same arrays through
``minigen.data`` (MINIGEN_DATA must point at the MNIST files), so only the library differs.

    python benchmarks/quality/vae_mnist.py [--epochs 10] [--seeds 0 1] [--threads 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness import threads, torch, versions  # noqa: E402

from minigen import data, training  # noqa: E402


def minigen_run(epochs: int, seed: int) -> tuple[float, float]:
    """(test negative ELBO, seconds) of ``minigen train vae --data mnist``."""
    with tempfile.TemporaryDirectory() as out:
        config = training.TrainConfig(model="vae", data="mnist", epochs=epochs, seed=seed, out=out)
        began = time.perf_counter()
        _, records = training.fit(config, progress=False)
        return records[-1]["test_loss"], time.perf_counter() - began


def torch_run(epochs: int, seed: int) -> tuple[float, float]:
    """(test negative ELBO, seconds) of the same protocol written in PyTorch."""
    from torch_twins import MLPVAE, negative_elbo

    torch.manual_seed(seed)
    train = torch.from_numpy(data.load("mnist", "train").inputs.reshape(-1, 784))
    test = torch.from_numpy(data.load("mnist", "test").inputs.reshape(-1, 784))
    model = MLPVAE()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    began = time.perf_counter()
    for _ in range(epochs):
        for batch in torch.randperm(len(train)).split(128):
            loss = negative_elbo(model, train[batch]).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        score = torch.cat([negative_elbo(model, x) for x in test.split(500)]).mean().item()
    return score, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    print(f"MLP VAE on MNIST, {args.epochs} epochs, {args.threads} threads; {versions()}")
    print(f"{'library':<10}{'seed':>6}{'test -ELBO (nats)':>20}{'seconds':>10}")
    results = {"minigen": [], "torch": []}
    with threads(args.threads):
        for seed in args.seeds:
            runs = [("minigen", minigen_run)] + ([("torch", torch_run)] if torch is not None else [])
            for name, run in runs:
                score, seconds = run(args.epochs, seed)
                results[name].append(score)
                print(f"{name:<10}{seed:>6}{score:>20.2f}{seconds:>10.1f}")
    if results["torch"]:
        gap = np.mean(results["minigen"]) - np.mean(results["torch"])
        print(f"mean difference minigen - torch: {gap:+.2f} nats per image")


if __name__ == "__main__":
    main()
