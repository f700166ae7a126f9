"""SF-9 on real localhost sockets: a loaded holder asks for work, an honest client pays and
stores while a flood of free STOREs keeps the holder's queue full.

Three nodes on 127.0.0.1: the holder (its `SfHost` serves one STORE every five seconds,
queue of two), an attacker that keeps sending free, signed STOREs, and a sender whose
`SfClient` stores a sealed message for an offline member. The sender's free STORE is shed
with QUOTA and a challenge; its driver solves it off the loop, and the paid STORE goes
ahead of the free ones. Every wait is bounded; nothing asserts on timings.
"""

import os
import random
import time
from pathlib import Path
from typing import assert_never

import anyio
import anyio.abc
import pytest

from railgun_ref.abuse.admission import SolvePow
from railgun_ref.abuse.pow import PowConfig, PowCounter
from railgun_ref.capacity.nat import NatType
from railgun_ref.core.errors import ErrorCode
from railgun_ref.core.ids import Address, NodeId
from railgun_ref.drivers.capabilities import detect_capabilities
from railgun_ref.drivers.loop import CoreLoop
from railgun_ref.drivers.pow_solver import solve_off_loop
from railgun_ref.drivers.storeforward_host import AdmissionSettings, SfHost
from railgun_ref.drivers.udp import NodeHost
from railgun_ref.identity.keys import Identity
from railgun_ref.storeforward import SfCounter
from railgun_ref.storeforward import client as sfc
from railgun_ref.storeforward import messages as m
from railgun_ref.storeforward.rendezvous import epoch_of, rendezvous_key

pytestmark = [pytest.mark.integration, pytest.mark.anyio, pytest.mark.timeout(90)]

ROOM = b"R" * 32
SECRET = b"room-secret-for-the-admission-test"
CAPS = detect_capabilities(
    upload_bandwidth=1_000_000, download_bandwidth=1_000_000, nat_type=NatType.OPEN
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Sender:
    """An `SfClient` over its node's `SfHost`, with the driver's half of SF-9.4."""

    def __init__(self, identity: Identity, sf: SfHost, holder: sfc.HolderCandidate) -> None:
        self.client = sfc.SfClient(
            identity,
            config=sfc.SfClientConfig(redundancy=1, candidate_pool=1, store_timeout=20.0),
            random_bytes=os.urandom,
            now=time.time(),
        )
        self.sf = sf
        self.holder = holder
        self.loop = CoreLoop()
        self.stored: list[sfc.StoredFor] = []
        self.tg: anyio.abc.TaskGroup | None = None
        sf.member_sink = self._from_peer
        self.loop.add(self.client, self._action)

    def _from_peer(self, peer: NodeId, address: Address, data: bytes) -> None:
        self.client.receive(peer, address, data, now=time.time())
        self.loop.poke()

    def _action(self, action: sfc.Action) -> None:
        assert self.tg is not None
        match action:
            case sfc.LookupHolders(rendezvous_key=key):
                self.tg.start_soon(self._found, key)
            case sfc.SendTo(peer=peer, address=address, data=data):
                self.sf.send(peer, address, data)
            case SolvePow():
                self.tg.start_soon(self._solve, action)
            case sfc.StoredFor():
                self.stored.append(action)
            case (
                sfc.StoreFailed()
                | sfc.SendMailboxKeys()
                | sfc.PersistMailboxKeys()
                | sfc.PickedUp()
            ):
                pass
            case _:
                assert_never(action)

    async def _found(self, key: bytes) -> None:
        self.client.holders_found(key, [self.holder], now=time.time())
        self.loop.poke()

    async def _solve(self, action: SolvePow) -> None:
        solution = await solve_off_loop(action)
        self.client.pow_solved(action.token, solution, now=time.time())
        self.loop.poke()


async def _flood(sf: SfHost, attacker: Identity, holder: NodeId, address: Address) -> None:
    """Free STOREs, signed and fresh (a stranger's: refused only once served)."""
    key = rendezvous_key(SECRET, attacker.node_id, epoch_of(time.time()))
    for n in range(1, 10_000):
        now = time.time()
        request = m.sign_store(
            attacker,
            request_id=n,
            timestamp_ms=int(now * 1000),
            rendezvous_key=key,
            mailbox_key=attacker.public_key,
            expires_ms=int((now + 3600) * 1000),
            ciphertext=random.randbytes(256),
            proof=b"",
        )
        sf.send(holder, address, m.encode(request))
        await anyio.sleep(0.2)


async def test_a_loaded_holder_asks_for_work_and_an_honest_sender_still_stores(
    tmp_path: Path,
) -> None:
    """SF-9.3, SF-9.4, POW-6.2, POW-6.3: shed with a price, paid, served first, stored."""
    holder_id, sender_id, attacker_id = (Identity.generate(os.urandom) for _ in range(3))
    member_id = Identity.generate(os.urandom)
    hosts = [NodeHost(i) for i in (holder_id, sender_id, attacker_id)]
    holder_sf = SfHost(
        hosts[0],
        path=tmp_path / "holder.sqlite3",
        capabilities=CAPS,
        admission=AdmissionSettings(rate=0.2, pow=PowConfig(queue_limit=2)),
    )
    sender_sf = SfHost(hosts[1], path=tmp_path / "sender.sqlite3", capabilities=CAPS)
    attacker_sf = SfHost(hosts[2], path=tmp_path / "attacker.sqlite3", capabilities=CAPS)
    async with anyio.create_task_group() as tg:
        for host in hosts:
            await tg.start(host.run)
        for sf in (holder_sf, sender_sf, attacker_sf):
            await tg.start(sf.run)
        address = hosts[0].address
        for host in hosts[1:]:
            await host.bootstrap([address])
        gate = holder_sf.holder.admission
        assert gate is not None
        tg.start_soon(_flood, attacker_sf, attacker_id, hosts[0].node_id, address)
        with anyio.fail_after(20):
            while gate.waiting < 2:  # POW-4.1: the queue is full of free STOREs
                await anyio.sleep(0.05)

        candidate = sfc.HolderCandidate(
            node_id=hosts[0].node_id, address=address, capabilities=CAPS
        )
        sender = Sender(sender_id, sender_sf, candidate)
        sender.tg = tg
        tg.start_soon(sender.loop.run)
        member = sfc.SfClient(member_id, random_bytes=os.urandom, now=time.time())
        member.add_room(ROOM, SECRET, now=time.time())
        keys = member.mailbox_keys(ROOM, now=time.time())
        sender.client.add_room(ROOM, SECRET, now=time.time())
        sender.client.set_members(ROOM, {member_id.node_id: member_id.public_key})
        sender.client.receive(member_id.node_id, address, m.encode(keys), now=time.time())
        sender.client.store(
            room_id=ROOM,
            message_id=b"M" * 16,
            member=member_id.node_id,
            blob=b"for the member who is away",
            expires_at=time.time() + 3600,
            now=time.time(),
        )
        sender.loop.poke()
        with anyio.fail_after(40):
            while not sender.stored:
                await anyio.sleep(0.1)
        tg.cancel_scope.cancel()

    counters = sender.client.counters
    assert counters.get_count(sfc.SfClientCounter.STORE_REFUSED, ErrorCode.QUOTA) >= 1
    assert counters.get_count(sfc.SfClientCounter.POW_PAID) == 1
    assert [s.holder for s in sender.stored] == [hosts[0].node_id]
    assert holder_sf.holder.counters.get_count(SfCounter.STORED) == 1  # only the paid one
    assert holder_sf.holder.counters.get_count(SfCounter.REFUSED, ErrorCode.QUOTA) >= 1
    assert gate.pow.counters.get_count(PowCounter.SHED) >= 1
