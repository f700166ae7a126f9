"""RLY-9, POW-6: a loaded committee relay prices RELAY requests; the requester pays. No sockets.

The relay's admission gate serves one request per second with a queue of one; free
requests beyond are answered BUSY with a price, a paid one goes ahead of free ones, and
a reused solution is refused and counted. The P2P core pays a BUSY once per relay and
message, through `SolvePow`, and sends the request again carrying the solution.
"""

import dataclasses
import random

import pytest

from railgun_ref.abuse.admission import AdmissionGate, SolvePow
from railgun_ref.abuse.pow import PowChallenge, PowConfig, PowCounter, PowRefusal, solve
from railgun_ref.core.constants import APP_TOPIC_RELAY
from railgun_ref.core.errors import ErrorCode, RemoteProtocolError
from railgun_ref.relay.committee import CommitteeRelay, RelayCounter, RelayRefusal
from railgun_ref.transport.p2p import P2PCounter, P2PRoomCore, SendApp
from railgun_ref.wire import cbor
from railgun_ref.wire.pow import PowSolution
from railgun_ref.wire.relay import (
    BusyFrame,
    decode_busy_frame,
    decode_relay_frame,
    encode_busy_frame,
    encode_relay_frame,
)
from tests.unit.relay.test_committee import RELAY_ADDRESS, Rig, relay_frame
from tests.unit.transport.test_p2p import T0, RoomNet, message_id
from tests.unit.transport.test_p2p_closed import join_closed

SEED = bytes(range(32))


def _loaded_rig() -> Rig:
    rig = Rig()
    gate = AdmissionGate(
        rig.relay_id, random.Random(5).randbytes, rate=1.0, config=PowConfig(queue_limit=1), now=T0
    )
    rig.relay = CommitteeRelay(admission=gate, now=T0)
    rig.lookup()
    return rig


def _busy(rig: Rig) -> list[tuple[SendApp, BusyFrame]]:
    out = []
    while (action := rig.relay.next_action()) is not None:
        if isinstance(action, SendApp) and action.topic == APP_TOPIC_RELAY:
            out.append((action, decode_busy_frame(action.payload)))
    return out


def _paid(rig: Rig, core: P2PRoomCore, challenge: PowChallenge) -> PowSolution:
    solution = solve(
        challenge.seed,
        rig.relay_id,
        core.node_id,
        challenge.effort,
        start=bytes(16),
        max_tries=1 << 16,
    )
    assert solution is not None
    return solution


# ---------------------------------------------------------------- codec (RLY-9.1, RLY-9.2)


def test_a_request_without_work_encodes_as_before_and_a_paid_one_round_trips() -> None:
    """RLY-9.1."""
    plain = relay_frame(1)
    assert 7 not in plain.to_value()
    solution = PowSolution(seed_head=SEED[:4], nonce=bytes(16), effort=16)
    paid = dataclasses.replace(plain, pow_solution=solution)
    assert decode_relay_frame(encode_relay_frame(paid)) == paid
    with pytest.raises(RemoteProtocolError) as caught:
        decode_relay_frame(cbor.encode({**plain.to_value(), 7: 0}))
    assert caught.value.code is ErrorCode.MALFORMED


def test_busy_round_trips_and_bad_ones_are_refused() -> None:
    """RLY-9.2, POW-6.2."""
    busy = BusyFrame(message_id=message_id(1), challenge=PowChallenge(seed=SEED, effort=16))
    assert decode_busy_frame(encode_busy_frame(busy)) == busy
    with pytest.raises(RemoteProtocolError) as caught:  # a relay takes only RELAY requests
        decode_relay_frame(encode_busy_frame(busy))
    assert caught.value.code is ErrorCode.UNKNOWN_TYPE
    bad = {**busy.to_value(), 3: [SEED, 0]}
    with pytest.raises(RemoteProtocolError) as caught:
        decode_busy_frame(cbor.encode(bad))
    assert caught.value.code is ErrorCode.MALFORMED


# ---------------------------------------------------------------- relay (RLY-9.3)


def test_a_loaded_relay_answers_busy_and_serves_the_paid_request_first() -> None:
    """RLY-9.3, POW-6.2, POW-6.3."""
    rig = _loaded_rig()
    a, b, _c = rig.cores
    for i in (1, 2, 3):  # one served at once, one waiting, one shed
        rig.request(a, relay_frame(i))
    (shed,) = _busy(rig)
    assert shed[0].peer == a.node_id and shed[1].message_id == message_id(3)
    assert shed[1].challenge.effort == 16
    assert rig.relay.counters.get_count(RelayCounter.FORWARDED) == 2  # message 1, to b and c
    solution = _paid(rig, b, shed[1].challenge)
    paid = dataclasses.replace(relay_frame(4), pow_solution=solution)
    rig.request(b, paid)
    (second,) = _busy(rig)  # the free one waiting makes room for the paid one
    assert second[1].message_id == message_id(2)
    rig.relay.on_timer(now=T0 + 1)
    assert rig.relay.in_flight() == 2  # messages 1 and 4
    assert rig.relay.counters.get_count(RelayCounter.REJECTED, RelayRefusal.SHED) == 2


def test_a_reused_solution_is_refused_and_counted() -> None:
    """RLY-9.3, POW-3.2."""
    rig = _loaded_rig()
    a, b, _c = rig.cores
    for i in (1, 2, 3):
        rig.request(a, relay_frame(i))
    (shed,) = _busy(rig)
    solution = _paid(rig, b, shed[1].challenge)
    for i in (4, 5):
        rig.request(b, dataclasses.replace(relay_frame(i), pow_solution=solution))
    assert rig.relay.counters.get_count(RelayCounter.REJECTED, ErrorCode.REPLAY) == 1
    gate = rig.relay.admission
    assert gate is not None
    assert gate.pow.counters.get_count(PowCounter.REFUSED, PowRefusal.REUSED) == 1


# ---------------------------------------------------------------- requester (RLY-9.4)


def _requester() -> tuple[P2PRoomCore, bytes, bytes]:
    net = RoomNet()
    cores = net.add(3)
    join_closed(net, cores, cores)
    a, b, c = cores
    relay = Rig().relay_id
    net.partition([a], [b, c])
    a.set_committee(ROOM_ID, [(relay, RELAY_ADDRESS)])
    net.run(4)
    mid = net.send(a, 40)
    while a.next_action() is not None:
        pass
    return a, relay, mid


ROOM_ID = relay_frame(0).room_id


def test_the_requester_pays_once_and_asks_again_with_the_solution() -> None:
    """RLY-9.4."""
    a, relay, mid = _requester()
    challenge = PowChallenge(seed=SEED, effort=16)
    busy = encode_busy_frame(BusyFrame(message_id=mid, challenge=challenge))
    a.relay_busy(relay, busy, now=T0 + 5)
    a.relay_busy(relay, busy, now=T0 + 5)  # the same price again: paid already
    asks = [x for x in iter(a.next_action, None) if isinstance(x, SolvePow)]
    assert len(asks) == 1 and asks[0].service == relay and asks[0].requester == a.node_id
    assert a.counters.get_count(P2PCounter.RELAY_POW_DECLINED) == 1
    ask = asks[0]
    solution = solve(SEED, relay, a.node_id, 16, start=ask.start, max_tries=ask.max_tries)
    a.relay_pow_solved(ask.token, solution, now=T0 + 5)
    sent = [x for x in iter(a.next_action, None) if isinstance(x, SendApp)]
    paid = [decode_relay_frame(x.payload) for x in sent if x.topic == APP_TOPIC_RELAY]
    assert [(p.message_id, p.pow_solution) for p in paid] == [(mid, solution)]
    a.relay_pow_solved(ask.token, solution, now=T0 + 5)
    assert a.counters.get_count(P2PCounter.RELAY_POW_LATE) == 1


def test_a_busy_for_nothing_we_asked_is_refused() -> None:
    """RLY-9.4."""
    a, relay, _mid = _requester()
    challenge = PowChallenge(seed=SEED, effort=16)
    stray = encode_busy_frame(BusyFrame(message_id=message_id(99), challenge=challenge))
    a.relay_busy(relay, stray, now=T0 + 5)
    a.relay_busy(relay, b"\xff", now=T0 + 5)
    assert a.counters.get_count(P2PCounter.REJECTED, ErrorCode.UNEXPECTED_RESPONSE) == 1
    assert a.counters.get_count(P2PCounter.RELAY_POW_ASKED) == 0
