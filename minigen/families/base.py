"""The model-family protocol: everything training, evaluation and the command line ask of a
kind of generative model, in one object, so that a new kind is one new module.

A ``Family`` says which settings it reads and their defaults, builds the model and its
optimisers, takes one training step, draws pictures and evaluates a trained model. The loop
in ``minigen.training`` and the commands in ``minigen.cli`` only call these methods; neither
knows which family it is running.

A *conditional* family's models take class labels as well. They follow one extra rule:
``model.given(labels)`` returns a view that behaves as an unconditional model of the same
family with those labels bound, so the family's step, its pictures and the metrics run
unchanged on conditional models.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy

from minigen import backend, metrics
from minigen.creation import randn, tensor
from minigen.tensor import Tensor

# Settings that belong to some families only; a family lists those it reads in ``options``.
OPTIONS = ("beta", "likelihood", "hidden_layers", "loss", "gp_weight", "r1_weight", "n_critic", "pack")
SAMPLES_PER_CLASS = 8  # a conditional family's sample grid: one row per class, this many columns


class Family:
    """One kind of generative model (subclasses fill in the methods that raise here).

    ``name`` is what ``minigen train NAME`` takes and ``summary`` its help line. ``options``
    names the settings of ``OPTIONS`` that this family reads; ``defaults`` gives their values,
    and those of ``lr`` and ``latent_dim``, where a run leaves them unset. ``drop_last`` drops
    the last, smaller batch of an epoch (a GAN's packs need full batches). ``data_defaults``
    maps a data set's name to this family's own defaults on it (any setting; they come before
    the data set's ``DATA_DEFAULTS`` and the family's ``defaults``).
    """

    name: str
    summary: str
    options: tuple = ()
    defaults: dict = {}
    data_defaults: dict = {}
    conditional = False
    drop_last = False
    models_points = False  # whether it also models 2-D points (the ring), not only images

    # --- settings ---------------------------------------------------------------------------
    def fill(self, settings: dict) -> None:
        """Fill this family's unset settings (None) in ``settings``, a TrainConfig as a dict."""
        _fill_unset(settings, self.defaults)

    def fill_for_data(self, settings: dict) -> None:
        """Fill the unset settings that this family sets on ``settings["data"]``."""
        _fill_unset(settings, self.data_defaults.get(settings["data"], {}))

    def check(self, settings: dict, example_shape: tuple) -> None:
        """Raise ValueError when the filled ``settings`` or the data's ``example_shape`` do not
        suit this family (the message names the setting and its value)."""
        if len(example_shape) != 3 and not (self.models_points and len(example_shape) == 1):
            raise ValueError(
                f"{self.name} models images (C, H, W); {settings['data']!r} holds examples of shape "
                f"{example_shape}: train 'gan' on 2-D points"
            )

    # --- the model and one step --------------------------------------------------------------
    def build(self, config, example_shape: tuple, num_classes: int):
        """The model ``config`` asks for, for examples of ``example_shape`` (on the CPU)."""
        raise NotImplementedError

    def optimizers(self, config, model) -> dict:
        """The optimisers by name (the names are the checkpoint's entries)."""
        raise NotImplementedError

    def step(self, model, optimizers: dict, x, config, step: int) -> dict:
        """One training step on the batch ``x`` (step counts from 1 within the epoch); the
        losses as detached device tensors. ``model`` has its labels bound when conditional."""
        raise NotImplementedError

    def condition(self, model, labels):
        """``model`` with the batch's ``labels`` bound (``model.given``), or ``model`` itself
        for an unconditional family."""
        return model.given(labels) if self.conditional else model

    def labels(self, dataset):
        """The labels a conditional family's metrics bind (host array), None when unconditional."""
        return dataset.labels if self.conditional else None

    # --- samples, pictures, evaluation ---------------------------------------------------------
    def draw(self, model, z):
        """What the model makes of latent points ``z`` (images in [0, 1], or points), on a
        model in eval mode under no_grad (bound to its labels when conditional)."""
        raise NotImplementedError

    def class_labels(self, model, n: int):
        """The labels of n samples of a conditional model, class after class in equal runs of
        ceil(n / K) (one grid row per class); None for an unconditional family."""
        if not self.conditional:
            return None
        return numpy.arange(n) // self.grid_columns(model, n)

    def grid_columns(self, model, n: int) -> int | None:
        """Images per row of a grid of n samples: one row per class when conditional, else a
        square grid (None)."""
        return math.ceil(n / model.num_classes) if self.conditional else None

    def picture_inputs(self, model, config, count: int) -> tuple:
        """The fixed (z, labels) that every epoch's sample grid shows: ``count`` latent points,
        or for a conditional family SAMPLES_PER_CLASS points for each class."""
        if self.conditional:
            count = model.num_classes * SAMPLES_PER_CLASS
        labels = self.class_labels(model, count)
        labels = None if labels is None else tensor(labels, device=config.device)
        return randn(count, config.latent_dim, device=config.device), labels

    def sample(self, model, config, n: int) -> tuple:
        """(n samples, their labels or None) as host arrays, drawn in eval mode (``class_labels``
        for a conditional family)."""
        labels = self.class_labels(model, n)
        z = randn(n, config.latent_dim, device=config.device)
        with model.eval_mode():
            bound = self.condition(model, None if labels is None else tensor(labels, device=config.device))
            samples = self.draw(bound, z)
        return backend.to_host(samples.data), labels

    def epoch_metrics(self, model, test_set, config) -> dict:
        """Test numbers recorded after every epoch (none by default)."""
        return {}

    def epoch_pictures(self, model, test_set, config, out: Path) -> None:
        """Pictures written after every epoch besides the samples (none by default)."""

    def final_pictures(self, model, test_set, config, out: Path) -> None:
        """Pictures written once at the end of training (none by default)."""

    def evaluate(self, model, config, test_set, k: int) -> dict:
        """The test metrics of a trained model (``minigen evaluate``): the family's own
        (``likelihood_metrics``), then those of as many samples as test examples: mode coverage
        on 2-D points, and on images ``sample_metrics`` and the family's ``classifier_metrics``,
        both with the data set's classifier. The samples are drawn first, so that their random
        numbers do not depend on the family's metrics."""
        samples, labels = self.sample(model, config, len(test_set))
        result = self.likelihood_metrics(model, test_set, k)
        if len(test_set.example_shape) == 1:
            result.update(metrics.ring_metrics(samples))
            return result
        classifier, _ = metrics.load_or_train_classifier(config.data)
        result.update(sample_metrics(samples, labels, test_set, classifier))
        result.update(self.classifier_metrics(model, config, test_set, classifier))
        return result

    def likelihood_metrics(self, model, test_set, k: int) -> dict:
        """Test numbers that need the model itself, not only its samples (none by default)."""
        return {}

    def classifier_metrics(self, model, config, test_set, classifier) -> dict:
        """Test numbers of an image model judged by the data set's ``classifier`` beyond those of
        its samples (none by default)."""
        return {}


def _fill_unset(settings: dict, values: dict) -> None:
    for name, value in values.items():
        if settings[name] is None:
            settings[name] = value


def sample_metrics(samples, labels, test_set, classifier) -> dict:
    """Metrics of image samples: the Frechet distance and class coverage in the features of
    ``classifier`` and, for samples drawn for given ``labels``, the share that the classifier
    puts in the class they were drawn for ("conditional_accuracy")."""
    result = metrics.gan_image_metrics(samples, test_set, classifier)
    if labels is not None:
        result["conditional_accuracy"] = metrics.class_agreement(classifier, samples, labels)
    return result


def one_hot(labels: Tensor, num_classes: int, like: Tensor) -> Tensor:
    """The (N, num_classes) one-hot codes of integer ``labels`` (N,), a constant in the dtype
    and on the device of ``like`` (PyTorch's ``F.one_hot``, as floats)."""
    xp = backend.xp_of(like.data)
    return Tensor(xp.eye(num_classes, dtype=like.dtype)[labels.data])


def tile_labels(labels: Tensor, rows: int) -> Tensor:
    """``labels`` (N,) repeated to ``rows`` = c N entries, [l_1..l_N, l_1..l_N, ...]: the order in
    which the IWAE bound stacks its c draws of a batch (``vae.iwae_bound``)."""
    n = labels.shape[0]
    if rows % n:
        raise ValueError(f"cannot bind {n} labels to {rows} rows (not a multiple)")
    return labels if rows == n else Tensor(backend.xp_of(labels.data).tile(labels.data, rows // n))


class BoundModule:
    """A conditional module ``module(x, labels)`` with one batch's labels bound: called as
    ``bound(x)``, and with the module's ``parameters()`` (weight clipping reaches them)."""

    def __init__(self, module, labels: Tensor):
        self.module, self.labels = module, labels

    def __call__(self, x: Tensor) -> Tensor:
        return self.module(x, self.labels)

    def parameters(self):
        return self.module.parameters()
