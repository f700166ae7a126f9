"""Store-and-forward on a running `NodeHost`: the holder, and the lookups members need (SF-8.5).

`SfHost` owns the node's store-and-forward APP topic (`APP_TOPIC_SF`):

* it runs a `StorageHolder` over the SQLite store (`SqliteHolderStore`;
  every `Persist` is committed before the next action, SF-2.6) with the
  room-proof authoriser (SF-3.5), fed every holder-bound message (STORE,
  PICKUP, RECEIPT, SYNC, SYNC_REPLY, REPLICATE) that arrives;
* it hands the member-bound ones (RESULT, PICKUP_REPLY, MAILBOX_KEYS) to
  the `member_sink` a client's transport sets (a bare node has none and
  counts them);
* `lookup_candidates(key)` is the lookup both sides use (SF-3.2): the
  closest peers of a FIND_NODE for the key, each with its capability
  advertisement (CAP-3.5) if one is found; peers without one are never
  chosen as holders, but a pickup asks them too (SF-8.4);
* it advertises this node's capabilities (CAP-3.3) every
  `advertise_interval`, so members can choose it as a holder.

An APP payload on the topic is ``CBOR([host, port, message])``: where its
sender listens (a stream's source port is not) and one store-and-forward
message (SF-8.5). The holder's `Send` names a NodeId: the address is the
one that peer last gave (or a lookup returned).

`PublishRendezvous` is published (SF-3.4, SF-3.7): a ``rendezvous`` record
whose ident is the rendezvous's store public key (so its DHT key is the
rendezvous key, SF-1.3) and whose value is ``CBOR([host, port])``, where
this node listens. The store public key is learned from the room proof of
a STORE (SF-3.5) or, for a replica, from any valid record already under the
key (its ident); with neither it is counted and not published.
`find_announcers(key)` reads those records back: the holders that announce
the key, which repair SYNCs (SF-7.2) and pickups ask (SF-8.6).
"""

import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Final, assert_never

import anyio
import anyio.abc

from railgun_ref.abuse.admission import AdmissionGate
from railgun_ref.abuse.pow import DEFAULT_CONFIG as POW_DEFAULTS
from railgun_ref.abuse.pow import PowConfig
from railgun_ref.capacity.selection import Candidate
from railgun_ref.capacity.types import DeviceCapabilities
from railgun_ref.core import cbor
from railgun_ref.core.constants import APP_TOPIC_SF
from railgun_ref.core.contract import ProtocolCore
from railgun_ref.core.counters import Counters
from railgun_ref.core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from railgun_ref.core.ids import Address, NodeId
from railgun_ref.dht.keys import KeyType
from railgun_ref.dht.records import decode_record
from railgun_ref.drivers.loop import CoreLoop
from railgun_ref.drivers.storeforward_store import SqliteHolderStore
from railgun_ref.drivers.udp import HostStoppedError, NodeHost
from railgun_ref.storeforward import holder as h
from railgun_ref.storeforward import messages as m
from railgun_ref.storeforward.authorisers import RoomProofAuthoriser, store_key_of_proof
from railgun_ref.storeforward.client import HolderCandidate
from railgun_ref.storeforward.rendezvous import (
    RECORD_TTL_CAP,
    decode_rendezvous_value,
    encode_rendezvous_value,
    key_of_store_key,
)

#: Holder-bound message types; the others go to the member side.
_TO_HOLDER: Final = frozenset(
    {
        m.SfType.STORE,
        m.SfType.PICKUP,
        m.SfType.RECEIPT,
        m.SfType.SYNC,
        m.SfType.SYNC_REPLY,
        m.SfType.REPLICATE,
    }
)
#: Peers whose capabilities one lookup fetches (twice the SF-3.2 pool).
_FETCH: Final = 12
#: Seconds a fetched capability advertisement is reused (at most until it expires).
_ADVERT_REUSE: Final = 60.0
#: Advertisements kept for reuse, oldest forgotten first.
_ADVERTS_KEPT: Final = 1024

MemberSink = Callable[[NodeId, Address, bytes], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class AdmissionSettings:
    """SF-9.3: how many STOREs per second the holder serves before it asks for work."""

    rate: float  #: STOREs served per second
    burst: int = 1  #: STOREs served at once after a quiet spell
    pow: PowConfig = POW_DEFAULTS  #: POW-1 .. POW-5 parameters (queue, efforts, periods)


class SfHostCounter(StrEnum):
    RECEIVED = "sfh.received"  #: APP messages on the topic
    REFUSED = "sfh.refused"  #: not a store-and-forward message; label: its code
    NO_MEMBER_SIDE = "sfh.no_member_side"  #: a member-bound message on a bare node
    NO_ADDRESS = "sfh.no_address"  #: a holder Send to a peer never seen
    SEND_FAILED = "sfh.send_failed"
    NOT_PUBLISHED = "sfh.not_published"  #: PublishRendezvous with no store key known
    PUBLISHED = "sfh.published"  #: SF-3.4: rendezvous records published
    PUBLISH_UNSTORED = "sfh.publish_unstored"  #: ... that no DHT node stored
    ANNOUNCER_REFUSED = "sfh.announcer_refused"  #: a rendezvous record refused; label: code
    ANNOUNCERS_FOUND = "sfh.announcers_found"  #: holders found by their rendezvous records
    ADVERTISED = "sfh.advertised"
    ADVERT_REUSED = "sfh.advert_reused"  #: a candidate's advertisement fetched < 60 s ago


class SfHost:
    """A node's store-and-forward holder and lookups (see the module docstring)."""

    def __init__(
        self,
        host: NodeHost,
        *,
        path: Path,
        capabilities: DeviceCapabilities,
        config: h.StoreForwardConfig = h.DEFAULT_CONFIG,
        clock: Callable[[], float] = time.time,
        advertise_interval: float = 60.0,
        admission: AdmissionSettings | None = None,
    ) -> None:
        self.host = host
        self.capabilities = capabilities
        self.counters: Counters[SfHostCounter] = Counters()
        self.member_sink: MemberSink | None = None
        self._clock = clock
        self._advertise_interval = advertise_interval
        self._store = SqliteHolderStore(path)
        gate: h.StoreGate | None = None
        if admission is not None:  # SF-9.3: STOREs pay for admission while the node is loaded
            gate = AdmissionGate(
                host.node_id,
                os.urandom,
                rate=admission.rate,
                burst=admission.burst,
                config=admission.pow,
                now=clock(),
            )
        self.holder = self._store.restore_holder(
            host.node_id,
            authoriser=RoomProofAuthoriser(),
            config=config,
            admission=gate,
            now=clock(),
        )
        self._loop = CoreLoop(clock=clock)
        self._addresses: dict[NodeId, Address] = {}
        #: node id -> (reuse until, capabilities) of advertisements found (CAP-3.5): every
        #: store round looked up to _FETCH of them again, each a DHT lookup of its own
        self._adverts: dict[NodeId, tuple[float, DeviceCapabilities]] = {}
        #: SF-3.7: rendezvous key -> its store public key (a record's ident)
        self._store_keys: dict[bytes, bytes] = self._store.store_keys()
        self._tg: anyio.abc.TaskGroup | None = None

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve until cancelled (the `NodeHost` must be running)."""
        inbox = self.host.app_inbox(APP_TOPIC_SF)
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                core: ProtocolCore[h.Action] = self.holder
                self._loop.add(core, self._holder_action)
                tg.start_soon(self._loop.run)
                tg.start_soon(self._advertise)
                task_status.started()
                async with inbox:
                    async for event in inbox:
                        self.counters.inc(SfHostCounter.RECEIVED)
                        self._on_app(event.sender, event.payload)
        finally:
            self._tg = None
            self._store.close()

    def _on_app(self, sender: NodeId, payload: bytes) -> None:
        """SF-8.5: ``[host, port, message]``: where the sender listens, and its message."""
        try:
            value = cbor.decode(payload)
            if (
                type(value) is not list
                or len(value) != 3
                or type(value[0]) is not str
                or type(value[1]) is not int
                or not 1 <= value[1] <= 0xFFFF
                or type(value[2]) is not bytes
            ):
                raise RemoteProtocolError(ErrorCode.MALFORMED, "payload is [host, port, message]")
        except RemoteProtocolError as exc:
            self.counters.inc(SfHostCounter.REFUSED, label=exc.code)
            return
        address: Address = (value[0], value[1])
        self._addresses[sender] = address
        self._route(sender, address, value[2])

    def rejoined(self) -> None:
        """SF-7.4: the node is back on the network: repair at once, quietly."""
        self.holder.repair_now(now=self._clock(), rejoined=True)
        self._loop.poke()

    def repair_now(self) -> None:
        """SF-7.1: a repair round at once, without waiting for ``repair_interval``."""
        self.holder.repair_now(now=self._clock())
        self._loop.poke()

    def _route(self, sender: NodeId, address: Address, data: bytes) -> None:
        try:
            kind = m.peek_type(data)
        except RemoteProtocolError as exc:
            self.counters.inc(SfHostCounter.REFUSED, label=exc.code)
            self.holder.receive(data, peer=sender, now=self._clock())  # refused and counted
            self._loop.poke()
            return
        if kind in _TO_HOLDER:
            if kind is m.SfType.STORE:
                self._learn_store_key(data)
            self.holder.receive(data, peer=sender, now=self._clock())
            self._loop.poke()
        elif self.member_sink is not None:
            self.member_sink(sender, address, data)
        else:
            self.counters.inc(SfHostCounter.NO_MEMBER_SIDE)

    def send(self, peer: NodeId, address: Address, data: bytes) -> None:
        """Send a store-and-forward message to `peer` at `address` (in the background)."""
        self._addresses.setdefault(peer, address)
        if self._tg is not None:
            self._tg.start_soon(self._send, address, data)

    async def _send(self, address: Address, data: bytes) -> None:
        host, port = self.host.address
        try:
            await self.host.send_app(address, APP_TOPIC_SF, cbor.encode([host, port, data]))
        except HostStoppedError:
            return
        except (ValueError, LocalProtocolError, OSError):
            self.counters.inc(SfHostCounter.SEND_FAILED)

    async def lookup_candidates(self, key: bytes) -> list[HolderCandidate]:
        """SF-3.2: the peers nearest `key` with the capabilities they advertise."""
        try:
            outcome = await self.host.find_node(key)
        except HostStoppedError:
            return []
        found: list[HolderCandidate] = []
        me = self.host.node_id

        async def fetch(node_id: NodeId, address: Address) -> None:
            if node_id == me:
                caps: DeviceCapabilities | None = self.capabilities
            else:
                try:
                    caps = await self._capabilities_of(node_id)
                except HostStoppedError:
                    return
            self._addresses[node_id] = address
            found.append(HolderCandidate(node_id=node_id, address=address, capabilities=caps))

        async with anyio.create_task_group() as tg:
            for node_id, address in outcome.closest[:_FETCH]:
                tg.start_soon(fetch, node_id, address)
        return sorted(found, key=lambda c: c.node_id)

    async def _capabilities_of(self, node_id: NodeId) -> DeviceCapabilities | None:
        """`node_id`'s advertised capabilities (CAP-3.5): fetched, or one found in the last
        _ADVERT_REUSE seconds and not expired (a missing one is looked for every time)."""
        now = self._clock()
        kept = self._adverts.get(node_id)
        if kept is not None and now < kept[0]:
            self.counters.inc(SfHostCounter.ADVERT_REUSED)
            return kept[1]
        advert = await self.host.fetch_capabilities(node_id)
        if advert is None:
            return None
        self._adverts.pop(node_id, None)
        self._adverts[node_id] = (min(advert.expires_at, now + _ADVERT_REUSE), advert.capabilities)
        if len(self._adverts) > _ADVERTS_KEPT:
            del self._adverts[next(iter(self._adverts))]
        return advert.capabilities

    async def _advertise(self) -> None:
        while True:
            try:
                await self.host.advertise_capabilities(self.capabilities)
                self.counters.inc(SfHostCounter.ADVERTISED)
            except HostStoppedError:
                return
            await anyio.sleep(self._advertise_interval)

    def _holder_action(self, action: h.Action) -> None:
        match action:
            case h.Persist():
                self._store.apply(action)  # SF-2.6: committed before the next action
            case h.Send(peer=peer, data=data):
                address = self._addresses.get(peer)
                if address is None:
                    self.counters.inc(SfHostCounter.NO_ADDRESS)
                else:
                    self.send(peer, address, data)
            case h.FindHolders(rendezvous_key=key):
                if self._tg is not None:
                    self._tg.start_soon(self._repair_lookup, key)
            case h.PublishRendezvous(rendezvous_key=key, expires_at=expires_at):
                if self._tg is not None:
                    self._tg.start_soon(self._publish, key, expires_at)
            case _:
                assert_never(action)

    async def lookup(self, key: bytes) -> tuple[list[HolderCandidate], list[HolderCandidate]]:
        """SF-3.2, SF-3.4: the peers nearest `key` and the announcers of `key`, together."""
        found: dict[str, list[HolderCandidate]] = {}

        async def run(name: str, call: Callable[[bytes], Awaitable[list[HolderCandidate]]]) -> None:
            found[name] = await call(key)

        async with anyio.create_task_group() as tg:
            tg.start_soon(run, "near", self.lookup_candidates)
            tg.start_soon(run, "announced", self.find_announcers)
        return found["near"], found["announced"]

    async def _repair_lookup(self, key: bytes) -> None:
        candidates, announced = await self.lookup(key)
        self.holder.reputation = self.host.reputation_scores()  # REP-5.1
        self.holder.holders_found(
            key,
            [
                Candidate(node_id=c.node_id, capabilities=c.capabilities)
                for c in candidates
                if c.capabilities is not None
            ],
            announced=[a.node_id for a in announced],
            now=self._clock(),
        )
        self._loop.poke()

    # ------------------------------------------------------ rendezvous records (SF-3.4)

    def _learn_store_key(self, data: bytes) -> None:
        """SF-3.7: a STORE's room proof names the store key of its rendezvous key."""
        try:
            request = m.decode(data)
            if not isinstance(request, m.StoreRequest):
                return
            store_key = store_key_of_proof(request.proof)
        except RemoteProtocolError:
            return  # the holder refuses and counts it
        if key_of_store_key(store_key) == request.rendezvous_key:
            self._remember_store_key(request.rendezvous_key, store_key)

    def _remember_store_key(self, key: bytes, store_key: bytes) -> None:
        """SF-3.7: the store key of `key`, kept on disk too (republished after a restart)."""
        if key not in self._store_keys:
            self._store_keys[key] = store_key
            self._store.put_store_key(key, store_key)

    async def find_announcers(self, key: bytes) -> list[HolderCandidate]:
        """SF-3.4: the publishers of valid ``rendezvous`` records under `key`, at the
        address each names (this node left out); learns the key's store key."""
        try:
            outcome = await self.host.get(key)
        except HostStoppedError:
            return []
        now = self._clock()
        found: list[HolderCandidate] = []
        for raw in outcome.records:
            try:
                record = decode_record(cbor.decode(raw), now=now, key=key)
                if record.key_type is not KeyType.RENDEZVOUS:
                    raise RemoteProtocolError(ErrorCode.WRONG_KEY, "not a rendezvous record")
                address = decode_rendezvous_value(record.value)
            except RemoteProtocolError as exc:
                self.counters.inc(SfHostCounter.ANNOUNCER_REFUSED, label=exc.code)
                continue
            self._remember_store_key(key, record.ident)
            if record.publisher_id == self.host.node_id:
                continue
            self._addresses[record.publisher_id] = address
            self.counters.inc(SfHostCounter.ANNOUNCERS_FOUND)
            found.append(
                HolderCandidate(node_id=record.publisher_id, address=address, capabilities=None)
            )
        return found

    async def _publish(self, key: bytes, expires_at: float) -> None:
        """SF-3.4, SF-3.7: this node's rendezvous record under `key`, until `expires_at`."""
        if key not in self._store_keys:
            await self.find_announcers(key)
        store_key = self._store_keys.get(key)
        ttl = min(expires_at - self._clock(), RECORD_TTL_CAP)
        if store_key is None or ttl <= 0:
            self.counters.inc(SfHostCounter.NOT_PUBLISHED)
            return
        host, port = self.host.address
        value = encode_rendezvous_value((host, port))
        try:
            outcome = await self.host.store(KeyType.RENDEZVOUS, store_key, value, ttl=ttl)
        except HostStoppedError:
            return
        self.counters.inc(SfHostCounter.PUBLISHED)
        if outcome.accepted == 0:
            self.counters.inc(SfHostCounter.PUBLISH_UNSTORED)
