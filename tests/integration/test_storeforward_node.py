"""SF-8.5: `railgun-ref node --data-dir` is a holder: it advertises, keeps what it
acknowledged across a kill -9, and refuses a store without the room's proof."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from railgun_ref.capacity.nat import NatType
from railgun_ref.core.errors import ErrorCode
from railgun_ref.core.ids import Address, NodeId
from railgun_ref.drivers.capabilities import detect_capabilities
from railgun_ref.drivers.storeforward_host import SfHost, SfHostCounter
from railgun_ref.drivers.storeforward_store import SqliteHolderStore
from railgun_ref.drivers.udp import NodeHost
from railgun_ref.identity.keys import Identity
from railgun_ref.storeforward import messages as m
from railgun_ref.storeforward.authorisers import room_store_proof
from railgun_ref.storeforward.rendezvous import epoch_of, rendezvous_id, rendezvous_key

pytestmark = [pytest.mark.integration, pytest.mark.anyio, pytest.mark.timeout(90)]

SECRET = b"room-secret-for-the-node-test-0123"


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


def _store(sender: Identity, recipient: Identity, n: int, proof: bytes) -> m.StoreRequest:
    now = anyio_time()
    epoch = epoch_of(now)
    return m.sign_store(
        sender,
        request_id=n,
        timestamp_ms=int(now * 1000),
        rendezvous_key=rendezvous_key(SECRET, recipient.node_id, epoch),
        mailbox_key=recipient.public_key,
        expires_ms=int((now + 3600) * 1000),
        ciphertext=bytes([n]) * 256,
        proof=proof,
    )


def anyio_time() -> float:
    """The wall clock, as the node process reads it."""
    return time.time()


async def test_node_holds_what_it_acknowledged_across_kill_9(tmp_path: Path) -> None:
    """SF-8.5, SF-2.6, SF-3.5: RESULT 0 for a member's store, FORBIDDEN without the proof;
    after SIGKILL the node's file still holds the acknowledged message."""
    proc, address = _start_node(tmp_path / "node")
    sender = Identity.generate(os.urandom)
    recipient = Identity.generate(os.urandom)
    answers: list[tuple[NodeId, bytes]] = []
    try:
        host = NodeHost(sender)
        caps = detect_capabilities(
            upload_bandwidth=1_000_000, download_bandwidth=1_000_000, nat_type=NatType.OPEN
        )
        member = SfHost(host, path=tmp_path / "member.sqlite3", capabilities=caps)
        member.member_sink = lambda peer, _a, data: answers.append((peer, data))
        async with anyio.create_task_group() as tg:
            await tg.start(host.run)
            await tg.start(member.run)
            await host.bootstrap([address])
            epoch = epoch_of(anyio_time())
            key = rendezvous_key(SECRET, recipient.node_id, epoch)
            with anyio.fail_after(30):
                while True:  # the node advertises canStoreMessages (CAP-3.3)
                    found = await member.lookup_candidates(key)
                    holders = [c for c in found if c.capabilities.can_store_messages]
                    if any(c.address == address for c in holders):
                        break
                    await anyio.sleep(0.3)
            node_id = next(c.node_id for c in holders if c.address == address)
            again = await member.lookup_candidates(key)  # the advertisement is reused
            assert [c.capabilities for c in again] == [c.capabilities for c in found]
            assert member.counters.get_count(SfHostCounter.ADVERT_REUSED) >= 1
            proof = room_store_proof(
                rendezvous_id(SECRET, recipient.node_id, epoch), sender.node_id
            )
            good, bad = _store(sender, recipient, 1, proof), _store(sender, recipient, 2, b"")
            target: Address = address
            member.send(node_id, target, m.encode(good))
            member.send(node_id, target, m.encode(bad))
            with anyio.fail_after(20):
                while len(answers) < 2:
                    await anyio.sleep(0.05)
            tg.cancel_scope.cancel()
        decoded = [m.decode(data) for _, data in answers]
        results = {r.request_id: r.status for r in decoded if isinstance(r, m.Result)}
        assert results == {1: 0, 2: int(ErrorCode.FORBIDDEN)}
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    kept, _ = SqliteHolderStore(tmp_path / "node" / "storeforward.sqlite3").load()
    assert [s.message_id for s in kept] == [good.message_id]
