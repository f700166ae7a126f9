"""Test-wide settings: the harness's address policy and a bounded hypothesis profile.

The product binds loopback by default but may send anywhere; the test suite
narrows every bind and every destination to loopback (``drivers.addresses``,
inherited by the processes tests start). Network-lab tests widen it to the
namespaces they built. ``HYPOTHESIS_PROFILE=thorough`` runs many more examples.
"""

import os

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
