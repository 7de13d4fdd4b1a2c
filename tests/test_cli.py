"""The `minigen` command: gradcheck prints a row per catalogued check and fails loudly; train,
sample and evaluate work end to end on tiny runs; every command has --help; bad option values
are clear errors."""

import argparse
import json
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
        (["train", "vae", "--epochs", "0"], "argument --epochs: must be above 0, got 0"),
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
    assert "minigen train: error: vae models images (C, H, W); 'ring' holds" in capsys.readouterr().err
    assert cli.main(["sample", str(tmp_path / "missing")]) == 2
    assert "no checkpoint.npz in" in capsys.readouterr().err


# --- every flag, with a wrong type or out of range ----------------------------------------------

A_RUN = "runs/none"  # parsing fails before the run directory is read
BAD_VALUES = {
    "train": (
        ["train", "vae"],
        {
            "--data": ["cifar", ""],
            "--epochs": ["0", "-1", "2.5", "many", "nan"],
            "--batch-size": ["0", "-8", "1e3", ""],
            "--latent-dim": ["0", "x"],
            "--lr": ["0", "-1e-3", "fast", "inf", "nan"],
            "--lr-milestones": ["0", "half", "-2"],
            "--limit": ["0", "ten"],
            "--device": ["tpu", "gpu"],
            "--seed": ["-1", "1.5", "seed"],
            "--beta": ["-0.5", "heavy", "inf"],
            "--likelihood": ["poisson", "Gaussian"],
            "--hidden-layers": ["0", "-1", "two"],
            "--loss": ["least-squares"],
            "--gp-weight": ["-10", "x", "nan"],
            "--r1-weight": ["-1", "-0.1", "strong", "inf", "nan"],
            "--n-critic": ["0", "five"],
            "--pack": ["0", "-4", "two"],
        },
    ),
    "sample": (["sample", A_RUN], {"--n": ["0", "-3", "many"], "--seed": ["-2", "x"], "--device": ["tpu"]}),
    "evaluate": (["evaluate", A_RUN], {"--k": ["0", "1.5"], "--limit": ["0", "-1"], "--device": ["tpu"]}),
    "gradcheck": (["gradcheck"], {"--device": ["tpu"], "--seed": ["-1", "zero"]}),
}
FLAG_CASES = [
    pytest.param(base + [flag, value], flag, id=f"{command} {flag} {value!r}")
    for command, (base, flags) in BAD_VALUES.items()
    for flag, values in flags.items()
    for value in values
]


@pytest.mark.parametrize(("argv", "flag"), FLAG_CASES)
def test_every_flag_with_a_wrong_type_or_range_is_one_line_exit_2(argv, flag, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"minigen {argv[0]}: error: argument {flag}"), lines[0]
    assert "Traceback" not in captured.err and captured.out == ""


def test_every_flag_of_every_command_is_swept():
    """A new flag must be added to BAD_VALUES (or here, when no value of it is wrong)."""
    takes_anything = {"--out", "--output", "--only", "--run"}
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    for command, sub in commands.items():
        flags = {s for a in sub._actions if a.option_strings and a.nargs != 0 for s in a.option_strings}
        swept = set(BAD_VALUES[command][1])
        assert flags - takes_anything == swept, command


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "vae", "--pack", "2"], "pack does not apply to 'vae'"),
        (["train", "dcgan", "--beta", "2"], "beta does not apply to 'dcgan'"),
        (["train", "gan", "--batch-size", "10", "--pack", "4"], "batch-size 10 must be a multiple of pack 4"),
    ],
)
def test_settings_that_do_not_fit_the_family_are_one_line_exit_2(argv, message, tmp_path, capsys):
    assert cli.main([*argv, "--out", str(tmp_path), "--quiet"]) == 2
    captured = capsys.readouterr()
    assert (
        captured.err.strip().splitlines() == [f"minigen train: error: {message}"] or message in captured.err
    )
    assert len(captured.err.strip().splitlines()) == 1 and "Traceback" not in captured.err


@settings(max_examples=40)
@given(
    flag=st.sampled_from(
        ["--epochs", "--batch-size", "--latent-dim", "--lr", "--beta", "--n-critic", "--seed"]
    ),
    junk=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12),
)
def test_junk_numbers_never_raise_a_traceback(flag, junk):
    """Any text given to a numeric flag is parsed or refused with one line and exit 2."""
    try:
        cli.build_parser().parse_args(["train", "vae", flag, junk])
    except SystemExit as error:
        assert error.code == 2
