"""ROOM-6.2, ROOM-6.5 on the holder: a STORE of a ``room`` record is held only with a valid proof.

A holder never knows the room secret; it recomputes the DHT ident from the
announce key the value carries and verifies the proof for the record's
publisher. Everything else about a room record is the member's (ROOM-6.1).
"""

import pytest

from railgun_ref.core.errors import ErrorCode, RemoteProtocolError
from railgun_ref.dht.keys import KeyType
from railgun_ref.dht.service import DhtConfig, DhtCounter
from railgun_ref.dht.storage import PutOutcome
from railgun_ref.identity.keys import Identity
from railgun_ref.rooms.announce import room_announcement
from railgun_ref.rooms.ids import dht_ident_of
from railgun_ref.transport.p2p import encode_announcement
from railgun_ref.wire.messages import Store

from .helpers import T0, DhtHarness, ident, record

SECRET = bytes(range(32))
OTHER_SECRET = bytes(range(1, 33))
ROOM = dht_ident_of(SECRET)
HOST, PORT = "127.0.0.1", 7001


def holder(*, room_proofs: bool = True) -> DhtHarness:
    return DhtHarness(ident(1), config=DhtConfig(room_proofs=room_proofs))


def store(h: DhtHarness, publisher: Identity, value: bytes, ident_bytes: bytes = ROOM) -> None:
    rec = record(publisher, ident_bytes=ident_bytes, value=value)
    h.dht.handle_store(Store(record=rec.to_cbor_value()), publisher.node_id, now=T0)


def announcement(secret: bytes, publisher: Identity, port: int = PORT) -> bytes:
    return room_announcement(secret, publisher=publisher.public_key, host=HOST, port=port)


def test_a_member_record_with_its_proof_is_held() -> None:
    """ROOM-6.5: a record with a valid proof passes the holder's check."""
    h = holder()
    member = ident(2)
    store(h, member, announcement(SECRET, member))
    assert len(h.dht.records) == 1
    assert h.dht.counters.get_count(DhtCounter.STORE, PutOutcome.STORED) == 1


def forgeries(member: Identity, forger: Identity) -> list[tuple[str, bytes, ErrorCode]]:
    copied = announcement(SECRET, member)
    return [
        ("open room value, no proof", encode_announcement((HOST, PORT)), ErrorCode.MALFORMED),
        ("not CBOR of an announcement", b"hello", ErrorCode.MALFORMED),
        ("proof from a guessed secret", announcement(OTHER_SECRET, forger), ErrorCode.WRONG_KEY),
        ("a member's proof replayed by another publisher", copied, ErrorCode.FORBIDDEN),
    ]


@pytest.mark.parametrize("case", range(4))
def test_a_forged_room_record_is_refused_and_counted(case: int) -> None:
    """ROOM-6.5: each forgery is refused with its code, held nowhere, and counted."""
    h = holder()
    member, forger = ident(2), ident(3)
    name, value, code = forgeries(member, forger)[case]
    with pytest.raises(RemoteProtocolError) as refused:
        store(h, forger, value)
    assert refused.value.code is code, name
    assert len(h.dht.records) == 0
    assert h.dht.counters.get_count(DhtCounter.ROOM_PROOF_REFUSED, code) == 1


def test_a_proof_binds_the_address() -> None:
    """ROOM-6.5: a proof for one port does not prove another port for the same publisher."""
    h = holder()
    member = ident(2)
    proven = announcement(SECRET, member)
    moved = proven.replace(PORT.to_bytes(2, "big"), (PORT + 1).to_bytes(2, "big"))
    assert moved != proven
    with pytest.raises(RemoteProtocolError) as refused:
        store(h, member, moved)
    assert refused.value.code is ErrorCode.FORBIDDEN


def test_other_key_types_and_an_unchecking_holder_are_unchanged() -> None:
    """Only ``room`` keys are checked; with the check off, DHT-3.4 holds any value."""
    h = holder()
    rec = record(ident(2), key_type=KeyType.RENDEZVOUS, ident_bytes=b"mailbox", value=b"x")
    h.dht.handle_store(Store(record=rec.to_cbor_value()), ident(2).node_id, now=T0)
    plain = holder(room_proofs=False)
    store(plain, ident(2), b"hello", ident_bytes=b"room-1")
    assert len(h.dht.records) == 1
    assert len(plain.dht.records) == 1
    assert plain.dht.counters.get_count(DhtCounter.ROOM_PROOF_REFUSED, ErrorCode.MALFORMED) == 0
