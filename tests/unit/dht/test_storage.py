"""The record table: freshness by seq, quotas and expiry (DHT-3.5, DHT-4.3, DHT-4.4, DHT-4.5)."""

import pytest

from railgun_ref.core.errors import ErrorCode, RemoteProtocolError
from railgun_ref.dht.records import Record
from railgun_ref.dht.storage import PutOutcome, RecordTable, StorageLimits

from .helpers import T0, ident, record

ALICE, BOB, CAROL = ident(11), ident(12), ident(13)


def expiring(publisher_n: int, at: float, *, seq: int = 1, room: bytes = b"room-1") -> Record:
    return record(ident(publisher_n), ident_bytes=room, seq=seq, expires_ms=int(at * 1000))


def refused(table: RecordTable, rec: Record) -> ErrorCode:
    with pytest.raises(RemoteProtocolError) as info:
        table.put(rec)
    return info.value.code


def test_stored_replaced_unchanged() -> None:
    """DHT-3.5: a new entry is STORED, a higher seq REPLACED, the identical record UNCHANGED."""
    table = RecordTable()
    first = record(ALICE, seq=1)
    assert table.put(first) is PutOutcome.STORED
    assert table.put(first) is PutOutcome.UNCHANGED
    newer = record(ALICE, seq=2, value=b"v2")
    assert table.put(newer) is PutOutcome.REPLACED
    assert table.get(first.key, now=T0) == [newer]
    assert len(table) == 1


def test_a_key_holds_one_record_per_publisher() -> None:
    """DHT-3.4, DHT-4.1: records of different publishers under one key live side by side,
    listed in publisher-id order."""
    table = RecordTable()
    records = [record(p) for p in (ALICE, BOB, CAROL)]
    assert [table.put(r) for r in records] == [PutOutcome.STORED] * 3
    held = table.get(records[0].key, now=T0)
    assert {r.publisher_id for r in held} == {p.node_id for p in (ALICE, BOB, CAROL)}
    # in publisher-id order, a stable order for vectors
    assert [r.publisher_id for r in held] == sorted(r.publisher_id for r in held)


def test_lower_seq_is_stale() -> None:
    """DHT-3.5: a record older than the held one is refused STALE_SEQUENCE."""
    table = RecordTable()
    table.put(record(ALICE, seq=5))
    assert refused(table, record(ALICE, seq=4)) is ErrorCode.STALE_SEQUENCE
    assert table.get(record(ALICE).key, now=T0)[0].seq == 5


def test_same_seq_different_bytes_is_a_conflict() -> None:
    """DHT-3.5: an equal seq with different content is refused, and the held one stays."""
    table = RecordTable()
    held = record(ALICE, seq=5, value=b"a")
    table.put(held)
    assert refused(table, record(ALICE, seq=5, value=b"b")) is ErrorCode.STALE_SEQUENCE
    assert table.get(held.key, now=T0) == [held]


def test_per_key_quota() -> None:
    """DHT-4.4: a key holds at most `per_key` records; a replacement still fits."""
    table = RecordTable(StorageLimits(per_key=2, per_publisher=10, total=10))
    table.put(record(ALICE))
    table.put(record(BOB))
    assert refused(table, record(CAROL)) is ErrorCode.QUOTA
    assert table.put(record(ALICE, seq=2)) is PutOutcome.REPLACED
    assert table.put(record(CAROL, ident_bytes=b"room-2")) is PutOutcome.STORED


def test_per_publisher_quota() -> None:
    """DHT-4.4: one publisher holds at most `per_publisher` records across keys."""
    table = RecordTable(StorageLimits(per_key=10, per_publisher=2, total=10))
    table.put(record(ALICE, ident_bytes=b"r1"))
    table.put(record(ALICE, ident_bytes=b"r2"))
    assert refused(table, record(ALICE, ident_bytes=b"r3")) is ErrorCode.QUOTA
    assert table.put(record(BOB, ident_bytes=b"r3")) is PutOutcome.STORED
    # removing one frees the publisher's slot
    assert table.remove(record(ALICE, ident_bytes=b"r1").key, ALICE.node_id) is not None
    assert table.put(record(ALICE, ident_bytes=b"r3")) is PutOutcome.STORED


def test_total_quota() -> None:
    """DHT-4.4: the node holds at most `total` records."""
    table = RecordTable(StorageLimits(per_key=10, per_publisher=10, total=3))
    for n in range(3):
        table.put(record(ident(20 + n), ident_bytes=b"r%d" % n))
    assert refused(table, record(ident(30), ident_bytes=b"r9")) is ErrorCode.QUOTA
    assert len(table) == 3


def test_expire_at_exactly_expiry() -> None:
    """DHT-4.3: a record leaves when `now` reaches its expiry, not a moment before."""
    table = RecordTable()
    rec = expiring(11, T0 + 10)
    table.put(rec)
    assert table.next_expiry() == T0 + 10
    assert table.expire(now=T0 + 9.999) == []
    assert table.get(rec.key, now=T0 + 9.999) == [rec]
    assert table.get(rec.key, now=T0 + 10) == []  # get already hides it at the expiry
    assert table.expire(now=T0 + 10) == [rec]
    assert len(table) == 0
    assert table.next_expiry() is None
    assert table.keys() == []


def test_expire_returns_every_due_record_in_order() -> None:
    """DHT-4.3: one expire call drops every record due by then, earliest first."""
    table = RecordTable()
    recs = [expiring(40 + n, T0 + at, room=b"r%d" % n) for n, at in enumerate((30, 10, 20))]
    for r in recs:
        table.put(r)
    dropped = table.expire(now=T0 + 25)
    assert [r.expires_at for r in dropped] == [T0 + 10, T0 + 20]
    assert table.next_expiry() == T0 + 30


def test_replaced_records_old_expiry_does_not_remove_the_new_one() -> None:
    """DHT-4.3: the heap entry of a replaced record is stale and leaves the new record alone."""
    table = RecordTable()
    old = expiring(11, T0 + 10, seq=1)
    new = expiring(11, T0 + 100, seq=2)
    table.put(old)
    table.put(new)
    assert table.next_expiry() == T0 + 100  # skips the replaced record's entry
    assert table.expire(now=T0 + 50) == []
    assert table.get(new.key, now=T0 + 50) == [new]
    assert table.expire(now=T0 + 100) == [new]


def test_replacement_with_an_earlier_expiry_expires_at_its_own_time() -> None:
    """DHT-4.3: a newer record that expires sooner leaves at its own expiry."""
    table = RecordTable()
    table.put(expiring(11, T0 + 100, seq=1))
    newer = expiring(11, T0 + 10, seq=2)
    table.put(newer)
    assert table.next_expiry() == T0 + 10
    assert table.expire(now=T0 + 10) == [newer]
    assert table.expire(now=T0 + 200) == []
    assert len(table) == 0


def test_next_expiry_skips_removed_records() -> None:
    """DHT-4.3: a removed record's heap entry does not wake the node."""
    table = RecordTable()
    gone = expiring(11, T0 + 5, room=b"a")
    kept = expiring(12, T0 + 50, room=b"b")
    table.put(gone)
    table.put(kept)
    table.remove(gone.key, gone.publisher_id)
    assert table.next_expiry() == T0 + 50


def test_restore_skips_expired_records() -> None:
    """DHT-4.5: records replayed after a restart are kept only while still live."""
    table = RecordTable()
    live, dead = expiring(11, T0 + 100, room=b"a"), expiring(12, T0 + 5, room=b"b")
    assert table.restore(live, now=T0 + 10) is True
    assert table.restore(dead, now=T0 + 10) is False
    assert table.restore(expiring(13, T0 + 10, room=b"c"), now=T0 + 10) is False  # exactly now
    assert table.all_records() == [live]


def test_restore_respects_seq_and_quota() -> None:
    """DHT-4.5: a restored record goes through the same freshness and quota rules."""
    table = RecordTable(StorageLimits(per_key=1, per_publisher=10, total=10))
    assert table.restore(record(ALICE, seq=3), now=T0)
    assert not table.restore(record(ALICE, seq=2), now=T0)
    assert not table.restore(record(BOB), now=T0)
    assert len(table) == 1


def test_counts_follow_removal_and_replacement() -> None:
    """DHT-4.4: replacing does not double-count; removing frees per-key and total slots."""
    table = RecordTable(StorageLimits(per_key=1, per_publisher=1, total=1))
    table.put(record(ALICE, seq=1))
    table.put(record(ALICE, seq=2))
    assert len(table) == 1
    assert table.remove(record(ALICE).key, ALICE.node_id) is not None
    assert table.remove(record(ALICE).key, ALICE.node_id) is None
    assert table.put(record(BOB)) is PutOutcome.STORED
