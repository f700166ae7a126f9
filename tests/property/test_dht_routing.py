"""Routing table properties: closest() is the brute-force order, buckets hold their range
(DHT-1.3, DHT-5.1, DHT-5.4, DHT-6.4)."""

import random

from hypothesis import given
from hypothesis import strategies as st

from railgun_ref.core.ids import NodeId
from railgun_ref.dht.geometry import bucket_index, distance
from railgun_ref.dht.routing import Contact, Observed, RoutingTable

ids = st.binary(min_size=32, max_size=32)


def table_of(local: bytes, members: list[bytes], k: int) -> RoutingTable:
    table = RoutingTable(NodeId(local), k=k)
    for n, member in enumerate(members):
        table.observe(Contact(node_id=NodeId(member), address=("10.0.0.1", 1 + n)), now=float(n))
    return table


@given(ids, st.lists(ids, max_size=60), ids, st.integers(1, 25), st.integers(1, 8))
def test_closest_matches_brute_force(
    local: bytes, members: list[bytes], target: bytes, count: int, k: int
) -> None:
    """DHT-6.4: closest(target, n) is the n table contacts nearest target, nearest first."""
    table = table_of(local, members, k)
    held = [c.node_id for c in table.contacts()]
    expected = sorted(held, key=lambda i: distance(i, target))[:count]
    assert [c.node_id for c in table.closest(target, count)] == expected


@given(ids, st.lists(ids, max_size=60), ids, st.integers(1, 8))
def test_closest_with_exclude_skips_only_that_id(
    local: bytes, members: list[bytes], target: bytes, k: int
) -> None:
    """DHT-7.2: the asker is left out of the contacts it is sent, and nobody else is."""
    table = table_of(local, members, k)
    held = [c.node_id for c in table.contacts()]
    if not held:
        return
    excluded = held[len(held) // 2]
    expected = [i for i in sorted(held, key=lambda i: distance(i, target)) if i != excluded][:k]
    got = [c.node_id for c in table.closest(target, k, exclude=excluded)]
    assert got == expected


@given(ids, st.lists(ids, max_size=80), st.integers(1, 6))
def test_every_contact_sits_in_its_bucket_and_buckets_hold_at_most_k(
    local: bytes, members: list[bytes], k: int
) -> None:
    """DHT-1.3/DHT-5.2: contacts are filed by bucket_index; no bucket exceeds k; self never."""
    table = table_of(local, members, k)
    fill: dict[int, int] = {}
    for c in table.contacts():
        index = bucket_index(local, c.node_id)
        assert index is not None
        fill[index] = fill.get(index, 0) + 1
    assert fill == table.bucket_fill()
    assert all(n <= k for n in fill.values())
    # A bucket is only short of k if fewer than k distinct ids of its range were offered.
    offered: dict[int, set[bytes]] = {}
    for member in members:
        index = bucket_index(local, member)
        if index is not None:
            offered.setdefault(index, set()).add(member)
    assert fill == {i: min(k, len(s)) for i, s in sorted(offered.items())}


@given(ids, st.lists(ids, min_size=1, max_size=40))
def test_observe_is_deterministic_in_what_it_keeps(local: bytes, members: list[bytes]) -> None:
    """DHT-5.2: with no check answered, a full bucket keeps its first k contacts."""
    table = RoutingTable(NodeId(local), k=2)
    kept: dict[int, list[bytes]] = {}
    for n, member in enumerate(members):
        outcome, _ = table.observe(Contact(node_id=NodeId(member), address=("10.0.0.1", 1)), now=n)
        index = bucket_index(local, member)
        if index is None:
            assert outcome is Observed.IGNORED
            continue
        bucket = kept.setdefault(index, [])
        if member in bucket:
            assert outcome is Observed.REFRESHED
        elif len(bucket) < 2:
            assert outcome is Observed.INSERTED
            bucket.append(member)
        else:
            assert outcome in (Observed.CHECK_OLDEST, Observed.CACHED)
    assert {c.node_id for c in table.contacts()} == {m for b in kept.values() for m in b}


@given(ids, st.integers(0, 255), st.integers(0, 2**32))
def test_random_id_in_bucket_lands_in_that_bucket(local: bytes, index: int, seed: int) -> None:
    """DHT-5.4: a refresh target drawn for bucket i is at a distance in [2**i, 2**(i+1))."""
    table = RoutingTable(NodeId(local))
    target = table.random_id_in_bucket(index, random.Random(seed))
    assert len(target) == 32
    assert bucket_index(local, target) == index
