"""The hybrid transport: modes, states, central-service health and failover (HT-x)."""

#: The submodules, imported on use only.
__all__ = [
    "health",
    "outbox",
    "p2p",
    "service",
    "state",
]
