"""GAN objectives and models: each loss against its formula written out with NumPy (huge
logits included), their gradients, the saturation of the minimax generator loss, the optimal
discriminator p_data / (p_data + p_g) on two 1-D Gaussians, the gradient penalty against its
closed form for a linear critic and by gradcheck through double backward, the R1 penalty
against its closed forms for linear and quadratic critics, by gradcheck to second order and in
a training step, and the MLP GAN and
DCGAN: shapes, ranges, initialisation, sampling modes and a few training steps."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigen
import minigen.nn as nn
from minigen.generative.gan import (
    DCGAN,
    LOSSES,
    MLPGAN,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
    r1_penalty,
)
from minigen.gradcheck import gradcheck, gradgradcheck
from minigen.testing import arrays, shapes


def f64(values, requires_grad=False, device="cpu"):
    return minigen.tensor(np.asarray(values, dtype=np.float64), requires_grad=requires_grad, device=device)


def softplus(a):
    """log(1 + e^a), overflow-free."""
    return np.logaddexp(0.0, a)


def sigmoid(a):
    """1 / (1 + e^-a) = exp(-softplus(-a)), accurate to the last digit far into both tails."""
    return np.exp(-softplus(-a))


def reference_discriminator_loss(real, fake, kind):
    if kind == "wasserstein":
        return fake.mean() - real.mean()
    if kind == "hinge":
        return np.maximum(1.0 - real, 0.0).mean() + np.maximum(1.0 + fake, 0.0).mean()
    # -E[log sigmoid(l_real)] - E[log(1 - sigmoid(l_fake))]; -log sigmoid(l) = softplus(-l)
    # and -log(1 - sigmoid(l)) = softplus(l).
    return softplus(-real).mean() + softplus(fake).mean()


def reference_generator_loss(fake, kind):
    if kind == "minimax":
        return -softplus(fake).mean()  # E[log(1 - sigmoid(l))]
    if kind == "non-saturating":
        return softplus(-fake).mean()  # -E[log sigmoid(l)]
    return -fake.mean()


def literal_discriminator_loss(real, fake):
    """The Goodfellow et al. objective as printed, for moderate logits."""
    d_real, d_fake = 1.0 / (1.0 + np.exp(-real)), 1.0 / (1.0 + np.exp(-fake))
    return -np.log(d_real).mean() - np.log(1.0 - d_fake).mean()


# Logits from moderate to huge: |l| up to 1e4 overflows exp() in any naive form.
LOGITS = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False)


def logit_arrays(min_size=1, max_size=6):
    return st.lists(LOGITS, min_size=min_size, max_size=max_size).map(lambda v: np.array(v, dtype=np.float64))


# --- losses ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", LOSSES)
@given(real=logit_arrays(), fake=logit_arrays())
def test_discriminator_loss_matches_formula_at_any_logit_size(kind, real, fake):
    loss = discriminator_loss(f64(real), f64(fake), kind)
    assert loss.shape == ()
    assert math.isfinite(loss.item())
    scale = 1.0 + max(np.abs(real).max(), np.abs(fake).max())  # wasserstein's difference may cancel
    expected = reference_discriminator_loss(real, fake, kind)
    np.testing.assert_allclose(loss.item(), expected, rtol=1e-12, atol=1e-13 * scale)


@pytest.mark.parametrize("kind", LOSSES)
@given(fake=logit_arrays())
def test_generator_loss_matches_formula_at_any_logit_size(kind, fake):
    loss = generator_loss(f64(fake), kind)
    assert loss.shape == ()
    assert math.isfinite(loss.item())
    np.testing.assert_allclose(loss.item(), reference_generator_loss(fake, kind), rtol=1e-12, atol=1e-12)


@given(real=arrays((5,)), fake=arrays((3,)))
def test_probabilistic_discriminator_loss_is_the_printed_minimax_objective(real, fake):
    for kind in ("minimax", "non-saturating"):
        loss = discriminator_loss(f64(real), f64(fake), kind)
        np.testing.assert_allclose(loss.item(), literal_discriminator_loss(real, fake), rtol=1e-12)


def test_losses_and_gradients_stay_finite_at_huge_logits():
    real = np.array([1e4, -1e4, 800.0, -800.0, 0.0])
    fake = np.array([-1e4, 1e4, -800.0, 800.0])
    r, f = f64(real, requires_grad=True), f64(fake, requires_grad=True)
    discriminator_loss(r, f, "non-saturating").backward()
    # d/dl_r softplus(-l_r) / N = -sigmoid(-l_r) / N; d/dl_f softplus(l_f) / N = sigmoid(l_f) / N
    np.testing.assert_allclose(r.grad.numpy(), -sigmoid(-real) / real.size, rtol=1e-12, atol=0)
    np.testing.assert_allclose(f.grad.numpy(), sigmoid(fake) / fake.size, rtol=1e-12, atol=0)
    for kind in ("minimax", "non-saturating"):
        f.grad = None
        generator_loss(f, kind).backward()
        assert np.all(np.isfinite(f.grad.numpy()))


# Keep hinge's logits off its kinks at +-1.
KINK_FREE = st.floats(-3.0, 3.0).filter(lambda v: abs(abs(v) - 1.0) > 0.05)


@pytest.mark.parametrize("kind", LOSSES)
@given(
    real=st.lists(KINK_FREE, min_size=1, max_size=4).map(np.array),
    fake=st.lists(KINK_FREE, min_size=1, max_size=4).map(np.array),
)
def test_loss_gradients_with_respect_to_logits_match_finite_differences(kind, real, fake):
    inputs = [f64(real, requires_grad=True), f64(fake, requires_grad=True)]
    assert gradcheck(lambda r, f: discriminator_loss(r, f, kind), inputs)
    assert gradcheck(lambda f: generator_loss(f, kind), inputs[1:])
    assert gradgradcheck(lambda r, f: discriminator_loss(r, f, kind), inputs)


def test_minimax_generator_loss_saturates_where_non_saturating_does_not():
    # One fake, ever more confidently rejected: sigmoid(l) -> 0.
    logits = np.array([0.0, -5.0, -10.0, -20.0, -40.0])
    grads = {}
    for kind in ("minimax", "non-saturating"):
        grads[kind] = []
        for value in logits:
            fake = f64([value], requires_grad=True)
            generator_loss(fake, kind).backward()
            grads[kind].append(fake.grad.item())
    minimax, non_saturating = np.array(grads["minimax"]), np.array(grads["non-saturating"])
    # d/dl [-softplus(l)] = -sigmoid(l); d/dl softplus(-l) = -(1 - sigmoid(l)) = -sigmoid(-l).
    np.testing.assert_allclose(minimax, -sigmoid(logits), rtol=1e-12, atol=0)
    np.testing.assert_allclose(non_saturating, -sigmoid(-logits), rtol=1e-12, atol=0)
    assert minimax[0] == -0.5 and non_saturating[0] == -0.5
    assert np.all(np.diff(np.abs(minimax)) < 0)
    assert abs(minimax[-1]) < 1e-17  # e^-40 = 4.2e-18: no signal left for the generator
    assert non_saturating[-1] == -1.0  # 1 - 4.2e-18 rounds to 1 in float64


def test_unknown_kind_is_an_error_naming_the_choices():
    logits = f64([0.5, -0.5])
    for call in (
        lambda: discriminator_loss(logits, logits, "lsgan"),
        lambda: generator_loss(logits, "lsgan"),
    ):
        with pytest.raises(ValueError, match="'lsgan'.*minimax.*non-saturating.*wasserstein.*hinge"):
            call()


def test_logits_must_be_floating_tensors():
    with pytest.raises(TypeError, match="fake_logits"):
        generator_loss([0.5, 1.0])
    with pytest.raises(TypeError, match="real_logits"):
        discriminator_loss(minigen.tensor([1, 0]), f64([0.5]))


# --- the optimal discriminator --------------------------------------------------------------------


def normal_pdf(x, mean, std):
    return np.exp(-0.5 * ((x - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi))


def test_trained_discriminator_approaches_p_data_over_p_data_plus_p_g():
    """For fixed G the discriminator loss is minimised by D*(x) = p_data / (p_data + p_g)
    (Goodfellow et al. 2014, Proposition 1). For p_data = N(0, 1) and p_g = N(1, 0.5^2) its
    logit log p_data - log p_g = 1.5 x^2 - 4 x + 2 + log(1/2) is quadratic, so the logistic
    model a x^2 + b x + c contains D* exactly and training it is a convex problem."""
    rng = np.random.default_rng(0)
    real, fake = f64(rng.normal(0.0, 1.0, 20_000)), f64(rng.normal(1.0, 0.5, 20_000))
    a, b, c = (minigen.zeros(1, dtype=minigen.float64, requires_grad=True) for _ in range(3))

    def D(x):
        return a * x * x + b * x + c

    optimizer = minigen.optim.Adam([a, b, c], lr=0.05)
    for _ in range(400):
        loss = discriminator_loss(D(real), D(fake))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    grid = np.linspace(-0.5, 2.0, 26)  # both densities have mass here
    optimum = normal_pdf(grid, 0.0, 1.0) / (normal_pdf(grid, 0.0, 1.0) + normal_pdf(grid, 1.0, 0.5))
    with minigen.no_grad():
        learned = minigen.sigmoid(D(f64(grid))).numpy()
    assert np.abs(optimum - 0.5).max() > 0.4  # the untrained D (0.5 everywhere) would fail
    np.testing.assert_allclose(learned, optimum, atol=0.03)


# --- gradient penalty -----------------------------------------------------------------------------


def linear_critic(w, b):
    """D(x) = <w, x> + b per example, for x of shape (N, *w.shape)."""

    def D(x):
        return (x.reshape(x.shape[0], -1) * w.reshape(1, -1)).sum(dim=1) + b

    return D


@given(data=st.data(), example_shape=shapes(min_dims=1, max_dims=3, max_side=3), n=st.integers(1, 4))
def test_gradient_penalty_of_a_linear_critic_is_norm_of_w_minus_one_squared(data, example_shape, n):
    w_values = data.draw(arrays(example_shape))
    real = f64(data.draw(arrays((n, *example_shape))), requires_grad=True)
    fake = f64(data.draw(arrays((n, *example_shape))), requires_grad=True)
    eps = data.draw(st.none() | arrays((n,) + (1,) * len(example_shape), "unit").map(f64))
    w, b = f64(w_values, requires_grad=True), f64(0.3, requires_grad=True)
    penalty = gradient_penalty(linear_critic(w, b), real, fake, eps)
    norm = np.sqrt((w_values**2).sum())
    np.testing.assert_allclose(penalty.item(), (norm - 1.0) ** 2, rtol=1e-12, atol=1e-14)
    penalty.backward()
    # d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||, reached only through double backward.
    if norm > 1e-6:
        np.testing.assert_allclose(
            w.grad.numpy(), 2.0 * (norm - 1.0) * w_values / norm, rtol=1e-10, atol=1e-12
        )
    assert b.grad is None  # the bias does not change the input gradient
    assert real.grad is None and fake.grad is None  # the interpolation points are constants


def test_gradient_penalty_interpolates_and_takes_the_norm_per_example():
    # D(x) = sum(x^2) / 2 has input gradient x, so the penalty is mean((||x_hat_i|| - 1)^2).
    rng = np.random.default_rng(1)
    real, fake = rng.normal(size=(4, 2, 3)), rng.normal(size=(4, 2, 3))
    eps = rng.uniform(size=(4, 1, 1))
    inputs = [f64(v, requires_grad=True) for v in (real, fake, eps)]
    penalty = gradient_penalty(lambda x: (x * x).sum() / 2.0, *inputs)
    x_hat = eps * real + (1 - eps) * fake
    expected = ((np.sqrt((x_hat**2).sum(axis=(1, 2))) - 1.0) ** 2).mean()
    np.testing.assert_allclose(penalty.item(), expected, rtol=1e-12)
    # real, fake and eps are constants: nothing flows back to them.
    penalty.backward()
    assert all(t.grad is None for t in inputs)


def test_gradient_penalty_draws_eps_uniformly_with_minigen_rand(device):
    real = minigen.randn(5, 3, device=device)
    fake = minigen.randn(5, 3, device=device)

    def D(x):
        return (x * x).sum() / 2.0

    minigen.manual_seed(7)
    eps = minigen.rand(5, 1, device=device)
    expected = gradient_penalty(D, real, fake, eps)
    minigen.manual_seed(7)
    drawn = gradient_penalty(D, real, fake)
    assert drawn.dtype == real.dtype and drawn.device == device
    assert drawn.item() == expected.item()


def test_gradient_penalty_gradient_matches_finite_differences_for_a_nonlinear_critic():
    rng = np.random.default_rng(2)
    real, fake = f64(rng.normal(size=(3, 2))), f64(rng.normal(size=(3, 2)))
    eps = f64(rng.uniform(size=(3, 1)))
    params = [f64(rng.normal(size=s), requires_grad=True) for s in [(4, 2), (4,), (4,)]]

    def penalty(w1, b1, w2):
        def D(x):
            return minigen.tanh(x @ w1.T + b1) @ w2

        return gradient_penalty(D, real, fake, eps)

    assert gradcheck(penalty, params)


def test_gradient_penalty_is_one_with_a_zero_not_nan_gradient_where_the_critic_is_flat():
    # A ReLU critic whose units are all off at x_hat: grad_x D = 0, ||0|| - 1 = -1.
    w = f64([[1.0, 1.0]], requires_grad=True)

    def D(x):
        return minigen.relu(x @ w.T).sum(dim=1)

    points = f64(-np.ones((3, 2)))
    penalty = gradient_penalty(D, points, points)
    assert penalty.item() == 1.0
    penalty.backward()
    assert np.array_equal(w.grad.numpy(), np.zeros((1, 2)))


def test_gradient_penalty_under_no_grad_returns_a_detached_value():
    w = f64([3.0, 4.0], requires_grad=True)
    with minigen.no_grad():
        penalty = gradient_penalty(linear_critic(w, 0.0), f64(np.ones((2, 2))), f64(np.zeros((2, 2))))
    assert penalty.item() == pytest.approx(16.0) and not penalty.requires_grad


def test_gradient_penalty_rejects_mismatched_shapes_and_eps():
    D = linear_critic(f64([1.0, 2.0]), 0.0)
    with pytest.raises(ValueError, match=r"real of shape \(3, 2\) and fake of shape \(2, 2\)"):
        gradient_penalty(D, f64(np.ones((3, 2))), f64(np.ones((2, 2))))
    with pytest.raises(ValueError, match=r"eps must have shape \(3, 1\); got shape \(3,\)"):
        gradient_penalty(D, f64(np.ones((3, 2))), f64(np.ones((3, 2))), f64(np.ones(3)))


# --- R1 penalty -----------------------------------------------------------------------------------


@given(data=st.data(), example_shape=shapes(min_dims=1, max_dims=3, max_side=3), n=st.integers(1, 4))
def test_r1_penalty_of_a_linear_critic_is_the_squared_norm_of_w(data, example_shape, n):
    w_values = data.draw(arrays(example_shape))
    real = f64(data.draw(arrays((n, *example_shape))), requires_grad=True)
    w, b = f64(w_values, requires_grad=True), f64(-0.7, requires_grad=True)
    penalty = r1_penalty(linear_critic(w, b), real)
    np.testing.assert_allclose(penalty.item(), (w_values**2).sum(), rtol=1e-12, atol=1e-14)
    penalty.backward()
    # d/dw ||w||^2 = 2 w, reached only through double backward; no sqrt, so no kink at w = 0.
    np.testing.assert_allclose(w.grad.numpy(), 2.0 * w_values, rtol=1e-12, atol=1e-14)
    assert b.grad is None  # the bias does not change the input gradient
    assert real.grad is None  # the data are constants


def test_r1_penalty_of_a_quadratic_critic_is_the_mean_squared_norm_of_a_x():
    # D(x) = x^T A x / 2 with A symmetric has input gradient A x, per example.
    rng = np.random.default_rng(3)
    m = rng.normal(size=(3, 3))
    a_values, x = m + m.T, rng.normal(size=(5, 3))
    A = f64(a_values, requires_grad=True)

    def D(points):
        return ((points @ A) * points).sum(dim=1) / 2.0

    penalty = r1_penalty(D, f64(x))
    expected = ((x @ a_values) ** 2).sum(axis=1).mean()
    np.testing.assert_allclose(penalty.item(), expected, rtol=1e-12)
    assert penalty.item() > 1.0  # not a vacuous match at 0
    penalty.backward()
    # For the parameter A as written, grad_x D = S x with S = (A + A^T) / 2, so with the Gram
    # matrix G = X^T X / N the penalty is tr(S G S), d/dS = 2 S G and d/dA = S G + G S (= A G + G A).
    gram = x.T @ x / len(x)
    np.testing.assert_allclose(A.grad.numpy(), a_values @ gram + gram @ a_values, rtol=1e-10)


def tanh_critic_r1(real):
    """The R1 penalty of the critic D(x) = tanh(x W1^T + b1) w2 as a function of its parameters."""

    def penalty(w1, b1, w2):
        def D(x):
            return minigen.tanh(x @ w1.T + b1) @ w2

        return r1_penalty(D, real)

    return penalty


def test_r1_penalty_gradients_match_finite_differences_to_second_order():
    rng = np.random.default_rng(4)
    real = f64(rng.normal(size=(3, 2)))
    params = [f64(rng.normal(size=s), requires_grad=True) for s in [(4, 2), (4,), (4,)]]
    penalty = tanh_critic_r1(real)
    assert penalty(*params).item() > 0.1
    assert gradcheck(penalty, params)
    assert gradgradcheck(penalty, params)


def test_r1_penalty_is_zero_with_a_zero_not_nan_gradient_where_the_critic_is_flat():
    w = f64([[1.0, 1.0]], requires_grad=True)

    def D(x):
        return minigen.relu(x @ w.T).sum(dim=1)

    penalty = r1_penalty(D, f64(-np.ones((3, 2))))
    assert penalty.item() == 0.0
    penalty.backward()
    assert np.array_equal(w.grad.numpy(), np.zeros((1, 2)))


def test_r1_penalty_under_no_grad_returns_a_detached_value():
    w = f64([3.0, 4.0], requires_grad=True)
    with minigen.no_grad():
        penalty = r1_penalty(linear_critic(w, 0.0), f64(np.ones((2, 2))))
    assert penalty.item() == pytest.approx(25.0) and not penalty.requires_grad


def test_r1_penalty_rejects_what_is_not_a_floating_batch():
    D = linear_critic(f64([1.0, 2.0]), 0.0)
    with pytest.raises(ValueError, match=r"r1_penalty: real must be a non-empty floating batch"):
        r1_penalty(D, f64(1.0))
    with pytest.raises(ValueError, match=r"got shape \(0, 2\)"):
        r1_penalty(D, f64(np.ones((0, 2))))
    with pytest.raises(ValueError, match="got list"):
        r1_penalty(D, [[1.0, 2.0]])


def test_gan_step_adds_half_r1_weight_times_the_penalty_to_the_discriminator_loss():
    from minigen.families.gan import gan_step

    lr, gamma = 0.1, 4.0
    real = f64(np.random.default_rng(5).normal(size=(6, 2)))

    def run(r1_weight):
        minigen.manual_seed(0)
        model = MLPGAN(data_shape=(2,), noise_dim=3, hidden_dims=(8, 8), output="linear").double()
        d_params = list(model.discriminator.parameters())
        penalty = r1_penalty(model.discriminator, real)
        # The R1 gradient at the start. With LeakyReLU, grad_x D depends on the weights only
        # (the biases set the slopes, a piecewise-constant choice): d/d(bias) R1 = 0.
        r1_grads = minigen.grad(penalty, d_params, allow_unused=True)
        r1_grads = [np.zeros(p.shape) if g is None else g.numpy() for p, g in zip(d_params, r1_grads)]
        d_opt = minigen.optim.SGD(d_params, lr=lr)
        g_opt = minigen.optim.SGD(model.generator.parameters(), lr=lr)
        losses = gan_step(model, g_opt, d_opt, real, r1_weight=r1_weight)
        return losses["d_loss"].item(), penalty.item(), r1_grads, snapshot(model.discriminator)

    plain, r1, r1_grads, d_plain = run(0.0)
    penalised, _, _, d_penalised = run(gamma)
    assert r1 > 1e-3
    np.testing.assert_allclose(penalised - plain, 0.5 * gamma * r1, rtol=1e-10)
    # One SGD step apart by exactly -lr (gamma / 2) dR1/dpsi.
    assert all(np.abs(g).max() > 1e-4 for g in r1_grads[::2])  # every weight matrix feels it
    for before, after, g in zip(d_plain, d_penalised, r1_grads):
        np.testing.assert_allclose(after - before, -lr * 0.5 * gamma * g, rtol=1e-8, atol=1e-14)


def test_r1_weight_is_a_gan_setting_that_reaches_the_step():
    from minigen import families
    from minigen.families.gan import gan_step
    from minigen.training import TrainConfig

    assert TrainConfig(model="dcgan").resolved().r1_weight == 0.0  # off unless asked for
    config = TrainConfig(model="gan", data="ring", r1_weight=3.0).resolved()
    assert config.r1_weight == 3.0 and "r1_weight" in families.get("cgan").options
    real = f64(np.random.default_rng(6).normal(size=(8, 2)))
    losses = []
    for step in (families.get("gan").step, None):
        minigen.manual_seed(0)
        model = MLPGAN(data_shape=(2,), noise_dim=3, hidden_dims=(8,), output="linear", pack=4).double()
        opts = {
            "generator_optimizer": minigen.optim.SGD(model.generator.parameters(), lr=0.1),
            "discriminator_optimizer": minigen.optim.SGD(model.discriminator.parameters(), lr=0.1),
        }
        penalty = r1_penalty(model.discriminator, real).item()
        if step is None:  # the same step by hand, without the penalty
            d_loss = gan_step(model, *opts.values(), real)["d_loss"].item() + 1.5 * penalty
        else:
            d_loss = step(model, opts, real, config, 1)["d_loss"].item()
        losses.append(d_loss)
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-10)


# --- models ---------------------------------------------------------------------------------------

MODELS = {
    "mlp-784": lambda: MLPGAN(),
    "mlp-ring": lambda: MLPGAN(data_shape=(2,), noise_dim=8, hidden_dims=(128, 128), output="linear"),
    "dcgan-28": lambda: DCGAN((1, 28, 28), noise_dim=16, width=8),
    "dcgan-8": lambda: DCGAN((1, 8, 8), noise_dim=16, width=8),
}
DATA_SHAPES = {"mlp-784": (1, 28, 28), "mlp-ring": (2,), "dcgan-28": (1, 28, 28), "dcgan-8": (1, 8, 8)}


@pytest.mark.parametrize("name", MODELS)
def test_models_map_noise_to_data_and_data_to_one_logit_each(name, device):
    model = MODELS[name]().to(device)
    z = model.sample_noise(5)
    assert z.shape == (5, model.noise_dim) and z.device == device and z.dtype == minigen.float32
    x = model.generator(z)
    assert x.shape == (5, *DATA_SHAPES[name]) and x.device == device
    values = x.detach().numpy()
    if name != "mlp-ring":
        assert values.min() >= 0.0 and values.max() <= 1.0  # sigmoid output: images in [0, 1]
    assert model.discriminator(x).shape == (5,)


def test_mlp_gan_default_is_the_classic_100_256_784_model():
    model = MLPGAN()
    linear_shapes = [(name, p.shape) for name, p in model.named_parameters() if name.endswith("weight")]
    assert linear_shapes == [
        ("generator.0.weight", (256, 100)),
        ("generator.2.weight", (784, 256)),
        ("discriminator.1.weight", (256, 784)),
        ("discriminator.3.weight", (1, 256)),
    ]
    assert isinstance(model.generator[1], nn.LeakyReLU) and model.generator[1].negative_slope == 0.2


def test_ring_gan_output_is_unbounded_and_its_discriminator_mirrors_the_generator():
    model = MLPGAN(data_shape=(2,), noise_dim=4, hidden_dims=(32, 64), output="linear")
    sizes = [p.shape for name, p in model.named_parameters() if name.endswith("weight")]
    assert sizes == [(32, 4), (64, 32), (2, 64), (64, 2), (32, 64), (1, 32)]
    assert not any(isinstance(m, nn.Sigmoid) for m in model.modules())


def test_dcgan_weights_follow_radford_et_al():
    model = DCGAN()  # the full-size 28x28 model, width 64
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            weight = module.weight.detach().numpy()
            if weight.size >= 1000:
                assert abs(weight.mean()) < 0.002 and weight.std() == pytest.approx(0.02, rel=0.1)
            if module.bias is not None:
                assert not module.bias.detach().numpy().any()
        elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            scale = module.weight.detach().numpy()
            assert abs(scale.mean() - 1.0) < 0.01 and scale.std() == pytest.approx(0.02, rel=0.25)
            assert not module.bias.detach().numpy().any()
    kinds = [type(m).__name__ for m in model.generator]
    assert kinds == [
        "Linear", "BatchNorm1d", "ReLU", "Unflatten", "ConvTranspose2d", "BatchNorm2d", "ReLU",
        "ConvTranspose2d", "Sigmoid",
    ]  # fmt: skip
    assert model.generator[0].weight.shape == (2 * 64 * 7 * 7, 100)
    assert model.discriminator[-2].weight.shape == (1, 2 * 64 * 7 * 7)


def test_a_wgan_gp_critic_scores_each_example_on_its_own():
    """Without batch norm (Gulrajani et al.'s critic) an example's score, in training mode, does
    not depend on the rest of its batch; with it, it does."""
    from minigen import families
    from minigen.training import TrainConfig

    minigen.manual_seed(0)
    x = minigen.tensor(np.random.default_rng(3).random((6, 1, 8, 8)))
    for batch_norm in (True, False):
        model = DCGAN(image_shape=(1, 8, 8), width=4, critic_batch_norm=batch_norm).double()
        kinds = [type(layer).__name__ for layer in model.discriminator]
        assert ("BatchNorm2d" in kinds) == batch_norm and (model.discriminator[2].bias is None) == batch_norm
        with minigen.no_grad():
            alone = model.discriminator(x[:2]).numpy()
            together = model.discriminator(x).numpy()[:2]
        assert np.allclose(alone, together, rtol=1e-12, atol=1e-12) != batch_norm
    builds = {  # the image GAN families drop the critic's batch norm exactly when the penalty is on
        (name, loss, gp): families.get(name)
        .build(TrainConfig(model=name, loss=loss, gp_weight=gp).resolved(), (1, 8, 8), 10)
        .critic_batch_norm
        for name in ("dcgan", "cgan")
        for loss, gp in (("non-saturating", None), ("wasserstein", None), ("wasserstein", 0.0))
    }
    assert builds == {(n, l, g): not (l == "wasserstein" and g is None) for n, l, g in builds}


def test_dcgan_rejects_sizes_its_two_stride_2_layers_cannot_make():
    for shape in [(1, 30, 30), (28, 28), (1, 28, 26)]:
        with pytest.raises(ValueError, match="divisible by 4"):
            DCGAN(shape)
    with pytest.raises(ValueError, match="output must be one of"):
        MLPGAN(output="tanh")
    with pytest.raises(ValueError, match="noise_dim"):
        MLPGAN(noise_dim=0)


@pytest.mark.parametrize("training", [True, False])
def test_sample_uses_eval_mode_without_a_graph_and_restores_the_mode(training):
    model = DCGAN((1, 8, 8), noise_dim=8, width=4)
    model.train(training)
    batch_norm = model.generator[1]
    tracked = int(batch_norm.num_batches_tracked.item())
    minigen.manual_seed(3)
    images = model.sample(4)
    assert images.shape == (4, 1, 8, 8) and not images.requires_grad and images.creator is None
    assert all(m.training == training for m in model.modules())
    assert int(batch_norm.num_batches_tracked.item()) == tracked  # no batch statistics were used
    minigen.manual_seed(3)
    model.generator.eval()
    with minigen.no_grad():
        expected = model.generator(model.sample_noise(4))
    assert np.array_equal(images.numpy(), expected.numpy())


def snapshot(module):
    return [p.detach().numpy().copy() for p in module.parameters()]


def changed(before, module):
    return [not np.array_equal(a, p.detach().numpy()) for a, p in zip(before, module.parameters())]


def train_steps(model, real, kind, steps=3, penalty_weight=0.0):
    d_opt = minigen.optim.Adam(model.discriminator.parameters(), lr=1e-3, betas=(0.5, 0.999))
    g_opt = minigen.optim.Adam(model.generator.parameters(), lr=1e-3, betas=(0.5, 0.999))
    for _ in range(steps):
        fake = model.generator(model.sample_noise(len(real))).detach()
        d_loss = discriminator_loss(model.discriminator(real), model.discriminator(fake), kind)
        if penalty_weight:
            d_loss = d_loss + penalty_weight * gradient_penalty(model.discriminator, real, fake)
        d_opt.zero_grad()
        d_loss.backward()
        d_opt.step()
        g_loss = generator_loss(model.discriminator(model.generator(model.sample_noise(len(real)))), kind)
        g_opt.zero_grad()
        g_loss.backward()
        g_opt.step()
    return d_loss.item(), g_loss.item()


@pytest.mark.parametrize(
    ("name", "kind", "penalty_weight"),
    [
        ("mlp-ring", "non-saturating", 0.0),
        ("mlp-ring", "minimax", 0.0),
        ("mlp-ring", "wasserstein", 10.0),
        ("mlp-ring", "hinge", 0.0),
        ("dcgan-8", "non-saturating", 0.0),
    ],
)
def test_alternating_adam_steps_train_both_players(name, kind, penalty_weight):
    model = MODELS[name]()
    real = minigen.rand(8, *DATA_SHAPES[name])
    g_before, d_before = snapshot(model.generator), snapshot(model.discriminator)
    d_loss, g_loss = train_steps(model, real, kind, penalty_weight=penalty_weight)
    assert math.isfinite(d_loss) and math.isfinite(g_loss)
    assert all(changed(g_before, model.generator))
    moved = changed(d_before, model.discriminator)
    if kind in ("wasserstein", "hinge"):
        # The output bias cancels in mean(D(fake)) - mean(D(real)) (and in the hinge loss while
        # every margin is active, as it is for logits near 0), and leaves grad_x D alone.
        assert moved[-1] is False
        moved = moved[:-1]
    assert all(moved)


def test_discriminator_step_leaves_the_generator_alone():
    model = MODELS["mlp-ring"]()
    real = minigen.randn(8, 2)
    g_before = snapshot(model.generator)
    d_opt = minigen.optim.Adam(model.discriminator.parameters(), lr=1e-2)
    fake = model.generator(model.sample_noise(8)).detach()
    discriminator_loss(model.discriminator(real), model.discriminator(fake)).backward()
    d_opt.step()
    assert not any(changed(g_before, model.generator))
    assert all(p.grad is None for p in model.generator.parameters())


def test_sample_noise_follows_the_model_dtype():
    model = MLPGAN(data_shape=(2,), noise_dim=3, hidden_dims=(4,), output="linear").double()
    z = model.sample_noise(2)
    assert z.dtype == minigen.float64 and z.shape == (2, 3)
    assert model.sample(2).dtype == minigen.float64
    with pytest.raises(ValueError, match="number of samples"):
        model.sample_noise(0)


def test_packed_discriminator_judges_m_samples_at_once():
    model = MLPGAN(data_shape=(2,), noise_dim=3, hidden_dims=(5,), output="linear", pack=4)
    first = model.discriminator[1]
    assert first.in_features == 8  # 4 samples of 2 coordinates, side by side
    x = minigen.randn(8, 2)
    logits = model.discriminator(x)
    assert logits.shape == (2,)
    # Pack k holds samples 4k..4k+3 in order: the first layer sees their concatenation.
    rows = x.numpy().reshape(2, 8)
    hidden = np.where(rows @ first.weight.detach().numpy().T + first.bias.detach().numpy() > 0, 1.0, 0.2)
    hidden = hidden * (rows @ first.weight.detach().numpy().T + first.bias.detach().numpy())
    last = model.discriminator[3]
    expected = hidden @ last.weight.detach().numpy().T + last.bias.detach().numpy()
    np.testing.assert_allclose(logits.detach().numpy(), expected[:, 0], rtol=1e-5, atol=1e-6)
    loss = discriminator_loss(model.discriminator(x), model.discriminator(model.sample(8)))
    assert loss.shape == ()
    with pytest.raises(ValueError, match="a batch of 6 cannot be split into packs of 4"):
        model.discriminator(minigen.randn(6, 2))
    assert repr(model.discriminator[0]) == "Pack(m=4)"
