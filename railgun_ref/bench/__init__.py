"""Benchmarks (not tests): each prints JSON comparing us with a named peer in the same run."""

#: The submodules, imported on use only (each pulls in its own dependencies).
__all__ = [
    "detectors",
    "dht",
    "dht_kademlia",
    "failover",
    "nat",
    "voice",
    "wire",
]
