"""The Kademlia DHT (paper/spec.md, section DHT): sans-IO, owned by `Node`.

`geometry` defines XOR distance and bucket index once; `keys` derives DHT
keys; `records` signs and checks records; `routing` is the k-bucket table;
`lookup` the pollable iterative lookup; `storage` the records a node holds;
`service.Dht` the core that ties them together (`ProtocolCore[DhtAction]`).
"""

from railgun_ref.dht.geometry import KEY_BITS, KEY_BYTES, bucket_index, distance
from railgun_ref.dht.keys import KeyType, derive_key
from railgun_ref.dht.lookup import DisjointLookup, Finished, Lookup, QueryPeer, Waiting
from railgun_ref.dht.records import MAX_TTL, Record, check_record, decode_record, sign_record
from railgun_ref.dht.routing import Contact, Observed, RoutingTable
from railgun_ref.dht.service import (
    Dht,
    DhtAction,
    DhtConfig,
    DhtCounter,
    DhtEvent,
    EmitDhtEvent,
    SendDhtRequest,
)
from railgun_ref.dht.storage import PutOutcome, RecordTable, StorageLimits

__all__ = [
    "KEY_BITS",
    "KEY_BYTES",
    "MAX_TTL",
    "Contact",
    "Dht",
    "DhtAction",
    "DhtConfig",
    "DhtCounter",
    "DhtEvent",
    "DisjointLookup",
    "EmitDhtEvent",
    "Finished",
    "KeyType",
    "Lookup",
    "Observed",
    "PutOutcome",
    "QueryPeer",
    "Record",
    "RecordTable",
    "RoutingTable",
    "SendDhtRequest",
    "StorageLimits",
    "Waiting",
    "bucket_index",
    "check_record",
    "decode_record",
    "derive_key",
    "distance",
    "sign_record",
]
