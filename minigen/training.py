"""Training loops for the VAE and GAN models: progress, checkpoints, metrics and samples.

``fit(config)`` trains one run and writes, in ``config.out``:

- ``config.json``: the settings of the run;
- ``checkpoint.npz``: model, optimiser(s), the epoch, the data loader's position and the
  random seed, rewritten atomically after every epoch, so ``resume=True`` continues the run;
- ``metrics.jsonl``: one JSON line per epoch (running training losses, test loss, seconds);
- ``samples.png`` (and ``epochs/samples-NNN.png`` per epoch), ``losses.png``, and
  ``reconstructions.png`` for VAEs or ``ring.png`` (samples over training) for the ring;
- at the end, for VAEs, ``interpolation.png`` (straight lines between the latent codes of
  test images) and, for a 2-D latent, ``manifold.png``.

Reproducibility: the model is built right after ``manual_seed(seed)``, and every epoch starts
by reseeding every generator from (seed, epoch). An epoch therefore depends only on the
parameters it starts from, never on how many random numbers earlier epochs drew, so a run
killed at any point and resumed from its last checkpoint ends with exactly the parameters of
an uninterrupted run. (CuPy's generator states cannot be saved, which rules out storing them.)
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import NamedTuple

from tqdm import tqdm

from minigen import backend, data, metrics, viz
from minigen.autograd import no_grad
from minigen.creation import randn, tensor
from minigen.generative import gan, vae
from minigen.io import atomic_write, load, save
from minigen.optim import Adam, MultiStepLR

MODELS = ("vae", "conv-vae", "gan", "dcgan")
NOT_LOSSES = ("epoch", "step", "seconds")
RING_SNAPSHOTS = 8  # metrics.jsonl fields that losses.png leaves out
VAE_MODELS = ("vae", "conv-vae")

# Epochs when none are asked for: the offline digits (1,437 images) need many short epochs.
DEFAULT_EPOCHS = {"digits": 60, "mnist": 10, "fashion-mnist": 10, "ring": 768}
RING_HIDDEN = (128, 128, 128)  # the ring's MLP GAN: three hidden layers in G and in D
FAST_EPOCHS = 2  # MINIGEN_FAST=1: notebooks and CI only check that everything runs


@dataclasses.dataclass
class TrainConfig:
    """The settings of one run (``minigen train`` options have the same names)."""

    model: str = "vae"
    data: str = "digits"
    epochs: int | None = None
    batch_size: int = 128
    latent_dim: int | None = None
    beta: float = 1.0
    lr: float | None = None
    loss: str = "non-saturating"
    gp_weight: float | None = None
    n_critic: int | None = None
    pack: int | None = None
    lr_milestones: list | None = None
    device: str | None = None
    seed: int = 0
    limit: int | None = None
    out: str | None = None

    def resolved(self) -> TrainConfig:
        """A copy with every default filled in and every value checked (clear errors)."""
        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}; choose one of {', '.join(MODELS)}")
        if self.data not in data.KNOWN:
            raise ValueError(f"unknown data set {self.data!r}; the known ones are {', '.join(data.KNOWN)}")
        if self.data == "ring" and self.model != "gan":
            raise ValueError(f"the ring data set is 2-D points: train 'gan' on it, not {self.model!r}")
        if self.loss not in gan.LOSSES:
            raise ValueError(f"unknown GAN loss {self.loss!r}; choose one of {', '.join(gan.LOSSES)}")
        fast = os.environ.get("MINIGEN_FAST") == "1"
        wasserstein, ring = self.loss == "wasserstein", self.data == "ring"
        epochs = self.epochs if self.epochs is not None else DEFAULT_EPOCHS[self.data]
        filled = dataclasses.replace(
            self,
            epochs=min(epochs, FAST_EPOCHS) if fast and self.epochs is None else epochs,
            latent_dim=self.latent_dim
            if self.latent_dim is not None
            else _default_latent_dim(self.model, self.data),
            # Radford et al.'s 2e-4 for image GANs; the ring's small MLPs learn at 1e-3.
            lr=self.lr if self.lr is not None else (1e-3 if self.model in VAE_MODELS or ring else 2e-4),
            # Wasserstein critics train with a gradient penalty (Gulrajani et al.: weight 10, and
            # 5 critic steps per generator step); the other losses alternate one step each.
            gp_weight=self.gp_weight if self.gp_weight is not None else (10.0 if wasserstein else 0.0),
            n_critic=self.n_critic if self.n_critic is not None else (5 if wasserstein else 1),
            # On the ring, PacGAN's packing and tenfold learning-rate cuts at 1/2 and 4/5 of the
            # run are what found all eight modes, sharply, in our trials (see the README).
            pack=self.pack if self.pack is not None else (4 if ring else 1),
            device=backend.normalize_device(self.device or backend.default_device()),
            out=self.out or os.path.join("runs", f"{self.model}-{self.data}"),
        )
        milestones = self.lr_milestones
        if milestones is None:
            cuts = (filled.epochs // 2, filled.epochs * 4 // 5)
            milestones = sorted({m for m in cuts if m >= 1}) if ring else []
        filled = dataclasses.replace(filled, lr_milestones=sorted(int(m) for m in milestones))
        if any(m < 1 for m in filled.lr_milestones):
            raise ValueError(f"lr-milestones must be positive epochs, got {filled.lr_milestones}")
        if filled.pack != 1 and filled.model != "gan":
            raise ValueError(f"pack applies to the MLP GAN ('gan'), not {filled.model!r}")
        for name in ("epochs", "batch_size", "latent_dim", "n_critic", "pack"):
            if getattr(filled, name) < 1:
                raise ValueError(f"{name.replace('_', '-')} must be at least 1, got {getattr(filled, name)}")
        if filled.batch_size % filled.pack:
            raise ValueError(f"batch-size {filled.batch_size} must be a multiple of pack {filled.pack}")
        if filled.limit is not None and filled.limit < 1:
            raise ValueError(f"limit must be at least 1, got {filled.limit}")
        if not filled.lr > 0 or filled.beta < 0 or filled.gp_weight < 0:
            raise ValueError(
                f"lr must be positive and beta and gp-weight non-negative; got lr={filled.lr}, "
                f"beta={filled.beta}, gp-weight={filled.gp_weight}"
            )
        return filled


def _default_latent_dim(model: str, data_name: str) -> int:
    if model in VAE_MODELS:
        return 20
    return 8 if data_name == "ring" else 100


# --- models ----------------------------------------------------------------------------------


def build_model(config: TrainConfig, example_shape: tuple):
    """The model a config asks for, for examples of ``example_shape``, on the config's device."""
    shape = tuple(example_shape)
    if config.model == "vae":
        model = vae.MLPVAE(image_shape=shape, latent_dim=config.latent_dim)
    elif config.model == "conv-vae":
        model = vae.ConvVAE(image_shape=shape, latent_dim=config.latent_dim)
    elif config.model == "dcgan":
        model = gan.DCGAN(image_shape=shape, noise_dim=config.latent_dim)
    elif config.data == "ring":
        model = gan.MLPGAN(
            data_shape=shape, noise_dim=config.latent_dim, hidden_dims=RING_HIDDEN, output="linear",
            pack=config.pack,
        )  # fmt: skip
    else:
        model = gan.MLPGAN(data_shape=shape, noise_dim=config.latent_dim, pack=config.pack)
    return model.to(config.device)


def _optimizers(config: TrainConfig, model) -> dict:
    if config.model in VAE_MODELS:
        return {"optimizer": Adam(model.parameters(), lr=config.lr)}
    # Radford et al.'s beta1 = 0.5 steadies the adversarial game; WGAN-GP uses (0, 0.9).
    betas = (0.0, 0.9) if config.loss == "wasserstein" else (0.5, 0.999)
    return {
        "generator_optimizer": Adam(model.generator.parameters(), lr=config.lr, betas=betas),
        "discriminator_optimizer": Adam(model.discriminator.parameters(), lr=config.lr, betas=betas),
    }


def _epoch_seed(seed: int, epoch: int) -> int:
    return seed * 1_000_003 + epoch


# --- one epoch of each kind --------------------------------------------------------------------


class _Running:
    """Sums of the step losses, kept on the device: read (one host copy each) only when the
    progress bar is refreshed, every ``REFRESH`` steps and at the end of the epoch."""

    REFRESH = 10

    def __init__(self, progress, steps: int):
        self.progress, self.steps = progress, steps
        self.sums, self.counts, self.step = {}, {}, 0

    def add(self, **values) -> None:
        """Record one step's losses (a loss computed only on some steps is averaged over those)."""
        with no_grad():
            for name, value in values.items():
                self.sums[name] = value if name not in self.sums else self.sums[name] + value
                self.counts[name] = self.counts.get(name, 0) + 1
        self.step += 1
        self.progress.update(1)
        if self.step % self.REFRESH == 0 or self.step == self.steps:
            self.progress.set_postfix({k: f"{v:.3g}" for k, v in self.means().items()})

    def means(self) -> dict:
        return {name: total.item() / self.counts[name] for name, total in self.sums.items()}


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


def gan_step(
    model, generator_optimizer, discriminator_optimizer, real, loss: str = "non-saturating",
    gp_weight: float = 0.0, update_generator: bool = True,
) -> dict:  # fmt: skip
    """One discriminator step on ``real`` and a fresh fake batch and, if ``update_generator``,
    one generator step on the same fakes. Returns the losses as detached device tensors."""
    noise = model.sample_noise(real.shape[0])
    # A critic-only step (n_critic > 1) needs the fakes as data only: no graph through G.
    with contextlib.nullcontext() if update_generator else no_grad():
        fake = model.generator(noise)
    detached = fake.detach()
    d_loss = gan.discriminator_loss(model.discriminator(real), model.discriminator(detached), loss)
    if gp_weight:
        d_loss = d_loss + gp_weight * gan.gradient_penalty(model.discriminator, real, detached)
    discriminator_optimizer.zero_grad()
    d_loss.backward()
    discriminator_optimizer.step()
    if loss == "wasserstein" and not gp_weight:
        _clip_weights(model.discriminator, 0.01)  # Arjovsky et al.'s original Lipschitz constraint
    losses = {"d_loss": d_loss.detach()}
    if update_generator:
        g_loss = gan.generator_loss(model.discriminator(fake), loss)
        generator_optimizer.zero_grad()
        g_loss.backward()
        generator_optimizer.step()
        losses["g_loss"] = g_loss.detach()
    return losses


def _vae_epoch(model, loader, optimizers, config, progress) -> dict:
    running = _Running(progress, len(loader))
    model.train()
    for x, _ in loader:
        running.add(**vae_step(model, optimizers["optimizer"], x, config.beta))
    return running.means()


def _gan_epoch(model, loader, optimizers, config, progress) -> dict:
    running = _Running(progress, len(loader))
    model.train()
    for step, (real, _) in enumerate(loader, 1):
        losses = gan_step(
            model, optimizers["generator_optimizer"], optimizers["discriminator_optimizer"], real,
            config.loss, config.gp_weight, update_generator=step % config.n_critic == 0,
        )  # fmt: skip
        running.add(**losses)
    return running.means()


@no_grad()
def _clip_weights(module, bound: float) -> None:
    for param in module.parameters():
        xp = backend.xp_of(param.data)
        xp.clip(param.data, -bound, bound, out=param.data)


# --- outputs -------------------------------------------------------------------------------------


def _write_text(path: Path, text: str) -> None:
    with atomic_write(path) as file:
        file.write(text.encode())


def _read_metrics(path: Path, last_epoch: int) -> list:
    """The records of epochs up to ``last_epoch`` (later lines belong to an epoch being redone)."""
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in records if r["epoch"] <= last_epoch]


def _pictures(model, config, out: Path, epoch: int, fixed_noise, test_inputs, history) -> None:
    """Sample grids (the same latent points every epoch, so progress is visible), losses,
    reconstructions for VAEs and the ring over training."""
    was_training = model.training
    model.eval()
    with no_grad():
        if config.model in VAE_MODELS:
            samples = model.decode(fixed_noise).sigmoid()
        else:
            samples = model.generator(fixed_noise)
    model.train(was_training)
    host = backend.to_host(samples.data)
    if config.data == "ring":
        # Eight snapshots spread over the run: the picture of how the modes are found (or lost).
        if epoch % max(1, config.epochs // RING_SNAPSHOTS) == 0 or epoch == config.epochs:
            history.append((f"epoch {epoch}", host))
            viz.ring_scatter(history[-RING_SNAPSHOTS:], out / "ring.png", modes=data.RING_MODES)
    else:
        (out / "epochs").mkdir(exist_ok=True)
        viz.image_grid(host, out / "epochs" / f"samples-{epoch:03d}.png", title=f"epoch {epoch}")
        viz.image_grid(host, out / "samples.png")
    if config.model in VAE_MODELS:
        originals = test_inputs[:8]
        viz.reconstructions(
            originals,
            backend.to_host(model.reconstruct(tensor(originals, device=config.device)).data),
            out / "reconstructions.png",
        )


# --- the loop --------------------------------------------------------------------------------------


def fit(
    config: TrainConfig, resume: bool = False, progress: bool = True, stop_after_steps: int | None = None
):
    """Train the run ``config`` describes (continuing from its checkpoint when ``resume``) and
    return (model, records) with records the metrics.jsonl lines.

    ``stop_after_steps`` ends the run abruptly after that many optimisation steps in total,
    without writing anything more: a stand-in for killing the process, used by the tests.
    """
    config = config.resolved()
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    train_set = data.load(config.data, "train")
    test_set = data.load(config.data, "test")
    if config.limit:
        train_set = data.Dataset(
            train_set.inputs[: config.limit], train_set.labels[: config.limit], train_set.name,
            train_set.split, train_set.num_classes,
        )  # fmt: skip

    backend.manual_seed(config.seed)
    model = build_model(config, train_set.example_shape)
    fixed_noise = randn(512 if config.data == "ring" else 64, config.latent_dim, device=config.device)
    optimizers = _optimizers(config, model)
    schedules = {
        f"{name}_schedule": MultiStepLR(opt, config.lr_milestones) for name, opt in optimizers.items()
    }
    stateful = {**optimizers, **schedules}  # what a checkpoint saves besides the model and loader
    loader = data.DataLoader(
        train_set, config.batch_size, shuffle=True, drop_last=config.model not in VAE_MODELS,
        seed=config.seed, device=config.device,
    )  # fmt: skip
    checkpoint_path = out / "checkpoint.npz"
    start = 0
    if resume and checkpoint_path.exists():
        start = _restore(checkpoint_path, config, model, stateful, loader)
    elif resume:
        print(f"minigen: no checkpoint in {out}; starting from scratch", file=sys.stderr)
    _write_text(out / "config.json", json.dumps(dataclasses.asdict(config), indent=2) + "\n")
    records = _read_metrics(out / "metrics.jsonl", start)
    history: list = []
    epoch_fn = _vae_epoch if config.model in VAE_MODELS else _gan_epoch
    steps_left = stop_after_steps
    for epoch in range(start + 1, config.epochs + 1):
        backend.manual_seed(_epoch_seed(config.seed, epoch))
        began = time.perf_counter()
        bar = tqdm(
            total=len(loader), desc=f"{config.model} {config.data} epoch {epoch}/{config.epochs}",
            unit="batch", file=sys.stderr, disable=not progress, leave=False,
        )  # fmt: skip
        with bar:
            if steps_left is not None:
                if steps_left < len(loader):
                    epoch_fn(model, _Truncated(loader, steps_left), optimizers, config, bar)
                    return model, records
                steps_left -= len(loader)
            train_means = epoch_fn(model, loader, optimizers, config, bar)
        for schedule in schedules.values():
            schedule.step()
        record = {"epoch": epoch, "step": epoch * len(loader), **train_means}
        if config.model in VAE_MODELS:
            record["test_loss"] = metrics.negative_elbo(model, test_set.inputs)
        record["seconds"] = round(time.perf_counter() - began, 3)
        records.append(record)
        if progress:
            shown = ", ".join(f"{k} {v:.4g}" for k, v in record.items() if k not in ("epoch", "step"))
            print(f"epoch {epoch}/{config.epochs}: {shown}", file=sys.stderr)
        _write_text(out / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in records))
        _save_checkpoint(checkpoint_path, config, model, stateful, loader, epoch)
        _pictures(model, config, out, epoch, fixed_noise, test_set.inputs, history)
        viz.loss_curves(records, out / "losses.png", keys=[k for k in record if k not in NOT_LOSSES])
    if config.model in VAE_MODELS and records:
        _latent_pictures(model, config, out, test_set.inputs)
    return model, records


def _latent_pictures(model, config, out: Path, test_inputs) -> None:
    """Walks through the latent space of a trained VAE: straight lines between the codes of
    test images, and for a 2-D latent the whole learned manifold."""
    model.eval()
    with no_grad():
        mu, _ = model.encode(tensor(test_inputs[:16], device=config.device))

        def decode(z):
            return model.decode(z).sigmoid()

        viz.latent_interpolation(decode, mu[:8], mu[8:16], out / "interpolation.png")
        if config.latent_dim == 2:
            viz.latent_manifold(decode, out / "manifold.png", device=config.device)


class _Truncated:
    """The first ``steps`` batches of an epoch of ``loader``: the run stops there (a simulated kill)."""

    def __init__(self, loader, steps):
        self.loader, self.steps = loader, steps

    def __len__(self):
        return self.steps

    def __iter__(self):
        return itertools.islice(self.loader, self.steps)


def _save_checkpoint(path, config, model, stateful, loader, epoch) -> None:
    """``stateful``: the optimisers and learning-rate schedules by name."""
    save(
        {
            "format": "minigen-training",
            "config": dataclasses.asdict(config),
            "epoch": epoch,
            "model": model.state_dict(),
            **{name: part.state_dict() for name, part in stateful.items()},
            "loader": loader.state_dict(),
            "rng": {"seed": config.seed, "next_epoch_seed": _epoch_seed(config.seed, epoch + 1)},
        },
        path,
    )


# Settings that may change between a run and its resumption; any other change is an error.
RESUMABLE_CHANGES = ("epochs", "device", "out")


def _restore(path, config, model, stateful, loader) -> int:
    state = load(path, map_location=config.device)
    if not isinstance(state, dict) or state.get("format") != "minigen-training":
        raise ValueError(f"{path} is not a minigen training checkpoint")
    saved = state["config"]
    changed = [
        f"{name} ({saved.get(name)!r} -> {value!r})"
        for name, value in dataclasses.asdict(config).items()
        if name not in RESUMABLE_CHANGES and saved.get(name) != value
    ]
    if changed:
        raise ValueError(
            f"cannot resume {path}: the run was started with other settings: {', '.join(changed)}; "
            "use another --out directory for a new run"
        )
    model.load_state_dict(state["model"])
    for name, part in stateful.items():
        part.load_state_dict(state[name])
    loader.load_state_dict(state["loader"])
    return int(state["epoch"])


class Run(NamedTuple):
    config: TrainConfig
    model: object
    epoch: int  # the epochs the checkpoint's parameters have been trained for


def load_run(directory, device=None) -> Run:
    """The config, model and trained epochs of a finished or interrupted run directory, from its
    checkpoint, with the model on ``device`` (the default device when None) in evaluation mode."""
    directory = Path(directory)
    path = directory / "checkpoint.npz"
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint.npz in {directory}: is it a minigen training run?")
    state = load(path, map_location=device)
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    config = TrainConfig(**{k: v for k, v in state["config"].items() if k in fields})
    config = dataclasses.replace(config, device=device or backend.default_device()).resolved()
    example_shape = data.load(config.data, "test").example_shape
    model = build_model(config, example_shape)
    model.load_state_dict(state["model"])
    model.eval()
    return Run(config, model, int(state["epoch"]))


def evaluate(directory, k: int = 1000, limit: int | None = None, device=None) -> dict:
    """The test metrics of a run: negative ELBO and IWAE NLL (nats per image) for VAEs; the
    Frechet distance and class coverage of samples for image models (a VAE's samples are its
    decoder's mean images); mode coverage for the ring. Seeded from the run's seed, so that
    evaluating a checkpoint twice gives the same numbers."""
    config, model, epoch = load_run(directory, device)
    test_set = data.load(config.data, "test")
    inputs = test_set.inputs[:limit] if limit else test_set.inputs
    result = {"model": config.model, "data": config.data, "epochs": epoch, "examples": len(inputs)}
    backend.manual_seed(config.seed)
    samples = backend.to_host(model.sample(len(inputs)).data)
    if config.model in VAE_MODELS:
        result["test_negative_elbo"] = metrics.negative_elbo(model, inputs)
        result[f"iwae_nll_k{k}"] = metrics.iwae_nll(model, inputs, k=k)
    if config.data == "ring":
        result.update(metrics.ring_metrics(samples))
    else:
        classifier, _ = metrics.load_or_train_classifier(config.data)
        result.update(metrics.gan_image_metrics(samples, test_set, classifier))
    return {k: (round(v, 6) if isinstance(v, float) and math.isfinite(v) else v) for k, v in result.items()}
