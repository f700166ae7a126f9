"""Store-and-forward in a client's hybrid transport (SF-8): the glue between the cores.

`TransportStoreForward` belongs to one `HybridTransport`. It runs the
node's `SfHost` (the holder every client node is, SF-8.5) and the member's
`SfClient`, and connects them to the rest of the transport:

* closed rooms give the SF client each room's secret and members (the
  log's, ROOM-5.1); members the P2P path can reach get our mailbox keys;
* a P2P job for one of our messages that stalls while the central path is
  not in use stores the outbox entry's E2EE blob for that member (a member
  that is merely slow to answer a probe keeps getting it over P2P); a
  `StoredFor` settles the member's part of the outbox entry as a P2P
  receipt does (`HybridTransportService.p2p_acked`), so the outbox's
  exactly-once bookkeeping is unchanged;
* after the DHT join, on every return to the network and every
  ``pickup_interval``, the client picks up; what it picks up goes through
  `HybridTransportService.received` with path ``store``, so the transport's
  dedup (seen ids, persisted) delivers each message once whatever path
  brings it first or again;
* mailbox keys others announced are kept in the transport's state database.
"""

import dataclasses
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Final, assert_never

import anyio.abc

from railgun_ref.abuse.admission import SolvePow
from railgun_ref.capacity.nat import NatType
from railgun_ref.core.contract import ProtocolCore
from railgun_ref.core.counters import Counters
from railgun_ref.core.ids import Address, NodeId
from railgun_ref.drivers.capabilities import detect_capabilities
from railgun_ref.drivers.pow_solver import solve_off_loop
from railgun_ref.drivers.storeforward_host import SfHost
from railgun_ref.identity.keys import node_id_of
from railgun_ref.storeforward import client as sfc
from railgun_ref.storeforward.holder import StoreForwardConfig
from railgun_ref.transport.outbox import Path as DeliveryPath

if TYPE_CHECKING:
    from railgun_ref.drivers.transport import HybridTransport

#: Bandwidth a localhost client advertises, bytes/s (nothing is measured on loopback).
_LOOPBACK_BANDWIDTH: Final = 10_000_000


class SfWiringCounter(StrEnum):
    STORE_STARTED = "sf.store_started"  #: a stalled P2P job handed to store-and-forward
    SETTLED_BY_STORE = "sf.settled_by_store"  #: outbox parts settled by a holder's RESULT 0
    PICKED_UP = "sf.picked_up"  #: messages picked up (before dedup)
    MAILBOX_UNREACHABLE = "sf.mailbox_unreachable"  #: mailbox keys for a member with no address


class TransportStoreForward:
    """SF-8 in one client's transport (see the module docstring)."""

    def __init__(self, transport: "HybridTransport", *, config: sfc.SfClientConfig) -> None:
        self.transport = transport
        self.config = config
        self.counters: Counters[SfWiringCounter] = Counters()
        self.client = sfc.SfClient(
            transport.identity,
            config=config,
            random_bytes=transport.random_bytes,
            now=transport.clock(),
        )
        self.host: SfHost | None = None
        self._tg: anyio.abc.TaskGroup | None = None

    async def start(self, tg: anyio.abc.TaskGroup, data_dir: Path) -> None:
        """Start the holder on the transport's node and pump the SF client."""
        t = self.transport
        caps = detect_capabilities(
            upload_bandwidth=_LOOPBACK_BANDWIDTH,
            download_bandwidth=_LOOPBACK_BANDWIDTH,
            nat_type=NatType.OPEN,
            sharing=t.config.capacity_sharing,
        )
        caps = dataclasses.replace(
            caps, can_store_messages=caps.can_store_messages and self.config.enabled
        )
        holder_config = StoreForwardConfig(
            enabled=self.config.enabled,
            redundancy=self.config.redundancy,
            candidate_pool=max(self.config.candidate_pool, self.config.redundancy),
            default_ttl=self.config.default_ttl,
        )
        self.host = SfHost(
            t.host,
            path=data_dir / "storeforward.sqlite3",
            capabilities=caps,
            config=holder_config,
            clock=t.clock,
        )
        self.host.member_sink = self._from_peer
        self._tg = tg
        await tg.start(self.host.run)
        core: ProtocolCore[sfc.Action] = self.client
        t.loop.add(core, self._action)

    def stop(self) -> None:
        self._tg = None

    # ---------------------------------------------------------------- hooks

    def room_opened(self, room_id: bytes, secret: bytes, members: tuple[bytes, ...]) -> None:
        t = self.transport
        mine = t.identity.public_key
        self.client.add_room(room_id, secret, now=t.clock())
        self.client.set_members(room_id, {node_id_of(k): k for k in members if k != mine})

    def room_left(self, room_id: bytes) -> None:
        self.client.remove_room(room_id)

    def restore_mailbox_keys(self, rows: list[tuple[NodeId, bytes]]) -> None:
        for member, data in rows:
            self.client.restore_mailbox_keys(member, data)

    def members_reachable(self, room_id: bytes, members: frozenset[NodeId]) -> None:
        self.client.members_reachable(room_id, members, now=self.transport.clock())

    def delivery_stalled(self, message_id: bytes, member: NodeId) -> None:
        """SF-8.3: the P2P path could not reach `member`; store if central is not in use."""
        t = self.transport
        if t.service.machine.uses_central:
            return
        entry = t.service.outbox.get(message_id)
        if entry is None or member not in entry.missing_p2p():
            return
        self.counters.inc(SfWiringCounter.STORE_STARTED)
        self.client.store(
            room_id=entry.room_id,
            message_id=message_id,
            member=member,
            blob=entry.blob,
            expires_at=entry.expires_at,
            now=t.clock(),
        )

    def back_online(self) -> None:
        """SF-7.4, SF-8.4: joined or rejoined the network: repair as a holder, pick up."""
        self.client.pickup_now(now=self.transport.clock())
        if self.host is not None:
            self.host.rejoined()

    # ---------------------------------------------------------------- plumbing

    def _from_peer(self, sender: NodeId, address: Address, data: bytes) -> None:
        self.client.receive(sender, address, data, now=self.transport.clock())
        self.transport.loop.poke()

    def _action(self, action: sfc.Action) -> None:
        t = self.transport
        now = t.clock()
        match action:
            case sfc.LookupHolders(rendezvous_key=key):
                if self._tg is not None:
                    self._tg.start_soon(self._lookup, key)
            case sfc.SendTo(peer=peer, address=address, data=data):
                if self.host is not None:
                    self.host.send(peer, address, data)
            case SolvePow():
                if self._tg is not None:
                    self._tg.start_soon(self._solve, action)
            case sfc.SendMailboxKeys(member=member, data=data):
                known = t.p2p.member_address(member) if t.p2p is not None else None
                if known is None or self.host is None:
                    self.counters.inc(SfWiringCounter.MAILBOX_UNREACHABLE)
                else:
                    self.host.send(member, known, data)
            case sfc.PersistMailboxKeys(room_id=room_id, member=member, data=data):
                t.persist_mailbox_keys(room_id, member, data)
            case sfc.StoredFor(message_id=message_id, member=member):
                self.counters.inc(SfWiringCounter.SETTLED_BY_STORE)
                t.service.p2p_acked(message_id, member, now=now)
                t.store_acked(message_id, member, now)
            case sfc.StoreFailed():
                t.store_failed(action)
            case sfc.PickedUp():
                self.counters.inc(SfWiringCounter.PICKED_UP)
                t.service.received(
                    message_id=action.message_id,
                    room_id=action.room_id,
                    payload=action.blob,
                    expires_at=action.expires_at,
                    path=DeliveryPath.STORE,
                    now=now,
                )
            case _:
                assert_never(action)

    async def _solve(self, action: SolvePow) -> None:
        """SF-9.4: pay a holder's price off the loop, then let the client send again."""
        solution = await solve_off_loop(action)
        self.client.pow_solved(action.token, solution, now=self.transport.clock())
        self.transport.loop.poke()

    async def _lookup(self, key: bytes) -> None:
        if self.host is None:
            return
        candidates, announced = await self.host.lookup(key)  # SF-3.2, SF-8.6
        self.client.reputation = self.transport.host.reputation_scores()  # REP-5.1
        self.client.holders_found(key, candidates, announced=announced, now=self.transport.clock())
        self.transport.loop.poke()
