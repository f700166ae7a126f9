"""Vector builders, one module per area; `railgun_ref.conformance.generate` runs them all."""

#: The submodules, imported on use only (each pulls in its own dependencies).
__all__ = [
    "abuse",
    "base",
    "bootstrap",
    "bootstrap_race",
    "capacity",
    "cbor",
    "dht_geometry",
    "dht_lookup",
    "dht_messages",
    "dht_node",
    "dht_records",
    "ed25519",
    "envelope",
    "framing",
    "identity",
    "node_ping",
    "privacy",
    "voice",
]
