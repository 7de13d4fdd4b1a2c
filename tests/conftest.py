"""Shared test settings: hypothesis profiles and the device fixture.

Profiles: ``ci`` (fixed seed, bounded examples; .ci/run selects it with HYPOTHESIS_PROFILE=ci)
and ``dev`` (the default: random seeds, more examples). ``thorough`` runs many more.
"""

import os

import pytest
from hypothesis import HealthCheck, settings

import minigen

settings.register_profile(
    "ci", derandomize=True, max_examples=25, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)  # fmt: skip
settings.register_profile("dev", max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=500, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def _devices():
    yield "cpu"
    yield pytest.param(
        "cuda",
        marks=[
            pytest.mark.cuda,
            pytest.mark.skipif(not minigen.cuda_available(), reason="needs CuPy and a GPU"),
        ],
    )


@pytest.fixture(params=list(_devices()))
def device(request):
    """Every test that takes ``device`` runs on cpu, and on cuda when CuPy sees a GPU."""
    return request.param


@pytest.fixture(autouse=True)
def _seeded():
    """Each test starts from the same random state."""
    minigen.manual_seed(0)
