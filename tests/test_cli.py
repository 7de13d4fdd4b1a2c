"""The `minigen` command: gradcheck prints a row per catalogued check and fails loudly; train,
sample and evaluate work end to end on tiny runs; every command has --help; bad option values
are clear errors."""

import json
import subprocess
import sys

import pytest

import minigen
from minigen import checks, cli
from minigen.autograd import Function
from minigen.checks import Case


def test_gradcheck_command_prints_a_passing_row_for_every_check(capsys):
    assert cli.main(["gradcheck", "--quiet"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.endswith("  yes")]
    assert len(rows) == len(checks.CASES)
    for case in checks.CASES:
        assert any(line.startswith(case.name + " ") for line in rows), case.name
    assert f"{len(checks.CASES)} of {len(checks.CASES)} checks passed" in out


class _WrongSquare(Function):
    """x^2 with a deliberately wrong VJP (gy * x instead of 2 gy x)."""

    def forward(self, x):
        return x * x

    def backward(self, gy):
        return gy * self.inputs[0]


def test_gradcheck_command_exits_nonzero_and_shows_the_table_on_a_wrong_gradient(monkeypatch, capsys):
    wrong = Case("wrong square", lambda x: _WrongSquare()(x), (((2, 2), "real"),), (_WrongSquare,))
    monkeypatch.setattr(cli, "CASES", (checks.CASES[0], wrong))
    assert cli.main(["gradcheck", "--quiet"]) == 1
    out = capsys.readouterr().out
    assert any(line.startswith("wrong square") and line.endswith("NO") for line in out.splitlines())
    assert "analytic" in out and "numeric" in out
    assert "1 of 2 checks passed" in out


def test_gradcheck_command_filters_by_name(capsys):
    assert cli.main(["gradcheck", "--quiet", "--only", "softmax"]) == 0
    out = capsys.readouterr().out
    assert "softmax" in out and "log_softmax" in out and "matmul" not in out


def test_gradcheck_command_reports_a_missing_gpu_clearly(monkeypatch, capsys):
    monkeypatch.setattr(minigen.backend, "_cupy", None)
    assert cli.main(["gradcheck", "--device", "cuda"]) == 2
    assert "cupy-cuda12x" in capsys.readouterr().err


def test_console_script_runs_as_a_module():
    done = subprocess.run(
        [sys.executable, "-m", "minigen", "gradcheck", "--quiet", "--only", "sqrt"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "1 of 1 checks passed" in done.stdout


# --- train, sample, evaluate ----------------------------------------------------------------------


def test_train_sample_and_evaluate_a_tiny_vae(tmp_path, capsys):
    out = tmp_path / "run"
    argv = [
        "train",
        "vae",
        "--epochs",
        "1",
        "--limit",
        "64",
        "--batch-size",
        "32",
        "--out",
        str(out),
        "--quiet",
    ]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "trained vae on digits for 1 epochs" in printed and "samples.png" in printed
    assert cli.main(["sample", str(out), "--n", "16"]) == 0
    assert (out / "samples-drawn.png").exists()
    assert cli.main(["evaluate", str(out), "--k", "3", "--limit", "10", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["examples"] == 10 and result["test_negative_elbo"] > 0


@pytest.mark.parametrize("command", ["train", "sample", "evaluate", "gradcheck"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: minigen " + command in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["train", "vae", "--data", "cifar"],
            "invalid choice: 'cifar' (choose from",
        ),
        (["train", "flow"], "invalid choice: 'flow'"),
        (["train", "vae", "--epochs", "0"], "argument --epochs: must be positive, got 0"),
        (["train", "vae", "--lr", "fast"], "argument --lr: 'fast' is not a float"),
    ],
)
def test_bad_option_values_are_clear_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert message in error
    if "--data" in argv:  # the known data sets are listed
        assert all(name in error for name in ("digits", "mnist", "fashion-mnist", "ring"))


def test_errors_after_parsing_are_one_line_and_exit_2(tmp_path, capsys):
    assert cli.main(["train", "vae", "--data", "ring", "--out", str(tmp_path), "--quiet"]) == 2
    assert "minigen train: error: the ring data set is 2-D points" in capsys.readouterr().err
    assert cli.main(["sample", str(tmp_path / "missing")]) == 2
    assert "no checkpoint.npz in" in capsys.readouterr().err
