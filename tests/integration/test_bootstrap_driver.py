"""The bootstrap race on real sockets (BOOT-4): nodes, DNS, an IPFS gateway, all on 127.0.0.1.

A fresh client races the methods it has against bootstrap nodes that are
alive, dead (a closed port: the PING is never answered) or impostors (a node
answering under another key). Each scenario checks who won, by which method,
and the labelled reason of every failure, then that the peer cache learned
from it.
"""

import random
import re
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.abc
import pytest

from railgun_ref.bootstrap import manifest as m
from railgun_ref.bootstrap.race import Failure, Method, RaceConfig, RaceCounter, RaceFailed, RaceWon
from railgun_ref.client import connect
from railgun_ref.drivers.bootstrap import BootstrapSetup, DnsSrvSource, IpfsSource, run_bootstrap
from railgun_ref.drivers.bootstrap_proxies import SamBridge, TorProxy
from railgun_ref.drivers.bootstrap_sources import key_label
from railgun_ref.drivers.dns_server import DnsServer
from railgun_ref.drivers.ipfs_gateway import GatewayCounter, IpfsGateway
from railgun_ref.drivers.peer_cache import MAX_FAILURES, STALE_AFTER, PeerCache
from railgun_ref.drivers.sam_bridge import SamBridgeServer, SamCounter
from railgun_ref.drivers.udp import NodeHost
from railgun_ref.identity.keys import Identity
from railgun_ref.node import NodeConfig

from .conftest import identity, serving

pytestmark = [pytest.mark.integration, pytest.mark.anyio, pytest.mark.timeout(60)]

FAST = RaceConfig(attempt_timeout=0.6, proxy_attempt_timeout=0.8, fetch_timeout=1.0)
SRV_NAME = "_railgun._udp.bootstrap.test"
ROOT_KEY = Identity.from_seed(b"\x71" * 32)
MANIFEST_KEY = Identity.from_seed(b"\x72" * 32)


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def root(now: float) -> m.Root:
    return m.Root(
        version=1,
        expires_ms=int((now + 86_400) * 1000),
        root_keys=(ROOT_KEY.public_key,),
        root_threshold=1,
        manifest_keys=(MANIFEST_KEY.public_key,),
        manifest_threshold=1,
    )


def manifest_of(nodes: list[tuple[bytes, str]], now: float, *, version: int = 1) -> bytes:
    body = m.Manifest(
        version=version,
        expires_ms=int((now + 3600) * 1000),
        root_version=1,
        nodes=tuple(
            m.BootstrapNode(public_key=k, addresses=((m.AddressKind.UDP, a),)) for k, a in nodes
        ),
    ).body()
    return m.sign_document(body, [MANIFEST_KEY])


@dataclass
class Net:
    client: NodeHost
    alive: NodeHost
    other: NodeHost  #: alive too, but never listed under its own key (the impostor)
    dns: DnsServer
    gateway: IpfsGateway

    def addr(self, host: NodeHost) -> str:
        return f"{host.address[0]}:{host.address[1]}"


@asynccontextmanager
async def network() -> AsyncIterator[Net]:
    client = NodeHost(identity(1), config=NodeConfig(request_timeout=0.5))
    alive, other = NodeHost(identity(10)), NodeHost(identity(11))
    dns, gateway = DnsServer(), IpfsGateway()
    async with serving(client, alive, other), anyio.create_task_group() as tg:
        await tg.start(dns.run)
        await tg.start(gateway.run)
        yield Net(client, alive, other, dns, gateway)
        tg.cancel_scope.cancel()


def dead_key() -> bytes:
    return identity(20).public_key


def failures(result: RaceWon | RaceFailed) -> set[tuple[Method, Failure | None]]:
    return {(f.method, f.failure) for f in result.failures}


async def test_hardcoded_list_wins_past_a_dead_node_and_an_impostor(tmp_path: Path) -> None:
    async with network() as net:
        now = time.time()
        listed = [
            (dead_key(), f"127.0.0.1:{closed_port()}"),
            (identity(12).public_key, net.addr(net.other)),  # answers, but as identity(11)
            (identity(10).public_key, net.addr(net.alive)),
        ]
        hardcoded = m.verify_manifest(root(now), manifest_of(listed, now), now=now)
        cache = PeerCache(tmp_path / "peers.db")
        setup = BootstrapSetup(cache=cache, hardcoded=hardcoded, config=FAST)
        result, race = await run_bootstrap(net.client, setup)
        assert isinstance(result, RaceWon)
        assert result.candidate.method is Method.HARDCODED
        assert result.candidate.public_key == identity(10).public_key
        assert (Method.HARDCODED, Failure.WRONG_KEY) in failures(result)
        assert race.counters.get_count(RaceCounter.ATTEMPT_FAILED, Failure.WRONG_KEY) == 1
        assert (Method.CACHED, Failure.NO_CANDIDATES) in failures(result)
        # The cache learned the winner: the next race starts with it, alone, and wins.
        again, race2 = await run_bootstrap(net.client, setup)
        assert isinstance(again, RaceWon) and again.candidate.method is Method.CACHED
        assert again.candidate.last_good
        assert race2.counters.total(RaceCounter.ATTEMPT_STARTED) == 1
        cache.close()


async def test_only_dns_srv_survives_wrong_cid_and_garbage_targets() -> None:
    """BOOT-3.6, BOOT-4.5: wrong CID and untrusted or garbage SRV targets are refused."""
    async with network() as net:
        now = time.time()
        alive_key = identity(10).public_key
        hardcoded = m.verify_manifest(
            root(now), manifest_of([(alive_key, f"127.0.0.1:{closed_port()}")], now), now=now
        )  # the listed address is blocked; the key is still the one DNS may point to
        good = manifest_of([(alive_key, net.addr(net.alive))], now)
        cid_text = net.gateway.add(good)
        net.gateway.serve_wrong(cid_text, good + b"tampered")
        target = f"{key_label(alive_key)}.nodes.bootstrap.test"
        net.dns.register(target, net.alive.address[0])
        garbage = [(0, 1, 7000, "not-a-key.bootstrap.test"), (0, 1, 7000, ".")]
        stranger = f"{key_label(identity(30).public_key)}.nodes.bootstrap.test"
        net.dns.register(stranger, "127.0.0.1")
        records = [*garbage, (1, 1, net.other.address[1], stranger)]
        net.dns.register_srv(SRV_NAME, [*records, (2, 5, net.alive.address[1], target)])
        setup = BootstrapSetup(
            hardcoded=hardcoded,
            ipfs=IpfsSource(cid=cid_text, gateway=net.gateway.address, root=root(now)),
            dns_srv=DnsSrvSource(name=SRV_NAME, nameserver=net.dns.address),
            config=FAST,
        )
        result, race = await run_bootstrap(net.client, setup, rng=random.Random(7))
    assert isinstance(result, RaceWon), result
    assert result.candidate.method is Method.DNS_SRV
    assert result.candidate.address == net.addr(net.alive)
    assert (Method.IPFS, Failure.WRONG_CID) in failures(result)
    assert (Method.HARDCODED, Failure.GENERIC_TIMEOUT) in failures(result)
    assert race.counters.get_count(RaceCounter.FETCH_FAILED, Failure.WRONG_CID) == 1
    assert net.gateway.counters.get_count(GatewayCounter.SERVED) == 1


async def test_ipfs_manifest_wins_and_a_rolled_back_one_is_refused() -> None:
    async with network() as net:
        now = time.time()
        good = manifest_of([(identity(10).public_key, net.addr(net.alive))], now)
        cid_text = net.gateway.add(good)
        ipfs = IpfsSource(cid=cid_text, gateway=net.gateway.address, root=root(now))
        result, _ = await run_bootstrap(net.client, BootstrapSetup(ipfs=ipfs, config=FAST))
        assert isinstance(result, RaceWon) and result.candidate.method is Method.IPFS
        stale = IpfsSource(
            cid=cid_text, gateway=net.gateway.address, root=root(now), last_version=2
        )
        refused, race = await run_bootstrap(net.client, BootstrapSetup(ipfs=stale, config=FAST))
        missing = IpfsSource(
            cid=net.gateway.add(b"x")[:-4] + "aaaa", gateway=net.gateway.address, root=root(now)
        )
        lost, _ = await run_bootstrap(net.client, BootstrapSetup(ipfs=missing, config=FAST))
    assert isinstance(refused, RaceFailed)
    assert failures(refused) == {(Method.IPFS, Failure.MANIFEST_REJECTED)}
    assert race.counters.get_count(RaceCounter.SOURCE_FAILED, Method.IPFS) == 1
    assert isinstance(lost, RaceFailed)
    assert failures(lost) <= {(Method.IPFS, Failure.HTTP_ERROR), (Method.IPFS, Failure.WRONG_CID)}


async def test_dns_failures_are_labelled() -> None:
    async with network() as net:
        now = time.time()
        hardcoded = m.verify_manifest(root(now), manifest_of([], now), now=now)
        setup = BootstrapSetup(
            hardcoded=hardcoded,
            dns_srv=DnsSrvSource(name="_nothing._udp.bootstrap.test", nameserver=net.dns.address),
            config=FAST,
        )
        result, _ = await run_bootstrap(net.client, setup)
    assert isinstance(result, RaceFailed)
    assert failures(result) == {
        (Method.HARDCODED, Failure.NO_CANDIDATES),
        (Method.DNS_SRV, Failure.DNS_NXDOMAIN),
    }


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@asynccontextmanager
async def socks5_proxy(tmp_path: Path, routes: dict[str, int]) -> AsyncIterator[tuple[str, int]]:
    """pproxy (a SOCKS5 server from PyPI) on loopback: each onion name tunnels to a local port."""
    port = free_tcp_port()
    argv = [sys.executable, "-m", "pproxy", "-l", f"socks5://127.0.0.1:{port}"]
    for n, (name, target) in enumerate(routes.items()):
        rules = tmp_path / f"rules-{n}"
        rules.write_text(re.escape(name) + "\n", encoding="utf-8")
        argv += ["-r", f"tunnel://127.0.0.1:{target}?{rules}"]
    process = await anyio.open_process(argv)
    try:
        with anyio.fail_after(10):
            while True:
                try:
                    await (await anyio.connect_tcp("127.0.0.1", port)).aclose()
                    break
                except OSError:
                    await anyio.sleep(0.05)
        yield ("127.0.0.1", port)
    finally:
        process.terminate()
        await process.wait()


async def test_tor_onion_wins_through_a_socks5_proxy(tmp_path: Path) -> None:
    """BOOT-4.5: onion addresses are PINGed through SOCKS5; a wrong key and a dead name fail."""
    async with network() as net:
        now = time.time()
        alive_key = identity(10).public_key
        onions = ["imp" + "b" * 53, "dead" + "c" * 52, "alive" + "a" * 51]
        keys = [identity(12).public_key, identity(13).public_key, alive_key]
        listed = [
            (key, f"127.0.0.1:{closed_port()}", f"{onion}.onion:7000")
            for key, onion in zip(keys, onions, strict=True)
        ]  # the impostor first, so that its wrong key is seen before the race is won
        body = m.Manifest(
            version=1,
            expires_ms=int((now + 3600) * 1000),
            root_version=1,
            nodes=tuple(
                m.BootstrapNode(
                    public_key=k,
                    addresses=((m.AddressKind.UDP, udp), (m.AddressKind.ONION, onion)),
                )
                for k, udp, onion in listed
            ),
        ).body()
        hardcoded = m.verify_manifest(root(now), m.sign_document(body, [MANIFEST_KEY]), now=now)
        routes = {listed[2][2].split(":")[0]: net.alive.address[1]}
        routes[listed[0][2].split(":")[0]] = net.other.address[1]
        async with socks5_proxy(tmp_path, routes) as proxy:
            setup = BootstrapSetup(hardcoded=hardcoded, tor=TorProxy(address=proxy), config=FAST)
            result, race = await run_bootstrap(net.client, setup)
    assert isinstance(result, RaceWon), result
    assert result.candidate.method is Method.TOR
    assert result.candidate.public_key == alive_key
    tor_failures = {f.failure for f in result.failures if f.method is Method.TOR}
    assert {Failure.WRONG_KEY, Failure.PROXY_ERROR} <= tor_failures
    assert race.counters.get_count(RaceCounter.ATTEMPT_VERIFIED, Method.TOR) == 1


async def test_a_stalled_proxy_times_out_and_the_race_fails_with_reasons() -> None:
    async def stall(stream: anyio.abc.SocketStream) -> None:
        await anyio.sleep(30)

    async with network() as net, anyio.create_task_group() as tg:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        tg.start_soon(listener.serve, stall)
        now = time.time()
        node = m.BootstrapNode(
            public_key=identity(10).public_key,
            addresses=((m.AddressKind.ONION, "x" * 56 + ".onion:7000"),),
        )
        body = m.Manifest(
            version=1, expires_ms=int((now + 60) * 1000), root_version=1, nodes=(node,)
        ).body()
        hardcoded = m.verify_manifest(root(now), m.sign_document(body, [MANIFEST_KEY]), now=now)
        proxy = ("127.0.0.1", listener.extra(anyio.abc.SocketAttribute.local_port))
        setup = BootstrapSetup(hardcoded=hardcoded, tor=TorProxy(address=proxy), config=FAST)
        result, _ = await run_bootstrap(net.client, setup)
        tg.cancel_scope.cancel()
    assert isinstance(result, RaceFailed)
    assert failures(result) == {
        (Method.HARDCODED, Failure.NO_CANDIDATES),
        (Method.TOR, Failure.GENERIC_TIMEOUT),
    }


async def test_i2p_wins_through_a_sam_bridge() -> None:
    """BOOT-4.5: I2P destinations are PINGed over SAM v3 streams; unknown names fail."""
    async with network() as net, anyio.create_task_group() as tg:
        bridge = SamBridgeServer()
        await tg.start(bridge.run)
        now = time.time()
        alive_key = identity(10).public_key
        names = ["u" * 52 + ".b32.i2p", "v" * 52 + ".b32.i2p", "w" * 52 + ".b32.i2p"]
        bridge.route(names[0], net.other.address[1])  # the impostor
        bridge.route(names[2], net.alive.address[1])  # names[1] is unknown to the bridge
        keys = [identity(12).public_key, identity(13).public_key, alive_key]
        nodes = tuple(
            m.BootstrapNode(public_key=k, addresses=((m.AddressKind.I2P, f"{n}:7000"),))
            for k, n in zip(keys, names, strict=True)
        )
        body = m.Manifest(
            version=1, expires_ms=int((now + 60) * 1000), root_version=1, nodes=nodes
        ).body()
        hardcoded = m.verify_manifest(root(now), m.sign_document(body, [MANIFEST_KEY]), now=now)
        setup = BootstrapSetup(
            hardcoded=hardcoded, i2p=SamBridge(address=bridge.address), config=FAST
        )
        result, race = await run_bootstrap(net.client, setup)
        tg.cancel_scope.cancel()
    assert isinstance(result, RaceWon), result
    assert result.candidate.method is Method.I2P and result.candidate.public_key == alive_key
    i2p_failures = {f.failure for f in result.failures if f.method is Method.I2P}
    assert i2p_failures == {Failure.WRONG_KEY, Failure.PROXY_ERROR}
    assert bridge.counters.get_count(SamCounter.STREAMS) >= 2
    assert race.counters.get_count(RaceCounter.ATTEMPT_VERIFIED, Method.I2P) == 1


async def test_a_fresh_client_joins_through_the_race(tmp_path: Path) -> None:
    """BOOT-4.1: `client.connect(bootstrap_setup=...)` with no address given: the hard-coded
    list's first node is dead, the second is a running client; the DHT is joined through it,
    and the client's own peer cache (in its data directory) remembers it."""
    alice_identity = identity(40)
    async with connect(data_dir=tmp_path / "a", identity=alice_identity) as alice:
        now = time.time()
        listed = [
            (dead_key(), f"127.0.0.1:{closed_port()}"),
            (alice_identity.public_key, f"{alice.address[0]}:{alice.address[1]}"),
        ]
        hardcoded = m.verify_manifest(root(now), manifest_of(listed, now), now=now)
        setup = BootstrapSetup(hardcoded=hardcoded, config=FAST)
        async with connect(data_dir=tmp_path / "b", bootstrap_setup=setup) as bob:
            dht = bob.transport.host.node.dht
            with anyio.fail_after(20):  # the race's winner leads the bootstrap addresses
                while not bob.transport.bootstrap_peers:
                    await anyio.sleep(0.05)
            assert bob.transport.bootstrap_peers[0] == alice.address
            with anyio.fail_after(20):
                while alice_identity.node_id not in {c.node_id for c in dht.routing.contacts()}:
                    await anyio.sleep(0.05)
    cache = PeerCache(tmp_path / "b" / "bootstrap-peers.db")
    assert [p.public_key for p in cache.peers()] == [alice_identity.public_key]
    cache.close()


async def test_a_lying_proxy_and_a_garbage_gateway_are_labelled(tmp_path: Path) -> None:
    """BOOT-4.5, BOOT-3.6: a SOCKS5 route to something that is not a node, and a "gateway" that
    answers garbage, each fail with their label; nothing crashes and the race ends."""

    async def garbage(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await stream.send(b"STATUS RESULT=I2P_ERROR\n\x00\x01garbage")

    async with network() as net, anyio.create_task_group() as tg:
        liar = await anyio.create_tcp_listener(local_host="127.0.0.1")
        tg.start_soon(liar.serve, garbage)
        liar_port = liar.extra(anyio.abc.SocketAttribute.local_port)
        now = time.time()
        onion = "liar" + "d" * 52 + ".onion"
        node = m.BootstrapNode(
            public_key=identity(10).public_key,
            addresses=((m.AddressKind.ONION, f"{onion}:7000"),),
        )
        body = m.Manifest(
            version=1, expires_ms=int((now + 60) * 1000), root_version=1, nodes=(node,)
        ).body()
        hardcoded = m.verify_manifest(root(now), m.sign_document(body, [MANIFEST_KEY]), now=now)
        async with socks5_proxy(tmp_path, {onion: liar_port}) as proxy:
            setup = BootstrapSetup(
                hardcoded=hardcoded,
                tor=TorProxy(address=proxy),
                ipfs=IpfsSource(
                    cid=net.gateway.add(b"x"), gateway=("127.0.0.1", liar_port), root=root(now)
                ),
                config=FAST,
            )
            result, race = await run_bootstrap(net.client, setup)
        tg.cancel_scope.cancel()
    assert isinstance(result, RaceFailed)
    assert failures(result) == {
        (Method.HARDCODED, Failure.NO_CANDIDATES),
        (Method.TOR, Failure.INVALID_RESPONSE),
        (Method.IPFS, Failure.HTTP_ERROR),
    }
    assert race.counters.get_count(RaceCounter.ATTEMPT_FAILED, Failure.INVALID_RESPONSE) == 1


async def test_a_rolled_back_manifest_is_refused_after_a_restart(tmp_path: Path) -> None:
    """BOOT-1.5, BOOT-3.3: version 3 was accepted; after a restart a gateway offering
    version 2 is refused, though the caller gave no last version."""
    async with network() as net:
        now = time.time()
        nodes = [(identity(10).public_key, net.addr(net.alive))]
        new = net.gateway.add(manifest_of(nodes, now, version=3))
        old = net.gateway.add(manifest_of(nodes, now, version=2))
        cache = PeerCache(tmp_path / "peers.db")
        first = IpfsSource(cid=new, gateway=net.gateway.address, root=root(now))
        result, _ = await run_bootstrap(net.client, BootstrapSetup(cache=cache, ipfs=first))
        assert isinstance(result, RaceWon)
        cache.close()
        cache = PeerCache(tmp_path / "peers.db")  # a restart
        for _ in range(MAX_FAILURES):  # the peer itself ages out, so the fetch decides
            cache.record_failure(identity(10).public_key, now=now + STALE_AFTER + 1)
        assert cache.peers() == [] and cache.manifest_version() == 3
        stale = IpfsSource(cid=old, gateway=net.gateway.address, root=root(now))
        setup = BootstrapSetup(cache=cache, ipfs=stale, config=FAST)
        refused, _ = await run_bootstrap(net.client, setup)
        cache.close()
    assert isinstance(refused, RaceFailed)
    ipfs_failures = {f.failure for f in refused.failures if f.method is Method.IPFS}
    assert ipfs_failures == {Failure.MANIFEST_REJECTED}
