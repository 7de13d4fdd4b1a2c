"""The worked solutions of the exercises of chapters 05-09: every number or function a solution
states, checked (a derived gradient against autograd and finite differences, a closed form
against Monte Carlo or quadrature, a claimed identity against minigen's own operations). One
test per exercise whose answer is a number or a function, named chNN_exM_<what>; the training
experiments are checked through their mechanism only."""

import math

import numpy as np
import pytest

import minigen
import minigen.functional as F
from minigen import backend, nn, optim
from minigen.generative import gan, vae
from minigen.gradcheck import gradcheck, gradgradcheck


def f64(values, requires_grad=False):
    return minigen.tensor(np.asarray(values, dtype=np.float64), requires_grad=requires_grad)


# --- chapter 05 --------------------------------------------------------------------------------


def bilinear(x, A, z):
    """y[n, k] = x_n^T A_k z_n from a matrix product, a reshape and a broadcast product:
    (x A)[n, (k, j)] = sum_i x[n, i] A[k, i, j], then the sum over j against z[n, j]."""
    (n, i), (k, _, j) = x.shape, A.shape
    xa = x @ A.permute(1, 0, 2).reshape(i, k * j)
    return (xa.reshape(n, k, j) * z.unsqueeze(1)).sum(dim=2)


def test_ch05_ex1_bilinear_vjp():
    rng = np.random.default_rng(0)
    x, A, z = rng.normal(size=(4, 3)), rng.normal(size=(2, 3, 5)), rng.normal(size=(4, 5))
    G = rng.normal(size=(4, 2))
    inputs = [f64(x, True), f64(A, True), f64(z, True)]
    gx, gA, gz = minigen.grad(bilinear(*inputs), inputs, grad_outputs=f64(G))
    np.testing.assert_allclose(gx.numpy(), np.einsum("nk,kij,nj->ni", G, A, z), atol=1e-12)
    np.testing.assert_allclose(gz.numpy(), np.einsum("nk,kij,ni->nj", G, A, x), atol=1e-12)
    np.testing.assert_allclose(gA.numpy(), np.einsum("nk,ni,nj->kij", G, x, z), atol=1e-12)
    assert gradcheck(bilinear, inputs) and gradgradcheck(bilinear, inputs)


def test_ch05_ex2_glorot_factors_with_doubling_width():
    # One Linear(256, 512) with Glorot weights: E[y^2] / E[x^2] = n_in s^2 = 2/3 forward and
    # E[g_x^2] / E[g_y^2] = n_out s^2 = 4/3 backward, s^2 = 2 / (n_in + n_out).
    rng = np.random.default_rng(1)
    layer = nn.Linear(256, 512, bias=False, dtype=minigen.float64)
    nn.init.xavier_normal_(layer.weight)
    x = f64(rng.normal(size=(512, 256)), True)
    G = rng.normal(size=(512, 512))
    y = layer(x)
    (gx,) = minigen.grad(y, [x], grad_outputs=f64(G))
    forward = float((y.detach().numpy() ** 2).mean() / (x.detach().numpy() ** 2).mean())
    backward = float((gx.numpy() ** 2).mean() / (G**2).mean())
    assert forward == pytest.approx(2 / 3, rel=0.03) and backward == pytest.approx(4 / 3, rel=0.03)


def test_ch05_ex3_label_smoothing_gradient():
    rng = np.random.default_rng(2)
    n, c, e = 6, 4, 0.2
    z, t = rng.normal(size=(n, c)) * 2, rng.integers(0, c, n)
    logits = f64(z, True)
    loss = F.cross_entropy(logits, minigen.tensor(t), label_smoothing=e)
    (g,) = minigen.grad(loss, [logits])
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    q = (1 - e) * np.eye(c)[t] + e / c
    np.testing.assert_allclose(g.numpy(), (p - q) / n, atol=1e-15)
    np.testing.assert_allclose(loss.item(), -(q * np.log(p)).sum() / n, rtol=1e-13)
    # The gradient vanishes at p = q: logit gaps z_t - z_c = log((1 - e + e/C) / (e/C)),
    # log 91 for e = 0.1 and C = 10.
    gap = math.log((1 - 0.1 + 0.01) / 0.01)
    at_rest = f64(np.where(np.eye(10)[[3, 7]] > 0, gap, 0.0), True)
    (g,) = minigen.grad(
        F.cross_entropy(at_rest, minigen.tensor(np.array([3, 7])), label_smoothing=0.1), [at_rest]
    )
    assert np.abs(g.numpy()).max() < 1e-15 and gap == pytest.approx(4.51086, abs=1e-5)


def batch_norm_jacobian(x, eps):
    """The n x n matrix d x_hat_i / d x_j of one channel, by one backward pass per row."""
    xt = f64(x.reshape(-1, 1), True)
    x_hat = F.batch_norm(xt, None, None, training=True, eps=eps)
    rows = [minigen.grad(x_hat, [xt], grad_outputs=f64(np.eye(len(x))[i, :, None]), retain_graph=True)[0]
            for i in range(len(x))]  # fmt: skip
    return np.stack([r.numpy().ravel() for r in rows])


def test_ch05_ex4_batch_norm_jacobian_is_a_projection():
    rng = np.random.default_rng(3)
    x = rng.normal(1.0, 0.7, size=7)
    n, ones = len(x), np.ones(len(x))
    for eps in (1e-5, 0.3, 0.0):
        J = batch_norm_jacobian(x, eps)
        s = math.sqrt(x.var() + eps)
        x_hat = (x - x.mean()) / s
        np.testing.assert_allclose(J, (np.eye(n) - 1 / n - np.outer(x_hat, x_hat) / n) / s, atol=1e-12)
        np.testing.assert_allclose(J, J.T, atol=1e-12)
        np.testing.assert_allclose(J @ ones, 0, atol=1e-12)
        np.testing.assert_allclose(J @ x_hat, eps / s**3 * x_hat, atol=1e-12)
    P = s * J  # eps = 0: symmetric, idempotent, of rank n - 2
    np.testing.assert_allclose(P @ P, P, atol=1e-12)
    assert np.linalg.matrix_rank(P) == n - 2


def adam_m_hat_variance(t, beta1, s2):
    """Var(m_hat_t) = s^2 (1 - beta1)(1 + beta1^t) / ((1 + beta1)(1 - beta1^t)) for i.i.d. g."""
    return s2 * (1 - beta1) * (1 + beta1**t) / ((1 + beta1) * (1 - beta1**t))


def test_ch05_ex5_variance_of_adam_first_moment():
    # The notebook's experiment (section 8.2): 20,000 independent coordinates, g = 0.5 + N(0, 1).
    rng = np.random.default_rng(4)
    runs, beta1 = 20_000, 0.9
    theta = f64(np.zeros(runs), True)
    adam = optim.Adam([theta], lr=1e-3)
    for t in range(1, 31):
        adam.zero_grad()
        (theta * f64(0.5 + rng.standard_normal(runs))).sum().backward()
        adam.step()
        m_hat = adam.state[theta]["exp_avg"].numpy() / (1 - beta1**t)
        predicted = adam_m_hat_variance(t, beta1, 1.0)
        # m_hat_t is Gaussian, so its sample variance has standard error predicted * sqrt(2 / runs)
        assert abs(m_hat.var() - predicted) < 4 * predicted * math.sqrt(2 / runs)
    assert adam_m_hat_variance(1, beta1, 1.0) == 1.0
    assert adam_m_hat_variance(10_000, beta1, 1.0) == pytest.approx(0.1 / 1.9, rel=1e-12)
    assert math.sqrt(adam_m_hat_variance(30, beta1, 1.0) / runs) == pytest.approx(0.001693, abs=1e-6)


class RMSprop(optim.Optimizer):
    """v_t = alpha v_{t-1} + (1 - alpha) g_t^2, v_0 = 0;  p = p - lr g_t / (sqrt(v_t) + eps)."""

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8):
        super().__init__(params, {"lr": lr, "alpha": alpha, "eps": eps})

    def _check_options(self, options):
        if not options["lr"] >= 0 or not options["eps"] >= 0:
            raise ValueError(f"Invalid learning rate or epsilon: {options['lr']}, {options['eps']}")
        if not 0.0 <= options["alpha"] < 1.0:
            raise ValueError(f"Invalid alpha value: {options['alpha']}")

    def _update(self, param, grad, state, group):
        xp = backend.xp_of(param)
        alpha, lr, eps = float(group["alpha"]), float(group["lr"]), float(group["eps"])
        if not state:
            state["square_avg"] = minigen.Tensor(xp.zeros_like(param))
        v = state["square_avg"].data
        v *= alpha
        v += (1 - alpha) * grad * grad
        param -= lr * grad / (xp.sqrt(v) + eps)


def test_ch05_ex6_rmsprop_matches_its_update_rule_and_pytorch():
    curvature, start = np.array([1.0, 25.0]), np.array([-4.0, 1.5])
    theta = f64(start, True)
    opt = RMSprop([theta], lr=0.05)
    v, reference = np.zeros(2), start.copy()
    for _ in range(60):
        opt.zero_grad()
        (0.5 * (f64(curvature) * theta * theta).sum()).backward()
        opt.step()
        g = curvature * reference
        v = 0.99 * v + 0.01 * g * g
        reference = reference - 0.05 * g / (np.sqrt(v) + 1e-8)
    np.testing.assert_allclose(theta.detach().numpy(), reference, atol=1e-13)
    assert opt.state_dict()["state"][0]["square_avg"].shape == (2,)
    torch = pytest.importorskip("torch")
    p = torch.tensor(start, requires_grad=True)
    torch_opt = torch.optim.RMSprop([p], lr=0.05)
    for _ in range(60):
        torch_opt.zero_grad()
        (0.5 * (torch.tensor(curvature) * p * p).sum()).backward()
        torch_opt.step()
    np.testing.assert_allclose(theta.detach().numpy(), p.detach().numpy(), atol=1e-12)
    with pytest.raises(ValueError):
        RMSprop([theta], alpha=1.0)


# --- chapter 06 --------------------------------------------------------------------------------


def ceil_pooled_size(size, kernel, stride, padding, dilation):
    """ceil((H + 2P - d(k - 1) - 1) / s) + 1 windows, less one if the last starts in the right padding."""
    out = -(-(size + 2 * padding - dilation * (kernel - 1) - 1) // stride) + 1
    return out - 1 if (out - 1) * stride >= size + padding else out


def test_ch06_ex1_ceil_mode_output_size():
    torch = pytest.importorskip("torch")
    dropped = 0
    for size in range(1, 11):
        for kernel in range(1, 5):
            for stride in range(1, 4):
                for padding in range(kernel // 2 + 1):
                    for dilation in (1, 2):
                        expected = ceil_pooled_size(size, kernel, stride, padding, dilation)
                        raw = -(-(size + 2 * padding - dilation * (kernel - 1) - 1) // stride) + 1
                        dropped += expected < raw
                        settings = (kernel, stride, padding, dilation, True)
                        if expected < 1:
                            with pytest.raises(ValueError):
                                F.max_pool2d(minigen.zeros(1, 1, size, size), *settings)
                            continue
                        ours = F.max_pool2d(minigen.zeros(1, 1, size, size), *settings).shape[-1]
                        theirs = torch.nn.functional.max_pool2d(torch.zeros(1, 1, size, size), *settings)
                        assert ours == expected == theirs.shape[-1], (size, settings)
    assert dropped > 0  # the rule that drops a window starting in the right padding is exercised


def test_ch06_ex2_one_by_one_convolution_is_a_dense_layer_per_pixel():
    rng = np.random.default_rng(5)
    x, w, b = (f64(rng.normal(size=s), True) for s in [(2, 3, 4, 5), (6, 3, 1, 1), (6,)])
    conv = F.conv2d(x, w, b)
    dense = F.linear(x.permute(0, 2, 3, 1), w.reshape(6, 3), b).permute(0, 3, 1, 2)
    np.testing.assert_allclose(conv.detach().numpy(), dense.detach().numpy(), atol=1e-13)
    G = f64(rng.normal(size=conv.shape))
    for a, c in zip(
        minigen.grad(conv, [x, w, b], grad_outputs=G), minigen.grad(dense, [x, w, b], grad_outputs=G)
    ):
        np.testing.assert_allclose(a.numpy(), c.numpy(), atol=1e-12)


def convolution_matrix(w, size, stride=1, padding=0):
    """The matrix A with conv2d(x, w).ravel() = A x.ravel() for one channel: A[(p, q), (h, v)] =
    w[h + P - p s, v + P - q s] where that index lies inside the kernel, else 0."""
    k = w.shape[0]
    out = (size + 2 * padding - k) // stride + 1
    A = np.zeros((out * out, size * size))
    for p in range(out):
        for q in range(out):
            for i in range(k):
                for j in range(k):
                    h, v = p * stride + i - padding, q * stride + j - padding
                    if 0 <= h < size and 0 <= v < size:
                        A[p * out + q, h * size + v] = w[i, j]
    return A, out


def test_ch06_ex3_transposed_convolution_is_multiplication_by_a_transpose():
    rng = np.random.default_rng(6)
    w = rng.normal(size=(3, 3))
    for stride, padding in [(1, 0), (2, 1)]:
        A, out = convolution_matrix(w, 5, stride, padding)
        x, z = rng.normal(size=(5, 5)), rng.normal(size=(out, out))
        settings = {"stride": stride, "padding": padding}
        y = F.conv2d(f64(x[None, None]), f64(w[None, None]), **settings).numpy().ravel()
        back = F.conv_transpose2d(f64(z[None, None]), f64(w[None, None]), **settings).numpy()
        np.testing.assert_allclose(y, A @ x.ravel(), atol=1e-13)
        assert back.shape == (1, 1, 5, 5)
        np.testing.assert_allclose(back.ravel(), A.T @ z.ravel(), atol=1e-13)
    assert convolution_matrix(w, 5)[0].shape == (9, 25)


def test_ch06_ex4_multiply_adds_of_the_backward_pass():
    # Count the terms of the three loop formulas (chapter 06, sections 1.2, 4.1 and 4.2) for a
    # small convolution: each is N O H_out W_out C kh kw products, less, for the input gradient,
    # the taps that land in the padding.
    N, C, O, H, k, s, P = 2, 3, 4, 6, 3, 2, 1
    out = (H + 2 * P - k) // s + 1
    taps = [(n, o, p, q, c, i, j) for n in range(N) for o in range(O) for p in range(out)
            for q in range(out) for c in range(C) for i in range(k) for j in range(k)]  # fmt: skip
    inside = [t for t in taps if 0 <= t[2] * s + t[5] - P < H and 0 <= t[3] * s + t[6] - P < H]
    forward = len(taps)  # the im2col product multiplies the padding's zeros too
    input_gradient = sum(  # for each input pixel, the (o, p, q, i, j) whose tap lands on it
        1 for n in range(N) for c in range(C) for h in range(H) for v in range(H)
        for o in range(O) for p in range(out) for q in range(out) for i in range(k) for j in range(k)
        if p * s + i - P == h and q * s + j - P == v
    )  # fmt: skip
    weight_gradient = O * C * k * k * N * out * out  # every (n, p, q) for every weight entry
    assert forward == N * O * out * out * C * k * k == weight_gradient
    assert input_gradient == len(inside) < forward
    # as matrix products (im2col): W_mat (O x Ckk) X (Ckk x N HW_out), W_mat^T G and G X^T
    assert (O * C * k * k) * N * out * out == forward


def test_ch06_ex5_stride_one_transposed_convolution_is_a_flipped_convolution():
    rng = np.random.default_rng(7)
    for k, d, P in [(3, 1, 0), (3, 1, 1), (3, 2, 2), (4, 1, 1), (5, 1, 2), (2, 3, 1)]:
        x, w = rng.normal(size=(2, 3, 7, 6)), rng.normal(size=(3, 4, k, k))  # (C_in, C_out, k, k)
        transposed = F.conv_transpose2d(f64(x), f64(w), padding=P, dilation=d).numpy()
        flipped = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
        conv = F.conv2d(f64(x), f64(flipped), padding=d * (k - 1) - P, dilation=d).numpy()
        np.testing.assert_allclose(transposed, conv, atol=1e-12)
        same = d * (k - 1) == 2 * P
        assert (transposed.shape[2:] == x.shape[2:]) == same
        assert (F.conv2d(f64(x), f64(flipped), padding=P, dilation=d).shape[2:] == x.shape[2:]) == same


def upsample_nearest(x, factor=2):
    """Each pixel repeated factor x factor times: (N, C, H, W) -> (N, C, factor H, factor W)."""
    n, c, h, w = x.shape
    tiled = x.reshape(n, c, h, 1, w, 1).broadcast_to((n, c, h, factor, w, factor))
    return tiled.reshape(n, c, factor * h, factor * w)


def test_ch06_ex6_resize_convolution_has_uniform_stamps():
    ones = minigen.ones(1, 1, 6, 6, dtype=minigen.float64)
    kernel = minigen.ones(1, 1, 3, 3, dtype=minigen.float64)
    transposed = F.conv_transpose2d(ones, kernel, stride=2).numpy()[0, 0]
    resized = F.conv2d(upsample_nearest(ones), kernel, padding=1).numpy()[0, 0]
    assert set(np.unique(transposed[2:-2, 2:-2])) == {1.0, 2.0, 4.0}  # the checkerboard
    assert np.all(resized[1:-1, 1:-1] == 9.0) and resized[0, 0] == 4.0 and resized[0, 5] == 6.0
    # Resize-convolution is a stride-2 transposed convolution with a 4x4 kernel M w M^T
    # (4 divisible by 2: every output pixel gets 2 x 2 terms) whose taps are sums of w's.
    rng = np.random.default_rng(8)
    x, w = rng.normal(size=(2, 3, 5, 4)), rng.normal(size=(6, 3, 3, 3))
    M = np.array([[0, 0, 1], [0, 1, 1], [1, 1, 0], [1, 0, 0]], dtype=float)
    K = np.einsum("ai,ocij,bj->coab", M, w, M)
    resize_conv = F.conv2d(upsample_nearest(f64(x)), f64(w), padding=1).numpy()
    as_transposed = F.conv_transpose2d(f64(x), f64(K), stride=2, padding=1).numpy()
    np.testing.assert_allclose(resize_conv, as_transposed, atol=1e-12)


# --- chapter 07 --------------------------------------------------------------------------------


def gaussian_kl_full(m0, cov0, m1, cov1):
    """KL(N(m0, cov0) || N(m1, cov1)), the general formula of chapter 07, section 5.1 (NumPy)."""
    diff = m1 - m0
    trace = np.trace(np.linalg.solve(cov1, cov0))
    quad = diff @ np.linalg.solve(cov1, diff)
    return 0.5 * (trace + quad - len(m0) + np.linalg.slogdet(cov1)[1] - np.linalg.slogdet(cov0)[1])


def kl_to_diagonal_prior(mu, logvar, m, logs2):
    """KL(N(mu, diag e^logvar) || N(m, diag e^logs2)) per example:
    1/2 sum_j (e^(logvar - logs2) + (mu - m)^2 e^(-logs2) - 1 + logs2 - logvar)."""
    terms = (logvar - logs2).exp() + (mu - m) * (mu - m) * (-logs2).exp() - 1.0 + logs2 - logvar
    return 0.5 * terms.sum(dim=-1)


def test_ch07_ex1_kl_between_diagonal_gaussians():
    rng = np.random.default_rng(9)
    mu, logvar = rng.normal(size=(5, 3)), rng.uniform(-2, 1, size=(5, 3))
    m, logs2 = rng.normal(size=3), rng.uniform(-1, 1, size=3)
    kl = kl_to_diagonal_prior(f64(mu), f64(logvar), f64(m), f64(logs2)).numpy()
    general = [
        gaussian_kl_full(mu[n], np.diag(np.exp(logvar[n])), m, np.diag(np.exp(logs2))) for n in range(5)
    ]
    np.testing.assert_allclose(kl, general, rtol=1e-12)
    zeros = f64(np.zeros(3))
    np.testing.assert_allclose(  # the standard prior gives back vae.gaussian_kl
        kl_to_diagonal_prior(f64(mu), f64(logvar), zeros, zeros).numpy(),
        vae.gaussian_kl(f64(mu), f64(logvar)).numpy(),
        rtol=1e-13,
    )
    # Monte Carlo, E_q[log q - log p], example 0
    z = mu[0] + np.exp(logvar[0] / 2) * rng.standard_normal((200_000, 3))
    log_ratio = (-0.5 * (logvar[0] + (z - mu[0]) ** 2 / np.exp(logvar[0]))
                 + 0.5 * (logs2 + (z - m) ** 2 / np.exp(logs2))).sum(1)  # fmt: skip
    assert abs(log_ratio.mean() - kl[0]) < 4 * log_ratio.std() / math.sqrt(len(z))
    # The prior's gradients: dKL/dm = (m - mu) / s^2, dKL/dlogs2 = (1 - (sigma^2 + (mu - m)^2) / s^2) / 2
    prior = [f64(m, True), f64(logs2, True)]
    gm, gl = minigen.grad(kl_to_diagonal_prior(f64(mu), f64(logvar), *prior).sum(), prior)
    s2, sigma2 = np.exp(logs2), np.exp(logvar)
    np.testing.assert_allclose(gm.numpy(), ((m - mu) / s2).sum(0), rtol=1e-12)
    np.testing.assert_allclose(gl.numpy(), (0.5 * (1 - (sigma2 + (mu - m) ** 2) / s2)).sum(0), rtol=1e-12)
    # ... which vanish at the aggregate posterior's moments: m = mean(mu), s^2 = mean(sigma^2 + (mu - m)^2)
    m_star = mu.mean(0)
    best = [f64(m_star, True), f64(np.log((sigma2 + (mu - m_star) ** 2).mean(0)), True)]
    for g in minigen.grad(kl_to_diagonal_prior(f64(mu), f64(logvar), *best).sum(), best):
        np.testing.assert_allclose(g.numpy(), 0, atol=1e-12)
    assert gradcheck(kl_to_diagonal_prior, [f64(mu, True), f64(logvar, True), *prior])


def score_function_draws(f, mean, draws, baseline):
    """(draws,) one-draw score-function estimates of dE[f(z)]/dmu_1, z ~ N(mean, I): the
    gradient of the surrogate (f(z) - c) log q(z) with z held constant (chapter 07, 4.1)."""
    mu_rows = f64(np.tile(mean, (draws, 1)), True)
    z = mu_rows.detach() + minigen.randn(draws, len(mean), dtype=minigen.float64)
    log_q = vae.gaussian_log_likelihood(z, mu_rows, 0.0)
    c = baseline(z) if callable(baseline) else baseline
    (g,) = minigen.grad(((f(z) - c) * log_q).sum(), [mu_rows])
    return g.numpy()[:, 0], z.numpy()


def test_ch07_ex2_optimal_baseline():
    # f = sum_j z_j^2, z_j ~ N(m, 1): c* = E[f g^2] / E[g^2] = E[f] + 2 (g = eps_1), and the
    # variance at c* is 4 below the variance at c = E[f]: 8m^2 + 6 + (D - 1)(4m^2 + 2).
    m, draws = 0.5, 200_000
    for d in (1, 8):
        mean_f = d * (m * m + 1)
        var_at_mean = 12 * m * m + 10 + (d - 1) * (4 * m * m + 2) - 4 * m * m
        g, z = score_function_draws(lambda t: (t * t).sum(dim=-1), np.full(d, m), draws, mean_f + 2)
        predicted = var_at_mean - 4
        se = math.sqrt(((g - g.mean()) ** 4).mean() - g.var() ** 2) / math.sqrt(draws)
        assert abs(g.var() - predicted) < 4 * se, (d, g.var(), predicted, se)
        f, eps2 = (z**2).sum(1), (z[:, 0] - m) ** 2
        ratio = (f * eps2).mean() / eps2.mean()  # the Monte Carlo c*
        assert abs(ratio - (mean_f + 2)) < 0.05 * (d + 2)
    assert 12 * 0.25 + 10 + 127 * 3 - 1 - 4 == 389  # D = 128: 393 with the baseline E[f], 389 with c*

    # A baseline built from the other coordinates, c(z) = sum_{j>1} z_j^2 + m^2 + 3, stays unbiased
    # (it is independent of eps_1) and removes their noise: the variance is 8 m^2 + 6 whatever D is.
    def others(t):
        return (t * t).sum(dim=-1) - t[:, 0] * t[:, 0] + (m * m + 3)

    g, _ = score_function_draws(lambda t: (t * t).sum(dim=-1), np.full(8, m), draws, others)
    se = math.sqrt(((g - g.mean()) ** 4).mean() - g.var() ** 2) / math.sqrt(draws)
    assert abs(g.var() - (8 * m * m + 6)) < 4 * se and abs(g.mean() - 2 * m) < 4 * g.std() / math.sqrt(draws)


def iwae_objective(model, x, k, eps=None):
    """L_k per example, differentiable: logsumexp_i log w_i - log k, z_i = mu + sigma eps_i."""
    mu, logvar = model.encode(x)
    n = x.shape[0]
    if eps is None:
        eps = minigen.randn(k, *mu.shape, dtype=mu.dtype)
    z = vae.reparameterize(mu.broadcast_to(eps.shape), logvar.broadcast_to(eps.shape), eps)  # (k, N, d)
    out = model.decode(z.reshape(k * n, mu.shape[1]))
    xs = x.broadcast_to((k,) + x.shape).reshape((k * n,) + x.shape[1:])
    log_px_z = model.log_likelihood(xs, out).reshape(k, n)
    log_pz = -0.5 * (z * z + vae.LOG_2PI).sum(dim=-1)
    log_qz = -0.5 * (eps * eps + vae.LOG_2PI).sum(dim=-1) - 0.5 * logvar.sum(dim=-1)
    return minigen.logsumexp(log_px_z + log_pz - log_qz, dim=0) - math.log(k)


def test_ch07_ex3_differentiable_iwae_bound():
    rng = np.random.default_rng(10)
    model = vae.MLPVAE(image_shape=(1, 2, 3), hidden_dim=5, latent_dim=2).double()
    x = f64(rng.random((4, 1, 2, 3)))
    minigen.manual_seed(3)
    ours = iwae_objective(model, x, 5)
    minigen.manual_seed(3)  # iwae_bound draws randn(k, N, d) first when chunk = k: the same eps
    np.testing.assert_allclose(
        ours.detach().numpy(), vae.iwae_bound(model, x, 5, chunk=5).numpy(), atol=1e-12
    )
    eps = f64(rng.normal(size=(5, 4, 2)))
    params = list(model.parameters())
    assert gradcheck(lambda *_: iwae_objective(model, x, 5, eps).sum(), params)
    assert all(g is not None for g in minigen.grad(iwae_objective(model, x, 5, eps).sum(), params))


def test_ch07_ex4_best_diagonal_gap_in_two_dimensions():
    # The notebook's linear-Gaussian model (section 5): Lambda = I + W^T W / s^2.
    rng = np.random.default_rng(4)
    W = rng.normal(size=(5, 2))
    W[:, 1] = 0.6 * W[:, 0] + 0.8 * W[:, 1]
    L = np.eye(2) + W.T @ W / 0.25
    rho = L[0, 1] / math.sqrt(L[0, 0] * L[1, 1])
    gap = 0.5 * (np.log(np.diag(L)).sum() - np.linalg.slogdet(L)[1])
    assert gap == pytest.approx(-0.5 * math.log(1 - rho**2), rel=1e-12)
    assert gap == pytest.approx(0.9535642047, abs=1e-10) and rho == pytest.approx(0.922764, abs=1e-6)
    mean = rng.normal(size=2)  # the KL of the best diagonal q to the posterior is the same gap
    best = gaussian_kl_full(mean, np.diag(1 / np.diag(L)), mean, np.linalg.inv(L))
    assert best == pytest.approx(gap, rel=1e-12)
    for d in range(2, 7):  # 1 / Lambda_jj <= (Lambda^-1)_jj for any positive definite Lambda
        B = rng.normal(size=(d, d + 1))
        P = B @ B.T + 0.1 * np.eye(d)
        assert np.all(1 / np.diag(P) <= np.diag(np.linalg.inv(P)) * (1 + 1e-12))


class GaussianVAE(vae.MLPVAE):
    """The MLP VAE with p(x|z) = N(sigmoid(decode(z)), s^2 I)."""

    def __init__(self, s2, **kwargs):
        super().__init__(**kwargs)
        self.logvar_x = math.log(s2)

    def log_likelihood(self, x, out):
        return vae.gaussian_log_likelihood(x, out.sigmoid(), self.logvar_x)


def test_ch07_ex5_gaussian_decoder_is_a_weighted_squared_error():
    # 2 s^2 ELBO = -||x - m||^2 - 2 s^2 KL - D s^2 log(2 pi s^2): the KL weight is beta = 2 s^2
    # against the squared error (beta = s^2 against the unit-variance Gaussian's ||x - m||^2 / 2).
    rng = np.random.default_rng(11)
    x = f64(rng.random((3, 1, 2, 2)))
    for s2 in (1.0, 0.1, 0.01):
        model = GaussianVAE(s2, image_shape=(1, 2, 2), hidden_dim=4, latent_dim=2).double()
        out, mu, logvar = model(x)
        elbo = (model.log_likelihood(x, out) - vae.gaussian_kl(mu, logvar)).detach().numpy()
        squared = ((x - out.sigmoid()) ** 2).reshape(3, -1).sum(dim=1).detach().numpy()
        kl = vae.gaussian_kl(mu, logvar).detach().numpy()
        np.testing.assert_allclose(
            2 * s2 * elbo, -squared - 2 * s2 * kl - 4 * s2 * math.log(2 * math.pi * s2)
        )


def test_ch07_ex6_annealed_beta_steps():
    # The schedule beta_t = min(1, 2 t / T) reaches 1 at half-way; vae_step's loss is recon + beta KL.
    from minigen.families.vae import vae_step

    total = 10
    schedule = [min(1.0, 2 * t / total) for t in range(1, total + 1)]
    assert schedule[:5] == [0.2, 0.4, 0.6, 0.8, 1.0] and set(schedule[4:]) == {1.0}
    model = vae.MLPVAE(image_shape=(1, 2, 2), hidden_dim=4, latent_dim=2)
    opt = optim.Adam(model.parameters(), lr=1e-3)
    x = minigen.tensor(np.random.default_rng(12).random((6, 1, 2, 2)).astype(np.float32))
    for beta in schedule[:3]:
        out = vae_step(model, opt, x, beta)
        assert out["loss"].item() == pytest.approx(out["recon"].item() + beta * out["kl"].item(), rel=1e-5)


# --- chapter 08 --------------------------------------------------------------------------------


def normal_logpdf(x, mean, std):
    return -0.5 * ((x - mean) / std) ** 2 - math.log(std) - 0.5 * math.log(2 * math.pi)


def test_ch08_ex1_weighted_discriminator_loss():
    # Pointwise, a softplus(-l) + b softplus(l) with a = alpha p, b = (1 - alpha) q is smallest at
    # l* = log(a / b), i.e. D* = alpha p / (alpha p + (1 - alpha) q).
    alpha, x = 0.3, np.linspace(-3, 3.5, 27)
    p, q = np.exp(normal_logpdf(x, 0, 1)), np.exp(normal_logpdf(x, 1.5, 0.5))
    l_star = f64(np.log(alpha * p) - np.log((1 - alpha) * q), True)
    pointwise = f64(alpha * p) * F.softplus(-l_star) + f64((1 - alpha) * q) * F.softplus(l_star)
    (g,) = minigen.grad(pointwise.sum(), [l_star])
    np.testing.assert_allclose(g.numpy(), 0, atol=1e-15)
    d_star = 1 / (1 + np.exp(-l_star.detach().numpy()))
    np.testing.assert_allclose(d_star, alpha * p / (alpha * p + (1 - alpha) * q), rtol=1e-12)
    # discriminator_loss takes a mean over each batch: the two halves weigh 1/2 each whatever the
    # sizes. One mean over the concatenated batch would weigh them N_r / N and N_f / N instead.
    rng = np.random.default_rng(13)
    lr, lf = rng.normal(size=3), rng.normal(size=7)
    loss = gan.discriminator_loss(f64(lr), f64(lf)).item()
    real_half, fake_half = np.logaddexp(0, -lr).mean(), np.logaddexp(0, lf).mean()
    assert loss == pytest.approx(real_half + fake_half, rel=1e-13)
    joint = F.binary_cross_entropy_with_logits(f64(np.r_[lr, lf]), f64(np.r_[np.ones(3), np.zeros(7)])).item()
    assert joint == pytest.approx(0.3 * real_half + 0.7 * fake_half, rel=1e-13)


def test_ch08_ex2_jsd_and_w1_of_two_uniforms():
    # JSD(U[0, 1] || U[a, 1 + a]) = min(|a|, 1) log 2 and W1 = |a|.
    rng = np.random.default_rng(14)
    x = np.linspace(-2.0, 4.0, 600_001)  # the grid contains every breakpoint
    for a in (0.25, 0.5, 0.9, 1.5):
        p, q = ((x >= 0) & (x <= 1)).astype(float), ((x >= a) & (x <= 1 + a)).astype(float)
        m = (p + q) / 2
        with np.errstate(divide="ignore", invalid="ignore"):
            integrand = 0.5 * np.where(p > 0, p * np.log(p / m), 0) + 0.5 * np.where(
                q > 0, q * np.log(q / m), 0
            )
        jsd = np.trapezoid(integrand, x)  # the breakpoints' half-cells cost O(h)
        assert jsd == pytest.approx(min(a, 1) * math.log(2), abs=1e-4)
        w1 = np.trapezoid(np.abs(np.cumsum(p) - np.cumsum(q)) * (x[1] - x[0]), x)  # integral of |F_p - F_q|
        assert w1 == pytest.approx(a, abs=1e-4)
        # Monte Carlo through minigen: -discriminator_loss at the optimal logits is 2 JSD - log 4
        real, fake = rng.random(200_000), a + rng.random(200_000)

        def optimal_logit(t, a=a):  # log p - log q: 0 on the overlap, +-1000 where one density is 0
            return np.where((t >= a) & (t <= 1), 0.0, np.where(t < a, 1e3, -1e3))

        v = -gan.discriminator_loss(f64(optimal_logit(real)), f64(optimal_logit(fake))).item()
        assert (v + math.log(4)) / 2 == pytest.approx(min(a, 1) * math.log(2), abs=0.005)
        assert np.abs(np.sort(real) - np.sort(rng.random(200_000) + a)).mean() == pytest.approx(a, abs=0.005)


def test_ch08_ex3_packed_optimal_discriminator():
    # Packs of m: D* sees p^m and q^m, V(D*) = 2 JSD(p^m || q^m) - log 4. p = N(0, 1), q = N(1.5, 0.5^2).
    grid = np.linspace(-7.0, 7.0, 1401)
    h = grid[1] - grid[0]
    lp, lq = normal_logpdf(grid, 0, 1), normal_logpdf(grid, 1.5, 0.5)

    def jsd(log_p, log_q):  # by quadrature on the grid (sums of cell values times the cell size)
        log_m = np.logaddexp(log_p, log_q) - math.log(2)
        cell = h**log_p.ndim
        return 0.5 * cell * (np.exp(log_p) * (log_p - log_m) + np.exp(log_q) * (log_q - log_m)).sum()

    jsd1 = jsd(lp, lq)
    jsd2 = jsd(lp[:, None] + lp[None], lq[:, None] + lq[None])
    assert jsd1 == pytest.approx(0.35118980, abs=1e-7) and jsd1 < jsd2 < math.log(2)
    rng = np.random.default_rng(15)
    n, pack = 400_000, gan.Pack(2)
    real, fake = f64(rng.normal(0, 1, (n, 1))), f64(rng.normal(1.5, 0.5, (n, 1)))

    def packed_logit(x):  # log p^m - log q^m of each pack: the sum of the members' log ratios
        packed = pack(x).numpy()
        return f64((normal_logpdf(packed, 0, 1) - normal_logpdf(packed, 1.5, 0.5)).sum(axis=1))

    v = -gan.discriminator_loss(packed_logit(real), packed_logit(fake)).item()
    assert v == pytest.approx(2 * jsd2 - math.log(4), abs=0.005)
    # p_g = p_data: every pack's log ratio is 0, D* = 1/2, and the loss is log 4
    assert gan.discriminator_loss(f64(np.zeros(8)), f64(np.zeros(8))).item() == pytest.approx(math.log(4))


def test_ch08_ex4_two_dimensional_critic_turns_round():
    rng = np.random.default_rng(16)
    delta, lam = 1.0, 10.0
    real = f64(rng.normal(size=(16, 2)))
    fake = real + f64([delta, 0.0])
    critic = nn.Sequential(nn.Linear(2, 1, bias=False), nn.Flatten(0)).double()
    w = critic[0].weight

    def critic_loss():
        wasserstein = gan.discriminator_loss(critic(real), critic(fake), "wasserstein")
        return wasserstein + lam * gan.gradient_penalty(critic, real, fake)

    for r, phi in [(1.0, 0.3), (1.0, 2.0), (0.5, 1.0), (1.7, -0.4)]:
        w.data[...] = r * np.array([[math.cos(phi), math.sin(phi)]])
        expected = r * delta * math.cos(phi) + lam * (r - 1) ** 2
        assert critic_loss().item() == pytest.approx(expected, rel=1e-12, abs=1e-12)
    w.data[...] = [[math.cos(0.05), math.sin(0.05)]]  # start almost at the wrong direction phi = 0
    opt = optim.SGD(critic.parameters(), lr=0.05)
    norms = []
    for _ in range(400):
        opt.zero_grad()
        critic_loss().backward()
        opt.step()
        norms.append(float(np.linalg.norm(w.data)))
    phi = math.atan2(w.data[0, 1], w.data[0, 0])
    assert min(norms) > 1 - delta / (2 * lam) - 1e-3  # the norm never comes near 0
    assert abs(phi) == pytest.approx(math.pi, abs=1e-3)
    assert norms[-1] == pytest.approx(1 + delta / (2 * lam), abs=1e-4)  # the overshoot of section 9.4


def spectral_bound(module):
    """(prod of spectral norms, prod of c sqrt(m n)) over the Linear layers of a clipped critic."""
    layers = [m for m in module.modules() if isinstance(m, nn.Linear)]
    spectral = math.prod(np.linalg.norm(m.weight.detach().numpy(), 2) for m in layers)
    frobenius = math.prod(0.01 * math.sqrt(m.weight.shape[0] * m.weight.shape[1]) for m in layers)
    return spectral, frobenius


def test_ch08_ex5_clipped_ring_critic_is_lipschitz():
    from minigen import data, families

    hidden = families.gan.POINTS_HIDDEN
    model = gan.MLPGAN(data_shape=(2,), noise_dim=8, hidden_dims=hidden, output="linear", pack=4)
    g_opt, d_opt = (
        optim.Adam(m.parameters(), betas=(0.0, 0.9)) for m in (model.generator, model.discriminator)
    )
    ring = data.load("ring", "train")
    for start in range(0, 3 * 128, 128):  # a few clipped critic steps (gan_step clips after each)
        real = minigen.tensor(ring.inputs[start : start + 128])
        families.gan.gan_step(model, g_opt, d_opt, real, "wasserstein")
    spectral, frobenius = spectral_bound(model.discriminator)
    assert frobenius == pytest.approx(0.01**4 * 32 * 128 * 128 * math.sqrt(128))
    assert frobenius == pytest.approx(0.0593, abs=1e-4)
    assert spectral <= frobenius
    points = minigen.tensor(ring.inputs[:2000], requires_grad=True)
    (g,) = minigen.grad(model.discriminator(points).sum(), [points])
    norms = np.linalg.norm(g.numpy().reshape(-1, 8), axis=1)  # one gradient per pack of 4 points
    assert norms.max() <= spectral * (1 + 1e-5)


# --- chapter 09 --------------------------------------------------------------------------------


def random_gaussian(rng, d):
    B = rng.normal(size=(d, d))
    return rng.normal(size=d), B @ B.T / d + 0.1 * np.eye(d)


def test_ch09_ex1_frechet_triangle_inequality():
    # sqrt(d^2) is the 2-Wasserstein distance between the fitted Gaussians, a metric: so
    # |sqrt(d(V, T)) - sqrt(d(G, T))| <= sqrt(d(V, G)) <= sqrt(d(V, T)) + sqrt(d(G, T)).
    from minigen import metrics

    rng = np.random.default_rng(17)
    for _ in range(20):
        a, b, c = (random_gaussian(rng, 6) for _ in range(3))
        ab, bc, ac = (
            math.sqrt(metrics.gaussian_frechet_distance(*u, *v)) for u, v in [(a, b), (b, c), (a, c)]
        )
        assert ac <= ab + bc + 1e-9 and abs(ab - bc) <= ac + 1e-9
    vt, gt, vg = 67.65, 8.05, 74.19  # the solution's measured distances (VAE, DCGAN, test set)
    assert abs(math.sqrt(vt) - math.sqrt(gt)) <= math.sqrt(vg) <= math.sqrt(vt) + math.sqrt(gt)


def test_ch09_ex2_mean_term_of_the_noise_floor():
    # Independent samples: E||mean_a - mean_b||^2 = tr S_a / N_a + tr S_b / N_b (equal means). A
    # subset of n drawn without replacement from a pool of N:
    # E||mean_sub - c||^2 = ||mean_pool - c||^2 + tr S / n * (N - n) / (N - 1).
    rng = np.random.default_rng(18)
    pool = rng.normal(size=(300, 5)) * np.arange(1, 6)
    c = rng.normal(size=5)
    n, trace = 60, np.trace(np.cov(pool, rowvar=False))
    draws = np.array(
        [((pool[rng.choice(300, n, replace=False)].mean(0) - c) ** 2).sum() for _ in range(4000)]
    )
    predicted = ((pool.mean(0) - c) ** 2).sum() + trace / n * (300 - n) / 299
    assert abs(draws.mean() - predicted) < 4 * draws.std() / math.sqrt(len(draws))
    digits_prediction = 155.53 / 360 + 153.75 / 360  # the traces of the digits' feature covariances
    assert digits_prediction == pytest.approx(0.859, abs=5e-4)


def test_ch09_ex3_learned_pixel_variance():
    # For a fixed mean, d/dlogvar of log N(x; m, e^logvar) summed over examples vanishes at
    # logvar = log mean (x - m)^2: the learned variance is the mean squared residual, and a pixel
    # that the mean predicts exactly has no finite optimum (log p -> +inf as logvar -> -inf).
    rng = np.random.default_rng(19)
    x, mean = f64(rng.random((50, 1, 2, 2))), f64(rng.random((50, 1, 2, 2)))
    residual2 = ((x.numpy() - mean.numpy()) ** 2).mean(0, keepdims=True)
    logvar = f64(np.log(residual2), True)
    (g,) = minigen.grad(vae.gaussian_log_likelihood(x, mean, logvar).sum(), [logvar])
    np.testing.assert_allclose(g.numpy(), 0, atol=1e-12)
    exact = [vae.gaussian_log_likelihood(x, x, lv).mean().item() for lv in (-5.0, -10.0, -20.0)]
    assert exact[0] < exact[1] < exact[2] and exact[2] - exact[1] == pytest.approx(20.0)  # 4 pixels * 10 / 2
    floor = math.log(1e-3)  # a floor by clamping: below it the log-variance gets no gradient
    raw = f64(np.full((1, 1, 2, 2), -12.0), True)
    (g,) = minigen.grad(vae.gaussian_log_likelihood(x, x, minigen.clamp(raw, floor, None)).sum(), [raw])
    assert np.all(g.numpy() == 0)


def test_ch09_ex4_best_response_to_a_fixed_discriminator_is_a_point():
    # Chapter 09, section 6.1: against a fixed D the generator loss is smallest when every z goes to
    # D's favourite point; here D's logit -||x - a||^2 peaks at a, and the samples collapse onto it.
    rng = np.random.default_rng(20)
    a = np.array([1.5, -0.5])
    G = nn.Sequential(nn.Linear(4, 32), nn.LeakyReLU(0.2), nn.Linear(32, 2)).double()
    opt = optim.Adam(G.parameters(), lr=1e-2)
    z = f64(rng.normal(size=(256, 4)))
    spread_before = float(G(z).detach().numpy().std(0).sum())
    for _ in range(300):
        x = G(z)
        logits = -((x - f64(a)) ** 2).sum(dim=1)
        loss = gan.generator_loss(logits)
        opt.zero_grad()
        loss.backward()
        opt.step()
    samples = G(z).detach().numpy()
    assert np.abs(samples.mean(0) - a).max() < 0.05 and samples.std(0).sum() < 0.1 * spread_before


def play_bilinear(alternating, betas, lr=0.1, steps=1000):
    """min_x max_y xy with Adam for both players; the radius sqrt(x^2 + y^2) after each step."""
    x = minigen.tensor([1.0], dtype=minigen.float64, requires_grad=True)
    y = minigen.tensor([0.0], dtype=minigen.float64, requires_grad=True)
    opt_x, opt_y = optim.Adam([x], lr=lr, betas=betas), optim.Adam([y], lr=lr, betas=betas, maximize=True)
    radii = []
    for _ in range(steps):
        if alternating:  # y moves first, then x against the new y
            for opt in (opt_y, opt_x):
                opt.zero_grad()
                (x * y).sum().backward()
                opt.step()
        else:  # both gradients at the current point
            opt_x.zero_grad()
            opt_y.zero_grad()
            (x * y).sum().backward()
            opt_x.step()
            opt_y.step()
        radii.append(math.hypot(x.item(), y.item()))
    return np.array(radii)


def test_ch09_ex5_bilinear_game_with_adam():
    r = {(alt, b1): play_bilinear(alt, (b1, 0.999)) for alt in (False, True) for b1 in (0.9, 0.5, 0.0)}
    # beta1 = 0, simultaneous: steps of size about lr sqrt(2) / r (v_hat ~ r^2 / 2), so
    # r_t^2 grows by 2 lr^2 per step: r_t ~ sqrt(1 + 2 lr^2 t), 4.58 at t = 1000.
    assert r[False, 0.0][-1] == pytest.approx(math.sqrt(1 + 2 * 0.01 * 1000), rel=0.06)
    for alt in (False, True):  # momentum pushes outwards: the larger beta1, the larger the orbit
        assert r[alt, 0.9][-1] > r[alt, 0.5][-1] > r[alt, 0.0][-1]
    assert r[False, 0.9][-1] > 15 and r[True, 0.9][-1] > 15  # diverging, yet far slower than SGD's 1.01^500
    assert r[True, 0.0][-1] < 0.4  # alternating, no momentum: spirals in
