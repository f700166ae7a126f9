"""The routing table: k-buckets, the eviction check, failures and refresh (DHT-5.1 .. DHT-5.4)."""

import random

import pytest

from railgun_ref.core.constants import DHT_K
from railgun_ref.core.errors import LocalProtocolError
from railgun_ref.core.ids import NodeId
from railgun_ref.dht.geometry import bucket_index
from railgun_ref.dht.routing import Contact, Observed, RoutingTable

from .helpers import address, at_distance, closest_ids

LOCAL = NodeId(bytes(range(32)))
TOP = 2**255  # distances in [2**255, 2**256) are bucket 255


def far(j: int) -> Contact:
    """The j-th contact of bucket 255 (the half of the space furthest from LOCAL)."""
    return Contact(node_id=at_distance(LOCAL, TOP + j), address=address(j))


def in_bucket(index: int, j: int) -> Contact:
    return Contact(node_id=at_distance(LOCAL, 2**index + j), address=address(1000 + j))


def bucket_ids(table: RoutingTable) -> list[NodeId]:
    return [c.node_id for c in table.contacts()]


def full_table(k: int = 3) -> RoutingTable:
    table = RoutingTable(LOCAL, k=k, now=0.0)
    for j in range(k):
        assert table.observe(far(j), now=float(j)) == (Observed.INSERTED, None)
    return table


def test_parameters_are_checked() -> None:
    """DHT-9.1: k and max_failures are at least 1."""
    with pytest.raises(LocalProtocolError):
        RoutingTable(LOCAL, k=0)
    with pytest.raises(LocalProtocolError):
        RoutingTable(LOCAL, max_failures=0)


def test_insert_up_to_k_and_ignore_self() -> None:
    """DHT-5.1: a bucket takes contacts until it holds k; the local id is never a contact."""
    table = full_table(k=3)
    assert len(table) == 3
    assert all(far(j).node_id in table for j in range(3))
    assert table.observe(Contact(node_id=LOCAL, address=address(0)), now=5.0) == (
        Observed.IGNORED,
        None,
    )
    assert LOCAL not in table
    assert table.bucket_fill() == {255: 3}


def test_known_contact_is_refreshed_to_the_tail() -> None:
    """DHT-5.2: hearing from a known contact moves it to the tail (most recently seen)."""
    table = full_table(k=3)
    assert table.observe(far(0), now=10.0) == (Observed.REFRESHED, None)
    assert bucket_ids(table) == [far(1).node_id, far(2).node_id, far(0).node_id]
    # The oldest is now far(1): a newcomer gets it checked.
    assert table.observe(far(9), now=11.0) == (Observed.CHECK_OLDEST, far(1))


def test_full_bucket_checks_the_oldest() -> None:
    """DHT-5.2: a full bucket pings its oldest contact before replacing it."""
    table = full_table(k=3)
    assert table.observe(far(3), now=10.0) == (Observed.CHECK_OLDEST, far(0))
    assert far(3).node_id not in table
    assert len(table) == 3


def test_newcomers_are_only_cached_while_a_check_runs() -> None:
    """DHT-5.2: one check at a time per bucket; later newcomers wait in the cache."""
    table = full_table(k=3)
    table.observe(far(3), now=10.0)
    assert table.observe(far(4), now=11.0) == (Observed.CACHED, None)
    assert table.observe(far(5), now=12.0) == (Observed.CACHED, None)
    assert len(table) == 3


def test_alive_oldest_stays_and_newcomer_stays_cached() -> None:
    """DHT-5.2: an oldest contact that answers is kept (moved to the tail); the newcomer is not."""
    table = full_table(k=3)
    _, oldest = table.observe(far(3), now=10.0)
    assert oldest == far(0)
    assert table.check_result(far(0).node_id, alive=True, now=11.0) is None
    assert bucket_ids(table) == [far(1).node_id, far(2).node_id, far(0).node_id]
    assert far(3).node_id not in table
    # The check is over: the next newcomer starts a check of the new oldest.
    assert table.observe(far(4), now=12.0) == (Observed.CHECK_OLDEST, far(1))


def test_dead_oldest_is_evicted_for_the_freshest_replacement() -> None:
    """DHT-5.2: an oldest contact that does not answer is replaced by the freshest cached one."""
    table = full_table(k=3)
    table.observe(far(3), now=10.0)
    table.observe(far(4), now=11.0)
    promoted = table.check_result(far(0).node_id, alive=False, now=12.0)
    assert promoted == far(4)
    assert far(0).node_id not in table
    assert bucket_ids(table) == [far(1).node_id, far(2).node_id, far(4).node_id]
    # far(3) is still cached: the next eviction can promote it.
    assert table.remove(far(1).node_id)
    assert far(3).node_id in table


def test_check_result_for_a_contact_not_being_checked_is_ignored() -> None:
    """DHT-5.2: only the contact under check can be evicted by a check result."""
    table = full_table(k=3)
    table.observe(far(3), now=10.0)
    assert table.check_result(far(1).node_id, alive=False, now=11.0) is None
    assert far(1).node_id in table
    assert table.check_result(far(7).node_id, alive=False, now=11.0) is None
    assert len(table) == 3


def test_replacement_cache_is_bounded() -> None:
    """DHT-5.2: the replacement cache holds at most k contacts, the freshest ones."""
    table = full_table(k=3)
    for j in range(3, 20):
        table.observe(far(j), now=float(j))
    assert table.check_result(far(0).node_id, alive=False, now=30.0) == far(19)
    for victim in (1, 2, 19):
        table.remove(far(victim).node_id)
    # 18 and 17 were promoted; far(3..16) were pushed out of the cache long ago.
    assert {c.node_id for c in table.contacts()} == {far(18).node_id, far(17).node_id}


def test_record_failure_removes_after_max_failures_and_promotes() -> None:
    """DHT-5.3: a contact failing max_failures requests in a row is removed and replaced."""
    table = RoutingTable(LOCAL, k=2, max_failures=2)
    table.observe(far(0), now=0.0)
    table.observe(far(1), now=1.0)
    table.observe(far(2), now=2.0)  # cached (check of far(0) starts)
    assert table.record_failure(far(1).node_id) is False
    assert far(1).node_id in table
    assert table.record_failure(far(1).node_id) is True
    assert far(1).node_id not in table
    assert far(2).node_id in table  # promoted from the cache


def test_a_success_resets_the_failure_count() -> None:
    """DHT-5.3: failures count only in a row; hearing from the contact resets them."""
    table = RoutingTable(LOCAL, k=2, max_failures=2)
    table.observe(far(0), now=0.0)
    table.record_failure(far(0).node_id)
    table.observe(far(0), now=1.0)
    assert table.record_failure(far(0).node_id) is False
    assert far(0).node_id in table


def test_failure_of_a_cached_contact_drops_it_from_the_cache() -> None:
    """DHT-5.3: a failing replacement candidate is forgotten, not promoted later."""
    table = RoutingTable(LOCAL, k=1)
    table.observe(far(0), now=0.0)
    table.observe(far(1), now=1.0)
    assert table.record_failure(far(1).node_id) is False
    assert table.check_result(far(0).node_id, alive=False, now=2.0) is None
    assert len(table) == 0


def test_a_known_contact_heard_from_another_address_is_not_moved() -> None:
    """DHT-5.1: envelopes do not bind the source address (a replay can come from anywhere),
    so a known contact is neither moved nor refreshed by a datagram from another address."""
    table = full_table(k=3)
    moved = Contact(node_id=far(0).node_id, address=("10.9.9.9", 9999))
    assert table.observe(moved, now=10.0) == (Observed.IGNORED, None)
    assert far(0) in table.contacts()
    assert table.closest(far(0).node_id, 1) == [far(0)]
    # not refreshed either: far(0) is still the oldest, next in line for a check
    assert table.observe(far(9), now=11.0) == (Observed.CHECK_OLDEST, far(0))


def test_a_contact_that_really_moved_is_re_learned_after_its_old_address_fails() -> None:
    """DHT-5.1, DHT-5.3: once the old address has failed max_failures times the contact is dropped,
    and the next datagram from its new address inserts it there."""
    table = RoutingTable(LOCAL, k=3, max_failures=2)
    table.observe(far(0), now=0.0)
    moved = Contact(node_id=far(0).node_id, address=("10.9.9.9", 9999))
    table.record_failure(far(0).node_id)
    assert table.record_failure(far(0).node_id) is True
    assert table.observe(moved, now=5.0) == (Observed.INSERTED, None)
    assert table.contacts() == [moved]


def test_closest_orders_by_distance_and_excludes() -> None:
    """DHT-6.4: closest() is the brute-force XOR order, minus an excluded id."""
    rng = random.Random(3)
    table = RoutingTable(LOCAL, k=DHT_K)
    for n in range(300):
        table.observe(Contact(node_id=NodeId(rng.randbytes(32)), address=address(n)), now=0.0)
    ids = [c.node_id for c in table.contacts()]
    target = rng.randbytes(32)
    assert [c.node_id for c in table.closest(target, 20)] == closest_ids(ids, target, 20)
    nearest = closest_ids(ids, target, 1)[0]
    got = [c.node_id for c in table.closest(target, 20, exclude=NodeId(nearest))]
    assert nearest not in got
    assert got == closest_ids(ids, target, 21)[1:]
    assert table.closest(target, 0) == []


def test_bucket_fill_counts_per_bucket() -> None:
    """DHT-1.3: bucket_fill reports the number of contacts per non-empty bucket."""
    table = RoutingTable(LOCAL, k=4)
    for j in range(2):
        table.observe(in_bucket(10, j), now=0.0)
    for j in range(6):
        table.observe(in_bucket(200, j), now=0.0)
    table.observe(in_bucket(0, 0), now=0.0)
    assert table.bucket_fill() == {0: 1, 10: 2, 200: 4}
    assert sum(table.bucket_fill().values()) == len(table)


def test_stale_buckets_and_touch() -> None:
    """DHT-5.4: a non-empty bucket idle for the refresh interval is stale; a lookup freshens it."""
    table = RoutingTable(LOCAL, k=4, now=0.0)
    table.observe(in_bucket(10, 0), now=0.0)
    table.observe(in_bucket(200, 0), now=50.0)
    assert table.stale_buckets(now=99.0, interval=100.0) == []
    assert table.stale_buckets(now=100.0, interval=100.0) == [10]
    assert table.stale_buckets(now=150.0, interval=100.0) == [10, 200]
    table.touch(in_bucket(10, 3).node_id, now=150.0)
    assert table.stale_buckets(now=200.0, interval=100.0) == [200]
    # an empty bucket is never reported, even if a lookup touched it
    table.touch(in_bucket(50, 0).node_id, now=0.0)
    assert 50 not in table.stale_buckets(now=1000.0, interval=100.0)


def test_random_id_in_bucket_lands_there() -> None:
    """DHT-5.4: the refresh target of bucket i lies in bucket i."""
    table = RoutingTable(LOCAL)
    rng = random.Random(9)
    for index in (0, 1, 5, 100, 255):
        for _ in range(20):
            assert bucket_index(LOCAL, table.random_id_in_bucket(index, rng)) == index
