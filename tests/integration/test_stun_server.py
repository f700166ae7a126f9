"""The RFC 5780 STUN server on 127.0.0.1 + 127.0.0.2, NAT detection over real sockets, and
interoperability with aioice's STUN implementation (the one aiortc uses)."""

import asyncio
import random
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import anyio
import pytest
import trio
import trio.testing

from railgun_ref.capacity.nat import NatBehaviour, NatDetectionConfig, NatType
from railgun_ref.core.ids import Address
from railgun_ref.drivers.stun_server import StunServer, detect_nat_type, serve_stun
from railgun_ref.stun.codec import (
    ChangeRequest,
    ErrorCodeAttribute,
    Fingerprint,
    IceControlling,
    MessageClass,
    MessageIntegrity,
    Method,
    OtherAddress,
    Priority,
    ResponseOrigin,
    Software,
    StunMessage,
    UseCandidate,
    Username,
    XorMappedAddress,
    binding_request,
    check_integrity,
    decode_message,
    encode_message,
)
from railgun_ref.stun.server import StunCounter

from .conftest import wait_until

aioice_stun = pytest.importorskip("aioice.stun")

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

#: Bounds every wait on a real socket.
TIMEOUT = 5.0


@asynccontextmanager
async def stun_server(**options: Any) -> AsyncIterator[StunServer]:
    async with anyio.create_task_group() as tg:
        server: StunServer = await tg.start(partial(serve_stun, **options))
        yield server
        tg.cancel_scope.cancel()


async def ask(
    request: StunMessage, server_address: Address, *, fingerprint: bool = False
) -> tuple[StunMessage, Address]:
    """Send one request from a fresh 127.0.0.1 socket; return the decoded answer and its source."""
    async with await anyio.create_udp_socket(family=socket.AF_INET, local_host="127.0.0.1") as sock:
        await sock.sendto(encode_message(request, fingerprint=fingerprint), *server_address)
        with anyio.fail_after(TIMEOUT):
            data, (host, port) = await sock.receive()
    return decode_message(data), (host, port)


# ------------------------------------------------------------------ the server


async def test_server_binds_four_sockets_on_two_addresses() -> None:
    async with stun_server() as server:
        addresses = server.addresses
        assert addresses.primary_host == "127.0.0.1"
        assert addresses.alternate_host == "127.0.0.2"
        assert addresses.primary_port != addresses.alternate_port
        for local in addresses.all():
            response, source = await ask(binding_request(random.randbytes(12)), local)
            assert source == local
            assert response.find(ResponseOrigin) == ResponseOrigin(local)
            assert response.find(OtherAddress) == OtherAddress(addresses.other(local))
        assert server.core.counters.get_count(StunCounter.BINDING_ANSWERED) == 4


@pytest.mark.parametrize(("change_ip", "change_port"), [(True, True), (True, False), (False, True)])
async def test_change_request_answers_from_the_other_socket(
    change_ip: bool, change_port: bool
) -> None:
    """RFC 5780 §6.1: the datagram really leaves from the changed IP and/or port."""
    async with stun_server() as server:
        expected = server.addresses.changed(
            server.primary, change_ip=change_ip, change_port=change_port
        )
        change = ChangeRequest(change_ip=change_ip, change_port=change_port)
        response, source = await ask(binding_request(random.randbytes(12), change), server.primary)
    assert source == expected != server.primary
    assert response.find(ResponseOrigin) == ResponseOrigin(expected)
    assert response.message_class is MessageClass.SUCCESS_RESPONSE


async def test_bad_packets_are_counted_and_the_server_goes_on() -> None:
    async with stun_server() as server:
        async with await anyio.create_udp_socket(
            family=socket.AF_INET, local_host="127.0.0.1"
        ) as sock:
            for local in server.addresses.all():
                # (not b"": anyio's asyncio backend never delivers an empty datagram)
                for junk in (b"\x00", b"GET / HTTP/1.1\r\n\r\n", bytes(20), bytes(1500)):
                    await sock.sendto(junk, *local)
        await wait_until(
            lambda: server.core.counters.get_count(StunCounter.MALFORMED) == 16, timeout=TIMEOUT
        )
        response, _ = await ask(binding_request(random.randbytes(12)), server.primary)
        assert response.find(XorMappedAddress) is not None
        assert server.core.counters.get_count(StunCounter.MALFORMED) == 16


async def test_detect_nat_type_on_plain_localhost_is_open() -> None:
    """The issue's acceptance test: no NAT between 127.0.0.1 and the server -> "open"."""
    async with stun_server() as server:
        with anyio.fail_after(TIMEOUT):
            told = await detect_nat_type(server.primary, server.alternate)
            learned = await detect_nat_type(server.primary, None)  # from OTHER-ADDRESS
    for outcome in (told, learned):
        assert outcome.nat_type is NatType.OPEN
        assert outcome.behind_nat is False
        assert outcome.mapping is outcome.filtering is NatBehaviour.ENDPOINT_INDEPENDENT
        assert outcome.mapped_address == outcome.local_address
        assert outcome.local_address[0] == "127.0.0.1"
        assert outcome.alternate_address == server.alternate
        assert outcome.requests_sent == 2


async def test_single_address_server_cannot_classify() -> None:
    async with stun_server(alternate_host=None) as server:
        assert server.alternate is None and len(server.addresses.all()) == 1
        with anyio.fail_after(TIMEOUT):
            outcome = await detect_nat_type(server.primary)
    assert outcome.nat_type is NatType.UNKNOWN
    assert outcome.behind_nat is False


async def test_nothing_listening_is_udp_blocked() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        silent: Address = probe.getsockname()
        config = NatDetectionConfig(rto=0.05, max_transmissions=2)
        with anyio.fail_after(TIMEOUT):
            outcome = await detect_nat_type(silent, config=config)
    assert outcome.nat_type is NatType.UDP_BLOCKED
    assert outcome.requests_sent == 2


def test_udp_blocked_in_virtual_time() -> None:
    """Under trio's MockClock the default 3.5 s of silence costs no wall time."""

    async def main() -> tuple[NatType, float]:
        silent = await anyio.create_udp_socket(family=socket.AF_INET, local_host="127.0.0.1")
        async with silent:
            port = silent.extra(anyio.abc.SocketAttribute.local_port)
            started = trio.current_time()
            outcome = await detect_nat_type(("127.0.0.1", port))
            return outcome.nat_type, trio.current_time() - started

    nat_type, elapsed = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert nat_type is NatType.UDP_BLOCKED
    assert elapsed == pytest.approx(0.5 + 1.0 + 2.0)


async def test_loopback_only() -> None:
    with pytest.raises(ValueError):
        StunServer(primary_host="0.0.0.0")
    with pytest.raises(ValueError):
        StunServer(alternate_host="192.0.2.1")
    with pytest.raises(ValueError):
        await detect_nat_type(("192.0.2.1", 3478))
    with pytest.raises(ValueError):
        await detect_nat_type(("127.0.0.1", 3478), local_host="0.0.0.0")


# ------------------------------------------------------------------ aioice interop


class _AioiceClient(asyncio.DatagramProtocol):
    """The minimum aioice needs to run a `stun.Transaction` on a loopback socket."""

    def __init__(self) -> None:
        self.transport: Any = None
        self.transactions: dict[bytes, Any] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        message = aioice_stun.parse_message(data)
        transaction = self.transactions.get(message.transaction_id)
        if transaction is not None:
            transaction.response_received(message, addr)

    def send_stun(self, message: Any, addr: tuple[str, int]) -> None:
        self.transport.sendto(bytes(message), addr)


async def test_aioice_client_gets_xor_mapped_address_from_our_server() -> None:
    """aioice's own Binding transaction (as aiortc runs it) against our server."""
    loop = asyncio.get_running_loop()
    async with stun_server() as server:
        transport, client = await loop.create_datagram_endpoint(
            _AioiceClient, local_addr=("127.0.0.1", 0)
        )
        try:
            local = transport.get_extra_info("sockname")
            results = {}
            for name, change in (("plain", None), ("changed", 0x06)):
                request = aioice_stun.Message(
                    message_method=aioice_stun.Method.BINDING,
                    message_class=aioice_stun.Class.REQUEST,
                )
                if change is not None:
                    request.attributes["CHANGE-REQUEST"] = change
                request.add_fingerprint()
                transaction = aioice_stun.Transaction(request, server.primary, client)
                client.transactions[request.transaction_id] = transaction
                with anyio.fail_after(TIMEOUT):
                    results[name] = await transaction.run()
        finally:
            transport.close()
    response, source = results["plain"]
    assert response.message_class == aioice_stun.Class.RESPONSE
    assert response.attributes["XOR-MAPPED-ADDRESS"] == local
    assert response.attributes["RESPONSE-ORIGIN"] == server.primary == source
    assert response.attributes["OTHER-ADDRESS"] == server.alternate
    assert response.attributes["SOFTWARE"] == "railgun-ref"
    assert "FINGERPRINT" in response.attributes  # mirrored, and aioice verified it
    changed, changed_source = results["changed"]
    assert changed.attributes["XOR-MAPPED-ADDRESS"] == local
    assert changed_source == server.alternate == changed.attributes["RESPONSE-ORIGIN"]


def _aioice_request(key: bytes) -> bytes:
    message = aioice_stun.Message(
        message_method=aioice_stun.Method.BINDING,
        message_class=aioice_stun.Class.REQUEST,
        transaction_id=bytes(range(12)),
    )
    message.attributes["USERNAME"] = "remote:local"
    message.attributes["PRIORITY"] = 1853824767
    message.attributes["ICE-CONTROLLING"] = 0x1122334455667788
    message.attributes["USE-CANDIDATE"] = None
    message.attributes["SOFTWARE"] = "aioice"
    message.add_message_integrity(key)  # adds MESSAGE-INTEGRITY and FINGERPRINT
    return bytes(message)


async def test_our_codec_parses_aioice_bytes_and_rebuilds_them_exactly() -> None:
    """Byte for byte: decode what aioice encodes, verify its integrity, re-encode the same."""
    key = b"password-of-twenty-two"
    data = _aioice_request(key)
    message = decode_message(data)  # FINGERPRINT verified here
    assert message.attributes[:5] == (
        Username("remote:local"),
        Priority(1853824767),
        IceControlling(0x1122334455667788),
        UseCandidate(),
        Software("aioice"),
    )
    assert check_integrity(message, key)
    bare = StunMessage(
        method=message.method,
        message_class=message.message_class,
        transaction_id=message.transaction_id,
        attributes=message.attributes[:5],
    )
    assert encode_message(bare, integrity_key=key, fingerprint=True) == data


async def test_aioice_parses_what_our_codec_encodes() -> None:
    key = b"shared secret"
    ours = StunMessage(
        method=Method.BINDING,
        message_class=MessageClass.ERROR_RESPONSE,
        transaction_id=bytes(range(12)),
        attributes=(
            ErrorCodeAttribute(487, "Role Conflict"),
            XorMappedAddress(("2001:db8::7", 40000)),
            OtherAddress(("127.0.0.2", 3479)),
            Software("railgun-ref"),
        ),
    )
    data = encode_message(ours, integrity_key=key, fingerprint=True)
    parsed = aioice_stun.parse_message(data)  # raises if its FINGERPRINT check fails
    assert parsed.message_class == aioice_stun.Class.ERROR
    assert parsed.attributes["ERROR-CODE"] == (487, "Role Conflict")
    assert parsed.attributes["XOR-MAPPED-ADDRESS"] == ("2001:db8::7", 40000)
    assert parsed.attributes["OTHER-ADDRESS"] == ("127.0.0.2", 3479)
    assert parsed.check_message_integrity(key)
    assert not parsed.check_message_integrity(b"other")
    assert bytes(parsed) == data  # aioice re-serialises our message unchanged
    assert {type(a) for a in decode_message(data).attributes} >= {MessageIntegrity, Fingerprint}
