"""The signed envelope (ENV-1.x) and the order of its checks (ENV-2.1)."""

from typing import Any

import cbor2
import pytest

from railgun_ref.core.constants import MAX_DATAGRAM_SIZE, MAX_STREAM_MESSAGE_SIZE
from railgun_ref.core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from railgun_ref.identity import ed25519_math as ed
from railgun_ref.identity.keys import verify
from railgun_ref.wire import cbor
from railgun_ref.wire.envelope import (
    ENVELOPE_DOMAIN,
    _decode_outer,
    _split_outer,
    decode_envelope,
    encode_envelope,
)

from .pairs import T0, identity, raw_envelope

ALICE = identity(1)
BOB = identity(2)
TS = int(T0 * 1000)
SMALL_ORDER_KEY = ed.encode(ed.torsion_points()[3])


def envelope(payload: bytes = b"hi", *, max_size: int = MAX_DATAGRAM_SIZE) -> bytes:
    return encode_envelope(
        ALICE, type=1, request_id=42, timestamp_ms=TS, body={0: payload}, max_size=max_size
    )


def refusal(data: bytes, **kwargs: Any) -> ErrorCode:
    with pytest.raises(RemoteProtocolError) as info:
        decode_envelope(data, **kwargs)
    return info.value.code


def test_round_trip() -> None:
    """ENV-1.2: every field survives encode/decode; the sender id is derived from the key."""
    data = envelope()
    env = decode_envelope(data)
    assert env.version == 1
    assert env.type == 1
    assert env.request_id == 42
    assert env.sender_key == ALICE.public_key
    assert env.sender_id == ALICE.node_id
    assert env.timestamp_ms == TS
    assert env.body == {0: b"hi"}
    assert env.size == len(data)
    assert decode_envelope(data, expected_sender=ALICE.node_id) == env


def test_wire_layout() -> None:
    """ENV-1.1/ENV-1.3: [signed bytes, 64-byte signature over domain || signed]."""
    data = envelope()
    signed, signature = cbor.decode(data)
    assert cbor.decode(signed) == {0: 1, 1: 1, 2: 42, 3: ALICE.public_key, 4: TS, 5: {0: b"hi"}}
    assert len(signature) == 64
    assert verify(ALICE.public_key, ENVELOPE_DOMAIN + signed, signature)
    assert not verify(ALICE.public_key, signed, signature)
    assert ENVELOPE_DOMAIN == b"railgun/v1/envelope\x00"


def test_encoding_is_deterministic() -> None:
    """ENV-1.2: the same inputs give the same bytes (Ed25519 is deterministic)."""
    assert envelope() == envelope()
    assert envelope(b"a") != envelope(b"b")


def test_signature_without_domain_is_refused() -> None:
    """ENV-1.3: a signature over the signed part without the domain prefix does not verify."""
    signed = cbor.encode({0: 1, 1: 1, 2: 42, 3: ALICE.public_key, 4: TS, 5: {}})
    data = raw_envelope(ALICE, signed=signed, signature=ALICE.sign(signed))
    assert refusal(data) is ErrorCode.BAD_SIGNATURE


def _payload_for_size(target: int) -> bytes:
    """A payload making `envelope()` exactly `target` bytes (linear in this size range)."""
    base = len(envelope(b"x" * 500, max_size=10**6))
    payload = b"x" * (500 + target - base)
    assert len(envelope(payload, max_size=10**6)) == target
    return payload


def test_size_limit_is_inclusive() -> None:
    """ENV-1.4: an envelope of exactly the limit is fine; one byte more is TOO_LARGE."""
    at_limit = envelope(_payload_for_size(MAX_DATAGRAM_SIZE))
    assert decode_envelope(at_limit).size == MAX_DATAGRAM_SIZE
    over = _payload_for_size(MAX_DATAGRAM_SIZE + 1)
    with pytest.raises(LocalProtocolError):
        envelope(over)
    data = envelope(over, max_size=MAX_DATAGRAM_SIZE + 1)
    assert refusal(data) is ErrorCode.TOO_LARGE
    assert decode_envelope(data, max_size=MAX_STREAM_MESSAGE_SIZE).size == MAX_DATAGRAM_SIZE + 1


@pytest.mark.parametrize(
    "fields",
    [
        {"type": -1},
        {"type": 2**64},
        {"request_id": -1},
        {"request_id": 2**64},
        {"timestamp_ms": -1},
        {"timestamp_ms": 2**64},
    ],
)
def test_encode_refuses_out_of_range_header(fields: dict[str, int]) -> None:
    """ENV-1.2: type, request id and timestamp are unsigned 64-bit; else a local error."""
    args: dict[str, Any] = {"type": 1, "request_id": 1, "timestamp_ms": TS, "body": {}}
    args.update(fields)
    with pytest.raises(LocalProtocolError):
        encode_envelope(ALICE, **args)


def test_encode_refuses_body_outside_data_model() -> None:
    """ENC-1.2/ENV-1.2: a body with text keys cannot be signed (caller bug)."""
    with pytest.raises(LocalProtocolError):
        encode_envelope(ALICE, type=1, request_id=1, timestamp_ms=TS, body={"a": 1})  # type: ignore[dict-item]


def _outer(*items: Any) -> bytes:
    return cbor2.dumps(list(items), canonical=True)


GOOD_SIG = bytes(64)

MALFORMED: dict[str, bytes] = {
    "not cbor": b"\xff\x00",
    "empty": b"",
    "outer is a map": cbor2.dumps({0: b"", 1: GOOD_SIG}),
    "outer has one element": _outer(b"x"),
    "outer has three elements": _outer(b"x", GOOD_SIG, b""),
    "signed is text": _outer("x", GOOD_SIG),
    "signature is text": _outer(b"x", "s" * 64),
    "signature is 63 bytes": _outer(b"\xa0", bytes(63)),
    "signature is 65 bytes": _outer(b"\xa0", bytes(65)),
    "outer trailing byte": _outer(b"\xa0", GOOD_SIG) + b"\x00",
    "outer non-shortest length": bytes.fromhex("82" + "5800") + cbor2.dumps(GOOD_SIG),
    "signed part not cbor": raw_envelope(ALICE, signed=b"\xff"),
    "signed part is a list": raw_envelope(ALICE, signed=cbor.encode([1, 2, 3, 4, 5, 6])),
    "signed part has trailing bytes": raw_envelope(ALICE, signed=cbor.encode({}) + b"\x00"),
    "missing key 5": raw_envelope(ALICE, drop=(5,)),
    "missing key 0": raw_envelope(ALICE, drop=(0,)),
    "extra key 6": raw_envelope(ALICE, extra={6: 0}),
    "text key": raw_envelope(ALICE, extra={"x": 0}),  # type: ignore[dict-item]
    "version is bool": raw_envelope(ALICE, version=True),
    "version negative": raw_envelope(ALICE, version=-1),
    "type negative": raw_envelope(ALICE, type=-1),
    "type is text": raw_envelope(ALICE, type="1"),
    "request id is bytes": raw_envelope(ALICE, request_id=b"\x01"),
    "timestamp negative": raw_envelope(ALICE, timestamp_ms=-1),
    "timestamp is null": raw_envelope(ALICE, timestamp_ms=None),
    "sender key 31 bytes": raw_envelope(ALICE, sender_key=ALICE.public_key[:31]),
    "sender key 33 bytes": raw_envelope(ALICE, sender_key=ALICE.public_key + b"\x00"),
    "sender key is text": raw_envelope(ALICE, sender_key=ALICE.public_key.hex()),
    "body is a list": raw_envelope(ALICE, body=[b""]),
    "body is null": raw_envelope(ALICE, extra={5: None}),
    "body has a text key": raw_envelope(ALICE, body={"payload": b""}),
    "body has a float": raw_envelope(ALICE, body={0: 1.5}),
    # ENC-1.5 applies to the signed bytes too: a correctly signed non-canonical map is refused
    "re-signed unsorted inner map": raw_envelope(
        ALICE,
        signed=bytes.fromhex("a6")
        + b"".join(
            cbor2.dumps(k) + cbor2.dumps(v)
            for k, v in [(1, 1), (0, 1), (2, 42), (3, ALICE.public_key), (4, TS), (5, {})]
        ),
    ),
    "re-signed non-shortest inner int": raw_envelope(
        ALICE,
        signed=bytes.fromhex("a6" + "0001" + "01" + "1801")
        + b"".join(
            cbor2.dumps(k) + cbor2.dumps(v)
            for k, v in [(2, 42), (3, ALICE.public_key), (4, TS), (5, {})]
        ),
    ),
    "re-signed indefinite body": raw_envelope(
        ALICE,
        signed=bytes.fromhex("a6")
        + b"".join(
            cbor2.dumps(k) + cbor2.dumps(v)
            for k, v in [(0, 1), (1, 1), (2, 42), (3, ALICE.public_key), (4, TS)]
        )
        + bytes.fromhex("05bfff"),
    ),
}


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed(data: bytes) -> None:
    """ENV-1.1/ENV-1.2/ENC-1.5: anything not shaped like an envelope is MALFORMED, even signed."""
    assert refusal(data) is ErrorCode.MALFORMED


def test_correctly_signed_inner_map_would_otherwise_verify() -> None:
    """ENC-1.5: the re-signed non-canonical cases carry good signatures (so MALFORMED is earned)."""
    data = MALFORMED["re-signed unsorted inner map"]
    signed, signature = cbor.decode(data)
    assert verify(ALICE.public_key, ENVELOPE_DOMAIN + signed, signature)


@pytest.mark.parametrize("version", [0, 2, 2**64 - 1])
def test_unsupported_version(version: int) -> None:
    """ENV-2.1: a well-formed envelope of another version is UNSUPPORTED_VERSION."""
    assert refusal(raw_envelope(ALICE, version=version)) is ErrorCode.UNSUPPORTED_VERSION


def test_bad_key() -> None:
    """ENV-2.1/ID-2.2: a small-order or non-canonical sender key is BAD_KEY."""
    assert refusal(raw_envelope(ALICE, sender_key=SMALL_ORDER_KEY)) is ErrorCode.BAD_KEY
    non_canonical = (ed.P + 3).to_bytes(32, "little")
    assert refusal(raw_envelope(ALICE, sender_key=non_canonical)) is ErrorCode.BAD_KEY


def test_bad_signature() -> None:
    """ENV-2.1: a signature by another key, or a tampered one, is BAD_SIGNATURE."""
    assert refusal(raw_envelope(ALICE, sender_key=BOB.public_key)) is ErrorCode.BAD_SIGNATURE
    assert refusal(raw_envelope(ALICE, signature=bytes(64))) is ErrorCode.BAD_SIGNATURE
    signed, signature = cbor.decode(envelope())
    assert refusal(cbor.encode([signed, signature[:-1] + b"\x00"])) is ErrorCode.BAD_SIGNATURE


def test_wrong_sender() -> None:
    """ENV-2.1: a valid envelope from another node than expected is WRONG_SENDER."""
    assert refusal(envelope(), expected_sender=BOB.node_id) is ErrorCode.WRONG_SENDER


# ENV-2.1: when several checks fail, the first in the fixed order decides the code.
ORDER_CASES: dict[str, tuple[bytes, dict[str, Any], ErrorCode]] = {
    "too large and malformed": (b"\xff" * 1201, {}, ErrorCode.TOO_LARGE),
    "too large and valid otherwise": (
        envelope(b"x" * 1300, max_size=2000),
        {"expected_sender": BOB.node_id},
        ErrorCode.TOO_LARGE,
    ),
    "malformed and bad version": (
        raw_envelope(ALICE, version=2, body=[]),
        {},
        ErrorCode.MALFORMED,
    ),
    "short key and bad version": (
        raw_envelope(ALICE, version=2, sender_key=b"\x01" * 31),
        {},
        ErrorCode.MALFORMED,
    ),
    "bad version and bad signature": (
        raw_envelope(ALICE, version=2, signature=bytes(64)),
        {},
        ErrorCode.UNSUPPORTED_VERSION,
    ),
    "bad version and bad key": (
        raw_envelope(ALICE, version=2, sender_key=SMALL_ORDER_KEY),
        {},
        ErrorCode.UNSUPPORTED_VERSION,
    ),
    "bad version and wrong sender": (
        raw_envelope(ALICE, version=2),
        {"expected_sender": BOB.node_id},
        ErrorCode.UNSUPPORTED_VERSION,
    ),
    "bad key and bad signature": (
        raw_envelope(ALICE, sender_key=SMALL_ORDER_KEY, signature=bytes(64)),
        {},
        ErrorCode.BAD_KEY,
    ),
    "bad signature and wrong sender": (
        raw_envelope(ALICE, signature=bytes(64)),
        {"expected_sender": BOB.node_id},
        ErrorCode.BAD_SIGNATURE,
    ),
}


@pytest.mark.parametrize(("data", "kwargs", "code"), ORDER_CASES.values(), ids=ORDER_CASES.keys())
def test_check_order(data: bytes, kwargs: dict[str, Any], code: ErrorCode) -> None:
    """ENV-2.1: size, structure, version, key, signature, sender -- in that order."""
    assert refusal(data, **kwargs) is code


def test_unknown_type_is_not_the_codecs_business() -> None:
    """ENV-2.1/MSG-1.3: the envelope codec accepts any type number; messages judge it."""
    env = decode_envelope(raw_envelope(ALICE, type=999, body={}))
    assert env.type == 999


def test_outer_split_agrees_with_the_strict_decoder() -> None:
    """The fast path for the outer array accepts only what the strict decoder accepts, with
    the same two strings; everything else (non-shortest heads, trailing or missing bytes,
    another signature size) goes to the strict decoder and its errors."""
    sig = bytes(64)
    good = [cbor2.dumps([bytes(n), sig]) for n in (0, 23, 24, 255, 256, 1000)]
    for data in good:
        assert _split_outer(data) == _decode_outer(data)
    signed = bytes(10)
    bad = [
        b"\x82\x58\x0a" + signed + b"\x58\x40" + sig,  # length 10 in a 1-byte head
        b"\x82\x59\x00\x1e" + bytes(30) + b"\x58\x40" + sig,  # length 30 in a 2-byte head
        good[0] + b"\x00",
        good[1][:-1],
        cbor2.dumps([signed, bytes(65)]),
        b"\x83" + good[0][1:],
    ]
    for data in bad:
        assert _split_outer(data) is None
        with pytest.raises(RemoteProtocolError):
            _decode_outer(data)
