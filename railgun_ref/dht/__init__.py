"""The Kademlia DHT, sans-IO (paper/spec.md section 10, DHT-x).

`geometry` (XOR distance, bucket index), `keys` (typed, domain-separated
keys), `records` (signed records and their checks), `storage` (what a holder
keeps), `routing` (the routing table), `lookup` (the pollable lookup
iterator) and `service` (`Dht`: RPCs, lookups, maintenance), owned by
`railgun_ref.node.Node`.
"""

#: The submodules, imported on use only.
__all__ = ["geometry", "keys", "lookup", "records", "routing", "service", "storage"]
