"""The `minigen` command: gradcheck prints a row per catalogued check and fails loudly."""

import subprocess
import sys

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
