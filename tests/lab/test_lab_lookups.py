"""DHT results become tables: lookups peer by peer, buckets, judged lookups, records."""

import math

import pandas as pd
import pytest

from railgun_ref.core.ids import NodeId
from railgun_ref.dht.geometry import distance
from railgun_ref.dht.keys import KeyType, derive_key
from railgun_ref.dht.records import sign_record
from railgun_ref.events import GetFinished, LookupFinished
from railgun_ref.identity.keys import Identity
from railgun_ref.lab import BUCKET_COLUMNS, LOOKUP_COLUMNS, RECORD_COLUMNS, SUMMARY_COLUMNS
from railgun_ref.lab.lookups import (
    UNKNOWN_NODE,
    bucket_table,
    closest_ids,
    index_map,
    lookup_summary,
    lookup_table,
    records_table,
    room_key,
    summary_frame,
)

T0 = 1_700_000_000.0
TARGET = bytes(32)


def node(i: int) -> NodeId:
    """Node i's id: i in the last byte, so its distance to TARGET is i."""
    return NodeId(i.to_bytes(32, "big"))


IDS = [node(i) for i in range(16)]  # node index i has id i
INDEX = index_map(IDS)


def peer(
    i: int,
    state: str,
    *,
    hop: int = 1,
    learned_from: int | None = None,
    sent: float | None = None,
    answered: float | None = None,
    **extra: object,
) -> dict[str, object]:
    return {
        "node_id": node(i).hex(),
        "distance_bits": distance(node(i), TARGET).bit_length(),
        "state": state,
        "hop": hop,
        "learned_from": node(learned_from).hex() if learned_from is not None else None,
        "sent_at": None if sent is None else T0 + sent,
        "answered_at": None if answered is None else T0 + answered,
        **extra,
    }


def finished(*peers: dict[str, object], closest: tuple[int, ...] = ()) -> LookupFinished:
    return LookupFinished(
        query_id=7,
        target=TARGET,
        closest=tuple((node(i), ("127.0.0.1", 4000 + i)) for i in closest),
        queries=sum(1 for p in peers if p["sent_at"] is not None),
        failures=sum(1 for p in peers if p["state"] == "failed"),
        late_answers=0,
        hops=2,
        started_at=T0,
        duration=0.5,
        peers=peers,
    )


# A lookup from node 9: it asked 2 and 3 (its own contacts) at once, 2 named 1,
# 1 never answered, 5 was known but never asked.
LOOKUP = finished(
    peer(1, "unresponsive", hop=2, learned_from=2, sent=0.004),
    peer(2, "succeeded", sent=0.0, answered=0.003),
    peer(3, "succeeded", sent=0.0, answered=0.005),
    peer(5, "not_contacted"),
    closest=(2, 3),
)


def test_a_lookup_table_has_one_row_per_peer_nearest_first() -> None:
    table = lookup_table(LOOKUP, start=9, index=INDEX)
    assert list(table.columns) == list(LOOKUP_COLUMNS)
    assert table["node"].tolist() == [1, 2, 3, 5]
    assert table["node_id"].tolist() == [node(i).hex()[:12] for i in (1, 2, 3, 5)]
    assert table["state"].tolist() == ["unresponsive", "succeeded", "succeeded", "not_contacted"]
    assert table["distance_bits"].tolist() == [1, 2, 2, 3]
    assert table["hop"].tolist() == [2, 1, 1, 1]
    assert table["path"].tolist() == [0, 0, 0, 0]


def test_seeds_are_learned_from_the_start_node_and_the_rest_from_their_namer() -> None:
    table = lookup_table(LOOKUP, start=9, index=INDEX)
    assert table["learned_from"].tolist() == [2, 9, 9, 9]


def test_queries_are_numbered_in_sending_order_ties_nearest_first() -> None:
    table = lookup_table(LOOKUP, start=9, index=INDEX).set_index("node")
    assert table.loc[[2, 3, 1], "query"].tolist() == [1, 2, 3]
    assert pd.isna(table.loc[5, "query"])


def test_times_count_from_the_lookups_start() -> None:
    table = lookup_table(LOOKUP, start=9, index=INDEX).set_index("node")
    # Unix times near 1.7e9 keep about a microsecond of precision.
    assert table.loc[1, "sent_at"] == pytest.approx(0.004, abs=1e-6)
    assert table.loc[3, "answered_at"] == pytest.approx(0.005, abs=1e-6)
    assert table.loc[3, "rtt_ms"] == pytest.approx(5.0, abs=1e-3)
    assert math.isnan(table.loc[1, "answered_at"]) and math.isnan(table.loc[1, "rtt_ms"])
    assert math.isnan(table.loc[5, "sent_at"])


def test_a_peer_the_network_does_not_know_is_node_minus_one() -> None:
    table = lookup_table(LOOKUP, start=9, index=index_map(IDS[:3]))
    assert table["node"].tolist() == [1, 2, UNKNOWN_NODE, UNKNOWN_NODE]


def test_a_peer_two_disjoint_paths_knew_gets_one_row_for_its_most_telling_state() -> None:
    result = finished(  # path by path, as `DisjointLookup.peer_table` lists them
        peer(2, "succeeded", sent=0.0, answered=0.002, path=0),
        peer(8, "succeeded", sent=0.0, answered=0.003, path=0),
        peer(2, "skipped", sent=0.001, path=1),
        peer(4, "succeeded", sent=0.001, answered=0.002, path=1),
    )
    table = lookup_table(result, start=9, index=INDEX)
    assert table[["node", "state", "path", "query"]].values.tolist() == [
        [2, "succeeded", 0, 1],
        [4, "succeeded", 1, 3],
        [8, "succeeded", 0, 2],
    ]


def test_an_empty_lookup_is_an_empty_table_with_the_columns() -> None:
    table = lookup_table(finished(), start=0, index=INDEX)
    assert table.empty and list(table.columns) == list(LOOKUP_COLUMNS)


def test_bucket_table_counts_contacts_and_candidates_per_bucket() -> None:
    # From node 0, node i (i >= 1) lies in bucket i.bit_length() - 1.
    table = bucket_table(node(0), {0: 1, 2: 3}, IDS[:8], k=2)
    assert list(table.columns) == list(BUCKET_COLUMNS)
    assert table.to_dict("list") == {
        "bucket": [0, 1, 2],
        "contacts": [1, 0, 3],
        "in_network": [1, 2, 4],  # 1 | 2, 3 | 4..7; node 0 itself is in none
        "k": [2, 2, 2],
    }


def test_closest_ids_sorts_by_xor_distance() -> None:
    assert closest_ids(node(6), [node(i) for i in (1, 4, 7, 6, 2)], 3) == [
        node(6),
        node(7),
        node(4),
    ]


def test_a_lookup_succeeds_when_it_returns_the_nearest_running_node_first() -> None:
    live = [node(i) for i in (2, 3, 5, 8)]  # 1 is down
    row = lookup_summary(LOOKUP, lookup=4, start=9, live_ids=live, k=2)
    assert list(row) == list(SUMMARY_COLUMNS)
    assert row["success"] is True and row["recall"] == 1.0
    assert (row["lookup"], row["start"], row["found"], row["hops"]) == (4, 9, 2, 2)
    assert (row["queries"], row["unresponsive"], row["max_hop"]) == (3, 1, 1)
    assert row["duration_ms"] == pytest.approx(500.0)


def test_a_lookup_that_missed_the_nearest_running_node_fails() -> None:
    live = [node(i) for i in (1, 2, 3)]  # 1 runs after all: the lookup missed it
    row = lookup_summary(LOOKUP, lookup=0, start=9, live_ids=live, k=2)
    assert row["success"] is False and row["recall"] == 0.5


def test_summary_frame_keeps_the_column_order_even_when_empty() -> None:
    assert list(summary_frame([]).columns) == list(SUMMARY_COLUMNS)


def test_records_table_decodes_what_a_get_returned() -> None:
    alice, bob = Identity.from_seed(bytes([1]) * 32), Identity.from_seed(bytes([2]) * 32)
    records = [
        sign_record(
            who,
            key_type=KeyType.ROOM,
            ident=b"lobby",
            seq=1,
            expires_ms=2_000_000_000_000,
            value=value,
        ).encode()
        for who, value in ((alice, b"hi from alice"), (bob, b"\xff\x00"))
    ]
    result = GetFinished(
        query_id=1,
        key=room_key("lobby"),
        records=tuple(records),
        found=True,
        queries=3,
        failures=0,
        hops=1,
        started_at=T0,
        duration=0.01,
    )
    table = records_table(result, index=index_map([bob.node_id]))
    assert list(table.columns) == list(RECORD_COLUMNS)
    assert table["publisher"].tolist() == [UNKNOWN_NODE, 0]
    assert table["value"].tolist() == ["hi from alice", "ff00"]  # undecodable: hex
    assert set(table["key_type"]) == {"room"} and set(table["ident"]) == {"lobby"}


def test_room_key_is_the_room_key_of_the_utf8_name() -> None:
    assert room_key("café") == derive_key(KeyType.ROOM, "café".encode())
