"""envelope.json: envelope encoding byte for byte (ENV-1.x) and the checks of ENV-2.1.

Encode tests fix a sender seed and the fields, and give the exact bytes (Ed25519
signing is deterministic). Decode tests give bytes and either the decoded
fields or the single error code that the check order of ENV-2.1 yields; tests
flagged CheckOrder carry two faults to pin that order down. Invalid inner
encodings are *validly signed*, so they can only be refused by the decoder's
strictness, never by the signature.
"""

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from railgun_ref.conformance.builders.base import (
    T0_MS,
    Vectors,
    flip,
    payload_for_size,
    pseudo_random,
    seed_for,
)
from railgun_ref.conformance.builders.ed25519 import first_off_curve_y, order8_point, sign_as
from railgun_ref.conformance.common import JsonObject
from railgun_ref.core.constants import MAX_DATAGRAM_SIZE, MAX_STREAM_MESSAGE_SIZE
from railgun_ref.core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from railgun_ref.core.ids import NodeId
from railgun_ref.identity import ed25519_math as ed
from railgun_ref.identity.keys import Identity
from railgun_ref.wire import cbor
from railgun_ref.wire.envelope import ENVELOPE_DOMAIN, decode_envelope, encode_envelope
from railgun_ref.wire.messages import ErrorReply, MessageType, Ping, Pong

NOTES: Final = {
    "Ping": "A well-formed PING envelope.",
    "Pong": "A well-formed PONG envelope.",
    "Error": "A well-formed ERROR envelope.",
    "UnknownType": "A type this spec does not define: still a valid envelope (see MSG-1.3).",
    "SizeLimit": "At or just over the size limit of the channel.",
    "NotCbor": "Bytes that are not deterministic CBOR.",
    "Structure": "Deterministic CBOR of the wrong shape.",
    "NonCanonicalInner": "The signed part is not deterministic CBOR, yet validly signed.",
    "ExtraKey": "The signed map has a key besides 0..5, validly signed.",
    "MissingKey": "The signed map lacks one of the keys 0..5, validly signed.",
    "Version": "A version other than 1.",
    "BadKey": "A sender key refused by ID-2.2.",
    "BadSignature": "The signature does not verify under ID-2.",
    "CheckOrder": "Two faults at once: the code is the one of the earlier check.",
    "MixedOrderKey": "A sender key of mixed order (accepted by ID-2.2).",
    "CofactoredOnly": "Only the cofactored Ed25519 equation holds.",
    "WrongSender": "Validly signed by a node other than the one expected.",
    "Boundary": "A field at the edge of its range.",
}

HEADER: Final = [
    "The signed envelope (ENV-1.x) and the order of its checks (ENV-2.1).",
    "Encode tests give a sender seed and the fields; the envelope must come out",
    "byte for byte. Decode tests give bytes and either the decoded fields or the",
    "one ERR-1.1 code the receiver reports. 'body' is the body map's deterministic",
    "CBOR; timestamps are milliseconds since the Unix epoch; request ids are",
    "decimal strings.",
]


def signed_fields(sender_key: bytes, **changes: Any) -> dict[int, Any]:
    """The signed map of a PING (request id 1, at T0, empty payload) with `changes`.

    `changes` are keyed ``k0``..``k6`` (the map key); a value of None removes the key.
    """
    fields: dict[int, Any] = {0: 1, 1: int(MessageType.PING), 2: 1, 3: sender_key, 4: T0_MS}
    fields[5] = {0: b""}
    for name, value in changes.items():
        key = int(name[1:])
        if value is None:
            del fields[key]
        else:
            fields[key] = value
    return dict(sorted(fields.items()))


def seal(identity: Identity, signed: bytes, *, domain: bytes = ENVELOPE_DOMAIN) -> bytes:
    """An envelope around arbitrary signed bytes, validly signed by `identity`."""
    return cbor.encode([signed, identity.sign(domain + signed)])


def _decoded(data: bytes, max_size: int, expected: NodeId | None) -> JsonObject | ErrorCode:
    try:
        envelope = decode_envelope(data, max_size=max_size, expected_sender=expected)
    except RemoteProtocolError as exc:
        return exc.code
    return {
        "version": envelope.version,
        "messageType": envelope.type,
        "requestId": str(envelope.request_id),
        "senderKey": envelope.sender_key.hex(),
        "senderId": envelope.sender_id.hex(),
        "timestampMs": envelope.timestamp_ms,
        "body": cbor.encode(envelope.body).hex(),
    }


#: (bytes, comment, clause, flags, expected code or None for valid) of one decode test.
_Decode = tuple[bytes, str, str, tuple[str, ...], ErrorCode | None]


def ping_payload(sender: Identity, total: int) -> bytes:
    """The zero payload that makes `sender`'s PING (request id 1, at T0) `total` bytes long."""
    return payload_for_size(
        lambda n: encode_envelope(sender, type=1, request_id=1, timestamp_ms=T0_MS,
                                  body={0: bytes(n)}, max_size=MAX_STREAM_MESSAGE_SIZE),
        total,
    )  # fmt: skip


def _encode_cases(sender: Identity) -> list[tuple[str, tuple[str, ...], int, int, int, Any, int]]:
    unknown = ErrorReply(code=ErrorCode.UNKNOWN_TYPE, reason="message type 99").to_body()
    dg, st = MAX_DATAGRAM_SIZE, MAX_STREAM_MESSAGE_SIZE
    return [
        ("PING, empty payload", ("Ping",), 1, 1, T0_MS, Ping().to_body(), dg),
        ("PING, payload 'hello'", ("Ping",), 1, 0x0123456789ABCDEF, T0_MS + 250,
         Ping(payload=b"hello").to_body(), dg),
        ("PONG, IPv4 observed address", ("Pong",), 2, 0x0123456789ABCDEF, T0_MS + 500,
         Pong(observed=("127.0.0.1", 40001), payload=b"hello").to_body(), dg),
        ("PONG, IPv6 observed address", ("Pong",), 2, 7, T0_MS,
         Pong(observed=("::1", 65535)).to_body(), dg),
        ("ERROR UNKNOWN_TYPE", ("Error",), 3, 42, T0_MS, unknown, dg),
        ("type 99 with an empty body", ("UnknownType",), 99, 5, T0_MS, {}, dg),
        ("request id 2^64-1, timestamp 0", ("Boundary", "Ping"), 1, 2**64 - 1, 0,
         Ping().to_body(), dg),
        ("PING of exactly 1200 bytes", ("SizeLimit", "Ping"), 1, 1, T0_MS,
         Ping(payload=ping_payload(sender, dg)).to_body(), dg),
        ("PING of 1201 bytes: the sender must not emit it", ("SizeLimit", "Ping"), 1, 1, T0_MS,
         Ping(payload=ping_payload(sender, dg + 1)).to_body(), dg),
        ("PING of 1300 bytes under the stream limit", ("SizeLimit", "Ping"), 1, 1, T0_MS,
         Ping(payload=ping_payload(sender, 1300)).to_body(), st),
    ]  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Parts:
    """What the datagram decode cases are cut from: the sender's PING (`signed`, its
    `signature`, the whole envelope `good`) and a second node, `other`."""

    sender: Identity
    other: Identity
    signed: bytes
    signature: bytes

    @property
    def pk(self) -> bytes:
        return self.sender.public_key

    @property
    def good(self) -> bytes:
        return cbor.encode([self.signed, self.signature])

    def resealed(self, **changes: Any) -> bytes:
        """The sender's PING with `changes` to the signed map, validly signed again."""
        return seal(self.sender, cbor.encode(signed_fields(self.pk, **changes)))


def _parts(sender: Identity, other: Identity) -> _Parts:
    signed = cbor.encode(signed_fields(sender.public_key))
    return _Parts(sender, other, signed, sender.sign(ENVELOPE_DOMAIN + signed))


def _oversized(p: _Parts) -> bytes:
    """A validly signed PING of one byte over the datagram limit."""
    big = encode_envelope(p.sender, type=1, request_id=1, timestamp_ms=T0_MS,
                          body={0: ping_payload(p.sender, MAX_DATAGRAM_SIZE + 1)},
                          max_size=MAX_STREAM_MESSAGE_SIZE)  # fmt: skip
    assert len(big) == MAX_DATAGRAM_SIZE + 1, len(big)
    return big


def _long_id(p: _Parts) -> bytes:
    """The signed map with request id 1 in an 8-byte head: the same value, other bytes."""
    long_id = p.signed.replace(bytes([0x02, 0x01]), bytes([0x02, 0x1B]) + (1).to_bytes(8, "big"), 1)
    assert long_id != p.signed
    return long_id


def _unsorted(p: _Parts) -> bytes:
    """The signed map with keys 0 and 1 swapped (a6 00 01 01 01 ... -> a6 01 01 00 01 ...)."""
    unsorted = p.signed[:1] + p.signed[3:5] + p.signed[1:3] + p.signed[5:]
    assert unsorted[1] == 0x01 and unsorted[3] == 0x00
    return unsorted


def _small_order_lax() -> bytes:
    """Sender key = the identity point, with a signature that satisfies the bare equation."""
    identity_key = ed.encode(ed.IDENTITY)
    small_signed = cbor.encode(signed_fields(identity_key))
    r = int.from_bytes(hashlib.sha512(b"envelope/small" + small_signed).digest(), "little") % ed.L
    lax = ed.encode(ed.mul(r, ed.BASE)) + r.to_bytes(32, "little")  # [S]B = R + [k]·identity
    assert ed.verify_equation(identity_key, ENVELOPE_DOMAIN + small_signed, lax, cofactored=False)
    return cbor.encode([small_signed, lax])


def _s_plus_l(p: _Parts) -> bytes:
    s_plus_l = int.from_bytes(p.signature[32:], "little") + ed.L
    return cbor.encode([p.signed, p.signature[:32] + s_plus_l.to_bytes(32, "little")])


_MAL: Final = ErrorCode.MALFORMED
_BAD_SIG: Final = ErrorCode.BAD_SIGNATURE
_VERSION: Final = ErrorCode.UNSUPPORTED_VERSION

#: (make the bytes from the parts, comment, clause, flags, expected code) per datagram test.
DATAGRAM_CASES: Final[tuple[
    tuple[Callable[[_Parts], bytes], str, str, tuple[str, ...], ErrorCode | None], ...
]] = (
    (_oversized, "validly signed PING of 1201 bytes", "ENV-1.4", ("SizeLimit",),
     ErrorCode.TOO_LARGE),
    (lambda p: pseudo_random("envelope/garbage-1201", 1201),
     "1201 random bytes: size is checked first", "ENV-2.1",
     ("SizeLimit", "NotCbor", "CheckOrder"), ErrorCode.TOO_LARGE),
    (lambda p: b"", "empty datagram", "ENV-2.1", ("NotCbor",), _MAL),
    (lambda p: pseudo_random("envelope/garbage-64", 64), "64 random bytes", "ENV-2.1",
     ("NotCbor",), _MAL),
    (lambda p: p.good[:-1], "envelope cut short by one byte", "ENV-2.1", ("NotCbor",), _MAL),
    (lambda p: p.good + b"\x00", "envelope followed by a zero byte", "ENV-2.1", ("NotCbor",),
     _MAL),
    (lambda p: b"\x98\x02" + p.good[1:], "outer array length in a non-shortest head", "ENC-1.5",
     ("NotCbor",), _MAL),
    (lambda p: cbor.encode({0: p.signed, 1: p.signature}), "a map instead of an array",
     "ENV-1.1", ("Structure",), _MAL),
    (lambda p: cbor.encode([p.signed]), "array of 1 element", "ENV-1.1", ("Structure",), _MAL),
    (lambda p: cbor.encode([p.signed, p.signature, b""]), "array of 3 elements", "ENV-1.1",
     ("Structure",), _MAL),
    (lambda p: cbor.encode([p.signature, p.signed]), "elements swapped", "ENV-1.1",
     ("Structure",), _MAL),
    (lambda p: cbor.encode([signed_fields(p.pk), p.signature]),
     "signed part as a map, not a byte string", "ENV-1.1", ("Structure",), _MAL),
    (lambda p: cbor.encode([p.signed, p.signature[:63]]), "signature of 63 bytes", "ENV-1.1",
     ("Structure",), _MAL),
    (lambda p: cbor.encode([p.signed, p.signature + b"\x00"]), "signature of 65 bytes",
     "ENV-1.1", ("Structure",), _MAL),
    (lambda p: seal(p.sender, b"\xff"), "signed part is not CBOR", "ENV-1.2", ("NotCbor",), _MAL),
    (lambda p: seal(p.sender, cbor.encode([1, 1, 1])), "signed part is an array", "ENV-1.2",
     ("Structure",), _MAL),
    (lambda p: p.resealed(k5=None), "signed map without key 5 (body)", "ENV-1.2",
     ("MissingKey",), _MAL),
    (lambda p: p.resealed(k6=0), "signed map with an extra key 6", "ENV-1.2", ("ExtraKey",),
     _MAL),
    (lambda p: seal(p.sender, _long_id(p)), "request id in a non-shortest head", "ENC-1.5",
     ("NonCanonicalInner",), _MAL),
    (lambda p: seal(p.sender, _unsorted(p)), "keys 0 and 1 of the signed map swapped",
     "ENC-1.3", ("NonCanonicalInner",), _MAL),
    (lambda p: p.resealed(k0="1"), "version as text", "ENV-1.2", ("Structure",), _MAL),
    (lambda p: p.resealed(k1=-1), "negative message type", "ENV-1.2", ("Structure",), _MAL),
    (lambda p: p.resealed(k2=b"\x01"), "request id as a byte string", "ENV-1.2",
     ("Structure",), _MAL),
    (lambda p: p.resealed(k4=-1), "negative timestamp", "ENV-1.2", ("Structure",), _MAL),
    (lambda p: p.resealed(k3=p.pk[:31]), "sender key of 31 bytes", "ENV-1.2", ("Structure",),
     _MAL),
    (lambda p: p.resealed(k5=b""), "body as a byte string", "ENV-1.2", ("Structure",), _MAL),
    (lambda p: p.resealed(k5=[]), "body as an array", "ENV-1.2", ("Structure",), _MAL),
    (lambda p: p.resealed(k0=0), "version 0", "ENV-2.1", ("Version",), _VERSION),
    (lambda p: p.resealed(k0=2), "version 2", "ENV-2.1", ("Version",), _VERSION),
    (lambda p: cbor.encode([cbor.encode(signed_fields(p.pk, k0=2)), bytes(64)]),
     "version 2 and an all-zero signature", "ENV-2.1",
     ("Version", "BadSignature", "CheckOrder"), _VERSION),
    (lambda p: p.resealed(k0=2, k6=0),
     "version 2 with an extra key: shape is checked before version", "ENV-2.1",
     ("Version", "ExtraKey", "CheckOrder"), _MAL),
    (lambda p: _small_order_lax(),
     "sender key = identity point, signature satisfying the bare equation", "ENV-2.1",
     ("BadKey", "CheckOrder"), ErrorCode.BAD_KEY),
    (lambda p: p.resealed(k3=ed.encode(order8_point())), "sender key of order 8", "ENV-2.1",
     ("BadKey",), ErrorCode.BAD_KEY),
    (lambda p: p.resealed(k3=(ed.P + 1).to_bytes(32, "little")), "sender key with y = p + 1",
     "ENV-2.1", ("BadKey",), ErrorCode.BAD_KEY),
    (lambda p: p.resealed(k3=first_off_curve_y().to_bytes(32, "little")),
     "sender key that is no curve point: refused by the signature check", "ENV-2.1",
     ("BadSignature",), _BAD_SIG),
    (lambda p: cbor.encode([p.signed, flip(p.signature, 256)]), "bit 0 of S flipped", "ENV-2.1",
     ("BadSignature",), _BAD_SIG),
    (lambda p: cbor.encode([p.signed, flip(p.signature, 0)]), "bit 0 of R flipped", "ENV-2.1",
     ("BadSignature",), _BAD_SIG),
    (lambda p: cbor.encode([cbor.encode(signed_fields(p.pk, k4=T0_MS + 1)), p.signature]),
     "timestamp changed after signing", "ENV-2.1", ("BadSignature",), _BAD_SIG),
    (lambda p: cbor.encode([p.signed, p.other.sign(ENVELOPE_DOMAIN + p.signed)]),
     "signed by another key than the sender key", "ENV-2.1", ("BadSignature",), _BAD_SIG),
    (lambda p: cbor.encode([p.signed, p.sender.sign(p.signed)]),
     "signature without the domain prefix", "ENV-1.3", ("BadSignature",), _BAD_SIG),
    (lambda p: seal(p.sender, p.signed, domain=b"railgun/v1/record\x00"),
     "signature under another domain prefix", "ENV-1.3", ("BadSignature",), _BAD_SIG),
    (_s_plus_l, "S replaced by S + L", "ID-2.4", ("BadSignature",), _BAD_SIG),
)  # fmt: skip


def _datagram_decode_cases(sender: Identity, other: Identity) -> list[_Decode]:
    parts = _parts(sender, other)
    made: list[_Decode] = [
        (make(parts), comment, clause, flags, expect)
        for make, comment, clause, flags, expect in DATAGRAM_CASES
    ]
    return [*made, *_mixed_key_cases()]


def _mixed_key_cases() -> list[_Decode]:
    """A mixed-order sender key: accepted when 8 divides k, refused otherwise."""
    a, _ = ed.secret_scalar(seed_for("envelope/mixed"))
    mixed = ed.encode(ed.add(ed.mul(a, ed.BASE), order8_point()))

    def envelope(request_id: int) -> tuple[bytes, int]:
        signed = cbor.encode(signed_fields(mixed, k2=request_id))
        message = ENVELOPE_DOMAIN + signed
        signature = sign_as(a, mixed, message, label="envelope/mixed")
        return cbor.encode([signed, signature]), ed.challenge(signature[:32], mixed, message) % 8

    multiple = next(i for i in range(1, 1000) if envelope(i)[1] == 0)
    other = next(i for i in range(1, 1000) if envelope(i)[1] != 0)
    return [
        (envelope(multiple)[0], "mixed-order sender key, k = 0 mod 8", "ID-2.2",
         ("MixedOrderKey", "Ping"), None),
        (envelope(other)[0], "mixed-order sender key, k != 0 mod 8", "ID-2.5",
         ("MixedOrderKey", "CofactoredOnly"), ErrorCode.BAD_SIGNATURE),
    ]  # fmt: skip


def _encode_tests(v: Vectors, sender: Identity) -> list[tuple[bytes, str, tuple[str, ...]]]:
    """The encode tests; the envelopes the sender may emit, with their comments and flags."""
    tests = v.group("EnvelopeEncodeTest", seed=sender.seed.hex(),
                    publicKey=sender.public_key.hex(), nodeId=sender.node_id.hex())  # fmt: skip
    encoded: list[tuple[bytes, str, tuple[str, ...]]] = []
    for comment, flags, msg_type, request_id, timestamp_ms, body, max_size in _encode_cases(sender):
        fields: JsonObject = {
            "messageType": msg_type,
            "requestId": str(request_id),
            "timestampMs": timestamp_ms,
            "body": cbor.encode(body).hex(),
            "maxSize": max_size,
        }
        try:
            data = encode_envelope(
                sender, type=msg_type, request_id=request_id, timestamp_ms=timestamp_ms,
                body=body, max_size=max_size,
            )  # fmt: skip
        except LocalProtocolError:
            v.test(tests, comment=comment, result="invalid", clause="ENV-1.4", flags=flags,
                   **fields)  # fmt: skip
            continue
        encoded.append((data, comment, flags))
        v.test(tests, comment=comment, result="valid", clause="ENV-1.2", flags=flags, **fields,
               envelope=data.hex())  # fmt: skip
    assert {MAX_DATAGRAM_SIZE, 1300} <= {len(data) for data, _, _ in encoded}
    return encoded


def _decode_group(v: Vectors, max_size: int, expected: NodeId | None, cases: list[_Decode]) -> None:
    tests = v.group("EnvelopeDecodeTest", maxSize=max_size,
                    expectedSender=None if expected is None else expected.hex())  # fmt: skip
    for data, comment, clause, flags, expect in cases:
        outcome = _decoded(data, max_size, expected)
        if isinstance(outcome, ErrorCode):
            assert outcome is expect, (comment, outcome)
            v.test(tests, comment=comment, result="invalid", clause=clause, flags=flags,
                   envelope=data.hex(), expectedError=outcome.name)  # fmt: skip
        else:
            assert expect is None, comment
            v.test(tests, comment=comment, result="valid", clause=clause, flags=flags,
                   envelope=data.hex(), decoded=outcome)  # fmt: skip


def _sender_cases(sender: Identity, other: Identity) -> list[_Decode]:
    """Decode tests of a receiver that expects `sender`."""
    good = seal(sender, cbor.encode(signed_fields(sender.public_key)))
    from_other = cbor.encode(signed_fields(other.public_key))
    return [
        (good, "signed by the expected node", "ENV-2.1", ("Ping",), None),
        (seal(other, from_other), "validly signed by another node", "ENV-2.1", ("WrongSender",),
         ErrorCode.WRONG_SENDER),
        (cbor.encode([from_other, bytes(64)]), "another node's key and a bad signature",
         "ENV-2.1", ("WrongSender", "BadSignature", "CheckOrder"), ErrorCode.BAD_SIGNATURE),
    ]  # fmt: skip


def build() -> JsonObject:
    v = Vectors("envelope", "railgun-envelope-v1", HEADER, NOTES)
    sender = Identity.from_seed(seed_for("envelope/sender-1"))
    other = Identity.from_seed(seed_for("envelope/sender-2"))
    encoded = _encode_tests(v, sender)
    _decode_group(
        v,
        MAX_DATAGRAM_SIZE,
        None,
        [(d, c, "ENV-2.1", f, None) for d, c, f in encoded if len(d) <= MAX_DATAGRAM_SIZE]
        + _datagram_decode_cases(sender, other),
    )
    _decode_group(v, MAX_DATAGRAM_SIZE, sender.node_id, _sender_cases(sender, other))
    _decode_group(
        v,
        MAX_STREAM_MESSAGE_SIZE,
        None,
        [(d, c + ", on a stream", "STR-1.2", f, None) for d, c, f in encoded if len(d) > 1200],
    )
    return v.document()
