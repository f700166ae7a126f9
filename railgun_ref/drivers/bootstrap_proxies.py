"""Bootstrap attempts through a proxy: a PING over a stream from Tor (SOCKS5) or I2P (SAM v3).

Tor reaches an onion service only as a TCP stream through its SOCKS5 port
(RFC 1928, with the name resolved by the proxy: ``socks5h``). The attempt
opens that stream with python-socks, sends one framed PING envelope (STR-1.1,
MSG-2.1) signed by the client's identity, and reads one framed answer: a PONG
(MSG-2.2) for the same request id, whose sender id goes back to the race
(BOOT-4.5). Everything else is a labelled failure (`AttemptError`): the
proxy refusing or closing (``proxy_error``), no answer in time
(``generic_timeout``), bytes that are not a PONG (``invalid_response``).

I2P is reached through the router's SAM v3 bridge (SAM specification
3.1–3.3): HELLO, a transient STREAM session, NAMING LOOKUP of the
``.b32.i2p`` name, STREAM CONNECT; the connected socket then carries the
same framed PING and PONG. The tests run a local SAM endpoint written to
that protocol (`drivers.sam_bridge`), which maps names to local nodes.

To point it at a real Tor: run tor with ``SocksPort 9050`` and give
``TorProxy(address=("127.0.0.1", 9050))``; onion addresses then come from the
manifest (BOOT-3.5, kind 2). The tests run pproxy, a SOCKS5 server from
PyPI, on loopback with rules that map onion names to local nodes.
"""

import random
from dataclasses import dataclass
from typing import Final

import anyio
import anyio.abc
from python_socks import ProxyConnectionError, ProxyError, ProxyTimeoutError
from python_socks.async_.anyio import Proxy

from railgun_ref.bootstrap.race import Failure
from railgun_ref.core.constants import MAX_STREAM_MESSAGE_SIZE
from railgun_ref.core.errors import RemoteProtocolError
from railgun_ref.core.ids import Address, NodeId
from railgun_ref.identity.keys import Identity
from railgun_ref.wire.envelope import decode_envelope, encode_envelope
from railgun_ref.wire.framing import FrameDecoder, encode_frame
from railgun_ref.wire.messages import MessageType, Ping, Pong


class AttemptError(Exception):
    """An attempt failed; `failure` is the label the race reports."""

    def __init__(self, failure: Failure, message: str) -> None:
        super().__init__(f"{failure.value}: {message}")
        self.failure = failure


@dataclass(frozen=True, slots=True, kw_only=True)
class TorProxy:
    """Where Tor's SOCKS5 port listens."""

    address: Address


def split_host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise AttemptError(Failure.UNREACHABLE, f"not host:port: {text!r}")
    return host.strip("[]"), int(port)


async def _read_frame(stream: anyio.abc.ByteReceiveStream) -> bytes:
    decoder = FrameDecoder(max_size=MAX_STREAM_MESSAGE_SIZE)
    while True:
        try:
            frame = decoder.next_frame()
        except RemoteProtocolError as exc:  # a length prefix out of range: not our protocol
            raise AttemptError(Failure.INVALID_RESPONSE, exc.message) from None
        if frame is not None:
            return frame
        try:
            decoder.feed(await stream.receive())
        except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
            raise AttemptError(Failure.PROXY_ERROR, "the stream closed without a PONG") from None


def _ping_frame(identity: Identity, request_id: int, now: float) -> bytes:
    envelope = encode_envelope(
        identity,
        type=MessageType.PING,
        request_id=request_id,
        timestamp_ms=int(now * 1000),
        body=Ping().to_body(),
        max_size=MAX_STREAM_MESSAGE_SIZE,
    )
    return encode_frame(envelope)


def _pong_sender(frame: bytes, request_id: int) -> NodeId:
    try:
        envelope = decode_envelope(frame, max_size=MAX_STREAM_MESSAGE_SIZE)
        if envelope.type != MessageType.PONG or envelope.request_id != request_id:
            raise AttemptError(Failure.INVALID_RESPONSE, f"type {envelope.type}, not a PONG")
        Pong.from_body(envelope.body)
    except RemoteProtocolError as exc:
        raise AttemptError(Failure.INVALID_RESPONSE, exc.message) from None
    return envelope.sender_id


async def stream_ping(
    stream: anyio.abc.ByteStream, identity: Identity, *, rng: random.Random, now: float
) -> NodeId:
    """One PING on an open stream; the id of the node whose PONG answered it."""
    request_id = rng.getrandbits(64)
    try:
        await stream.send(_ping_frame(identity, request_id, now))
    except (anyio.BrokenResourceError, OSError):
        raise AttemptError(Failure.PROXY_ERROR, "the stream closed before the PING") from None
    return _pong_sender(await _read_frame(stream), request_id)


async def tor_ping(
    tor: TorProxy,
    address: str,
    identity: Identity,
    *,
    rng: random.Random,
    now: float,
    timeout: float,
) -> NodeId:
    """PING the onion service at `address` ("name.onion:port") through Tor's SOCKS5 port."""
    host, port = split_host_port(address)
    proxy = Proxy.from_url(f"socks5://{tor.address[0]}:{tor.address[1]}", rdns=True)
    try:
        stream = await proxy.connect(host, port, timeout=timeout)
    except ProxyTimeoutError:
        raise AttemptError(Failure.GENERIC_TIMEOUT, "the proxy did not answer") from None
    except ProxyConnectionError:
        raise AttemptError(Failure.CONNECTION_REFUSED, "cannot reach the SOCKS5 proxy") from None
    except (ProxyError, OSError) as exc:
        raise AttemptError(Failure.PROXY_ERROR, f"SOCKS5: {exc}") from None
    async with stream:
        return await stream_ping(stream, identity, rng=rng, now=now)


# --- I2P through the SAM v3 bridge --------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SamBridge:
    """Where the I2P router's SAM v3 bridge listens (i2pd and Java I2P: 127.0.0.1:7656)."""

    address: Address


_SAM_HELLO: Final = b"HELLO VERSION MIN=3.1 MAX=3.3\n"
_SAM_LINE_LIMIT: Final = 4096


def sam_reply(line: bytes) -> dict[str, str]:
    """The KEY=VALUE pairs of one SAM reply line (the first two words are the command)."""
    words = line.decode("utf-8", "replace").strip().split(" ")
    pairs = dict(word.split("=", 1) for word in words[2:] if "=" in word)
    pairs["_command"] = " ".join(words[:2])
    return pairs


async def _sam_line(stream: anyio.abc.ByteStream, buffer: bytearray) -> dict[str, str]:
    while b"\n" not in buffer:
        if len(buffer) > _SAM_LINE_LIMIT:
            raise AttemptError(Failure.PROXY_ERROR, "SAM reply line too long")
        try:
            buffer += await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
            raise AttemptError(Failure.PROXY_ERROR, "the SAM bridge closed") from None
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    return sam_reply(line)


async def _sam_command(
    stream: anyio.abc.ByteStream, buffer: bytearray, command: str, expect: str
) -> dict[str, str]:
    try:
        await stream.send(command.encode("utf-8") + b"\n")
    except (anyio.BrokenResourceError, OSError):
        raise AttemptError(Failure.PROXY_ERROR, "the SAM bridge closed") from None
    reply = await _sam_line(stream, buffer)
    if reply["_command"] != expect or reply.get("RESULT") != "OK":
        result = reply.get("RESULT", "no result")
        failure = Failure.GENERIC_TIMEOUT if result == "TIMEOUT" else Failure.PROXY_ERROR
        raise AttemptError(failure, f"SAM {command.split(' ', maxsplit=1)[0]}: {result}")
    return reply


async def _sam_open(sam: SamBridge) -> tuple[anyio.abc.SocketStream, bytearray]:
    try:
        stream = await anyio.connect_tcp(*sam.address)
    except OSError:
        raise AttemptError(Failure.CONNECTION_REFUSED, "cannot reach the SAM bridge") from None
    buffer = bytearray()
    try:
        await stream.send(_SAM_HELLO)
    except (anyio.BrokenResourceError, OSError):
        await stream.aclose()
        raise AttemptError(Failure.PROXY_ERROR, "the SAM bridge closed") from None
    reply = await _sam_line(stream, buffer)
    if reply["_command"] != "HELLO REPLY" or reply.get("RESULT") != "OK":
        await stream.aclose()
        raise AttemptError(Failure.PROXY_ERROR, f"SAM HELLO: {reply.get('RESULT')}")
    return stream, buffer


async def i2p_ping(
    sam: SamBridge, address: str, identity: Identity, *, rng: random.Random, now: float
) -> NodeId:
    """PING the I2P destination `address` ("name.b32.i2p:port") through a SAM v3 stream.

    One transient session per attempt (SAM 3.1 SESSION CREATE, STYLE=STREAM),
    a NAMING LOOKUP of the name, then STREAM CONNECT on a second connection,
    which then carries the framed PING and PONG.
    """
    name, port = split_host_port(address)
    session_id = f"railgun-{rng.getrandbits(48):012x}"
    control, control_buffer = await _sam_open(sam)
    async with control:
        await _sam_command(
            control,
            control_buffer,
            f"SESSION CREATE STYLE=STREAM ID={session_id} DESTINATION=TRANSIENT SIGNATURE_TYPE=7",
            "SESSION STATUS",
        )
        lookup = await _sam_command(
            control, control_buffer, f"NAMING LOOKUP NAME={name}", "NAMING REPLY"
        )
        stream, buffer = await _sam_open(sam)
        async with stream:
            await _sam_command(
                stream,
                buffer,
                f"STREAM CONNECT ID={session_id} DESTINATION={lookup.get('VALUE', '')} "
                f"TO_PORT={port} SILENT=false",
                "STREAM STATUS",
            )
            if buffer:
                raise AttemptError(Failure.PROXY_ERROR, "data before the PONG was asked for")
            return await stream_ping(stream, identity, rng=rng, now=now)
