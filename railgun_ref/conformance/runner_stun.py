"""Black-box runners for a STUN server (``stun://HOST:PORT``) and a TURN server
(``turn://USER:PASSWORD@HOST:PORT``), on 127.0.0.0/8.

They check from outside, over UDP, what a client can observe of CAP-6.4 and
RFC 8489/5780 (the STUN runner) and of TURN-1.x (the TURN runner), and
report per clause in the wire runner's `Report` format (`railgun-ref
conformance run --target ...`). Every check sends its own requests from its
own sockets and waits at most `timeout` for each answer; silence where an
answer is due fails the check, never the run. A `turn://` target carries a
long-term credential of the server in its user-info part (RFC 7065 URIs have
none; the runner needs one to allocate).

Checks that a server may legitimately not support are reported as passed
with the reason (a STUN server without an alternate address, RFC 5780 §6.1,
answers CHANGE-REQUEST with 420).
"""

import functools
import os
import socket
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote, urlsplit

import anyio
import anyio.abc
from anyio.abc import SocketAttribute

from railgun_ref.conformance.catalog import STUN_RUNNER_CHECKS, TURN_RUNNER_CHECKS
from railgun_ref.conformance.wire_runner import CheckResult, Report, TargetError, print_report
from railgun_ref.core.errors import RemoteProtocolError
from railgun_ref.core.ids import Address
from railgun_ref.drivers.addresses import check_destination_host
from railgun_ref.stun.codec import (
    Attribute,
    ChangeRequest,
    ChannelDataMessage,
    ChannelNumber,
    Data,
    DontFragment,
    EvenPort,
    Fingerprint,
    Lifetime,
    MessageClass,
    Method,
    Nonce,
    OtherAddress,
    Padding,
    RawAttribute,
    Realm,
    RequestedTransport,
    ReservationToken,
    ResponseOrigin,
    ResponsePort,
    StunMessage,
    UnknownAttributes,
    Username,
    XorMappedAddress,
    XorPeerAddress,
    XorRelayedAddress,
    check_integrity,
    decode_channel_data,
    decode_message,
    encode_channel_data,
    encode_message,
    is_channel_data,
    long_term_key,
    new_transaction_id,
)

#: An attribute type no one defines, in the comprehension-required range.
_UNKNOWN_REQUIRED: Final = 0x7777
_PADDING_SIZE: Final = 500


@dataclass(frozen=True, slots=True, kw_only=True)
class StunTarget:
    address: Address
    user: str | None = None
    password: str | None = None


def parse_stun_target(target: str) -> StunTarget:
    """``stun://HOST:PORT`` or ``turn://USER:PASSWORD@HOST:PORT`` on 127.0.0.0/8."""
    parts = urlsplit(target)
    if parts.scheme not in ("stun", "turn"):
        raise TargetError(f"target must be stun:// or turn://, got {target!r}")
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.hostname is None or not port:
        raise TargetError(f"target must name a host and a non-zero port, got {target!r}")
    try:
        check_destination_host(parts.hostname)
    except ValueError as exc:
        raise TargetError(f"{exc} (the runner sends malformed traffic on purpose)") from None
    if parts.scheme == "turn" and (parts.username is None or parts.password is None):
        raise TargetError("a turn:// target needs USER:PASSWORD@ (a credential of the server)")
    user = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return StunTarget(address=(parts.hostname, port), user=user, password=password)


class _Client:
    """One UDP socket on 127.0.0.1 talking to the target."""

    def __init__(self, sock: anyio.abc.UDPSocket, timeout: float) -> None:
        self.sock = sock
        self.timeout = timeout
        local = sock.extra(SocketAttribute.local_address)
        assert isinstance(local, tuple)
        self.address: Address = (str(local[0]), int(local[1]))

    async def send(self, data: bytes, to: Address) -> None:
        await self.sock.sendto(data, *to)

    async def receive(self) -> tuple[bytes, Address] | None:
        """The next datagram within the timeout, or None."""
        with anyio.move_on_after(self.timeout):
            data, (host, port) = await self.sock.receive()
            return data, (str(host), int(port))
        return None

    async def answer(self, request: bytes, to: Address) -> tuple[StunMessage, Address] | None:
        """Send a STUN request; its response (same transaction id) and where it came from."""
        await self.send(request, to)
        with anyio.move_on_after(self.timeout):
            while True:
                data, (host, port) = await self.sock.receive()
                try:
                    message = decode_message(data)
                except RemoteProtocolError:
                    continue
                if message.transaction_id == request[8:20]:
                    return message, (str(host), int(port))
        return None


async def _client(timeout: float, host: str = "127.0.0.1") -> _Client:
    sock = await anyio.create_udp_socket(family=socket.AF_INET, local_host=host)
    return _Client(sock, timeout)


def _request(method: int, *attributes: Attribute, fingerprint: bool = True) -> bytes:
    message = StunMessage(
        method=method,
        message_class=MessageClass.REQUEST,
        transaction_id=new_transaction_id(os.urandom),
        attributes=attributes,
    )
    return encode_message(message, fingerprint=fingerprint)


def _code(message: StunMessage | None) -> int | None:
    error = None if message is None else message.error
    return None if error is None else error.code


_Check = Callable[["_Run"], Awaitable[tuple[bool, str]]]


@dataclass(slots=True, kw_only=True)
class _Run:
    target: StunTarget
    timeout: float


async def _run_checks(target: str, timeout: float, checks: list[tuple[str, str, _Check]]) -> Report:
    """Every check in order; an exception in one fails it and the run goes on."""
    state = _Run(target=parse_stun_target(target), timeout=timeout)
    results: list[CheckResult] = []
    for name, clause, check in checks:
        try:
            passed, detail = await check(state)
        except (
            OSError,
            RemoteProtocolError,
            AssertionError,
            anyio.ClosedResourceError,
            anyio.BrokenResourceError,
        ) as exc:
            passed, detail = False, f"{type(exc).__name__}: {exc}"
        results.append(CheckResult(check=name, clause=clause, passed=passed, detail=detail))
    return Report(target=target, node_id=None, timeout=timeout, checks=tuple(results))


# ------------------------------------------------------------------ STUN


async def _stun_binding(run: _Run) -> tuple[bool, str]:
    async with (client := await _client(run.timeout)).sock:
        got = await client.answer(_request(Method.BINDING), run.target.address)
    if got is None:
        return False, "no answer to a Binding request"
    response, source = got
    mapped = response.find(XorMappedAddress)
    if response.message_class is not MessageClass.SUCCESS_RESPONSE or mapped is None:
        return False, f"not a success with XOR-MAPPED-ADDRESS: {response.message_class.name}"
    if mapped.address != client.address:
        return False, f"XOR-MAPPED-ADDRESS {mapped.address} is not our {client.address}"
    if source != run.target.address:
        return False, f"answered from {source}, not the address asked"
    if response.find(Fingerprint) is None:
        return False, "FINGERPRINT in the request but not in the response"
    return True, f"mapped {mapped.address}"


async def _stun_unknown_attribute(run: _Run) -> tuple[bool, str]:
    request = _request(Method.BINDING, RawAttribute(_UNKNOWN_REQUIRED, b"x"))
    async with (client := await _client(run.timeout)).sock:
        got = await client.answer(request, run.target.address)
    response = None if got is None else got[0]
    unknown = None if response is None else response.find(UnknownAttributes)
    if _code(response) != 420 or unknown is None or _UNKNOWN_REQUIRED not in unknown.types:
        return False, f"expected 420 listing 0x7777, got {_code(response)}"
    return True, "420 with UNKNOWN-ATTRIBUTES"


async def _stun_padding(run: _Run) -> tuple[bool, str]:
    request = _request(Method.BINDING, Padding(b"\x00" * _PADDING_SIZE))
    async with (client := await _client(run.timeout)).sock:
        got = await client.answer(request, run.target.address)
    padding = None if got is None else got[0].find(Padding)
    if padding is None:
        return False, f"no PADDING in the response to a request with {_PADDING_SIZE} bytes of it"
    return True, f"PADDING of {len(padding.value)} bytes (asked with {_PADDING_SIZE})"


async def _stun_padding_with_response_port(run: _Run) -> tuple[bool, str]:
    async with (client := await _client(run.timeout)).sock, (other := await _client(0.2)).sock:
        request = _request(Method.BINDING, Padding(bytes(64)), ResponsePort(other.address[1]))
        got = await client.answer(request, run.target.address)
        stray = await other.receive()
    if stray is not None:
        return False, "a padded response went to RESPONSE-PORT"
    if _code(None if got is None else got[0]) != 400:
        return False, f"expected 400, got {_code(None if got is None else got[0])}"
    return True, "400 to the source"


async def _stun_change_request(run: _Run) -> tuple[bool, str]:
    async with (client := await _client(run.timeout)).sock:
        first = await client.answer(_request(Method.BINDING), run.target.address)
        if first is None:
            return False, "no answer to a Binding request"
        other = first[0].find(OtherAddress)
        request = _request(Method.BINDING, ChangeRequest(change_ip=True, change_port=True))
        got = await client.answer(request, run.target.address)
    if other is None:
        ok = _code(None if got is None else got[0]) == 420
        return ok, "no OTHER-ADDRESS: 420 expected" + ("" if ok else " but not given")
    if got is None:
        return False, f"no answer from OTHER-ADDRESS {other.address}"
    origin = got[0].find(ResponseOrigin)
    if got[1] != other.address or origin is None or origin.address != other.address:
        return False, f"answered from {got[1]} (RESPONSE-ORIGIN {origin}), not {other.address}"
    return True, f"answered from {other.address}"


async def _stun_silence(run: _Run) -> tuple[bool, str]:
    indication = StunMessage(
        method=Method.BINDING,
        message_class=MessageClass.INDICATION,
        transaction_id=new_transaction_id(os.urandom),
    )
    async with (client := await _client(run.timeout)).sock:
        for junk in (b"\x00" * 3, b"garbage that is not STUN", encode_message(indication)):
            await client.send(junk, run.target.address)
        stray = await client.receive()
        after = await client.answer(_request(Method.BINDING), run.target.address)
    if stray is not None:
        return False, f"answered garbage or an indication: {stray[0][:20].hex()}"
    if after is None:
        return False, "stopped answering after garbage"
    return True, "garbage and indications dropped, Binding still answered"


#: The checks in report order: `catalog.STUN_RUNNER_CHECKS`, each with its test.
STUN_CHECKS: Final[list[tuple[str, str, _Check]]] = [
    (check, clause, test)
    for (clause, check), test in zip(
        STUN_RUNNER_CHECKS,
        (
            _stun_binding,
            _stun_unknown_attribute,
            _stun_padding,
            _stun_padding_with_response_port,
            _stun_change_request,
            _stun_silence,
        ),
        strict=True,
    )
]


# ------------------------------------------------------------------ TURN


class _TurnClient:
    """A long-term-credential TURN client on one socket (learns REALM and NONCE on 401)."""

    def __init__(self, client: _Client, run: _Run) -> None:
        assert run.target.user is not None and run.target.password is not None
        self.client = client
        self.server = run.target.address
        self.user = run.target.user
        self.password = run.target.password
        self.realm: str | None = None
        self.nonce: str | None = None

    @property
    def key(self) -> bytes:
        assert self.realm is not None
        return long_term_key(self.user, self.realm, self.password)

    def build(self, method: int, *attributes: Attribute) -> bytes:
        assert self.realm is not None and self.nonce is not None
        credentials = (Username(self.user), Realm(self.realm), Nonce(self.nonce))
        message = StunMessage(
            method=method,
            message_class=MessageClass.REQUEST,
            transaction_id=new_transaction_id(os.urandom),
            attributes=(*attributes, *credentials),
        )
        return encode_message(message, integrity_key=self.key, fingerprint=True)

    async def request(self, method: int, *attributes: Attribute) -> StunMessage | None:
        """A signed request; on a first 401/438 learn REALM and NONCE and send it once more."""
        response: StunMessage | None = None
        for attempt in range(2):
            if self.nonce is None:
                got = await self.client.answer(_request(method, *attributes), self.server)
            else:
                got = await self.client.answer(self.build(method, *attributes), self.server)
            response = None if got is None else got[0]
            if response is None or attempt or _code(response) not in (401, 438):
                return response
            realm, nonce = response.find(Realm), response.find(Nonce)
            if realm is None or nonce is None:
                return response
            self.realm, self.nonce = realm.text, nonce.text
        return response

    async def allocate(self, *attributes: Attribute) -> StunMessage | None:
        return await self.request(Method.ALLOCATE, RequestedTransport(), *attributes)


def _relayed(response: StunMessage | None) -> Address | None:
    relayed = None if response is None else response.find(XorRelayedAddress)
    return None if relayed is None else relayed.address


async def _turn_challenge(run: _Run) -> tuple[bool, str]:
    async with (client := await _client(run.timeout)).sock:
        got = await client.answer(
            _request(Method.ALLOCATE, RequestedTransport()), run.target.address
        )
    response = None if got is None else got[0]
    if _code(response) != 401 or response is None:
        return False, f"unauthenticated Allocate: expected 401, got {_code(response)}"
    if response.find(Realm) is None or response.find(Nonce) is None:
        return False, "401 without REALM and NONCE"
    return True, "401 with REALM and NONCE"


async def _turn_allocate(run: _Run) -> tuple[bool, str]:
    async with (client := await _client(run.timeout)).sock:
        turn = _TurnClient(client, run)
        response = await turn.allocate()
        if response is not None and _relayed(response) is not None:
            await turn.request(Method.REFRESH, Lifetime(0))
    if response is None or _relayed(response) is None:
        return False, f"Allocate failed: {_code(response)}"
    if not check_integrity(response, turn.key):
        return False, "success response not signed with the request's key"
    mapped, lifetime = response.find(XorMappedAddress), response.find(Lifetime)
    if mapped is None or mapped.address != client.address or lifetime is None:
        return False, "XOR-MAPPED-ADDRESS or LIFETIME missing or wrong"
    if response.find(Fingerprint) is None:
        return False, "no FINGERPRINT"
    return True, f"relayed {_relayed(response)}, lifetime {lifetime.value}"


async def _turn_wrong_password(run: _Run) -> tuple[bool, str]:
    wrong = _Run(
        target=StunTarget(
            address=run.target.address, user=run.target.user, password=f"{run.target.password}x"
        ),
        timeout=run.timeout,
    )
    async with (client := await _client(run.timeout)).sock:
        response = await _TurnClient(client, wrong).allocate()
    ok = _code(response) == 401
    return ok, f"wrong password: {_code(response)}" + ("" if ok else ", expected 401")


async def _turn_replay(run: _Run) -> tuple[bool, str]:
    async with (victim := await _client(run.timeout)).sock:
        turn = _TurnClient(victim, run)
        await turn.request(Method.REFRESH)  # learns a nonce (437: no allocation yet)
        captured = turn.build(Method.ALLOCATE, RequestedTransport())
        async with (attacker := await _client(run.timeout)).sock:
            got = await attacker.answer(captured, run.target.address)
            replayed = None if got is None else got[0]
            if _relayed(replayed) is not None:
                await _TurnClient(attacker, run).request(Method.REFRESH, Lifetime(0))
                return False, "a signed Allocate replayed from another port got an allocation"
    ok = _code(replayed) == 438
    return ok, f"replay from another port: {_code(replayed)}" + ("" if ok else ", expected 438")


async def _turn_dont_fragment(run: _Run) -> tuple[bool, str]:
    async with (client := await _client(run.timeout)).sock:
        turn = _TurnClient(client, run)
        response = await turn.allocate(DontFragment())
        if _relayed(response) is not None:
            await turn.request(Method.REFRESH, Lifetime(0))
            return True, "DONT-FRAGMENT honoured (RFC 8656 7.2 allows it)"
    ok = _code(response) == 420 and response is not None and response.find(UnknownAttributes)
    return bool(ok), f"DONT-FRAGMENT: {_code(response)}" + ("" if ok else ", expected 420")


async def _turn_even_port(run: _Run) -> tuple[bool, str]:
    async with (
        (first := await _client(run.timeout)).sock,
        (second := await _client(run.timeout)).sock,
    ):
        rtp, rtcp = _TurnClient(first, run), _TurnClient(second, run)
        response = await rtp.allocate(EvenPort(reserve=True))
        relayed, token = (
            _relayed(response),
            None if response is None else response.find(ReservationToken),
        )
        if relayed is None or relayed[1] % 2 or token is None:
            return False, f"EVEN-PORT R: {_code(response)}, relayed {relayed}, token {token}"
        paired = await rtcp.allocate(ReservationToken(token.value))
        again = await rtcp.allocate(ReservationToken(token.value)) if paired else None
        for turn in (rtp, rtcp):
            await turn.request(Method.REFRESH, Lifetime(0))
    if _relayed(paired) != (relayed[0], relayed[1] + 1):
        return False, f"the reserved port {relayed[1] + 1} was not given: {_relayed(paired)}"
    return _code(again) is not None, f"even {relayed[1]}, reserved {relayed[1] + 1} used once"


async def _relay_round_trip(run: _Run, *, channel: bool) -> tuple[bool, str]:
    """CreatePermission (or ChannelBind), client -> peer and peer -> client through the relay."""
    async with (
        (client := await _client(run.timeout)).sock,
        (peer := await _client(run.timeout)).sock,
    ):
        turn = _TurnClient(client, run)
        relayed = _relayed(await turn.allocate())
        if relayed is None:
            return False, "no allocation"
        if channel:
            bound = await turn.request(
                Method.CHANNEL_BIND, ChannelNumber(0x4000), XorPeerAddress(peer.address)
            )
        else:
            bound = await turn.request(Method.CREATE_PERMISSION, XorPeerAddress(peer.address))
        outcome = await _exchange(turn, peer, relayed, channel=channel, bound=bound)
        await turn.request(Method.REFRESH, Lifetime(0))
    return outcome


async def _exchange(
    turn: _TurnClient, peer: _Client, relayed: Address, *, channel: bool, bound: StunMessage | None
) -> tuple[bool, str]:
    if bound is None or bound.message_class is not MessageClass.SUCCESS_RESPONSE:
        return False, f"permission or channel refused: {_code(bound)}"
    if channel:
        await turn.client.send(
            encode_channel_data(ChannelDataMessage(channel=0x4000, data=b"ping")), turn.server
        )
    else:
        indication = StunMessage(
            method=Method.SEND,
            message_class=MessageClass.INDICATION,
            transaction_id=new_transaction_id(os.urandom),
            attributes=(XorPeerAddress(peer.address), Data(b"ping")),
        )
        await turn.client.send(encode_message(indication, fingerprint=True), turn.server)
    got = await peer.receive()
    if got is None or got != (b"ping", relayed):
        return False, f"the peer got {got}, not b'ping' from {relayed}"
    await peer.send(b"pong", relayed)
    back = await turn.client.receive()
    if back is None:
        return False, "the peer's answer did not come back"
    if channel:
        ok = is_channel_data(back[0]) and decode_channel_data(back[0]).data == b"pong"
        return ok, "ChannelData both ways" if ok else f"not ChannelData pong: {back[0].hex()}"
    data = decode_message(back[0]).find(Data)
    ok = data is not None and data.value == b"pong"
    return ok, "Send and Data indications both ways" if ok else "no Data indication pong"


async def _turn_send(run: _Run) -> tuple[bool, str]:
    return await _relay_round_trip(run, channel=False)


async def _turn_channel(run: _Run) -> tuple[bool, str]:
    return await _relay_round_trip(run, channel=True)


async def _turn_no_permission(run: _Run) -> tuple[bool, str]:
    async with (
        (client := await _client(run.timeout)).sock,
        (peer := await _client(run.timeout)).sock,
    ):
        turn = _TurnClient(client, run)
        relayed = _relayed(await turn.allocate())
        if relayed is None:
            return False, "no allocation"
        await peer.send(b"unsolicited", relayed)
        stray = await client.receive()
        await turn.request(Method.REFRESH, Lifetime(0))
    return stray is None, "dropped" if stray is None else "data from a peer without permission"


async def _turn_delete(run: _Run) -> tuple[bool, str]:
    async with (client := await _client(run.timeout)).sock:
        turn = _TurnClient(client, run)
        if _relayed(await turn.allocate()) is None:
            return False, "no allocation"
        deleted = await turn.request(Method.REFRESH, Lifetime(0))
        after = await turn.request(Method.REFRESH)
    lifetime = None if deleted is None else deleted.find(Lifetime)
    if lifetime is None or lifetime.value != 0:
        return False, f"Refresh LIFETIME 0: {_code(deleted)}"
    ok = _code(after) == 437
    return ok, "deleted; a later Refresh gets 437" if ok else f"after delete: {_code(after)}"


#: The checks in report order: `catalog.TURN_RUNNER_CHECKS`, each with its test.
TURN_CHECKS: Final[list[tuple[str, str, _Check]]] = [
    (check, clause, test)
    for (clause, check), test in zip(
        TURN_RUNNER_CHECKS,
        (
            _stun_binding,
            _turn_challenge,
            _turn_wrong_password,
            _turn_allocate,
            _turn_replay,
            _turn_dont_fragment,
            _turn_even_port,
            _turn_send,
            _turn_channel,
            _turn_no_permission,
            _turn_delete,
        ),
        strict=True,
    )
]


async def run(target: str, *, timeout: float = 1.0) -> Report:
    """Check the STUN or TURN server at `target` and report per clause."""
    parsed = urlsplit(target)
    checks = TURN_CHECKS if parsed.scheme == "turn" else STUN_CHECKS
    return await _run_checks(target, timeout, checks)


def main(target: str, json_output: bool, *, timeout: float = 1.0) -> int:
    """CLI entry: 0 if every check passed, 1 if any failed, 2 if the target is refused."""
    try:
        parse_stun_target(target)
    except TargetError as exc:
        print(f"railgun-ref conformance run: {exc}", file=sys.stderr)
        return 2
    report = anyio.run(functools.partial(run, target, timeout=timeout))
    return print_report(report, json_output)
