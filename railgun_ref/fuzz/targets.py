"""The fuzz targets: each network decoder and what it may raise (ABUSE-5.1).

A target is a `check(data)` that feeds `data` to one decoder and swallows the
typed protocol error that decoder is allowed to raise. Anything else that
escapes -- an IndexError, a KeyError, a RecursionError -- is a defect: the
fuzzer reports it as a crash and keeps the input. The node and the DNS
server are fed whole datagrams and may raise nothing at all (they count bad
input and drop it).

Seeds are the valid and invalid encodings of the conformance vectors (every
hexadecimal string of the named vector files), so a run starts from inputs
that get past each decoder's first checks.
"""

import contextlib
import json
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Final

from railgun_ref.abuse.pow import decode_solution
from railgun_ref.bootstrap.manifest import decode_manifest, decode_root, document_body
from railgun_ref.capacity.advert import decode_capabilities
from railgun_ref.core import cbor
from railgun_ref.core.errors import RemoteProtocolError
from railgun_ref.dht.records import decode_record
from railgun_ref.identity.keys import Identity
from railgun_ref.identity.rotation import decode_handover
from railgun_ref.node import ConnectionId, Node
from railgun_ref.privacy.padding import unpad_frame
from railgun_ref.rooms.announce import parse_announcement
from railgun_ref.rooms.changes import decode_change
from railgun_ref.storeforward import messages as sf_messages
from railgun_ref.stun.codec import decode_channel_data, decode_message
from railgun_ref.transport.p2p import decode_announcement, decode_frame
from railgun_ref.traversal import messages as traversal_messages
from railgun_ref.traversal.envelopes import open_envelope
from railgun_ref.voice.signalling import decode_message as decode_signal
from railgun_ref.wire.central import decode_client_frame, decode_server_frame
from railgun_ref.wire.envelope import decode_envelope, encode_envelope
from railgun_ref.wire.framing import FrameDecoder
from railgun_ref.wire.messages import MessageType, parse_message
from railgun_ref.wire.relay import decode_relay_frame

#: The clock every target runs at (records, handovers and envelopes are checked against it).
FUZZ_NOW: Final = 1_700_000_000.0
_NOW_MS: Final = int(FUZZ_NOW * 1000)
_SENDER: Final = Identity.from_seed(b"\x01" * 32)
_RECEIVER: Final = Identity.from_seed(b"\x02" * 32)
_PEER: Final = ("127.0.0.1", 40001)
#: A long-lived core is rebuilt after this many inputs so its state stays bounded.
_RESET_EVERY: Final = 2000
_HEX: Final = re.compile(r"^(?:[0-9a-f]{2})+$")


@dataclass(frozen=True, slots=True, kw_only=True)
class FuzzTarget:
    """One decoder under fuzzing."""

    name: str
    check: Callable[[bytes], None]  #: raises only if the decoder broke its contract
    vectors: tuple[str, ...] = ()  #: conformance vector files whose hex strings seed it
    extra_seeds: tuple[bytes, ...] = field(default=())
    doc: str = ""


def _typed(*decoders: Callable[[bytes], object]) -> Callable[[bytes], None]:
    """A check that lets each decoder return or raise `RemoteProtocolError`, nothing else."""

    def check(data: bytes) -> None:
        for decode in decoders:
            with contextlib.suppress(RemoteProtocolError):
                decode(data)

    return check


# --- decoders that need more than bytes --------------------------------------------------


def _frames(data: bytes) -> None:
    """STR-1.3: the stream frame decoder, fed `data` in two chunks cut at its first byte."""
    decoder = FrameDecoder(max_size=1 + (data[0] if data else 0) * 64)
    cut = data[1] if len(data) > 1 else 0
    for chunk in (data[2 : 2 + cut], data[2 + cut :]):
        decoder.feed(chunk)
        while decoder.next_frame() is not None:
            pass


def _dht_body(data: bytes) -> None:
    """MSG-1.2: a DHT message body of the type named by the first byte."""
    kinds = list(MessageType)
    kind = kinds[data[0] % len(kinds)] if data else MessageType.PING
    body = cbor.decode(data[1:])
    if not isinstance(body, dict):
        return
    envelope = decode_envelope(_sign(kind, body)) if _signable(body) else None
    if envelope is not None:
        parse_message(envelope)


def _signable(body: dict[Any, Any]) -> bool:
    return all(type(key) is int and 0 <= key < 2**64 for key in body)


def _sign(kind: int, body: dict[Any, Any], request_id: int = 1) -> bytes:
    return encode_envelope(
        _SENDER,
        type=kind,
        request_id=request_id,
        timestamp_ms=_NOW_MS,
        body=body,
        max_size=1 << 20,
    )


def _record(data: bytes) -> None:
    """DHT-3: a record as a STORE or VALUE carries it (any CBOR value)."""
    decode_record(cbor.decode(data), now=FUZZ_NOW)


def _handover(data: bytes) -> None:
    decode_handover(data, now_ms=_NOW_MS)


def _manifest(data: bytes) -> None:
    """BOOT-1: a signed document's body, as a root and as a manifest."""
    _manifest_body(document_body(data))


_manifest_body = _typed(decode_root, decode_manifest)


# --- whole cores that must raise nothing -------------------------------------------------


class _NodeHarness:
    """One `Node` fed datagrams and stream messages; rebuilt every `_RESET_EVERY` inputs."""

    def __init__(self) -> None:
        self._node = self._fresh()
        self._inputs = 0

    @staticmethod
    def _fresh() -> Node:
        return Node(_RECEIVER, rng=random.Random(0), now=FUZZ_NOW)

    def _next(self) -> Node:
        self._inputs += 1
        if self._inputs % _RESET_EVERY == 0:
            self._node = self._fresh()
        return self._node

    def raw(self, data: bytes) -> None:
        """NODE-1.2: any bytes, on the datagram or the stream channel by the first byte."""
        node = self._next()
        if data[:1] == b"\x01":
            node.receive_stream_message(data[1:], ConnectionId(1), _PEER, now=FUZZ_NOW)
        else:
            node.receive_datagram(data[1:], _PEER, now=FUZZ_NOW)
        _drain(node)

    def signed(self, data: bytes) -> None:
        """MSG-1.3: a correctly signed envelope of any type with the fuzzed CBOR body."""
        try:
            body = cbor.decode(data[1:])
        except RemoteProtocolError:
            return
        if not isinstance(body, dict) or not _signable(body):
            return
        node = self._next()
        kinds = [*MessageType, 99]
        kind = kinds[data[0] % len(kinds)]
        node.receive_datagram(_sign(kind, body, self._inputs), _PEER, now=FUZZ_NOW)
        _drain(node)


def _drain(node: Node) -> None:
    while node.next_action() is not None:
        pass


@cache
def _node() -> _NodeHarness:
    return _NodeHarness()


@cache
def _dns_server() -> Any:
    # The DNS server lives in drivers/ (it wraps dnslib); import it only when fuzzed.
    from railgun_ref.drivers.dns_server import DnsServer  # noqa: PLC0415

    server = DnsServer(host="127.0.0.1", zone="test")
    server.register("seed.test", "127.0.0.2")
    server.register_srv("_railgun._udp.test", [(1, 1, 4000, "seed.test")])
    return server


def _dns(data: bytes) -> None:
    """The DNS server's query handler: a reply or None, whatever the datagram."""
    server = _dns_server()
    reply = server.handle(data, tcp=False)
    if reply is not None and not isinstance(reply, bytes):
        raise TypeError("the DNS handler returned something other than bytes or None")


def _node_raw(data: bytes) -> None:
    _node().raw(data)


def _node_signed(data: bytes) -> None:
    _node().signed(data)


# --- the registry ------------------------------------------------------------------------

_DNS_QUERY: Final = (
    bytes.fromhex("123401000001000000000000") + b"\x04seed\x04test\x00\x00\x01\x00\x01"
)
_STUN_BINDING: Final = bytes.fromhex("000100002112a442") + bytes(range(12))

TARGETS: Final[tuple[FuzzTarget, ...]] = (
    FuzzTarget(name="cbor", check=_typed(cbor.decode), vectors=("cbor",)),
    FuzzTarget(name="frames", check=_typed(_frames), vectors=("framing",)),
    FuzzTarget(name="envelope", check=_typed(decode_envelope), vectors=("envelope", "node_ping")),
    FuzzTarget(name="dht-message", check=_typed(_dht_body), vectors=("dht_messages",)),
    FuzzTarget(name="dht-record", check=_typed(_record), vectors=("dht_records",)),
    FuzzTarget(name="node", check=_node_raw, vectors=("node_ping", "dht_node")),
    FuzzTarget(name="node-signed", check=_node_signed, vectors=("dht_messages",)),
    FuzzTarget(
        name="central",
        check=_typed(decode_client_frame, decode_server_frame),
        extra_seeds=(b"\x82\x00\xa0",),
    ),
    FuzzTarget(name="relay-frame", check=_typed(decode_relay_frame), vectors=("relays",)),
    FuzzTarget(name="p2p", check=_typed(decode_frame, decode_announcement), vectors=("relays",)),
    FuzzTarget(
        name="stun", check=_typed(decode_message, decode_channel_data), extra_seeds=(_STUN_BINDING,)
    ),
    FuzzTarget(name="storeforward", check=_typed(sf_messages.decode), vectors=("storeforward",)),
    FuzzTarget(
        name="traversal",
        check=_typed(traversal_messages.decode, open_envelope),
        vectors=("traversal",),
    ),
    FuzzTarget(name="voice", check=_typed(decode_signal), vectors=("voice",)),
    FuzzTarget(name="room-change", check=_typed(decode_change), vectors=("rooms",)),
    FuzzTarget(name="room-announce", check=_typed(parse_announcement), vectors=("rooms",)),
    FuzzTarget(name="capacity", check=_typed(decode_capabilities), vectors=("capacity",)),
    FuzzTarget(name="manifest", check=_typed(_manifest), vectors=("bootstrap",)),
    FuzzTarget(name="manifest-body", check=_manifest_body, vectors=("bootstrap",)),
    FuzzTarget(name="pow", check=_typed(decode_solution), vectors=("abuse",)),
    FuzzTarget(name="rotation", check=_typed(_handover), vectors=("identity", "abuse")),
    FuzzTarget(name="padding", check=_typed(unpad_frame), vectors=("privacy",)),
    FuzzTarget(name="dns", check=_dns, extra_seeds=(_DNS_QUERY,)),
)


def _all(data: bytes) -> None:
    """Every target at once: the first byte picks one, the rest is its input."""
    if data:
        TARGETS[data[0] % len(TARGETS)].check(data[1:])


def target_named(name: str) -> FuzzTarget | None:
    """The target called `name` ("all" multiplexes every one), or None."""
    if name == "all":
        seeds = tuple(
            bytes([index]) + seed for index, one in enumerate(TARGETS) for seed in seeds_of(one)
        )
        return FuzzTarget(name="all", check=_all, extra_seeds=seeds, doc="every target")
    return next((target for target in TARGETS if target.name == name), None)


def _hex_strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        if _HEX.match(value):
            yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _hex_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _hex_strings(item)


@cache
def _vector_seeds(area: str) -> tuple[bytes, ...]:
    text = resources.files("railgun_ref.conformance.vectors").joinpath(f"{area}.json").read_text()
    return tuple(dict.fromkeys(bytes.fromhex(h) for h in _hex_strings(json.loads(text))))


def seeds_of(target: FuzzTarget) -> list[bytes]:
    """The starting inputs of `target`: its vectors' hex strings and its extra seeds."""
    seeds = [seed for area in target.vectors for seed in _vector_seeds(area)]
    return list(dict.fromkeys([*seeds, *target.extra_seeds, b""]))


def corpus_inputs(directory: Path) -> list[bytes]:
    """Every file of a corpus directory (libFuzzer's layout: one input per file)."""
    if not directory.is_dir():
        return []
    return [path.read_bytes() for path in sorted(directory.iterdir()) if path.is_file()]


def replay(target: FuzzTarget, inputs: list[bytes]) -> list[tuple[bytes, BaseException]]:
    """Run `target` on each input without atheris; the inputs that broke the contract."""
    broken: list[tuple[bytes, BaseException]] = []
    for data in inputs:
        try:
            target.check(data)
        except Exception as exc:  # any escape is the defect being looked for
            broken.append((data, exc))
    return broken
