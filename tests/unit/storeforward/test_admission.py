"""SF-9, POW-6: a loaded holder prices STOREs; the client pays and still stores. No sockets.

The holder's admission gate serves one STORE per second; a flood of free
STOREs fills its queue, so the next free one is shed with QUOTA and a
challenge, and a paid one goes to the front. Wrong, stale and reused
solutions get typed refusals and counters.
"""

import random

import pytest

from railgun_ref.abuse.admission import AdmissionGate, SolvePow
from railgun_ref.abuse.pow import PowConfig, PowCounter, PowRefusal, PowSolution, solve, solves
from railgun_ref.core import cbor
from railgun_ref.core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from railgun_ref.core.ids import NodeId
from railgun_ref.identity.keys import Identity
from railgun_ref.storeforward import Send, SfCounter, StorageHolder
from railgun_ref.storeforward import messages as m
from railgun_ref.storeforward.authorisers import RoomProofAuthoriser, VectorAuthoriser
from railgun_ref.storeforward.client import (
    SfClient,
    SfClientConfig,
    SfClientCounter,
    StoredFor,
)
from tests.unit.storeforward.sf import HOLDER, OTHER_SENDER, SENDER, T0, store
from tests.unit.storeforward.test_client import MEMBER, ROOM, Net

PEER = NodeId(bytes([7]) * 32)
QUEUE = 2


def _gate(seed: int = 0, *, now: float = T0) -> AdmissionGate[tuple[m.StoreRequest, NodeId]]:
    return AdmissionGate(
        HOLDER,
        random.Random(seed).randbytes,
        rate=1.0,
        config=PowConfig(queue_limit=QUEUE),
        now=now,
    )


def _loaded_holder() -> StorageHolder:
    """A holder that served one free STORE and holds a full queue of free ones."""
    h = StorageHolder(HOLDER, authoriser=VectorAuthoriser(), admission=_gate(), now=T0)
    for n in range(1, QUEUE + 2):
        h.receive(m.encode(store(100 + n, sender=OTHER_SENDER)), peer=PEER, now=T0)
    assert _results(h) == {101: 0}  # one served at once, two waiting
    return h


def _results(h: StorageHolder) -> dict[int, int]:
    out: dict[int, int] = {}
    while (action := h.next_action()) is not None:
        if isinstance(action, Send):
            result = m.decode(action.data)
            assert isinstance(result, m.Result)
            out[result.request_id] = result.status
    return out


def _answers(h: StorageHolder) -> list[m.Result]:
    out: list[m.Result] = []
    while (action := h.next_action()) is not None:
        if isinstance(action, Send):
            result = m.decode(action.data)
            assert isinstance(result, m.Result)
            out.append(result)
    return out


def _paid(n: int, solution: PowSolution, *, sender: Identity = SENDER) -> m.StoreRequest:
    plain = store(n, sender=sender)
    return m.sign_store(
        sender,
        request_id=plain.request_id,
        timestamp_ms=plain.timestamp_ms,
        rendezvous_key=plain.rendezvous_key,
        mailbox_key=plain.mailbox_key,
        expires_ms=plain.expires_ms,
        ciphertext=plain.ciphertext,
        proof=plain.proof,
        pow_solution=solution,
    )


def _shed_challenge(h: StorageHolder) -> m.Result:
    h.receive(m.encode(store(1)), peer=PEER, now=T0)
    (shed,) = _answers(h)
    assert shed.status == ErrorCode.QUOTA and shed.challenge is not None
    return shed


# ---------------------------------------------------------------- codec (SF-9.1, SF-9.2)


def test_a_store_without_work_encodes_as_before() -> None:
    """SF-9.1."""
    plain = store(1)
    assert 11 not in plain.to_map() and m.encode(m.decode(m.encode(plain))) == m.encode(plain)
    assert "powSolution" not in m.to_json(plain)


def test_the_solution_is_signed_and_round_trips() -> None:
    """SF-9.1, POW-6.1."""
    solution = PowSolution(seed_head=b"abcd", nonce=bytes(16), effort=16)
    paid = _paid(1, solution)
    decoded = m.decode(m.encode(paid))
    assert isinstance(decoded, m.StoreRequest) and decoded.pow_solution == solution
    assert decoded.signature_ok()
    moved = {**paid.to_map(), 11: [1, b"abcd", bytes(16), 32]}
    forged = m.decode(cbor.encode(moved))
    assert isinstance(forged, m.StoreRequest) and not forged.signature_ok()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (11, 0),
        (11, [2, b"abcd", bytes(16), 16]),
        (11, [1, b"abc", bytes(16), 16]),
        (11, [1, b"abcd", bytes(15), 16]),
        (12, [1, b"abcd", bytes(16), 16]),
    ],
)
def test_a_malformed_solution_is_refused(key: int, value: object) -> None:
    """SF-9.1."""
    raw = {**store(1).to_map(), key: value}
    with pytest.raises(RemoteProtocolError) as caught:
        m.decode(cbor.encode(raw))
    assert caught.value.code is ErrorCode.MALFORMED


@pytest.mark.parametrize(
    ("status", "value"),
    [(0, [bytes(32), 16]), (15, [bytes(31), 16]), (15, [bytes(32), 0]), (15, [bytes(32), 1 << 20])],
)
def test_a_bad_challenge_is_refused(status: int, value: object) -> None:
    """SF-9.2, POW-6.2."""
    raw = {0: 2, 1: 1, 2: 1, 3: status, 4: bytes(32), 5: value}
    with pytest.raises(RemoteProtocolError) as caught:
        m.decode(cbor.encode(raw))
    assert caught.value.code is ErrorCode.MALFORMED


# ---------------------------------------------------------------- holder (SF-9.3)


def test_a_holder_not_loaded_asks_for_no_work() -> None:
    """SF-9.3, POW-6.2."""
    h = StorageHolder(HOLDER, authoriser=VectorAuthoriser(), admission=_gate(), now=T0)
    h.receive(m.encode(store(1)), peer=PEER, now=T0)
    h.receive(m.encode(store(2, proof=b"")), peer=PEER, now=T0 + 1)
    answers = _answers(h)
    assert [(r.status, r.challenge) for r in answers] == [(0, None), (ErrorCode.FORBIDDEN, None)]


def test_a_loaded_holder_sheds_a_free_store_with_its_price() -> None:
    """SF-9.3, POW-6.2."""
    h = _loaded_holder()
    shed = _shed_challenge(h)
    assert shed.challenge is not None and shed.challenge.effort == 16  # POW-6.2: min effort
    assert h.counters.get_count(SfCounter.REFUSED, ErrorCode.QUOTA) == 1


def test_a_paid_store_jumps_the_queue_of_free_ones() -> None:
    """SF-9.3, POW-6.3."""
    h = _loaded_holder()
    challenge = _shed_challenge(h).challenge
    assert challenge is not None
    solution = solve(
        challenge.seed,
        HOLDER,
        SENDER.node_id,
        challenge.effort,
        start=bytes(16),
        max_tries=1 << 16,
    )
    assert solution is not None
    paid = _paid(2, solution)
    h.receive(m.encode(paid), peer=PEER, now=T0 + 0.1)
    assert _results(h) == {103: ErrorCode.QUOTA}  # the latest free one makes room
    h.on_timer(now=T0 + 1)
    assert _results(h) == {2: 0}  # served before the free ones that came first
    assert paid.message_id in h.held


def test_wrong_stale_and_reused_solutions_are_typed_and_counted() -> None:
    """SF-9.3, POW-3.2."""
    h = _loaded_holder()
    challenge = _shed_challenge(h).challenge
    assert challenge is not None
    good = solve(challenge.seed, HOLDER, SENDER.node_id, 16, start=bytes(16), max_tries=1 << 16)
    assert good is not None
    theirs = next(  # made for another requester, and not by chance good for ours
        t
        for i in range(64)
        if (
            t := solve(
                challenge.seed,
                HOLDER,
                OTHER_SENDER.node_id,
                16,
                start=bytes([i]) * 16,
                max_tries=1 << 16,
            )
        )
        is not None
        and not solves(challenge.seed, HOLDER, SENDER.node_id, t)
    )
    stale = PowSolution(seed_head=b"\x00\x01\x02\x03", nonce=good.nonce, effort=16)
    cases = [(_paid(2, good), None), (_paid(3, good), ErrorCode.REPLAY)]
    cases += [(_paid(4, theirs), ErrorCode.FORBIDDEN), (_paid(5, stale), ErrorCode.STALE)]
    for request, code in cases:
        h.receive(m.encode(request), peer=PEER, now=T0 + 0.1)
        answers = {r.request_id: r for r in _answers(h)}
        if code is not None:
            assert answers[request.request_id].status == code
            assert answers[request.request_id].challenge is None  # effort still 0 (POW-5)
    counters = h.admission.pow.counters if h.admission is not None else None
    assert counters is not None
    for refusal in (PowRefusal.REUSED, PowRefusal.WRONG, PowRefusal.STALE):
        assert counters.get_count(PowCounter.REFUSED, refusal) == 1


def test_the_gate_needs_a_positive_rate() -> None:
    with pytest.raises(LocalProtocolError):
        AdmissionGate(HOLDER, random.Random(0).randbytes, rate=0.0, now=T0)


# ---------------------------------------------------------------- client (SF-9.4)


def _net_with_one_loaded_holder(config: SfClientConfig) -> tuple[Net, SfClient, NodeId]:
    net = Net(holders=1)
    (holder_id,) = net.holders
    loaded = StorageHolder(
        holder_id,
        authoriser=RoomProofAuthoriser(),
        admission=AdmissionGate(
            holder_id,
            random.Random(1).randbytes,
            rate=1.0,
            config=PowConfig(queue_limit=QUEUE),
            now=T0,
        ),
        now=T0,
    )
    net.holders[holder_id] = loaded
    sender = net.client(SENDER, 1)
    sender.config = config
    member = net.client(MEMBER, 2)
    member.members_reachable(ROOM, [SENDER.node_id], now=T0)
    net.pump(T0)
    return net, sender, holder_id


def _flood(net: Net, holder_id: NodeId) -> None:
    """Free STOREs from a stranger: one served, the queue full."""
    for n in range(1, QUEUE + 2):
        request = store(500 + n, sender=OTHER_SENDER)
        net.holders[holder_id].receive(m.encode(request), peer=PEER, now=T0)
    while net.holders[holder_id].next_action() is not None:
        pass


def _store_one(sender: SfClient) -> None:
    sender.store(
        room_id=ROOM,
        message_id=b"m" * 16,
        member=MEMBER.node_id,
        blob=b"hi",
        expires_at=T0 + 3600,
        now=T0,
    )


def test_the_client_pays_the_price_and_stores() -> None:
    """SF-9.4."""
    config = SfClientConfig(redundancy=1, candidate_pool=1)
    net, sender, holder_id = _net_with_one_loaded_holder(config)
    _flood(net, holder_id)
    _store_one(sender)
    net.pump(T0)
    asks = [a for a in net.out[SENDER.node_id] if isinstance(a, SolvePow)]
    assert len(asks) == 1 and asks[0].challenge.effort == 16
    ask = asks[0]
    solution = solve(
        ask.challenge.seed,
        ask.service,
        ask.requester,
        ask.challenge.effort,
        start=ask.start,
        max_tries=ask.max_tries,
    )
    sender.pow_solved(ask.token, solution, now=T0 + 0.1)
    net.pump(T0 + 0.1)
    net.holders[holder_id].on_timer(now=T0 + 1)
    net.pump(T0 + 1)
    stored = [a for a in net.out[SENDER.node_id] if isinstance(a, StoredFor)]
    assert [s.holder for s in stored] == [holder_id]
    assert sender.counters.get_count(SfClientCounter.POW_PAID) == 1


def test_the_client_declines_a_price_over_its_bound() -> None:
    """SF-9.4."""
    config = SfClientConfig(redundancy=1, candidate_pool=1, max_pow_effort=8)
    net, sender, holder_id = _net_with_one_loaded_holder(config)
    _flood(net, holder_id)
    _store_one(sender)
    net.pump(T0)
    assert not [a for a in net.out[SENDER.node_id] if isinstance(a, SolvePow)]
    assert sender.counters.get_count(SfClientCounter.POW_DECLINED) == 1


def test_an_unsolved_or_late_solution_is_counted() -> None:
    """SF-9.4."""
    config = SfClientConfig(redundancy=1, candidate_pool=1)
    net, sender, holder_id = _net_with_one_loaded_holder(config)
    _flood(net, holder_id)
    _store_one(sender)
    net.pump(T0)
    (ask,) = [a for a in net.out[SENDER.node_id] if isinstance(a, SolvePow)]
    sender.pow_solved(ask.token, None, now=T0 + 0.1)
    sender.pow_solved(ask.token, None, now=T0 + 0.2)
    assert sender.counters.get_count(SfClientCounter.POW_UNSOLVED) == 1
    assert sender.counters.get_count(SfClientCounter.POW_LATE) == 1
