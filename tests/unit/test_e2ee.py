"""ROOM-1.x: room messages readable by members only, sender hidden inside."""

import hashlib
import random

import nacl.bindings as sodium
import pytest
from hypothesis import given
from hypothesis import strategies as st

from railgun_ref.core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from railgun_ref.identity.e2ee import (
    CONTENT_APP,
    CONTENT_MEMBERSHIP,
    E2E_DOMAIN,
    SIZE_BUCKETS,
    bucket_for,
    open_room_message,
    seal_room_message,
)
from railgun_ref.identity.keys import Identity
from railgun_ref.wire import cbor

ALICE, BOB, CAROL, MALLORY = (Identity.from_seed(bytes([i]) * 32) for i in (1, 2, 3, 4))
ROOM = b"room-42"


def _seal(
    body: bytes = b"hello", seed: int = 1, members: tuple[Identity, ...] = (ALICE, BOB, CAROL)
):
    rng = random.Random(seed)
    return seal_room_message(
        ALICE,
        room_id=ROOM,
        members=[m.public_key for m in members],
        body=body,
        sent_ms=1_767_225_600_000,
        random_bytes=rng.randbytes,
    )


def test_every_member_reads_the_same_message() -> None:
    """ROOM-1.1: each member opens the blob and sees sender, id, time and body."""
    blob, message_id = _seal()
    for member in (ALICE, BOB, CAROL):
        message = open_room_message(member, blob, room_id=ROOM)
        assert message.body == b"hello"
        assert message.sender_id == ALICE.node_id
        assert message.message_id == message_id
        assert message.sent_ms == 1_767_225_600_000


def test_sender_identity_is_not_visible_outside() -> None:
    """ROOM-1.1: neither the sender's key nor its id appear in the blob."""
    blob, _ = _seal()
    assert ALICE.public_key not in blob
    assert ALICE.node_id not in blob
    for member in (BOB, CAROL):
        assert member.public_key not in blob


def test_non_member_cannot_read() -> None:
    """ROOM-1.3: a key wrap exists only for members."""
    blob, _ = _seal()
    with pytest.raises(RemoteProtocolError) as info:
        open_room_message(MALLORY, blob, room_id=ROOM)
    assert info.value.code is ErrorCode.FORBIDDEN


def test_message_bound_to_its_room() -> None:
    """ROOM-1.2: the signature covers the room id, so a blob replayed elsewhere fails."""
    blob, _ = _seal()
    with pytest.raises(RemoteProtocolError) as info:
        open_room_message(BOB, blob, room_id=b"another-room")
    assert info.value.code is ErrorCode.BAD_SIGNATURE


def test_tampering_is_detected() -> None:
    blob, _ = _seal()
    for position in (len(blob) - 1, len(blob) - 40, len(blob) - 200, len(blob) - 270):
        tampered = bytearray(blob)
        tampered[position] ^= 0x01
        with pytest.raises(RemoteProtocolError):
            open_room_message(BOB, bytes(tampered), room_id=ROOM)


@pytest.mark.parametrize(("size", "bucket"), [(0, 256), (100, 256), (255, 4096), (3800, 4096)])
def test_padding_buckets(size: int, bucket: int) -> None:
    """ROOM-1.4: the inner message is padded to the design's size buckets."""
    blob, _ = _seal(body=bytes(size))
    message = open_room_message(BOB, blob, room_id=ROOM)
    assert message.bucket == bucket
    assert bucket_for(bucket - 1) == bucket
    assert bucket_for(bucket) == SIZE_BUCKETS[SIZE_BUCKETS.index(bucket) + 1]


def test_blob_size_depends_only_on_bucket_and_room_size() -> None:
    """ROOM-1.4: two bodies in the same bucket give blobs of the same length."""
    short, _ = _seal(body=b"x")
    longer, _ = _seal(body=b"y" * 100)
    assert len(short) == len(longer)


def test_oversize_and_empty_membership_refused_locally() -> None:
    with pytest.raises(LocalProtocolError):
        _seal(body=bytes(70_000))
    with pytest.raises(LocalProtocolError):
        _seal(members=())


def test_injected_randomness_makes_blobs_reproducible() -> None:
    assert _seal(seed=5) == _seal(seed=5)
    assert _seal(seed=5)[0] != _seal(seed=6)[0]


@given(st.binary(max_size=600))
def test_arbitrary_bytes_raise_only_remote_errors(data: bytes) -> None:
    """ROOM-1.5: opening any bytes raises only RemoteProtocolError."""
    with pytest.raises(RemoteProtocolError):
        open_room_message(BOB, data, room_id=ROOM)


def test_every_truncation_is_refused() -> None:
    blob, _ = _seal()
    for cut in range(0, len(blob), 7):
        with pytest.raises(RemoteProtocolError):
            open_room_message(BOB, blob[:cut], room_id=ROOM)


def test_membership_messages_are_typed_and_the_type_is_signed() -> None:
    """ROOM-7.4, ROOM-1.2: key 5 marks a membership message; it is covered by the
    signature, so a relay cannot turn one kind into the other; other values are refused."""
    rng = random.Random(7)
    blob, _ = seal_room_message(
        ALICE,
        room_id=ROOM,
        members=[BOB.public_key],
        body=b"[changes]",
        sent_ms=1,
        random_bytes=rng.randbytes,
        content_type=CONTENT_MEMBERSHIP,
    )
    opened = open_room_message(BOB, blob, room_id=ROOM)
    assert (opened.content_type, opened.body) == (CONTENT_MEMBERSHIP, b"[changes]")
    plain = open_room_message(ALICE, _seal(members=(ALICE,))[0], room_id=ROOM)
    assert plain.content_type == CONTENT_APP
    fields = {0: ALICE.public_key, 1: bytes(16), 2: 1, 3: b"x"}
    for extra, code in (({}, ErrorCode.BAD_SIGNATURE), ({5: 9}, ErrorCode.MALFORMED)):
        # signed as an app message, delivered with key 5 (or an unknown type)
        signature = ALICE.sign(E2E_DOMAIN + ROOM + cbor.encode(fields))
        inner = cbor.encode({**fields, 4: signature, **(extra or {5: CONTENT_MEMBERSHIP})})
        with pytest.raises(RemoteProtocolError) as refused:
            open_room_message(BOB, _box(inner, BOB), room_id=ROOM)
        assert refused.value.code is code


def _box(inner: bytes, member: Identity) -> bytes:
    """A blob around a hand-made inner message (ROOM-1.3 with fixed keys)."""
    padded = inner + b"\x80" + bytes(bucket_for(len(inner)) - len(inner) - 1)
    key, nonce = bytes(32), bytes(24)
    eph_public, eph_secret = sodium.crypto_box_seed_keypair(bytes(32))
    member_x = sodium.crypto_sign_ed25519_pk_to_curve25519(member.public_key)
    wrap_nonce = hashlib.sha256(b"railgun/v1/wrap-nonce\x00" + eph_public + member_x).digest()
    tag = hashlib.sha256(b"railgun/v1/wrap-tag\x00" + eph_public + member_x).digest()[:8]
    boxed = sodium.crypto_box(key, wrap_nonce[:24], member_x, eph_secret)
    ciphertext = sodium.crypto_secretbox(padded, nonce, key)
    return cbor.encode([1, eph_public, [[tag, boxed]], nonce, ciphertext])
