"""Bootstrap attempts through a proxy: a PING over a stream opened by a SOCKS5 proxy (Tor).

Tor reaches an onion service only as a TCP stream through its SOCKS5 port
(RFC 1928, with the name resolved by the proxy: ``socks5h``). The attempt
opens that stream with python-socks, sends one framed PING envelope (STR-1.1,
MSG-2.1) signed by the client's identity, and reads one framed answer: a PONG
(MSG-2.2) for the same request id, whose sender id goes back to the race
(BOOT-4.5). Everything else is a labelled failure (`AttemptError`): the
proxy refusing or closing (``proxy_error``), no answer in time
(``generic_timeout``), bytes that are not a PONG (``invalid_response``).

To point it at a real Tor: run tor with ``SocksPort 9050`` and give
``TorProxy(address=("127.0.0.1", 9050))``; onion addresses then come from the
manifest (BOOT-3.5, kind 2). The tests run pproxy, a SOCKS5 server from
PyPI, on loopback with rules that map onion names to local nodes.
"""

import random
from dataclasses import dataclass

import anyio
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
    decoder = FrameDecoder()
    while (frame := decoder.next_frame()) is None:
        try:
            decoder.feed(await stream.receive())
        except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
            raise AttemptError(Failure.PROXY_ERROR, "the stream closed without a PONG") from None
    return frame


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
