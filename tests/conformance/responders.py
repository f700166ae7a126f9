"""Tiny stand-alone UDP responders for testing the wire runner, good and deliberately broken.

Run as a script::

    python tests/conformance/responders.py --mode MODE   (one of MODES)

Like ``railgun-ref node``, it prints as its first stdout line
``railgun-ref node listening udp://HOST:PORT id=<64 hex>`` and serves until
terminated. "good" is the sans-IO `Node` behind a plain stdlib socket; the
other modes break one rule each, so a test can show the runner catches it:

* ``bad-signature``: every reply has one bit of its signature flipped (ENV-2.1);
* ``echo-garbage``: bytes the node refused are sent back to their sender (NODE-1.2);
* ``silent``: never answers anything (MSG-2.1);
* ``replays-ok``: the node forgets every envelope it saw (a fresh replay guard per
  datagram), so replays are answered (ENV-2.4); everything else, the DHT's routing
  table and records included, is kept;
* ``nodes-unsorted``: NODES replies list their contacts farthest first (DHT-7.2);
* ``forgets-records``: STOREs are acknowledged, then the records are lost (DHT-7.4);
* ``answers-app``: APP messages, valid or not, are echoed to their sender (APP-1.1).
"""

import argparse
import os
import random
import socket
import sys
import time

from railgun_ref.conformance.common import take_outputs
from railgun_ref.dht.storage import RecordTable
from railgun_ref.events import MessageRejected
from railgun_ref.identity.keys import Identity
from railgun_ref.node import Node
from railgun_ref.rpc.replay import ReplayGuard
from railgun_ref.wire import cbor
from railgun_ref.wire.envelope import decode_envelope, encode_envelope
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


def serve(mode: str, host: str, port: int) -> None:
    identity = Identity.generate(os.urandom)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    print(f"railgun-ref node listening udp://{shown}:{bound_port} id={identity.node_id.hex()}")
    sys.stdout.flush()
    node = Node(identity, rng=random.Random(), now=time.time())
    while True:
        data, source = sock.recvfrom(65536)
        address = (str(source[0]), int(source[1]))
        if mode == "silent":
            continue
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
