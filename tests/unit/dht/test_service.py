"""The DHT service driven by hand: serving, storing, getting, eviction checks and timers
(DHT-4.1 .. DHT-4.3, DHT-5.2, DHT-5.3, DHT-6.6, DHT-7.2 .. DHT-7.6, DHT-8.1 .. DHT-8.6).

`DhtHarness` captures every request the service sends, so each test decides
which peer answers what, refuses or stays silent.
"""

import pytest

from railgun_ref.core.constants import DHT_K, DHT_MAX_FAILURES
from railgun_ref.core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from railgun_ref.core.ids import NodeId
from railgun_ref.dht.geometry import bucket_index, distance
from railgun_ref.dht.keys import KeyType, derive_key
from railgun_ref.dht.records import MAX_TTL, MAX_VALUE_SIZE, Record
from railgun_ref.dht.service import DhtConfig, DhtCounter
from railgun_ref.dht.storage import PutOutcome
from railgun_ref.events import (
    GetFinished,
    LookupFinished,
    RecordDropped,
    RecordStored,
    StoreFinished,
)
from railgun_ref.identity.keys import Identity
from railgun_ref.rpc.requests import Channel
from railgun_ref.wire import cbor
from railgun_ref.wire.messages import (
    FindNode,
    FindValue,
    Nodes,
    Ping,
    Pong,
    Store,
    Stored,
    StoreStatus,
    Value,
    WireContact,
)

from .helpers import T0, DhtHarness, address, at_distance, ident, record

ME = ident(1)
ROOM_KEY = derive_key(KeyType.ROOM, b"r")


def population(count: int, key: bytes, *, start: int = 100) -> list[Identity]:
    """`count` fixed identities, nearest `key` first."""
    return sorted((ident(start + n) for n in range(count)), key=lambda p: distance(p.node_id, key))


def addr_of(p: Identity) -> tuple[str, int]:
    return address(int.from_bytes(p.node_id[:2], "big"))


def wire(people: list[Identity]) -> tuple[WireContact, ...]:
    return tuple((p.node_id, addr_of(p)) for p in people)


def meet(h: DhtHarness, people: list[Identity]) -> None:
    for p in people:
        h.dht.observe(p.node_id, addr_of(p), now=h.now)
    h.take(Ping)  # eviction checks of full buckets are not what these tests look at


def nodes_reply(people: list[Identity]) -> Nodes:
    return Nodes(contacts=wire(people))


# ------------------------------------------------------------------ config


@pytest.mark.parametrize(
    "kwargs",
    [
        {"k": 0},
        {"alpha": 0},
        {"slow_after_min": 0.0},
        {"slow_after_min": 3.0, "slow_after_max": 2.0},
        {"refresh_interval": 0.0},
        {"record_ttl": -1.0},
    ],
)
def test_config_is_checked(kwargs: dict[str, float]) -> None:
    """DHT-9.1: parameters out of range are a caller error."""
    with pytest.raises(LocalProtocolError):
        DhtConfig(**kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------ serving


def test_find_node_answers_the_k_closest_minus_the_asker() -> None:
    """DHT-7.2: NODES carries the k closest contacts to the target, never the asker itself."""
    h = DhtHarness(ME, DhtConfig(k=5))
    people = [ident(200 + n) for n in range(40)]
    meet(h, people)
    target = bytes(32)
    held = [c.node_id for c in h.dht.routing.contacts()]
    expected = sorted(held, key=lambda i: distance(i, target))
    asker = NodeId(expected[0])
    reply = h.dht.handle_find_node(FindNode(target=target), asker, Channel.DATAGRAM)
    assert [n for n, _ in reply.contacts] == expected[1:6]
    assert h.dht.counters.get_count(DhtCounter.SERVED_FIND_NODE) == 1


def test_find_value_returns_records_then_contacts_and_flags_truncation() -> None:
    """DHT-7.4, DHT-4.1: a VALUE holds the records that fit the datagram (in publisher-id
    order), then contacts; truncated says some were left out."""
    h = DhtHarness(ME)
    meet(h, [ident(300 + n) for n in range(5)])
    for n in range(6):
        publisher = ident(400 + n)
        h.dht.records.put(record(publisher, ident_bytes=b"r", value=bytes(MAX_VALUE_SIZE)))
    reply = h.dht.handle_find_value(FindValue(key=ROOM_KEY), ME.node_id, Channel.DATAGRAM, now=T0)
    assert reply.truncated
    assert 0 < len(reply.records) < 6
    assert len(cbor.encode(reply.to_body())) < 1200
    big = h.dht.handle_find_value(FindValue(key=ROOM_KEY), ME.node_id, Channel.STREAM, now=T0)
    assert not big.truncated
    assert len(big.records) == 6
    publishers = [Record.from_cbor_value(r).publisher_id for r in big.records]
    assert publishers == sorted(publishers)
    assert len(big.contacts) == 5


def test_find_value_skips_expired_records() -> None:
    """DHT-4.3: an expired record is never served, even before the expiry timer ran."""
    h = DhtHarness(ME)
    h.dht.records.put(record(ident(5), ident_bytes=b"r", expires_ms=int((T0 + 10) * 1000)))
    live = h.dht.handle_find_value(FindValue(key=ROOM_KEY), ME.node_id, Channel.DATAGRAM, now=T0)
    late = h.dht.handle_find_value(
        FindValue(key=ROOM_KEY), ME.node_id, Channel.DATAGRAM, now=T0 + 10
    )
    assert len(live.records) == 1
    assert late.records == ()


def test_handle_store_outcomes_and_events() -> None:
    """DHT-7.6: STORED, REPLACED, UNCHANGED, each change reported as RecordStored."""
    h = DhtHarness(ME)
    first = record(ident(5), seq=1)
    second = record(ident(5), seq=2)
    results = [
        h.dht.handle_store(Store(record=r.to_cbor_value()), ident(5).node_id, now=T0)
        for r in (first, first, second)
    ]
    assert results == [
        Stored(status=StoreStatus.STORED),
        Stored(status=StoreStatus.UNCHANGED),
        Stored(status=StoreStatus.REPLACED),
    ]
    stored = h.of_type(RecordStored)
    assert [Record.from_cbor_value(cbor.decode(e.record)).seq for e in stored] == [1, 2]
    assert h.dht.counters.get_count(DhtCounter.STORE, PutOutcome.STORED) == 1
    assert h.dht.counters.get_count(DhtCounter.STORE, PutOutcome.UNCHANGED) == 1
    assert h.dht.counters.get_count(DhtCounter.STORE, PutOutcome.REPLACED) == 1


@pytest.mark.parametrize(
    ("build", "code"),
    [
        (lambda: {**record(ident(5)).to_cbor_value(), 6: bytes(64)}, ErrorCode.BAD_SIGNATURE),
        (lambda: record(ident(5), expires_ms=int(T0 * 1000)).to_cbor_value(), ErrorCode.EXPIRED),
        (
            lambda: record(ident(5), expires_ms=int((T0 + MAX_TTL + 1) * 1000)).to_cbor_value(),
            ErrorCode.TTL_TOO_LONG,
        ),
        (
            lambda: record(
                ident(5), key_type=KeyType.PEER, ident_bytes=ident(6).node_id
            ).to_cbor_value(),
            ErrorCode.FORBIDDEN,
        ),
        (lambda: {0: 2}, ErrorCode.MALFORMED),
    ],
)
def test_handle_store_refusals_raise_with_their_code(build: object, code: ErrorCode) -> None:
    """DHT-7.6: a refused STORE raises RemoteProtocolError with the code the ERROR names."""
    h = DhtHarness(ME)
    assert callable(build)
    with pytest.raises(RemoteProtocolError) as info:
        h.dht.handle_store(Store(record=build()), ident(5).node_id, now=T0)
    assert info.value.code is code
    assert len(h.dht.records) == 0
    assert h.of_type(RecordStored) == []


# ------------------------------------------------------------------ store queries


def test_store_sends_one_store_per_target_even_with_late_lookup_answers() -> None:
    """DHT-8.1: a store puts the record once on each of the k closest, whatever lookup
    answers or timeouts arrive after the lookup finished."""
    people = population(12, ROOM_KEY)
    assert distance(ME.node_id, ROOM_KEY) > distance(people[1].node_id, ROOM_KEY)
    h = DhtHarness(ME, DhtConfig(k=2, alpha=3))
    meet(h, people[6:9])
    h.dht.store(KeyType.ROOM, b"r", b"v", now=T0)
    asked = h.take(FindNode)
    assert [s.peer for s in asked] == [people[6].node_id, people[7].node_id]
    h.answer(asked[0], nodes_reply(people[:2]), now=T0 + 0.1)
    closer = h.take(FindNode)
    for s in closer:
        h.answer(s, nodes_reply([]), now=T0 + 0.2)
    stores = h.take(Store)
    assert {s.peer for s in stores} == {p.node_id for p in people[:2]}
    # people[7] was pushed out of the k closest while waiting; its answer comes late.
    h.answer(asked[1], nodes_reply([]), now=T0 + 0.3)
    assert h.take(Store) == []
    for s in stores:
        h.answer(s, Stored(status=StoreStatus.STORED), now=T0 + 0.4)
    finished = h.of_type(StoreFinished)
    assert len(finished) == 1
    assert finished[0].accepted == 2
    assert h.dht.counters.get_count(DhtCounter.STORE_ROUNDS) == 1


def test_store_outcomes_are_counted() -> None:
    """DHT-8.1: StoreFinished counts accepted, refused and failed STOREs."""
    people = population(6, ROOM_KEY)
    h = DhtHarness(ME, DhtConfig(k=3))
    meet(h, people[:3])
    h.dht.store(KeyType.ROOM, b"r", b"v", now=T0)
    for s in h.take(FindNode):
        h.answer(s, nodes_reply([]), now=T0 + 0.1)
    stores = h.take(Store)
    assert len(stores) == 3
    h.answer(stores[0], Stored(status=StoreStatus.STORED), now=T0 + 0.2)
    h.refuse(stores[1], ErrorCode.QUOTA, now=T0 + 0.2)
    h.time_out(stores[2], now=T0 + 5)
    (finished,) = h.of_type(StoreFinished)
    local = 1 if len(h.dht.records) else 0
    assert (finished.accepted, finished.refused, finished.failed) == (1 + local, 1, 1)
    assert h.dht.counters.get_count(DhtCounter.REFUSED, ErrorCode.QUOTA) == 1


def test_publisher_among_the_closest_holds_a_copy() -> None:
    """DHT-8.1: with fewer than k peers the publisher holds its own record too."""
    h = DhtHarness(ME, DhtConfig(k=DHT_K))
    h.dht.store(KeyType.ROOM, b"r", b"v", now=T0)
    (finished,) = h.of_type(StoreFinished)
    assert finished.accepted == 1
    assert [r.value for r in h.dht.records.get(ROOM_KEY, now=T0)] == [b"v"]
    assert len(h.of_type(RecordStored)) == 1


def test_publisher_does_not_hold_a_record_peers_would_refuse() -> None:
    """DHT-3.4: a peer record naming another node is refused by the publisher itself too,
    so it never serves or replicates a record nobody else would accept."""
    h = DhtHarness(ME, DhtConfig(k=DHT_K))
    h.dht.store(KeyType.PEER, ident(2).node_id, b"v", now=T0)
    (finished,) = h.of_type(StoreFinished)
    assert (finished.accepted, finished.refused) == (0, 1)
    assert len(h.dht.records) == 0
    h.dht.store(KeyType.PEER, ME.node_id, b"me", now=T0)
    assert len(h.dht.records) == 1


def test_seq_is_the_clock_in_ms_and_increases_per_publish() -> None:
    """DHT-8.6: seq is round(now x 1000), or the previous seq + 1 if that is not greater."""
    h = DhtHarness(ME)
    h.dht.store(KeyType.ROOM, b"r", b"a", now=T0)
    (first,) = h.dht.records.get(ROOM_KEY, now=T0)
    assert first.seq == round(T0 * 1000)
    h.dht.store(KeyType.ROOM, b"r", b"b", now=T0)
    (held,) = h.dht.records.get(ROOM_KEY, now=T0)
    assert held.value == b"b"
    assert held.seq == round(T0 * 1000) + 1
    h.dht.store(KeyType.ROOM, b"r", b"c", now=T0 + 2.5)
    (later,) = h.dht.records.get(ROOM_KEY, now=T0 + 2.5)
    assert later.seq == round((T0 + 2.5) * 1000)


def test_a_store_is_judged_by_the_record_alone() -> None:
    """DHT-4.2: the sender of a STORE need not be the publisher; the same record gets the same
    answer whoever sends it."""
    h = DhtHarness(ME)
    rec = record(ident(5))
    senders = [ident(5).node_id, ident(6).node_id, ident(7).node_id]
    results = [h.dht.handle_store(Store(record=rec.to_cbor_value()), s, now=T0) for s in senders]
    assert [r.status for r in results] == [
        StoreStatus.STORED,
        StoreStatus.UNCHANGED,
        StoreStatus.UNCHANGED,
    ]
    forged = {**rec.to_cbor_value(), 6: bytes(64)}
    for sender in senders:
        with pytest.raises(RemoteProtocolError) as info:
            h.dht.handle_store(Store(record=forged), sender, now=T0)
        assert info.value.code is ErrorCode.BAD_SIGNATURE


# ------------------------------------------------------------------ get


def test_get_checks_records_and_stops_at_quorum() -> None:
    """DHT-7.4/DHT-3.3: records in VALUE replies are checked against the key; the get ends at
    the first holder with a valid record (quorum 1)."""
    people = population(6, ROOM_KEY)
    h = DhtHarness(ME, DhtConfig(k=3, alpha=1))
    meet(h, people[:3])
    good = record(ident(50), ident_bytes=b"r")
    other_key = record(ident(51), ident_bytes=b"not r")
    forged = {**record(ident(52), ident_bytes=b"r").to_cbor_value(), 6: bytes(64)}
    qid = h.dht.get(ROOM_KEY, now=T0)
    (first,) = h.take(FindValue)
    h.answer(
        first,
        Value(records=(other_key.to_cbor_value(), forged), contacts=()),
        now=T0 + 0.1,
    )
    assert h.of_type(GetFinished) == []  # nothing valid yet
    (second,) = h.take(FindValue)
    h.answer(second, Value(records=(good.to_cbor_value(),), contacts=()), now=T0 + 0.2)
    (done,) = h.of_type(GetFinished)
    assert done.query_id == qid
    assert done.found
    assert [Record.from_cbor_value(cbor.decode(r)) for r in done.records] == [good]
    assert h.dht.counters.get_count(DhtCounter.REJECTED_RECORD, ErrorCode.WRONG_KEY) == 1
    assert h.dht.counters.get_count(DhtCounter.REJECTED_RECORD, ErrorCode.BAD_SIGNATURE) == 1
    assert h.take(FindValue) == []  # the third peer is never asked


def test_get_keeps_the_newest_record_per_publisher() -> None:
    """DHT-8.3: of several copies from one publisher, the highest seq wins."""
    people = population(4, ROOM_KEY)
    h = DhtHarness(ME, DhtConfig(k=2, alpha=2))
    meet(h, people[:2])
    h.dht.get(ROOM_KEY, now=T0, quorum=5)
    old, new = (
        record(ident(50), ident_bytes=b"r", seq=1),
        record(ident(50), ident_bytes=b"r", seq=9),
    )
    a, b = h.take(FindValue)
    h.answer(a, Value(records=(new.to_cbor_value(),), contacts=()), now=T0 + 0.1)
    h.answer(b, Value(records=(old.to_cbor_value(),), contacts=()), now=T0 + 0.1)
    (done,) = h.of_type(GetFinished)
    assert [Record.from_cbor_value(cbor.decode(r)).seq for r in done.records] == [9]


def test_get_with_nobody_to_ask_reports_not_found() -> None:
    """DHT-6.3: a get with an empty table ends at once, found=False."""
    h = DhtHarness(ME)
    h.dht.get(ROOM_KEY, now=T0)
    (done,) = h.of_type(GetFinished)
    assert not done.found
    assert done.records == ()


# ------------------------------------------------------------------ routing upkeep


def full_bucket(h: DhtHarness, k: int) -> list[Identity]:
    """Fill the far bucket (255) of ME with k identities, in order; return them."""
    far = [
        p for p in (ident(500 + n) for n in range(40)) if p.node_id[0] >> 7 != ME.node_id[0] >> 7
    ]
    for p in far[:k]:
        h.dht.observe(p.node_id, addr_of(p), now=h.now)
    assert h.take(Ping) == []
    return far


def test_full_bucket_pings_the_oldest_and_keeps_it_when_it_answers() -> None:
    """DHT-5.2: a newcomer to a full bucket triggers a PING of the oldest; an answer keeps it."""
    h = DhtHarness(ME, DhtConfig(k=2))
    far = full_bucket(h, 2)
    h.dht.observe(far[2].node_id, addr_of(far[2]), now=T0 + 1)
    (check,) = h.take(Ping)
    assert check.peer == far[0].node_id
    h.answer(check, Pong(observed=address(1)), now=T0 + 1.1)
    assert far[0].node_id in h.dht.routing
    assert far[2].node_id not in h.dht.routing
    assert h.dht.counters.get_count(DhtCounter.EVICTION_CHECKS) == 1


def test_full_bucket_evicts_an_oldest_that_times_out() -> None:
    """DHT-5.2: an oldest contact that does not answer the check is replaced by the newcomer."""
    h = DhtHarness(ME, DhtConfig(k=2))
    far = full_bucket(h, 2)
    h.dht.observe(far[2].node_id, addr_of(far[2]), now=T0 + 1)
    (check,) = h.take(Ping)
    h.time_out(check, now=T0 + 6)
    assert far[0].node_id not in h.dht.routing
    assert far[2].node_id in h.dht.routing


def test_an_error_answer_to_the_check_counts_as_alive() -> None:
    """DHT-5.2: an authenticated ERROR is an answer; the check ends and the next can start."""
    h = DhtHarness(ME, DhtConfig(k=2))
    far = full_bucket(h, 2)
    h.dht.observe(far[2].node_id, addr_of(far[2]), now=T0 + 1)
    (check,) = h.take(Ping)
    h.refuse(check, ErrorCode.QUOTA, now=T0 + 1.1)
    assert far[0].node_id in h.dht.routing
    h.dht.observe(far[3].node_id, addr_of(far[3]), now=T0 + 2)
    (second,) = h.take(Ping)  # not stuck: the next newcomer starts a new check
    assert second.peer == far[1].node_id


def test_an_error_fails_the_query_but_not_the_contact() -> None:
    """DHT-6.6, DHT-5.3: an ERROR answer fails the candidate (never queried again in that
    lookup) without counting against the contact, which stays in the table."""
    h = DhtHarness(ME, DhtConfig(k=DHT_K, max_failures=DHT_MAX_FAILURES))
    (refuser,) = population(1, ROOM_KEY)
    meet(h, [refuser])
    for attempt in range(3):
        h.dht.find_node(ROOM_KEY, now=T0 + attempt)
        (query,) = h.take(FindNode)
        h.refuse(query, ErrorCode.QUOTA, now=T0 + attempt + 0.1)
        assert h.take(FindNode) == []
    assert refuser.node_id in h.dht.routing
    finished = h.of_type(LookupFinished)
    assert [(f.closest, f.failures) for f in finished] == [((), 1)] * 3


def test_a_lookup_goes_past_its_k_nearest_contacts_when_they_are_all_dead() -> None:
    """DHT-6.3, DHT-8.4: seeded with 2k contacts, a lookup whose k nearest known contacts died
    together (a crashed replica set) goes on with the next ones instead of ending empty."""
    h = DhtHarness(ME, DhtConfig(k=2, alpha=2))
    people: list[Identity] = []
    per_bucket: dict[int | None, int] = {}
    for p in population(40, ROOM_KEY):  # the 4 nearest the key that fit 2-contact buckets
        index = bucket_index(ME.node_id, p.node_id)
        if per_bucket.get(index, 0) < 2 and len(people) < 4:
            per_bucket[index] = per_bucket.get(index, 0) + 1
            people.append(p)
    meet(h, people)
    assert len(h.dht.routing) == 4
    qid = h.dht.find_node(ROOM_KEY, now=T0)
    first = h.take(FindNode)
    assert [s.peer for s in first] == [people[0].node_id, people[1].node_id]
    for s in first:
        h.time_out(s, now=T0 + 5)
    second = h.take(FindNode)
    assert [s.peer for s in second] == [people[2].node_id, people[3].node_id]
    for s in second:
        h.answer(s, nodes_reply([]), now=T0 + 5.1)
    (done,) = h.of_type(LookupFinished)
    assert done.query_id == qid
    assert [i for i, _ in done.closest] == [people[2].node_id, people[3].node_id]


def test_lookup_timeouts_remove_dead_contacts() -> None:
    """DHT-5.3: a contact whose requests time out max_failures times in a row is dropped."""
    h = DhtHarness(ME, DhtConfig(k=DHT_K, max_failures=DHT_MAX_FAILURES))
    (dead,) = population(1, ROOM_KEY)
    meet(h, [dead])
    for attempt in range(2):
        h.dht.find_node(ROOM_KEY, now=T0 + attempt)
        (query,) = h.take(FindNode)
        h.time_out(query, now=T0 + attempt + 5)
    assert dead.node_id not in h.dht.routing
    assert len(h.of_type(LookupFinished)) == 2


# ------------------------------------------------------------------ bootstrap


def test_bootstrap_pings_then_joins_through_the_first_answer() -> None:
    """DHT-8.2: bootstrap pings the given addresses, then looks up the node's own id."""
    h = DhtHarness(ME)
    seed = ident(77)
    qid = h.dht.bootstrap([addr_of(seed), address(9)], now=T0)
    pings = h.take(Ping)
    assert [p.peer for p in pings] == [None, None]  # ids are not known yet
    h.dht.observe(seed.node_id, addr_of(seed), now=T0 + 0.1)  # the node observes the PONG
    h.dht.on_response(h.pending(pings[0]), seed.node_id, Pong(observed=address(1)), now=T0 + 0.1)
    (join,) = h.take(FindNode)
    assert join.peer == seed.node_id
    assert join.message == FindNode(target=ME.node_id)
    h.answer(join, nodes_reply([]), now=T0 + 0.2)
    h.time_out(pings[1], now=T0 + 5)
    finished = h.of_type(LookupFinished)
    assert [f.query_id for f in finished] == [qid]
    assert finished[0].closest == ((seed.node_id, addr_of(seed)),)


def test_bootstrap_with_no_answer_still_ends() -> None:
    """DHT-8.2: when every bootstrap address is silent the join ends, with nobody found."""
    h = DhtHarness(ME)
    qid = h.dht.bootstrap([address(1), address(2)], now=T0)
    for ping in h.take(Ping):
        h.time_out(ping, now=T0 + 5)
    (finished,) = h.of_type(LookupFinished)
    assert finished.query_id == qid
    assert finished.closest == ()


def _join_and_refresh(config: DhtConfig) -> tuple[DhtHarness, int]:
    """Join with a neighbour in bucket 250 and five contacts in bucket 255, answering
    every FIND_NODE with no contacts; returns the harness and the refresh FIND_NODEs."""
    h = DhtHarness(ME, config=config)
    near = at_distance(ME.node_id, 2**250 + 1)
    far = [at_distance(ME.node_id, 2**255 + n) for n in range(1, 6)]
    for n, node_id in enumerate([near, *far]):
        h.dht.observe(node_id, address(n + 1), now=T0)
    h.take(Ping)
    h.dht.bootstrap([], now=T0)
    refresh_queries = 0
    while sent := h.take(FindNode):
        for s in sent:
            assert isinstance(s.message, FindNode)
            refresh_queries += s.message.target != ME.node_id
            h.answer(s, nodes_reply([]), now=T0 + 0.1)
    return h, refresh_queries


def test_join_refreshes_farther_buckets_with_short_lookups() -> None:
    """DHT-8.2: after its own lookup a joining node refreshes buckets 251..255 (farther
    than its nearest neighbour, in 250); each refresh ends once the `join_refresh_k`
    closest peers it knows answered, instead of asking every contact as a full one."""
    short, short_queries = _join_and_refresh(DhtConfig(join_refresh_k=1))
    full, full_queries = _join_and_refresh(DhtConfig(join_refresh_k=DHT_K))
    for h in (short, full):
        assert h.dht.counters.get_count(DhtCounter.JOIN_REFRESH) == 5
        assert h.dht.counters.get_count(DhtCounter.REFRESH_DONE) == 5
    assert full_queries == 5 * 6  # a full lookup asks all six contacts, per bucket
    assert short_queries == 5 * 1  # a 1-closest lookup asks the closest it knows, once
    with pytest.raises(LocalProtocolError):
        DhtConfig(join_refresh_k=0)


# ------------------------------------------------------------------ timers


def test_expiry_timer_drops_records_and_reports_them() -> None:
    """DHT-4.3: the node wakes at a record's expiry, drops it and emits RecordDropped."""
    h = DhtHarness(ME)
    rec = record(ident(5), expires_ms=int((T0 + 60) * 1000))
    h.dht.handle_store(Store(record=rec.to_cbor_value()), ident(5).node_id, now=T0)
    assert h.dht.next_deadline() == T0 + 60
    h.dht.on_timer(now=T0 + 59.9)
    assert len(h.dht.records) == 1
    h.dht.on_timer(now=T0 + 60)
    assert len(h.dht.records) == 0
    (dropped,) = h.of_type(RecordDropped)
    assert (dropped.key, dropped.publisher_id, dropped.reason) == (
        rec.key,
        rec.publisher_id,
        "expired",
    )
    assert h.dht.counters.get_count(DhtCounter.EXPIRED) == 1


def test_republish_signs_a_fresh_record_and_stores_it_again() -> None:
    """DHT-8.4: the publisher republishes with a higher seq and a fresh expiry."""
    h = DhtHarness(ME, DhtConfig(k=2, republish_interval=100.0, record_ttl=150.0))
    people = population(2, ROOM_KEY)
    meet(h, people)
    h.dht.store(KeyType.ROOM, b"r", b"v", now=T0)
    for s in h.take(FindNode):
        h.answer(s, nodes_reply([]), now=T0 + 0.1)
    first = {rec for _, rec in h.take_stores()}
    h.dht.on_timer(now=T0 + 100)
    for s in h.take(FindNode):
        h.answer(s, nodes_reply([]), now=T0 + 100.1)
    again = {rec for _, rec in h.take_stores()}
    (old,), (new,) = first, again
    assert new.seq > old.seq
    assert new.expires_at == T0 + 250
    assert new.value == old.value


def test_replication_pushes_held_records_to_the_closest_contacts() -> None:
    """DHT-8.5: a holder re-stores every live record it holds on the k closest it knows."""
    h = DhtHarness(ME, DhtConfig(k=3, replicate_interval=50.0))
    people = population(5, ROOM_KEY)
    meet(h, people)
    rec = record(ident(5), ident_bytes=b"r")
    h.dht.handle_store(Store(record=rec.to_cbor_value()), ident(5).node_id, now=T0)
    h.dht.on_timer(now=T0 + 50)
    taken = h.take_stores()
    stores = [s for s, _ in taken]
    assert [s.peer for s in stores] == [p.node_id for p in people[:3]]
    assert all(sent == rec for _, sent in taken)
    h.answer(stores[0], Stored(status=StoreStatus.STORED), now=T0 + 50.1)
    h.refuse(stores[1], ErrorCode.STALE_SEQUENCE, now=T0 + 50.1)
    h.time_out(stores[2], now=T0 + 55)
    assert h.dht.counters.get_count(DhtCounter.REPLICATED) == 1
    assert h.dht.counters.get_count(DhtCounter.REFUSED, ErrorCode.STALE_SEQUENCE) == 1
    assert h.dht.counters.get_count(DhtCounter.REPLICATE_FAILED) == 1
