"""SF-2.4: every store-and-forward message that carries ciphertexts fits one APP payload.

A holder and a sender exchange STORE, REPLICATE and PICKUP_REPLY as APP
payloads (APP-1.2: at most 64 KiB) wrapped with the sender's address, so the
largest size bucket must leave room for that framing. It once did not (the
largest bucket was 64 KiB itself): a STORE of it could never be sent, and a
sender's store job for an offline member waited for answers that never came.
"""

import pytest

from railgun_ref.core import cbor
from railgun_ref.identity.e2ee import SIZE_BUCKETS, seal_room_message
from railgun_ref.identity.keys import Identity
from railgun_ref.privacy.padding import wrap_slots
from railgun_ref.storeforward import messages as m
from railgun_ref.storeforward.sealed import seal, sealed_size
from railgun_ref.wire.messages import MAX_APP_PAYLOAD

SENDER = Identity.from_seed(bytes([1]) * 32)
MEMBER = Identity.from_seed(bytes([3]) * 32)
LONGEST_HOST = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"  #: 45 characters
UINT64 = 2**64 - 1


def as_app_payload(message: object) -> bytes:
    """What `SfHost` hands to `send_app`: [host, port, message] (SF-6.1)."""
    return cbor.encode([LONGEST_HOST, 65535, m.encode(message)])  # type: ignore[arg-type]


def largest_store() -> m.StoreRequest:
    return m.sign_store(
        SENDER,
        request_id=UINT64,
        timestamp_ms=UINT64,
        rendezvous_key=bytes(32),
        mailbox_key=bytes(32),
        expires_ms=UINT64,
        ciphertext=bytes(m.BUCKETS[-1]),
        proof=bytes(m.MAX_PROOF_SIZE),
    )


@pytest.mark.clause("SF-2.4")
def test_a_store_of_the_largest_bucket_fits_an_app_payload() -> None:
    assert len(as_app_payload(largest_store())) <= MAX_APP_PAYLOAD


@pytest.mark.clause("SF-2.4")
def test_a_replicate_of_the_largest_bucket_fits_an_app_payload() -> None:
    replicate = m.Replicate(
        rendezvous_key=bytes(32),
        mailbox_key=bytes(32),
        expires_ms=UINT64,
        ciphertext=bytes(m.BUCKETS[-1]),
    )
    assert len(as_app_payload(replicate)) <= MAX_APP_PAYLOAD


@pytest.mark.clause("SF-2.4", "SF-5.2")
def test_a_full_pickup_reply_fits_an_app_payload() -> None:
    """The holder's budget is the largest bucket in ciphertext; the entries' framing
    (at most MAX_PICKUP_ENTRIES of them) fits in the room left."""
    smallest = m.BUCKETS[0]
    count = min(m.MAX_PICKUP_ENTRIES, m.BUCKETS[-1] // smallest)
    many = m.PickupReply(
        request_id=UINT64, entries=tuple((UINT64, bytes(smallest)) for _ in range(count)), more=True
    )
    one = m.PickupReply(request_id=UINT64, entries=((UINT64, bytes(m.BUCKETS[-1])),), more=True)
    assert count * smallest <= m.BUCKETS[-1]
    assert len(as_app_payload(many)) <= MAX_APP_PAYLOAD
    assert len(as_app_payload(one)) <= MAX_APP_PAYLOAD


@pytest.mark.clause("SF-2.4")
def test_the_old_largest_bucket_would_not_fit() -> None:
    """The check above can fail: a 64 KiB ciphertext cannot travel in one APP payload."""
    store = largest_store()
    too_big = m.Replicate(
        rendezvous_key=store.rendezvous_key,
        mailbox_key=store.mailbox_key,
        expires_ms=store.expires_ms,
        ciphertext=bytes(65536),
    )
    assert len(cbor.encode([LONGEST_HOST, 65535, cbor.encode(too_big.to_map())])) > MAX_APP_PAYLOAD


@pytest.mark.clause("SF-2.4", "SF-8.2")
@pytest.mark.parametrize("members", [2, 8, 32, 128])
def test_a_room_message_in_the_4_kib_padding_bucket_can_be_stored(members: int) -> None:
    """A membership message (its body in the 4 KiB padding bucket, ROOM-1.4, its wrap
    table filled as clients fill it up to 128 members, PRIV-3.1) seals into a bucket
    below the largest, so offline members get it from holders."""
    keys = [Identity.from_seed(bytes([i + 10]) * 32).public_key for i in range(members)]
    blob, message_id = seal_room_message(
        SENDER,
        room_id=bytes(32),
        members=keys,
        body=bytes(SIZE_BUCKETS[1] - 300),  # the inner message fills most of 4 KiB
        sent_ms=1,
        random_bytes=bytes,
        wrap_slots=wrap_slots(members),
    )
    plain = cbor.encode([bytes(32), message_id, 2**63, blob])
    bucket = sealed_size(len(plain))
    assert bucket is not None and bucket < m.BUCKETS[-1]
    sealed = seal(
        MEMBER.public_key,
        room_id=bytes(32),
        message_id=message_id,
        expires_ms=2**63,
        blob=blob,
        ephemeral_seed=bytes(32),
    )
    assert len(sealed) == bucket
