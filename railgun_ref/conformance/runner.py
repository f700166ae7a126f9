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

from railgun_ref import capacity, rooms, voice
from railgun_ref.capacity.nat import NatType
from railgun_ref.conformance import (
    runner_abuse,
    runner_bootstrap,
    runner_privacy,
    runner_relays,
)
from railgun_ref.conformance.common import (
    VECTOR_AREAS,
    JsonObject,
    address_from_json,
    base_counters,
    dht_message_json,
    diagnostic,
    drain,
    load_vectors,
    parse_dht_body,
    sf_observe,
    sf_run_script,
    traversal_json,
)
from railgun_ref.core.errors import LocalProtocolError, RemoteProtocolError
from railgun_ref.core.ids import NodeId
from railgun_ref.dht import geometry, keys, lookup, records, storage
from railgun_ref.dht.routing import Contact
from railgun_ref.dht.service import DhtConfig
from railgun_ref.identity import ed25519_math
from railgun_ref.identity.keyfile import KeyFileError, load_identity
from railgun_ref.identity.keys import Identity, verify
from railgun_ref.node import ConnectionId, Node, NodeConfig
from railgun_ref.rooms.announce import check_announcement_proof
from railgun_ref.rooms.ids import announce_identity_of
from railgun_ref.storeforward import holder as sf_holder
from railgun_ref.storeforward import messages as sf_messages
from railgun_ref.storeforward import rendezvous
from railgun_ref.traversal import messages as traversal_messages
from railgun_ref.traversal import plan as traversal_plan
from railgun_ref.voice import signalling as voice_signalling
from railgun_ref.wire import cbor
from railgun_ref.wire.envelope import decode_envelope, encode_envelope
from railgun_ref.wire.framing import FrameDecoder
from railgun_ref.wire.messages import MessageType


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
            dht=DhtConfig(room_proofs=config.get("roomProofs", False)),
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
        elif op == "get":
            node.dht.get(bytes.fromhex(step["key"]), now=now, quorum=step["quorum"])
            got = drain(node)
        else:
            raise _MismatchError(f"step {index}: unknown op {op!r}")
        for key, want in step["expect"].items():
            _equal(f"step {index} ({step['comment']}): {key}", got.get(key), want)
    _equal("counters", base_counters(node.counters), test["counters"])


# ------------------------------------------------------------------ DHT checks


def _hex_or_none(value: bytes | None) -> str | None:
    return None if value is None else value.hex()


def _check_dht_distance(group: JsonObject, test: JsonObject) -> None:
    a, b = bytes.fromhex(test["a"]), bytes.fromhex(test["b"])
    d = geometry.distance(a, b)
    _equal("distance", d.to_bytes(geometry.KEY_BYTES, "big").hex(), test["distance"])
    index = geometry.bucket_index(a, b)
    _equal("bucket index", index, test["bucketIndex"])
    if index is not None:
        low, high = geometry.bucket_range(index)
        _expect(low <= d < high, f"distance outside bucket {index}'s range [{low}, {high})")
    _accepted(test)


def _check_dht_key(group: JsonObject, test: JsonObject) -> None:
    ident = bytes.fromhex(test["ident"])
    _equal("key domain", keys.KEY_DOMAIN.hex(), group["domain"])
    try:
        key_type = keys.parse_key_type(test["keyType"])
    except RemoteProtocolError as exc:
        _refused_with(test, exc.code.name)
        return
    try:
        key = keys.derive_key(key_type, ident)
    except ValueError:
        # DHT-2.2: an ident over 64 bytes; in a record it is refused as TOO_LARGE (DHT-3.3).
        _refused_with(test, "TOO_LARGE")
        return
    _accepted(test)
    _equal("key type name", key_type.wire_name.decode("ascii"), test["keyTypeName"])
    data = keys.KEY_DOMAIN + key_type.wire_name + b"\x00" + ident
    _equal("SHA-256 input", data.hex(), test["input"])
    _equal("key", key.hex(), test["key"])


def _check_dht_record_sign(group: JsonObject, test: JsonObject) -> None:
    identity = Identity.from_seed(bytes.fromhex(group["seed"]))
    _equal("public key", identity.public_key.hex(), group["publicKey"])
    _equal("node id", identity.node_id.hex(), group["nodeId"])
    try:
        record = records.sign_record(
            identity,
            key_type=keys.KeyType(test["keyType"]),
            ident=bytes.fromhex(test["ident"]),
            seq=int(test["seq"]),
            expires_ms=test["expiresMs"],
            value=bytes.fromhex(test["value"]),
        )
    except LocalProtocolError:
        _refused_with(test, None)
        return
    _accepted(test)
    _equal("signed part", cbor.encode(record.signed_fields()).hex(), test["signedPart"])
    _equal("signature", record.signature.hex(), test["signature"])
    _equal("record", record.encode().hex(), test["record"])
    _equal("key", record.key.hex(), test["key"])
    _equal("publisher id", record.publisher_id.hex(), test["publisherId"])


def _check_dht_record_accept(group: JsonObject, test: JsonObject) -> None:
    store_key = test["storeKey"]
    try:
        record = records.decode_record(
            cbor.decode(bytes.fromhex(test["record"])),
            now=group["now"],
            key=None if store_key is None else bytes.fromhex(store_key),
        )
    except RemoteProtocolError as exc:
        _refused_with(test, exc.code.name)
        return
    _accepted(test)
    _equal("key", record.key.hex(), test["key"])
    _equal("publisher id", record.publisher_id.hex(), test["publisherId"])


def _check_dht_store_sequence(group: JsonObject, test: JsonObject) -> None:
    limits = group["limits"]
    table = storage.RecordTable(
        storage.StorageLimits(
            per_key=limits["perKey"], per_publisher=limits["perPublisher"], total=limits["total"]
        )
    )
    last_key, now = b"", 0.0
    refused: str | None = None
    for index, step in enumerate(test["steps"], start=1):
        now = step["now"]
        table.expire(now=now)  # DHT-4.3: what expired by now is gone
        what = f"step {index} ({step['comment']})"
        try:
            record = records.decode_record(cbor.decode(bytes.fromhex(step["record"])), now=now)
            last_key = record.key
            outcome: str = table.put(record).name
            refused = None
        except RemoteProtocolError as exc:
            _equal(f"{what}: refusal", exc.code.name, step.get("expectedError"))
            refused = exc.code.name
            continue
        _equal(f"{what}: outcome", outcome, step.get("outcome"))
    held = [r.encode().hex() for r in table.get(last_key, now=now)]
    _equal("records held under the last key", held, test["held"])
    if refused is None:
        _accepted(test)
    else:
        _refused_with(test, refused)


def _lookup_step_json(step: lookup.Step, result: list[str]) -> JsonObject:
    match step:
        case lookup.QueryPeer():
            return {"step": "query", "nodeId": step.contact.node_id.hex()}
        case lookup.Waiting():
            return {"step": "waiting", "until": step.until}
        case lookup.Finished():
            return {"step": "finished", "closest": result}
    raise TypeError(step)


def _check_dht_lookup(group: JsonObject, test: JsonObject) -> None:
    address = ("192.0.2.1", 7000)

    def contact(hex_id: str) -> Contact:
        return Contact(node_id=NodeId(bytes.fromhex(hex_id)), address=address)

    it = lookup.Lookup(
        bytes.fromhex(group["target"]),
        [contact(seed) for seed in test["seeds"]],
        local_id=NodeId(bytes.fromhex(group["localId"])),
        k=group["k"],
        alpha=group["alpha"],
        slow_after=group["slowAfter"],
    )
    result: list[str] | None = None  # DHT-6.3: fixed when the lookup finishes
    for index, step in enumerate(test["steps"], start=1):
        now, op = step["now"], step["op"]
        if op == "next":
            got = it.next(now=now)
            if isinstance(got, lookup.Finished) and result is None:
                result = [c.node_id.hex() for c in it.closest_succeeded()]
            shown = _lookup_step_json(got, result or [])
            want = step["expect"]
            if "closest" not in want:
                shown.pop("closest", None)
            _equal(f"step {index} (next at {now})", shown, want)
        elif op == "success":
            closer = [contact(c) for c in step["closer"]]
            it.on_success(NodeId(bytes.fromhex(step["nodeId"])), closer, now=now)
        elif op == "failure":
            it.on_failure(NodeId(bytes.fromhex(step["nodeId"])), now=now)
        else:
            raise _MismatchError(f"step {index}: unknown op {op!r}")


def _check_dht_message_body(group: JsonObject, test: JsonObject) -> None:
    data = bytes.fromhex(test["body"])
    try:
        message = parse_dht_body(group["messageType"], cbor.decode(data))
    except RemoteProtocolError as exc:
        _refused_with(test, exc.code.name)
        return
    _accepted(test)
    _equal("message type", MessageType(message.TYPE).name, group["messageName"])
    _equal("decoded body", dht_message_json(message), test["decoded"])
    _equal("re-encoding", cbor.encode(message.to_body()).hex(), test["body"])


# ------------------------------------------------------------------ capacity (CAP-x)

_NON_FINITE: Final = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


def _capabilities(value: JsonObject) -> capacity.DeviceCapabilities:
    return capacity.DeviceCapabilities.from_json(value)


def _check_capability_score(group: JsonObject, test: JsonObject) -> None:
    caps = _capabilities(test["capabilities"])
    _accepted(test)
    _equal("score", capacity.score(caps).to_json(), test["score"])


def _check_capability_validation(group: JsonObject, test: JsonObject) -> None:
    value = json.loads(json.dumps(test["capabilities"]))  # a deep copy to poke NaN into
    for path, name in test.get("nonFinite", {}).items():
        *parents, leaf = path.split(".")
        target = value
        for parent in parents:
            target = target[parent]
        target[leaf] = _NON_FINITE[name]
    try:
        caps = capacity.DeviceCapabilities.from_json(value)
    except capacity.CapabilityError as exc:
        _refused_with(test, None)
        _equal("field refused", exc.field, test["invalidField"])
        return
    _accepted(test)
    _equal("normalized", caps.to_json(), test["normalized"])


def _check_capability_encode(group: JsonObject, test: JsonObject) -> None:
    value = capacity.encode_capabilities(_capabilities(test["capabilities"]))
    _accepted(test)
    _equal("value", value.hex(), test["value"])
    _equal("size", len(value), test["size"])


def _check_capability_decode(group: JsonObject, test: JsonObject) -> None:
    try:
        caps = capacity.decode_capabilities(bytes.fromhex(test["value"]))
    except RemoteProtocolError as exc:
        _refused_with(test, exc.code.name)
        return
    _accepted(test)
    _equal("capabilities", caps.to_json(), test["capabilities"])


def _check_capability_record(group: JsonObject, test: JsonObject) -> None:
    node_id = test["nodeId"]
    try:
        advert = capacity.verify_advertisement(
            bytes.fromhex(test["record"]),
            now=test["now"],
            node_id=None if node_id is None else NodeId(bytes.fromhex(node_id)),
        )
    except RemoteProtocolError as exc:
        _refused_with(test, exc.code.name)
        return
    _accepted(test)
    _equal("publisher id", advert.node_id.hex(), test["publisherId"])
    _equal("seq", str(advert.seq), test["seq"])
    _equal("expiry", round(advert.expires_at * 1000), test["expiresMs"])
    _equal("capabilities", advert.capabilities.to_json(), test["capabilities"])


def _check_capability_directory(group: JsonObject, test: JsonObject) -> None:
    directory = capacity.CapabilityDirectory()
    now = 0.0
    for index, step in enumerate(test["steps"], start=1):
        now = step["now"]
        node_id = step["nodeId"]
        try:
            outcome = directory.offer(
                bytes.fromhex(step["record"]),
                now=now,
                node_id=None if node_id is None else NodeId(bytes.fromhex(node_id)),
            )
        except RemoteProtocolError as exc:
            _equal(f"step {index}: refusal", exc.code.name, step.get("expectedError"))
            continue
        _equal(f"step {index}: outcome", outcome.name, step.get("outcome"))
    held = {}
    for candidate in directory.candidates(now=now):
        advert = directory.get(candidate.node_id, now=now)
        if advert is not None:
            held[candidate.node_id.hex()] = str(advert.seq)
    _equal("held", held, test["held"])


def _check_selection(group: JsonObject, test: JsonObject) -> None:
    candidates = [
        capacity.Candidate(
            node_id=NodeId(bytes.fromhex(c["nodeId"])),
            capabilities=_capabilities(c["capabilities"]),
        )
        for c in test["candidates"]
    ]
    given = test.get("reputation")
    reputation = (
        None
        if given is None
        else {NodeId(bytes.fromhex(k)): int(score) for k, score in given.items()}
    )
    try:
        ranking = capacity.rank_candidates(
            candidates, capacity.Role(test["role"]), reputation=reputation
        )
    except LocalProtocolError:
        _refused_with(test, None)
        return
    _accepted(test)
    ranked = [
        {"nodeId": r.node_id.hex(), "total": r.score.total}
        | ({} if reputation is None else {"rank": r.rank})
        for r in ranking.ranked
    ]
    _equal("ranked", ranked, test["ranked"])
    excluded = [
        {"nodeId": n.hex(), "reasons": [reason.value for reason in reasons]}
        for n, reasons in ranking.excluded
    ]
    _equal("excluded", excluded, test["excluded"])


def _sharing_outcome(outcome: capacity.Granted | capacity.Refusal) -> JsonObject:
    if isinstance(outcome, capacity.Granted):
        return {"granted": True, "limit": outcome.limit, "inUse": outcome.in_use}
    retry_ms = outcome.retry_after_ms if isinstance(outcome, capacity.BandwidthRefused) else None
    return {
        "granted": False,
        "kind": outcome.kind.value,
        "limit": outcome.limit,
        "inUse": outcome.in_use,
        "retryAfter": outcome.retry_after,
        "retryAfterMs": retry_ms,
        "reason": outcome.reason(),
    }


def _check_sharing_script(group: JsonObject, test: JsonObject) -> None:
    config = test["config"]
    sharing = capacity.CapacitySharing(
        _capabilities(test["capabilities"]),
        capacity.CapacitySharingConfig(
            enabled=config["enabled"],
            max_upload_share=config["maxUploadShare"],
            max_relay_connections=config["maxRelayConnections"],
            burst=config["burst"],
        ),
        now=test["createdAt"],
    )
    _equal("rate", sharing.rate, test["rate"])
    _equal("burst", sharing.burst, test["burst"])
    for index, step in enumerate(test["steps"], start=1):
        now, op = step["now"], step["op"]
        got: JsonObject = {"now": now, "op": op}
        if op == "bandwidth":
            got["bytes"] = step["bytes"]
            got.update(_sharing_outcome(sharing.request_bandwidth(step["bytes"], now=now)))
            got["available"] = sharing.available(now=now)
        elif op == "open":
            got["key"] = step["key"]
            got.update(_sharing_outcome(sharing.open_relay_connection(step["key"])))
        elif op == "close":
            got["key"] = step["key"]
            sharing.close_relay_connection(step["key"])
            got["inUse"] = sharing.connections_in_use
        else:
            raise _MismatchError(f"step {index}: unknown op {op!r}")
        _equal(f"step {index} ({op} at {now})", got, step)


# ------------------------------------------------------------------ voice (VOICE-x)


def _voice_node(text: str) -> NodeId:
    return NodeId(bytes.fromhex(text))


def _check_voice_plan(group: JsonObject, test: JsonObject) -> None:
    config = voice.VoiceConfig.from_json(group["config"])
    try:
        participants = voice.participants_from_json(test["participants"])
        previous = None if test["previous"] is None else voice.CallPlan.from_json(test["previous"])
        plan = voice.plan_call(
            participants,
            config=config,
            previous=previous,
            excluded={_voice_node(n) for n in test["excluded"]},
        )
    except LocalProtocolError:
        _refused_with(test, None)
        return
    _accepted(test)
    _equal("plan", plan.to_json(), test["plan"])
    _equal("links", [[a.hex(), b.hex()] for a, b in plan.media_links()], test["links"])
    streams = {p.hex(): list(c) for p, c in voice.stream_counts(plan).items()}
    _equal("streams", streams, test["streams"])
    rate = config.stream_bitrate_bps
    bandwidth = {p.hex(): list(b) for p, b in voice.bandwidth_per_participant(plan, rate).items()}
    _equal("bandwidth", bandwidth, {p: [u * rate, d * rate] for p, (u, d) in streams.items()})


def _voice_step(controller: voice.CallController, step: JsonObject) -> None:
    now, event = step["now"], step["event"]
    if event == "join":
        caps = capacity.DeviceCapabilities.from_json(step["capabilities"])
        controller.join(_voice_node(step["nodeId"]), caps, now=now)
    elif event == "leave":
        controller.leave(_voice_node(step["nodeId"]), now=now)
    elif event == "capabilitiesChanged":
        caps = capacity.DeviceCapabilities.from_json(step["capabilities"])
        controller.capabilities_changed(_voice_node(step["nodeId"]), caps, now=now)
    elif event == "hostFailed":
        controller.host_failed(_voice_node(step["nodeId"]), now=now)
    elif event == "linksReady":
        links = [(_voice_node(a), _voice_node(b)) for a, b in step["links"]]
        controller.links_ready(links, now=now)
    elif event == "timer":
        controller.on_timer(now=now)
    else:
        raise _MismatchError(f"unknown event {event!r}")


def _check_voice_signalling(group: JsonObject, test: JsonObject) -> None:
    data = bytes.fromhex(test["encoded"])
    try:
        message = voice_signalling.decode_message(data)
    except RemoteProtocolError as exc:
        _refused_with(test, exc.code.name)
        return
    _accepted(test)
    _equal("decoded", voice_signalling.to_json(message), test["decoded"])
    _equal("re-encoded", voice_signalling.encode_message(message).hex(), test["encoded"])


def _check_voice_controller(group: JsonObject, test: JsonObject) -> None:
    controller = voice.CallController(config=voice.VoiceConfig.from_json(group["config"]))
    refused = False
    for index, step in enumerate(test["steps"], start=1):
        got: JsonObject = {}
        try:
            _voice_step(controller, step)
        except LocalProtocolError:
            refused = True
            got["error"] = "caller"
        actions: list[JsonObject] = []
        while (action := controller.next_action()) is not None:
            actions.append(action.to_json())
        got["actions"] = actions
        got["state"] = controller.state.value
        got["nextDeadline"] = controller.next_deadline()
        _equal(f"step {index} ({step['event']} at {step['now']})", got, step["expect"])
    _equal("counters", dict(sorted(controller.counters.items())), test["counters"])
    if refused:
        _refused_with(test, None)
    else:
        _accepted(test)


# ------------------------------------------------------------------ closed rooms (ROOM-2..6)


def _check_room_ids(group: JsonObject, test: JsonObject) -> None:
    secret = bytes.fromhex(test["secret"])
    ident = rooms.dht_ident_of(secret)
    _equal("room id", rooms.room_id_of(secret).hex(), test["roomId"])
    _equal("announce key", announce_identity_of(secret).public_key.hex(), test["announceKey"])
    _equal("DHT ident", ident.hex(), test["dhtIdent"])
    _equal("DHT key", keys.derive_key(keys.KeyType.ROOM, ident).hex(), test["dhtKey"])


def _check_room_change_decode(group: JsonObject, test: JsonObject) -> None:
    try:
        change = rooms.decode_change(bytes.fromhex(test["change"]))
    except RemoteProtocolError as exc:
        _refused_with(test, exc.code.name)
        return
    _accepted(test)
    _equal("hash", change.hash.hex(), test["hash"])
    _equal("kind", change.kind.name, test["kind"])
    _equal("signer", change.signer.hex(), test["signer"])
    _equal("subject", change.subject.hex(), test["subject"])


def _check_room_log(group: JsonObject, test: JsonObject) -> None:
    changes = [rooms.decode_change(bytes.fromhex(c)) for c in test["changes"]]
    log = rooms.ChangeLog(changes[0])
    refused = []
    for change in changes[1:]:
        refused += [[h.hex(), e.code.name] for h, e in log.insert([change]).refused]
    membership = log.membership
    _equal("refused on arrival", refused, test["refusedOnArrival"])
    not_counted = {h.hex(): why.value for h, why in membership.refused.items()}
    _equal("not counted", not_counted, test["notCounted"])
    _equal("members", [k.hex() for k in membership.member_keys()], test["members"])


def _check_room_invitation(group: JsonObject, test: JsonObject) -> None:
    invitee = Identity.from_seed(bytes.fromhex(test["inviteeSeed"]))
    try:
        opened = rooms.open_invitation(
            invitee, bytes.fromhex(test["invitation"]), now=test["nowMs"] / 1000
        )
    except RemoteProtocolError as exc:
        _refused_with(test, exc.code.name)
        return
    _accepted(test)
    _equal("room id", opened.room_id.hex(), test["roomId"])
    _equal("secret", opened.secret.hex(), test["secret"])
    _equal("inviter", opened.inviter.hex(), test["inviter"])
    _equal("ADD hash", opened.add.hash.hex(), test["addHash"])


def _check_room_announce(group: JsonObject, test: JsonObject) -> None:
    try:
        check_announcement_proof(
            bytes.fromhex(test["value"]),
            publisher=bytes.fromhex(test["publisherKey"]),
            dht_ident=bytes.fromhex(group["dhtIdent"]),
        )
    except RemoteProtocolError as exc:
        _refused_with(test, exc.code.name)
        return
    _accepted(test)


# ------------------------------------------------------------------ store-and-forward (SF-x)


def _check_sf_rendezvous(group: JsonObject, test: JsonObject) -> None:
    secret, recipient = bytes.fromhex(test["roomSecret"]), NodeId(bytes.fromhex(test["recipient"]))
    try:
        epoch = rendezvous.epoch_of(test["now"])
        rid = rendezvous.rendezvous_id(secret, recipient, epoch)
    except LocalProtocolError:
        _refused_with(test, None)
        return
    _accepted(test)
    _equal("epoch", epoch, test["epoch"])
    _equal("rendezvous id", rid.hex(), test["rendezvousId"])
    _equal("dht key", rendezvous.rendezvous_key(secret, recipient, epoch).hex(), test["dhtKey"])
    mailbox = rendezvous.mailbox_identity(bytes.fromhex(test["identitySeed"]), rid)
    _equal("mailbox key", mailbox.public_key.hex(), test["mailboxKey"])


def _check_sf_decode(group: JsonObject, test: JsonObject) -> None:
    data = bytes.fromhex(test["encoded"])
    try:
        message = sf_messages.decode(data)
    except RemoteProtocolError as exc:
        _refused_with(test, exc.code.name)
        return
    _accepted(test)
    _equal("decoded", sf_messages.to_json(message), test["decoded"])
    _equal("re-encoded", sf_messages.encode(message).hex(), test["encoded"])


def _check_traversal_message(group: JsonObject, test: JsonObject) -> None:
    try:
        message = traversal_messages.decode(bytes.fromhex(test["payload"]))
    except RemoteProtocolError as exc:
        _refused_with(test, exc.code.name)
        return
    _accepted(test)
    _equal("decoded", traversal_json(message), test["decoded"])


def _check_traversal_plan(group: JsonObject, test: JsonObject) -> None:
    a, b = NatType(test["initiator"]), NatType(test["responder"])
    _equal("punchable", traversal_plan.punchable(a, b), test["punchable"])
    _equal("plan", traversal_plan.choose_plan(a, b).value, test["plan"])


def _check_sf_script(group: JsonObject, test: JsonObject) -> None:
    def compare(holder: sf_holder.StorageHolder, step: JsonObject) -> None:
        _equal(f"step at {step['now']}", sf_observe(holder), step["expect"])

    config = sf_holder.config_from_json(test["config"])
    holder_id = NodeId(bytes.fromhex(group["holder"]))
    holder = sf_run_script(config, holder_id, test["steps"], compare)
    _equal("counters", holder.counters.snapshot(), test["counters"])
    refusal = test["steps"][-1]["expect"]["refusal"]
    if refusal is None:
        _accepted(test)
    else:
        _refused_with(test, refusal)


_CHECKS: Final[dict[str, Callable[[JsonObject, JsonObject], None]]] = {
    "CborDecodeTest": _check_cbor,
    "Ed25519VerifyTest": _check_ed25519,
    "IdentityFileTest": _check_identity,
    "EnvelopeEncodeTest": _check_envelope_encode,
    "EnvelopeDecodeTest": _check_envelope_decode,
    "FrameDecodeTest": _check_framing,
    "TraversalMessageTest": _check_traversal_message,
    "TraversalPlanTest": _check_traversal_plan,
    "NodeScriptTest": _check_node_script,
    "DhtDistanceTest": _check_dht_distance,
    "DhtKeyDerivationTest": _check_dht_key,
    "DhtRecordSignTest": _check_dht_record_sign,
    "DhtRecordAcceptTest": _check_dht_record_accept,
    "DhtStoreSequenceTest": _check_dht_store_sequence,
    "DhtLookupTest": _check_dht_lookup,
    "DhtMessageBodyTest": _check_dht_message_body,
    "CapabilityScoreTest": _check_capability_score,
    "CapabilityValidationTest": _check_capability_validation,
    "CapabilityEncodeTest": _check_capability_encode,
    "CapabilityDecodeTest": _check_capability_decode,
    "CapabilityRecordTest": _check_capability_record,
    "CapabilityDirectoryTest": _check_capability_directory,
    "SelectionTest": _check_selection,
    "SharingScriptTest": _check_sharing_script,
    "VoicePlanTest": _check_voice_plan,
    "VoiceControllerTest": _check_voice_controller,
    "VoiceSignallingDecodeTest": _check_voice_signalling,
    "RoomIdTest": _check_room_ids,
    "RoomChangeDecodeTest": _check_room_change_decode,
    "RoomLogTest": _check_room_log,
    "RoomInvitationTest": _check_room_invitation,
    "RoomAnnounceTest": _check_room_announce,
    **runner_bootstrap.CHECKS,
    **runner_abuse.CHECKS,
    "SfRendezvousTest": _check_sf_rendezvous,
    "SfMessageDecodeTest": _check_sf_decode,
    "SfHolderScriptTest": _check_sf_script,
    **runner_relays.CHECKS,
    **runner_privacy.CHECKS,
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
