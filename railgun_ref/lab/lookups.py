"""DHT results as pandas tables: lookups peer by peer, bucket fill, many lookups, records.

Pure functions of the events a `NodeHost` returns (`LookupFinished`,
`GetFinished`) and of the network's node ids; `LocalNetwork` calls them with
its own ids, and tests call them with hand-made events. Node ids become node
*indices* (positions in the network, as everywhere in `railgun_ref.lab`), so
tables and charts read "node 7 named node 31", not two 64-digit hex strings.

Invariants:
* times in the tables count from the lookup's own start (`started_at`), in
  seconds, so rows of different lookups compare;
* a peer the network does not know (impossible on a `LocalNetwork`, possible
  for a hand-built event) gets node index -1, never a wrong index.
"""

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import pandas as pd

from railgun_ref.dht.geometry import bucket_index, distance
from railgun_ref.dht.keys import KeyType, derive_key
from railgun_ref.dht.records import Record
from railgun_ref.events import GetFinished, LookupFinished
from railgun_ref.wire import cbor

#: Hex digits of a node id shown in tables: enough to tell nodes apart.
SHORT_ID: Final = 12
#: Node index for a peer id the network does not know.
UNKNOWN_NODE: Final = -1
#: Peer states of a lookup (`railgun_ref.dht.lookup.PeerState` values), most telling first:
#: a peer two disjoint paths knew (DHT-6.5) keeps the row of its first state here.
PEER_STATES: Final = (
    "succeeded",
    "unresponsive",
    "failed",
    "waiting",
    "not_contacted",
    "skipped",
)

#: Columns of `lookup_table`, in order.
LOOKUP_COLUMNS: Final = (
    "node",  #: index of the peer in the network
    "node_id",  #: id prefix
    "state",  #: one of PEER_STATES, when the lookup finished
    "distance_bits",  #: bit length of XOR(peer id, target): 256 is far, 0 is the target
    "hop",  #: 1 for peers from the start node's own table, else the namer's hop + 1
    "learned_from",  #: node index of the peer that named it (the start node for hop 1)
    "query",  #: 1, 2, ... in the order the queries were sent; <NA> if never asked
    "sent_at",  #: seconds from the lookup's start to sending the query (NaN: never asked)
    "answered_at",  #: seconds from the lookup's start to the answer/failure (NaN: none)
    "rtt_ms",  #: answered_at - sent_at in ms (NaN: no answer)
    "path",  #: disjoint path that knew the peer (DHT-6.5); 0 for a plain lookup
)
#: Columns of `bucket_table`, in order.
BUCKET_COLUMNS: Final = ("bucket", "contacts", "in_network", "k")
#: Columns of `lookup_summary` rows (one per lookup), in order.
SUMMARY_COLUMNS: Final = (
    "lookup",  #: 0, 1, ... in the order the lookups were drawn
    "start",  #: node index that ran the lookup
    "target",  #: target prefix (hex)
    "hops",  #: hop at which the closest answering peer was learned (LookupFinished.hops)
    "max_hop",  #: largest hop among the peers that answered
    "queries",  #: FIND_NODE requests sent
    "unresponsive",  #: peers left behind after slow_after (DHT-6.2)
    "failures",  #: requests that failed before the lookup ended
    "duration_ms",  #: wall time of the lookup
    "found",  #: peers returned (at most k)
    "recall",  #: fraction of the true k closest running peers among them
    "success",  #: the closest running peer (other than the start node) came back first
)
#: Columns of `records_table`, in order.
RECORD_COLUMNS: Final = ("publisher", "publisher_id", "key_type", "ident", "value", "seq")


def room_key(name: str) -> bytes:
    """The DHT key of the room called `name` (DHT-2.1: ``derive_key(ROOM, utf-8 name)``)."""
    return derive_key(KeyType.ROOM, name.encode("utf-8"))


def short(node_id: bytes | str) -> str:
    """The first `SHORT_ID` hex digits of an id."""
    text = node_id if isinstance(node_id, str) else node_id.hex()
    return text[:SHORT_ID]


def index_map(node_ids: Iterable[bytes]) -> dict[str, int]:
    """Hex node id -> node index, as the tables need it."""
    return {node_id.hex(): i for i, node_id in enumerate(node_ids)}


def _seconds(value: object, origin: float) -> float:
    return float(value) - origin if isinstance(value, int | float) else math.nan


def _int(value: object) -> int:
    # `peers` rows are typed dict[str, object]; their numbers are ints.
    if not isinstance(value, int):
        raise TypeError(f"expected an int in a lookup's peer table, got {value!r}")
    return value


def lookup_table(result: LookupFinished, *, start: int, index: Mapping[str, int]) -> pd.DataFrame:
    """One row per peer `result` knew of (`LookupFinished.peers`), nearest first.

    `start` is the node index that ran the lookup; `index` maps hex ids to
    node indices (`index_map`). Columns: `LOOKUP_COLUMNS`. A peer known to
    several disjoint paths gets one row, for its most telling state
    (`PEER_STATES` order).
    """
    rows: list[dict[str, Any]] = []
    for peer in result.peers:
        node_id = str(peer["node_id"])
        namer = peer.get("learned_from")
        sent = _seconds(peer.get("sent_at"), result.started_at)
        answered = _seconds(peer.get("answered_at"), result.started_at)
        rows.append(
            {
                "node": index.get(node_id, UNKNOWN_NODE),
                "node_id": short(node_id),
                "state": str(peer["state"]),
                "distance_bits": _int(peer["distance_bits"]),
                "hop": _int(peer["hop"]),
                "learned_from": start if namer is None else index.get(str(namer), UNKNOWN_NODE),
                "sent_at": sent,
                "answered_at": answered,
                "rtt_ms": (answered - sent) * 1000,
                "path": _int(peer.get("path", 0)),
            }
        )
    frame = pd.DataFrame(rows, columns=[c for c in LOOKUP_COLUMNS if c != "query"])
    full_ids = pd.Series([str(peer["node_id"]) for peer in result.peers], dtype=object)
    if full_ids.duplicated().any():
        rank = frame["state"].map({state: i for i, state in enumerate(PEER_STATES)})
        best_first = rank.fillna(len(PEER_STATES)).sort_values(kind="stable").index
        unique = full_ids.loc[best_first].drop_duplicates().index.sort_values()
        frame = frame.loc[unique]
    # A plain lookup lists its peers nearest first already; a disjoint one path
    # by path, so the paths are merged here (ties keep their path's order).
    frame = frame.sort_values("distance_bits", kind="stable").reset_index(drop=True)
    # Queries leave in `sent_at` order; the first alpha share one instant, and
    # the rows are nearest first, which is the order the iterator picks them
    # in, so a stable sort breaks ties right. A skipped peer was never sent to.
    was_sent = frame["sent_at"].notna() & (frame["state"] != "skipped")
    asked = frame[was_sent].sort_values("sent_at", kind="stable")
    query = pd.Series(pd.NA, index=frame.index, dtype="Int64")
    query.loc[asked.index] = range(1, len(asked) + 1)
    frame.insert(LOOKUP_COLUMNS.index("query"), "query", query)
    integers = ("node", "distance_bits", "hop", "learned_from", "path")
    return frame.astype(dict.fromkeys(integers, "int64"))


def bucket_table(
    local_id: bytes, fill: Mapping[int, int], node_ids: Sequence[bytes], *, k: int
) -> pd.DataFrame:
    """A node's routing table, bucket by bucket (DHT-1.3, DHT-5.x).

    `fill` is `RoutingTable.bucket_fill()` (bucket index -> contacts);
    `in_network` counts the other nodes of `node_ids` whose distance falls in
    the bucket, i.e. how many the bucket *could* hold if it had room; `k` is
    the bucket capacity. One row per bucket that has contacts or candidates,
    buckets in ascending order. Columns: `BUCKET_COLUMNS`.
    """
    candidates: dict[int, int] = {}
    for node_id in node_ids:
        bucket = bucket_index(local_id, node_id)
        if bucket is not None:
            candidates[bucket] = candidates.get(bucket, 0) + 1
    buckets = sorted(set(candidates) | {b for b, n in fill.items() if n})
    rows = [
        {"bucket": b, "contacts": fill.get(b, 0), "in_network": candidates.get(b, 0), "k": k}
        for b in buckets
    ]
    return pd.DataFrame(rows, columns=list(BUCKET_COLUMNS)).astype("int64")


def closest_ids(target: bytes, node_ids: Iterable[bytes], count: int) -> list[bytes]:
    """The `count` ids nearest to `target` by XOR distance (DHT-1.2), nearest first."""
    return sorted(node_ids, key=lambda node_id: distance(node_id, target))[:count]


def lookup_summary(
    result: LookupFinished,
    *,
    lookup: int,
    start: int,
    live_ids: Sequence[bytes],
    k: int,
) -> dict[str, Any]:
    """One row (`SUMMARY_COLUMNS`) judging `result` against the truth.

    `live_ids` are the ids of the nodes running when the lookup ran, without
    the start node (a lookup never returns its own node, DHT-6.4). The lookup
    *succeeds* if the first peer it returned is the running node closest to
    the target; `recall` is the fraction of the true k closest running nodes
    it returned.
    """
    truth = closest_ids(result.target, live_ids, k)
    returned = [node_id for node_id, _ in result.closest]
    states = [str(p["state"]) for p in result.peers]
    answered = [int(str(p["hop"])) for p in result.peers if p["state"] == "succeeded"]
    return {
        "lookup": lookup,
        "start": start,
        "target": short(result.target),
        "hops": result.hops,
        "max_hop": max(answered, default=0),
        "queries": result.queries,
        "unresponsive": states.count("unresponsive"),
        "failures": result.failures,
        "duration_ms": result.duration * 1000,
        "found": len(returned),
        "recall": len(set(truth) & set(returned)) / len(truth) if truth else 1.0,
        "success": bool(truth) and bool(returned) and returned[0] == truth[0],
    }


def summary_frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Rows of `lookup_summary` as a DataFrame with `SUMMARY_COLUMNS`."""
    return pd.DataFrame(list(rows), columns=list(SUMMARY_COLUMNS))


def records_table(result: GetFinished, *, index: Mapping[str, int]) -> pd.DataFrame:
    """The records a `get` returned, one row each (`RECORD_COLUMNS`), in the result's order.

    The records were checked by the node that fetched them (DHT-3.3); values
    are decoded as UTF-8 where possible, else shown as hex.
    """
    rows = []
    for encoded in result.records:
        record = Record.from_cbor_value(cbor.decode(encoded))
        try:
            value = record.value.decode("utf-8")
        except UnicodeDecodeError:
            value = record.value.hex()
        rows.append(
            {
                "publisher": index.get(record.publisher_id.hex(), UNKNOWN_NODE),
                "publisher_id": short(record.publisher_id),
                "key_type": record.key_type.name.lower(),
                "ident": record.ident.decode("utf-8", errors="backslashreplace"),
                "value": value,
                "seq": record.seq,
            }
        )
    return pd.DataFrame(rows, columns=list(RECORD_COLUMNS))
