"""Training runs end to end on tiny settings: outputs, reproducibility, and resuming after a kill.

A "kill" is simulated by a callback that raises after n steps, in the middle of an epoch,
before anything more is written: exactly as if the process had died there.
"""

import json

import numpy as np
import pytest

import minigen
from minigen import data, families, metrics, training
from minigen.training import TrainConfig


def tiny(model, out, **overrides):
    settings = {"model": model, "data": "digits", "epochs": 3, "batch_size": 16, "limit": 64, "out": str(out)}
    if model in ("gan", "dcgan", "cgan"):
        settings["latent_dim"] = 8
    settings.update(overrides)
    return TrainConfig(**settings)


class Killed(Exception):
    pass


class KillAfter(training.Callback):
    """Stands in for the process dying right after optimisation step ``steps``."""

    def __init__(self, steps):
        self.steps = steps

    def on_step(self, step):
        if step == self.steps:
            raise Killed


def parameters(model):
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def assert_same_parameters(a, b):
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


RESUMED = {"gan": {"data": "ring", "limit": 96}}  # the MLP GAN on its own data set, the ring


@pytest.mark.parametrize("model", training.MODELS)
def test_resumed_run_ends_with_the_parameters_of_an_uninterrupted_run(tmp_path, model):
    overrides = RESUMED.get(model, {})
    whole, _ = training.fit(tiny(model, tmp_path / "whole", **overrides), progress=False)
    # Killed in the middle of the second epoch (4 steps per epoch), then resumed from the
    # checkpoint written after the first.
    config = tiny(model, tmp_path / "killed", **overrides)
    steps_per_epoch = 64 // 16 if overrides.get("data") != "ring" else 96 // 16
    with pytest.raises(Killed):
        training.fit(config, progress=False, callbacks=[KillAfter(steps_per_epoch + 2)])
    saved = json.loads((tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()[-1])
    assert saved["epoch"] == 1
    resumed, records = training.fit(config, resume=True, progress=False)
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert_same_parameters(parameters(resumed), parameters(whole))


def test_same_seed_same_run_and_other_seed_another(tmp_path):
    first, _ = training.fit(tiny("vae", tmp_path / "a", epochs=1), progress=False)
    again, _ = training.fit(tiny("vae", tmp_path / "b", epochs=1), progress=False)
    other, _ = training.fit(tiny("vae", tmp_path / "c", epochs=1, seed=1), progress=False)
    assert_same_parameters(parameters(first), parameters(again))
    assert not np.array_equal(parameters(first)["fc1.weight"], parameters(other)["fc1.weight"])


def test_a_vae_run_writes_its_files_and_learns(tmp_path):
    out = tmp_path / "run"
    _, records = training.fit(tiny("vae", out, epochs=4, limit=256), progress=False)
    names = {p.name for p in out.iterdir()}
    expected = {
        "config.json",
        "metrics.jsonl",
        "checkpoint.npz",
        "samples.png",
        "losses.png",
        "reconstructions.png",
    }
    assert expected <= names
    assert sorted(p.name for p in (out / "epochs").iterdir()) == [
        f"samples-{e:03d}.png" for e in (1, 2, 3, 4)
    ]
    assert {"epoch", "step", "loss", "recon", "kl", "test_loss", "seconds"} <= records[0].keys()
    assert records[-1]["loss"] < records[0]["loss"]  # it learns
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == "vae" and config["lr"] == 1e-3
    # the MLP VAE's own defaults on the digits (chapter 07, section 8)
    assert (config["latent_dim"], config["likelihood"], config["hidden_layers"]) == (4, "gaussian", 2)


def test_a_two_dimensional_latent_gets_its_manifold_drawn(tmp_path):
    training.fit(tiny("vae", tmp_path, epochs=1, latent_dim=2), progress=False)
    assert (tmp_path / "manifold.png").exists()


def test_ring_gan_writes_its_scatter_and_gan_losses(tmp_path):
    out = tmp_path / "ring"
    _, records = training.fit(tiny("gan", out, data="ring", epochs=2, limit=128), progress=False)
    assert (out / "ring.png").exists() and not (out / "reconstructions.png").exists()
    assert {"d_loss", "g_loss"} <= records[0].keys()


def test_wasserstein_defaults_to_gradient_penalty_and_five_critic_steps():
    config = TrainConfig(model="gan", loss="wasserstein").resolved()
    assert config.gp_weight == 10.0 and config.n_critic == 5
    plain = TrainConfig(model="gan").resolved()
    assert plain.gp_weight == 0.0 and plain.n_critic == 1 and plain.lr == 2e-4 and plain.latent_dim == 100


def test_ring_defaults_pack_four_and_cut_the_learning_rate_twice():
    config = TrainConfig(model="gan", data="ring", epochs=10).resolved()
    assert config.pack == 4 and config.lr_milestones == [5, 8] and config.latent_dim == 8
    assert TrainConfig(model="gan", data="mnist").resolved().pack == 1
    assert TrainConfig(model="gan", data="ring", lr_milestones=[7, 3]).resolved().lr_milestones == [3, 7]
    assert config.lr == 1e-3


@pytest.mark.parametrize("data_name, pack", [("ring", None), ("ring", 2), ("ring", 1), ("digits", 2)])
def test_the_built_gan_packs_as_configured(data_name, pack):
    """The config's pack reaches the model: its discriminator judges packs of that many samples."""
    config = TrainConfig(model="gan", data=data_name, pack=pack, epochs=1).resolved()
    shape = (2,) if data_name == "ring" else (1, 8, 8)
    model = training.build_model(config, shape)
    assert model.pack == config.pack
    with minigen.no_grad():
        logits = model.discriminator(minigen.randn(8, *shape))
    assert logits.shape == (8 // config.pack,)


def test_a_family_s_data_defaults_come_before_the_data_set_s_and_yield_to_explicit_settings(monkeypatch):
    monkeypatch.setenv("MINIGEN_FAST", "0")  # CI sets it for the notebooks; it would cap the epochs

    def key(config):
        c = config.resolved()
        return c.epochs, c.batch_size, c.latent_dim, c.likelihood, c.hidden_layers

    assert key(TrainConfig()) == (100, 32, 4, "gaussian", 2)  # the MLP VAE on the digits
    assert key(TrainConfig(data="mnist")) == (10, 128, 20, "bernoulli", 1)  # PyTorch's example
    assert key(TrainConfig(model="conv-vae")) == (60, 128, 20, "bernoulli", None)  # DATA_DEFAULTS only
    explicit = TrainConfig(epochs=7, batch_size=64, latent_dim=3, likelihood="bernoulli", hidden_layers=1)
    assert key(explicit) == (7, 64, 3, "bernoulli", 1)
    assert TrainConfig(model="dcgan").resolved().batch_size == training.BATCH_SIZE


def test_fast_mode_shortens_default_epochs_only(monkeypatch):
    monkeypatch.setenv("MINIGEN_FAST", "1")
    assert TrainConfig().resolved().epochs == training.FAST_EPOCHS
    assert TrainConfig(epochs=5).resolved().epochs == 5
    monkeypatch.setenv("MINIGEN_FAST", "0")
    assert TrainConfig(model="conv-vae").resolved().epochs == training.DATA_DEFAULTS["digits"]["epochs"]
    assert TrainConfig().resolved().epochs == families.get("vae").data_defaults["digits"]["epochs"]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"model": "diffusion"},
            "unknown model 'diffusion'; choose one of vae, conv-vae, gan, dcgan, cvae, cgan",
        ),
        (
            {"data": "cifar"},
            "unknown data set 'cifar'; the known ones are digits, mnist, fashion-mnist, ring",
        ),
        ({"data": "ring"}, "vae models images (C, H, W); 'ring' holds examples of shape (2,)"),
        ({"model": "dcgan", "data": "ring"}, "dcgan models images (C, H, W); 'ring' holds examples"),
        ({"model": "gan", "loss": "least-squares"}, "unknown GAN loss 'least-squares'"),
        ({"loss": "hinge"}, "loss does not apply to 'vae' (vae reads beta, likelihood, hidden_layers)"),
        ({"likelihood": "poisson"}, "likelihood must be one of bernoulli, gaussian, got 'poisson'"),
        ({"hidden_layers": 0}, "hidden-layers must be at least 1, got 0"),
        (
            {"model": "conv-vae", "hidden_layers": 2},
            "hidden-layers does not apply to 'conv-vae' (conv-vae reads beta, likelihood)",
        ),
        ({"model": "dcgan", "likelihood": "gaussian"}, "likelihood does not apply to 'dcgan'"),
        ({"model": "gan", "beta": 2.0}, "beta does not apply to 'gan'"),
        ({"beta": -1.0}, "beta must be non-negative, got -1.0"),
        ({"model": "gan", "gp_weight": -1.0}, "gp-weight must be non-negative"),
        ({"model": "dcgan", "r1_weight": -0.5}, "r1-weight must be non-negative, got -0.5"),
        ({"model": "vae", "r1_weight": 1.0}, "r1-weight does not apply to 'vae' (vae reads beta, likelihood"),
        ({"model": "dcgan", "n_critic": 0}, "n-critic must be at least 1, got 0"),
        ({"epochs": 0}, "epochs must be at least 1, got 0"),
        ({"batch_size": -3}, "batch-size must be at least 1"),
        ({"lr": 0.0}, "lr must be positive"),
        ({"limit": 0}, "limit must be at least 1"),
        ({"pack": 2}, "pack does not apply to 'vae'"),
        (
            {"model": "dcgan", "pack": 2},
            "pack does not apply to 'dcgan' (dcgan reads loss, gp_weight, r1_weight, n_critic)",
        ),
        ({"model": "gan", "pack": 0}, "pack must be at least 1, got 0"),
        ({"model": "gan", "batch_size": 5, "pack": 2}, "batch-size 5 must be a multiple of pack 2"),
        ({"lr_milestones": [0]}, "lr-milestones must be positive epochs"),
    ],
)
def test_bad_settings_are_clear_errors(settings, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TrainConfig(**settings).resolved()


def test_resuming_with_other_settings_is_refused(tmp_path):
    training.fit(tiny("vae", tmp_path, epochs=1), progress=False)
    with pytest.raises(ValueError, match=r"other settings: lr \(0.001 -> 0.01\)"):
        training.fit(tiny("vae", tmp_path, epochs=2, lr=0.01), resume=True, progress=False)
    # More epochs is a continuation, not a new run.
    _, records = training.fit(tiny("vae", tmp_path, epochs=2), resume=True, progress=False)
    assert [r["epoch"] for r in records] == [1, 2]


def test_load_run_and_evaluate_a_vae(tmp_path):
    training.fit(tiny("vae", tmp_path, epochs=1), progress=False)
    config, model, epoch = training.load_run(tmp_path)
    assert config.model == "vae" and not model.training and epoch == 1
    result = training.evaluate(tmp_path, k=4, limit=20)
    assert result["examples"] == 20 and result["epochs"] == 1
    # The IWAE bound is tighter than the ELBO: its negative is smaller (up to sampling noise).
    assert result["iwae_nll_k4"] <= result["test_negative_elbo"] + 1.0
    assert result["frechet_distance"] > 0 and 0 <= result["class_coverage"] <= 1
    assert 0 <= result["confident_samples"] <= 1
    # The share of test images whose reconstruction the metric classifier puts in their class.
    classifier, _ = metrics.load_or_train_classifier("digits")
    test_set = data.load("digits", "test").first(20)
    rebuilt = model.reconstruct(minigen.tensor(test_set.inputs)).numpy()
    agreement = metrics.class_agreement(classifier, rebuilt, test_set.labels)
    assert result["reconstruction_agreement"] == agreement
    assert training.evaluate(tmp_path, k=4, limit=20) == result  # seeded: the same numbers again
    with pytest.raises(FileNotFoundError, match="no checkpoint.npz in"):
        training.load_run(tmp_path / "nothing")


def test_evaluate_a_ring_gan(tmp_path):
    training.fit(tiny("gan", tmp_path, data="ring", epochs=1), progress=False)
    result = training.evaluate(tmp_path, limit=200)
    assert 0 <= result["modes_covered"] <= 8 and 0.0 <= result["high_quality"] <= 1.0


def test_training_runs_on_each_device(tmp_path, device):
    model, _ = training.fit(tiny("dcgan", tmp_path, epochs=1, device=device), progress=False)
    assert {p.device for p in model.parameters()} == {device}
    assert minigen.load(tmp_path / "checkpoint.npz")["model"]["generator.0.weight"].device == "cpu"


def test_running_means_average_each_loss_over_the_steps_that_computed_it():
    class Bar:
        def __init__(self):
            self.updates, self.postfix = 0, None

        def update(self, n):
            self.updates += n

        def set_postfix(self, values):
            self.postfix = values

    bar = Bar()
    running = training._Running(bar, steps=2)
    running.add(d_loss=minigen.tensor(1.0))
    running.add(d_loss=minigen.tensor(3.0), g_loss=minigen.tensor(5.0))  # a generator step every 2nd step
    assert running.means() == {"d_loss": 2.0, "g_loss": 5.0}
    assert bar.updates == 2 and bar.postfix == {"d_loss": "2", "g_loss": "5"}  # refreshed at the last step
