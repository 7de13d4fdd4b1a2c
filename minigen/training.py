"""Training any model family: progress, checkpoints, metrics and samples.

``fit(config)`` trains one run and writes, in ``config.out``:

- ``config.json``: the settings of the run;
- ``checkpoint.npz``: model, optimiser(s), the epoch, the data loader's position and the
  random seed, rewritten atomically after every epoch, so ``resume=True`` continues the run;
- ``metrics.jsonl``: one JSON line per epoch (running training losses, test numbers, seconds);
- ``samples.png`` (and ``epochs/samples-NNN.png`` every few epochs; one row per class for a
  conditional family), ``losses.png``, or ``ring.png`` (samples over training) for 2-D points;
- the family's own pictures (``reconstructions.png``, ``interpolation.png`` for VAEs).

What is particular to a kind of model lives in its family (``minigen.families``): its
settings, model, optimisers, step, pictures and evaluation. This loop only calls them.

Reproducibility: the model is built right after ``manual_seed(seed)``, and every epoch starts
by reseeding every generator from (seed, epoch). An epoch therefore depends only on the
parameters it starts from, never on how many random numbers earlier epochs drew, so a run
killed at any point and resumed from its last checkpoint ends with exactly the parameters of
an uninterrupted run. (CuPy's generator states cannot be saved, which rules out storing them.)
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import NamedTuple

from tqdm import tqdm

from minigen import backend, data, families, viz
from minigen.autograd import no_grad
from minigen.families.base import OPTIONS
from minigen.io import atomic_write, load, save
from minigen.optim import MultiStepLR

MODELS = tuple(families.FAMILIES)
NOT_LOSSES = ("epoch", "step", "seconds")  # metrics.jsonl fields that losses.png leaves out
BATCH_SIZE = 128  # where neither the run nor its family's data defaults say
FAST_EPOCHS = 2  # MINIGEN_FAST=1: notebooks and CI only check that everything runs
RING_SNAPSHOTS = 8  # ring.png: this many snapshots spread over the run
POINTS_PICTURED, IMAGES_PICTURED = 512, 64  # the fixed latent points drawn every epoch
SAMPLE_GRIDS = 12  # at most about this many per-epoch sample grids in epochs/ (and always the last)

# What each data set asks of a run that does not say (explicit settings win, then these, then
# the family's defaults). The offline digits (1,437 images) need many short epochs. On the
# ring, PacGAN's packs of 4, Adam 1e-3, 8-d noise and tenfold learning-rate cuts at 1/2 and 4/5
# of the run are what found all eight modes, sharply, in our trials (see the README).
DATA_DEFAULTS = {
    "digits": {"epochs": 60},
    "mnist": {"epochs": 10},
    "fashion-mnist": {"epochs": 10},
    "ring": {"epochs": 768, "pack": 4, "lr": 1e-3, "latent_dim": 8, "lr_cuts": (1 / 2, 4 / 5)},
}
# Settings that may change between a run and its resumption; any other change is an error.
RESUMABLE_CHANGES = ("epochs", "device", "out")


@dataclasses.dataclass
class TrainConfig:
    """The settings of one run (``minigen train`` options have the same names). None means
    "the default": the data set's, else the family's. The family options (``OPTIONS``: beta;
    loss, gp_weight, r1_weight, n_critic, pack) stay None for families that do not read them."""

    model: str = "vae"
    data: str = "digits"
    epochs: int | None = None
    batch_size: int | None = None
    latent_dim: int | None = None
    beta: float | None = None
    likelihood: str | None = None
    hidden_layers: int | None = None
    lr: float | None = None
    loss: str | None = None
    gp_weight: float | None = None
    r1_weight: float | None = None
    n_critic: int | None = None
    pack: int | None = None
    lr_milestones: list | None = None
    device: str | None = None
    seed: int = 0
    limit: int | None = None
    out: str | None = None

    def resolved(self) -> TrainConfig:
        """A copy with every default filled in and every value checked (``resolve``)."""
        return resolve(self)


def resolve(config: TrainConfig) -> TrainConfig:
    """``config`` with every default filled in (explicit settings, then the data set's
    ``DATA_DEFAULTS``, then the family's) and every value checked: a ValueError names the
    setting and its value. Resolving a resolved config changes nothing."""
    family = families.get(config.model)
    if config.data not in data.KNOWN:
        raise ValueError(f"unknown data set {config.data!r}; the known ones are {', '.join(data.KNOWN)}")
    settings = dataclasses.asdict(config)
    foreign = [name for name in OPTIONS if name not in family.options and settings[name] is not None]
    if foreign:
        raise ValueError(
            f"{', '.join(n.replace('_', '-') for n in foreign)} does not apply to {family.name!r} "
            f"({family.name} reads {', '.join(family.options) or 'no family options'})"
        )
    epochs_unset = settings["epochs"] is None
    family.fill_for_data(settings)
    _fill_data_defaults(settings, family)
    if epochs_unset and os.environ.get("MINIGEN_FAST") == "1":
        settings["epochs"] = min(settings["epochs"], FAST_EPOCHS)
    family.fill(settings)
    _fill_run_defaults(settings)
    _check_common(settings)
    family.check(settings, data.EXAMPLE_SHAPES[config.data])
    return TrainConfig(**settings)


def _fill_data_defaults(settings: dict, family) -> None:
    defaults = DATA_DEFAULTS[settings["data"]]
    for name in ("epochs", "lr", "latent_dim", *family.options):
        if settings[name] is None and name in defaults:
            settings[name] = defaults[name]
    if settings["lr_milestones"] is None:
        cuts = {int(settings["epochs"] * share) for share in defaults.get("lr_cuts", ())}
        settings["lr_milestones"] = sorted(m for m in cuts if m >= 1)


def _fill_run_defaults(settings: dict) -> None:
    if settings["batch_size"] is None:
        settings["batch_size"] = BATCH_SIZE
    settings["lr_milestones"] = sorted(int(m) for m in settings["lr_milestones"])
    settings["device"] = backend.normalize_device(settings["device"] or backend.default_device())
    settings["out"] = settings["out"] or os.path.join("runs", f"{settings['model']}-{settings['data']}")


def _check_common(settings: dict) -> None:
    for name in ("epochs", "batch_size", "latent_dim"):
        if settings[name] < 1:
            raise ValueError(f"{name.replace('_', '-')} must be at least 1, got {settings[name]}")
    if settings["limit"] is not None and settings["limit"] < 1:
        raise ValueError(f"limit must be at least 1, got {settings['limit']}")
    if not settings["lr"] > 0:
        raise ValueError(f"lr must be positive, got {settings['lr']}")
    if any(m < 1 for m in settings["lr_milestones"]):
        raise ValueError(f"lr-milestones must be positive epochs, got {settings['lr_milestones']}")


def build_model(config: TrainConfig, example_shape: tuple, num_classes: int = 10):
    """The model a resolved config asks for, for examples of ``example_shape`` in
    ``num_classes`` classes, on the config's device."""
    return families.get(config.model).build(config, tuple(example_shape), num_classes).to(config.device)


# --- callbacks and the running losses -----------------------------------------------------------


class Callback:
    """Hooks into ``fit``: ``on_step`` after every optimisation step (``step`` counts all the
    run's steps, from 1) and ``on_epoch`` after every epoch's record is written. An exception
    raised in a hook ends the run there, as a crash would (the tests kill runs this way)."""

    def on_step(self, step: int) -> None:
        pass

    def on_epoch(self, record: dict) -> None:
        pass


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


def _epoch_seed(seed: int, epoch: int) -> int:
    return seed * 1_000_003 + epoch


# --- the run ----------------------------------------------------------------------------------


class _Session:
    """Everything one run holds: its family, data, model, optimisers with their learning-rate
    schedules, loader, records and the fixed latent points of its pictures."""

    def __init__(self, config: TrainConfig):
        self.config, self.family, self.out = config, families.get(config.model), Path(config.out)
        self.train_set = data.load(config.data, "train").first(config.limit)
        self.test_set = data.load(config.data, "test")
        backend.manual_seed(config.seed)
        shape = self.train_set.example_shape
        self.model = build_model(config, shape, self.train_set.num_classes)
        self.models_points = len(shape) == 1
        count = POINTS_PICTURED if self.models_points else IMAGES_PICTURED
        self.pictured = self.family.picture_inputs(self.model, config, count)
        self.optimizers = self.family.optimizers(config, self.model)
        schedules = {
            f"{n}_schedule": MultiStepLR(o, config.lr_milestones) for n, o in self.optimizers.items()
        }
        self.schedules = list(schedules.values())
        self.stateful = {**self.optimizers, **schedules}  # what a checkpoint saves besides model and loader
        self.loader = data.DataLoader(
            self.train_set, config.batch_size, shuffle=True, drop_last=self.family.drop_last,
            seed=config.seed, device=config.device,
        )  # fmt: skip
        self.checkpoint = self.out / "checkpoint.npz"
        self.records, self.history, self.steps = [], [], 0

    def restore(self, resume: bool) -> int:
        """The epochs already done: those of the checkpoint when resuming, else 0."""
        if not resume:
            return 0
        if not self.checkpoint.exists():
            print(f"minigen: no checkpoint in {self.out}; starting from scratch", file=sys.stderr)
            return 0
        epoch = _restore(self.checkpoint, self.config, self.model, self.stateful, self.loader)
        self.records = _read_metrics(self.out / "metrics.jsonl", epoch)
        return epoch

    def train_epoch(self, epoch: int, progress: bool, callbacks) -> dict:
        """One pass over the training set; the record of the epoch's mean losses."""
        config, family = self.config, self.family
        backend.manual_seed(_epoch_seed(config.seed, epoch))
        bar = tqdm(
            total=len(self.loader), desc=f"{config.model} {config.data} epoch {epoch}/{config.epochs}",
            unit="batch", file=sys.stderr, disable=not progress, leave=False,
        )  # fmt: skip
        with bar:
            running = _Running(bar, len(self.loader))
            self.model.train()
            for step, (x, y) in enumerate(self.loader, 1):
                running.add(**family.step(family.condition(self.model, y), self.optimizers, x, config, step))
                self.steps += 1
                for callback in callbacks:
                    callback.on_step(self.steps)
        for schedule in self.schedules:
            schedule.step()
        return {"epoch": epoch, "step": epoch * len(self.loader), **running.means()}

    def finish_epoch(self, record: dict, began: float, progress: bool) -> None:
        """Test numbers, then metrics.jsonl, the checkpoint and the pictures of the epoch."""
        config = self.config
        record.update(self.family.epoch_metrics(self.model, self.test_set, config))
        record["seconds"] = round(time.perf_counter() - began, 3)
        self.records.append(record)
        if progress:
            shown = ", ".join(f"{k} {v:.4g}" for k, v in record.items() if k not in ("epoch", "step"))
            print(f"epoch {record['epoch']}/{config.epochs}: {shown}", file=sys.stderr)
        _write_text(self.out / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in self.records))
        _save_checkpoint(self.checkpoint, config, self.model, self.stateful, self.loader, record["epoch"])
        if self.pictured_epoch(record["epoch"]):
            self.pictures(record["epoch"])
            viz.loss_curves(
                self.records, self.out / "losses.png", keys=[k for k in record if k not in NOT_LOSSES]
            )

    def pictured_epoch(self, epoch: int) -> bool:
        """Whether ``epoch`` draws pictures: the last, and evenly spaced ones before it, about
        RING_SNAPSHOTS times over a run on 2-D points and SAMPLE_GRIDS times on images (a
        picture costs time that training needs: a tenth of a second or more against a few
        milliseconds per step)."""
        epochs = self.config.epochs
        every = epochs // RING_SNAPSHOTS if self.models_points else math.ceil(epochs / SAMPLE_GRIDS)
        return epoch % max(1, every) == 0 or epoch == epochs

    def pictures(self, epoch: int) -> None:
        """The samples of the fixed latent points (the same every time, so progress is
        visible), then the family's pictures of the epoch. For 2-D points ``ring.png``: the
        last RING_SNAPSHOTS snapshots, the picture of how the modes are found (or lost). For
        images ``samples.png`` and a copy in ``epochs/``."""
        z, labels = self.pictured
        with self.model.eval_mode():
            samples = backend.to_host(self.family.draw(self.family.condition(self.model, labels), z).data)
        if self.models_points:
            self.history.append((f"epoch {epoch}", samples))
            viz.ring_scatter(self.history[-RING_SNAPSHOTS:], self.out / "ring.png", modes=data.RING_MODES)
        else:
            columns = self.family.grid_columns(self.model, len(samples))
            viz.image_grid(samples, self.out / "samples.png", nrow=columns)
            (self.out / "epochs").mkdir(exist_ok=True)
            path = self.out / "epochs" / f"samples-{epoch:03d}.png"
            viz.image_grid(samples, path, nrow=columns, title=f"epoch {epoch}")
        self.family.epoch_pictures(self.model, self.test_set, self.config, self.out)


def fit(config: TrainConfig, resume: bool = False, progress: bool = True, callbacks=()):
    """Train the run ``config`` describes (continuing from its checkpoint when ``resume``) and
    return (model, records) with records the metrics.jsonl lines. ``callbacks``: ``Callback``
    objects called after every step and epoch."""
    return train(resolve(config), resume, progress, callbacks)


def train(config: TrainConfig, resume: bool = False, progress: bool = True, callbacks=()):
    """``fit`` for a config that ``resolve`` has already filled in and checked."""
    Path(config.out).mkdir(parents=True, exist_ok=True)
    session = _Session(config)
    start = session.restore(resume)
    _write_text(session.out / "config.json", json.dumps(dataclasses.asdict(config), indent=2) + "\n")
    for epoch in range(start + 1, config.epochs + 1):
        began = time.perf_counter()
        record = session.train_epoch(epoch, progress, callbacks)
        session.finish_epoch(record, began, progress)
        for callback in callbacks:
            callback.on_epoch(record)
    if session.records:
        session.family.final_pictures(session.model, session.test_set, config, session.out)
    return session.model, session.records


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


# --- trained runs ----------------------------------------------------------------------------------


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
    config = resolve(dataclasses.replace(config, device=device or backend.default_device()))
    test_set = data.load(config.data, "test")
    model = build_model(config, test_set.example_shape, test_set.num_classes)
    model.load_state_dict(state["model"])
    model.eval()
    return Run(config, model, int(state["epoch"]))


def evaluate(directory, k: int = 1000, limit: int | None = None, device=None) -> dict:
    """The test metrics of a run (its family's ``evaluate``: for every image model the Frechet
    distance and class coverage of its samples, for VAEs also the negative ELBO and IWAE NLL,
    for conditional models the classifier's agreement with the asked-for classes; mode coverage
    on the ring), on the first ``limit`` test examples. Seeded from the run's seed, so that
    evaluating a checkpoint twice gives the same numbers."""
    config, model, epoch = load_run(directory, device)
    test_set = data.load(config.data, "test").first(limit)
    result = {"model": config.model, "data": config.data, "epochs": epoch, "examples": len(test_set)}
    backend.manual_seed(config.seed)
    result.update(families.get(config.model).evaluate(model, config, test_set, k))
    return {k: (round(v, 6) if isinstance(v, float) and math.isfinite(v) else v) for k, v in result.items()}
