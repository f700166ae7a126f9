"""The in-process runner: every committed vector, checked against the reference code.

Another implementation reads the same JSON files; this module is also the
executable description of what each test type asks, one function per
``testGroups[].type``. A check returns a `VectorResult`; it never raises for
a failing vector (a crash of the code under test is reported as a failure
whose detail names the exception), so a report always covers every test.

Results: ``valid`` tests must be accepted with the given outputs, ``invalid``
ones refused (with the given error code where one is named), and
``acceptable`` ones may go either way, but if accepted must give the outputs.
"""

import json
import random
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

from railgun_ref.conformance.common import (
    VECTOR_AREAS,
    JsonObject,
    address_from_json,
    base_counters,
    diagnostic,
    drain,
    load_vectors,
)
from railgun_ref.core.errors import LocalProtocolError, RemoteProtocolError
from railgun_ref.core.ids import NodeId
from railgun_ref.identity import ed25519_math
from railgun_ref.identity.keyfile import KeyFileError, load_identity
from railgun_ref.identity.keys import Identity, verify
from railgun_ref.node import ConnectionId, Node, NodeConfig
from railgun_ref.wire import cbor
from railgun_ref.wire.envelope import decode_envelope, encode_envelope
from railgun_ref.wire.framing import FrameDecoder


@dataclass(frozen=True, slots=True, kw_only=True)
class VectorResult:
    """The outcome of one vector against the reference implementation."""

    area: str
    tc_id: int
    clause: str
    expected: str  #: the vector's result: valid / invalid / acceptable
    passed: bool
    detail: str  #: empty when passed; otherwise what differed

    @property
    def test_id(self) -> str:
        return f"{self.area}-{self.tc_id}"


class _MismatchError(Exception):
    """Raised inside a check to report what differed."""


def _expect(condition: bool, detail: str) -> None:
    if not condition:
        raise _MismatchError(detail)


def _equal(what: str, got: object, want: object) -> None:
    if got != want:
        raise _MismatchError(f"{what}: got {got!r}, expected {want!r}")


def _refused_with(test: JsonObject, code_name: str | None) -> None:
    """The code under test refused the input: check that the vector wanted that."""
    _expect(test["result"] != "valid", f"refused ({code_name}) but the vector is valid")
    want = test.get("expectedError")
    if want is not None and code_name is not None:
        _equal("error code", code_name, want)


def _accepted(test: JsonObject) -> None:
    _expect(test["result"] != "invalid", "accepted but the vector is invalid")


# ------------------------------------------------------------------ checks


def _check_cbor(group: JsonObject, test: JsonObject) -> None:
    data = bytes.fromhex(test["encoded"])
    try:
        value = cbor.decode(data)
    except RemoteProtocolError as exc:
        _refused_with(test, exc.code.name)
        return
    _accepted(test)
    _equal("diagnostic notation", diagnostic(value), test["diagnostic"])
    _equal("re-encoding", cbor.encode(value).hex(), test["encoded"])


def _check_ed25519(group: JsonObject, test: JsonObject) -> None:
    public_key = bytes.fromhex(group["publicKey"])
    message = bytes.fromhex(test["msg"])
    signature = bytes.fromhex(test["sig"])
    for cofactored, key in ((False, "cofactorless"), (True, "cofactored")):
        got = ed25519_math.verify_equation(public_key, message, signature, cofactored=cofactored)
        _equal(f"bare {key} equation", got, test[key])
    if verify(public_key, message, signature):
        _accepted(test)
    else:
        _refused_with(test, None)


def _check_identity(group: JsonObject, test: JsonObject) -> None:
    try:
        identity = load_identity(bytes.fromhex(test["keyFile"]))
    except KeyFileError:
        _refused_with(test, None)
        return
    _accepted(test)
    _equal("public key", identity.public_key.hex(), test["publicKey"])
    _equal("node id", identity.node_id.hex(), test["nodeId"])


def _check_envelope_encode(group: JsonObject, test: JsonObject) -> None:
    identity = Identity.from_seed(bytes.fromhex(group["seed"]))
    _equal("public key", identity.public_key.hex(), group["publicKey"])
    _equal("node id", identity.node_id.hex(), group["nodeId"])
    try:
        data = encode_envelope(
            identity,
            type=test["messageType"],
            request_id=int(test["requestId"]),
            timestamp_ms=test["timestampMs"],
            body=cbor.decode(bytes.fromhex(test["body"])),
            max_size=test["maxSize"],
        )
    except LocalProtocolError:
        _refused_with(test, None)
        return
    _accepted(test)
    _equal("envelope bytes", data.hex(), test["envelope"])


def _check_envelope_decode(group: JsonObject, test: JsonObject) -> None:
    expected = group["expectedSender"]
    try:
        envelope = decode_envelope(
            bytes.fromhex(test["envelope"]),
            max_size=group["maxSize"],
            expected_sender=None if expected is None else NodeId(bytes.fromhex(expected)),
        )
    except RemoteProtocolError as exc:
        _refused_with(test, exc.code.name)
        return
    _accepted(test)
    decoded = {
        "version": envelope.version,
        "messageType": envelope.type,
        "requestId": str(envelope.request_id),
        "senderKey": envelope.sender_key.hex(),
        "senderId": envelope.sender_id.hex(),
        "timestampMs": envelope.timestamp_ms,
        "body": cbor.encode(envelope.body).hex(),
    }
    _equal("decoded envelope", decoded, test["decoded"])


def _check_framing(group: JsonObject, test: JsonObject) -> None:
    decoder = FrameDecoder(max_size=group["maxFrameSize"])
    frames: list[str] = []
    error: str | None = None
    for chunk in test["chunks"]:
        decoder.feed(bytes.fromhex(chunk))
        try:
            while (frame := decoder.next_frame()) is not None:
                frames.append(frame.hex())
        except RemoteProtocolError as exc:
            error = exc.code.name
            break
    _equal("frames taken out", frames, test["frames"])
    if error is not None:
        _refused_with(test, error)
    else:
        _accepted(test)
        _equal("bytes buffered", decoder.buffered, test["buffered"])


def _check_node_script(group: JsonObject, test: JsonObject) -> None:
    config = group["config"]
    node = Node(
        Identity.from_seed(bytes.fromhex(group["nodeSeed"])),
        rng=random.Random(group["rngSeed"]),
        config=NodeConfig(
            request_timeout=config["requestTimeout"],
            max_clock_skew=config["maxClockSkew"],
            replay_capacity=config["replayCapacity"],
        ),
        now=group["createdAt"],
    )
    _equal("node id", node.node_id.hex(), group["nodeId"])
    for index, step in enumerate(test["steps"], start=1):
        op, now = step["op"], step["now"]
        got: JsonObject
        if op == "receive_datagram":
            node.receive_datagram(
                bytes.fromhex(step["data"]), address_from_json(step["from"]), now=now
            )
            got = drain(node)
        elif op == "receive_stream":
            node.receive_stream_message(
                bytes.fromhex(step["data"]),
                ConnectionId(step["connection"]),
                address_from_json(step["from"]),
                now=now,
            )
            got = drain(node)
        elif op == "ping":
            peer = step["expectedPeer"]
            request_id = node.ping(
                address_from_json(step["to"]),
                now=now,
                payload=bytes.fromhex(step["payload"]),
                expected_peer=None if peer is None else NodeId(bytes.fromhex(peer)),
            )
            got = {**drain(node), "requestId": str(request_id)}
        elif op == "timer":
            node.on_timer(now=now)
            got = drain(node)
        else:
            raise _MismatchError(f"step {index}: unknown op {op!r}")
        for key, want in step["expect"].items():
            _equal(f"step {index} ({step['comment']}): {key}", got.get(key), want)
    _equal("counters", base_counters(node.counters), test["counters"])


_CHECKS: Final[dict[str, Callable[[JsonObject, JsonObject], None]]] = {
    "CborDecodeTest": _check_cbor,
    "Ed25519VerifyTest": _check_ed25519,
    "IdentityFileTest": _check_identity,
    "EnvelopeEncodeTest": _check_envelope_encode,
    "EnvelopeDecodeTest": _check_envelope_decode,
    "FrameDecodeTest": _check_framing,
    "NodeScriptTest": _check_node_script,
}


# ------------------------------------------------------------------ driver


def iter_vectors(area: str) -> Iterator[tuple[JsonObject, JsonObject]]:
    """Every (group, test) pair of `area`'s committed vector file."""
    for group in load_vectors(area)["testGroups"]:
        for test in group["tests"]:
            yield group, test


def run_test(area: str, group: JsonObject, test: JsonObject) -> VectorResult:
    """Check one vector against the reference implementation."""
    check = _CHECKS.get(group["type"])
    detail = ""
    if check is None:
        detail = f"no check for test type {group['type']!r}"
    else:
        try:
            check(group, test)
        except _MismatchError as exc:
            detail = str(exc)
        except Exception as exc:  # the code under test crashed: a failure, not a runner error
            detail = f"raised {type(exc).__name__}: {exc}"
    return VectorResult(
        area=area,
        tc_id=test["tcId"],
        clause=test["clause"],
        expected=test["result"],
        passed=not detail,
        detail=detail,
    )


def run_file(area: str) -> list[VectorResult]:
    """Check every vector of `area` (e.g. ``"envelope"``)."""
    return [run_test(area, group, test) for group, test in iter_vectors(area)]


def run_all() -> list[VectorResult]:
    return [result for area in VECTOR_AREAS for result in run_file(area)]


def main(json_output: bool = False) -> int:
    """Run every vector; print a summary (or JSON lines); exit status 1 on any failure."""
    results = run_all()
    failed = [r for r in results if not r.passed]
    if json_output:
        for r in results:
            row: dict[str, Any] = {
                "test": r.test_id,
                "clause": r.clause,
                "expected": r.expected,
                "passed": r.passed,
                "detail": r.detail,
            }
            print(json.dumps(row, sort_keys=True))
    else:
        for r in failed:
            print(f"FAIL {r.test_id} [{r.clause}] {r.detail}")
        print(f"{len(results) - len(failed)}/{len(results)} conformance vectors pass")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(json_output="--json" in sys.argv[1:]))
