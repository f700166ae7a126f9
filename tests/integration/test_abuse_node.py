"""The attacks of the abuse probe, on real sockets on 127.0.0.1 (ABUSE-1..3, DHT-5.5).

Each test replays one attack that worked before the limits existed:
300 identities from one IP:port filled a FIND_NODE answer; 520 idle TCP
connections made a legitimate stream PING get a reset; a 166-byte FIND_NODE
from any key drew a ~994-byte answer (6x); a PING flood starved the node's
known contacts.
"""

import random
import socket
import time

import anyio
import pytest

from railgun_ref.bench.flood import flood, signed_pings
from railgun_ref.dht.routing import Observed
from railgun_ref.dht.service import DhtCounter
from railgun_ref.drivers.udp import NodeHost
from railgun_ref.events import PongReceived
from railgun_ref.identity.keys import Identity
from railgun_ref.limits.buckets import LimitReason
from railgun_ref.node import AMPLIFICATION_SLACK, NodeCounter
from railgun_ref.rpc.requests import Channel
from railgun_ref.wire.envelope import decode_envelope, encode_envelope
from railgun_ref.wire.messages import Cookie, FindNode, MessageType, Nodes, parse_message

from .conftest import identity, serving, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


def _keys(count: int, seed: int) -> list[Identity]:
    rng = random.Random(seed)
    return [Identity.from_seed(rng.randbytes(32)) for _ in range(count)]


def _datagram(sender: Identity, kind: MessageType, body: dict[int, object], rid: int) -> bytes:
    return encode_envelope(
        sender, type=kind, request_id=rid, timestamp_ms=round(time.time() * 1000), body=body
    )


def _udp() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    return sock


async def _ask(sock: socket.socket, data: bytes, target: tuple[str, int]) -> bytes:
    """Send one datagram and wait (bounded) for the one answer."""
    sock.setblocking(False)
    sock.sendto(data, target)
    with anyio.fail_after(5):
        await anyio.wait_readable(sock)
    return sock.recv(65535)


async def test_one_address_with_300_identities_gets_one_place_in_find_node_answers() -> None:
    """DHT-5.5: an IP:port holds one identity in the table, however many keys it signs with."""
    victim = NodeHost(identity(1))
    friends = [NodeHost(identity(100 + i)) for i in range(20)]
    async with serving(victim, *friends):
        with _udp() as sybil:
            for rid, key in enumerate(_keys(300, seed=3)):
                sybil.sendto(_datagram(key, MessageType.PING, {0: b""}, rid + 1), victim.address)
            for friend in friends:
                assert isinstance(await friend.ping(victim.address), PongReceived)
            sybil_address = ("127.0.0.1", sybil.getsockname()[1])
            await wait_until(
                lambda: victim.node.counters.get_count(NodeCounter.PING_ANSWERED) >= 301
            )
        answer = victim.node.dht.handle_find_node(
            FindNode(target=bytes(32)), identity(2).node_id, Channel.DATAGRAM
        )
        at_sybil = [c for c in answer.contacts if c[1] == sybil_address]
        assert len(answer.contacts) == 20
        assert len(at_sybil) == 1
        refused = victim.node.dht.counters.get_count(
            DhtCounter.DIVERSITY_REFUSED, Observed.REFUSED_ENDPOINT
        )
        assert refused == 299


async def test_520_idle_connections_do_not_lock_out_a_stream_ping() -> None:
    """ABUSE-3.2: idle connections give up their slots to a newcomer."""
    victim, pinger = NodeHost(identity(1)), NodeHost(identity(2))
    async with serving(victim, pinger):
        idle = [await anyio.connect_tcp(*victim.address) for _ in range(520)]
        try:
            await wait_until(lambda: victim.open_connections >= 384, timeout=10)
            outcome = await pinger.ping(victim.address, channel=Channel.STREAM)
            assert isinstance(outcome, PongReceived)
            assert victim.open_connections <= 384
        finally:
            for stream in idle:
                await anyio.aclose_forcefully(stream)


async def test_a_find_node_from_an_unvalidated_address_is_not_amplified() -> None:
    """ABUSE-2.1/2.2: a fresh key's FIND_NODE gets a COOKIE no larger than it; the echo, NODES."""
    victim = NodeHost(identity(1))
    friends = [NodeHost(identity(100 + i)) for i in range(20)]
    async with serving(victim, *friends):
        for friend in friends:
            await friend.ping(victim.address)
        asker = _keys(1, seed=5)[0]
        with _udp() as sock:
            request = _datagram(asker, MessageType.FIND_NODE, {0: bytes(32)}, 1)
            answer = await _ask(sock, request, victim.address)
            assert len(answer) <= len(request)  # not even the slack is needed
            cookie = parse_message(decode_envelope(answer))
            assert isinstance(cookie, Cookie)
            echo = _datagram(asker, MessageType.FIND_NODE, {0: bytes(32), 1: cookie.cookie}, 2)
            full = parse_message(decode_envelope(await _ask(sock, echo, victim.address)))
        assert isinstance(full, Nodes) and len(full.contacts) == 20
        assert victim.node.counters.get_count(NodeCounter.COOKIE_SENT) == 1
        assert victim.node.counters.get_count(NodeCounter.COOKIE_ACCEPTED) == 1


async def test_a_forged_cookie_validates_nothing() -> None:
    """ABUSE-2.3: a wrong cookie is counted, and the answer is another COOKIE."""
    victim = NodeHost(identity(1))
    friends = [NodeHost(identity(100 + i)) for i in range(20)]
    async with serving(victim, *friends):
        for friend in friends:
            await friend.ping(victim.address)
        asker = _keys(1, seed=6)[0]
        with _udp() as sock:
            forged = _datagram(asker, MessageType.FIND_NODE, {0: bytes(32), 1: bytes(16)}, 1)
            answer = await _ask(sock, forged, victim.address)
        assert len(answer) <= len(forged) + AMPLIFICATION_SLACK
        assert isinstance(parse_message(decode_envelope(answer)), Cookie)
        assert victim.node.counters.get_count(NodeCounter.COOKIE_INVALID) == 1


async def test_known_contacts_are_answered_under_a_ping_flood() -> None:
    """ABUSE-1.1/1.3: a flood from one source is cut at its bucket; 20 contacts still get PONGs."""
    victim = NodeHost(identity(1))
    friends = [NodeHost(identity(100 + i)) for i in range(20)]
    async with serving(victim, *friends):
        for friend in friends:
            await friend.ping(victim.address)
        pings = signed_pings(3000, keys=4, seed=9, now=time.time())
        outcomes: list[object] = []

        async def contact(friend: NodeHost) -> None:
            for _ in range(5):
                outcomes.append(await friend.ping(victim.address))
                await anyio.sleep(0.1)

        async with anyio.create_task_group() as tg:
            for friend in friends:
                tg.start_soon(contact, friend)
            flooded = await flood(victim.address, pings, rate=3500, linger=1.0)
        answered = sum(isinstance(o, PongReceived) for o in outcomes)
        assert answered >= 0.99 * len(outcomes) == 99
        assert victim.node.counters.get_count(NodeCounter.LIMITED, LimitReason.SOURCE) > 0
        assert flooded.answered < flooded.sent  # the flooder was limited by design
