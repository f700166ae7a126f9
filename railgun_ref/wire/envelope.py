"""The signed message envelope (ENV-1.x, ENV-2.x).

On the wire an envelope is the deterministic CBOR array ``[signed, signature]``:

* ``signed`` is a byte string holding the deterministic CBOR encoding of the
  map ``{0: version, 1: type, 2: request_id, 3: sender_key, 4: timestamp_ms,
  5: body}`` (ENV-1.2);
* ``signature`` is the 64-byte Ed25519 signature by ``sender_key`` over
  ``ENVELOPE_DOMAIN || signed`` (ENV-1.3).

Signing the embedded bytes (as COSE_Sign1 does) means a verifier checks the
signature over exactly what it received, with no re-encoding, and the domain
prefix keeps an envelope signature from ever being valid as a signature over
any other structure of this protocol.

`decode_envelope` checks, in this order: size (TOO_LARGE), structure
(MALFORMED), version (UNSUPPORTED_VERSION), key (BAD_KEY), signature
(BAD_SIGNATURE), expected sender (WRONG_SENDER). The order is part of the
spec (ENV-2.1) so that every implementation reports the same code for the same
bytes. Freshness and replay (ENV-2.3/2.4) need the receiver's clock and
memory, so the node checks them, not the codec.
"""

from dataclasses import dataclass
from typing import Any, Final

import cbor2

from railgun_ref.core import cbor
from railgun_ref.core.constants import (
    MAX_DATAGRAM_SIZE,
    PROTOCOL_VERSION,
    PUBLIC_KEY_SIZE,
    SIGNATURE_SIZE,
)
from railgun_ref.core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from railgun_ref.core.ids import NodeId
from railgun_ref.identity.keys import Identity, node_id_of, public_key_problem, verify

#: ENV-1.3: domain separation prefix of the envelope signature input.
ENVELOPE_DOMAIN: Final = b"railgun/v1/envelope\x00"

_UINT64_MAX: Final = 2**64 - 1
_KEY_VERSION, _KEY_TYPE, _KEY_REQUEST, _KEY_SENDER, _KEY_TIME, _KEY_BODY = range(6)
_SIGNED_KEYS: Final = frozenset(range(6))


@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    """A decoded, signature-checked envelope."""

    version: int
    type: int
    request_id: int
    sender_key: bytes
    sender_id: NodeId
    timestamp_ms: int
    body: dict[int, Any]
    signature: bytes
    size: int


def encode_envelope(
    identity: Identity,
    *,
    type: int,
    request_id: int,
    timestamp_ms: int,
    body: dict[int, Any],
    max_size: int = MAX_DATAGRAM_SIZE,
) -> bytes:
    """Build and sign an envelope; raise `LocalProtocolError` if it would exceed `max_size`."""
    if not 0 <= type <= _UINT64_MAX or not 0 <= request_id <= _UINT64_MAX:
        raise LocalProtocolError("type and request id are unsigned 64-bit integers")
    if not 0 <= timestamp_ms <= _UINT64_MAX:
        raise LocalProtocolError("timestamp must be a non-negative integer of milliseconds")
    signed = cbor.encode(
        {
            _KEY_VERSION: PROTOCOL_VERSION,
            _KEY_TYPE: type,
            _KEY_REQUEST: request_id,
            _KEY_SENDER: identity.public_key,
            _KEY_TIME: timestamp_ms,
            _KEY_BODY: body,
        }
    )
    # Two byte strings: always inside the data model, no check needed.
    data = cbor2.dumps([signed, identity.sign(ENVELOPE_DOMAIN + signed)])
    if len(data) > max_size:
        # ENV-1.4: a sender MUST NOT emit an envelope over the channel's limit.
        raise LocalProtocolError(f"envelope of {len(data)} bytes exceeds the {max_size}-byte limit")
    return data


#: The shortest-form head of a 64-byte CBOR byte string: the signature's, always.
_SIGNATURE_HEAD: Final = bytes([0x58, SIGNATURE_SIZE])


def _split_outer(data: bytes) -> tuple[bytes, bytes] | None:
    """(signed, signature) if `data` is exactly the shortest-form CBOR array
    ``[bstr, 64-byte bstr]``, else None.

    Every input this accepts, the strict decoder accepts with the same two
    strings, so it only saves the generic decode and re-encode of the outer
    array (a copy of the whole datagram) on the common path; anything else,
    including every malformed input, takes the generic path and its errors.
    """
    end = len(data) - SIGNATURE_SIZE - 2
    if end < 2 or data[0] != 0x82 or data[end : end + 2] != _SIGNATURE_HEAD:
        return None
    head = data[1]
    if 0x40 <= head <= 0x57:
        start, length = 2, head - 0x40
    elif head == 0x58 and data[2] >= 24:
        start, length = 3, data[2]
    elif head == 0x59 and end >= 4 and int.from_bytes(data[2:4], "big") >= 256:
        start, length = 4, int.from_bytes(data[2:4], "big")
    else:
        return None
    if start + length != end:
        return None
    return data[start:end], data[end + 2 :]


def _malformed(reason: str) -> RemoteProtocolError:
    return RemoteProtocolError(ErrorCode.MALFORMED, reason)


def _decode_outer(data: bytes) -> tuple[bytes, bytes]:
    """The outer array through the strict decoder, with its MALFORMED reasons."""
    outer = cbor.decode(data)
    if not isinstance(outer, list) or len(outer) != 2:
        raise _malformed("envelope must be a 2-element array")
    signed, signature = outer
    if not isinstance(signed, bytes) or not isinstance(signature, bytes):
        raise _malformed("envelope elements must be byte strings")
    if len(signature) != SIGNATURE_SIZE:
        raise _malformed(f"signature must be {SIGNATURE_SIZE} bytes")
    return signed, signature


def decode_envelope(
    data: bytes,
    *,
    max_size: int = MAX_DATAGRAM_SIZE,
    expected_sender: NodeId | None = None,
) -> Envelope:
    """Decode and authenticate one envelope. Raises only `RemoteProtocolError`."""
    if len(data) > max_size:  # ENV-1.4
        raise RemoteProtocolError(
            ErrorCode.TOO_LARGE, f"{len(data)} bytes exceeds the {max_size}-byte limit"
        )
    split = _split_outer(data)
    if split is None:
        signed, signature = _decode_outer(data)
    else:
        signed, signature = split
    fields = cbor.decode(signed)
    if not isinstance(fields, dict) or fields.keys() != _SIGNED_KEYS:
        raise _malformed("signed part must be a map with keys 0..5")
    version = fields[_KEY_VERSION]
    msg_type = fields[_KEY_TYPE]
    request_id = fields[_KEY_REQUEST]
    sender_key = fields[_KEY_SENDER]
    timestamp_ms = fields[_KEY_TIME]
    body = fields[_KEY_BODY]
    for name, value in (
        ("version", version),
        ("type", msg_type),
        ("request id", request_id),
        ("timestamp", timestamp_ms),
    ):
        if type(value) is not int or value < 0:
            raise _malformed(f"{name} must be an unsigned integer")
    if not isinstance(sender_key, bytes) or len(sender_key) != PUBLIC_KEY_SIZE:
        raise _malformed(f"sender key must be {PUBLIC_KEY_SIZE} bytes")
    if not isinstance(body, dict):
        raise _malformed("body must be a map")
    if version != PROTOCOL_VERSION:
        raise RemoteProtocolError(ErrorCode.UNSUPPORTED_VERSION, f"version {version}")
    problem = public_key_problem(sender_key)
    if problem is not None:  # ID-2.2
        raise RemoteProtocolError(ErrorCode.BAD_KEY, problem)
    if not verify(sender_key, ENVELOPE_DOMAIN + signed, signature):
        raise RemoteProtocolError(ErrorCode.BAD_SIGNATURE, "envelope signature does not verify")
    sender_id = node_id_of(sender_key)
    if expected_sender is not None and sender_id != expected_sender:
        raise RemoteProtocolError(ErrorCode.WRONG_SENDER, "signed by another node than expected")
    return Envelope(
        version=version,
        type=msg_type,
        request_id=request_id,
        sender_key=sender_key,
        sender_id=sender_id,
        timestamp_ms=timestamp_ms,
        body=body,
        signature=signature,
        size=len(data),
    )
