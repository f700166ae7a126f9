"""`railgun-ref bench storeforward`: k-replicated store-and-forward under KAD churn (not a test).

What runs: the real store-and-forward cores (`StorageHolder`, one per node),
the real wire messages and signatures, and the real holder placement
(SF-3.2), in the simulator's event loop (`drivers.sim.Simulator`: virtual
time, one seeded RNG). What is modelled: the overlay. A DHT lookup of a key
returns the 20 online nodes nearest it (a perfect lookup), and a recipient
finds the online holders of a key as its `rendezvous` records would show
them (SF-3.4); no Kademlia RPCs are simulated, which is what makes 1,000
nodes x 7 days run in minutes. Churn is the KAD Weibull fit
(`datasets/churn_weibull.json`, `drivers.churn.WeibullChurn`), with a small
chance that a node leaving never comes back.

Scenario: recipients go offline for hours to days (log-uniform); senders
store messages for offline recipients on k = 3 holders; recipients pick up
when they return and every hour while online, then send receipts; holders
repair every hour and when they rejoin. The same seed is run with and
without repair. Some holders are partitioned away for most of the TTL and
come back holding replicas of messages delivered meanwhile: they must not
resurrect them.
"""

import hashlib
import json
import math
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, Final, TypeVar, assert_never

from railgun_ref.capacity.selection import Candidate
from railgun_ref.capacity.types import DeviceCapabilities
from railgun_ref.core.counters import Counters
from railgun_ref.core.ids import NodeId
from railgun_ref.dht.geometry import distance
from railgun_ref.drivers.churn import WeibullChurn
from railgun_ref.drivers.sim import SIM_EPOCH, Simulator
from railgun_ref.identity.keys import Identity
from railgun_ref.storeforward import messages as m
from railgun_ref.storeforward import rendezvous as rv
from railgun_ref.storeforward.authorisers import VectorAuthoriser, vector_proof
from railgun_ref.storeforward.holder import (
    FindHolders,
    Persist,
    PublishRendezvous,
    Send,
    StorageHolder,
    StoreForwardConfig,
)

_A = TypeVar("_A")
HOUR: Final = 3600.0
DAY: Final = 86_400.0
DATASET: Final = Path(__file__).resolve().parents[2] / "datasets" / "churn_weibull.json"
ROOM_SECRET: Final = b"railgun-ref/bench/storeforward/room"

#: (device class, share of nodes, canStoreMessages, availability): a plausible mix.
DEVICE_MIX: Final = (
    ("server", 0.05, True, "always"),
    ("desktop-powerful", 0.15, True, "always"),
    ("desktop-standard", 0.20, True, "when-active"),
    ("laptop-plugged", 0.15, True, "when-active"),
    ("laptop-battery", 0.10, True, "when-active"),
    ("mobile-wifi", 0.20, False, "when-active"),
    ("mobile-cellular", 0.15, False, "when-active"),
)


class WorldCounter(StrEnum):
    """What the simulated world counts (the JSON keeps these names)."""

    DHT_PUBLISH = "dht_publish"
    SEND_SKIPPED_ALL_ONLINE = "send_skipped_all_online"
    SF_BYTES = "sf_bytes"
    SF_MESSAGES = "sf_messages"
    STORE_ACCEPTED = "store_accepted"
    STORED_ON_FEWER_THAN_K = "stored_on_fewer_than_k"


@dataclass(frozen=True, slots=True, kw_only=True)
class BenchParams:
    """One run's parameters (they go into the JSON as given)."""

    nodes: int = 1000
    recipients: int = 200
    senders: int = 50
    messages: int = 2000
    days: float = 7.0
    send_window_days: float = 2.0
    min_offline_hours: float = 1.0
    max_offline_hours: float = 96.0
    permanent_departure: float = 0.02  #: chance a session end is a node leaving for good
    partitioned_holders: int = 20
    partition_start_hours: float = 6.0
    partition_days: float = 6.5
    lookup_size: int = 20
    redundancy: int = 3
    repair_interval: float = HOUR
    seed: int = 1


TINY: Final = BenchParams(
    nodes=80,
    recipients=12,
    senders=5,
    messages=40,
    days=2.0,
    send_window_days=0.5,
    max_offline_hours=12.0,
    partitioned_holders=3,
    partition_start_hours=2.0,
    partition_days=1.2,
)


def _later(call: Callable[[_A], None], arg: _A) -> Callable[[Simulator], None]:
    """An event for `Simulator.at` that calls ``call(arg)``."""
    return lambda _sim: call(arg)


def _node_id(seed: int, index: int) -> NodeId:
    return NodeId(hashlib.sha256(f"sf-bench/{seed}/{index}".encode()).digest())


def _capabilities(device: str, store: bool, availability: str) -> DeviceCapabilities:
    fast = device in ("server", "desktop-powerful")
    return DeviceCapabilities.from_json(
        {
            "deviceClass": device,
            "uploadBandwidth": 2_500_000 if fast else 600_000,
            "downloadBandwidth": 2_500_000 if fast else 1_200_000,
            "maxRelayConnections": 20,
            "maxRelayBandwidth": 500_000,
            "canActAsTurn": fast,
            "canStoreMessages": store,
            "natType": "full-cone" if fast else "restricted",
            "availability": availability,
        }
    )


@dataclass(slots=True)
class _Message:
    message_id: bytes
    key: bytes
    recipient: int
    sent_at: float
    expires_at: float
    delivered_at: float | None = None
    replicas_at_delivery: tuple[NodeId, ...] = ()


@dataclass(slots=True)
class _Recipient:
    identity: Identity
    online: bool = False
    keys: dict[bytes, Identity] = field(default_factory=dict)  #: rendezvous key -> mailbox
    got: dict[bytes, float] = field(default_factory=dict)  #: message id -> first pickup


class _World:
    """The simulated network: nodes, their holder cores, recipients, and what happened."""

    def __init__(self, params: BenchParams, *, repair: bool) -> None:
        self.p = params
        self.repair = repair
        self.sim = Simulator(seed=params.seed, keep_trace=False)
        self.churn = WeibullChurn.from_dataset(DATASET) if DATASET.exists() else WeibullChurn()
        self.end = SIM_EPOCH + params.days * DAY
        interval = params.repair_interval if repair else 1e12
        self.config = StoreForwardConfig(
            redundancy=params.redundancy,
            repair_interval=interval,
            candidate_pool=2 * params.redundancy,
        )
        self.ids = [_node_id(params.seed, i) for i in range(params.nodes)]
        self.caps = self._draw_capabilities()
        self.holders = {
            n: StorageHolder(n, authoriser=VectorAuthoriser(), config=self.config, now=SIM_EPOCH)
            for n in self.ids
        }
        self.online: set[NodeId] = set()
        self.gone: set[NodeId] = set()  #: left for good
        self.partitioned: set[NodeId] = set()
        self.spans: dict[NodeId, list[tuple[float, float]]] = {n: [] for n in self.ids}
        self.where: dict[bytes, set[NodeId]] = {}  #: message id -> holders holding it
        self.key_holders: dict[bytes, set[NodeId]] = {}  #: key -> nodes holding messages
        self.announcers: dict[bytes, set[NodeId]] = {}  #: key -> messages or tombstones
        self.deleted_at: dict[tuple[NodeId, bytes], float] = {}
        self.put_after_delivery = 0
        self.redelivered = 0
        self.messages: dict[bytes, _Message] = {}
        self.counts: Counters[WorldCounter] = Counters()
        self.storage_samples: list[int] = []
        self._order: dict[bytes, list[NodeId]] = {}
        self.senders = [
            Identity.from_seed(hashlib.sha256(f"s{params.seed}/{i}".encode()).digest())
            for i in range(params.senders)
        ]
        self.recipients = [
            _Recipient(Identity.from_seed(hashlib.sha256(f"r{params.seed}/{i}".encode()).digest()))
            for i in range(params.recipients)
        ]
        self._request = 0
        self.inbox: dict[NodeId, list[bytes]] = {}
        self._in_flight: deque[tuple[NodeId, NodeId, bytes]] = deque()
        self._flushing = False
        self.last_round: dict[NodeId, float] = {}
        self.partition_replicas: list[tuple[NodeId, bytes]] = []
        self.partition_healed_at: float | None = None

    def _draw_capabilities(self) -> dict[NodeId, DeviceCapabilities]:
        weights = [share for _, share, _, _ in DEVICE_MIX]
        out = {}
        for node in self.ids:
            device, _, store, availability = self.sim.rng.choices(DEVICE_MIX, weights)[0]
            out[node] = _capabilities(device, store, availability)
        return out

    @property
    def now(self) -> float:
        return self.sim.now

    # ------------------------------------------------------------ churn

    def start(self) -> None:
        for node in self.ids:
            if self.sim.rng.random() < 0.2:  # about the KAD availability
                self.come_up(node)
                self.sim.at(
                    self.now + self.churn.draw_session(self.sim) * self.sim.rng.random(),
                    _later(self.leave, node),
                )
            else:
                back = self.now + self.churn.draw_offline(self.sim) * self.sim.rng.random()
                self.sim.at(back, _later(self.come_back, node))

    def come_up(self, node: NodeId) -> None:
        self.online.add(node)
        self.spans[node].append((self.now, math.inf))

    def go_down(self, node: NodeId) -> None:
        self.online.discard(node)
        start, _ = self.spans[node][-1]
        self.spans[node][-1] = (start, self.now)

    def leave(self, node: NodeId) -> None:
        if node not in self.online or node in self.partitioned:
            return
        self.go_down(node)
        if self.sim.rng.random() < self.p.permanent_departure:
            self.gone.add(node)
            return
        self.sim.at(self.now + self.churn.draw_offline(self.sim), lambda s: self.come_back(node))

    def come_back(self, node: NodeId) -> None:
        if node in self.partitioned or node in self.gone or node in self.online:
            return
        self.come_up(node)
        if self.repair:
            self.holders[node].repair_now(now=self.now, rejoined=True)  # SF-7.1, SF-7.4
            self.pump(node)
        self.sim.at(self.now + self.churn.draw_session(self.sim), lambda s: self.leave(node))

    # ------------------------------------------------------------ overlay

    def lookup(self, key: bytes) -> list[Candidate]:
        """A perfect DHT lookup: the `lookup_size` online nodes nearest `key`."""
        order = self._order.get(key)
        if order is None:
            order = sorted(self.ids, key=lambda n: distance(n, key))
            self._order[key] = order
        found: list[Candidate] = []
        for node in order:
            if node in self.online:
                found.append(Candidate(node_id=node, capabilities=self.caps[node]))
                if len(found) == self.p.lookup_size:
                    break
        return found

    def pump(self, node: NodeId) -> None:
        """Take `node`'s actions, then deliver what is in flight until the network is quiet."""
        self._take_actions(node)
        self.flush()

    def flush(self) -> None:
        """Deliver what is in flight, and what that causes, until the network is quiet."""
        if self._flushing:
            return
        self._flushing = True
        try:
            while self._in_flight:
                src, dst, data = self._in_flight.popleft()
                if dst in self.holders and dst in self.online:
                    self.holders[dst].receive(data, peer=src, now=self.now)
                    self._take_actions(dst)
                elif dst not in self.holders:
                    self.inbox.setdefault(dst, []).append(data)  # to senders and recipients
        finally:
            self._flushing = False

    def _take_actions(self, node: NodeId) -> None:
        holder = self.holders[node]
        while (action := holder.next_action()) is not None:
            match action:
                case Persist():
                    self._persisted(node, action)
                case Send():
                    self._deliver(node, action.peer, action.data)
                case FindHolders():
                    key = action.rendezvous_key
                    announced = sorted(self.announcers.get(key, set()) & self.online)
                    holder.holders_found(key, self.lookup(key), announced=announced, now=self.now)
                case PublishRendezvous():
                    self.counts.inc(
                        WorldCounter.DHT_PUBLISH
                    )  # the oracle index stands in for the record
                case _:
                    assert_never(action)

    def _deliver(self, src: NodeId, dst: NodeId, data: bytes) -> None:
        """Put one message in flight; `flush` delivers it (at once: hours matter here)."""
        self.counts.inc(WorldCounter.SF_MESSAGES)
        self.counts.inc(WorldCounter.SF_BYTES, len(data))
        self._in_flight.append((src, dst, data))

    def _persisted(self, node: NodeId, persist: Persist) -> None:
        for stored in persist.put:
            self.where.setdefault(stored.message_id, set()).add(node)
            self.key_holders.setdefault(stored.rendezvous_key, set()).add(node)
            self.announcers.setdefault(stored.rendezvous_key, set()).add(node)
            message = self.messages.get(stored.message_id)
            if message is not None and message.delivered_at is not None:
                self.put_after_delivery += 1
        for message_id in persist.delete:
            self.where.get(message_id, set()).discard(node)
            message = self.messages.get(message_id)
            if message is not None and message.expires_at > self.now:
                self.deleted_at.setdefault((node, message_id), self.now)
        for tomb in persist.tombstones:
            self.announcers.setdefault(tomb.rendezvous_key, set()).add(node)
        if persist.delete or persist.purge:
            self._reindex(node)

    def _reindex(self, node: NodeId) -> None:
        """Which keys `node` holds messages for, and which it announces (SF-3.4)."""
        holder = self.holders[node]
        held = {s.rendezvous_key for s in holder.held.values()}
        announced = held | {t.rendezvous_key for t in holder.tombstones.values()}
        for index, keep in ((self.key_holders, held), (self.announcers, announced)):
            for key, nodes in index.items():
                if node in nodes and key not in keep:
                    nodes.discard(node)

    # ------------------------------------------------------------ senders

    def send(self) -> None:
        """SF steps 1-3: a sender stores one message for an offline recipient on k holders."""
        offline = [i for i, r in enumerate(self.recipients) if not r.online]
        if not offline:
            self.counts.inc(WorldCounter.SEND_SKIPPED_ALL_ONLINE)
            return
        index = self.sim.rng.choice(offline)
        recipient = self.recipients[index]
        key, mailbox = self._keys(recipient, rv.epoch_of(self.now))
        sender = self.sim.rng.choice(self.senders)
        self._request += 1
        request = m.sign_store(
            sender,
            request_id=self._request,
            timestamp_ms=int(self.now * 1000),
            rendezvous_key=key,
            mailbox_key=mailbox.public_key,
            expires_ms=int((self.now + self.config.default_ttl) * 1000),
            ciphertext=self._request.to_bytes(8, "big") * 32,
            proof=vector_proof(sender.node_id, key),
        )
        self.messages[request.message_id] = _Message(
            message_id=request.message_id,
            key=key,
            recipient=index,
            sent_at=self.now,
            expires_at=request.expires_ms / 1000,
        )
        holders = choose_holders_for(self, key)
        for node in holders:
            self._deliver(sender.node_id, node, m.encode(request))
        self.flush()
        results = [m.decode(data) for data in self.inbox.pop(sender.node_id, [])]
        self.counts.inc(
            WorldCounter.STORE_ACCEPTED,
            sum(isinstance(r, m.Result) and r.status == 0 for r in results),
        )
        self.counts.inc(WorldCounter.STORED_ON_FEWER_THAN_K, int(len(holders) < self.p.redundancy))

    def _keys(self, recipient: _Recipient, epoch: int) -> tuple[bytes, Identity]:
        rid = rv.rendezvous_id(ROOM_SECRET, recipient.identity.node_id, epoch)
        key = rv.rendezvous_key(ROOM_SECRET, recipient.identity.node_id, epoch)
        if key not in recipient.keys:
            recipient.keys[key] = rv.mailbox_identity(recipient.identity.seed, rid)
        return key, recipient.keys[key]

    # ------------------------------------------------------------ recipients

    def recipient_up(self, index: int) -> None:
        recipient = self.recipients[index]
        recipient.online = True
        self.pick_up(index)
        session = self.churn.draw_session(self.sim)
        self.sim.at(self.now + session, lambda s: self.recipient_down(index))

    def recipient_down(self, index: int) -> None:
        self.recipients[index].online = False
        hours = math.exp(
            self.sim.rng.uniform(
                math.log(self.p.min_offline_hours), math.log(self.p.max_offline_hours)
            )
        )
        self.sim.at(self.now + hours * HOUR, lambda s: self.recipient_up(index))

    def pick_up(self, index: int) -> None:
        """SF steps 5-8: every epoch's key, every online holder, then receipts (SF-5, SF-4)."""
        recipient = self.recipients[index]
        for epoch in rv.pickup_epochs(self.now, ttl=self.config.default_ttl):
            key, mailbox = self._keys(recipient, epoch)
            for node in sorted(self.key_holders.get(key, set()) & self.online):
                got = self._pick_up_from(node, recipient, key, mailbox)
                for start in range(0, len(got), m.MAX_RECEIPT_IDS):
                    receipt = m.sign_receipt(
                        mailbox,
                        timestamp_ms=int(self.now * 1000),
                        rendezvous_key=key,
                        message_ids=tuple(got[start : start + 64]),
                    )
                    self._deliver(recipient.identity.node_id, node, m.encode(receipt))
                self.flush()

    def _pick_up_from(
        self, node: NodeId, recipient: _Recipient, key: bytes, mailbox: Identity
    ) -> list[bytes]:
        got: list[bytes] = []
        for _ in range(16):  # follow `more` a bounded number of times
            self._request += 1
            pickup = m.sign_pickup(
                mailbox,
                request_id=self._request,
                timestamp_ms=int(self.now * 1000),
                rendezvous_key=key,
            )
            self.counts.inc(WorldCounter.SF_MESSAGES)
            self.holders[node].receive(
                m.encode(pickup), peer=recipient.identity.node_id, now=self.now
            )
            self.pump(node)
            replies = self.inbox.pop(recipient.identity.node_id, [])
            if not replies:
                break
            decoded = m.decode(replies[-1])
            assert isinstance(decoded, m.PickupReply)
            for expires_ms, data in decoded.entries:
                message_id = m.message_id(key, mailbox.public_key, expires_ms, data)
                self._got(recipient, message_id)
                got.append(message_id)
            if not decoded.more:
                break
        return got

    def _got(self, recipient: _Recipient, message_id: bytes) -> None:
        first = recipient.got.get(message_id)
        if first is None:
            recipient.got[message_id] = self.now
            message = self.messages[message_id]
            message.delivered_at = self.now
            message.replicas_at_delivery = tuple(sorted(self.where.get(message_id, ())))
        elif self.now - first > self.p.repair_interval:
            self.redelivered += 1


def choose_holders_for(world: _World, key: bytes) -> list[NodeId]:
    """SF-3.2 on the oracle's lookup result."""
    from railgun_ref.storeforward.placement import choose_holders  # noqa: PLC0415

    return choose_holders(
        key,
        world.lookup(key),
        redundancy=world.config.redundancy,
        candidate_pool=world.config.candidate_pool,
    )


def _tick(world: _World) -> None:
    """Every repair interval: timers of online holders (repair, expiry), pickups, a sample."""
    for node in sorted(world.online):
        world.holders[node].on_timer(now=world.now)
        world.pump(node)
        world.last_round[node] = world.now
    for index, recipient in enumerate(world.recipients):
        if recipient.online:
            world.pick_up(index)
    world.storage_samples.append(sum(h.stored_bytes for h in world.holders.values()))
    if world.now + world.p.repair_interval <= world.end:
        world.sim.at(world.now + world.p.repair_interval, lambda s: _tick(world))


def _partition(world: _World) -> None:
    """Cut some holders off for `partition_days`: alive, holding, unreachable."""
    holding = sorted(n for n in world.online if world.holders[n].held)
    chosen = world.sim.rng.sample(holding, min(world.p.partitioned_holders, len(holding)))
    for node in chosen:
        world.go_down(node)
        world.partitioned.add(node)
    world.sim.at(world.now + world.p.partition_days * DAY, lambda s: _heal(world, chosen))


def _heal(world: _World, nodes: list[NodeId]) -> None:
    delivered = {i for i, msg in world.messages.items() if msg.delivered_at is not None}
    for node in nodes:
        world.partitioned.discard(node)
        held = [i for i in world.holders[node].held if i in delivered]
        world.partition_replicas.extend((node, i) for i in held)
        world.partition_healed_at = world.now
        world.come_back(node)


def simulate(params: BenchParams, *, repair: bool) -> _World:
    """One run: churn, sends in the window, recipients, ticks, the partition."""
    world = _World(params, repair=repair)
    world.start()
    for index in range(params.recipients):
        if world.sim.rng.random() < 0.5:
            world.sim.at(SIM_EPOCH, _later(world.recipient_up, index))
        else:
            world.sim.at(SIM_EPOCH, _later(world.recipient_down, index))
    window = params.send_window_days * DAY
    for _ in range(params.messages):
        world.sim.at(SIM_EPOCH + world.sim.rng.uniform(0, window), lambda s: world.send())
    world.sim.at(SIM_EPOCH + params.repair_interval, lambda s: _tick(world))
    world.sim.at(SIM_EPOCH + params.partition_start_hours * HOUR, lambda s: _partition(world))
    world.sim.run(until=world.end)
    return world


def _rate(part: float, whole: float) -> float | None:
    return None if whole == 0 else part / whole


def _first_online(world: _World, node: NodeId, after: float) -> float | None:
    """When `node` was first online at or after `after` (None: never again in the run)."""
    for start, end in world.spans[node]:
        if start <= after < end:
            return after
        if start >= after:
            return start
    return None


def _deletion(world: _World) -> dict[str, Any]:
    """Replicas present when their message was delivered: how and when they went (SF-4)."""
    interval = world.p.repair_interval
    total = deleted = in_period = back = in_period_of_back = 0
    for message in world.messages.values():
        if message.delivered_at is None:
            continue
        for node in message.replicas_at_delivery:
            total += 1
            at = world.deleted_at.get((node, message.message_id))
            deleted += at is not None
            in_period += at is not None and at - message.delivered_at <= interval
            seen = _first_online(world, node, message.delivered_at)
            if seen is not None:
                back += 1
                in_period_of_back += at is not None and at - seen <= interval
    delivered = sum(1 for msg in world.messages.values() if msg.delivered_at is not None)
    return {
        "replicas_at_delivery": total,
        "replicas_per_message_at_delivery": _rate(total, delivered),
        "deleted_after_delivery": _rate(deleted, total),
        "deleted_within_repair_period": _rate(in_period, total),
        "holders_online_again": back,
        "deleted_within_repair_period_of_holder_online": _rate(in_period_of_back, back),
    }


def _survivors(world: _World) -> int:
    """Live replicas of delivered messages on holders that ran a repair round since (SF-7.2)."""
    count = 0
    for message in world.messages.values():
        if message.delivered_at is None or message.expires_at <= world.now:
            continue
        for node in world.where.get(message.message_id, ()):
            if world.last_round.get(node, 0.0) > message.delivered_at + world.p.repair_interval:
                count += 1
    return count


def _partition_report(world: _World) -> dict[str, Any]:
    healed = world.partition_healed_at
    still = [(n, i) for n, i in world.partition_replicas if n in world.where.get(i, set())]
    return {
        "holders": world.p.partitioned_holders,
        "days": world.p.partition_days,
        "replicas_of_delivered_messages_at_heal": len(world.partition_replicas),
        "still_held_at_end": len(still),
        "healed_at_hours": None if healed is None else (healed - SIM_EPOCH) / HOUR,
    }


def _load(world: _World) -> dict[str, Any]:
    days = world.p.days
    samples = world.storage_samples or [0]
    return {
        "storage_bytes_per_node_mean": sum(samples) / len(samples) / world.p.nodes,
        "storage_bytes_per_node_peak": max(samples) / world.p.nodes,
        "sf_messages_per_node_per_day": world.counts.get_count(WorldCounter.SF_MESSAGES)
        / world.p.nodes
        / days,
        "sf_bytes_per_node_per_day": world.counts.get_count(WorldCounter.SF_BYTES)
        / world.p.nodes
        / days,
    }


def _metrics(world: _World) -> dict[str, Any]:
    sent = len(world.messages)
    delivered = sum(1 for msg in world.messages.values() if msg.delivered_at is not None)
    latencies = sorted(
        (msg.delivered_at - msg.sent_at) / HOUR
        for msg in world.messages.values()
        if msg.delivered_at is not None
    )
    survivors = _survivors(world)
    resurrections = world.redelivered + survivors + world.put_after_delivery
    return {
        "messages": sent,
        "delivered": delivered,
        "delivery_rate": _rate(delivered, sent),
        "delivery_hours_median": latencies[len(latencies) // 2] if latencies else None,
        "stored_on_fewer_than_k": world.counts.get_count(WorldCounter.STORED_ON_FEWER_THAN_K),
        "nodes_left_for_good": len(world.gone),
        **_deletion(world),
        "resurrections": resurrections,
        "redelivered_after_a_repair_period": world.redelivered,
        "live_copies_after_a_repair_round": survivors,
        "copies_made_after_delivery": world.put_after_delivery,
        "partition": _partition_report(world),
        **_load(world),
    }


def analytic_without_repair(params: BenchParams, churn: WeibullChurn) -> dict[str, float]:
    """Two bounds on delivery without repair, k holders, the recipient away for T.

    Holders are independent alternating renewal processes with the Weibull
    means: availability ``a = E[session] / (E[session] + E[offline])``; a
    holder has not left for good after time T with probability
    ``s(T) = (1 - p) ** (T / E[cycle])``. T is the recipient's offline time
    (log-uniform), integrated numerically.

    * ``first_pickup_only``: ``1 - (1 - a s(T))^k``: some holder is online at
      the recipient's first return (a lower bound: the recipient retries);
    * ``unlimited_retries``: ``1 - (1 - s(T))^k``: some holder has not left for
      good (an upper bound: it assumes the recipient eventually meets it).
    """
    session = churn.session_scale * math.gamma(1 + 1 / churn.session_shape)
    offline = churn.offline_scale * math.gamma(1 + 1 / churn.offline_shape)
    availability = session / (session + offline)
    low, high = math.log(params.min_offline_hours), math.log(params.max_offline_hours)
    steps = 400
    first = eventual = 0.0
    for i in range(steps):
        hours = math.exp(low + (high - low) * (i + 0.5) / steps)
        alive = (1 - params.permanent_departure) ** (hours * HOUR / (session + offline))
        first += 1 - (1 - availability * alive) ** params.redundancy
        eventual += 1 - (1 - alive) ** params.redundancy
    return {
        "first_pickup_only": first / steps,
        "unlimited_retries": eventual / steps,
        "holder_availability": availability,
    }


PUBLISHED: Final = {
    "session": {
        "holders": "the whole swarm of the recipient: 5-7 service nodes",
        "ttl_days": 14,
        "delete_on_delivery": False,
        "source": "Jefferys et al., Session whitepaper (2020)",
    },
    "simplex": {
        "holders": "1 server (the queue's)",
        "ttl_days": 21,
        "delete_on_delivery": True,
        "source": "SimpleX Messaging Protocol; simplexmq server default expiry",
    },
    "railgun": {
        "holders": "k = 3 by capacity among the 6 nearest",
        "ttl_days": 7,
        "delete_on_delivery": True,
        "source": "paper/spec.md section 19 (SF)",
    },
}


def _goals(with_repair: dict[str, Any]) -> dict[str, Any]:
    def goal(value: float | None, target: float, *, at_least: bool = True) -> dict[str, Any]:
        met = value is not None and (value >= target if at_least else value <= target)
        return {"value": value, "target": target, "met": met}

    return {
        "delivery_rate": goal(with_repair["delivery_rate"], 0.999),
        "deleted_within_repair_period": goal(with_repair["deleted_within_repair_period"], 0.99),
        "deleted_within_repair_period_of_holder_online": goal(
            with_repair["deleted_within_repair_period_of_holder_online"], 0.99
        ),
        "resurrections": goal(with_repair["resurrections"], 0, at_least=False),
    }


def run(params: BenchParams) -> dict[str, Any]:
    """Both runs (with and without repair) on the same seed, and the report."""
    started = time.perf_counter()
    with_world = simulate(params, repair=True)
    with_repair = _metrics(with_world)
    without_repair = _metrics(simulate(params, repair=False))
    churn = with_world.churn
    analytic = analytic_without_repair(params, churn)
    return {
        "benchmark": "storeforward",
        "parameters": {
            **asdict(params),
            "overlay": "oracle: a lookup returns the 20 online nodes nearest the key; recipients "
            "find online holders as rendezvous records show them; no Kademlia RPCs simulated",
            "cores": "real StorageHolder cores, wire messages, Ed25519 signatures, placement",
            "event_loop": "railgun_ref.drivers.sim.Simulator (virtual time, seeded RNG)",
            "churn": {
                "dataset": "datasets/churn_weibull.json (kad_session, kad_offline)",
                **{
                    k: getattr(churn, k)
                    for k in ("session_shape", "session_scale", "offline_shape", "offline_scale")
                },
            },
            "device_mix": [list(row) for row in DEVICE_MIX],
        },
        "delivery_rate": with_repair["delivery_rate"],
        "delivery_rate_without_repair": without_repair["delivery_rate"],
        "analytic_without_repair": analytic["first_pickup_only"],
        "analytic_without_repair_model": analytic,
        "deleted_after_delivery": with_repair["deleted_after_delivery"],
        "deleted_within_repair_period": with_repair["deleted_within_repair_period"],
        # Replicas deleted within one repair period of their holder's first time online
        # after the delivery: a holder that never returns cannot delete anything.
        "deleted_within_repair_period_of_holder_online": with_repair[
            "deleted_within_repair_period_of_holder_online"
        ],
        "holders_online_again": with_repair["holders_online_again"],
        "resurrections": with_repair["resurrections"],
        "storage_bytes_per_node_mean": with_repair["storage_bytes_per_node_mean"],
        "sf_messages_per_node_per_day": with_repair["sf_messages_per_node_per_day"],
        "with_repair": with_repair,
        "without_repair": without_repair,
        "published_designs": PUBLISHED,
        "goals": _goals(with_repair),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }


def main(
    *,
    json_output: bool = True,
    tiny: bool = False,
    nodes: int | None = None,
    messages: int | None = None,
    days: float | None = None,
    seed: int = 1,
    output: str | None = None,
) -> int:
    params = TINY if tiny else BenchParams()
    changes: dict[str, Any] = {"seed": seed}
    changes.update(
        {k: v for k, v in (("nodes", nodes), ("messages", messages), ("days", days)) if v}
    )
    params = replace(params, **changes)
    report = run(params)
    text = json.dumps(report, indent=2)
    if output:
        Path(output).write_text(text + "\n", encoding="utf-8")
    if json_output:
        print(text)
    else:
        for name, goal in report["goals"].items():
            print(f"{name}: {goal['value']} (target {goal['target']}, met: {goal['met']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(tiny="--tiny" in sys.argv[1:]))
