"""A cached onion or I2P peer is raced the way it was reached (BOOT-4.8), on real sockets.

The first race of a fresh client is won through the SAM v3 bridge (a local
bridge, `drivers.sam_bridge`, in front of a running node). The peer cache
then holds the winner as an I2P address; the next race, with nothing but
that cache and the bridge, reaches it through the bridge again and wins as
a cached peer. Without a bridge the cached I2P peer fails as ``unreachable``
-- it is never PINGed as if its I2P name were a UDP host.
"""

import time
from pathlib import Path

import anyio
import pytest

from railgun_ref.bootstrap import manifest as m
from railgun_ref.bootstrap.race import Failure, Method, RaceConfig, RaceFailed, RaceWon
from railgun_ref.drivers.bootstrap import BootstrapSetup, run_bootstrap
from railgun_ref.drivers.bootstrap_proxies import SamBridge
from railgun_ref.drivers.peer_cache import PeerCache
from railgun_ref.drivers.sam_bridge import SamBridgeServer, SamCounter
from railgun_ref.drivers.udp import NodeHost
from railgun_ref.identity.keys import Identity
from railgun_ref.node import NodeConfig

from .conftest import identity, serving

pytestmark = [pytest.mark.integration, pytest.mark.anyio, pytest.mark.timeout(60)]

FAST = RaceConfig(attempt_timeout=0.6, proxy_attempt_timeout=1.5, fetch_timeout=1.0)
ROOT_KEY = Identity.from_seed(b"\x81" * 32)
MANIFEST_KEY = Identity.from_seed(b"\x82" * 32)
NAME = "k" * 52 + ".b32.i2p"


def shipped_list(node_key: bytes, now: float) -> m.Manifest:
    """A hard-coded list naming one node by its I2P destination only."""
    root = m.Root(
        version=1,
        expires_ms=int((now + 86_400) * 1000),
        root_keys=(ROOT_KEY.public_key,),
        root_threshold=1,
        manifest_keys=(MANIFEST_KEY.public_key,),
        manifest_threshold=1,
    )
    body = m.Manifest(
        version=1,
        expires_ms=int((now + 3600) * 1000),
        root_version=1,
        nodes=(
            m.BootstrapNode(public_key=node_key, addresses=((m.AddressKind.I2P, f"{NAME}:7000"),)),
        ),
    ).body()
    return m.verify_manifest(root, m.sign_document(body, [MANIFEST_KEY]), now=now)


async def test_a_cached_i2p_winner_is_raced_through_the_bridge_again(tmp_path: Path) -> None:
    """BOOT-4.8: cached as I2P, raced through the bridge as a cached peer, never as UDP."""
    client = NodeHost(identity(1), config=NodeConfig(request_timeout=0.5))
    node = NodeHost(identity(10))
    cache = PeerCache(tmp_path / "peers.db")
    async with serving(client, node), anyio.create_task_group() as tg:
        bridge = SamBridgeServer()
        await tg.start(bridge.run)
        bridge.route(NAME, node.address[1])
        sam = SamBridge(address=bridge.address)
        shipped = shipped_list(identity(10).public_key, time.time())
        first, _ = await run_bootstrap(
            client, BootstrapSetup(cache=cache, hardcoded=shipped, i2p=sam, config=FAST)
        )
        assert isinstance(first, RaceWon), first
        assert first.candidate.method is Method.I2P
        (kept,) = cache.peers()
        assert (kept.kind, kept.address) == (m.AddressKind.I2P, f"{NAME}:7000")

        streams = bridge.counters.get_count(SamCounter.STREAMS)
        again, _ = await run_bootstrap(client, BootstrapSetup(cache=cache, i2p=sam, config=FAST))
        assert isinstance(again, RaceWon), again
        assert again.candidate.method is Method.CACHED
        assert again.candidate.reached_by is m.AddressKind.I2P
        assert bridge.counters.get_count(SamCounter.STREAMS) > streams  # through the bridge

        no_bridge, _ = await run_bootstrap(client, BootstrapSetup(cache=cache, config=FAST))
        tg.cancel_scope.cancel()
    cache.close()
    assert isinstance(no_bridge, RaceFailed)
    assert {(f.method, f.failure) for f in no_bridge.failures} == {
        (Method.CACHED, Failure.UNREACHABLE)
    }
