"""Forwarding records (ROT-2.2): the old id of a rotated identity says where it went.

Until its handover expires, the old key publishes the handover as the value of
its own ``peer`` record (DHT-3.4 holds: the old id announces about itself),
republished before each record expiry and never past the handover's. A reader
that fetches the old id's ``peer`` record and finds a handover follows it; a
record signed by a key known to have handed over is refused otherwise.
"""

from typing import Final

from railgun_ref.core.errors import ErrorCode, RemoteProtocolError
from railgun_ref.dht.keys import KeyType
from railgun_ref.dht.records import Record, sign_record
from railgun_ref.identity.keys import Identity
from railgun_ref.identity.rotation import (
    Handover,
    RotationError,
    RotationRefusal,
    RotationTracker,
    decode_handover,
)

__all__ = ["check_publisher", "forwarding_record", "read_forwarding"]

#: ROT-2.2: a forwarding record lives at most this long (the DHT's 7-day TTL, DHT-3.2), ms.
RECORD_LIFETIME_MS: Final = 7 * 86_400_000


def forwarding_record(old: Identity, handover: Handover, *, seq: int, now: float) -> Record:
    """ROT-2.2: the old key's ``peer`` record carrying `handover`, until the handover ends."""
    expires_ms = min(handover.expires_ms, int(now * 1000) + RECORD_LIFETIME_MS)
    return sign_record(
        old,
        key_type=KeyType.PEER,
        ident=old.node_id,
        seq=seq,
        expires_ms=expires_ms,
        value=handover.encoded,
    )


def read_forwarding(record: Record, *, now: float) -> Handover | None:
    """ROT-2.2: the handover a verified ``peer`` record carries, or None if it carries none.

    Raises `RotationError` for a handover that is not the publisher's or does not verify.
    """
    if record.key_type is not KeyType.PEER:
        return None
    try:
        return decode_handover(
            record.value, now_ms=int(now * 1000), expected_old=record.publisher_key
        )
    except RotationError as exc:
        if exc.refusal is RotationRefusal.MALFORMED:
            return None  # an ordinary peer record
        raise


def check_publisher(record: Record, tracker: RotationTracker, *, now: float) -> None:
    """ROT-2.2: refuse a record signed by a retired key, unless it is its forwarding record."""
    if not tracker.is_retired(record.publisher_key):
        return
    if read_forwarding(record, now=now) is None:
        raise RemoteProtocolError(ErrorCode.FORBIDDEN, "record signed by a key that rotated away")
