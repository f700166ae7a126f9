"""relays.json: large messages in parts, central-status notices, committee relays.

Covers HT-7.1 (PART frames), HT-7.3 (STATUS frames and their signatures),
RLY-2.1 (RELAY requests) and RLY-1.1 (committee selection). Seeds and times
are fixed, so two runs give the same bytes.
"""

from typing import Any, Final

from railgun_ref.capacity import Availability, DeviceCapabilities, DeviceClass, NatType
from railgun_ref.capacity.selection import Candidate
from railgun_ref.conformance.builders.base import Vectors, flip, pseudo_random, seed_for
from railgun_ref.conformance.common import JsonObject
from railgun_ref.core.errors import RemoteProtocolError
from railgun_ref.core.ids import NodeId
from railgun_ref.identity.keys import Identity, verify
from railgun_ref.relay.committee import (
    CommitteeConfig,
    select_committee,
)
from railgun_ref.transport.p2p import (
    MAX_BLOB_SIZE,
    PART_SIZE,
    Frame,
    PartFrame,
    StatusFrame,
    decode_frame,
    encode_frame,
    status_message,
)
from railgun_ref.wire import cbor
from railgun_ref.wire.relay import RelayFrame, decode_relay_frame, encode_relay_frame

NOTES: Final = {
    "Part": "A PART frame (HT-7.1).",
    "Status": "A STATUS frame (HT-7.3).",
    "Relay": "A RELAY request to a committee relay (RLY-2.1).",
    "Committee": "Committee selection (RLY-1.1).",
    "Forged": "A signature by another key or over other bytes.",
    "Admission": "A RELAY request paying for admission (RLY-9.1).",
}

HEADER: Final = [
    "Large P2P messages, central-status notices and committee relays.",
    "Decode tests: 'encoded' must decode to 'decoded' (valid) or be refused with",
    "'expectedError' (invalid). Status tests: the STATUS frame's signature must verify",
    "under 'publicKey' (valid) or not (invalid). Committee tests: from 'candidates'",
    "(node id and capabilities, CAP-1.1 JSON), the committee of the room with DHT ident",
    "'dhtIdent' is 'committee', in order (best first).",
]

ROOM: Final = b"room-vectors"
MID: Final = bytes(range(16))
EXPIRES: Final = 1_800_000_060_000


def describe(frame: Frame | RelayFrame) -> JsonObject:
    """What a decode vector says a frame is: its type and fields, bytes as hex."""
    match frame:
        case PartFrame():
            return {
                "type": "PART",
                "roomId": frame.room_id.hex(),
                "messageId": frame.message_id.hex(),
                "expiresMs": frame.expires_ms,
                "index": frame.index,
                "total": frame.total,
                "chunkLength": len(frame.chunk),
                "hops": frame.hops,
                "relayTo": [n.hex() for n in frame.relay_to],
            }
        case StatusFrame():
            return {
                "type": "STATUS",
                "roomId": frame.room_id.hex(),
                "offCentral": frame.off_central,
                "expiresMs": frame.expires_ms,
            }
        case RelayFrame():
            paid = frame.pow_solution
            return {
                "type": "RELAY",
                "roomId": frame.room_id.hex(),
                "dhtIdent": frame.dht_ident.hex(),
                "messageId": frame.message_id.hex(),
                "expiresMs": frame.expires_ms,
                "blobLength": len(frame.blob),
                # RLY-9.1: only a paid request has it (older JSON unchanged)
                **(
                    {}
                    if paid is None
                    else {
                        "powSolution": {
                            "seedHead": paid.seed_head.hex(),
                            "nonce": paid.nonce.hex(),
                            "effort": paid.effort,
                        }
                    }
                ),
            }
        case _:
            return {"type": type(frame).__name__}


def decode_any(group_type: str, data: bytes) -> Frame | RelayFrame:
    return decode_relay_frame(data) if group_type == "RelayDecodeTest" else decode_frame(data)


def _part(index: int, total: int, changes: dict[int, Any] | None = None) -> dict[int, Any]:
    length = min(PART_SIZE, total - index * PART_SIZE)
    value = PartFrame(
        room_id=ROOM,
        message_id=MID,
        expires_ms=EXPIRES,
        index=index,
        total=total,
        chunk=pseudo_random(f"relays/part/{index}/{total}", max(length, 0))[:length],
    ).to_value()
    value.update(changes or {})
    return value


def _decode_cases(v: Vectors) -> None:
    tests = v.group("P2PFrameDecodeTest", partSize=PART_SIZE, maxBlobSize=MAX_BLOB_SIZE)
    signer = Identity.from_seed(seed_for("relays/status"))
    status = StatusFrame(
        room_id=ROOM,
        off_central=True,
        expires_ms=EXPIRES,
        signature=signer.sign(status_message(ROOM, True, EXPIRES)),
    ).to_value()
    cases: list[tuple[dict[int, Any], str, str, str]] = [
        (_part(0, 60_000), "first of two parts of a 60000-byte blob", "HT-7.1", "Part"),
        (_part(1, 60_000), "last part: the remainder, 10848 bytes", "HT-7.1", "Part"),
        (_part(0, 20), "a one-part blob (valid, though a ROOM frame would do)", "HT-7.1", "Part"),
        (_part(1, 20, {8: 1}), "index past the last part", "HT-7.1", "Part"),
        (_part(0, 60_000, {5: b"\x00" * 100}), "a first part that is short", "HT-7.1", "Part"),
        (_part(0, 60_000, {9: MAX_BLOB_SIZE + 1}), "total over 262144", "HT-7.1", "Part"),
        (_part(0, 60_000, {9: 0}), "total 0", "HT-7.1", "Part"),
        ({k: v for k, v in _part(0, 20).items() if k != 9}, "no total", "HT-7.1", "Part"),
        (status, "off central, signed", "HT-7.3", "Status"),
        ({**status, 3: 1}, "off_central as an integer", "HT-7.3", "Status"),
        ({**status, 5: b"\x01" * 63}, "a 63-byte signature", "HT-7.3", "Status"),
        ({**status, 6: 0}, "an extra key", "HT-7.3", "Status"),
    ]
    for value, comment, clause, flag in cases:
        _decode_test(v, tests, "P2PFrameDecodeTest", cbor.encode(value), comment, clause, flag)


def _decode_test(
    v: Vectors,
    tests: list[JsonObject],
    group_type: str,
    data: bytes,
    comment: str,
    clause: str,
    flag: str,
) -> None:
    try:
        decoded = describe(decode_any(group_type, data))
    except RemoteProtocolError as exc:
        v.test(
            tests,
            comment=comment,
            result="invalid",
            clause=clause,
            flags=(flag,),
            encoded=data.hex(),
            expectedError=exc.code.name,
        )
        return
    v.test(
        tests,
        comment=comment,
        result="valid",
        clause=clause,
        flags=(flag,),
        encoded=data.hex(),
        decoded=decoded,
    )


def _status_cases(v: Vectors) -> None:
    tests = v.group("P2PStatusVerifyTest")
    member = Identity.from_seed(seed_for("relays/member"))
    other = Identity.from_seed(seed_for("relays/other"))

    def frame(off: bool, signer: Identity, signed_off: bool | None = None) -> StatusFrame:
        said = off if signed_off is None else signed_off
        signature = signer.sign(status_message(ROOM, said, EXPIRES))
        return StatusFrame(room_id=ROOM, off_central=off, expires_ms=EXPIRES, signature=signature)

    good = frame(True, member)
    cases = [
        (good, "off central, signed by the member", ()),
        (frame(False, member), "back on central, signed by the member", ()),
        (frame(True, other), "signed by another key", ("Forged",)),
        (
            frame(True, member, signed_off=False),
            "the flag differs from the signed one",
            ("Forged",),
        ),
        (
            StatusFrame(
                room_id=ROOM,
                off_central=True,
                expires_ms=EXPIRES,
                signature=flip(good.signature, 3),
            ),
            "a bit of the signature flipped",
            ("Forged",),
        ),
    ]
    for status, comment, flags in cases:
        ok = verify(
            member.public_key,
            status_message(status.room_id, status.off_central, status.expires_ms),
            status.signature,
        )
        v.test(
            tests,
            comment=comment,
            result="valid" if ok else "invalid",
            clause="HT-7.3",
            flags=("Status", *flags),
            publicKey=member.public_key.hex(),
            encoded=encode_frame(status).hex(),
        )


def _good_relay() -> dict[int, Any]:
    """The valid RELAY request the decode cases vary."""
    return RelayFrame(
        room_id=ROOM,
        dht_ident=pseudo_random("relays/ident", 32),
        message_id=MID,
        expires_ms=EXPIRES,
        blob=pseudo_random("relays/blob", 300),
    ).to_value()


def _relay_cases(v: Vectors) -> None:
    tests = v.group("RelayDecodeTest")
    good = _good_relay()
    cases: list[tuple[dict[int, Any], str]] = [
        (good, "a RELAY request"),
        ({**good, 0: 2}, "version 2"),
        ({**good, 1: 2}, "type 2"),
        ({**good, 3: b"\x00" * 31}, "a 31-byte DHT ident"),
        ({**good, 6: b"\x00" * 65001}, "a blob over 65000 bytes"),
        ({**good, 6: b""}, "an empty blob"),
        ({k: v for k, v in good.items() if k != 5}, "no expiry"),
    ]
    for value, comment in cases:
        data = cbor.encode(value)
        _decode_test(v, tests, "RelayDecodeTest", data, comment, "RLY-2.1", "Relay")
    assert decode_relay_frame(encode_relay_frame(decode_relay_frame(cbor.encode(good))))


def _paid_relay_cases(v: Vectors) -> None:
    """RLY-9.1: a group of its own at the end, so the earlier tcIds stay put."""
    tests = v.group("RelayDecodeTest")
    good = _good_relay()
    head = pseudo_random("relays/pow-seed", 4)
    cases: list[tuple[dict[int, Any], str]] = [
        ({**good, 7: [1, head, bytes(range(16)), 16]}, "a RELAY request paying effort 16"),
        ({**good, 7: [1, head, bytes(range(16)), 0]}, "a RELAY request paying effort 0"),
        ({**good, 7: [2, head, bytes(range(16)), 16]}, "a solution of version 2"),
        ({**good, 7: [1, head[:3], bytes(range(16)), 16]}, "a 3-byte seed head"),
        ({**good, 7: [1, head, bytes(range(16))]}, "a solution without an effort"),
        ({**good, 7: cbor.encode([1, head, bytes(range(16)), 16])}, "a solution in bytes"),
        ({**good, 8: [1, head, bytes(range(16)), 16]}, "a solution under key 8"),
    ]
    for value, comment in cases:
        data = cbor.encode(value)
        _decode_test(v, tests, "RelayDecodeTest", data, comment, "RLY-9.1", "Admission")


def committee_candidates(count: int, label: str) -> list[Candidate]:
    """Deterministic candidates: upload bandwidth and class vary with the index."""
    classes = [
        DeviceClass.DESKTOP_STANDARD,
        DeviceClass.LAPTOP_PLUGGED,
        DeviceClass.MOBILE_CELLULAR,
    ]
    made = []
    for i in range(count):
        node = NodeId(pseudo_random(f"{label}/{i}", 32))
        caps = DeviceCapabilities(
            device_class=classes[i % 3],
            upload_bandwidth=50_000 * (1 + (i * 7) % 11),
            download_bandwidth=1_250_000,
            max_relay_connections=20,
            max_relay_bandwidth=625_000,
            can_act_as_turn=False,
            can_store_messages=True,
            nat_type=NatType.OPEN if i % 2 else NatType.PORT_RESTRICTED,
            battery_status=None,
            availability=Availability.ALWAYS,
        )
        made.append(Candidate(node_id=node, capabilities=caps))
    return made


def _committee_cases(v: Vectors) -> None:
    tests = v.group("CommitteeSelectionTest")
    for count, size, pool, comment in [
        (24, 5, 8, "24 candidates, the defaults (5 of the 8 nearest)"),
        (24, 3, 3, "size = pool: the 3 nearest eligible"),
        (6, 5, 8, "fewer eligible than the pool: as many as there are, at most 5"),
    ]:
        ident = pseudo_random(f"relays/committee/{count}/{size}/{pool}", 32)
        candidates = committee_candidates(count, f"relays/committee/{count}")
        committee = select_committee(ident, candidates, CommitteeConfig(size=size, pool=pool))
        v.test(
            tests,
            comment=comment,
            result="valid",
            clause="RLY-1.1",
            flags=("Committee",),
            dhtIdent=ident.hex(),
            size=size,
            pool=pool,
            candidates=[
                {"nodeId": c.node_id.hex(), "capabilities": c.capabilities.to_json()}
                for c in candidates
            ],
            committee=[n.hex() for n in committee],
        )


def build() -> JsonObject:
    v = Vectors("relays", "railgun-relays", HEADER, NOTES)
    _decode_cases(v)
    _status_cases(v)
    _relay_cases(v)
    _committee_cases(v)
    _paid_relay_cases(v)
    return v.document()
