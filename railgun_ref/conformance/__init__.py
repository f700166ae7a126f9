"""Conformance: JSON test vectors, their schemas and generator, in-process and wire runners.

* ``vectors/<area>.json`` and ``schemas/<area>_schema.json``: Wycheproof-style
  vectors for cbor, ed25519, identity, envelope, framing and node_ping, and
  for the DHT dht_geometry, dht_records, dht_lookup, dht_messages and dht_node,
  each test tied to a clause of paper/spec.md (loaded via `common.load_vectors`);
* `generate` (with `builders`, one module per area): rebuilds the vectors from
  the reference with fixed seeds; ``--check`` fails when the committed files
  are stale (``railgun-ref conformance vectors --check``);
* `runner`: checks every vector against the reference, in process;
* `wire_runner`: checks a running node over UDP, per clause
  (``railgun-ref conformance run --target udp://127.0.0.1:PORT``);
* `traceability`: writes paper/traceability.md (clause -> vectors -> tests).
"""

#: The submodules, imported on use only (each pulls in its own dependencies).
__all__ = [
    "builders",
    "common",
    "generate",
    "runner",
    "traceability",
    "wire_runner",
]
