"""DHT-4.5: records a node acknowledged survive a kill -9 and a restart (SQLite)."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from railgun_ref.dht.keys import KeyType, derive_key
from railgun_ref.dht.records import sign_record
from railgun_ref.drivers.sqlite_store import SqliteNodeStore
from railgun_ref.drivers.udp import DriverCounter, NodeHost
from railgun_ref.identity.keys import Identity
from railgun_ref.node import NodeConfig

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

CONFIG = NodeConfig(request_timeout=1.0)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _start_node(data_dir: Path) -> tuple[subprocess.Popen[str], tuple[str, int]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "railgun_ref.cli", "node", "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert first.startswith("railgun-ref node listening udp://"), first
    host, port = first.split("udp://")[1].split()[0].rsplit(":", 1)
    return proc, (host, int(port))


async def test_record_survives_kill_and_restart(tmp_path: Path) -> None:
    """DHT-4.5: STORED was acknowledged, then SIGKILL: the restarted node still serves it."""
    data_dir = tmp_path / "node"
    proc, address = _start_node(data_dir)
    try:
        publisher = NodeHost(Identity.from_seed(bytes([7]) * 32), config=CONFIG)
        async with anyio.create_task_group() as tg:
            await tg.start(publisher.run)
            await publisher.bootstrap([address])
            stored = await publisher.store(KeyType.RENDEZVOUS, b"mailbox", b"kept")
            assert stored.accepted >= 2  # the node and the publisher itself
            tg.cancel_scope.cancel()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        identity_before = (data_dir / "identity").read_bytes()

        proc, address = _start_node(data_dir)
        assert (data_dir / "identity").read_bytes() == identity_before
        reader = NodeHost(Identity.from_seed(bytes([9]) * 32), config=CONFIG)
        async with anyio.create_task_group() as tg:
            await tg.start(reader.run)
            await reader.bootstrap([address])
            got = await reader.get(derive_key(KeyType.RENDEZVOUS, b"mailbox"))
            tg.cancel_scope.cancel()
        assert got.found
        assert len(got.records) == 1
        assert b"kept" in got.records[0]
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=10)


async def test_restart_in_process_restores_records_and_peers(tmp_path: Path) -> None:
    """DHT-4.5: a NodeHost re-created on the same store holds the same records."""
    store_path = tmp_path / "a.sqlite3"
    identity = Identity.from_seed(bytes([1]) * 32)
    store = SqliteNodeStore(store_path)
    first = NodeHost(identity, config=CONFIG, store=store)
    other = NodeHost(Identity.from_seed(bytes([2]) * 32), config=CONFIG)
    async with anyio.create_task_group() as tg:
        await tg.start(first.run)
        await tg.start(other.run)
        await other.bootstrap([first.address])
        await other.announce_room(b"room-1", b"hello")
        tg.cancel_scope.cancel()
    assert store.record_count() == 1
    store.close()

    store = SqliteNodeStore(store_path)
    again = NodeHost(identity, config=CONFIG, store=store)
    assert again.driver_counters.get_count(DriverCounter.RECORDS_RESTORED) == 1
    assert len(again.node.dht.records) == 1
    assert again.cached_peers() == [other.address]
    store.close()


def test_corrupt_and_expired_rows_are_dropped_not_trusted(tmp_path: Path) -> None:
    """DHT-4.5: rows are re-checked on load: forged or expired ones are dropped and counted."""
    store = SqliteNodeStore(tmp_path / "s.sqlite3")
    publisher = Identity.from_seed(bytes([3]) * 32)
    now = 1_800_000_000.0
    good = sign_record(
        publisher,
        key_type=KeyType.RENDEZVOUS,
        ident=b"a",
        seq=1,
        expires_ms=int((now + 60) * 1000),
        value=b"v",
    )
    expired = sign_record(
        publisher,
        key_type=KeyType.RENDEZVOUS,
        ident=b"b",
        seq=1,
        expires_ms=int((now - 1) * 1000),
        value=b"v",
    )
    forged = bytearray(good.encode())
    forged[-1] ^= 1
    store.put_record(good.key, good.publisher_id, good.encode(), good.expires_ms)
    store.put_record(expired.key, expired.publisher_id, expired.encode(), expired.expires_ms)
    store.put_record(derive_key(KeyType.RENDEZVOUS, b"c"), good.publisher_id, bytes(forged), 0)
    store.put_record(derive_key(KeyType.RENDEZVOUS, b"d"), good.publisher_id, b"\xff garbage", 0)
    records, bad = store.load_records(now=now)
    assert [r.key for r in records] == [good.key]
    assert bad == 3
    assert store.record_count() == 1
    store.close()
    assert os.path.exists(tmp_path / "s.sqlite3")
