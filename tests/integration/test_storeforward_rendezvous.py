"""Store-and-forward holders publish rendezvous records on the DHT (SF-3.4, SF-3.7, SF-8.6).

Four clients on real localhost sockets, P2P only (`railgun_ref.client.connect`,
fast profile). One member stops; the sender's message for it is stored on
holders; every holder that keeps it publishes a signed ``rendezvous`` record
under the rendezvous key, whose ident is the store public key and whose value
is where the holder listens. Any node's DHT `get` of the key finds exactly
those holders; the member that returns finds them the same way (its pickup
lookup reads the records) and gets the message once. Every wait is bounded;
nothing asserts on timings.
"""

from pathlib import Path

import anyio
import anyio.abc
import pytest

from railgun_ref.client import Client, connect, fast_profile
from railgun_ref.core import cbor
from railgun_ref.core.ids import Address
from railgun_ref.dht.keys import KeyType
from railgun_ref.dht.records import decode_record
from railgun_ref.drivers.storeforward_host import SfHost, SfHostCounter
from railgun_ref.drivers.transport import MessageReceived
from railgun_ref.drivers.transport_sf import SfWiringCounter
from railgun_ref.storeforward.client import SfClientCounter
from railgun_ref.storeforward.rendezvous import decode_rendezvous_value, key_of_store_key

from .rooms_helpers import make_room

pytestmark = [pytest.mark.integration, pytest.mark.anyio, pytest.mark.timeout(150)]
ROOM = "rendezvous"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Running:
    """A P2P-only client in its own task, so that it can stop alone."""

    def __init__(self) -> None:
        self.client: Client | None = None
        self.received: list[MessageReceived] = []
        self.stop = anyio.Event()
        self.stopped = anyio.Event()

    async def run(self, data_dir: Path, boot: list[Address]) -> None:
        async with anyio.create_task_group() as tg:
            async with connect(
                data_dir=data_dir, bootstrap=boot, profile=fast_profile(), calls=False
            ) as client:
                self.client = client
                tg.start_soon(self._collect, client)
                await self.stop.wait()
            tg.cancel_scope.cancel()
        self.stopped.set()

    async def _collect(self, client: Client) -> None:
        async for event in client:
            if isinstance(event, MessageReceived):
                self.received.append(event)

    async def close(self) -> None:
        self.stop.set()
        await self.stopped.wait()


async def wait_for(predicate: object, timeout: float) -> None:
    assert callable(predicate)
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.05)


async def start(tg: anyio.abc.TaskGroup, data_dir: Path, boot: list[Address]) -> Running:
    running = Running()
    tg.start_soon(running.run, data_dir, boot)
    await wait_for(lambda: running.client is not None, 30)
    return running


def _pending(client: Client | None) -> int:
    assert client is not None and client.transport.p2p is not None
    return client.transport.p2p.pending()


def sf_host(client: Client) -> SfHost:
    sf = client.transport.store_forward
    assert sf is not None and sf.host is not None
    return sf.host


async def test_holders_publish_rendezvous_records_and_the_recipient_finds_them(
    tmp_path: Path,
) -> None:
    """SF-3.4, SF-3.7: each holder of the stored message publishes a rendezvous record
    under the rendezvous key (ident: the store public key, value: its address), found by
    a DHT get from any node; SF-8.6: the returning member's pickup reads them and the
    message arrives once."""
    async with anyio.create_task_group() as tg:
        runs = [await start(tg, tmp_path / "c0", [])]
        first = runs[0].client
        assert first is not None
        for i in range(1, 4):
            runs.append(await start(tg, tmp_path / f"c{i}", [first.address]))
        clients = [r.client for r in runs]
        assert all(c is not None for c in clients)
        sender = clients[0]
        await make_room(*[c for c in clients if c is not None], name=ROOM)
        for client in clients:
            assert client is not None
            await client.wait_for_members(ROOM, 3, timeout=30, reachable=True)
        sender_sf = sender.transport.store_forward
        assert sender_sf is not None
        await wait_for(
            lambda: sender_sf.client.counters.get_count(SfClientCounter.MAILBOX_LEARNED) >= 3, 30
        )

        await runs[3].close()  # the member goes away
        message_id = await sender.send(ROOM, "kept by holders who say so on the DHT")
        await wait_for(lambda: sender.transport.outbox_size() == 0, 60)
        assert sender_sf.counters.get_count(SfWiringCounter.SETTLED_BY_STORE) == 1
        holders = [c for c in clients[:3] if c is not None and sf_host(c).holder.held]
        assert holders
        key = next(iter(sf_host(holders[0]).holder.held.values())).rendezvous_key
        await wait_for(
            lambda: all(
                sf_host(h).counters.get_count(SfHostCounter.PUBLISHED) >= 1 for h in holders
            ),
            30,
        )

        outcome = await clients[1].transport.host.get(key)  # type: ignore[union-attr]
        now = sender.transport.clock()
        records = [decode_record(cbor.decode(r), now=now, key=key) for r in outcome.records]
        assert {r.publisher_id for r in records} == {h.node_id for h in holders}
        for record in records:
            assert record.key_type is KeyType.RENDEZVOUS
            assert key_of_store_key(record.ident) == key  # the store public key (SF-1.3)
            holder = next(h for h in holders if h.node_id == record.publisher_id)
            assert decode_rendezvous_value(record.value) == holder.address

        # Every job for the away member runs out first (HT-6.5): a bridge's relay job
        # could hand the message over directly on its return, not the path under test.
        await wait_for(lambda: all(_pending(c) == 0 for c in clients[:3]), 120)
        back = await start(tg, tmp_path / "c3", [first.address])
        assert back.client is not None
        await wait_for(lambda: message_id in {m.message_id for m in back.received}, 60)
        await anyio.sleep(1)  # room for a duplicate
        assert [m.message_id for m in back.received].count(message_id) == 1
        assert [m.path for m in back.received if m.message_id == message_id] == ["store"]
        # SF-8.6: its pickup lookups read the holders' records
        assert sf_host(back.client).counters.get_count(SfHostCounter.ANNOUNCERS_FOUND) >= 1
        for running in [*runs[:3], back]:
            await running.close()
        tg.cancel_scope.cancel()
