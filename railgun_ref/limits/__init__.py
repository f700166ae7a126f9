"""Abuse resistance: per-peer limits, address validation and connection slots (spec §23, ABUSE).

Sans-IO policy that the node and the drivers consult:

* `groups`: which addresses count as one source (a /24, one loopback endpoint, ...);
* `buckets`: token buckets per source group and per identity (ABUSE-1);
* `cookies`: address validation with stateless cookies, so a node is no
  amplifier (ABUSE-2);
* `slots`: the stream connection slots of a host, with idle timeouts and a
  fair share per source (ABUSE-3), a core of its own (CORE-1).
"""

from railgun_ref.limits.buckets import KeyedBuckets, LimitReason, LimitsConfig, Rate, TokenBucket
from railgun_ref.limits.cookies import AddressValidator, cookie_for
from railgun_ref.limits.groups import Group, is_public, source_group
from railgun_ref.limits.slots import (
    CloseConnection,
    CloseReason,
    ConnectionSlots,
    SlotCounter,
    SlotsConfig,
)

__all__ = [
    "AddressValidator",
    "CloseConnection",
    "CloseReason",
    "ConnectionSlots",
    "Group",
    "KeyedBuckets",
    "LimitReason",
    "LimitsConfig",
    "Rate",
    "SlotCounter",
    "SlotsConfig",
    "TokenBucket",
    "cookie_for",
    "is_public",
    "source_group",
]
