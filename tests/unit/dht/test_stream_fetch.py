"""DHT-7.8: a get asks truncated holders again on the stream channel.

`DhtHarness` answers by hand, so each outcome of the stream FIND_VALUE (answered,
refused, timed out, never needed) is reached on purpose.
"""

import pytest

from railgun_ref.core.errors import ErrorCode, LocalProtocolError
from railgun_ref.dht.geometry import distance
from railgun_ref.dht.keys import KeyType, derive_key
from railgun_ref.dht.records import Record
from railgun_ref.dht.service import DhtConfig, DhtCounter
from railgun_ref.events import GetFinished
from railgun_ref.identity.keys import Identity
from railgun_ref.rpc.requests import Channel
from railgun_ref.wire import cbor
from railgun_ref.wire.messages import FindValue, Ping, Value

from .helpers import T0, DhtHarness, Sent, address, ident, record

ME = ident(1)
IDENT = b"room-big"
KEY = derive_key(KeyType.ROOM, IDENT)
MEMBERS = [ident(500 + n) for n in range(8)]
RECORDS = sorted(
    (record(m, ident_bytes=IDENT, value=bytes(200)) for m in MEMBERS),
    key=lambda r: r.publisher_id,
)


def holders(count: int) -> list[Identity]:
    return sorted((ident(100 + n) for n in range(count)), key=lambda p: distance(p.node_id, KEY))


def harness(people: list[Identity], **config: int) -> DhtHarness:
    h = DhtHarness(ME, DhtConfig(k=len(people), alpha=len(people), **config))
    for n, p in enumerate(people):
        h.dht.observe(p.node_id, address(n + 1), now=T0)
    h.take(Ping)
    return h


def value(records: list[Record], *, truncated: bool) -> Value:
    return Value(
        records=tuple(r.to_cbor_value() for r in records), contacts=(), truncated=truncated
    )


def on_stream(h: DhtHarness) -> list[Sent]:
    return [s for s in h.take(FindValue) if s.channel is Channel.STREAM]


def found(h: DhtHarness) -> list[bytes]:
    (done,) = h.of_type(GetFinished)
    return [Record.from_cbor_value(cbor.decode(r)).publisher_id for r in done.records]


def test_a_truncated_answer_is_fetched_again_on_the_stream() -> None:
    """DHT-7.8: same key, same holder and address, stream channel; the get waits for it."""
    h = harness(holders(1))
    h.dht.get(KEY, now=T0, quorum=1)
    (asked,) = h.take(FindValue)
    assert asked.channel is Channel.DATAGRAM
    h.answer(asked, value(RECORDS[:3], truncated=True), now=T0 + 0.1)
    (again,) = on_stream(h)
    assert (again.message, again.address, again.peer) == (asked.message, asked.address, asked.peer)
    assert again.request_id != asked.request_id
    assert h.of_type(GetFinished) == []  # the lookup is done, the fetch is not
    h.answer(again, value(RECORDS, truncated=False), now=T0 + 0.2)
    assert found(h) == [r.publisher_id for r in RECORDS]
    assert h.dht.counters.get_count(DhtCounter.STREAM_FETCH) == 1


def test_complete_answers_need_no_stream() -> None:
    """DHT-7.8: only `truncated` answers are asked again."""
    h = harness(holders(2))
    h.dht.get(KEY, now=T0, quorum=2)
    for n, asked in enumerate(h.take(FindValue)):
        h.answer(asked, value(RECORDS[:2], truncated=False), now=T0 + 0.1 * n)
    assert on_stream(h) == [] and len(found(h)) == 2


def test_at_most_stream_fetches_holders_are_asked() -> None:
    """DHT-7.8: the first `stream_fetches` truncated holders, in the order they answered."""
    h = harness(holders(4), stream_fetches=2)
    h.dht.get(KEY, now=T0, quorum=4)
    asked = h.take(FindValue)
    for n, sent in enumerate(reversed(asked)):
        h.answer(sent, value(RECORDS[:3], truncated=True), now=T0 + 0.1 * n)
    fetches = on_stream(h)
    assert [f.peer for f in fetches] == [asked[-1].peer, asked[-2].peer]
    for fetch in fetches:
        h.answer(fetch, value(RECORDS, truncated=False), now=T0 + 1)
    assert on_stream(h) == [] and len(found(h)) == len(RECORDS)


@pytest.mark.parametrize("fail", ["refused", "timed out"])
def test_a_failed_fetch_hands_its_turn_to_the_next_holder(fail: str) -> None:
    """DHT-7.8: an ERROR or a timeout of the stream FIND_VALUE moves on to the next truncated
    holder, and does not count against the contact (DHT-5.3)."""
    h = harness(holders(3), stream_fetches=2, max_failures=1)  # one counted failure drops it
    h.dht.get(KEY, now=T0, quorum=3)
    asked = h.take(FindValue)
    for n, sent in enumerate(asked):
        h.answer(sent, value(RECORDS[:3], truncated=True), now=T0 + 0.1 * n)
    first, second = on_stream(h)
    assert [first.peer, second.peer] == [asked[0].peer, asked[1].peer]
    h.answer(second, value(RECORDS[:5], truncated=False), now=T0 + 0.4)
    if fail == "refused":
        h.refuse(first, ErrorCode.QUOTA, now=T0 + 0.5)
    else:
        h.time_out(first, now=T0 + 5.1)
    (retry,) = on_stream(h)
    assert retry.peer == asked[2].peer
    assert h.of_type(GetFinished) == []
    h.answer(retry, value(RECORDS, truncated=False), now=T0 + 6)
    assert len(found(h)) == len(RECORDS)
    assert h.dht.counters.get_count(DhtCounter.STREAM_FETCH_FAILED) == 1
    assert first.peer is not None and first.peer in h.dht.routing


def test_failures_stop_after_stream_fetches_of_them() -> None:
    """DHT-7.8: once `stream_fetches` fetches failed, no other holder is asked on a stream
    (streams may be blocked) and the get ends with what the datagrams carried."""
    h = harness(holders(6), stream_fetches=2)
    h.dht.get(KEY, now=T0, quorum=6)
    for n, sent in enumerate(h.take(FindValue)):
        h.answer(sent, value(RECORDS[:3], truncated=True), now=T0 + 0.1 * n)
    tried = 0
    while fetches := on_stream(h):
        tried += len(fetches)
        for fetch in fetches:
            h.time_out(fetch, now=T0 + 6)
    assert tried == 3  # two at once, the first failure hands its turn on, the second stops
    assert len(found(h)) == 3
    assert h.dht.counters.get_count(DhtCounter.STREAM_FETCH_FAILED) == 3


def test_zero_stream_fetches_keeps_what_the_datagrams_carried() -> None:
    """DHT-7.8: `stream_fetches = 0` turns the fetch off: the get ends with the prefixes."""
    h = harness(holders(1), stream_fetches=0)
    h.dht.get(KEY, now=T0)
    (asked,) = h.take(FindValue)
    h.answer(asked, value(RECORDS[:3], truncated=True), now=T0 + 0.1)
    assert on_stream(h) == [] and len(found(h)) == 3


def test_stream_fetches_is_checked() -> None:
    """DHT-9.1: a negative number of fetches is a caller error."""
    with pytest.raises(LocalProtocolError):
        DhtConfig(stream_fetches=-1)
