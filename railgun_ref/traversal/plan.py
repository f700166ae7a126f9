"""NAT-3: which NAT pairs connect directly, and how (the spec's punchability table).

A node is *reachable* when a datagram from anyone reaches it on the address
its relay observed: no NAT (`OPEN`), or a full-cone NAT whose mapping the
relay registration keeps alive (endpoint-independent mapping and filtering).
Two filtering NATs connect when both send at about the same time, provided
each one's datagram can arrive where the other listens:

* both endpoint-independent mapping (restricted, port-restricted): punchable,
  each side's mapped address is the one the relay saw;
* symmetric with restricted: punchable, the restricted side's filter admits
  the symmetric side's new port (same IP), and its reply then returns along
  that new mapping;
* symmetric with port-restricted or symmetric: not punchable without port
  prediction, which this protocol does not do: the pair stays relayed.
"""

from typing import Final

from railgun_ref.capacity.nat import NatType
from railgun_ref.traversal.messages import Plan

REACHABLE: Final = frozenset({NatType.OPEN, NatType.FULL_CONE})
_UNPUNCHABLE: Final = frozenset(
    {
        frozenset({NatType.SYMMETRIC, NatType.PORT_RESTRICTED}),
        frozenset({NatType.SYMMETRIC}),
    }
)


def punchable(a: NatType, b: NatType) -> bool:
    """NAT-3.1: can `a` and `b` reach each other directly (with help from a relay)?"""
    if NatType.UDP_BLOCKED in (a, b):
        return False
    return frozenset({a, b}) not in _UNPUNCHABLE


def choose_plan(initiator: NatType, responder: NatType) -> Plan:
    """NAT-3.2: the first attempt's plan; later attempts always `Plan.PUNCH`."""
    if not punchable(initiator, responder):
        return Plan.RELAY
    if responder in REACHABLE:
        return Plan.DIRECT
    if initiator in REACHABLE:
        return Plan.REVERSE
    return Plan.PUNCH
