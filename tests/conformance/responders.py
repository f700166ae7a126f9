"""Tiny stand-alone UDP responders for testing the wire runner, good and deliberately broken.

Run as a script::

    python tests/conformance/responders.py --mode MODE   (one of MODES)

Like ``railgun-ref node``, it prints as its first stdout line
``railgun-ref node listening udp://HOST:PORT id=<64 hex>`` and serves until
terminated. "good" is the sans-IO `Node` behind a plain stdlib UDP socket and
a TCP listener on the same port (framed streams, STR-1.1). Every other mode is
a *mutant*: it breaks one observable rule, and `MUTANTS` names the clause each
one breaks, so a test can show the runner catches every one (the mutation
score). A few change how the node is run:

* ``silent``: never answers anything (MSG-2.1);
* ``replays-ok``: a fresh replay guard per datagram, so replays are answered
  (ENV-2.4); everything else, the routing table and records included, is kept;
* ``forgets-records``: STOREs are acknowledged, then the records are lost (DHT-7.4);
* ``no-stream``: no TCP listener, so a truncated VALUE cannot be fetched (DHT-7.8);

the others rewrite what the node sends (see `_MUTATIONS`): they sign replies with
a flipped bit, echo refused bytes, answer what a lax decoder would accept
(non-shortest heads, unsorted keys, oversized, stale or small-order input),
send a PONG too large for a datagram instead of ERROR TOO_LARGE, store records
a strict node refuses (expired, beyond the maximum TTL, forbidden, of an older
seq), and so on.
"""

import argparse
import dataclasses
import hashlib
import os
import random
import selectors
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

import cbor2

from railgun_ref.conformance.common import take_outputs
from railgun_ref.core.errors import ErrorCode
from railgun_ref.dht.storage import RecordTable
from railgun_ref.events import MessageRejected
from railgun_ref.identity.keys import Identity
from railgun_ref.node import ConnectionId, Node
from railgun_ref.rpc.replay import ReplayGuard
from railgun_ref.wire import cbor
from railgun_ref.wire.envelope import Envelope, decode_envelope, encode_envelope
from railgun_ref.wire.framing import FrameDecoder, encode_frame
from railgun_ref.wire.messages import MessageType, StoreStatus

Datagrams = list[tuple[bytes, tuple[str, int]]]


@dataclasses.dataclass(slots=True)
class _Exchange:
    """One datagram in and what the good node answered: what a mutation rewrites."""

    identity: Identity
    data: bytes
    source: tuple[str, int]
    refused: ErrorCode | None  #: why the node refused the input, if it did
    replies: Datagrams
    seen: set[bytes]  #: digests of every datagram received so far (for replay-by-bytes)


def _lax(data: bytes) -> dict[int, Any] | None:
    """The signed map of `data` as a lax decoder reads it (any CBOR, any order), or None."""
    try:
        outer = cbor2.loads(data)
        signed = cbor2.loads(outer[0])
    except Exception:
        return None
    return signed if isinstance(signed, dict) and isinstance(signed.get(5), dict) else None


def _pong_to(ex: _Exchange, *, max_size: int = 1 << 16) -> Datagrams:
    """What a lax node answers a PING it should have refused: a PONG."""
    signed = _lax(ex.data)
    if signed is None or signed.get(1) != MessageType.PING:
        return ex.replies
    payload = signed[5].get(0, b"")
    data = encode_envelope(
        ex.identity,
        type=MessageType.PONG,
        request_id=int(signed[2]) % 2**64,
        timestamp_ms=round(time.time() * 1000),
        body={0: list(ex.source), 1: payload if isinstance(payload, bytes) else b""},
        max_size=max_size,
    )
    return [*ex.replies, (data, ex.source)]


def _rewrite(ex: _Exchange, change: Callable[[Envelope], dict[str, Any] | None]) -> Datagrams:
    """Each reply re-signed with the fields `change` returns (None: left as it is)."""
    out: Datagrams = []
    for reply, destination in ex.replies:
        envelope = decode_envelope(reply)
        fields = change(envelope)
        if fields is None:
            out.append((reply, destination))
            continue
        merged = {
            "type": envelope.type,
            "request_id": envelope.request_id,
            "timestamp_ms": envelope.timestamp_ms,
            "body": envelope.body,
            "max_size": 1200,
        } | fields
        out.append((encode_envelope(ex.identity, **merged), destination))
    return out


def _request_type(ex: _Exchange) -> int | None:
    signed = _lax(ex.data)
    return None if signed is None else signed.get(1)


def _error_code(envelope: Envelope) -> int | None:
    return envelope.body.get(0) if envelope.type == MessageType.ERROR else None


def _error_to(
    code: ErrorCode, new_type: MessageType, body: dict[int, Any]
) -> Callable[[_Exchange], Datagrams]:
    """A mutation that answers what the node refused with `code` as if it had succeeded."""

    def mutate(ex: _Exchange) -> Datagrams:
        return _rewrite(
            ex, lambda e: {"type": new_type, "body": body} if _error_code(e) == code else None
        )

    return mutate


def _refused_answered(code: ErrorCode) -> Callable[[_Exchange], Datagrams]:
    """A mutation that answers a PING the node refused silently with `code`."""

    def mutate(ex: _Exchange) -> Datagrams:
        return _pong_to(ex) if ex.refused is code else ex.replies

    return mutate


def _canonical_but_unsorted(ex: _Exchange) -> Datagrams:
    """Accept shortest heads in any key order (checks ENC-1.1's heads, not ENC-1.3's order)."""
    signed = _lax(ex.data)
    if ex.refused is not ErrorCode.MALFORMED or signed is None:
        return ex.replies
    raw = cbor2.loads(ex.data)[0]
    return _pong_to(ex) if cbor2.dumps(cbor2.loads(raw)) == raw else ex.replies


def _sorted_but_long(ex: _Exchange) -> Datagrams:
    """Accept keys in order whatever the width of their heads (ENC-1.5 unchecked)."""
    signed = _lax(ex.data)
    if ex.refused is not ErrorCode.MALFORMED or signed is None:
        return ex.replies
    return _pong_to(ex) if list(signed) == sorted(signed) else ex.replies


def _oversize_pong(ex: _Exchange) -> Datagrams:
    """Send the PONG that does not fit instead of ERROR TOO_LARGE (NODE-1.4)."""
    too_large = [r for r, _ in ex.replies if _error_code(decode_envelope(r)) == ErrorCode.TOO_LARGE]
    if not too_large or _request_type(ex) != MessageType.PING:
        return ex.replies
    return _pong_to(dataclasses.replace(ex, replies=[]))


def _replay_by_bytes(ex: _Exchange) -> Datagrams:
    """Remember envelopes by their bytes, not (sender, type, id): a re-signed copy passes."""
    digest = hashlib.sha256(ex.data).digest()
    fresh = digest not in ex.seen
    ex.seen.add(digest)
    return _pong_to(ex) if ex.refused is ErrorCode.REPLAY and fresh else ex.replies


def _answers_topic_zero(ex: _Exchange) -> Datagrams:
    signed = _lax(ex.data)
    if signed is None or signed.get(1) != MessageType.APP or signed[5].get(0) != 0:
        return ex.replies
    return [*ex.replies, (ex.data[:1200], ex.source)]


def _answers_responses(ex: _Exchange) -> Datagrams:
    """Unsolicited NODES and VALUE are answered with an ERROR (DHT-7.7)."""
    if _request_type(ex) not in (MessageType.NODES, MessageType.VALUE):
        return ex.replies
    signed = _lax(ex.data)
    assert signed is not None
    data = encode_envelope(
        ex.identity,
        type=MessageType.ERROR,
        request_id=int(signed[2]),
        timestamp_ms=round(time.time() * 1000),
        body={0: int(ErrorCode.UNEXPECTED_RESPONSE), 1: "unexpected"},
    )
    return [*ex.replies, (data, ex.source)]


def _on_type(
    msg_type: MessageType, change: Callable[[Envelope], dict[str, Any] | None]
) -> Callable[[_Exchange], Datagrams]:
    """Rewrite the replies to requests of `msg_type` only."""

    def mutate(ex: _Exchange) -> Datagrams:
        return _rewrite(ex, change) if _request_type(ex) == msg_type else ex.replies

    return mutate


def _flip_signature(ex: _Exchange) -> Datagrams:
    out: Datagrams = []
    for reply, destination in ex.replies:
        signed, signature = cbor.decode(reply)
        flipped = bytearray(signature)
        flipped[40] ^= 0x01
        out.append((cbor.encode([signed, bytes(flipped)]), destination))
    return out


def _echo_refused(ex: _Exchange) -> Datagrams:
    if ex.refused is not None and not ex.replies:
        return [(ex.data[:1200], ex.source)]
    return ex.replies


def _echo_app(ex: _Exchange) -> Datagrams:
    if _request_type(ex) == MessageType.APP:
        return [*ex.replies, (ex.data[:1200], ex.source)]
    return ex.replies


def _nodes_reversed(envelope: Envelope) -> dict[str, Any] | None:
    if envelope.type != MessageType.NODES or len(envelope.body[0]) < 2:
        return None
    return {"body": {0: list(reversed(envelope.body[0]))}}


def _observed_moved(envelope: Envelope) -> dict[str, Any] | None:
    if envelope.type != MessageType.PONG:
        return None
    host, port = envelope.body[0]
    return {"body": {0: [host, (port + 1) % 65536], 1: envelope.body[1]}}


_STORED = {0: int(StoreStatus.STORED)}

#: mode -> (the clause its fault breaks, how it rewrites one exchange; None: a mode
#: that changes how the node runs, handled in `serve`/`_datagram`).
MUTANTS: dict[str, tuple[str, Callable[[_Exchange], Datagrams] | None]] = {
    "bad-signature": ("ENV-2.1", _flip_signature),
    "echo-garbage": ("NODE-1.2", _echo_refused),
    "silent": ("MSG-2.1", None),
    "replays-ok": ("ENV-2.4", None),
    "nodes-unsorted": ("DHT-7.2", lambda ex: _rewrite(ex, _nodes_reversed)),
    "forgets-records": ("DHT-7.4", None),
    "answers-app": ("APP-1.1", _echo_app),
    "no-stream": ("DHT-7.8", None),
    "observed-moved": ("MSG-2.2", lambda ex: _rewrite(ex, _observed_moved)),
    "wrong-request-id": (
        "RPC-1.1",
        lambda ex: _rewrite(ex, lambda e: {"request_id": e.request_id ^ 1}),
    ),
    "clock-an-hour-behind": (
        "ENV-1.5",
        lambda ex: _rewrite(ex, lambda e: {"timestamp_ms": e.timestamp_ms - 3_600_000}),
    ),
    "answers-oversize": ("ENV-1.4", _refused_answered(ErrorCode.TOO_LARGE)),
    "answers-stale": ("ENV-2.3", _refused_answered(ErrorCode.STALE)),
    "small-order-keys-ok": ("ID-2.2", _refused_answered(ErrorCode.BAD_KEY)),
    "long-heads-ok": ("ENC-1.5", _sorted_but_long),
    "unsorted-keys-ok": ("ENC-1.3", _canonical_but_unsorted),
    "oversize-pong": ("NODE-1.4", _oversize_pong),
    "replay-by-bytes": ("ENV-2.4", _replay_by_bytes),
    "unknown-as-malformed": (
        "MSG-1.3",
        lambda ex: _rewrite(
            ex,
            lambda e: (
                {"body": {0: int(ErrorCode.MALFORMED), 1: "?"}}
                if _error_code(e) == ErrorCode.UNKNOWN_TYPE
                else None
            ),
        ),
    ),
    "malformed-ping-silent": (
        "MSG-1.2",
        lambda ex: (
            []
            if _request_type(ex) == MessageType.PING
            and ex.replies
            and _error_code(decode_envelope(ex.replies[0][0])) == ErrorCode.MALFORMED
            else ex.replies
        ),
    ),
    "nodes-empty": (
        "DHT-5.1",
        lambda ex: _rewrite(
            ex, lambda e: {"body": {0: []}} if e.type == MessageType.NODES else None
        ),
    ),
    "lax-find-node": (
        "DHT-7.1",
        _on_type(
            MessageType.FIND_NODE,
            lambda e: {"type": MessageType.NODES, "body": {0: []}} if _error_code(e) else None,
        ),
    ),
    "lax-find-value": (
        "DHT-7.3",
        _on_type(
            MessageType.FIND_VALUE,
            lambda e: (
                {"type": MessageType.VALUE, "body": {0: [], 1: [], 2: False}}
                if _error_code(e)
                else None
            ),
        ),
    ),
    "lax-store-body": (
        "DHT-7.5",
        _on_type(
            MessageType.STORE,
            lambda e: (
                {"type": MessageType.STORED, "body": _STORED}
                if _error_code(e) == ErrorCode.MALFORMED
                else None
            ),
        ),
    ),
    "stored-says-unchanged": (
        "DHT-7.6",
        lambda ex: _rewrite(
            ex,
            lambda e: (
                {"body": {0: int(StoreStatus.UNCHANGED)}} if e.type == MessageType.STORED else None
            ),
        ),
    ),
    "answers-responses": ("DHT-7.7", _answers_responses),
    "stores-expired": ("DHT-3.3", _error_to(ErrorCode.EXPIRED, MessageType.STORED, _STORED)),
    "ttl-unbounded": ("DHT-3.2", _error_to(ErrorCode.TTL_TOO_LONG, MessageType.STORED, _STORED)),
    "forbidden-ok": ("DHT-3.4", _error_to(ErrorCode.FORBIDDEN, MessageType.STORED, _STORED)),
    "seq-ignored": (
        "DHT-3.5",
        _error_to(ErrorCode.STALE_SEQUENCE, MessageType.STORED, _STORED),
    ),
    "answers-app-topic-0": ("APP-1.2", _answers_topic_zero),
}
MODES = ("good", *MUTANTS)


class _Streams:
    """Framed TCP connections to the node (STR-1.1): one decoder per connection."""

    def __init__(self, node: Node, selector: selectors.BaseSelector) -> None:
        self.node, self.selector = node, selector
        self.connections: dict[int, tuple[socket.socket, FrameDecoder]] = {}

    def accept(self, listener: socket.socket) -> None:
        conn, _ = listener.accept()
        conn_id = len(self.connections) + 1
        self.connections[conn_id] = (conn, FrameDecoder())
        self.selector.register(conn, selectors.EVENT_READ, conn_id)

    def read(self, conn_id: int) -> None:
        conn, decoder = self.connections[conn_id]
        data = conn.recv(65536)
        if not data:
            self.selector.unregister(conn)
            conn.close()
            return
        decoder.feed(data)
        source = conn.getpeername()
        while (frame := decoder.next_frame()) is not None:
            address = (str(source[0]), int(source[1]))
            self.node.receive_stream_message(frame, ConnectionId(conn_id), address, now=time.time())
            for reply, target in take_outputs(self.node).streams:
                if isinstance(target, int) and target in self.connections:
                    self.connections[target][0].sendall(encode_frame(reply))


def _bind(
    family: socket.AddressFamily, host: str, port: int, *, stream: bool
) -> tuple[socket.socket, socket.socket | None]:
    """UDP on `port` and, with `stream`, TCP on the same number (STR-1). A kernel-picked
    UDP port may be taken on TCP by another process: then pick again (20 tries)."""
    for _ in range(20 if port == 0 else 1):
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.bind((host, port))
        if not stream:
            return sock, None
        listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            listener.bind((host, sock.getsockname()[1]))
        except OSError:
            listener.close()
            sock.close()
            continue
        return sock, listener
    raise OSError(f"no port free on both UDP and TCP at {host}")


def serve(mode: str, host: str, port: int) -> None:
    identity = Identity.generate(os.urandom)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock, listener = _bind(family, host, port, stream=mode not in ("no-stream", "silent"))
    bound_port = sock.getsockname()[1]
    node = Node(identity, rng=random.Random(), now=time.time())
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ, "udp")
    streams = _Streams(node, selector)
    if listener is not None:
        listener.listen()
        selector.register(listener, selectors.EVENT_READ, "listen")
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    print(f"railgun-ref node listening udp://{shown}:{bound_port} id={identity.node_id.hex()}")
    sys.stdout.flush()
    seen: set[bytes] = set()
    while True:
        for key, _ in selector.select():
            if key.data == "udp":
                _datagram(mode, sock, node, identity, seen)
            elif key.data == "listen":
                streams.accept(listener)
            else:
                streams.read(key.data)


def _datagram(
    mode: str, sock: socket.socket, node: Node, identity: Identity, seen: set[bytes]
) -> None:
    """One datagram in; what the node (bent by `mode`) answers goes out."""
    data, source = sock.recvfrom(65536)
    address = (str(source[0]), int(source[1]))
    if mode == "silent":
        return
    if mode == "replays-ok":
        node._replay = ReplayGuard(
            max_skew=node.config.max_clock_skew, capacity=node.config.replay_capacity
        )
    node.receive_datagram(data, address, now=time.time())
    out = take_outputs(node)
    refused = next((e.code for e in out.events if isinstance(e, MessageRejected)), None)
    if mode == "forgets-records":
        node.dht.records = RecordTable(node.dht.config.storage)
    exchange = _Exchange(identity, data, address, refused, list(out.datagrams), seen)
    mutate = MUTANTS[mode][1] if mode in MUTANTS else None
    replies = exchange.replies if mutate is None else mutate(exchange)
    for reply, destination in replies:
        sock.sendto(reply, destination)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=MODES, default="good")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    serve(args.mode, args.host, args.port)


if __name__ == "__main__":
    main()
