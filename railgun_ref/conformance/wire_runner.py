"""The wire runner: check a running node it did not start, over UDP, clause by clause.

``railgun-ref conformance run --target udp://127.0.0.1:PORT`` drives a node as
h2spec or Autobahn drive an HTTP/2 or WebSocket server: from outside, with its
own fresh identity, knowing nothing but the address. Each check names the
clause it tests and says what it saw:

* a PING gets a PONG (MSG-2.1) whose envelope authenticates (ENV-2.1, ID-2),
  with our request id (RPC-1.1), our payload and the address we sent from
  (MSG-2.2), stamped by a clock within 300 s of ours (ENV-1.5);
* each kind of bad datagram — random bytes, a truncated envelope, a bad
  signature, 1300 bytes, version 2, a stale timestamp — gets *no* reply within
  the timeout, and the node still answers a PING afterwards (NODE-1.2,
  ENV-1.4, ENV-2.3);
* a replayed PING gets no second PONG (ENV-2.4);
* an authenticated envelope of unknown type gets ERROR UNKNOWN_TYPE (MSG-1.3),
  and a PING with a malformed body gets ERROR MALFORMED (MSG-1.2);
* the DHT (section 10 of the spec): a few extra identities of the runner, each
  on its own socket, PING the node so that it learns them (DHT-5.1), then a
  FIND_NODE gets a NODES listing them at their source addresses, nearest the
  target first, without the asker (DHT-7.1, DHT-7.2); a STORE of a forged
  record gets ERROR BAD_SIGNATURE (DHT-3.3) and of a `peer` record naming
  another node ERROR FORBIDDEN (DHT-3.4); a valid rendezvous record of the
  runner is STORED and a FIND_VALUE for its key returns it byte for byte
  (DHT-7.6, DHT-7.4); malformed and truncated DHT bodies get ERROR MALFORMED
  and the node still answers a PING (DHT-7.1, DHT-7.3, DHT-7.5, DHT-3.3);
  unsolicited DHT responses get no reply (DHT-7.7);
* room records that do not fit a datagram: six members' announcements (with
  the proof of a fresh room secret, ROOM-6.2) are STORED, a datagram
  FIND_VALUE says `truncated` (DHT-7.4), and the same FIND_VALUE as a frame
  on a TCP connection to the node's port (STR-1.1) carries all six
  (DHT-7.8). This is the one check that uses a stream;
* edges the encoder would never produce (`wire_cases`): a PING of exactly
  1200 bytes, whose PONG cannot fit, gets ERROR TOO_LARGE (NODE-1.4); validly
  signed envelopes with non-shortest CBOR heads or unsorted keys, a small-order
  sender key, a timestamp 400 s ahead, unsolicited PONG and ERROR responses and
  a re-signed copy of a PING get no reply (ENC-1.5, ENC-1.3, ID-2.2, ENV-2.3,
  NODE-1.4, ENV-2.4); records that expired, expire beyond the maximum TTL or
  carry 257 bytes get ERROR EXPIRED, TTL_TOO_LONG and TOO_LARGE (DHT-3.3,
  DHT-3.2), and a publisher's sequence numbers are compared (DHT-3.5).

`CHECKS` lists every check a full run reports, with its clause; the spec's
table of runner checks (section 9.1) and ``paper/conformance_coverage.md`` are
generated from it.

Every check uses its own UDP socket, so a reply can only belong to it, and
the checks that wait for silence run concurrently: a run takes about three
timeouts. Every wait is bounded by the timeout. The runner refuses targets
outside 127.0.0.0/8 and ::1: it is a test tool and sends garbage on purpose.
"""

import functools
import ipaddress
import itertools
import json
import os
import secrets
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass, field
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

import anyio
import anyio.abc
from anyio.abc import SocketAttribute
from rich.console import Console
from rich.table import Table

from railgun_ref.conformance.builders.base import payload_for_size
from railgun_ref.conformance.wire_cases import (
    edge_record,
    noncanonical_envelopes,
    ping_body_for_size,
    raw_map,
    signed_items,
)
from railgun_ref.core.constants import MAX_CLOCK_SKEW, MAX_DATAGRAM_SIZE, MAX_STREAM_MESSAGE_SIZE
from railgun_ref.core.errors import ErrorCode, RemoteProtocolError
from railgun_ref.core.ids import Address, NodeId
from railgun_ref.dht.geometry import distance
from railgun_ref.dht.keys import KeyType
from railgun_ref.dht.records import MAX_TTL, MAX_VALUE_SIZE, Record, sign_record
from railgun_ref.drivers.console import ProgressReport
from railgun_ref.identity.keys import Identity
from railgun_ref.rooms.announce import room_announcement
from railgun_ref.rooms.ids import dht_ident_of
from railgun_ref.wire import cbor
from railgun_ref.wire.envelope import ENVELOPE_DOMAIN, Envelope, decode_envelope, encode_envelope
from railgun_ref.wire.framing import FrameDecoder, encode_frame
from railgun_ref.wire.messages import (
    MAX_CONTACTS,
    Cookie,
    ErrorReply,
    FindNode,
    FindValue,
    Message,
    MessageType,
    Nodes,
    Ping,
    Pong,
    Store,
    Stored,
    StoreStatus,
    Value,
    parse_message,
)

#: Message types a node sends on its own initiative; seeing one is not an answer to us.
_REQUEST_TYPES: Final = frozenset({1, 16, 18, 20})
#: Size of the oversized datagram: over the 1200-byte limit, under any MTU of loopback.
_OVERSIZE: Final = 1300
_LOOPBACK_V4: Final = ipaddress.IPv4Network("127.0.0.0/8")
_LOOPBACK_V6: Final = ipaddress.IPv6Address("::1")
#: Extra identities that PING the node before FIND_NODE, so it has contacts to return.
_HELPERS: Final = 4
#: Lifetime of the records the runner stores, seconds (well under the maximum TTL).
_RECORD_TTL: Final = 600
#: Room announcements stored for the stream check: more than a datagram VALUE holds.
_ROOM_MEMBERS: Final = 6


class TargetError(ValueError):
    """The target is not a udp:// URL of a loopback address."""


#: ABUSE-2.4: the requests that echo a COOKIE.
_ECHOING: Final = frozenset({MessageType.FIND_NODE, MessageType.FIND_VALUE})


def parse_target(target: str) -> Address:
    """``udp://HOST:PORT`` -> (host, port), for IP literals in 127.0.0.0/8 or ::1 only."""
    parts = urlsplit(target)
    if parts.scheme != "udp":
        raise TargetError(f"target must be udp://HOST:PORT, got {target!r}")
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.hostname is None or port is None or port == 0:
        raise TargetError(f"target must name a host and a non-zero port, got {target!r}")
    try:
        host = ipaddress.ip_address(parts.hostname)
    except ValueError:
        raise TargetError(
            f"target host must be an IP literal in 127.0.0.0/8 or ::1, got {parts.hostname!r}"
        ) from None
    loopback = host == _LOOPBACK_V6 if host.version == 6 else host in _LOOPBACK_V4
    if not loopback:
        raise TargetError(
            f"refusing {host}: the wire runner only talks to 127.0.0.0/8 and ::1, since it"
            " sends malformed traffic on purpose"
        )
    return (str(host), port)


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckResult:
    """One check of the run: the clause it tests, whether it passed, what was seen."""

    check: str
    clause: str
    passed: bool
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    """The outcome of a run against one target."""

    target: str
    node_id: str | None  #: hex node id that signed the first PONG, if any
    timeout: float
    checks: tuple[CheckResult, ...] = field(default=())

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(check.passed for check in self.checks)

    @property
    def failed_clauses(self) -> list[str]:
        return sorted({check.clause for check in self.checks if not check.passed})

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "nodeId": self.node_id,
            "timeout": self.timeout,
            "passed": self.passed,
            "checks": [asdict(check) for check in self.checks],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_table(self) -> Table:
        table = Table(title=f"railgun-ref conformance: {self.target}", show_lines=False)
        table.add_column("clause", style="bold")
        table.add_column("check")
        table.add_column("result")
        table.add_column("detail", overflow="fold")
        for check in self.checks:
            verdict = "[green]PASS[/green]" if check.passed else "[red]FAIL[/red]"
            table.add_row(check.clause, check.check, verdict, check.detail)
        return table


# ------------------------------------------------------------------ probes


def _now_ms() -> int:
    return round(time.time() * 1000)


def _request_id() -> int:
    return secrets.randbits(64)


class _Probe:
    """One connected UDP socket to the target, with our identity."""

    def __init__(
        self, socket: anyio.abc.ConnectedUDPSocket, identity: Identity, timeout: float
    ) -> None:
        self.socket = socket
        self.identity = identity
        self.timeout = timeout
        local = socket.extra(SocketAttribute.local_address)
        assert isinstance(local, tuple)  # an IP socket, never a UNIX one
        self.local: Address = (str(local[0]), int(local[1]))

    def envelope(
        self,
        msg_type: int,
        body: dict[int, Any],
        *,
        request_id: int | None = None,
        timestamp_ms: int | None = None,
        max_size: int = MAX_DATAGRAM_SIZE,
    ) -> tuple[bytes, int]:
        request_id = _request_id() if request_id is None else request_id
        data = encode_envelope(
            self.identity,
            type=msg_type,
            request_id=request_id,
            timestamp_ms=_now_ms() if timestamp_ms is None else timestamp_ms,
            body=body,
            max_size=max_size,
        )
        return data, request_id

    async def send(self, data: bytes) -> None:
        await self.socket.send(data)

    async def replies(self) -> list[bytes]:
        """Every datagram that arrives within the timeout (the node's own requests excluded)."""
        out: list[bytes] = []
        with anyio.move_on_after(self.timeout):
            while True:
                try:
                    data = await self.socket.receive()
                except OSError:  # e.g. ICMP port unreachable: nobody is listening
                    await anyio.sleep(self.timeout / 10)
                    continue
                if not _is_own_request(data, self.identity.public_key):
                    out.append(data)
        return out

    async def reply(self, request_id: int) -> bytes | None:
        """The first datagram within the timeout that is not the node's own request."""
        with anyio.move_on_after(self.timeout):
            while True:
                try:
                    data = await self.socket.receive()
                except OSError:
                    await anyio.sleep(self.timeout / 10)
                    continue
                if not _is_own_request(data, self.identity.public_key):
                    return data
        return None


def _is_own_request(data: bytes, our_key: bytes) -> bool:
    """A request the node signed itself (e.g. DHT traffic): not a reply to us.

    Our own envelopes sent back to us are replies (echoes), never the node's requests.
    """
    try:
        envelope = decode_envelope(data)
    except RemoteProtocolError:
        return False
    return envelope.type in _REQUEST_TYPES and envelope.sender_key != our_key


def _describe(data: bytes) -> str:
    try:
        envelope = decode_envelope(data, max_size=MAX_STREAM_MESSAGE_SIZE)
    except RemoteProtocolError as exc:
        return f"{len(data)} bytes that do not authenticate ({exc.code.name})"
    try:
        name = MessageType(envelope.type).name
    except ValueError:
        name = f"type {envelope.type}"
    return f"{len(data)} bytes: {name} for request {envelope.request_id}"


@dataclass(slots=True)
class _Run:
    target: Address
    timeout: float
    identity: Identity
    node_id: NodeId | None = None
    results: list[tuple[int, CheckResult]] = field(default_factory=list)
    #: Called with each result as it is recorded (progress on the command line).
    on_check: Callable[[CheckResult], None] | None = None

    def record(self, order: int, check: str, clause: str, passed: bool, detail: str) -> None:
        result = CheckResult(check=check, clause=clause, passed=passed, detail=detail)
        self.results.append((order, result))
        if self.on_check is not None:
            self.on_check(result)

    async def probe(
        self, use: Callable[[_Probe], Awaitable[None]], *, identity: Identity | None = None
    ) -> None:
        """Run `use` on a fresh socket, as `identity` (the run's own by default)."""
        host, port = self.target
        async with await anyio.create_connected_udp_socket(host, port, local_host=host) as sock:
            await use(_Probe(sock, identity or self.identity, self.timeout))

    async def request(
        self, probe: _Probe, msg_type: int, body: dict[int, Any]
    ) -> tuple[Envelope, Message] | str:
        """Send one request; the authenticated reply and its message, or why there is none."""
        data, request_id = probe.envelope(msg_type, body)
        await probe.send(data)
        reply = await probe.reply(request_id)
        if reply is None:
            return f"no reply within {self.timeout} s"
        envelope = self.authenticate(reply)
        if isinstance(envelope, RemoteProtocolError):
            return f"reply does not authenticate: {envelope.code.name}"
        if envelope.request_id != request_id:
            return f"reply for request {envelope.request_id}, not ours ({request_id})"
        try:
            message = parse_message(envelope)
        except RemoteProtocolError as exc:
            return f"reply body refused: {exc}"
        if isinstance(message, Cookie) and msg_type in _ECHOING and 1 not in body:
            # ABUSE-2.4: a node validates our address before a large answer; echo once.
            return await self.request(probe, msg_type, {**body, 1: message.cookie})
        return envelope, message

    def authenticate(self, data: bytes) -> Envelope | RemoteProtocolError:
        try:
            return decode_envelope(data, expected_sender=self.node_id)
        except RemoteProtocolError as exc:
            return exc

    async def ping_answered(self, probe: _Probe) -> str | None:
        """Send a PING; None if a valid PONG answers it, else why not."""
        data, request_id = probe.envelope(MessageType.PING, Ping(payload=b"alive?").to_body())
        await probe.send(data)
        reply = await probe.reply(request_id)
        if reply is None:
            return f"no reply to a PING within {self.timeout} s"
        envelope = self.authenticate(reply)
        if isinstance(envelope, RemoteProtocolError):
            return f"reply to a PING does not authenticate: {envelope.code.name}"
        if envelope.type != MessageType.PONG or envelope.request_id != request_id:
            return f"a PING was answered with {_describe(reply)}"
        return None


# ------------------------------------------------------------------ checks


async def _check_ping(run: _Run, probe: _Probe) -> None:
    """MSG-2.1/2.2, RPC-1.1, ENV-2.1, ENV-2.3: the PONG and everything it must carry."""
    payload = os.urandom(16)
    data, request_id = probe.envelope(MessageType.PING, Ping(payload=payload).to_body())
    await probe.send(data)
    reply = await probe.reply(request_id)
    if reply is None:
        run.record(0, "PING is answered", "MSG-2.1", False, f"no reply within {run.timeout} s")
        return
    run.record(0, "PING is answered", "MSG-2.1", True, f"{len(reply)}-byte reply")
    try:
        envelope = decode_envelope(reply)
    except RemoteProtocolError as exc:
        run.record(1, "reply envelope authenticates", "ENV-2.1", False, str(exc))
        return
    run.node_id = envelope.sender_id
    run.record(
        1,
        "reply envelope authenticates",
        "ENV-2.1",
        True,
        f"Ed25519 signature valid under ID-2; node id {envelope.sender_id.hex()}",
    )
    same_id = envelope.request_id == request_id
    run.record(
        2,
        "reply carries the PING's request id",
        "RPC-1.1",
        same_id,
        f"sent {request_id}, got {envelope.request_id}",
    )
    skew = envelope.timestamp_ms / 1000 - time.time()
    run.record(
        3,
        "reply stamped with the node's clock",
        "ENV-1.5",
        abs(skew) <= MAX_CLOCK_SKEW,
        f"{skew:+.3f} s from our clock",
    )
    _check_pong(run, probe, envelope, payload)


def _check_pong(run: _Run, probe: _Probe, envelope: Envelope, payload: bytes) -> None:
    """MSG-2.2: the reply to our PING is a PONG echoing `payload` and naming our address."""
    try:
        message = parse_message(envelope)
    except RemoteProtocolError as exc:
        run.record(
            4,
            "reply is a PONG echoing payload and our address",
            "MSG-2.2",
            False,
            f"body refused: {exc}",
        )
        return
    if not isinstance(message, Pong):
        run.record(
            4,
            "reply is a PONG echoing payload and our address",
            "MSG-2.2",
            False,
            f"got {type(message).__name__}",
        )
        return
    problems = []
    if message.payload != payload:
        problems.append(f"payload {message.payload.hex()} != {payload.hex()}")
    if message.observed != probe.local:
        problems.append(f"observed {message.observed} but we sent from {probe.local}")
    run.record(
        4,
        "reply is a PONG echoing payload and our address",
        "MSG-2.2",
        not problems,
        "; ".join(problems) or f"observed {message.observed[0]}:{message.observed[1]}",
    )


def _garbage_kinds(probe: _Probe) -> list[tuple[str, str, bytes]]:
    """(check name, clause, datagram) of each input the node must not answer."""
    request_id = _request_id()
    good, _ = probe.envelope(MessageType.PING, Ping().to_body(), request_id=request_id)
    signed, signature = cbor.decode(good)
    bad_signature = bytearray(signature)
    bad_signature[40] ^= 0x01

    def ping_of(size: int) -> bytes:
        body = {0: bytes(size)}
        return probe.envelope(MessageType.PING, body, request_id=request_id, max_size=1 << 20)[0]

    oversize = ping_of(len(payload_for_size(ping_of, _OVERSIZE)))
    stale, _ = probe.envelope(
        MessageType.PING, Ping().to_body(), timestamp_ms=_now_ms() - 3_600_000
    )
    version2 = dict(cbor.decode(signed))
    version2[0] = 2
    v2_signed = cbor.encode(version2)
    return [
        ("random bytes get no reply", "NODE-1.2", os.urandom(200)),
        ("a truncated envelope gets no reply", "NODE-1.2", good[:-10]),
        ("a bad signature gets no reply", "NODE-1.2", cbor.encode([signed, bytes(bad_signature)])),
        (f"a {_OVERSIZE}-byte PING gets no reply", "ENV-1.4", oversize),
        (
            "a version-2 envelope gets no reply",
            "ENV-2.1",
            cbor.encode([v2_signed, probe.identity.sign(ENVELOPE_DOMAIN + v2_signed)]),
        ),
        ("a PING stamped an hour ago gets no reply", "ENV-2.3", stale),
    ]


async def _check_silence(
    run: _Run,
    order: int,
    kind: int,
    kinds: Callable[[_Probe], list[tuple[str, str, bytes]]] = _garbage_kinds,
) -> None:
    async def use(probe: _Probe) -> None:
        name, clause, data = kinds(probe)[kind]
        await probe.send(data)
        replies = await probe.replies()
        if replies:
            detail = "answered with " + "; ".join(_describe(r) for r in replies)
            run.record(order, name, clause, False, detail)
            return
        still = await run.ping_answered(probe)
        run.record(
            order,
            name,
            clause,
            still is None,
            f"silent for {run.timeout} s, then " + (still or "a PING was answered"),
        )

    await run.probe(use)


async def _check_replay(run: _Run, order: int) -> None:
    async def use(probe: _Probe) -> None:
        name = "a replayed PING gets no second PONG"
        data, request_id = probe.envelope(MessageType.PING, Ping().to_body())
        await probe.send(data)
        first = await probe.reply(request_id)
        if first is None:
            run.record(order, name, "ENV-2.4", False, "the first PING was not answered")
            return
        await probe.send(data)
        again = await probe.replies()
        run.record(
            order,
            name,
            "ENV-2.4",
            not again,
            "answered again: " + "; ".join(_describe(r) for r in again)
            if again
            else f"first PING answered, replay met {run.timeout} s of silence",
        )

    await run.probe(use)


async def _check_error_reply(
    run: _Run,
    order: int,
    name: str,
    clause: str,
    msg_type: int,
    body: dict[int, Any],
    code: ErrorCode,
    *,
    then_ping: bool = False,
) -> None:
    async def use(probe: _Probe) -> None:
        data, request_id = probe.envelope(msg_type, body)
        await probe.send(data)
        reply = await probe.reply(request_id)
        if reply is None:
            run.record(order, name, clause, False, f"no reply within {run.timeout} s")
            return
        envelope = run.authenticate(reply)
        if isinstance(envelope, RemoteProtocolError):
            run.record(order, name, clause, False, f"reply refused: {envelope}")
            return
        try:
            message = parse_message(envelope)
        except RemoteProtocolError as exc:
            run.record(order, name, clause, False, f"reply body refused: {exc}")
            return
        ok = (
            isinstance(message, ErrorReply)
            and message.code == code
            and envelope.request_id == request_id
        )
        detail = f"got {_name(message)} for request {envelope.request_id} (sent {request_id})"
        if ok and then_ping:
            still = await run.ping_answered(probe)
            ok = still is None
            detail += "; then " + (still or "a PING was answered")
        run.record(order, name, clause, ok, detail)

    await run.probe(use)


# ------------------------------------------------------------------ DHT checks


_M = TypeVar("_M", Nodes, Value, Stored)


def _typed(got: tuple[Envelope, Message] | str, kind: type[_M]) -> tuple[Envelope, _M] | str:
    """`got` if its message is a `kind`, else why not."""
    if isinstance(got, str):
        return got
    envelope, message = got
    if not isinstance(message, kind):
        return f"got {_name(message)}"
    return envelope, message


def _name(message: Message) -> str:
    """A message's type name, and an ERROR's code name."""
    if isinstance(message, ErrorReply):
        known = message.code in ErrorCode._value2member_map_
        return f"ERROR {ErrorCode(message.code).name if known else message.code}"
    return MessageType(message.TYPE).name


def _record(identity: Identity, key_type: KeyType, ident: bytes) -> Record:
    """A record of `identity`, valid for `_RECORD_TTL` seconds from now (DHT-3.1)."""
    now_ms = _now_ms()
    return sign_record(
        identity,
        key_type=key_type,
        ident=ident,
        seq=now_ms,
        expires_ms=now_ms + _RECORD_TTL * 1000,
        value=b"railgun-ref conformance",
    )


async def _check_find_node(run: _Run, order: int) -> None:
    """DHT-5.1, DHT-7.1, DHT-7.2: the node returns the helpers it learned, nearest first.

    A helper may be missing from the answer only if the node listed 20 contacts all
    closer to the target than it. A node whose bucket for a helper is already full
    (DHT-5.2) would fail this check; the runner is meant for test nodes, whose tables
    have room.
    """
    helpers = [Identity.generate(os.urandom) for _ in range(_HELPERS)]
    asker = Identity.generate(os.urandom)
    async with AsyncExitStack() as stack:
        host, port = run.target
        probes = []
        for identity in (*helpers, asker):
            sock = await stack.enter_async_context(
                await anyio.create_connected_udp_socket(host, port, local_host=host)
            )
            probes.append(_Probe(sock, identity, run.timeout))
        for probe in probes:
            problem = await run.ping_answered(probe)
            if problem is not None:
                run.record(
                    order,
                    "FIND_NODE is answered with NODES",
                    "DHT-7.1",
                    False,
                    f"a helper's PING: {problem}",
                )
                return
        asking = probes[-1]
        target = asker.node_id
        got = _typed(
            await run.request(asking, MessageType.FIND_NODE, FindNode(target=target).to_body()),
            Nodes,
        )
    if isinstance(got, str):
        run.record(order, "FIND_NODE is answered with NODES", "DHT-7.1", False, got)
        return
    envelope, nodes = got
    run.record(
        order,
        "FIND_NODE is answered with NODES",
        "DHT-7.1",
        True,
        f"{len(nodes.contacts)} contacts",
    )
    _check_nodes_reply(
        run, order + 1, envelope, nodes, asker.node_id, list(zip(helpers, probes, strict=False))
    )


def _check_nodes_reply(
    run: _Run,
    order: int,
    envelope: Envelope,
    nodes: Nodes,
    target: NodeId,
    helpers: list[tuple[Identity, _Probe]],
) -> None:
    """DHT-7.2, DHT-5.1: the NODES answering the asker (`target`, its own id) lists the
    helpers where they sent from, at most 20, nearest first, never the asker or the node."""
    contacts = nodes.contacts
    ids = [node_id for node_id, _ in contacts]
    problems = []
    if len(ids) > MAX_CONTACTS:
        problems.append(f"{len(ids)} contacts, more than {MAX_CONTACTS}")
    distances = [distance(node_id, target) for node_id in ids]
    if any(a >= b for a, b in itertools.pairwise(distances)):
        problems.append("contacts not strictly nearest first")
    if target in ids:
        problems.append("the asker is listed")
    if envelope.sender_id in ids:
        problems.append("the node lists itself")
    run.record(
        order,
        "NODES: at most 20, nearest the target first, without the asker",
        "DHT-7.2",
        not problems,
        "; ".join(problems) or f"{len(ids)} contacts in XOR order",
    )
    listed = dict(contacts)
    missing = []
    for identity, probe in helpers:
        address = listed.get(identity.node_id)
        if address is None:
            farthest = distances[-1] if distances else -1
            crowded = len(ids) >= MAX_CONTACTS and farthest < distance(identity.node_id, target)
            if not crowded:  # the node knows closer contacts than this helper: fine
                missing.append(f"{identity.node_id.hex()[:8]} absent")
        elif address != probe.local:
            missing.append(f"{identity.node_id.hex()[:8]} at {address}, not {probe.local}")
    run.record(
        order + 1,
        "authenticated PING senders are returned at their source address",
        "DHT-5.1",
        not missing,
        "; ".join(missing) or f"all {_HELPERS} helpers listed where they sent from",
    )


async def _check_store_and_find_value(run: _Run, order: int) -> None:
    """DHT-7.6, DHT-7.4: a valid record is STORED, then served byte for byte."""

    async def use(probe: _Probe) -> None:
        record = _record(probe.identity, KeyType.RENDEZVOUS, os.urandom(16))
        name = "a valid record of ours is STORED"
        store = Store(record=record.to_cbor_value()).to_body()
        got = _typed(await run.request(probe, MessageType.STORE, store), Stored)
        if isinstance(got, str):
            run.record(order, name, "DHT-7.6", False, got)
            run.record(
                order + 1,
                "FIND_VALUE returns the stored record byte for byte",
                "DHT-7.4",
                False,
                "nothing was stored",
            )
            return
        _, stored = got
        run.record(
            order,
            name,
            "DHT-7.6",
            stored.status is StoreStatus.STORED,
            f"status {stored.status.name}",
        )
        find = FindValue(key=record.key).to_body()
        answer = _typed(await run.request(probe, MessageType.FIND_VALUE, find), Value)
        name = "FIND_VALUE returns the stored record byte for byte"
        if isinstance(answer, str):
            run.record(order + 1, name, "DHT-7.4", False, answer)
            return
        _, value = answer
        served = [cbor.encode(item) for item in value.records]
        ok = record.encode() in served
        run.record(
            order + 1,
            name,
            "DHT-7.4",
            ok,
            f"{len(served)} record(s), ours {'among them' if ok else 'missing'},"
            f" truncated={value.truncated}",
        )

    await run.probe(use)


def _room_records() -> list[Record]:
    """`_ROOM_MEMBERS` announcements of fresh members in a fresh room (ROOM-6.2)."""
    secret = os.urandom(32)
    ident, now_ms = dht_ident_of(secret), _now_ms()
    records = []
    for n in range(_ROOM_MEMBERS):
        member = Identity.generate(os.urandom)
        value = room_announcement(
            secret, publisher=member.public_key, host="127.0.0.1", port=40000 + n
        )
        expires_ms = now_ms + _RECORD_TTL * 1000
        records.append(
            sign_record(
                member,
                key_type=KeyType.ROOM,
                ident=ident,
                seq=now_ms,
                expires_ms=expires_ms,
                value=value,
            )
        )
    return records


async def _stream_request(run: _Run, probe: _Probe, body: dict[int, Any]) -> Value | str:
    """One FIND_VALUE as a frame on a new TCP connection to the target; its VALUE or why not."""
    data, request_id = probe.envelope(
        MessageType.FIND_VALUE, body, max_size=MAX_STREAM_MESSAGE_SIZE
    )
    decoder = FrameDecoder()
    try:
        with anyio.fail_after(run.timeout):
            async with await anyio.connect_tcp(*run.target) as stream:
                await stream.send(encode_frame(data))
                while (frame := decoder.next_frame()) is None:
                    decoder.feed(await stream.receive())
    except (OSError, TimeoutError, anyio.EndOfStream, RemoteProtocolError) as exc:
        return f"no framed reply on a stream: {type(exc).__name__} {exc}".strip()
    try:
        envelope = decode_envelope(frame, max_size=MAX_STREAM_MESSAGE_SIZE,
                                   expected_sender=run.node_id)  # fmt: skip
        message = parse_message(envelope)
    except RemoteProtocolError as exc:
        return f"stream reply refused: {exc}"
    if envelope.request_id != request_id or not isinstance(message, Value):
        return f"stream reply is {_describe(frame)}, not a VALUE for request {request_id}"
    return message


async def _check_stream_find_value(run: _Run, order: int) -> None:
    """DHT-7.4, DHT-7.8: a datagram VALUE says truncated; the stream one holds every record."""

    async def use(probe: _Probe) -> None:
        records = _room_records()
        for record in records:
            store = Store(record=record.to_cbor_value()).to_body()
            await run.request(probe, MessageType.STORE, store)
        find = FindValue(key=records[0].key).to_body()
        ours = {record.encode() for record in records}
        answer = _typed(await run.request(probe, MessageType.FIND_VALUE, find), Value)
        name = f"a datagram VALUE of {_ROOM_MEMBERS} room records says it is truncated"
        if isinstance(answer, str):
            run.record(order, name, "DHT-7.4", False, answer)
            return
        served = {cbor.encode(item) for item in answer[1].records} & ours
        run.record(order, name, "DHT-7.4", bool(served) and answer[1].truncated,
                   f"{len(served)} of ours, truncated={answer[1].truncated}")  # fmt: skip
        name = "the same FIND_VALUE on a stream carries every record"
        clause = "DHT-7.8" if served else "DHT-7.4"  # nothing held: the datagram check says why
        value = await _stream_request(run, probe, find)
        if isinstance(value, str):
            run.record(order + 1, name, clause, False, value)
            return
        whole = {cbor.encode(item) for item in value.records} & ours
        run.record(order + 1, name, clause, whole == ours and not value.truncated,
                   f"{len(whole)} of {len(ours)}, truncated={value.truncated}")  # fmt: skip

    await run.probe(use)


def _dht_error_cases(identity: Identity) -> list[tuple[str, str, int, dict[int, Any], ErrorCode]]:
    """(check name, clause, type, body, expected code) of DHT requests the node must refuse."""
    good = _record(identity, KeyType.RENDEZVOUS, os.urandom(16)).to_cbor_value()
    forged = dict(good)
    forged[6] = bytes([good[6][0] ^ 0x01]) + good[6][1:]
    naming = _record(identity, KeyType.PEER, os.urandom(32)).to_cbor_value()
    cut = {i: good[i] for i in range(6)}
    bad = ErrorCode.MALFORMED
    return [
        (
            "STORE of a forged record gets ERROR BAD_SIGNATURE",
            "DHT-3.3",
            MessageType.STORE,
            {0: forged},
            ErrorCode.BAD_SIGNATURE,
        ),
        (
            "STORE of a peer record naming another node gets ERROR FORBIDDEN",
            "DHT-3.4",
            MessageType.STORE,
            {0: naming},
            ErrorCode.FORBIDDEN,
        ),
        (
            "FIND_NODE of a 31-byte target gets ERROR MALFORMED",
            "DHT-7.1",
            MessageType.FIND_NODE,
            {0: os.urandom(31)},
            bad,
        ),
        ("an empty FIND_NODE body gets ERROR MALFORMED", "DHT-7.1", MessageType.FIND_NODE, {}, bad),
        (
            "FIND_VALUE with an extra key gets ERROR MALFORMED",
            "DHT-7.3",
            MessageType.FIND_VALUE,
            {0: os.urandom(32), 1: 0},
            bad,
        ),
        (
            "STORE of random bytes gets ERROR MALFORMED",
            "DHT-7.5",
            MessageType.STORE,
            {0: os.urandom(100)},
            bad,
        ),
        (
            "STORE of a record without its signature gets ERROR MALFORMED",
            "DHT-3.3",
            MessageType.STORE,
            {0: cut},
            bad,
        ),
    ]


def _dht_silent_kinds(probe: _Probe) -> list[tuple[str, str, bytes]]:
    """(check name, clause, datagram) of DHT input the node must not answer."""
    request_id = _request_id()
    store, _ = probe.envelope(MessageType.STORE, {0: {0: 3}}, request_id=request_id)
    return [
        (
            "an unsolicited NODES gets no reply",
            "DHT-7.7",
            probe.envelope(MessageType.NODES, {0: []})[0],
        ),
        (
            "an unsolicited VALUE gets no reply",
            "DHT-7.7",
            probe.envelope(MessageType.VALUE, {0: [], 1: [], 2: False})[0],
        ),
        ("a STORE envelope cut short gets no reply", "NODE-1.2", store[:-7]),
    ]


def _app_silent_kinds(probe: _Probe) -> list[tuple[str, str, bytes]]:
    """(check name, clause, datagram) of APP messages the node must not answer."""
    return [
        (
            "a valid APP gets no reply",
            "APP-1.1",
            probe.envelope(MessageType.APP, {0: 1, 1: b"conformance"})[0],
        ),
        (
            "an APP with topic 0 gets no reply",
            "APP-1.2",
            probe.envelope(MessageType.APP, {0: 0, 1: b"x"})[0],
        ),
    ]


#: A small-order Ed25519 public key (the neutral element), refused by ID-2.2.
_SMALL_ORDER_KEY: Final = bytes([1]) + bytes(31)
#: Validly signed edge cases that must meet silence (`_edge_silent_kinds`).
_EDGE_SILENT: Final = 8
#: How far ahead of our clock the "future" PING is stamped, ms (over the 300 s skew).
_AHEAD_MS: Final = 400_000


def _edge_silent_kinds(probe: _Probe) -> list[tuple[str, str, bytes]]:
    """(check name, clause, datagram) of validly signed edge cases the node must not answer."""
    identity, request_id, now_ms = probe.identity, _request_id(), _now_ms()
    kinds = [
        (f"a validly signed PING with {what} gets no reply", clause, data)
        for (what, data), clause in zip(
            noncanonical_envelopes(identity, request_id=request_id, timestamp_ms=now_ms),
            ("ENC-1.5", "ENC-1.3", "ENC-1.5", "ENC-1.5"),
            strict=True,
        )
    ]
    items = signed_items(
        identity,
        msg_type=MessageType.PING,
        request_id=request_id,
        timestamp_ms=now_ms,
        body={0: b""},
    )
    items[3] = (items[3][0], cbor.encode(_SMALL_ORDER_KEY))
    small_order = raw_map(items)
    forged = cbor.encode([small_order, identity.sign(ENVELOPE_DOMAIN + small_order)])
    ahead = probe.envelope(MessageType.PING, {0: b""}, timestamp_ms=now_ms + _AHEAD_MS)[0]
    pong = Pong(observed=probe.local, payload=b"").to_body()
    error = ErrorReply(code=ErrorCode.MALFORMED, reason="unsolicited").to_body()
    return [
        *kinds,
        ("a PING from a small-order key gets no reply", "ID-2.2", forged),
        ("a PING stamped 400 s ahead gets no reply", "ENV-2.3", ahead),
        (
            "an unsolicited PONG gets no reply",
            "NODE-1.4",
            probe.envelope(MessageType.PONG, pong)[0],
        ),
        (
            "an unsolicited ERROR gets no reply",
            "NODE-1.4",
            probe.envelope(MessageType.ERROR, error)[0],
        ),
    ]


def _answer_of(run: _Run, reply: bytes) -> tuple[bool, str]:
    envelope = run.authenticate(reply)
    if isinstance(envelope, RemoteProtocolError):
        return False, f"a {len(reply)}-byte reply that does not authenticate"
    try:
        message = parse_message(envelope)
    except RemoteProtocolError as exc:
        return False, f"reply body refused: {exc}"
    ok = isinstance(message, ErrorReply) and message.code == ErrorCode.TOO_LARGE
    return ok, f"got {_name(message)} ({len(reply)} bytes)"


async def _check_near_limit(run: _Run, order: int) -> None:
    """NODE-1.4, ENV-1.4: a 1200-byte PING is accepted, and its PONG would not fit."""
    name = "a 1200-byte PING, whose PONG cannot fit, gets ERROR TOO_LARGE"

    async def use(probe: _Probe) -> None:
        request_id, now_ms = _request_id(), _now_ms()
        body = ping_body_for_size(probe.identity, request_id=request_id, timestamp_ms=now_ms)
        data, _ = probe.envelope(MessageType.PING, body, request_id=request_id, timestamp_ms=now_ms)
        await probe.send(data)
        replies = await probe.replies()
        problems = [f"{len(reply)}-byte reply over the limit" for reply in replies
                    if len(reply) > MAX_DATAGRAM_SIZE]  # fmt: skip
        answers = [_answer_of(run, reply) for reply in replies]
        if not any(ok for ok, _ in answers):
            problems.append("; ".join(why for _, why in answers) or "no reply")
        run.record(order, name, "NODE-1.4", not problems, "; ".join(problems) or
                   f"{len(data)}-byte PING answered by ERROR TOO_LARGE")  # fmt: skip

    await run.probe(use)


async def _check_resigned_replay(run: _Run, order: int) -> None:
    """ENV-2.4: a re-signed copy of a PING (same request id, later timestamp) is a replay."""
    name = "a re-signed copy of a PING (same id, new timestamp) gets no second PONG"

    async def use(probe: _Probe) -> None:
        request_id, now_ms = _request_id(), _now_ms()
        first, _ = probe.envelope(MessageType.PING, {0: b""}, request_id=request_id,
                                  timestamp_ms=now_ms)  # fmt: skip
        await probe.send(first)
        if await probe.reply(request_id) is None:
            run.record(order, name, "ENV-2.4", False, "the first PING was not answered")
            return
        again, _ = probe.envelope(MessageType.PING, {0: b""}, request_id=request_id,
                                  timestamp_ms=now_ms + 1)  # fmt: skip
        await probe.send(again)
        replies = await probe.replies()
        run.record(order, name, "ENV-2.4", not replies,
                   "answered again: " + "; ".join(_describe(r) for r in replies) if replies
                   else f"the copy met {run.timeout} s of silence")  # fmt: skip

    await run.probe(use)


def _record_error_cases(
    identity: Identity,
) -> list[tuple[str, str, int, dict[int, Any], ErrorCode]]:
    """STOREs of validly signed records that DHT-3.3 refuses after the signature check."""
    now_ms = _now_ms()

    def store(expires_ms: int, value: bytes = b"edge") -> dict[int, Any]:
        record = edge_record(identity, key_type=KeyType.RENDEZVOUS, ident=os.urandom(16),
                             seq=now_ms, expires_ms=expires_ms, value=value)  # fmt: skip
        return Store(record=record.to_cbor_value()).to_body()

    too_far = now_ms + int(MAX_TTL * 1000) + 60_000
    return [
        ("STORE of a record that expired a minute ago gets ERROR EXPIRED", "DHT-3.3",
         MessageType.STORE, store(now_ms - 60_000), ErrorCode.EXPIRED),
        ("STORE of a record expiring beyond the maximum TTL gets ERROR TTL_TOO_LONG", "DHT-3.2",
         MessageType.STORE, store(too_far), ErrorCode.TTL_TOO_LONG),
        (f"STORE of a record with a {MAX_VALUE_SIZE + 1}-byte value gets ERROR TOO_LARGE",
         "DHT-3.2", MessageType.STORE, store(now_ms + 600_000, bytes(MAX_VALUE_SIZE + 1)),
         ErrorCode.TOO_LARGE),
    ]  # fmt: skip


async def _check_sequence(run: _Run, order: int) -> None:
    """DHT-3.5: per publisher, the same record is UNCHANGED, a lower seq STALE_SEQUENCE,
    a higher one REPLACED."""
    name = "re-STORE UNCHANGED, lower seq STALE_SEQUENCE, higher seq REPLACED"

    async def use(probe: _Probe) -> None:
        ident, now_ms, seen = os.urandom(16), _now_ms(), []
        for seq in (10, 10, 9, 11):
            record = sign_record(probe.identity, key_type=KeyType.RENDEZVOUS, ident=ident,
                                 seq=seq, expires_ms=now_ms + _RECORD_TTL * 1000,
                                 value=b"seq")  # fmt: skip
            got = await run.request(
                probe, MessageType.STORE, Store(record=record.to_cbor_value()).to_body()
            )
            seen.append(got if isinstance(got, str) else _outcome(got[1]))
        want = ["STORED", "UNCHANGED", "ERROR STALE_SEQUENCE", "REPLACED"]
        run.record(order, name, "DHT-3.5", seen == want, f"seq 10, 10, 9, 11: {seen}")

    await run.probe(use)


def _outcome(message: Message) -> str:
    return message.status.name if isinstance(message, Stored) else _name(message)


def _start_edge_checks(tg: anyio.abc.TaskGroup, state: _Run) -> None:
    """The checks of `wire_cases`' edges, from report position 80 on."""
    tg.start_soon(_check_near_limit, state, 80)
    tg.start_soon(_check_resigned_replay, state, 81)
    tg.start_soon(_check_sequence, state, 82)
    for kind in range(_EDGE_SILENT):
        tg.start_soon(_check_silence, state, 83 + kind, kind, _edge_silent_kinds)
    for index, (name, clause, msg_type, body, code) in enumerate(
        _record_error_cases(state.identity)
    ):
        tg.start_soon(
            functools.partial(
                _check_error_reply, state, 95 + index, name, clause, msg_type, body, code,
                then_ping=True,
            )
        )  # fmt: skip


def _start_checks(tg: anyio.abc.TaskGroup, state: _Run) -> None:
    """Start every check after the first PING, each with its report position."""
    for kind in range(6):
        tg.start_soon(_check_silence, state, 10 + kind, kind)
    tg.start_soon(_check_replay, state, 20)
    tg.start_soon(
        _check_error_reply,
        state,
        30,
        "unknown type 200 gets ERROR UNKNOWN_TYPE",
        "MSG-1.3",
        200,
        {},
        ErrorCode.UNKNOWN_TYPE,
    )
    tg.start_soon(
        _check_error_reply,
        state,
        31,
        "malformed PING body gets ERROR MALFORMED",
        "MSG-1.2",
        MessageType.PING,
        {0: b"", 9: 0},
        ErrorCode.MALFORMED,
    )
    tg.start_soon(_check_find_node, state, 40)
    tg.start_soon(_check_store_and_find_value, state, 43)
    tg.start_soon(_check_stream_find_value, state, 45)
    for index, (name, clause, msg_type, body, code) in enumerate(_dht_error_cases(state.identity)):
        tg.start_soon(
            functools.partial(
                _check_error_reply,
                state,
                50 + index,
                name,
                clause,
                msg_type,
                body,
                code,
                then_ping=True,
            )
        )
    for kind in range(3):
        tg.start_soon(_check_silence, state, 60 + kind, kind, _dht_silent_kinds)
    for kind in range(2):
        tg.start_soon(_check_silence, state, 70 + kind, kind, _app_silent_kinds)
    _start_edge_checks(tg, state)


async def run(
    target: str,
    *,
    timeout: float = 2.0,
    on_check: Callable[[CheckResult], None] | None = None,
) -> Report:
    """Check the node at `target` (``udp://HOST:PORT`` on loopback) and report per clause;
    `on_check` sees each result as soon as it is known."""
    address = parse_target(target)
    state = _Run(
        target=address, timeout=timeout, identity=Identity.generate(os.urandom), on_check=on_check
    )

    async def first(probe: _Probe) -> None:
        await _check_ping(state, probe)

    await state.probe(first)
    async with anyio.create_task_group() as tg:
        _start_checks(tg, state)
    checks = tuple(result for _, result in sorted(state.results, key=lambda item: item[0]))
    node_id = None if state.node_id is None else state.node_id.hex()
    return Report(target=target, node_id=node_id, timeout=timeout, checks=checks)


def main(target: str, json_output: bool, *, timeout: float = 2.0) -> int:
    """CLI entry: 0 if every check passed, 1 if any failed, 2 if the target is refused."""
    try:
        parse_target(target)
    except TargetError as exc:
        print(f"railgun-ref conformance run: {exc}", file=sys.stderr)
        return 2
    with ProgressReport(f"conformance run {target}", total=None, unit="checks") as progress:
        report = anyio.run(
            functools.partial(run, target, timeout=timeout, on_check=lambda _: progress.advance())
        )
    return print_report(report, json_output)


def print_report(report: Report, json_output: bool) -> int:
    """Print a runner's report (JSON or a table and a verdict); 0 if it passed, else 1."""

    if json_output:
        print(report.to_json())
    else:
        console = Console()
        console.print(report.to_table())
        failed = report.failed_clauses
        verdict = "all checks pass" if report.passed else f"FAILED clauses: {', '.join(failed)}"
        console.print(f"{sum(c.passed for c in report.checks)}/{len(report.checks)}: {verdict}")
    return 0 if report.passed else 1
