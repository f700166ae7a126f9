"""LocalNetwork's DHT helpers: join, look up, read tables, store, get, churn, on real sockets."""

import threading
from collections.abc import Iterator

import pytest

from railgun_ref.dht.service import DhtConfig
from railgun_ref.drivers.udp import HostStoppedError
from railgun_ref.lab import (
    LOOKUP_COLUMNS,
    ROUTING_COLUMNS,
    SUMMARY_COLUMNS,
    KeyType,
    LocalNetwork,
    room_key,
)
from railgun_ref.lab.lookups import closest_ids
from railgun_ref.node import NodeConfig

pytestmark = pytest.mark.integration

K = 4
N = 16
CONFIG = NodeConfig(request_timeout=1.0, dht=DhtConfig(k=K))


@pytest.fixture(scope="module")
def dht() -> Iterator[LocalNetwork]:
    """Sixteen nodes with k = 4 that joined the DHT, for a module's tests that stop nothing."""
    with LocalNetwork.start(N, seed=21, config=CONFIG, join=True) as net:
        yield net


def test_joining_gives_every_node_a_routing_table(dht: LocalNetwork) -> None:
    tables = dht.routing_tables()
    assert list(tables.columns) == list(ROUTING_COLUMNS)
    assert tables["node"].tolist() == list(range(N))
    assert tables["running"].all()
    assert (tables["contacts"] >= K).all() and (tables["contacts"] <= N - 1).all()
    assert (tables["buckets"] >= 1).all()
    assert dht.settle(timeout=5.0)  # nothing left in flight


def test_a_lookup_finds_the_k_nodes_nearest_the_key(dht: LocalNetwork) -> None:
    key = room_key("general")
    result = dht.find_node(3, key)
    others = [h.node_id for i, h in enumerate(dht.hosts) if i != 3]
    assert [node_id for node_id, _ in result.closest] == closest_ids(key, others, K)
    assert result.target == key and result.queries >= K


def test_a_node_index_as_target_looks_up_that_nodes_id(dht: LocalNetwork) -> None:
    result = dht.find_node(0, 9)
    assert result.target == dht.hosts[9].node_id
    assert result.closest[0][0] == dht.hosts[9].node_id  # it is the nearest node to itself


def test_the_lookup_frame_names_every_peer_by_index(dht: LocalNetwork) -> None:
    result = dht.find_node(2, room_key("lobby"))
    frame = dht.lookup_frame(result)  # the network remembers who started it
    assert list(frame.columns) == list(LOOKUP_COLUMNS)
    assert len(frame) == len(result.peers) and frame["node"].between(0, N - 1).all()
    assert 2 not in set(frame["node"])  # a lookup never asks its own node
    assert frame["distance_bits"].is_monotonic_increasing
    assert set(frame.loc[frame["hop"] == 1, "learned_from"]) == {2}
    later = frame[frame["hop"] > 1]
    assert later["learned_from"].isin(frame["node"]).all()
    index = {host.node_id: i for i, host in enumerate(dht.hosts)}
    succeeded = frame[frame["state"] == "succeeded"]
    assert set(succeeded["node"]) >= {index[node_id] for node_id, _ in result.closest}
    asked = frame[frame["query"].notna()]
    assert sorted(asked["query"].tolist()) == list(range(1, result.queries + 1))
    assert (succeeded["rtt_ms"] > 0).all()
    assert (succeeded["answered_at"] >= succeeded["sent_at"]).all()
    assert frame.equals(dht.lookup_frame(result, start=2))


def test_a_result_the_network_did_not_start_needs_its_start_node(dht: LocalNetwork) -> None:
    result = dht.find_node(1, room_key("x"))
    with LocalNetwork.start(2, seed=1) as other, pytest.raises(ValueError, match="start="):
        other.lookup_frame(result)


def test_bucket_fill_counts_the_table_and_the_network(dht: LocalNetwork) -> None:
    buckets = dht.bucket_fill(4)
    tables = dht.routing_tables()
    assert buckets["contacts"].sum() == tables.loc[4, "contacts"]
    assert buckets["in_network"].sum() == N - 1
    assert (buckets["contacts"] <= buckets["k"]).all() and set(buckets["k"]) == {K}
    assert (buckets["contacts"] <= buckets["in_network"]).all()
    assert buckets["bucket"].is_monotonic_increasing and buckets["bucket"].max() <= 255


def test_many_lookups_are_reproducible_plans_judged_against_the_truth(dht: LocalNetwork) -> None:
    first = dht.many_lookups(12, seed=5, concurrency=3)
    again = dht.many_lookups(12, seed=5)
    assert list(first.columns) == list(SUMMARY_COLUMNS)
    assert first["lookup"].tolist() == list(range(12))
    assert first[["start", "target"]].equals(again[["start", "target"]])
    assert first["success"].all() and (first["recall"] == 1.0).all()
    assert (first["found"] == K).all() and (first["hops"] >= 1).all()
    assert (first["max_hop"] >= first["hops"]).all() and (first["duration_ms"] > 0).all()
    only = dht.many_lookups(5, seed=1, starts=[7])
    assert set(only["start"]) == {7}
    assert dht.many_lookups(0).empty


def test_stored_records_are_found_from_other_nodes(dht: LocalNetwork) -> None:
    stored = dht.store(1, KeyType.ROOM, "topic", "hello")
    assert stored.accepted >= 1 and stored.key == room_key("topic")
    got = dht.get(12, room_key("topic"))
    assert got.found
    records = dht.records_frame(got)
    assert records[["publisher", "key_type", "ident", "value"]].values.tolist() == [
        [1, "room", "topic", "hello"]
    ]
    assert not dht.get(12, room_key("nothing here")).found


def test_room_announcements_are_collected(dht: LocalNetwork) -> None:
    for member in (5, 6, 7):
        assert dht.announce_room(member, b"room-7", f"member {member}").accepted >= 1
    peers = dht.records_frame(dht.find_room_peers(0, "room-7"))
    assert sorted(peers["publisher"]) == [5, 6, 7]
    assert sorted(peers["value"]) == ["member 5", "member 6", "member 7"]


def test_bad_dht_calls_are_refused(dht: LocalNetwork) -> None:
    with pytest.raises(IndexError):
        dht.find_node(N, room_key("a"))
    with pytest.raises(IndexError):
        dht.find_node(0, N)
    with pytest.raises(ValueError, match="32 bytes"):
        dht.find_node(0, b"short")
    with pytest.raises(IndexError):
        dht.bucket_fill(-1)
    with pytest.raises(ValueError):
        dht.many_lookups(1, concurrency=0)


def test_stop_fraction_is_seeded_spares_kept_nodes_and_lookups_survive() -> None:
    threads_before = set(threading.enumerate())
    with (
        LocalNetwork.start(N, seed=4, config=CONFIG, join=True) as a,
        LocalNetwork.start(N, seed=4, config=CONFIG) as b,
    ):
        keep = [0, 1, 2]
        stopped = a.stop_fraction(0.25, seed=9, keep=keep)
        assert stopped == b.stop_fraction(0.25, seed=9, keep=keep)  # same draw on every run
        assert len(stopped) == 4 and stopped == sorted(stopped)
        assert not set(stopped) & set(keep)
        assert a.running_nodes() == [i for i in range(N) if i not in stopped]
        assert a.routing_tables().set_index("node").loc[stopped, "running"].eq(False).all()
        with pytest.raises(HostStoppedError):
            a.find_node(stopped[0], room_key("a"))
        after = a.many_lookups(8, seed=3)
        assert not set(after["start"]) & set(stopped)
        assert after["success"].all()  # the nearest running node is still found
        with pytest.raises(ValueError, match="cannot stop"):
            a.stop_fraction(1.0, keep=keep)
        with pytest.raises(ValueError, match="fraction"):
            a.stop_fraction(1.5)
        assert a.stop_fraction(0.0) == []
    assert a.all_stopped and b.all_stopped
    assert set(threading.enumerate()) == threads_before


def test_restart_with_join_gives_a_joined_network_again() -> None:
    with LocalNetwork.start(4, seed=2, config=CONFIG) as net:
        assert (net.routing_tables()["contacts"] == 0).all()  # started, not joined
        net.restart(6, join=True)
        tables = net.routing_tables()
    assert len(tables) == 6 and (tables["contacts"] > 0).all() and tables["running"].all()
    after_close = net.routing_tables()  # readable after close, from the stopped hosts
    assert after_close["contacts"].equals(tables["contacts"]) and not after_close["running"].any()
