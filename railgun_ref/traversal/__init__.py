"""NAT traversal between peers (spec §20, NAT-x): connection reversal, coordinated
UDP hole punching through a relaying peer, fallback to the relay.

`messages` is the codec of the coordination messages, `plan` the table of which
NAT pairs are punchable, `punch` the per-node core, `relay` the relaying peer's
core. Sans-IO: time is ``now``, randomness injected.
"""

__all__ = ["messages", "plan", "punch", "relay"]
