"""minigen.blas_wait: OPENBLAS_THREAD_TIMEOUT is set when minigen comes before NumPy, and only then."""

import os
import subprocess
import sys

import pytest

PROBE = (
    "import os, minigen, minigen.blas_wait as b; print(b.applied, os.environ.get('OPENBLAS_THREAD_TIMEOUT'))"
)


def _run(code: str, **env) -> str:
    """stdout of ``code`` in a fresh interpreter whose environment has no timeout but ``env``'s."""
    environment = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    result = subprocess.run(
        [sys.executable, "-c", code], env={**environment, **env}, capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def test_importing_minigen_first_lets_the_workers_sleep():
    assert _run(PROBE) == "True 12"


def test_a_timeout_set_by_the_user_wins():
    assert _run(PROBE, OPENBLAS_THREAD_TIMEOUT="20") == "False 20"


def test_after_numpy_it_is_too_late_and_nothing_is_set():
    assert _run("import numpy; " + PROBE) == "False None"


def test_openblas_took_the_setting():
    """OpenBLAS reports the timeout it read when it was loaded: 12 after minigen, 0 (unset) without."""
    code = (
        "{first}\nimport numpy, threadpoolctl\n"
        "blas = [c for c in threadpoolctl.ThreadpoolController().lib_controllers\n"
        "        if c.internal_api == 'openblas']\n"
        "print(blas[0].dynlib.openblas_thread_timeout() if blas else 'no OpenBLAS')"
    )
    with_minigen, without = _run(code.format(first="import minigen")), _run(code.format(first="pass"))
    if with_minigen == "no OpenBLAS":
        pytest.skip("NumPy is not linked against OpenBLAS here")
    assert (with_minigen, without) == ("12", "0")
