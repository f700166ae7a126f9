"""Test-wide settings: the harness's address policy and a bounded hypothesis profile.

The product binds loopback by default but may send anywhere; the test suite
narrows every bind and every destination to loopback (``drivers.addresses``,
inherited by the processes tests start). Network-lab tests widen it to the
namespaces they built. ``HYPOTHESIS_PROFILE=thorough`` runs many more examples.
"""

import os
from pathlib import Path

import pytest

from railgun_ref.drivers.addresses import ALLOWED_NETWORKS_ENV, LOOPBACK_NETWORKS

os.environ[ALLOWED_NETWORKS_ENV] = LOOPBACK_NETWORKS

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough",
    max_examples=5000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


# -------------------------------------------------------------- parallel runs

#: Test directories whose tests start processes, sockets or network labs, or build
#: shared outputs: under pytest-xdist (``-n 2 --dist loadgroup``, as `make unit` runs)
#: they all go to one worker, one at a time, as in a serial run; the pure tests
#: (cores, properties, vectors, the simulator) fill the other core meanwhile.
SERIAL_DIRECTORIES = frozenset({"integration", "netlab", "lab", "bench", "docs", "sweep"})


def _serial(item: pytest.Item) -> bool:
    parts = item.path.relative_to(Path(__file__).parent).parts
    return (
        item.get_closest_marker("integration") is not None
        or (len(parts) > 1 and parts[0] in SERIAL_DIRECTORIES)
        or "runner" in item.path.name
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _serial(item):
            item.add_marker(pytest.mark.xdist_group("serial"))
