"""dht_messages.json: the bodies of the DHT messages, types 16 to 21 (DHT-7.x).

Each test is one body map (deterministic CBOR, as it sits in field 5 of an
envelope) and a message type. Valid bodies give what they say in JSON; a
receiver must also re-encode the parsed message to exactly the same bytes.
Invalid bodies must be refused as MALFORMED (MSG-1.2), which for a request
means an ERROR MALFORMED reply. The parsers are those of
`railgun_ref.wire.messages`.
"""

from typing import Any, Final

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
    "Limit": "A list at or over its length limit, or a field at the edge of its range.",
    "WrongLength": "A byte string of the wrong length.",
    "WrongType": "A field of the wrong CBOR type.",
    "ExtraKey": "A key the body does not define.",
    "MissingKey": "A key the body defines is missing.",
    "RecordCheckedLater": "A record map is only checked by DHT-3.3 after the body is parsed.",
}

HEADER: Final = [
    "DHT message bodies (DHT-7.x): FIND_NODE (16), NODES (17), FIND_VALUE (18),",
    "VALUE (19), STORE (20), STORED (21). 'body' is the deterministic CBOR of the",
    "body map (envelope field 5). A valid body must parse to 'decoded' and re-encode",
    "to the same bytes; an invalid one must be refused with 'expectedError'.",
    "Contacts decode to {nodeId, host, port}, the host in its textual form (IPv4",
    "dotted decimal, IPv6 as RFC 5952). Records inside VALUE and STORE are given as",
    "the hex of their own CBOR encoding; their checks (DHT-3.3) come later.",
]


def _node(n: int) -> NodeId:
    return NodeId(pseudo_random(f"dht_messages/node-{n}", 32))


def build() -> JsonObject:
    v = Vectors("dht_messages", "railgun-dht-messages-v1", HEADER, NOTES)
    groups: dict[MessageType, list[JsonObject]] = {}

    def add(
        msg_type: MessageType,
        body: dict[int, Any],
        comment: str,
        flags: tuple[str, ...],
        clause: str,
        valid: bool,
    ) -> None:
        tests = groups.get(msg_type)
        if tests is None:
            tests = groups[msg_type] = v.group(
                "DhtMessageBodyTest", messageType=int(msg_type), messageName=msg_type.name
            )
        data = cbor.encode(body)
        try:
            message = parse_dht_body(msg_type, cbor.decode(data))
        except RemoteProtocolError as exc:
            assert not valid, (comment, exc)
            v.test(
                tests,
                comment=comment,
                result="invalid",
                clause=clause,
                flags=flags,
                body=data.hex(),
                expectedError=exc.code.name,
            )
            return
        assert valid, comment
        assert cbor.encode(message.to_body()) == data, comment
        v.test(
            tests,
            comment=comment,
            result="valid",
            clause=clause,
            flags=flags,
            body=data.hex(),
            decoded=dht_message_json(message),
        )

    target = pseudo_random("dht_messages/target", 32)
    for msg_type, clause in (
        (MessageType.FIND_NODE, "DHT-7.1"),
        (MessageType.FIND_VALUE, "DHT-7.3"),
    ):
        name = msg_type.name
        add(msg_type, {0: target}, f"{name} of a 32-byte id", ("Request",), clause, True)
        add(
            msg_type,
            {0: target[:31]},
            f"{name} of 31 bytes",
            ("Request", "WrongLength"),
            clause,
            False,
        )
        add(
            msg_type,
            {0: target + b"\x00"},
            f"{name} of 33 bytes",
            ("Request", "WrongLength"),
            clause,
            False,
        )
        add(
            msg_type,
            {0: b""},
            f"{name} of an empty byte string",
            ("Request", "WrongLength"),
            clause,
            False,
        )
        add(
            msg_type,
            {0: target.hex()},
            f"{name} target as text",
            ("Request", "WrongType"),
            clause,
            False,
        )
        add(
            msg_type,
            {0: target, 1: 0},
            f"{name} with an extra key 1",
            ("Request", "ExtraKey"),
            clause,
            False,
        )
        add(msg_type, {}, f"{name} with an empty body", ("Request", "MissingKey"), clause, False)
        add(
            msg_type,
            {1: target},
            f"{name} with its id under key 1",
            ("Request", "MissingKey"),
            clause,
            False,
        )

    v4 = encode_contact(_node(1), ("127.0.0.1", 7000))
    v6 = encode_contact(_node(2), ("2001:db8::7", 443))
    low = encode_contact(_node(3), ("10.0.0.1", 1))
    high = encode_contact(_node(4), ("192.0.2.200", 65535))
    full = [encode_contact(_node(10 + i), (f"10.1.0.{i + 1}", 7000 + i)) for i in range(20)]
    assert len(full) == MAX_CONTACTS
    nodes_cases: list[tuple[object, str, tuple[str, ...], bool]] = [
        ([], "no contacts", (), True),
        ([v4], "one IPv4 contact", ("Contacts",), True),
        ([v6], "one IPv6 contact", ("Contacts", "IPv6"), True),
        ([v4, v6, low, high], "four contacts, ports 1 and 65535", ("Contacts", "Limit"), True),
        (full, "20 contacts: the limit", ("Contacts", "Limit"), True),
        ([*full, v4], "21 contacts", ("Contacts", "Limit"), False),
        ([[_node(1)[:31], v4[1], v4[2]]], "a 31-byte node id", ("Contacts", "WrongLength"), False),
        ([[_node(1), b"\x7f\x00\x00", 7000]], "a 3-byte IP", ("Contacts", "WrongLength"), False),
        (
            [[_node(1), b"\x7f\x00\x00\x01\x00", 7000]],
            "a 5-byte IP",
            ("Contacts", "WrongLength"),
            False,
        ),
        ([[_node(1), "127.0.0.1", 7000]], "the IP as text", ("Contacts", "WrongType"), False),
        ([[_node(1), v4[1], 0]], "port 0", ("Contacts", "Limit"), False),
        ([[_node(1), v4[1], 65536]], "port 65536", ("Contacts", "Limit"), False),
        ([[_node(1), v4[1], -1]], "port -1", ("Contacts", "WrongType"), False),
        ([[_node(1), v4[1]]], "a contact of two elements", ("Contacts", "MissingKey"), False),
        ([[*v4, 0]], "a contact of four elements", ("Contacts", "ExtraKey"), False),
        (
            [{0: _node(1), 1: v4[1], 2: 7000}],
            "a contact as a map",
            ("Contacts", "WrongType"),
            False,
        ),
        ({0: v4}, "contacts as a map", ("Contacts", "WrongType"), False),
    ]
    for contacts, what, flags, valid in nodes_cases:
        add(
            MessageType.NODES,
            {0: contacts},
            f"NODES: {what}",
            ("Response", *flags),
            "DHT-7.2",
            valid,
        )
    add(
        MessageType.NODES,
        {0: [], 1: []},
        "NODES with an extra key 1",
        ("Response", "ExtraKey"),
        "DHT-7.2",
        False,
    )
    add(
        MessageType.NODES,
        {},
        "NODES with an empty body",
        ("Response", "MissingKey"),
        "DHT-7.2",
        False,
    )

    publisher = Identity.from_seed(seed_for("dht_messages/publisher"))
    record = sign_record(
        publisher,
        key_type=KeyType.ROOM,
        ident=b"room-1",
        seq=1,
        expires_ms=1_700_003_600_000,
        value=b"hello",
    ).to_cbor_value()
    value_cases: list[tuple[dict[int, Any], str, tuple[str, ...], bool]] = [
        ({0: [], 1: [], 2: False}, "nothing held, no contacts", (), True),
        ({0: [record], 1: [v4], 2: False}, "one record and one contact", ("Contacts",), True),
        ({0: [record], 1: [], 2: True}, "one record, truncated", (), True),
        (
            {0: [{}], 1: [], 2: False},
            "an empty record map: parsed, refused later by DHT-3.3",
            ("RecordCheckedLater",),
            True,
        ),
        (
            {0: [{**record, 6: b""}], 1: [], 2: False},
            "a record with a bad signature field: parsed, refused later by DHT-3.3",
            ("RecordCheckedLater",),
            True,
        ),
        ({0: [record] * MAX_RECORDS, 1: [], 2: False}, "64 records: the limit", ("Limit",), True),
        ({0: [record] * (MAX_RECORDS + 1), 1: [], 2: False}, "65 records", ("Limit",), False),
        ({0: [record], 1: [*full, v4], 2: False}, "21 contacts", ("Contacts", "Limit"), False),
        (
            {0: [cbor.encode(record)], 1: [], 2: False},
            "a record as a byte string",
            ("WrongType",),
            False,
        ),
        ({0: record, 1: [], 2: False}, "records as a map, not a list", ("WrongType",), False),
        ({0: [], 1: [], 2: 0}, "truncated as 0", ("WrongType",), False),
        ({0: [], 1: [], 2: None}, "truncated as null", ("WrongType",), False),
        ({0: [], 1: []}, "no truncated flag", ("MissingKey",), False),
        ({0: [], 1: [], 2: False, 3: 0}, "an extra key 3", ("ExtraKey",), False),
        (
            {0: [], 1: [[_node(1), v4[1], 0]], 2: False},
            "a contact with port 0",
            ("Contacts", "Limit"),
            False,
        ),
    ]
    for body, what, flags, valid in value_cases:
        add(MessageType.VALUE, body, f"VALUE: {what}", ("Response", *flags), "DHT-7.4", valid)

    store_cases: list[tuple[dict[int, Any], str, tuple[str, ...], bool]] = [
        ({0: record}, "a record", (), True),
        (
            {0: {}},
            "an empty record map: parsed, refused later by DHT-3.3",
            ("RecordCheckedLater",),
            True,
        ),
        ({0: cbor.encode(record)}, "the record as a byte string", ("WrongType",), False),
        ({0: [record]}, "a list of records", ("WrongType",), False),
        ({0: record, 1: record}, "two records", ("ExtraKey",), False),
        ({}, "an empty body", ("MissingKey",), False),
    ]
    for body, what, flags, valid in store_cases:
        add(MessageType.STORE, body, f"STORE: {what}", ("Request", *flags), "DHT-7.5", valid)

    stored_cases: list[tuple[dict[int, Any], str, tuple[str, ...], bool]] = [
        ({0: 0}, "status 0 (STORED)", (), True),
        ({0: 1}, "status 1 (REPLACED)", (), True),
        ({0: 2}, "status 2 (UNCHANGED)", ("Limit",), True),
        ({0: 3}, "status 3", ("Limit",), False),
        ({0: -1}, "status -1", ("WrongType",), False),
        ({0: True}, "status true", ("WrongType",), False),
        ({0: "STORED"}, "status as text", ("WrongType",), False),
        ({0: 0, 1: 0}, "an extra key 1", ("ExtraKey",), False),
        ({}, "an empty body", ("MissingKey",), False),
    ]
    for body, what, flags, valid in stored_cases:
        add(MessageType.STORED, body, f"STORED: {what}", ("Response", *flags), "DHT-7.6", valid)
    return v.document()
