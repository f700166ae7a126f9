"""dht_messages.json: the bodies of the DHT messages, types 16 to 21 (DHT-7.x), and COOKIE (4).

Each test is one body map (deterministic CBOR, as it sits in field 5 of an
envelope) and a message type. Valid bodies give what they say in JSON; a
receiver must also re-encode the parsed message to exactly the same bytes.
Invalid bodies must be refused as MALFORMED (MSG-1.2), which for a request
means an ERROR MALFORMED reply. The parsers are those of
`railgun_ref.wire.messages`.
"""

from typing import Any, Final, NamedTuple

from railgun_ref.conformance.builders.base import Vectors, pseudo_random, seed_for
from railgun_ref.conformance.common import JsonObject, dht_message_json, parse_dht_body
from railgun_ref.core.errors import RemoteProtocolError
from railgun_ref.core.ids import NodeId
from railgun_ref.dht.keys import KeyType
from railgun_ref.dht.records import sign_record
from railgun_ref.identity.keys import Identity
from railgun_ref.wire import cbor
from railgun_ref.wire.messages import (
    MAX_CONTACTS,
    MAX_RECORDS,
    MessageType,
    encode_contact,
)

NOTES: Final = {
    "Request": "A request body (FIND_NODE, FIND_VALUE, STORE).",
    "Response": "A response body (NODES, VALUE, STORED).",
    "Contacts": "A list of compact contacts [node id, packed IP, port].",
    "IPv6": "A contact with a 16-byte IPv6 address.",
    "IPv4Mapped": "An IPv4-mapped IPv6 address, written ::ffff:a.b.c.d (RFC 5952 section 5).",
    "Limit": "A list at or over its length limit, or a field at the edge of its range.",
    "WrongLength": "A byte string of the wrong length.",
    "WrongType": "A field of the wrong CBOR type.",
    "ExtraKey": "A key the body does not define.",
    "MissingKey": "A key the body defines is missing.",
    "RecordCheckedLater": "A record map is only checked by DHT-3.3 after the body is parsed.",
    "Cookie": "A COOKIE (type 4, ABUSE-2.2) or a lookup request echoing one (ABUSE-2.4).",
}

HEADER: Final = [
    "DHT message bodies (DHT-7.x): FIND_NODE (16), NODES (17), FIND_VALUE (18),",
    "VALUE (19), STORE (20), STORED (21), and COOKIE (4, ABUSE-2.2), which answers",
    "a lookup request from an address not yet validated; FIND_NODE and FIND_VALUE",
    "echo it under key 1 (ABUSE-2.4). 'body' is the deterministic CBOR of the",
    "body map (envelope field 5). A valid body must parse to 'decoded' and re-encode",
    "to the same bytes; an invalid one must be refused with 'expectedError'.",
    "Contacts decode to {nodeId, host, port}, the host in its textual form (IPv4",
    "dotted decimal, IPv6 as RFC 5952, IPv4-mapped IPv6 as ::ffff:a.b.c.d).",
    "Records inside VALUE and STORE are given as the hex of their own CBOR",
    "encoding; their checks (DHT-3.3) come later.",
]


def _node(n: int) -> NodeId:
    return NodeId(pseudo_random(f"dht_messages/node-{n}", 32))


class _BodyCase(NamedTuple):
    """One body of `msg_type`; `valid` says whether it must parse."""

    msg_type: MessageType
    body: object
    comment: str
    flags: tuple[str, ...]
    clause: str
    valid: bool


_TARGET: Final = pseudo_random("dht_messages/target", 32)

#: (body, what, flags, valid) of the two lookup requests, which share one body shape.
_REQUEST_BODIES: Final[tuple[tuple[object, str, tuple[str, ...], bool], ...]] = (
    ({0: _TARGET}, "of a 32-byte id", (), True),
    ({0: _TARGET[:31]}, "of 31 bytes", ("WrongLength",), False),
    ({0: _TARGET + b"\x00"}, "of 33 bytes", ("WrongLength",), False),
    ({0: b""}, "of an empty byte string", ("WrongLength",), False),
    ({0: _TARGET.hex()}, "target as text", ("WrongType",), False),
    ({0: _TARGET, 2: 0}, "with an extra key 2", ("ExtraKey",), False),
    ({}, "with an empty body", ("MissingKey",), False),
    ({1: _TARGET}, "with its id under key 1", ("MissingKey",), False),
)

_COOKIE: Final = pseudo_random("dht_messages/cookie", 16)

#: ABUSE-2.4: (body, what, flags, valid) of the lookup requests echoing a cookie.
_ECHO_BODIES: Final[tuple[tuple[object, str, tuple[str, ...], bool], ...]] = (
    ({0: _TARGET, 1: _COOKIE}, "echoing a 16-byte cookie", ("Cookie",), True),
    ({0: _TARGET, 1: _COOKIE[:15]}, "with a 15-byte cookie", ("Cookie", "WrongLength"), False),
    ({0: _TARGET, 1: b""}, "with an empty cookie", ("Cookie", "WrongLength"), False),
    ({0: _TARGET, 1: 0}, "with a cookie as an integer", ("Cookie", "WrongType"), False),
    ({0: _TARGET, 1: _COOKIE, 2: 0}, "with a cookie and a key 2", ("Cookie", "ExtraKey"), False),
)

#: ABUSE-2.2: (body, what, flags, valid) of COOKIE.
_COOKIE_BODIES: Final[tuple[tuple[object, str, tuple[str, ...], bool], ...]] = (
    ({0: _COOKIE}, "a 16-byte cookie", ("Cookie",), True),
    ({0: _COOKIE[:15]}, "15 bytes", ("Cookie", "WrongLength"), False),
    ({0: _COOKIE + b"\x00"}, "17 bytes", ("Cookie", "WrongLength"), False),
    ({0: _COOKIE.hex()}, "the cookie as text", ("Cookie", "WrongType"), False),
    ({0: _COOKIE, 1: 0}, "an extra key 1", ("Cookie", "ExtraKey"), False),
    ({}, "an empty body", ("Cookie", "MissingKey"), False),
)

_V4: Final = encode_contact(_node(1), ("127.0.0.1", 7000))
_V6: Final = encode_contact(_node(2), ("2001:db8::7", 443))
_MAPPED: Final = encode_contact(_node(5), ("::ffff:192.0.2.1", 7000))
_LOW: Final = encode_contact(_node(3), ("10.0.0.1", 1))
_HIGH: Final = encode_contact(_node(4), ("192.0.2.200", 65535))
_FULL: Final = [encode_contact(_node(10 + i), (f"10.1.0.{i + 1}", 7000 + i)) for i in range(20)]
assert len(_FULL) == MAX_CONTACTS
_N1: Final = _node(1)

#: (contacts, what, flags, valid) of NODES bodies {0: contacts}.
_NODES_CONTACTS: Final[tuple[tuple[object, str, tuple[str, ...], bool], ...]] = (
    ([], "no contacts", (), True),
    ([_V4], "one IPv4 contact", ("Contacts",), True),
    ([_V6], "one IPv6 contact", ("Contacts", "IPv6"), True),
    ([_MAPPED], "an IPv4-mapped contact: host ::ffff:192.0.2.1", ("Contacts", "IPv4Mapped"), True),
    ([_V4, _V6, _LOW, _HIGH], "four contacts, ports 1 and 65535", ("Contacts", "Limit"), True),
    (_FULL, "20 contacts: the limit", ("Contacts", "Limit"), True),
    ([*_FULL, _V4], "21 contacts", ("Contacts", "Limit"), False),
    ([[_N1[:31], _V4[1], _V4[2]]], "a 31-byte node id", ("Contacts", "WrongLength"), False),
    ([[_N1, b"\x7f\x00\x00", 7000]], "a 3-byte IP", ("Contacts", "WrongLength"), False),
    ([[_N1, b"\x7f\x00\x00\x01\x00", 7000]], "a 5-byte IP", ("Contacts", "WrongLength"), False),
    ([[_N1, "127.0.0.1", 7000]], "the IP as text", ("Contacts", "WrongType"), False),
    ([[_N1, _V4[1], 0]], "port 0", ("Contacts", "Limit"), False),
    ([[_N1, _V4[1], 65536]], "port 65536", ("Contacts", "Limit"), False),
    ([[_N1, _V4[1], -1]], "port -1", ("Contacts", "WrongType"), False),
    ([[_N1, _V4[1]]], "a contact of two elements", ("Contacts", "MissingKey"), False),
    ([[*_V4, 0]], "a contact of four elements", ("Contacts", "ExtraKey"), False),
    ([{0: _N1, 1: _V4[1], 2: 7000}], "a contact as a map", ("Contacts", "WrongType"), False),
    ({0: _V4}, "contacts as a map", ("Contacts", "WrongType"), False),
)

_RECORD: Final = sign_record(
    Identity.from_seed(seed_for("dht_messages/publisher")),
    key_type=KeyType.ROOM,
    ident=b"room-1",
    seq=1,
    expires_ms=1_700_003_600_000,
    value=b"hello",
).to_cbor_value()

#: (body, what, flags, valid) of VALUE bodies.
_VALUE_BODIES: Final[tuple[tuple[dict[int, Any], str, tuple[str, ...], bool], ...]] = (
    ({0: [], 1: [], 2: False}, "nothing held, no contacts", (), True),
    ({0: [_RECORD], 1: [_V4], 2: False}, "one record and one contact", ("Contacts",), True),
    ({0: [_RECORD], 1: [], 2: True}, "one record, truncated", (), True),
    (
        {0: [{}], 1: [], 2: False},
        "an empty record map: parsed, refused later by DHT-3.3",
        ("RecordCheckedLater",),
        True,
    ),
    (
        {0: [{**_RECORD, 6: b""}], 1: [], 2: False},
        "a record with a bad signature field: parsed, refused later by DHT-3.3",
        ("RecordCheckedLater",),
        True,
    ),
    ({0: [_RECORD] * MAX_RECORDS, 1: [], 2: False}, "64 records: the limit", ("Limit",), True),
    ({0: [_RECORD] * (MAX_RECORDS + 1), 1: [], 2: False}, "65 records", ("Limit",), False),
    ({0: [_RECORD], 1: [*_FULL, _V4], 2: False}, "21 contacts", ("Contacts", "Limit"), False),
    (
        {0: [cbor.encode(_RECORD)], 1: [], 2: False},
        "a record as a byte string",
        ("WrongType",),
        False,
    ),
    ({0: _RECORD, 1: [], 2: False}, "records as a map, not a list", ("WrongType",), False),
    ({0: [], 1: [], 2: 0}, "truncated as 0", ("WrongType",), False),
    ({0: [], 1: [], 2: None}, "truncated as null", ("WrongType",), False),
    ({0: [], 1: []}, "no truncated flag", ("MissingKey",), False),
    ({0: [], 1: [], 2: False, 3: 0}, "an extra key 3", ("ExtraKey",), False),
    (
        {0: [], 1: [[_N1, _V4[1], 0]], 2: False},
        "a contact with port 0",
        ("Contacts", "Limit"),
        False,
    ),
)

#: (body, what, flags, valid) of STORE bodies.
_STORE_BODIES: Final[tuple[tuple[dict[int, Any], str, tuple[str, ...], bool], ...]] = (
    ({0: _RECORD}, "a record", (), True),
    (
        {0: {}},
        "an empty record map: parsed, refused later by DHT-3.3",
        ("RecordCheckedLater",),
        True,
    ),
    ({0: cbor.encode(_RECORD)}, "the record as a byte string", ("WrongType",), False),
    ({0: [_RECORD]}, "a list of records", ("WrongType",), False),
    ({0: _RECORD, 1: _RECORD}, "two records", ("ExtraKey",), False),
    ({}, "an empty body", ("MissingKey",), False),
)

#: (body, what, flags, valid) of STORED bodies.
_STORED_BODIES: Final[tuple[tuple[dict[int, Any], str, tuple[str, ...], bool], ...]] = (
    ({0: 0}, "status 0 (STORED)", (), True),
    ({0: 1}, "status 1 (REPLACED)", (), True),
    ({0: 2}, "status 2 (UNCHANGED)", ("Limit",), True),
    ({0: 3}, "status 3", ("Limit",), False),
    ({0: -1}, "status -1", ("WrongType",), False),
    ({0: True}, "status true", ("WrongType",), False),
    ({0: "STORED"}, "status as text", ("WrongType",), False),
    ({0: 0, 1: 0}, "an extra key 1", ("ExtraKey",), False),
    ({}, "an empty body", ("MissingKey",), False),
)

BODY_CASES: Final = (
    *(
        _BodyCase(
            MessageType.COOKIE, body, f"COOKIE: {what}", ("Response", *flags), "ABUSE-2.2", ok
        )
        for body, what, flags, ok in _COOKIE_BODIES
    ),
    *(
        _BodyCase(msg_type, body, f"{msg_type.name} {what}", ("Request", *flags), clause, valid)
        for msg_type, clause in (
            (MessageType.FIND_NODE, "DHT-7.1"),
            (MessageType.FIND_VALUE, "DHT-7.3"),
        )
        for body, what, flags, valid in _REQUEST_BODIES
    ),
    *(
        _BodyCase(msg_type, body, f"{msg_type.name} {what}", ("Request", *flags), "ABUSE-2.4", ok)
        for msg_type in (MessageType.FIND_NODE, MessageType.FIND_VALUE)
        for body, what, flags, ok in _ECHO_BODIES
    ),
    *(
        _BodyCase(
            MessageType.NODES,
            {0: contacts},
            f"NODES: {what}",
            ("Response", *flags),
            "DHT-7.2",
            valid,
        )
        for contacts, what, flags, valid in _NODES_CONTACTS
    ),
    _BodyCase(
        MessageType.NODES,
        {0: [], 1: []},
        "NODES with an extra key 1",
        ("Response", "ExtraKey"),
        "DHT-7.2",
        False,
    ),
    _BodyCase(
        MessageType.NODES,
        {},
        "NODES with an empty body",
        ("Response", "MissingKey"),
        "DHT-7.2",
        False,
    ),
    *(
        _BodyCase(MessageType.VALUE, body, f"VALUE: {what}", ("Response", *flags), "DHT-7.4", ok)
        for body, what, flags, ok in _VALUE_BODIES
    ),
    *(
        _BodyCase(MessageType.STORE, body, f"STORE: {what}", ("Request", *flags), "DHT-7.5", ok)
        for body, what, flags, ok in _STORE_BODIES
    ),
    *(
        _BodyCase(MessageType.STORED, body, f"STORED: {what}", ("Response", *flags), "DHT-7.6", ok)
        for body, what, flags, ok in _STORED_BODIES
    ),
)


def _parsed(data: bytes, case: _BodyCase) -> JsonObject:
    """The expected fields of `case`: the decoded message, or the refusal code."""
    try:
        message = parse_dht_body(case.msg_type, cbor.decode(data))
    except RemoteProtocolError as exc:
        assert not case.valid, (case.comment, exc)
        return {"expectedError": exc.code.name}
    assert case.valid, case.comment
    assert cbor.encode(message.to_body()) == data, case.comment
    return {"decoded": dht_message_json(message)}


def build() -> JsonObject:
    v = Vectors("dht_messages", "railgun-dht-messages-v1", HEADER, NOTES)
    groups: dict[MessageType, list[JsonObject]] = {}
    for case in BODY_CASES:
        if case.msg_type not in groups:
            groups[case.msg_type] = v.group(
                "DhtMessageBodyTest",
                messageType=int(case.msg_type),
                messageName=case.msg_type.name,
            )
        data = cbor.encode(case.body)
        v.test(
            groups[case.msg_type],
            comment=case.comment,
            result="valid" if case.valid else "invalid",
            clause=case.clause,
            flags=case.flags,
            body=data.hex(),
            **_parsed(data, case),
        )
    return v.document()
