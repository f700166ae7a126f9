"""Network-lab tests: they need root, `ip` and `nft`; skipped with the reason otherwise.

CI sets ``RAILGUN_REF_NETLAB_REQUIRED=1`` (``.ci/run``): there a missing
prerequisite fails the test instead of skipping it, so the lab is never
silently untested.
"""

import os
from collections.abc import Iterator

import pytest

from railgun_ref.netlab.lab import NetLab, unavailable_reason
from railgun_ref.netlab.topology import parse_topology

REQUIRED_ENV = "RAILGUN_REF_NETLAB_REQUIRED"


def require_lab() -> None:
    reason = unavailable_reason()
    if reason is None:
        return
    if os.environ.get(REQUIRED_ENV) == "1":
        pytest.fail(f"{REQUIRED_ENV}=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def lab() -> Iterator[NetLab]:
    """One client host behind each NAT the lab builds, plus an open one."""
    require_lab()
    topology = parse_topology(
        "open:open,full:full-cone,restr:restricted,port:port-restricted,sym:symmetric"
    )
    with NetLab(topology) as built:
        yield built
