"""minigen.allocator: glibc's thresholds are raised on import unless the user opts out."""

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the setting is glibc's")

PROBE = "import minigen.allocator as a; print(a.applied)"


def _run(code: str, **env) -> str:
    """stdout of ``code`` in a fresh interpreter whose environment has no malloc settings but ``env``."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "MINIGEN_MALLOC"))}
    result = subprocess.run(
        [sys.executable, "-c", code], env={**environment, **env}, capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def _applied(**env) -> str:
    return _run(PROBE, **env)


def test_thresholds_are_raised_on_import():
    assert _applied() == "True"


def test_minigen_malloc_system_opts_out():
    assert _applied(MINIGEN_MALLOC="system") == "False"


def test_glibc_variables_set_by_the_user_win():
    assert _applied(MALLOC_MMAP_THRESHOLD_="131072") == "False"


def test_a_freed_step_is_reused_without_page_faults():
    """The effect itself: a "step" that allocates 96 MB in 8 MB arrays and frees them all
    returns the memory to the OS under glibc's defaults (the freed top of the heap exceeds its
    trim threshold), so the next step faults on every page again; with minigen's thresholds
    the memory stays and the next step reuses it."""
    probe = (
        "import resource, numpy, minigen\n"
        "def step():\n"
        "    arrays = [numpy.ones(2_000_000, dtype=numpy.float32) for _ in range(12)]\n"
        "    del arrays\n"
        "step(); step()\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "for _ in range(5): step()\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)\n"
    )
    pages = 5 * 12 * 8_000_000 // 4096  # 4 KiB pages (transparent huge pages fault fewer times)
    kept, returned = int(_run(probe)), int(_run(probe, MINIGEN_MALLOC="system"))
    assert kept < pages // 100, kept
    assert returned > 10 * kept + pages // 20, (returned, kept)
