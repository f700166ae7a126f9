"""The checks of relays.json (HT-7.1, HT-7.3, RLY-1.1, RLY-2.1), registered in the runner."""

from collections.abc import Callable
from typing import Final

from railgun_ref.capacity import DeviceCapabilities
from railgun_ref.capacity.selection import Candidate
from railgun_ref.conformance.builders.relays import decode_any, describe
from railgun_ref.conformance.common import JsonObject
from railgun_ref.core.errors import RemoteProtocolError
from railgun_ref.core.ids import NodeId
from railgun_ref.identity.keys import verify
from railgun_ref.relay.committee import CommitteeConfig, select_committee
from railgun_ref.transport.p2p import StatusFrame, decode_frame, status_message


class RelaysMismatchError(AssertionError):
    """What the reference concluded differs from what the vector says."""


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise RelaysMismatchError(message)


def check_decode(group: JsonObject, test: JsonObject) -> None:
    try:
        decoded = describe(decode_any(group["type"], bytes.fromhex(test["encoded"])))
    except RemoteProtocolError as exc:
        _expect(test["result"] == "invalid", f"refused ({exc.code.name}) but the vector is valid")
        _expect(exc.code.name == test["expectedError"], f"error {exc.code.name}")
        return
    _expect(test["result"] == "valid", "accepted but the vector is invalid")
    _expect(decoded == test["decoded"], f"decoded {decoded}, vector says {test['decoded']}")


def check_status(group: JsonObject, test: JsonObject) -> None:
    frame = decode_frame(bytes.fromhex(test["encoded"]))
    _expect(isinstance(frame, StatusFrame), "not a STATUS frame")
    assert isinstance(frame, StatusFrame)
    message = status_message(frame.room_id, frame.off_central, frame.expires_ms)
    ok = verify(bytes.fromhex(test["publicKey"]), message, frame.signature)
    _expect(ok == (test["result"] == "valid"), f"signature verifies: {ok}")


def check_committee(group: JsonObject, test: JsonObject) -> None:
    candidates = [
        Candidate(
            node_id=NodeId(bytes.fromhex(c["nodeId"])),
            capabilities=DeviceCapabilities.from_json(c["capabilities"]),
        )
        for c in test["candidates"]
    ]
    config = CommitteeConfig(size=test["size"], pool=test["pool"])
    committee = select_committee(bytes.fromhex(test["dhtIdent"]), candidates, config)
    got = [n.hex() for n in committee]
    _expect(got == test["committee"], f"committee {got}")


CHECKS: Final[dict[str, Callable[[JsonObject, JsonObject], None]]] = {
    "P2PFrameDecodeTest": check_decode,
    "RelayDecodeTest": check_decode,
    "P2PStatusVerifyTest": check_status,
    "CommitteeSelectionTest": check_committee,
}
