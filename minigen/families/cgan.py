"""The class-conditional GAN (Mirza & Osindero 2014), convolutional: ``minigen train cgan``.

The generator is told the class, G(z, y); the discriminator judges pairs, D(x, y), so it
punishes an image that is real-looking but of the wrong class, and G must learn p(x|y). G is
the DCGAN's generator fed [z, onehot(y)]. D is the DCGAN's discriminator with a projection
head (Miyato & Koyama 2018):

    D(x, y) = w^T h(x) + b + e_y^T h(x),   h(x) the discriminator's flattened features,

with e_y a learned embedding of class y: the class enters as an inner product with the
features rather than as extra input channels, which trains more steadily.
"""

from __future__ import annotations

from minigen import nn
from minigen.families.base import BoundModule, one_hot
from minigen.families.gan import DCGANFamily
from minigen.generative import gan
from minigen.ops.shape import cat
from minigen.tensor import Tensor


class _ConditionalGenerator(nn.Module):
    """G(z, y) = body([z, onehot(y)])."""

    def __init__(self, body: nn.Module, num_classes: int):
        super().__init__()
        self.body, self.num_classes = body, num_classes

    def forward(self, noise: Tensor, labels: Tensor) -> Tensor:
        return self.body(cat([noise, one_hot(labels, self.num_classes, noise)], dim=1))


class _ProjectionDiscriminator(nn.Module):
    """D(x, y) = head(h(x)) + <embed(onehot(y)), h(x)>, logits of shape (N,)."""

    def __init__(self, features: nn.Module, head: nn.Linear, num_classes: int):
        super().__init__()
        self.features, self.head, self.num_classes = features, head, num_classes
        self.embed = nn.Linear(num_classes, head.in_features, bias=False)
        nn.init.normal_(self.embed.weight, 0.0, 0.02)  # as the DCGAN's other weights

    def forward(self, x: Tensor, labels: Tensor) -> Tensor:
        h = self.features(x)
        projection = (self.embed(one_hot(labels, self.num_classes, h)) * h).sum(dim=1)
        return self.head(h).reshape(-1) + projection


class ConditionalDCGAN(gan.GAN):
    """The DCGAN (``gan.DCGAN``'s layers and initialisation) made class-conditional:
    ``generator(noise, labels)`` and ``discriminator(x, labels)``. ``given(labels)`` binds a
    batch's labels, returning a view with the unconditional GAN's ``generator(noise)``,
    ``discriminator(x)`` and ``sample_noise(n)``, which is what the GAN family's step uses.
    ``critic_batch_norm`` as for ``gan.DCGAN``."""

    def __init__(
        self, image_shape=(1, 28, 28), num_classes=10, noise_dim=100, width=64, critic_batch_norm=True
    ):
        body = gan.DCGAN(image_shape, noise_dim + num_classes, width, critic_batch_norm)
        *features, head, _ = body.discriminator  # the last two: Linear(features -> 1), Flatten(0)
        super().__init__(
            _ConditionalGenerator(body.generator, num_classes),
            _ProjectionDiscriminator(nn.Sequential(*features), head, num_classes),
            noise_dim,
        )
        self.image_shape, self.num_classes, self.width = body.image_shape, num_classes, width
        self.critic_batch_norm = critic_batch_norm

    def sample(self, labels: Tensor) -> Tensor:
        """G(z, y) for one fresh noise vector per label, as ``GAN.sample`` (eval mode, no graph)."""
        with self.eval_mode():
            return self.generator(self.sample_noise(labels.shape[0]), labels)

    def given(self, labels: Tensor) -> _GivenLabels:
        return _GivenLabels(self, labels)


class _GivenLabels:
    """A ConditionalDCGAN with the labels of one batch bound: the unconditional GAN protocol
    (``generator(noise)``, ``discriminator(x)``, ``sample_noise(n)``)."""

    def __init__(self, model: ConditionalDCGAN, labels: Tensor):
        self.generator = BoundModule(model.generator, labels)
        self.discriminator = BoundModule(model.discriminator, labels)
        self.sample_noise = model.sample_noise


class ConditionalGANFamily(DCGANFamily):
    """The GAN family with labels bound to every batch; the sample grid has one row per class.
    The fakes of a step are drawn for the real batch's labels, so both sides see each class
    equally often."""

    conditional = True

    def build(self, config, example_shape: tuple, num_classes: int):
        return ConditionalDCGAN(
            example_shape,
            num_classes,
            noise_dim=config.latent_dim,
            critic_batch_norm=self.critic_batch_norm(config),
        )


CGAN = ConditionalGANFamily(
    "cgan", "a class-conditional DCGAN with a projection discriminator: one row per class"
)
