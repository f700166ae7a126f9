"""Edge-case datagrams and records for the wire runner, built byte by byte.

The ordinary encoder (`encode_envelope`, `sign_record`) refuses to produce what
a conforming peer must refuse: non-shortest CBOR heads, unsorted map keys,
records past their expiry or beyond the maximum TTL, values over 256 bytes. A
runner that only ever sends what the encoder allows cannot tell a strict node
from a lax one, so this module writes those inputs by hand, *validly signed*:
the signature verifies over the exact bytes sent, so only the encoding (or the
record's signed content) is at fault.

1. `raw_envelope` builds ``[signed, signature]`` from the signed map's items as
   raw CBOR, in the order given, signed over ``ENVELOPE_DOMAIN || signed``
   (ENV-1.3); `noncanonical_envelopes` bends one rule of ENC-1.1/ENC-1.3 each.
2. `ping_body_for_size` sizes a PING so its envelope is exactly the datagram
   limit (ENV-1.4): a PONG echoing that payload cannot fit, so NODE-1.4 requires
   ERROR TOO_LARGE instead.
3. `edge_record` signs a record's fields as given, past the limits of DHT-3.2
   that `sign_record` enforces, so a node's DHT-3.3 checks can be exercised.

Everything here is pure: keys and times are arguments.
"""

import dataclasses
from typing import Any, Final

from railgun_ref.core import cbor
from railgun_ref.core.constants import MAX_DATAGRAM_SIZE
from railgun_ref.dht.keys import KeyType
from railgun_ref.dht.records import RECORD_DOMAIN, Record
from railgun_ref.identity.keys import Identity
from railgun_ref.wire.envelope import ENVELOPE_DOMAIN, encode_envelope
from railgun_ref.wire.messages import MessageType

#: CBOR major types used here (RFC 8949 §3.1).
_UINT, _BYTES, _ARRAY, _MAP = 0, 2, 4, 5
#: Argument widths of a CBOR head: additional information 24..27.
_WIDTH_INFO: Final = {1: 24, 2: 25, 4: 26, 8: 27}


def head(major: int, value: int, *, width: int | None = None) -> bytes:
    """A CBOR head; `width` (1, 2, 4 or 8 argument bytes) forces a longer form than needed."""
    if width is None:
        return _shortest_head(major, value)
    return bytes([(major << 5) | _WIDTH_INFO[width]]) + value.to_bytes(width, "big")


def _shortest_head(major: int, value: int) -> bytes:
    if value < 24:
        return bytes([(major << 5) | value])
    for width in (1, 2, 4, 8):
        if value < 1 << (8 * width):
            return head(major, value, width=width)
    raise ValueError("CBOR arguments are at most 64 bits")


def byte_string(data: bytes, *, width: int | None = None) -> bytes:
    return head(_BYTES, len(data), width=width) + data


def raw_map(items: list[tuple[bytes, bytes]]) -> bytes:
    """A CBOR map of already-encoded (key, value) items, in the order given."""
    return head(_MAP, len(items)) + b"".join(key + value for key, value in items)


def signed_items(
    identity: Identity, *, msg_type: int, request_id: int, timestamp_ms: int, body: dict[int, Any]
) -> list[tuple[bytes, bytes]]:
    """The six (key, value) items of an envelope's signed map (ENV-1.2), each canonical."""
    values = (1, msg_type, request_id, identity.public_key, timestamp_ms, body)
    return [(cbor.encode(key), cbor.encode(value)) for key, value in enumerate(values)]


def raw_envelope(identity: Identity, signed: bytes, *, signature_width: int | None = None) -> bytes:
    """``[signed, signature]`` with a valid signature over `signed` as given (ENV-1.3)."""
    signature = identity.sign(ENVELOPE_DOMAIN + signed)
    return head(_ARRAY, 2) + byte_string(signed) + byte_string(signature, width=signature_width)


def noncanonical_envelopes(
    identity: Identity, *, request_id: int, timestamp_ms: int
) -> list[tuple[str, bytes]]:
    """(what is wrong, datagram) PINGs, each validly signed but breaking ENC-1.1 or ENC-1.3."""

    def items() -> list[tuple[bytes, bytes]]:
        return signed_items(
            identity,
            msg_type=MessageType.PING,
            request_id=request_id,
            timestamp_ms=timestamp_ms,
            body={0: b"noncanonical"},
        )

    long_version = items()
    long_version[0] = (long_version[0][0], head(_UINT, 1, width=1))
    unsorted = items()
    unsorted[4], unsorted[5] = unsorted[5], unsorted[4]
    long_body_key = items()
    long_body_key[5] = (long_body_key[5][0], raw_map([(head(_UINT, 0, width=2), byte_string(b""))]))
    return [
        ("the version as a two-byte head (0x1801)", raw_envelope(identity, raw_map(long_version))),
        ("signed map keys 5 before 4", raw_envelope(identity, raw_map(unsorted))),
        ("a body key as a three-byte head", raw_envelope(identity, raw_map(long_body_key))),
        (
            "the signature's length as a three-byte head",
            raw_envelope(identity, raw_map(items()), signature_width=2),
        ),
    ]


def ping_body_for_size(identity: Identity, *, request_id: int, timestamp_ms: int) -> dict[int, Any]:
    """The PING body whose envelope is exactly MAX_DATAGRAM_SIZE bytes (ENV-1.4)."""

    def ping_of(size: int) -> bytes:
        return encode_envelope(
            identity,
            type=MessageType.PING,
            request_id=request_id,
            timestamp_ms=timestamp_ms,
            body={0: bytes(size)},
            max_size=1 << 20,
        )

    start = MAX_DATAGRAM_SIZE - len(ping_of(0)) - 8
    for size in range(max(0, start), MAX_DATAGRAM_SIZE):
        if len(ping_of(size)) == MAX_DATAGRAM_SIZE:
            return {0: bytes(size)}
    raise AssertionError("no PING payload fills the datagram exactly")


def edge_record(
    identity: Identity,
    *,
    key_type: KeyType,
    ident: bytes,
    seq: int,
    expires_ms: int,
    value: bytes,
) -> Record:
    """A record signed over its fields as given, even outside DHT-3.2's limits."""
    unsigned = Record(
        key_type=key_type,
        ident=ident,
        publisher_key=identity.public_key,
        seq=seq,
        expires_ms=expires_ms,
        value=value,
        signature=bytes(64),
    )
    signature = identity.sign(RECORD_DOMAIN + cbor.encode(unsigned.signed_fields()))
    return dataclasses.replace(unsigned, signature=signature)
