"""The storage holder core (SF-2 .. SF-7): what it keeps, refuses, hands over, deletes, repairs."""

import dataclasses

import pytest

from railgun_ref.capacity.selection import Candidate
from railgun_ref.capacity.types import DeviceCapabilities
from railgun_ref.core import cbor
from railgun_ref.core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from railgun_ref.core.ids import NodeId
from railgun_ref.identity.keys import Identity
from railgun_ref.storeforward import (
    TRANSITIONS,
    FindHolders,
    MessageState,
    Persist,
    PublishRendezvous,
    Send,
    SfCounter,
    StorageHolder,
    StoreForwardConfig,
    Trigger,
    state_diagram,
)
from railgun_ref.storeforward import messages as m
from railgun_ref.storeforward.authorisers import MemberSetAuthoriser, VectorAuthoriser
from railgun_ref.storeforward.rendezvous import decode_rendezvous_value, encode_rendezvous_value
from tests.unit.storeforward.sf import (
    HOLDER,
    KEY,
    MAILBOX,
    OTHER_SENDER,
    SENDER,
    STRANGER_MAILBOX,
    T0,
    drain,
    holder,
    store,
)

PEER = NodeId(bytes([7]) * 32)


def results(actions: list[object]) -> list[m.Result]:
    out = []
    for action in actions:
        if isinstance(action, Send):
            decoded = m.decode(action.data)
            if isinstance(decoded, m.Result):
                out.append(decoded)
    return out


def receipt(ids: tuple[bytes, ...], mailbox: Identity = MAILBOX, now: float = T0) -> bytes:
    return m.encode(
        m.sign_receipt(mailbox, timestamp_ms=int(now * 1000), rendezvous_key=KEY, message_ids=ids)
    )


def kept(h: StorageHolder, request: m.StoreRequest, now: float = T0) -> list[object]:
    h.receive(m.encode(request), peer=PEER, now=now)
    return drain(h)


@pytest.mark.clause("SF-2.5", "SF-2.6", "SF-3.6")
def test_store_is_persisted_before_the_answer_and_keeps_only_what_it_must() -> None:
    h = holder()
    request = store()
    actions = kept(h, request)
    assert isinstance(actions[0], Persist) and isinstance(actions[1], Send)
    (stored,) = actions[0].put
    assert {f.name for f in dataclasses.fields(stored)} == {
        "message_id",
        "rendezvous_key",
        "mailbox_key",
        "expires_ms",
        "ciphertext",
    }
    assert stored.message_id == request.message_id
    assert results(actions) == [m.Result(request_id=1, status=0, message_id=request.message_id)]
    # SF-3.6: the same message again (a new request id) is answered 0 and kept once
    again = store(2)
    same = m.sign_store(
        SENDER,
        request_id=5,
        timestamp_ms=request.timestamp_ms,
        rendezvous_key=KEY,
        mailbox_key=request.mailbox_key,
        expires_ms=request.expires_ms,
        ciphertext=request.ciphertext,
        proof=request.proof,
    )
    assert results(kept(h, same))[0].status == 0
    assert len(h.held) == 1 and h.counters.get_count(SfCounter.DUPLICATE) == 1
    assert again.message_id != request.message_id


def _forged() -> m.StoreRequest:
    good = store()
    return dataclasses.replace(good, ciphertext=bytes([0xFF]) * 256)


@pytest.mark.clause("SF-3.1", "SF-2.3", "SF-2.4", "SF-3.5")
@pytest.mark.parametrize(
    ("request_", "code"),
    [
        pytest.param(_forged(), ErrorCode.BAD_SIGNATURE, id="forged"),
        pytest.param(store(now=T0 - 1000), ErrorCode.STALE, id="stale"),
        pytest.param(store(ttl=-1), ErrorCode.EXPIRED, id="expired"),
        pytest.param(store(ttl=8 * 86_400), ErrorCode.TTL_TOO_LONG, id="ttl-too-long"),
        pytest.param(store(proof=b"\x00" * 32), ErrorCode.FORBIDDEN, id="not-authorised"),
    ],
)
def test_store_refusals_are_typed_counted_and_answered(
    request_: m.StoreRequest, code: ErrorCode
) -> None:
    h = holder()
    actions = kept(h, request_)
    assert [r.status for r in results(actions)] == [int(code)]
    assert h.held == {} and h.last_refusal is code
    assert h.counters.get_count(SfCounter.REFUSED, code) == 1


@pytest.mark.clause("SF-2.4", "SF-6.2")
@pytest.mark.parametrize(
    ("size", "code"), [(300, ErrorCode.MALFORMED), (65537, ErrorCode.TOO_LARGE)]
)
def test_ciphertext_must_be_exactly_a_bucket(size: int, code: ErrorCode) -> None:
    h = holder()
    h.receive(m.encode(store(size=256)), peer=PEER, now=T0)
    drain(h)
    bad = store(2)
    raw = bad.to_map()
    raw[8] = bytes(size)
    h.receive(m.cbor.encode(raw), peer=PEER, now=T0)
    assert h.last_refusal is code and len(h.held) == 1


@pytest.mark.clause("SF-3.1")
def test_replayed_store_is_refused() -> None:
    h = holder()
    request = store()
    kept(h, request)
    assert [r.status for r in results(kept(h, request))] == [int(ErrorCode.REPLAY)]
    # the replay window ends: the request id is forgotten
    h.on_timer(now=T0 + 3 * 300)
    assert h.counters.get_count(SfCounter.REFUSED, ErrorCode.REPLAY) == 1


@pytest.mark.clause("SF-3.3")
def test_quotas_refuse_floods_and_keep_what_is_held() -> None:
    config = StoreForwardConfig(sender_quota_messages=2, recipient_quota_messages=3)
    h = holder(config)
    statuses = [results(kept(h, store(n)))[0].status for n in range(1, 4)]
    assert statuses == [0, 0, int(ErrorCode.QUOTA)]  # the sender's quota
    assert results(kept(h, store(4, sender=OTHER_SENDER)))[0].status == 0
    assert results(kept(h, store(5, sender=OTHER_SENDER)))[0].status == int(ErrorCode.QUOTA)
    assert len(h.held) == 3 and h.counters.get_count(SfCounter.REFUSED, ErrorCode.QUOTA) == 2


@pytest.mark.clause("SF-2.1")
def test_disabled_store_and_forward_refuses() -> None:
    h = holder(StoreForwardConfig(enabled=False))
    assert results(kept(h, store()))[0].status == int(ErrorCode.QUOTA)


@pytest.mark.clause("SF-3.5")
def test_member_set_authoriser() -> None:
    h = StorageHolder(HOLDER, authoriser=MemberSetAuthoriser(frozenset({SENDER.node_id})), now=T0)
    assert results(kept(h, store(1, proof=b"")))[0].status == 0
    assert results(kept(h, store(2, sender=OTHER_SENDER)))[0].status == int(ErrorCode.FORBIDDEN)


def _pickup(h: StorageHolder, mailbox: Identity = MAILBOX, n: int = 1) -> m.PickupReply:
    pickup = m.sign_pickup(mailbox, request_id=n, timestamp_ms=int(T0 * 1000), rendezvous_key=KEY)
    h.receive(m.encode(pickup), peer=PEER, now=T0)
    (send,) = drain(h)
    assert isinstance(send, Send)
    reply = m.decode(send.data)
    assert isinstance(reply, m.PickupReply)
    return reply


@pytest.mark.clause("SF-5.2")
def test_pickup_returns_the_mailbox_messages_oldest_first_within_the_budget() -> None:
    h = holder()
    kept(h, store(1, ttl=7200, size=m.BUCKETS[-1]))
    kept(h, store(2, ttl=3600))
    reply = _pickup(h)
    assert [e[0] for e in reply.entries] == [int((T0 + 3600) * 1000)]
    assert reply.more
    assert _pickup(h, STRANGER_MAILBOX).entries == ()
    forged = m.encode(
        dataclasses.replace(
            m.sign_pickup(MAILBOX, request_id=9, timestamp_ms=int(T0 * 1000), rendezvous_key=KEY),
            request_id=10,
        )
    )
    h.receive(forged, peer=PEER, now=T0)
    assert h.last_refusal is ErrorCode.BAD_SIGNATURE and drain(h) == []


@pytest.mark.clause("SF-4.1", "SF-4.3")
def test_receipt_deletes_and_tombstone_blocks_resurrection() -> None:
    h = holder()
    request = store()
    kept(h, request)
    h.receive(receipt((request.message_id,)), peer=PEER, now=T0 + 10)
    (persist,) = drain(h)
    assert isinstance(persist, Persist) and persist.delete == (request.message_id,)
    assert h.state_of(request.message_id) is MessageState.TOMBSTONED
    replica = m.Replicate(
        rendezvous_key=KEY,
        mailbox_key=MAILBOX.public_key,
        expires_ms=request.expires_ms,
        ciphertext=request.ciphertext,
    )
    h.receive(m.encode(replica), peer=PEER, now=T0 + 20)
    assert h.last_refusal is ErrorCode.DELETED and h.held == {}
    resend = m.sign_store(
        SENDER,
        request_id=77,
        timestamp_ms=int((T0 + 20) * 1000),
        rendezvous_key=KEY,
        mailbox_key=MAILBOX.public_key,
        expires_ms=request.expires_ms,
        ciphertext=request.ciphertext,
        proof=request.proof,
    )
    assert results(kept(h, resend, now=T0 + 20))[0].status == int(ErrorCode.DELETED)
    # the tombstone outlives the message's expiry by the grace period, then goes
    h.on_timer(now=request.expires_ms / 1000 + h.config.tombstone_grace - 1)
    assert h.state_of(request.message_id) is MessageState.TOMBSTONED
    h.on_timer(now=request.expires_ms / 1000 + h.config.tombstone_grace)
    assert h.state_of(request.message_id) is MessageState.ABSENT


@pytest.mark.clause("SF-4.2")
def test_receipts_by_anyone_but_the_recipient_delete_nothing() -> None:
    h = holder()
    request = store()
    kept(h, request)
    h.receive(receipt((request.message_id,), STRANGER_MAILBOX), peer=PEER, now=T0)
    assert h.last_refusal is ErrorCode.WRONG_SENDER and request.message_id in h.held
    forged = m.sign_receipt(
        MAILBOX, timestamp_ms=1, rendezvous_key=KEY, message_ids=(request.message_id,)
    )
    forged = dataclasses.replace(forged, timestamp_ms=2)
    h.receive(m.encode(forged), peer=PEER, now=T0)
    assert h.last_refusal is ErrorCode.BAD_SIGNATURE and request.message_id in h.held
    assert drain(h) == []


@pytest.mark.clause("SF-2.3")
def test_messages_are_dropped_at_expiry() -> None:
    h = holder()
    request = store(ttl=60)
    kept(h, request)
    assert h.next_deadline() == request.expires_ms / 1000
    h.on_timer(now=T0 + 60)
    assert h.held == {} and isinstance(drain(h)[0], Persist)
    assert h.counters.get_count(SfCounter.EXPIRED) == 1


def _candidates(*ids: NodeId) -> list[Candidate]:
    caps = DeviceCapabilities.from_json(
        {
            "deviceClass": "desktop-powerful",
            "uploadBandwidth": 2_000_000,
            "downloadBandwidth": 2_000_000,
            "maxRelayConnections": 20,
            "maxRelayBandwidth": 1_000_000,
            "canActAsTurn": True,
            "canStoreMessages": True,
            "natType": "open",
            "availability": "always",
        }
    )
    return [Candidate(node_id=i, capabilities=caps) for i in ids]


def _pump(nodes: dict[NodeId, StorageHolder], now: float) -> None:
    """Deliver every Send between the holders until they are quiet."""
    busy = True
    while busy:
        busy = False
        for node_id, node in nodes.items():
            while (action := node.next_action()) is not None:
                if isinstance(action, Send) and action.peer in nodes:
                    nodes[action.peer].receive(action.data, peer=node_id, now=now)
                    busy = True


@pytest.mark.clause("SF-7.1", "SF-7.2", "SF-7.3", "SF-3.4")
def test_repair_copies_to_new_holders_and_spreads_deletions() -> None:
    a, b = NodeId(bytes([10]) * 32), NodeId(bytes([11]) * 32)
    nodes = {n: StorageHolder(n, authoriser=VectorAuthoriser(), now=T0) for n in (a, b)}
    request = store()
    nodes[a].receive(m.encode(request), peer=PEER, now=T0)
    drain(nodes[a])
    nodes[a].on_timer(now=T0 + 3600)
    actions = drain(nodes[a])
    assert FindHolders(rendezvous_key=KEY) in actions
    assert PublishRendezvous(rendezvous_key=KEY, expires_at=request.expires_ms / 1000) in actions
    nodes[a].holders_found(KEY, _candidates(a, b), now=T0 + 3600)
    _pump(nodes, T0 + 3600)
    assert request.message_id in nodes[b].held  # re-replicated
    nodes[b].receive(receipt((request.message_id,)), peer=PEER, now=T0 + 4000)
    drain(nodes[b])
    nodes[b].holders_found(KEY, _candidates(a, b), now=T0 + 4000)
    _pump(nodes, T0 + 4000)
    assert nodes[a].held == {} and nodes[a].state_of(request.message_id) is MessageState.TOMBSTONED


@pytest.mark.clause("SF-3.4", "SF-3.7")
def test_the_first_message_kept_under_a_key_is_announced_once() -> None:
    """SF-3.7: a holder announces a key when it first keeps a message under it (after
    the Persist), not again for the next message; the repair round renews it."""
    h = holder()
    first = kept(h, store(1))
    publishes = [a for a in first if isinstance(a, PublishRendezvous)]
    assert publishes == [
        PublishRendezvous(rendezvous_key=KEY, expires_at=store(1).expires_ms / 1000)
    ]
    assert isinstance(first[0], Persist) and first.index(publishes[0]) > 0
    assert not [a for a in kept(h, store(2, ttl=2 * 86_400.0)) if isinstance(a, PublishRendezvous)]
    h.on_timer(now=T0 + 3600)
    renewed = [a for a in drain(h) if isinstance(a, PublishRendezvous)]
    assert renewed == [
        PublishRendezvous(
            rendezvous_key=KEY, expires_at=store(2, ttl=2 * 86_400.0).expires_ms / 1000
        )
    ]


@pytest.mark.clause("SF-3.7")
@pytest.mark.parametrize(
    "value",
    [
        b"",
        cbor.encode(["127.0.0.1"]),
        cbor.encode(["", 5]),
        cbor.encode(["h", 0]),
        cbor.encode(["h", 70_000]),
        cbor.encode([b"h", 5]),
        b"\xff",
    ],
)
def test_a_rendezvous_value_is_an_address_or_refused(value: bytes) -> None:
    assert decode_rendezvous_value(encode_rendezvous_value(("127.0.0.1", 4000))) == (
        "127.0.0.1",
        4000,
    )
    with pytest.raises(RemoteProtocolError):
        decode_rendezvous_value(value)


@pytest.mark.clause("SF-4.3", "SF-7.2")
def test_a_returning_replica_learns_the_deletion_and_cannot_resurrect() -> None:
    """A holder partitioned while the message was delivered syncs and deletes its copy."""
    a, b = NodeId(bytes([10]) * 32), NodeId(bytes([11]) * 32)
    nodes = {n: StorageHolder(n, authoriser=VectorAuthoriser(), now=T0) for n in (a, b)}
    request = store()
    for node in nodes.values():
        node.receive(m.encode(request), peer=PEER, now=T0)
        drain(node)
    nodes[b].receive(receipt((request.message_id,)), peer=PEER, now=T0 + 100)
    drain(nodes[b])
    later = T0 + 6 * 86_400  # a returns after six days cut off
    nodes[a].holders_found(KEY, _candidates(a, b), now=later)
    _pump(nodes, later)
    assert nodes[a].held == {} and nodes[b].held == {}
    assert nodes[b].counters.get_count(SfCounter.REPLICATED) == 0


@pytest.mark.clause("SF-4.4")
def test_transition_table_and_diagram() -> None:
    diagram = state_diagram()
    for state, row in TRANSITIONS.items():
        for trigger, target in row.items():
            assert f"{state.value} --> {target.value}: {trigger.value}" in diagram
    assert Trigger.EXPIRED not in TRANSITIONS[MessageState.ABSENT]
    h = holder()
    with pytest.raises(LocalProtocolError):
        h._transition(b"\x00" * 32, Trigger.EXPIRED)


def test_unexpected_responses_are_refused() -> None:
    h = holder()
    h.receive(m.encode(m.Result(request_id=1, status=0, message_id=bytes(32))), peer=PEER, now=T0)
    assert h.last_refusal is ErrorCode.UNEXPECTED_RESPONSE and drain(h) == []


@pytest.mark.clause("SF-4.4")
def test_spec_embeds_the_generated_diagram() -> None:
    """SF-4.4: paper/spec.md shows exactly the diagram of TRANSITIONS."""
    from railgun_ref.conformance.traceability import SPEC_PATH  # noqa: PLC0415

    assert f"```mermaid\n{state_diagram()}\n```" in SPEC_PATH.read_text(encoding="utf-8")


@pytest.mark.clause("SF-2.2")
def test_message_id_is_computed_from_what_is_kept() -> None:
    """SF-2.2: SHA-256(domain || CBOR([key, mailbox key, expiry, ciphertext])), never given."""
    import hashlib  # noqa: PLC0415

    from railgun_ref.core import cbor  # noqa: PLC0415

    request = store()
    body = cbor.encode([KEY, MAILBOX.public_key, request.expires_ms, request.ciphertext])
    assert request.message_id == hashlib.sha256(b"railgun/v1/sf-message\x00" + body).digest()
    h = holder()
    kept(h, request)
    assert list(h.held) == [request.message_id]
    longer = m.sign_store(
        SENDER,
        request_id=2,
        timestamp_ms=request.timestamp_ms,
        rendezvous_key=KEY,
        mailbox_key=MAILBOX.public_key,
        expires_ms=request.expires_ms + 1,
        ciphertext=request.ciphertext,
        proof=request.proof,
    )
    assert longer.message_id != request.message_id


@pytest.mark.clause("SF-7.4", "SF-3.4")
def test_a_rejoining_holder_learns_before_it_copies() -> None:
    """SF-7.4: wanted ids get no REPLICATE during the rejoin quiet time; a tombstone
    holder announces the key and its SYNC reaches the rejoining replica (SF-7.2)."""
    a, b, c = (NodeId(bytes([n]) * 32) for n in (10, 11, 12))
    nodes = {n: StorageHolder(n, authoriser=VectorAuthoriser(), now=T0) for n in (a, b, c)}
    request = store()
    for n in (a, b):
        nodes[n].receive(m.encode(request), peer=PEER, now=T0)
        drain(nodes[n])
    nodes[b].receive(receipt((request.message_id,)), peer=PEER, now=T0 + 10)
    drain(nodes[b])
    nodes[b].repair_now(now=T0 + 20)  # b holds only a tombstone: it still announces the key
    assert any(isinstance(x, PublishRendezvous) for x in drain(nodes[b]))
    back = T0 + 86_400
    nodes[a].repair_now(now=back, rejoined=True)
    drain(nodes[a])
    wanted = m.Sync(reply=True, rendezvous_key=KEY, message_ids=(request.message_id,), receipts=())
    nodes[a].receive(m.encode(wanted), peer=c, now=back + 1)
    assert drain(nodes[a]) == []  # quiet: no copy to c
    nodes[a].holders_found(KEY, _candidates(c), announced=[b], now=back + 2)
    _pump(nodes, back + 2)
    assert nodes[a].held == {} and nodes[c].held == {}


@pytest.mark.clause("SF-7.4")
def test_a_holder_that_rejoins_holding_nothing_copies_at_once() -> None:
    """SF-7.4: the quiet time guards replicas that may have missed a deletion; a holder
    that rejoined empty and is handed a message later copies it when a SYNC_REPLY asks."""
    a, c = (NodeId(bytes([n]) * 32) for n in (10, 12))
    node = StorageHolder(a, authoriser=VectorAuthoriser(), now=T0)
    node.repair_now(now=T0, rejoined=True)  # joined with nothing held
    drain(node)
    request = store()
    node.receive(m.encode(request), peer=PEER, now=T0 + 1)
    drain(node)
    wanted = m.Sync(reply=True, rendezvous_key=KEY, message_ids=(request.message_id,), receipts=())
    node.receive(m.encode(wanted), peer=c, now=T0 + 2)
    sent = [x for x in drain(node) if isinstance(x, Send)]
    assert [x.peer for x in sent] == [c]
    assert isinstance(m.decode(sent[0].data), m.Replicate)
