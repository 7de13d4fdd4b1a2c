"""The worked solutions of the exercises of chapters 01-04: every number or function that a
solution states is computed here and asserted, so a solution cannot drift from what the code
gives. One test per exercise whose answer is a number or a function, named for the exercise.
"""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import optimize

import minigen
import minigen.data
import minigen.functional as F
from minigen import Function, Tensor, autograd, metrics, optim
from minigen.autograd import clear_grad
from minigen.data import RING_MODES, DataLoader
from minigen.generative import vae
from minigen.gradcheck import GradcheckError, gradcheck, gradgradcheck
from minigen.ops.elementwise import PowScalar, Sqrt
from minigen.ops.shape import _sum_to_axes
from minigen.testing import arrays, distinct_arrays, reduction_dims, shapes

LOG_2PI = math.log(2 * math.pi)
EPS64 = float(np.finfo(np.float64).eps)


def f64(values, requires_grad=True):
    return minigen.tensor(np.asarray(values, dtype=np.float64), requires_grad=requires_grad)


def values(t):
    return t.detach().numpy()


def recorded_functions(outputs):
    """The Function nodes of the graph behind ``outputs`` (a tensor or a tuple of them)."""
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    nodes, stack = {}, [y.creator for y in outputs if y.creator is not None]
    while stack:
        node = stack.pop()
        if id(node) not in nodes:
            nodes[id(node)] = node
            stack.extend(x.creator for x in node.inputs if x.creator is not None)
    return list(nodes.values())


# ------------------------------------------------------------------ chapter 01


def test_ch01_ex1_ml_variance_is_biased():
    # 100,000 data sets of n = 5 draws of N(1.5, 0.7^2): the average ML variance is (n-1)/n sigma^2.
    n, sigma2 = 5, 0.49
    rng = np.random.default_rng(0)
    samples = minigen.tensor(rng.normal(1.5, math.sqrt(sigma2), size=(100_000, n)))
    ml = minigen.var(samples, dim=1, correction=0).numpy()
    standard_error = ml.std() / math.sqrt(len(ml))
    assert abs(ml.mean() - (n - 1) / n * sigma2) < 4 * standard_error
    assert abs(ml.mean() - sigma2) > 20 * standard_error  # the bias, 0.098, is far outside the noise
    unbiased = minigen.var(samples, dim=1).numpy()
    assert abs(unbiased.mean() - sigma2) < 4 * unbiased.std() / math.sqrt(len(ml))


def gaussian_ascent(x, eta, mu0, s0, steps):
    """Gradient ascent on the average Gaussian log-likelihood of notebook 01 section 1; returns
    the (mu, s) after every step."""
    data = minigen.tensor(x)
    mu = minigen.tensor([mu0], dtype=minigen.float64, requires_grad=True)
    s = minigen.tensor([s0], dtype=minigen.float64, requires_grad=True)
    path = []
    for _ in range(steps):
        ll = (-0.5 * LOG_2PI - s - 0.5 * ((data - mu) * (-s).exp()) ** 2).mean()
        g_mu, g_s = minigen.grad(ll, [mu, s])
        mu.data += eta * g_mu.data
        s.data += eta * g_s.data
        path.append((mu.item(), s.item()))
    return np.array(path)


def test_ch01_ex2_learning_rates_predicted_by_curvature():
    x = np.random.default_rng(0).normal(1.5, 0.7, size=1000)
    mu_hat, log_sigma_hat, var_hat = x.mean(), math.log(x.std()), x.var()
    # eta = 0.9: the mu error is multiplied by 1 - 0.9 / sigma_hat^2 = -0.925 per step, s's by -0.8.
    path = gaussian_ascent(x, 0.9, 0.0, 0.0, 300)
    mu_error = path[:, 0] - mu_hat
    factor = 1 - 0.9 / var_hat
    assert abs(factor + 0.9252) < 1e-4
    np.testing.assert_allclose(mu_error[101:111] / mu_error[100:110], factor, rtol=1e-6)
    assert 5e-9 < abs(mu_error[199]) < 1e-8  # the notebook's 1e-9 assert would fail after 200 steps
    first = int(np.argmax(np.abs(mu_error) < 1e-9))
    assert 220 < first < 240 and np.all(np.abs(mu_error[first:]) < 1e-9)
    # eta = 1 from (0, 0): the first mu step is a Newton step (sigma = 1) and lands on the mean;
    # s's factor is exactly -1, and the cubic term gives an error of about (16 t / 3)^(-1/2).
    path = gaussian_ascent(x, 1.0, 0.0, 0.0, 1000)
    assert np.all(np.abs(path[:, 0] - mu_hat) < 1e-15)
    s_error = abs(path[-1, 1] - log_sigma_hat)
    assert abs(s_error / (16 * 1000 / 3) ** -0.5 - 1) < 0.05
    # eta = 1 from anywhere else: mu's factor 1 - 1/sigma^2 is -1.14 at the peak, and the run
    # settles on a two-cycle with sigma^2 = 1/2 and mu = mean +- sqrt(1/2 - sigma_hat^2).
    path = gaussian_ascent(x, 1.0, 0.0, 0.1, 300)
    mu_t, s_t = path[-1]
    assert abs(math.exp(2 * s_t) - 0.5) < 1e-9
    assert abs(abs(mu_t - mu_hat) - math.sqrt(0.5 - var_hat)) < 1e-9
    assert abs((path[-2, 0] - mu_hat) + (mu_t - mu_hat)) < 1e-9  # it flips sign every step


MODES, WIDTH = np.array([-2.0, 2.0]), 0.5
GRID = np.linspace(-12, 12, 24_001)


def log_two_modes(x):
    """log p for p = N(-2, 0.5^2)/2 + N(2, 0.5^2)/2 (chapter 01 section 2.3), in NumPy."""
    a = -0.5 * ((x[..., None] - MODES) / WIDTH) ** 2 - math.log(WIDTH) - 0.5 * LOG_2PI + math.log(0.5)
    return np.logaddexp(a[..., 0], a[..., 1])


def log_gaussian(x, m, s):
    return -0.5 * ((x - m) / s) ** 2 - math.log(s) - 0.5 * LOG_2PI


def quadrature(values):
    return float(np.sum(values) * (GRID[1] - GRID[0]))


def test_ch01_ex3_forward_kl_is_a_difference_of_entropies():
    log_p = log_two_modes(GRID)
    entropy_p = -quadrature(np.exp(log_p) * log_p)
    entropy_q = 0.5 * math.log(2 * math.pi * math.e * 4.25)
    assert abs(entropy_p - 1.418845) < 1e-6
    assert abs(entropy_q - 2.142398) < 1e-6
    # Just below the entropy of one component plus log 2 (the limit of separated modes).
    assert 0 < 0.5 * math.log(2 * math.pi * math.e * 0.25) + math.log(2) - entropy_p < 1e-4
    kl = quadrature(np.exp(log_p) * (log_p - log_gaussian(GRID, 0.0, math.sqrt(4.25))))
    assert abs(kl - (entropy_q - entropy_p)) < 1e-10 and abs(kl - 0.723553) < 1e-6
    # The notebook's fit from samples (m = -0.0006, s^2 = 4.2550) gives the same to 1e-6.
    kl_sampled = quadrature(np.exp(log_p) * (log_p - log_gaussian(GRID, -0.0006, math.sqrt(4.2550))))
    assert abs(kl_sampled - kl) < 1e-6
    # A Monte Carlo estimate of H(p) from 10^6 draws agrees within 4 standard errors.
    rng = np.random.default_rng(1)
    draws = rng.choice(MODES, size=1_000_000) + WIDTH * rng.standard_normal(1_000_000)
    log_p_draws = log_two_modes(draws)
    assert abs(-log_p_draws.mean() - entropy_p) < 4 * log_p_draws.std() / 1000


def reverse_kl(m, s):
    """KL(N(m, s^2) || p) by quadrature on GRID."""
    log_q = log_gaussian(GRID, m, s)
    return quadrature(np.exp(log_q) * (log_q - log_two_modes(GRID)))


def reverse_kl_fit(m0, seed, antithetic=False, steps=2000):
    """Notebook 01 section 3's stochastic reverse-KL fit from (m0, s = 1); returns (m, s, the
    first gradient in m)."""
    minigen.manual_seed(seed)
    centres = minigen.tensor(MODES)
    m = minigen.tensor([m0], dtype=minigen.float64, requires_grad=True)
    log_s = minigen.tensor([0.0], dtype=minigen.float64, requires_grad=True)
    optimizer = optim.Adam([m, log_s], lr=0.02)
    for step in range(steps):
        if step == steps * 3 // 4:
            optimizer.param_groups[0]["lr"] = 0.002
        eps = minigen.randn(128 if antithetic else 256, dtype=minigen.float64)
        if antithetic:
            eps = minigen.cat([eps, -eps])
        x = (m + log_s.exp() * eps).reshape(-1, 1)
        log_p = (-0.5 * ((x - centres) / WIDTH) ** 2 + (math.log(0.5 / WIDTH) - 0.5 * LOG_2PI)).logsumexp(
            dim=1
        )
        kl = (-(0.5 * (LOG_2PI + 1) + log_s) - log_p.mean()).sum()
        optimizer.zero_grad()
        kl.backward()
        if step == 0:
            first_gradient = m.grad.item()
        optimizer.step()
    return m.item(), math.exp(log_s.item()), first_gradient


def test_ch01_ex4_reverse_kl_from_zero_stays_between_the_modes():
    # By symmetry KL(m) = KL(-m): the gradient in m vanishes at m = 0 for every s.
    best = optimize.minimize_scalar(lambda t: reverse_kl(0.0, math.exp(t)), bounds=(-3, 3), method="bounded")
    s_best = math.exp(best.x)
    assert abs(s_best - 1.7364) < 1e-4 and abs(best.fun - 1.8712) < 1e-4

    def curvature(s, d=1e-3):
        return (reverse_kl(d, s) - 2 * reverse_kl(0.0, s) + reverse_kl(-d, s)) / d**2

    assert abs(curvature(1.0) + 2.34) < 0.01 and curvature(1.5) < 0 < curvature(1.6)
    assert abs(curvature(s_best) - 0.332) < 0.002  # a local minimum, not a saddle
    # Without sampling noise (antithetic draws) the gradient in m is exactly 0 and m never moves.
    m, s, g = reverse_kl_fit(0.0, 0, antithetic=True)
    assert g == 0.0 and m == 0.0 and abs(s - s_best) < 0.03
    # With noise the first gradient is not 0, yet every run stays in the middle.
    for seed in range(3):
        m, s, g = reverse_kl_fit(0.0, seed)
        assert g != 0.0 and abs(m) < 0.08 and abs(s - s_best) < 0.03
    m, s, _ = reverse_kl_fit(0.5, 0)  # the notebook's start: the mode at +2
    assert abs(m - 2.0043) < 1e-4 and abs(s - 0.4996) < 1e-4


def fit_ring_mixture(points, initial_means, test_points, steps=300):
    """Notebook 01 section 4's mixture fit from the given means; returns (modes with a fitted
    mean within 0.1, average test log-likelihood, fitted sigmas)."""
    means = minigen.tensor(initial_means.copy(), requires_grad=True)
    log_scales = minigen.zeros(8, dtype=minigen.float64, requires_grad=True)
    logits = minigen.zeros(8, dtype=minigen.float64, requires_grad=True)

    def log_likelihood(x):
        diff = x.reshape(-1, 1, 2) - means
        log_normal = -0.5 * (diff * diff).sum(dim=-1) * (-2 * log_scales).exp() - 2 * log_scales - LOG_2PI
        return (log_normal + logits.log_softmax(dim=0)).logsumexp(dim=1)

    optimizer = optim.Adam([means, log_scales, logits], lr=0.05)
    data = minigen.tensor(points)
    for _ in range(steps):
        loss = -log_likelihood(data).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with minigen.no_grad():
        test_ll = log_likelihood(minigen.tensor(test_points)).mean().item()
    distance = np.sqrt(((means.detach().numpy()[:, None] - RING_MODES[None]) ** 2).sum(-1))
    covered = {int(j) for j, d in zip(distance.argmin(axis=1), distance.min(axis=1)) if d < 0.1}
    return len(covered), test_ll, np.exp(log_scales.detach().numpy())


def test_ch01_ex5_random_initialisation_misses_modes():
    points = minigen.data.load("ring", "train").inputs.astype(np.float64)
    test_points = minigen.data.load("ring", "test").inputs.astype(np.float64)
    results = {}
    for seed in (0, 3):
        chosen = np.random.default_rng(seed).choice(len(points), 8, replace=False)
        results[seed] = fit_ring_mixture(points, points[chosen], test_points)
    covered, test_ll, sigmas = results[0]  # starts on 6 modes, ends on 6, one wide component
    assert covered == 6 and abs(test_ll - 1.4077) < 1e-3 and abs(sigmas.max() - 0.541) < 2e-3
    covered, test_ll, sigmas = results[3]  # starts on 6 modes, ends on all 8
    assert covered == 8 and abs(test_ll - 2.8699) < 1e-3 and sigmas.max() < 0.021


def test_ch01_ex6_the_posterior_is_the_zero_variance_proposal():
    # z ~ N(0, 1), x | z ~ N(z, 0.25): p(x) = N(x; 0, 1.25), p(z | x) = N(0.8 x, 0.2).
    x_value, n = 1.3, 10_000
    exact = math.exp(log_gaussian(x_value, 0.0, math.sqrt(1.25)))
    rng = np.random.default_rng(0)
    x = minigen.full((n, 1), x_value, dtype=minigen.float64)
    for proposal_mean, proposal_var in ((0.0, 1.0), (0.8 * x_value, 0.2)):
        z = minigen.tensor(rng.normal(proposal_mean, math.sqrt(proposal_var), size=(n, 1)))
        log_weight = (
            vae.gaussian_log_likelihood(x, z, math.log(0.25))
            + vae.gaussian_log_likelihood(z, minigen.zeros_like(z), 0.0)
            - vae.gaussian_log_likelihood(z, minigen.full_like(z, proposal_mean), math.log(proposal_var))
        )
        weights = log_weight.exp().numpy()
        if proposal_var == 1.0:  # the prior: unbiased, but the weights spread widely
            assert abs(weights.mean() - exact) < 4 * weights.std() / math.sqrt(n)
            # E[w^2] = N(x; 0, 1.125) / sqrt(pi) (the square of N(x; z, 0.25) is a Gaussian too)
            second_moment = math.exp(log_gaussian(x_value, 0.0, math.sqrt(1.125))) / math.sqrt(math.pi)
            spread = math.sqrt(second_moment / exact**2 - 1)
            assert abs(spread - 1.428) < 1e-3 and abs(weights.std() / weights.mean() - spread) < 0.1
        else:  # the posterior: every weight equals p(x)
            assert np.abs(weights / exact - 1).max() < 1e-13


def test_ch01_ex7_a_two_dimensional_latent_space():
    train, test = minigen.data.load("digits", "train"), minigen.data.load("digits", "test")
    minigen.manual_seed(0)
    model = vae.MLPVAE(image_shape=(1, 8, 8), latent_dim=2)
    optimizer = optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(train, batch_size=128, shuffle=True, seed=0)  # one loader: a new order each epoch
    for _ in range(60):
        for x, _ in loader:
            out, mu, logvar = model(x)
            loss = -vae.elbo(x, out, mu, logvar).elbo.mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    minigen.manual_seed(1)
    assert abs(metrics.negative_elbo(model, test.inputs) - 24.86) < 0.01
    with minigen.no_grad():
        terms = vae.elbo(minigen.tensor(test.inputs), *model(minigen.tensor(test.inputs)))
    assert abs(terms.kl.mean().item() - 2.05) < 0.01  # nats per image through the 2-D bottleneck
    grid = np.stack(np.meshgrid(np.linspace(-2, 2, 15), np.linspace(2, -2, 15)), axis=-1).reshape(-1, 2)
    with minigen.no_grad():
        images = model.decode(minigen.tensor(grid, dtype=minigen.float32)).sigmoid().numpy()
    assert images.shape == (225, 1, 8, 8) and images.min() > 0 and images.max() < 1


# ------------------------------------------------------------------ chapter 02


def test_ch02_ex1_strides_of_views_and_a_copy():
    a = np.zeros((8, 6, 4), dtype=np.float32)
    assert a.strides == (96, 16, 4)
    sliced, permuted = a[::2, :, 1], a.transpose(1, 2, 0)
    merged = permuted.reshape(6, 32)
    assert sliced.shape == (4, 6) and sliced.strides == (192, 16)
    assert sliced.__array_interface__["data"][0] - a.__array_interface__["data"][0] == 4  # offset
    assert permuted.strides == (16, 4, 96)
    assert merged.strides == (128, 4)
    assert np.shares_memory(sliced, a) and np.shares_memory(permuted, a)
    assert not np.shares_memory(merged, a)  # merging axes of strides 4 and 96 (4 != 8 * 96) copies
    t = minigen.tensor(a)
    assert not np.shares_memory(t.permute(1, 2, 0).reshape(6, 32).data, t.data)


def kahan_sum(values):
    """Compensated summation: carry the rounding error of each addition into the next one."""
    total = compensation = values.dtype.type(0)
    for x in values:
        y = x - compensation
        t = total + y
        compensation = (t - total) - y  # what the addition t = total + y lost
        total = t
    return total


def test_ch02_ex2_kahan_summation():
    values = np.full(1_000_000, 0.1, dtype=np.float32)
    kahan, sequential, pairwise = kahan_sum(values), np.cumsum(values)[-1], values.sum()
    assert kahan.dtype == np.float32 and float(kahan) == 100000.0
    assert float(sequential) == 100958.34375 and float(pairwise) == 100000.0078125
    exact = 1_000_000 * float(np.float32(0.1))  # the exact sum of the float32 inputs, 100000.0015
    assert abs(exact - 100000.00149011612) < 1e-9
    # Kahan returns the float32 nearest the exact sum: the correctly rounded answer.
    assert float(kahan) == float(np.float32(exact)) and abs(float(kahan) - exact) / exact < 1.5e-8


def test_ch02_ex3_forward_difference_best_step():
    for dtype, kmax, best_h, best_error in (
        (np.float64, 50, 2.0**-26, 3.7e-8),
        (np.float32, 24, 2.0**-11, 2.0e-5),
    ):
        eps = float(np.finfo(dtype).eps)
        hs = 2.0 ** -np.arange(1, kmax)
        x, h = minigen.tensor(np.ones_like(hs), dtype=dtype), minigen.tensor(hs, dtype=dtype)
        errors = np.abs((((x + h).exp() - x.exp()) / h).numpy().astype(np.float64) - math.e)
        # |D+ - f'| <= h M2 / 2 + 2 c eps M0 / h with c = 2 and M0 = M2 = e^(1+h).
        assert np.all(errors <= hs / 2 * np.exp(1 + hs) + 4 * eps * np.exp(1 + hs) / hs)
        h_star, e_star = 2 * math.sqrt(2 * eps), 2 * math.e * math.sqrt(2 * eps)
        assert hs[errors.argmin()] == best_h and h_star / 4 < best_h < 4 * h_star
        assert abs(errors.min() / best_error - 1) < 0.05 and errors.min() < e_star
    assert (
        abs(2 * math.sqrt(2 * EPS64) - 4.2e-8) < 1e-9
        and abs(2 * math.e * math.sqrt(2 * EPS64) - 1.15e-7) < 1e-9
    )


def test_ch02_ex4_the_two_kinds_of_summed_axes():
    assert _sum_to_axes((3, 4), (1, 4)) == ((), (0,))  # only a stretched size-1 axis
    assert _sum_to_axes((2, 1, 4), (1, 4)) == ((0,), ())  # a leading axis; the size-1 axis stays
    g = minigen.ones(2, 1, 4)
    assert minigen.sum_to(g, (1, 4)).numpy().tolist() == [[2.0] * 4]
    a = f64(np.ones((1, 4)))
    (ga,) = minigen.grad((a * minigen.ones(2, 1, 4, dtype=minigen.float64)).sum(), a)
    assert ga.shape == (1, 4) and ga.numpy().tolist() == [[2.0] * 4]


def test_ch02_ex5_matmul_backward_is_two_products():
    rng = np.random.default_rng(0)
    a = Tensor(rng.standard_normal((6, 5)), requires_grad=True)
    wide = rng.standard_normal((5, 8))
    for b_array in (wide[:, :4].copy(), np.ascontiguousarray(wide[:, :4].T).T, wide[:, ::2]):
        b = Tensor(b_array, requires_grad=True)
        gy = f64(rng.standard_normal((6, 4)))
        ga, gb = minigen.grad(a @ b, [a, b], grad_outputs=gy, create_graph=True)
        products = [n for n in recorded_functions((ga, gb)) if type(n).__name__ == "MatMul"]
        assert len(products) == 2  # gy @ b^T and a^T @ gy
        np.testing.assert_allclose(values(ga), values(gy) @ b_array.T, rtol=1e-14)
        np.testing.assert_allclose(values(gb), values(a).T @ values(gy), rtol=1e-14)
    # A b shared by a batch: its gradient is one product per batch element, then a sum over them.
    batch, b = f64(rng.standard_normal((8, 3, 5))), f64(rng.standard_normal((5, 4)))
    _, gb = minigen.grad(
        batch @ b, [batch, b], grad_outputs=f64(rng.standard_normal((8, 3, 4))), create_graph=True
    )
    sums = [n for n in recorded_functions(gb) if type(n).__name__ == "SumTo"]
    assert [n.inputs[0].shape for n in sums] == [(8, 5, 4)] and gb.shape == (5, 4)


def test_ch02_ex6_zeroing_a_broadcast_gradient():
    upstream = np.arange(4.0)
    view = np.broadcast_to(upstream, (3, 4))
    assert view.strides == (0, 8) and not view.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        view.fill(0)
    # Were it writeable, filling it would zero the array it views: someone else's gradient.
    shared = upstream.copy()
    writeable = np.lib.stride_tricks.as_strided(shared, shape=(3, 4), strides=(0, 8))
    writeable.fill(0)
    assert shared.tolist() == [0.0] * 4
    # clear_grad replaces such a gradient instead of writing into the array it shares.
    t = f64(np.ones((3, 4)))
    t.grad = Tensor(view)
    clear_grad(t, set_to_none=False)
    assert upstream.tolist() == [0.0, 1.0, 2.0, 3.0]
    assert t.grad.numpy().tolist() == [[0.0] * 4] * 3 and t.grad.data.flags.writeable


# ------------------------------------------------------------------ chapter 03


def test_ch03_ex1_sqrt_as_a_power():
    x = f64([0.25, 1.0, 2.0, 9.0])
    y_sqrt, y_pow = Sqrt()(x), PowScalar(0.5)(x)
    np.testing.assert_array_equal(values(y_sqrt), values(y_pow))
    (g_sqrt,) = minigen.grad(y_sqrt.sum(), x, create_graph=True)
    (g_pow,) = minigen.grad(y_pow.sum(), x, create_graph=True)
    np.testing.assert_allclose(values(g_sqrt), values(g_pow), rtol=1e-15)
    np.testing.assert_allclose(values(g_sqrt), [1.0, 0.5, 0.5 / math.sqrt(2), 1 / 6], rtol=1e-15)
    # The backward graphs: Mul and Div for Sqrt; PowScalar(-0.5) and two Muls for the power.
    backward_sqrt = sorted(type(n).__name__ for n in recorded_functions(g_sqrt) if n is not y_sqrt.creator)
    backward_pow = sorted(type(n).__name__ for n in recorded_functions(g_pow) if n is not y_pow.creator)
    assert backward_sqrt == ["Div", "Mul"] and backward_pow == ["Mul", "Mul", "PowScalar"]
    for make in (Sqrt, lambda: PowScalar(0.5)):
        assert gradgradcheck(lambda t, make=make: make()(t), [f64([0.5, 1.5])])
    with np.errstate(divide="ignore", invalid="ignore"):
        for make in (Sqrt, lambda: PowScalar(0.5)):
            edge = f64([0.0, -1.0])
            (g,) = minigen.grad(make()(edge).sum(), edge)
            assert g.numpy()[0] == np.inf and np.isnan(g.numpy()[1])


class Sin(Function):
    """y = sin x.  VJP: gx = gy * cos x, with Cos, so that it can be differentiated again."""

    def forward(self, x):
        return np.sin(x)

    def backward(self, gy):
        return gy * Cos()(self.inputs[0])


class Cos(Function):
    """y = cos x.  VJP: gx = -gy * sin x."""

    def forward(self, x):
        return np.cos(x)

    def backward(self, gy):
        return -(gy * Sin()(self.inputs[0]))


class SinFromRawArrays(Sin):
    """What not to do: cos x from the raw array is a constant to the engine."""

    def backward(self, gy):
        return gy * Tensor(np.cos(self.inputs[0].data))


def test_ch03_ex2_sin_and_cos_functions():
    x = f64([[-1.3, 0.2, 0.9], [2.5, -0.4, 1.7]])
    for op in (Sin, Cos):  # a Function instance is one node: each call needs a new one
        assert gradcheck(lambda t, op=op: op()(t), [x]) and gradgradcheck(lambda t, op=op: op()(t), [x])
    (g,) = minigen.grad(Sin()(x).sum(), x, create_graph=True)
    (gg,) = minigen.grad(g.sum(), x)
    np.testing.assert_allclose(values(gg), -np.sin(values(x)), rtol=1e-15)
    assert gradcheck(lambda t: SinFromRawArrays()(t), [x])
    with pytest.raises(GradcheckError) as failure:
        gradgradcheck(lambda t: SinFromRawArrays()(t), [x])
    rows = str(failure.value).splitlines()[2:]
    assert rows and all(row.split()[0] == "0" for row in rows)  # only x, not the cotangent
    assert all(float(row.split()[-3]) == 0.0 for row in rows)  # analytic second derivatives: 0


def test_ch03_ex3_max_of_a_tie_two_ways():
    a, b, c = f64(1.0), f64(1.0), f64(1.0)
    shares = minigen.grad(minigen.stack([a, b, c]).max(), [a, b, c])
    assert [g.item() for g in shares] == [1 / 3, 1 / 3, 1 / 3]
    shares = minigen.grad(minigen.maximum(minigen.maximum(a, b), c), [a, b, c])
    assert [g.item() for g in shares] == [0.25, 0.25, 0.5]
    x = f64(0.0)  # relu(x) - relu(-x) is x, but the conventions give 0 - 0 at the kink
    (g,) = minigen.grad(F.relu(x) - F.relu(-x), x)
    assert g.item() == 0.0


def test_ch03_ex4_cross_entropy_gradient_with_smoothing_and_weights():
    rng = np.random.default_rng(0)
    n, classes, smoothing = 5, 4, 0.1
    logits = f64(rng.standard_normal((n, classes)))
    labels = minigen.tensor(np.array([0, 3, 1, 3, 2]))
    weight = f64([0.5, 2.0, 1.0, 1.5], requires_grad=False)
    loss = F.cross_entropy(logits, labels, weight=weight, label_smoothing=smoothing)
    (g,) = minigen.grad(loss, logits)
    # gx_n = (s_n softmax(x_n) - q_n) / W, q_nc = (1 - e) w[t_n] [c = t_n] + (e / C) w[c].
    w, t = weight.numpy(), labels.numpy()
    p = np.exp(values(logits)) / np.exp(values(logits)).sum(axis=1, keepdims=True)
    q = (1 - smoothing) * w[t, None] * np.eye(classes)[t] + smoothing / classes * w[None, :]
    by_hand = (q.sum(axis=1, keepdims=True) * p - q) / w[t].sum()
    assert np.abs(g.numpy() - by_hand).max() < 1e-16 and abs(np.abs(by_hand).max() - 0.249) < 1e-3
    np.testing.assert_allclose(by_hand.sum(axis=1), 0, atol=1e-16)  # each row: s - sum(q) = 0


def recursive_topological_order(roots):
    """_topological_order as a recursive depth-first search (exercise 5: what not to do)."""
    order, visited = [], set()

    def visit(node):
        if id(node) not in visited:
            visited.add(id(node))
            for x in node.inputs:
                if x.creator is not None:
                    visit(x.creator)
            order.append(node)

    for root in roots:
        if root.creator is not None:
            visit(root.creator)
    return order


def chain_of_products(length):
    x = f64(1.0)
    y = x
    for _ in range(length):
        y = y * 1.0001
    return x, y


def test_ch03_ex5_a_recursive_sweep_hits_the_recursion_limit(monkeypatch):
    x, y = chain_of_products(20_000)
    monkeypatch.setattr(autograd, "_topological_order", recursive_topological_order)
    with pytest.raises(RecursionError):
        y.backward()
    x, y = chain_of_products(500)  # a shallow graph is fine, and gives the same order
    y.backward()
    assert abs(x.grad.item() - 1.0001**500) < 1e-12
    monkeypatch.undo()
    x, y = chain_of_products(20_000)
    y.backward()
    assert abs(x.grad.item() / 1.0001**20_000 - 1) < 1e-9


class Dual:
    """A dual number v + d epsilon with epsilon^2 = 0: d carries the tangent through + * exp."""

    def __init__(self, value, tangent=0.0):
        self.value, self.tangent = value, tangent

    @staticmethod
    def lift(other):
        return other if isinstance(other, Dual) else Dual(other)

    def __add__(self, other):
        other = Dual.lift(other)
        return Dual(self.value + other.value, self.tangent + other.tangent)

    def __mul__(self, other):
        other = Dual.lift(other)
        return Dual(self.value * other.value, self.tangent * other.value + self.value * other.tangent)

    __radd__, __rmul__ = __add__, __mul__

    def exp(self):
        e = math.exp(self.value)
        return Dual(e, e * self.tangent)


def three_outputs(x0, x1, x2):
    """R^3 -> R^3 with + * and exp only, for Duals and Tensors alike."""
    return x0 * x1 + x2.exp(), (x0 * x1 * x2).exp(), x0 + 3.0 * x1 * x1


def test_ch03_ex6_dual_numbers_match_the_jvp_from_two_vjps():
    point, tangent = [0.3, -1.2, 0.7], [1.0, 0.5, -2.0]
    duals = three_outputs(*(Dual(v, t) for v, t in zip(point, tangent)))
    forward = [d.tangent for d in duals]
    x = f64(point)
    y = minigen.stack(list(three_outputs(x[0], x[1], x[2])))
    u = minigen.zeros(3, dtype=minigen.float64, requires_grad=True)  # any value: J^T u is linear in u
    (g,) = minigen.grad(y, x, grad_outputs=u, create_graph=True)
    (jvp,) = minigen.grad(g, u, grad_outputs=f64(tangent, requires_grad=False))
    np.testing.assert_allclose(jvp.numpy(), forward, rtol=1e-14)
    x0, x1, x2 = point
    by_hand = [
        x1 * 1.0 + x0 * 0.5 + math.exp(x2) * -2.0,
        math.exp(x0 * x1 * x2) * (x1 * x2 * 1.0 + x0 * x2 * 0.5 + x0 * x1 * -2.0),
        1.0 + 6 * x1 * 0.5,
    ]
    np.testing.assert_allclose(forward, by_hand, rtol=1e-15)


def held_arrays(loss):
    """{id of base buffer: (array, node type)} of every array the graph behind ``loss`` keeps:
    the nodes' inputs and any array or tensor they saved."""
    held = {}
    for node in recorded_functions(loss):
        saved = [v for v in vars(node).values() if isinstance(v, (Tensor, np.ndarray))]
        for array in (t.data if isinstance(t, Tensor) else t for t in (*node.inputs, *saved)):
            while isinstance(array.base, np.ndarray):
                array = array.base
            held.setdefault(id(array), (array, type(node).__name__))
    return held


def test_ch03_ex7_floats_held_by_the_vae_graph():
    minigen.manual_seed(0)
    model = vae.MLPVAE(image_shape=(1, 28, 28), latent_dim=20)
    x = minigen.rand(128, 1, 28, 28)
    out, mu, logvar = model(x)
    loss = -vae.elbo(x, out, mu, logvar).elbo.mean()
    parameters = set()
    for p in model.parameters():
        array = p.data
        while isinstance(array.base, np.ndarray):
            array = array.base
        parameters.add(id(array))
    assert sum(p.data.size for p in model.parameters()) == 652_824
    activations = [a for key, (a, _) in held_arrays(loss).items() if key not in parameters]
    assert len(recorded_functions(loss)) == 27
    assert sum(a.size for a in activations) == 537_349
    sizes = sorted((a.size for a in activations), reverse=True)
    assert sizes[:7] == [100_352] * 3 + [51_200] * 4 and sizes.count(2_560) == 12


# ------------------------------------------------------------------ chapter 04


def test_ch04_ex1_richardson_extrapolation():
    xs, hs = np.linspace(0.5, 1.5, 41), 10.0 ** np.arange(-13, 0.001, 0.125)
    x, h = minigen.tensor(xs[None, :]), minigen.tensor(hs[:, None])

    def central(step):
        return (minigen.exp(x + step) - minigen.exp(x - step)) / (2 * step)

    richardson = ((4 * central(h / 2) - central(h)) / 3).numpy()
    errors = np.median(np.abs(richardson - np.exp(xs)) / np.exp(xs), axis=1)
    h_star = (360 * EPS64) ** 0.2
    e_star = h_star**4 / 96
    assert abs(h_star - 2.40e-3) < 1e-5 and abs(e_star - 3.5e-13) < 1e-14
    keep = (hs >= 10 * h_star) & (hs <= 0.5)
    assert abs(np.polyfit(np.log10(hs[keep]), np.log10(errors[keep]), 1)[0] - 4) < 0.01
    keep = (hs >= h_star / 1000) & (hs <= h_star / 10)
    assert abs(np.polyfit(np.log10(hs[keep]), np.log10(errors[keep]), 1)[0] + 1) < 0.1
    best = hs[errors.argmin()]
    assert abs(best - 1.78e-3) < 1e-5 and abs(errors.min() - 4.1e-14) < 1e-15 and errors.min() < e_star


def test_ch04_ex2_complex_step():
    def f(x):
        return np.exp(x) / np.sqrt(np.sin(x) ** 3 + np.cos(x) ** 3)

    def derivative(x):
        s, c = np.sin(x), np.cos(x)
        return f(x) * (1 - 3 * s * c * (s - c) / (2 * (s**3 + c**3)))

    exact = derivative(1.5)
    errors = {h: abs(np.imag(f(1.5 + 1j * h)) / h - exact) / exact for h in (1e-4, 1e-20, 1e-200)}
    assert abs(errors[1e-4] - 1.32e-8) < 1e-10  # h^2 |f'''| / 6 |f'|: truncation only
    assert errors[1e-20] <= EPS64 and errors[1e-200] <= EPS64
    central = abs((f(1.5 + 1e-6) - f(1.5 - 1e-6)) / 2e-6 - exact) / exact
    assert 1e-11 < central < 1e-9
    # Not analytic: NumPy's abs is the modulus, so the imaginary part, and the derivative, are lost.
    z = np.array([-0.7, 0.3]) + 1e-20j
    assert np.imag(np.abs(z)).tolist() == [0.0, 0.0]
    # NumPy orders complex numbers by their real part first, so maximum happens to work here.
    assert (np.imag(np.maximum(z, 0)) / 1e-20).tolist() == [0.0, 1.0]


def test_ch04_ex3_round_off_grows_like_the_square_root_of_m():
    rng = np.random.default_rng(0)
    h, ms, medians = 1e-6, [10, 100, 1_000, 10_000, 100_000], []
    for m in ms:
        errors = []
        for _ in range(5):
            x, v = rng.standard_normal(m), minigen.tensor(rng.standard_normal(m))

            def projected(a, v=v):
                return (minigen.tanh(minigen.tensor(a)) * v).sum().item()

            for i in rng.choice(m, size=min(m, 8), replace=False):
                up, down = x.copy(), x.copy()
                up[i] += h
                down[i] -= h
                exact = v.numpy()[i] * (1 - math.tanh(x[i]) ** 2)
                errors.append(abs((projected(up) - projected(down)) / (2 * h) - exact))
        medians.append(np.median(errors))
    growth = np.polyfit(np.log10(ms), np.log10(medians), 1)[0]
    assert abs(growth - 0.5) < 0.1, growth
    assert 1e-11 < medians[0] < 1e-10 and 1e-9 < medians[-1] < 1e-8
    # E|L| = sqrt(2/pi) ||f||: the atol of 1e-5 equals eps |L| / h once sqrt(m) rms(f) is 5.6e4.
    assert abs(1e-5 * h / EPS64 / math.sqrt(2 / math.pi) - 5.6e4) < 1e3


H32, ATOL32, RTOL32 = np.float32(2.0**-7), 5e-4, 5e-3


def float32_tanh_check(rng, delta=0.0, n=20):
    """True when a float32 central-difference check (step 2^-7, atol 5e-4, rtol 5e-3) flags
    tanh's VJP with entry 0 scaled by 1 + delta; also returns the largest |analytic - numeric|."""
    x = rng.standard_normal(n).astype(np.float32)
    v = minigen.tensor(rng.standard_normal(n).astype(np.float32))
    t = minigen.tensor(x, requires_grad=True)
    (g,) = minigen.grad((minigen.tanh(t) * v).sum(), t)
    analytic = g.numpy().copy()
    analytic[0] *= 1 + delta
    numeric = np.empty(n, np.float32)
    for i in range(n):
        up, down = x.copy(), x.copy()
        up[i] += H32
        down[i] -= H32
        with minigen.no_grad():
            difference = (minigen.tanh(minigen.tensor(up)) * v).sum() - (
                minigen.tanh(minigen.tensor(down)) * v
            ).sum()
        numeric[i] = difference.item() / (2 * H32)
    error = np.abs(analytic - numeric)
    return bool(np.any(error > ATOL32 + RTOL32 * np.abs(numeric))), float(error.max())


def test_ch04_ex4_a_float32_check_of_tanh():
    eps32 = float(np.finfo(np.float32).eps)
    h_star = (3 * eps32 * 3 / 2) ** (1 / 3)  # |L| about 3, |v tanh'''| at most 2
    assert abs(h_star - 8.1e-3) < 1e-4 and abs(float(H32) - 7.8e-3) < 1e-4
    assert abs((3 * eps32 * 3) ** (2 / 3) * 2 ** (1 / 3) / 2 - 6.6e-5) < 1e-6
    rng = np.random.default_rng(0)
    clean = [float32_tanh_check(rng) for _ in range(100)]
    assert not any(flagged for flagged, _ in clean)
    assert 5e-5 < max(error for _, error in clean) < 1.5e-4  # five times below atol
    rates = {d: np.mean([float32_tanh_check(rng, d)[0] for _ in range(100)]) for d in (3e-3, 1e-2, 1e-1)}
    assert rates[3e-3] == 0 and 0.6 < rates[1e-2] < 0.9 and rates[1e-1] > 0.9


@given(data=st.data(), shape=shapes(max_dims=3, max_side=3), name=st.sampled_from(["sum", "mean", "max"]))
def test_ch04_ex5_reductions_pass_gradcheck_for_every_dim(data, shape, name):
    dim, keepdim = data.draw(reduction_dims(len(shape))), data.draw(st.booleans())
    values = data.draw(distinct_arrays(shape) if name == "max" else arrays(shape, "real"))
    reduce = getattr(minigen, name)
    x = minigen.tensor(values, requires_grad=True)
    assert gradcheck(lambda t: reduce(t, dim=dim, keepdim=keepdim), [x])


class OnePercentOff(Function):
    """What not to do: tanh whose VJP is 1% too large at entry (3, 4) (notebook 04)."""

    def forward(self, x):
        return np.tanh(x)

    def backward(self, gy):
        scale = np.ones(gy.shape)
        scale[3, 4] = 1.01
        y = self.output()
        return gy * (1.0 - y * y) * Tensor(scale)


def projections_pass(rng, fn, x, k, rtol=1e-3, atol=1e-5, h=1e-6):
    """True when all of k random projections u^T J^T v match their directional differences."""
    for _ in range(k):
        y = fn(x)
        v, u = rng.standard_normal(y.shape), rng.standard_normal(x.shape)
        (g,) = minigen.grad(y, x, grad_outputs=minigen.tensor(v))
        analytic = float((g.numpy() * u).sum())
        with minigen.no_grad():
            up, down = fn(minigen.tensor(values(x) + h * u)), fn(minigen.tensor(values(x) - h * u))
        numeric = float((v * (up.numpy() - down.numpy())).sum() / (2 * h))
        if abs(analytic - numeric) > atol + rtol * abs(numeric):
            return False
    return True


def test_ch04_ex6_several_projections():
    rng = np.random.default_rng(0)
    x = minigen.tensor(rng.standard_normal((10, 10)), requires_grad=True)

    def buggy(t):
        return OnePercentOff()(t)

    p = 1 - np.mean([projections_pass(rng, buggy, x, 1) for _ in range(400)])
    assert abs(p - 0.47) < 1e-12
    measured = {k: np.mean([projections_pass(rng, buggy, x, k) for _ in range(400)]) for k in (2, 3, 5, 10)}
    assert [measured[k] for k in (2, 3, 5, 10)] == [0.2925, 0.17, 0.0525, 0.0]
    for k, missed in measured.items():  # each within 4 binomial standard errors of (1 - p)^k
        predicted = (1 - p) ** k
        assert abs(missed - predicted) < 4 * math.sqrt(predicted * (1 - predicted) / 400)
    assert all(projections_pass(rng, minigen.tanh, x, 10) for _ in range(20))
