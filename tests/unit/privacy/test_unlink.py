"""PRIV-5: transport keys, blinded relay targets, batched receipts; PRIV-4.4 cover drop."""

import random

import pytest

from railgun_ref.core import cbor
from railgun_ref.core.errors import ErrorCode, RemoteProtocolError
from railgun_ref.identity.e2ee import (
    CONTENT_COVER,
    E2E_DOMAIN,
    open_room_message,
    seal_room_message,
)
from railgun_ref.identity.keys import Identity
from railgun_ref.privacy.unlink import (
    ReceiptBatcher,
    ReceiptBatcherConfig,
    ReceiptCounter,
    SendReceipts,
    epoch_of,
    relay_tag,
    resolve_relay_tags,
    transport_key,
)
from railgun_ref.transport.p2p import RoomFrame, encode_frame
from tests.unit.test_e2ee import _box

ALICE = Identity.from_seed(bytes([1]) * 32)
BOB = Identity.from_seed(bytes([2]) * 32)


def test_transport_keys_change_each_epoch_and_are_not_the_identity() -> None:
    """PRIV-5.1."""
    keys = [transport_key(ALICE, epoch_of(t)) for t in (0.0, 3599.0, 3600.0)]
    assert keys[0] == keys[1] != keys[2]
    assert ALICE.node_id not in {k.node_id for k in keys}
    assert transport_key(BOB, 0).node_id != keys[0].node_id


def test_relay_tags_resolve_only_with_the_room_secret() -> None:
    """PRIV-5.3."""
    members = [ALICE.public_key, BOB.public_key]
    tags = [relay_tag(b"secret", bytes(16), BOB.public_key), bytes(16)]
    assert resolve_relay_tags(
        tags, room_secret=b"secret", message_id=bytes(16), members=members
    ) == [BOB.public_key]
    assert (
        resolve_relay_tags(tags, room_secret=b"other", message_id=bytes(16), members=members) == []
    )
    assert relay_tag(b"secret", bytes(16), BOB.public_key) != relay_tag(
        b"secret", b"\x01" * 16, BOB.public_key
    )


def test_receipts_go_in_delayed_batches() -> None:
    """PRIV-5.4: one batch per destination, after a random delay in [5 s, 30 s]."""
    batcher = ReceiptBatcher(
        ReceiptBatcherConfig(min_delay_s=5, max_delay_s=30), rng=random.Random(1)
    )
    for i in range(3):
        batcher.add(b"peer", bytes([i]), now=100.0 + i)
    due = batcher.next_deadline()
    assert due is not None and 105.0 <= due <= 130.0
    batcher.on_timer(now=due - 0.001)
    assert batcher.next_action() is None
    batcher.on_timer(now=due)
    assert batcher.next_action() == SendReceipts(
        destination=b"peer", receipts=(b"\0", b"\1", b"\2")
    )
    assert batcher.counters.get_count(ReceiptCounter.BATCH_SENT) == 1


def test_cover_is_known_as_cover_only_to_a_member_that_opened_it() -> None:
    """PRIV-4.4: same length as a real message; content type 2 only inside."""
    rng = random.Random(2)
    blobs = [
        seal_room_message(
            ALICE,
            room_id=b"r",
            members=[BOB.public_key],
            body=b"x" * 10,
            sent_ms=1,
            random_bytes=rng.randbytes,
            content_type=kind,
        )[0]
        for kind in (0, CONTENT_COVER)
    ]
    assert len(blobs[0]) == len(blobs[1])
    kinds = [open_room_message(BOB, blob, room_id=b"r").content_type for blob in blobs]
    assert kinds == [0, CONTENT_COVER]


def test_nothing_outside_the_seal_names_the_sender() -> None:
    """PRIV-5.2: the ROOM frame and the blob carry neither the sender's key nor its id."""
    blob, mid = seal_room_message(
        ALICE,
        room_id=b"r",
        members=[BOB.public_key],
        body=b"hello",
        sent_ms=1,
        random_bytes=random.Random(3).randbytes,
    )
    frame = encode_frame(
        RoomFrame(room_id=b"r", message_id=mid, expires_ms=1, blob=blob, hops=0, relay_to=())
    )
    for secret in (ALICE.public_key, bytes(ALICE.node_id)):
        assert secret not in frame
    assert open_room_message(BOB, blob, room_id=b"r").sender_key == ALICE.public_key


def test_a_real_message_relabelled_as_cover_is_refused_not_dropped() -> None:
    """PRIV-4.4: the content type is signed; a peer cannot make a real message pass as cover."""
    fields = {0: ALICE.public_key, 1: bytes(16), 2: 1, 3: b"real"}
    signature = ALICE.sign(E2E_DOMAIN + b"r" + cbor.encode(fields))  # signed as an app message
    inner = cbor.encode({**fields, 4: signature, 5: CONTENT_COVER})
    with pytest.raises(RemoteProtocolError) as refused:
        open_room_message(BOB, _box(inner, BOB), room_id=b"r")
    assert refused.value.code is ErrorCode.BAD_SIGNATURE
