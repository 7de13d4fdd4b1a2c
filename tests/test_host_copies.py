"""No silent device-to-host copies in a training step (issue: GPU).

The steps run on ``device="cuda"`` backed by the stand-in module of ``stand_in_gpu``, which
raises on every conversion of a device array to a host value. A step that passes here never
synchronises with the host on a real GPU except where the caller reads a reported value. The
stand-in computes with NumPy, so each step must also give exactly the CPU's numbers.
"""

import numpy as np
import pytest
import stand_in_gpu as gpu

import minigen
from minigen import backend
from minigen.families.gan import gan_step
from minigen.families.vae import vae_step
from minigen.generative.gan import DCGAN, MLPGAN
from minigen.generative.vae import MLPVAE, ConvVAE
from minigen.optim import Adam


@pytest.fixture
def stand_in(monkeypatch):
    gpu.install(monkeypatch)


def test_the_stand_in_refuses_host_copies(stand_in):
    x = minigen.randn(3, device="cuda")
    assert x.device == "cuda" and isinstance(x.data, gpu.StandInArray)
    y = (x * 2).exp().sum()
    assert isinstance(y.data, gpu.StandInArray)
    with gpu.forbid_host_copies():
        for convert in (np.asarray, float, bool, lambda a: a.item(), lambda a: a.tolist(), backend.to_host):
            with pytest.raises(gpu.HostCopy):
                convert(y.data)
        with pytest.raises(gpu.HostCopy):
            y.item()  # the library's own reporting path is caught too
    assert y.item() == pytest.approx(float(np.exp(2 * x.numpy()).sum()), rel=1e-6)


def _run(device, build, step, batches):
    """Build the model after seeding, move it to ``device`` and run ``step`` on each batch;
    the losses of the last step and the final parameters, as host arrays."""
    minigen.manual_seed(0)
    model, optimizers = build()
    model.to(device)
    for batch in batches:
        x = minigen.tensor(batch, device=device)
        if device == "cuda":
            with gpu.forbid_host_copies():
                losses = step(model, optimizers, x)
        else:
            losses = step(model, optimizers, x)
    params = [p.detach().numpy() for p in model.parameters()]
    return {k: v.item() for k, v in losses.items()}, params


def _vae(cls, **kwargs):
    def build():
        model = cls((1, 8, 8), latent_dim=3, **kwargs)
        return model, Adam(model.parameters(), lr=1e-2)

    return build


def _gan(make, betas=(0.5, 0.999)):
    def build():
        model = make()
        return model, (
            Adam(model.generator.parameters(), lr=1e-3, betas=betas),
            Adam(model.discriminator.parameters(), lr=1e-3, betas=betas),
        )

    return build


CASES = {
    "mlp-vae": (_vae(MLPVAE, hidden_dim=16), lambda m, o, x: vae_step(m, o, x)),
    "conv-vae": (_vae(ConvVAE), lambda m, o, x: vae_step(m, o, x, beta=2.0)),
    "dcgan": (_gan(lambda: DCGAN((1, 8, 8), noise_dim=4, width=4)), lambda m, o, x: gan_step(m, *o, x)),
    "wgan-gp": (
        _gan(lambda: MLPGAN((1, 8, 8), noise_dim=4, hidden_dims=(16,), output="sigmoid"), betas=(0.0, 0.9)),
        lambda m, o, x: gan_step(m, *o, x, loss="wasserstein", gp_weight=10.0),
    ),
    "wgan-clipped": (
        _gan(lambda: MLPGAN((1, 8, 8), noise_dim=4, hidden_dims=(16,), output="sigmoid")),
        lambda m, o, x: gan_step(m, *o, x, loss="wasserstein", update_generator=False),
    ),
    "hinge": (
        _gan(lambda: MLPGAN((1, 8, 8), noise_dim=4, hidden_dims=(16,), output="sigmoid")),
        lambda m, o, x: gan_step(m, *o, x, loss="hinge"),
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_training_steps_copy_nothing_to_the_host_and_match_the_cpu(stand_in, name):
    build, step = CASES[name]
    rng = np.random.default_rng(1)
    batches = [rng.random((6, 1, 8, 8), dtype=np.float32) for _ in range(3)]
    losses_gpu, params_gpu = _run("cuda", build, step, batches)
    losses_cpu, params_cpu = _run("cpu", build, step, batches)
    assert losses_gpu == losses_cpu
    for a, b in zip(params_gpu, params_cpu):
        np.testing.assert_array_equal(a, b)


def test_checkpoints_saved_on_the_device_load_on_the_cpu_and_back(stand_in, tmp_path):
    build, step = CASES["dcgan"]
    minigen.manual_seed(0)
    model, optimizers = build()
    model.to("cuda")
    step(model, optimizers, minigen.rand(6, 1, 8, 8, device="cuda"))
    minigen.save(model.state_dict(), tmp_path / "model.npz")
    saved = {k: v.numpy() for k, v in model.state_dict().items()}

    on_cpu, _ = build()
    on_cpu.load_state_dict(minigen.load(tmp_path / "model.npz"))
    back_on_device, _ = build()
    back_on_device.to("cuda")
    back_on_device.load_state_dict(on_cpu.state_dict())
    for name, value in saved.items():
        np.testing.assert_array_equal(on_cpu.state_dict()[name].numpy(), value)
        restored = back_on_device.state_dict()[name]
        assert restored.device == "cuda"
        np.testing.assert_array_equal(restored.numpy(), value)
