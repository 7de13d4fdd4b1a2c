"""How good is a generative model? Test ELBO and IWAE bounds for VAEs; for GANs the Frechet
distance between classifier features of generated and real images, class coverage, and mode
coverage on the 2-D ring.

Models run under ``no_grad`` in eval mode (their mode is restored afterwards); the statistics
are computed on the host in float64 with NumPy.
"""

from __future__ import annotations

import math
import numbers
import os
import warnings

import numpy
from tqdm import tqdm

from minigen import backend, data, nn
from minigen import functional as F
from minigen.creation import tensor
from minigen.data import RING_MODES, RING_STD
from minigen.data.sources import DEFAULT_ROOT, data_root
from minigen.generative import vae
from minigen.io import load, save
from minigen.optim import Adam
from minigen.tensor import Tensor

# Bump when FeatureClassifier or its training changes, so old cached classifiers are retrained.
CLASSIFIER_VERSION = 1
# A classifier trained without a number of epochs takes at least this many steps and epochs:
# 3 epochs of MNIST (938 batches each), 44 of the 1,437 digits, whose 3 epochs (69 steps)
# left a classifier that was 98.6% accurate but more than 90% sure of only 85% of test digits.
CLASSIFIER_MIN_STEPS, CLASSIFIER_MIN_EPOCHS = 1000, 3
CONFIDENT = 0.9  # a sample the classifier gives a class probability above this is "confident"
_CACHE_ENTRIES = frozenset({"config", "image_shape", "num_classes", "accuracy", "state_dict"})


# --- helpers -----------------------------------------------------------------------------------


def _host(values, what: str, dtype=numpy.float64) -> numpy.ndarray:
    """A NumPy array (of ``dtype``; None keeps the values' own) of a Tensor, a NumPy or CuPy
    array, or a Dataset's inputs."""
    if isinstance(values, data.Dataset):
        values = values.inputs
    if isinstance(values, Tensor):
        values = values.data
    if hasattr(values, "dtype"):
        values = backend.to_host(values)
    try:
        return numpy.asarray(values, dtype=dtype)
    except (TypeError, ValueError):
        raise TypeError(
            f"{what} must be a Tensor or an array of numbers; got {type(values).__name__}"
        ) from None


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")
    return int(value)


def _placement(model: nn.Module) -> tuple:
    """The device and dtype of the model's parameters (default device and float32 without any)."""
    weight = next(iter(model.parameters()), None)
    if weight is None:
        return backend.default_device(), backend.float32
    return weight.device, weight.dtype


def _batches(model: nn.Module, array: numpy.ndarray, batch_size: int, labels=None):
    """``array`` in slices of ``batch_size``, as tensors on the model's device in its dtype;
    with ``labels``, pairs (slice, its labels as an integer tensor)."""
    device, dtype = _placement(model)
    for start in range(0, len(array), batch_size):
        x = tensor(array[start : start + batch_size], dtype=dtype, device=device)
        yield x if labels is None else (x, tensor(labels[start : start + batch_size], device=device))


def _mean_per_example(model, inputs, batch_size: int, per_example, labels=None) -> float:
    """The mean over all examples of ``per_example(m, x)`` (a (n,) Tensor per batch x), in
    float64, with m the model, or for ``labels`` the conditional model bound to each batch's
    labels (``model.given``)."""
    batch_size = _positive_int(batch_size, "batch_size")
    array = _host(inputs, "inputs", dtype=None)  # each batch is cast to the model's dtype
    if array.ndim == 0 or len(array) == 0:
        raise ValueError(f"inputs must be a non-empty batch (N, ...); got shape {array.shape}")
    if labels is not None:
        labels = numpy.asarray(labels)
        if labels.shape != (len(array),):
            raise ValueError(f"labels must have shape ({len(array)},), one per input; got {labels.shape}")
    total = 0.0
    with model.eval_mode():
        for batch in _batches(model, array, batch_size, labels):
            bound, x = (model, batch) if labels is None else (model.given(batch[1]), batch[0])
            total += float(backend.to_host(per_example(bound, x).data).astype(numpy.float64).sum())
    return total / len(array)


# --- VAEs --------------------------------------------------------------------------------------


def negative_elbo(model, inputs, batch_size=500, labels=None) -> float:
    """The mean negative ELBO over ``inputs``, in nats per example (lower is better):

    -ELBO(x) = -log p(x|z) + KL(q(z|x) || N(0, I)),  z = mu + sigma * eps drawn by model(x),

    with the model's own likelihood (``model.log_likelihood``; Bernoulli on the logits for
    the image VAEs, i.e. ``vae.elbo``) and the closed-form Gaussian KL. The reconstruction
    term is a one-sample Monte Carlo estimate, so the value depends on minigen's random state.
    ``inputs``: (N, ...) array or Tensor, or a Dataset (its inputs), sent to the model's
    device in ``batch_size`` slices; the model runs in eval mode under no_grad. ``labels``
    (N,): a conditional model's classes, bound to each batch with ``model.given``.
    """

    def per_example(bound, x):
        out, mu, logvar = bound(x)
        return vae.gaussian_kl(mu, logvar) - bound.log_likelihood(x, out)

    return _mean_per_example(model, inputs, batch_size, per_example, labels)


def iwae_nll(model, inputs, k=1000, batch_size=100, labels=None) -> float:
    """The mean of -L_k over ``inputs`` (nats per example): an estimate of the negative
    log-likelihood -log p(x) from above, tighter as k grows (``vae.iwae_bound``, Burda et al.
    2015; k = 5000 in their tables, k = 1 gives the negative ELBO in expectation). ``labels``
    as for ``negative_elbo``: then it estimates -log p(x|y)."""
    k = _positive_int(k, "k")
    return _mean_per_example(model, inputs, batch_size, lambda bound, x: -vae.iwae_bound(bound, x, k), labels)


# --- Frechet distance ------------------------------------------------------------------------


def _psd_sqrt(matrix: numpy.ndarray) -> numpy.ndarray:
    """The symmetric square root of a symmetric positive semi-definite matrix (via eigh)."""
    values, vectors = numpy.linalg.eigh(matrix)
    return (vectors * numpy.sqrt(numpy.clip(values, 0.0, None))) @ vectors.T


def gaussian_frechet_distance(mean_a, cov_a, mean_b, cov_b) -> float:
    """The Frechet (2-Wasserstein squared) distance between N(mean_a, cov_a) and N(mean_b, cov_b):

    d^2 = ||mean_a - mean_b||^2 + tr(cov_a + cov_b - 2 (cov_a cov_b)^(1/2)).

    cov_a cov_b is not symmetric, but it is similar to the PSD matrix M = A cov_b A with
    A = cov_a^(1/2), so tr (cov_a cov_b)^(1/2) = sum_i sqrt(lambda_i(M)). Both square roots
    come from symmetric eigendecompositions in float64, with the tiny negative eigenvalues
    that rounding leaves clipped to 0, so near-singular covariances (fewer samples than
    features) stay stable. The result is clipped at 0 for the same reason.
    """
    mean_a, mean_b = _host(mean_a, "mean_a"), _host(mean_b, "mean_b")
    cov_a, cov_b = _host(cov_a, "cov_a"), _host(cov_b, "cov_b")
    d = mean_a.shape[0] if mean_a.ndim == 1 else -1
    for name, mean, cov in (("a", mean_a, cov_a), ("b", mean_b, cov_b)):
        if mean.shape != (d,) or cov.shape != (d, d):
            raise ValueError(
                f"gaussian_frechet_distance: mean_{name} must have shape (D,) and cov_{name} (D, D) with "
                f"the same D for both; got means {mean_a.shape}, {mean_b.shape} and covariances "
                f"{cov_a.shape}, {cov_b.shape}"
            )
    root_a = _psd_sqrt((cov_a + cov_a.T) / 2)
    middle = root_a @ cov_b @ root_a
    trace_sqrt = numpy.sqrt(numpy.clip(numpy.linalg.eigvalsh((middle + middle.T) / 2), 0.0, None)).sum()
    distance = ((mean_a - mean_b) ** 2).sum() + numpy.trace(cov_a) + numpy.trace(cov_b) - 2 * trace_sqrt
    return max(float(distance), 0.0)


def _moments(features, name: str) -> tuple:
    array = _host(features, name)
    if array.ndim != 2 or len(array) < 2:
        raise ValueError(
            f"{name} must have shape (N, D) with N >= 2 (a covariance needs two); got {array.shape}"
        )
    if not numpy.isfinite(array).all():
        raise ValueError(f"{name} contain NaN or infinite values")
    return array.mean(axis=0), numpy.cov(array, rowvar=False).reshape(array.shape[1], array.shape[1])


def frechet_distance(features_a, features_b) -> float:
    """The Frechet distance between Gaussians fitted to two feature sets (Heusel et al. 2017's
    FID when the features are Inception's; here those of ``FeatureClassifier``).

    ``features_a`` (N_a, D) and ``features_b`` (N_b, D): their means and unbiased covariances
    go into ``gaussian_frechet_distance``. Symmetric, and 0 for identical sets.
    """
    mean_a, cov_a = _moments(features_a, "features_a")
    mean_b, cov_b = _moments(features_b, "features_b")
    if mean_a.shape != mean_b.shape:
        raise ValueError(
            "features_a and features_b must have the same dimension D; "
            f"got {mean_a.shape[0]} and {mean_b.shape[0]}"
        )
    return gaussian_frechet_distance(mean_a, cov_a, mean_b, cov_b)


# --- the feature classifier --------------------------------------------------------------------


class FeatureClassifier(nn.Module):
    """A small conv net whose penultimate activations serve as image features for the Frechet
    distance (the role Inception-v3 plays in FID):

    conv 3x3 (16) BatchNorm ReLU maxpool 2 -> conv 3x3 (32) BatchNorm ReLU maxpool 2 -> flatten
    -> Linear(feature_dim) ReLU = ``features(x)`` -> Linear(num_classes) = logits.

    Works for any image at least 4 x 4 (8x8 digits, 28x28 MNIST). BatchNorm lets it reach
    about 98% on the digits in three epochs (and 99.4% in ``classifier_epochs``' 44).
    """

    def __init__(self, image_shape=(1, 28, 28), num_classes: int = 10, feature_dim: int = 64):
        super().__init__()
        image_shape = tuple(int(s) for s in image_shape)
        if len(image_shape) != 3 or min(image_shape[1:]) < 4:
            raise ValueError(f"FeatureClassifier needs images (C, H, W) of at least 4 x 4; got {image_shape}")
        channels, height, width = image_shape
        self.image_shape = image_shape
        self.num_classes = _positive_int(num_classes, "num_classes")
        self.feature_dim = _positive_int(feature_dim, "feature_dim")
        self.body = nn.Sequential(
            nn.Conv2d(channels, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * (height // 4) * (width // 4), feature_dim), nn.ReLU(),
        )  # fmt: skip
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, x: Tensor) -> Tensor:
        """The (N, feature_dim) penultimate activations."""
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))


def _initialize(model: nn.Module, rng: numpy.random.Generator) -> None:
    """PyTorch's default initialisation, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and
    biases, drawn again from ``rng``: the same seed gives the same classifier whatever state
    minigen's generators are in (building the layers still draws from them)."""
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            bound = 1.0 / math.sqrt(math.prod(module.weight.shape[1:]))
            for param in (module.weight, module.bias):
                values = rng.uniform(-bound, bound, param.shape).astype(param.dtype)
                param.data = backend.to_device(values, param.device)


def _classify(classifier: FeatureClassifier, images: numpy.ndarray, batch_size: int = 500) -> tuple:
    """(features (N, feature_dim) float64, predicted classes (N,), the predicted class's
    probability (N,)) of host images."""
    features, predictions, confidences = [], [], []
    with classifier.eval_mode():
        for x in _batches(classifier, images, batch_size):
            f = classifier.features(x)
            probabilities = backend.to_host(F.softmax(classifier.head(f), dim=1).data)
            features.append(backend.to_host(f.data).astype(numpy.float64))
            predictions.append(probabilities.argmax(axis=1))
            confidences.append(probabilities.max(axis=1))
    return tuple(numpy.concatenate(parts) for parts in (features, predictions, confidences))


def _check_images(dataset, what: str) -> None:
    if len(dataset.example_shape) != 3:
        raise ValueError(
            f"the feature classifier needs an image data set; {what} {dataset.name!r} holds examples of "
            f"shape {dataset.example_shape}"
        )


def classifier_epochs(train_examples: int, batch_size: int = 64) -> int:
    """The epochs of a classifier trained without a number: enough for CLASSIFIER_MIN_STEPS
    steps of ``batch_size``, and at least CLASSIFIER_MIN_EPOCHS."""
    steps_per_epoch = math.ceil(_positive_int(train_examples, "train_examples") / batch_size)
    return max(CLASSIFIER_MIN_EPOCHS, math.ceil(CLASSIFIER_MIN_STEPS / steps_per_epoch))


def train_classifier(
    train_set,
    test_set,
    epochs=None,
    seed=0,
    *,
    batch_size=64,
    lr=3e-3,
    feature_dim=64,
    train_size=None,
    device=None,
    progress=False,
) -> tuple:
    """Train a ``FeatureClassifier`` on an image Dataset; return (model, test accuracy).

    Cross-entropy and Adam(lr) for ``epochs`` passes (default ``classifier_epochs``) over the
    first ``train_size`` training examples (all by default) in shuffled batches. Weights and
    batch order come from ``seed`` alone, so the same arguments give the same classifier
    whatever minigen's random state. The accuracy is measured on ``test_set``; the model is
    returned in eval mode.
    """
    for dataset, what in ((train_set, "train_set"), (test_set, "test_set")):
        _check_images(dataset, what)
    if test_set.example_shape != train_set.example_shape:
        raise ValueError(
            f"train_set and test_set hold images of different shapes: {train_set.example_shape} and "
            f"{test_set.example_shape}"
        )
    batch_size = _positive_int(batch_size, "batch_size")
    if train_size is not None:
        train_set = train_set.first(_positive_int(train_size, "train_size"))
    epochs = (
        classifier_epochs(len(train_set), batch_size) if epochs is None else _positive_int(epochs, "epochs")
    )
    model = FeatureClassifier(train_set.example_shape, train_set.num_classes, feature_dim)
    if device is not None:
        model.to(device)
    _initialize(model, numpy.random.default_rng(seed))
    loader = data.DataLoader(train_set, batch_size, shuffle=True, seed=seed, device=_placement(model)[0])
    _fit_classifier(model, loader, Adam(model.parameters(), lr=lr), epochs, progress)
    return model, classifier_accuracy(model, test_set)


def _fit_classifier(model, loader, optimizer, epochs: int, progress: bool) -> None:
    """``epochs`` passes of cross-entropy steps; the model is left in eval mode."""
    model.train()
    with tqdm(total=epochs * len(loader), desc="feature classifier", disable=not progress) as bar:
        for _ in range(epochs):
            for x, y in loader:
                loss = F.cross_entropy(model(x), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                bar.update()
                if progress:  # item() waits for the device; only pay for it when someone watches
                    bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    model.eval()


def classifier_accuracy(classifier: FeatureClassifier, dataset) -> float:
    """The share of ``dataset``'s images that ``classifier`` labels correctly."""
    return class_agreement(classifier, dataset.inputs, dataset.labels)


def class_agreement(classifier: FeatureClassifier, images, labels) -> float:
    """The share of ``images`` (N, C, H, W) that ``classifier`` puts in the class ``labels``
    (N,) names: its accuracy on a labelled set, or on samples drawn for given classes how often
    a conditional model made what it was asked for."""
    _, predictions, _ = _classify(classifier, _host(images, "images", dtype=None))
    labels = numpy.asarray(labels)
    if labels.shape != predictions.shape:
        raise ValueError(f"labels must have shape {predictions.shape}, one per image; got {labels.shape}")
    return float((predictions == labels).mean())


def _writable(folder) -> bool:
    """Whether we may write in ``folder``: permitted, and not marked read-only (a folder with no
    write bits is read-only by intent even where root could write there)."""
    return os.access(folder, os.W_OK) and bool(os.stat(folder).st_mode & 0o222)


def classifier_path(name: str, root=None):
    """Where ``load_or_train_classifier`` caches the classifier of data set ``name``:
    ``<root>/classifiers/<name>-classifier.npz``, root as for ``minigen.data.load``
    (``root``, else $MINIGEN_DATA, else ~/.cache/minigen). A read-only data folder (a shared
    copy of the data sets) that holds no classifiers yet falls back to ~/.cache/minigen."""
    base = data_root(root)
    if not (base / "classifiers").exists() and base.exists() and not _writable(base):
        base = data_root(DEFAULT_ROOT)
    return base / "classifiers" / f"{name}-classifier.npz"


def _restore_classifier(path, config: dict, device) -> tuple:
    """(model, accuracy) from a cache file; ValueError or RuntimeError when it does not fit."""
    saved = load(path)
    if not isinstance(saved, dict) or not _CACHE_ENTRIES.issubset(saved):
        raise ValueError("not a cached feature classifier (missing entries)")
    if saved["config"] != config:
        raise ValueError(f"made with a different configuration {saved['config']} (wanted {config})")
    model = FeatureClassifier(saved["image_shape"], saved["num_classes"], config["feature_dim"])
    if device is not None:
        model.to(device)
    model.load_state_dict(saved["state_dict"])
    model.eval()
    return model, float(saved["accuracy"])


def load_or_train_classifier(
    name, root=None, *, epochs=None, seed=0, feature_dim=64, train_size=None, device=None, progress=True
) -> tuple:
    """The feature classifier of image data set ``name`` and its test accuracy, trained once.

    The first call trains one (``train_classifier`` on ``minigen.data.load(name, "train",
    root)``, accuracy on the test split) and saves it atomically with ``minigen.save`` to
    ``classifier_path(name, root)``, with its test accuracy and its configuration (name,
    epochs, seed, feature_dim, train_size, CLASSIFIER_VERSION; no ``epochs`` means
    ``classifier_epochs``). Later calls with the same
    configuration load it. A cache file that cannot be read, or that was made with another
    configuration, is replaced by a newly trained classifier, with a warning.
    """
    config = {
        "version": CLASSIFIER_VERSION,
        "name": name,
        "epochs": epochs if epochs is not None else f"at least {CLASSIFIER_MIN_STEPS} steps",
        "seed": seed,
        "feature_dim": feature_dim,
        "train_size": train_size,
    }
    path = classifier_path(name, root)
    if path.exists():
        try:
            return _restore_classifier(path, config, device)
        except (ValueError, RuntimeError) as error:  # CheckpointError is a ValueError
            warnings.warn(
                f"the cached classifier {path} cannot be used ({error}); training a new one", stacklevel=2
            )
    model, accuracy = train_classifier(
        data.load(name, "train", root), data.load(name, "test", root), epochs, seed,
        feature_dim=feature_dim, train_size=train_size, device=device, progress=progress,
    )  # fmt: skip
    _cache_classifier(path, config, model, accuracy)
    return model, accuracy


def _cache_classifier(path, config: dict, model: FeatureClassifier, accuracy: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    saved = {
        "config": config,
        "image_shape": list(model.image_shape),
        "num_classes": model.num_classes,
        "accuracy": accuracy,
        "state_dict": model.state_dict(),
    }
    save(saved, path)


# --- GANs --------------------------------------------------------------------------------------


def _coverage_threshold(min_share, count: int) -> float:
    """The default share a class or mode needs to count as covered: a quarter of its uniform share."""
    share = 1.0 / (4 * count) if min_share is None else float(min_share)
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"min_share must lie in [0, 1]; got {min_share!r}")
    return share


def gan_image_metrics(generator_samples, dataset_test, classifier, *, min_share=None) -> dict:
    """Sample quality and diversity of generated images, seen through ``classifier``:

    - "frechet_distance": between the classifier features of the samples and of the test
      images (``frechet_distance``; lower is better, small for a second real sample);
    - "class_counts": how many samples the classifier puts in each class;
    - "class_coverage": the share of the K classes that receive at least ``min_share`` of the
      samples (default 1 / (4K), a quarter of the uniform share), so a handful of stray
      samples does not count as covering a class; mode collapse lowers it;
    - "class_entropy": the entropy (nats) of the predicted class histogram p, log K at best;
    - "class_kl_uniform": KL(p || uniform) = log K - entropy, 0 at best;
    - "confident_samples": the share of samples whose most likely class has a probability above
      CONFIDENT (0.9): a sample that looks like some digit, not between two;
    - "classifier_accuracy": the classifier's accuracy on ``dataset_test`` (how far to trust
      the rest).

    ``generator_samples``: (N, C, H, W) images in [0, 1] of the classifier's image shape.
    """
    samples = _host(generator_samples, "generator_samples")
    if samples.shape[1:] != classifier.image_shape or len(samples) < 2:
        raise ValueError(
            f"generator_samples must be at least two images of this classifier's shape "
            f"(N, {', '.join(map(str, classifier.image_shape))}); got {samples.shape}"
        )
    if not (numpy.isfinite(samples).all() and samples.min() >= 0.0 and samples.max() <= 1.0):
        raise ValueError("generator_samples must be images with values in [0, 1], like the data")
    fake_features, fake_classes, fake_confidence = _classify(classifier, samples)
    real_features, real_classes, _ = _classify(
        classifier, _host(dataset_test.inputs, "dataset_test.inputs", None)
    )
    k = classifier.num_classes
    counts = numpy.bincount(fake_classes, minlength=k)
    p = counts / counts.sum()
    entropy = float(-(p[p > 0] * numpy.log(p[p > 0])).sum())
    return {
        "frechet_distance": frechet_distance(fake_features, real_features),
        "class_counts": counts.tolist(),
        "class_coverage": float((p >= _coverage_threshold(min_share, k)).mean()),
        "class_entropy": entropy,
        "class_kl_uniform": math.log(k) - entropy,
        "confident_samples": float((fake_confidence > CONFIDENT).mean()),
        "classifier_accuracy": float((real_classes == dataset_test.labels).mean()),
    }


def ring_metrics(samples, modes=RING_MODES, std=RING_STD, *, min_share=None) -> dict:
    """Mode coverage and sample quality on a mixture of Gaussians such as the ring.

    As in VEEGAN (Srivastava et al. 2017) and the unrolled-GAN ring (Metz et al. 2017), a
    sample is high quality when it lies within 3 std (Euclidean distance <= 3 * ``std``) of
    its nearest mode; real ring data scores 1 - exp(-9/2) = 98.9%. A mode counts as covered
    when at least ``min_share`` of all samples are high quality and nearest to it (default
    1 / (4K), a quarter of its uniform share, and at least one sample), so a few stray samples
    do not cover a mode (PacGAN, Lin et al. 2018, likewise asks for a minimum number of
    samples per mode). Returns "modes_covered" (int), "num_modes" (K), "high_quality" (share of
    samples) and "per_mode" (the high-quality samples nearest each mode). NaN or infinite
    samples count as low quality.
    """
    points, centres = _host(samples, "samples"), _host(modes, "modes")
    if points.ndim != 2 or centres.ndim != 2 or points.shape[1] != centres.shape[1] or len(points) == 0:
        raise ValueError(
            "samples (N, D) and modes (K, D) must share D, with N >= 1; "
            f"got {points.shape} and {centres.shape}"
        )
    if not float(std) > 0:
        raise ValueError(f"std must be positive; got {std!r}")
    distances = numpy.sqrt(((points[:, None, :] - centres[None, :, :]) ** 2).sum(axis=-1))
    distances[~numpy.isfinite(distances)] = numpy.inf
    nearest = distances.argmin(axis=1)
    high = distances[numpy.arange(len(points)), nearest] <= 3 * float(std)
    per_mode = numpy.bincount(nearest[high], minlength=len(centres))
    threshold = max(1.0, _coverage_threshold(min_share, len(centres)) * len(points))
    return {
        "modes_covered": int((per_mode >= threshold).sum()),
        "num_modes": len(centres),
        "high_quality": float(high.mean()),
        "per_mode": per_mode.tolist(),
    }
