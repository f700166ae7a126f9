"""Tiny stand-alone UDP responders for testing the wire runner, good and deliberately broken.

Run as a script::

    python tests/conformance/responders.py --mode MODE   (one of MODES)

Like ``railgun-ref node``, it prints as its first stdout line
``railgun-ref node listening udp://HOST:PORT id=<64 hex>`` and serves until
terminated. "good" is the sans-IO `Node` behind a plain stdlib UDP socket and
a TCP listener on the same port (framed streams, STR-1.1); the other modes break
one rule each, so a test can show the runner catches it:

* ``bad-signature``: every reply has one bit of its signature flipped (ENV-2.1);
* ``echo-garbage``: bytes the node refused are sent back to their sender (NODE-1.2);
* ``silent``: never answers anything (MSG-2.1);
* ``replays-ok``: the node forgets every envelope it saw (a fresh replay guard per
  datagram), so replays are answered (ENV-2.4); everything else, the DHT's routing
  table and records included, is kept;
* ``nodes-unsorted``: NODES replies list their contacts farthest first (DHT-7.2);
* ``forgets-records``: STOREs are acknowledged, then the records are lost (DHT-7.4);
* ``answers-app``: APP messages, valid or not, are echoed to their sender (APP-1.1);
* ``no-stream``: no TCP listener, so a truncated VALUE cannot be fetched (DHT-7.8).
"""

import argparse
import os
import random
import selectors
import socket
import sys
import time

from railgun_ref.conformance.common import take_outputs
from railgun_ref.dht.storage import RecordTable
from railgun_ref.events import MessageRejected
from railgun_ref.identity.keys import Identity
from railgun_ref.node import ConnectionId, Node
from railgun_ref.rpc.replay import ReplayGuard
from railgun_ref.wire import cbor
from railgun_ref.wire.envelope import decode_envelope, encode_envelope
from railgun_ref.wire.framing import FrameDecoder, encode_frame
from railgun_ref.wire.messages import MessageType

MODES = (
    "good",
    "bad-signature",
    "echo-garbage",
    "silent",
    "replays-ok",
    "nodes-unsorted",
    "forgets-records",
    "answers-app",
    "no-stream",
)


def _is_app(data: bytes) -> bool:
    try:
        signed = cbor.decode(data)[0]
        return bool(cbor.decode(signed)[1] == MessageType.APP)
    except Exception:
        return False


def _corrupt_signature(data: bytes) -> bytes:
    signed, signature = cbor.decode(data)
    flipped = bytearray(signature)
    flipped[40] ^= 0x01
    return cbor.encode([signed, bytes(flipped)])


def _reverse_nodes(data: bytes, identity: Identity) -> bytes:
    """A NODES reply re-signed with its contacts in reverse order; other replies as they are."""
    envelope = decode_envelope(data)
    if envelope.type != MessageType.NODES or len(envelope.body[0]) < 2:
        return data
    return encode_envelope(
        identity,
        type=envelope.type,
        request_id=envelope.request_id,
        timestamp_ms=envelope.timestamp_ms,
        body={0: list(reversed(envelope.body[0]))},
    )


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


def serve(mode: str, host: str, port: int) -> None:
    identity = Identity.generate(os.urandom)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]
    node = Node(identity, rng=random.Random(), now=time.time())
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ, "udp")
    streams = _Streams(node, selector)
    if mode not in ("no-stream", "silent"):
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.bind((host, bound_port))
        listener.listen()
        selector.register(listener, selectors.EVENT_READ, "listen")
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    print(f"railgun-ref node listening udp://{shown}:{bound_port} id={identity.node_id.hex()}")
    sys.stdout.flush()
    while True:
        for key, _ in selector.select():
            if key.data == "udp":
                _datagram(mode, sock, node, identity)
            elif key.data == "listen":
                streams.accept(listener)
            else:
                streams.read(key.data)


def _datagram(mode: str, sock: socket.socket, node: Node, identity: Identity) -> None:
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
    refused = any(isinstance(event, MessageRejected) for event in out.events)
    replies = out.datagrams
    if mode == "forgets-records":
        node.dht.records = RecordTable(node.dht.config.storage)
    for reply, destination in replies:
        sent = reply
        if mode == "bad-signature":
            sent = _corrupt_signature(reply)
        elif mode == "nodes-unsorted":
            sent = _reverse_nodes(reply, identity)
        sock.sendto(sent, destination)
    if mode == "answers-app" and _is_app(data):
        sock.sendto(data[:1200], address)
    if mode == "echo-garbage" and refused and not replies:
        sock.sendto(data[:1200], address)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=MODES, default="good")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    serve(args.mode, args.host, args.port)


if __name__ == "__main__":
    main()
