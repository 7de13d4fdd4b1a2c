"""Generative adversarial networks: the discriminator and generator losses, the WGAN-GP
gradient penalty and the R1 penalty, and two model families (an MLP GAN and a DCGAN).

A generator G maps noise z ~ N(0, I) to data; a discriminator (critic) D maps data to one
logit l = D(x) per example. Every loss here takes those logits, never probabilities, so that
no sigmoid is ever evaluated where it rounds to 0 or 1.

- "minimax" and "non-saturating": Goodfellow et al. 2014, "Generative Adversarial Nets". The
  discriminator maximises E[log D(x)] + E[log(1 - D(G(z)))] with D(x) = sigmoid(l); the
  generator of the minimax game minimises E[log(1 - D(G(z)))], whose gradient vanishes when D
  confidently rejects the fakes, so the paper suggests the non-saturating heuristic: maximise
  E[log D(G(z))] instead.
- DCGAN: Radford, Metz & Chintala 2015, "Unsupervised Representation Learning with Deep
  Convolutional Generative Adversarial Networks" (strided (transposed) convolutions, batch
  norm, ReLU in G, LeakyReLU(0.2) in D, weights drawn from N(0, 0.02)).
- "wasserstein": Arjovsky, Chintala & Bottou 2017, "Wasserstein GAN": the critic estimates
  the Kantorovich-Rubinstein dual E[D(x_real)] - E[D(x_fake)] over 1-Lipschitz D.
- ``gradient_penalty``: Gulrajani et al. 2017, "Improved Training of Wasserstein GANs"
  (WGAN-GP): the Lipschitz constraint as a soft penalty on the critic's input gradient.
- ``r1_penalty``: Mescheder, Geiger & Nowozin 2018, "Which Training Methods for GANs do
  actually Converge?": the zero-centred penalty on the discriminator's input gradient at the
  data, which makes the game locally convergent where WGAN and WGAN-GP are not.
- "hinge": Lim & Ye 2017, "Geometric GAN", and Miyato et al. 2018, "Spectral Normalization
  for Generative Adversarial Networks".
"""

from __future__ import annotations

import math

from minigen import functional as F
from minigen import nn
from minigen.autograd import enable_grad, grad, is_grad_enabled
from minigen.creation import rand, randn
from minigen.ops.elementwise import sqrt, where
from minigen.ops.reduce import mean, sum
from minigen.ops.shape import reshape
from minigen.tensor import Tensor

LOSSES = ("minimax", "non-saturating", "wasserstein", "hinge")


def _check_logits(name: str, logits) -> None:
    if not isinstance(logits, Tensor) or logits.dtype.kind != "f":
        described = f"a {logits.dtype} tensor" if isinstance(logits, Tensor) else type(logits).__name__
        raise TypeError(f"{name} must be a floating tensor of discriminator logits; got {described}")


def _check_kind(kind) -> None:
    if kind not in LOSSES:
        raise ValueError(f"unknown GAN loss kind {kind!r}; choose one of {LOSSES}")


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor, kind: str = "non-saturating") -> Tensor:
    """The loss the discriminator (critic) minimises, from its logits on real and fake batches.

    With l_r = D(x_real), l_f = D(G(z)) and means over each batch (the two may differ in size):

    - "minimax" and "non-saturating" (the same discriminator; D(x) = sigmoid(l)):
      -E[log sigmoid(l_r)] - E[log(1 - sigmoid(l_f))] = mean(softplus(-l_r)) + mean(softplus(l_f)),
      the binary cross-entropy of labelling reals 1 and fakes 0, in its overflow-free form.
    - "wasserstein": mean(l_f) - mean(l_r), the negated estimate of the Wasserstein-1
      distance (add ``lambda * gradient_penalty`` or clip the weights to keep D Lipschitz).
    - "hinge": mean(relu(1 - l_r)) + mean(relu(1 + l_f)).
    """
    _check_kind(kind)
    _check_logits("real_logits", real_logits)
    _check_logits("fake_logits", fake_logits)
    if kind == "wasserstein":
        return mean(fake_logits) - mean(real_logits)
    if kind == "hinge":
        return mean(F.relu(1.0 - real_logits)) + mean(F.relu(1.0 + fake_logits))
    return mean(F.softplus(-real_logits)) + mean(F.softplus(fake_logits))


def generator_loss(fake_logits: Tensor, kind: str = "non-saturating") -> Tensor:
    """The loss the generator minimises, from the discriminator's logits l = D(G(z)).

    - "minimax": E[log(1 - sigmoid(l))] = -mean(softplus(l)). Its gradient per logit is
      -sigmoid(l) / N, which vanishes as sigmoid(l) -> 0, i.e. exactly when the discriminator
      confidently rejects the fakes (early in training): the loss saturates.
    - "non-saturating": -E[log sigmoid(l)] = mean(softplus(-l)). Same fixed point, but its
      gradient per logit, -(1 - sigmoid(l)) / N, tends to -1 / N there.
    - "wasserstein" and "hinge": -mean(l) (the hinge GAN's generator is the Wasserstein one).
    """
    _check_kind(kind)
    _check_logits("fake_logits", fake_logits)
    if kind == "minimax":
        return -mean(F.softplus(fake_logits))
    if kind == "non-saturating":
        return mean(F.softplus(-fake_logits))
    return -mean(fake_logits)


def _safe_norm(squares: Tensor) -> Tensor:
    """sqrt(squares), with gradient 0 (not 0 * inf = nan) where squares is exactly 0.

    Adding an epsilon inside the sqrt would also guard the gradient but shift the value; the
    double ``where`` keeps the value exact and gives the subgradient 0 at 0, as PyTorch's norm.
    """
    positive = squares.data > 0
    return where(positive, sqrt(where(positive, squares, 1.0)), 0.0)


def _check_batch(penalty: str, name: str, t) -> None:
    if not isinstance(t, Tensor) or t.dtype.kind != "f" or t.ndim == 0 or t.shape[0] == 0:
        described = f"shape {t.shape}, {t.dtype}" if isinstance(t, Tensor) else type(t).__name__
        raise ValueError(f"{penalty}: {name} must be a non-empty floating batch (N, ...); got {described}")


def _input_gradient_penalty(D, points: Tensor, of_squared_norms) -> Tensor:
    """of_squared_norms(s), s_i = ||grad_x D(x)_i||^2 at the constant (detached) ``points``
    x_i, the norm per example over all non-batch dims, with the input gradient built with
    ``create_graph=True``, so the result depends on D's parameters and ``backward`` on it is a
    double backward through D. Under ``no_grad`` it is still computed (it needs a graph of D)
    and returned detached."""
    recording = is_grad_enabled()
    with enable_grad():
        points = points.detach().requires_grad_()
        (gradients,) = grad(sum(D(points)), points, create_graph=True)
        penalty = of_squared_norms(sum(reshape(gradients, (points.shape[0], -1)) ** 2, dim=1))
    return penalty if recording else penalty.detach()


def gradient_penalty(D, real: Tensor, fake: Tensor, eps: Tensor | None = None) -> Tensor:
    """WGAN-GP's penalty mean_i (||grad_x D(x_hat)_i||_2 - 1)^2, unweighted (the caller
    multiplies by lambda, 10 in Gulrajani et al.).

    x_hat = eps * real + (1 - eps) * fake, with eps ~ U(0, 1) of shape (N, 1, ..., 1) drawn on
    real's device and dtype when not given, and the norm is taken per example over all
    non-batch dims. real, fake and eps are constants here (detached), so the penalty depends
    on D's parameters only, through the input gradient built with ``create_graph=True``:
    ``backward`` on it is a double backward through D.

    Where an example's input gradient is exactly 0 (a dead ReLU region), its norm's gradient
    is taken as 0 rather than nan (see ``_safe_norm``). A critic with BatchNorm in training
    mode couples the examples of x_hat, so its "per-example" gradient is not one; Gulrajani et
    al. use no batch norm in the critic. Under ``no_grad`` the value is still computed (it
    needs a graph of D) and returned detached.
    """
    for name, t in (("real", real), ("fake", fake)):
        _check_batch("gradient_penalty", name, t)
    if real.shape != fake.shape:
        raise ValueError(
            f"gradient_penalty: real of shape {real.shape} and fake of shape {fake.shape} differ"
        )
    n = real.shape[0]
    eps_shape = (n,) + (1,) * (real.ndim - 1)
    if eps is None:
        eps = rand(*eps_shape, dtype=real.dtype, device=real.device)
    elif not isinstance(eps, Tensor) or eps.shape != eps_shape:
        described = f"shape {eps.shape}" if isinstance(eps, Tensor) else type(eps).__name__
        raise ValueError(f"gradient_penalty: eps must have shape {eps_shape}; got {described}")
    eps = eps.detach()
    x_hat = eps * real.detach() + (1.0 - eps) * fake.detach()
    return _input_gradient_penalty(D, x_hat, lambda squares: mean((_safe_norm(squares) - 1.0) ** 2))


def r1_penalty(D, real: Tensor) -> Tensor:
    """The zero-centred R1 penalty of Mescheder, Geiger & Nowozin 2018 ("Which Training Methods
    for GANs do actually Converge?"), unweighted: mean_i ||grad_x D(x_i)||_2^2 over the real
    batch x_i ~ p_data, the norm per example over all non-batch dims.

    Mescheder et al. add R1(psi) = (gamma / 2) E_{p_data} ||grad_x D_psi(x)||^2 to the
    discriminator's loss, so the caller multiplies this value by gamma / 2 (the 1/2 is the
    caller's, as in ``families.gan.gan_step``: ``r1_weight`` is their gamma). Penalising the
    gradient towards 0 on the data, not towards norm 1 between data and fakes as
    ``gradient_penalty`` does, makes the equilibrium p_g = p_data, D = 0 locally
    attractive. ``real`` is a constant (detached): the penalty depends on D's parameters only,
    and ``backward`` on it is a double backward through D. No square root is taken, so no
    guard is needed where the gradient is 0. A discriminator with BatchNorm in training mode
    couples the examples, as for ``gradient_penalty``. Under ``no_grad`` the value is still
    computed and returned detached.
    """
    _check_batch("r1_penalty", "real", real)
    return _input_gradient_penalty(D, real, mean)


# --- models ---------------------------------------------------------------------------------


def _check_positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int; got {value!r}")


def _check_shape(name: str, shape) -> tuple:
    shape = tuple(shape)
    if not shape or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in shape):
        raise ValueError(f"{name} must be a non-empty tuple of positive ints; got {shape!r}")
    return shape


class GAN(nn.Module):
    """What every GAN model shares: ``generator`` (noise (N, noise_dim) -> data),
    ``discriminator`` (data -> logits (N,)), ``noise_dim``, and the sampling methods.

    Device and dtype are the generator's (those of its first parameter); move the whole model
    with ``model.to(...)``.
    """

    def __init__(self, generator: nn.Module, discriminator: nn.Module, noise_dim: int):
        super().__init__()
        self.generator, self.discriminator, self.noise_dim = generator, discriminator, noise_dim

    def sample_noise(self, n: int) -> Tensor:
        """z ~ N(0, I) of shape (n, noise_dim) on the model's device, in its dtype."""
        _check_positive_int("the number of samples n", n)
        reference = next(self.generator.parameters())
        return randn(n, self.noise_dim, dtype=reference.dtype, device=reference.device)

    def sample(self, n: int) -> Tensor:
        """G(z) for n fresh noise vectors, in eval mode (BatchNorm uses its running statistics)
        and with no graph; every part's training mode is restored after (``Module.eval_mode``)."""
        with self.eval_mode():
            return self.generator(self.sample_noise(n))


# The hidden activations an MLPGAN may use, by name: each entry makes a fresh layer.
ACTIVATIONS = {"leaky_relu": lambda: nn.LeakyReLU(0.2), "relu": nn.ReLU}


def _mlp(sizes, first=(), last=(), activation="leaky_relu"):
    """``first``, then Linear layers through ``sizes`` with ``ACTIVATIONS[activation]`` between
    them, then ``last``."""
    layers = list(first)
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(fan_in, fan_out))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers, *last)


class Pack(nn.Module):
    """PacGAN's packing (Lin, Khetan, Fanti & Oh 2018): the discriminator judges m samples at
    once, (N, *shape) -> (N/m, m * prod(shape)), all real or all fake. A collapsed generator's
    packs look alike, which a packed discriminator can see and punish, so packing counters
    mode collapse at the cost of an m-times wider first layer. N must be a multiple of m."""

    def __init__(self, m: int):
        super().__init__()
        _check_positive_int("pack", m)
        self.m = m

    def forward(self, x):
        if x.shape[0] % self.m:
            raise ValueError(f"a batch of {x.shape[0]} cannot be split into packs of {self.m}")
        return x.reshape(x.shape[0] // self.m, -1)

    def extra_repr(self) -> str:
        return f"m={self.m}"


class MLPGAN(GAN):
    """A fully connected GAN (Goodfellow et al. 2014's kind of model).

    Generator: noise_dim -> hidden_dims... -> prod(data_shape), LeakyReLU(0.2) after each
    hidden layer, then Sigmoid (``output="sigmoid"``: images in [0, 1]) or nothing
    (``output="linear"``: unbounded data such as the 2-D ring), reshaped to (N, *data_shape).
    Discriminator: the mirror image, prod(data_shape) -> reversed(hidden_dims)... -> 1 with
    LeakyReLU(0.2), returning logits of shape (N,). LeakyReLU in G too (rather than ReLU)
    keeps a small MLP generator from losing units to dead ReLUs; ``activation="relu"`` puts
    ReLU in both networks instead (the Keras listing of chapter 09, section 10). PyTorch's
    default init.

    The classic MNIST model is the default: G 100-256-784 sigmoid, D 784-256-1. For the ring:
    ``MLPGAN(data_shape=(2,), noise_dim=..., hidden_dims=(128, 128), output="linear")``.
    With ``pack=m`` > 1 the discriminator sees packs of m samples (``Pack``) and returns N/m
    logits.
    """

    OUTPUTS = ("sigmoid", "linear")

    def __init__(
        self,
        data_shape=(1, 28, 28),
        noise_dim: int = 100,
        hidden_dims=(256,),
        output="sigmoid",
        pack: int = 1,
        activation: str = "leaky_relu",
    ):
        data_shape = _check_shape("data_shape", data_shape)
        _check_positive_int("noise_dim", noise_dim)
        hidden_dims = tuple(hidden_dims)
        if any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in hidden_dims):
            raise ValueError(f"hidden_dims must be positive ints; got {hidden_dims!r}")
        if output not in self.OUTPUTS:
            raise ValueError(f"output must be one of {self.OUTPUTS}; got {output!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {tuple(ACTIVATIONS)}; got {activation!r}")
        features = math.prod(data_shape)
        squash = (nn.Sigmoid(),) if output == "sigmoid" else ()
        generator = _mlp(
            (noise_dim, *hidden_dims, features),
            last=(*squash, nn.Unflatten(1, data_shape)),
            activation=activation,
        )
        # the final Flatten(0) turns the (N, 1) output into N logits
        packing = (Pack(pack),) if pack != 1 else (nn.Flatten(),)
        discriminator = _mlp(
            (pack * features, *reversed(hidden_dims), 1), first=packing, last=(nn.Flatten(0),),
            activation=activation,
        )  # fmt: skip
        super().__init__(generator, discriminator, noise_dim)
        self.data_shape, self.hidden_dims, self.output, self.pack = data_shape, hidden_dims, output, pack
        self.activation = activation


def _dcgan_init_(module: nn.Module) -> None:
    """Radford et al.'s initialisation: conv and linear weights N(0, 0.02), BatchNorm scales
    N(1, 0.02), every bias 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class DCGAN(GAN):
    """A deep convolutional GAN (Radford, Metz & Chintala 2015) sized for small images.

    With w = width and a base grid of (H/4, W/4) (7x7 for 28x28 MNIST, 2x2 for the 8x8 digits):

    Generator:  Linear(noise_dim -> 2w*(H/4)*(W/4)) + BatchNorm1d + ReLU, reshaped to
                (2w, H/4, W/4); ConvTranspose2d(2w -> w, 4, stride 2, padding 1) + BatchNorm2d
                + ReLU (H/4 -> H/2); ConvTranspose2d(w -> C, 4, 2, 1) + Sigmoid (H/2 -> H),
                so images lie in [0, 1].
    Discriminator: Conv2d(C -> w, 4, 2, 1) + LeakyReLU(0.2) (H -> H/2); Conv2d(w -> 2w, 4, 2, 1)
                + BatchNorm2d + LeakyReLU(0.2) (H/2 -> H/4); Flatten; Linear(2w*(H/4)*(W/4) -> 1),
                returning logits of shape (N,).

    Layers followed by BatchNorm have no bias (the normalisation subtracts it away), as in
    PyTorch's DCGAN example. Weights are initialised as Radford et al. (``_dcgan_init_``).
    Any H and W divisible by 4 work; 28x28 and 8x8 are the sizes this project trains.

    ``critic_batch_norm=False`` leaves the discriminator's BatchNorm out (its second Conv2d
    then has a bias): the WGAN-GP critic of Gulrajani et al. (2017), whose gradient penalty
    needs each example's score to depend on that example alone (see ``gradient_penalty``).
    """

    def __init__(
        self, image_shape=(1, 28, 28), noise_dim: int = 100, width: int = 64, critic_batch_norm: bool = True
    ):
        image_shape = _check_shape("image_shape", image_shape)
        _check_positive_int("noise_dim", noise_dim)
        _check_positive_int("width", width)
        if len(image_shape) != 3 or image_shape[1] % 4 or image_shape[2] % 4:
            raise ValueError(
                f"DCGAN needs image_shape (C, H, W) with H and W divisible by 4 (two stride-2 "
                f"layers), such as (1, 28, 28) or (1, 8, 8); got {image_shape}"
            )
        channels, height, width_px = image_shape
        base = (2 * width, height // 4, width_px // 4)
        generator = nn.Sequential(
            nn.Linear(noise_dim, math.prod(base), bias=False), nn.BatchNorm1d(math.prod(base)), nn.ReLU(),
            nn.Unflatten(1, base),
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.ConvTranspose2d(width, channels, 4, 2, 1), nn.Sigmoid(),
        )  # fmt: skip
        normalised = (nn.BatchNorm2d(2 * width),) if critic_batch_norm else ()
        discriminator = nn.Sequential(
            nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, 2, 1, bias=not critic_batch_norm), *normalised, nn.LeakyReLU(0.2),
            nn.Flatten(), nn.Linear(math.prod(base), 1), nn.Flatten(0),
        )  # fmt: skip
        super().__init__(generator, discriminator, noise_dim)
        self.image_shape, self.width, self.critic_batch_norm = image_shape, width, critic_batch_norm
        self.apply(_dcgan_init_)
