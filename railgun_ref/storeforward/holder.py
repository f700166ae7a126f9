"""The storage holder (SF-2 .. SF-7): keeps ciphertext for offline recipients, sans-IO.

A `StorageHolder` is what a node that can store messages (``canStoreMessages``)
runs. Its driver feeds it the bytes of store-and-forward messages with the
NodeId of the peer whose envelope carried them, ``on_timer`` at
`next_deadline`, and the holder sets it asked for; it pulls actions with
`next_action` (the core contract, CORE-1):

* `Persist`: write these changes, committed, before taking the next action
  (what a holder acknowledged survives a kill, SF-2.6);
* `Send`: send these bytes to that peer (answers, receipts, repair traffic);
* `FindHolders`: look up the rendezvous key and call `holders_found` (repair);
* `PublishRendezvous`: announce on the DHT that this node holds messages for
  the key until the given time (step 4 of the eight, SF-3.4): when it first
  keeps a message under a key, and again at every repair round.

Theory of operation (the eight store-and-forward steps of spec section SF; clauses in brackets):

1. A STORE is checked in a fixed order, so every implementation refuses with
   the same code: shape, size bucket, sender key, signature, clock skew,
   replay, expiry, TTL bound, authorisation by the injected `StoreAuthoriser`,
   tombstone, quotas (SF-3.1). A kept message is persisted, then answered
   with RESULT 0; a refusal is answered with its code and counted.
2. What a holder keeps of a message is its id, ciphertext, rendezvous key,
   mailbox key and expiry; the bucket is the ciphertext's length. The sender
   and its proof are checked and forgotten (SF-2.5).
3. A PICKUP signed by the mailbox key is answered with the messages held for
   that key, oldest expiry first (SF-5.2).
4. A RECEIPT signed by the mailbox key deletes the messages it names and
   leaves a tombstone each, kept until the message's expiry plus
   ``tombstone_grace``; a receipt naming a message held under another mailbox
   key is refused whole (SF-4.1, SF-4.2). A tombstone blocks any STORE or
   REPLICATE of the same id and mailbox key: a returning replica cannot
   resurrect a deleted message (SF-4.3).
5. Every ``repair_interval`` the holder asks for the current holder set of
   each key it holds messages (or tombstones of unexpired messages) for
   (SF-7.1) and sends each a SYNC of the ids and receipts it holds; the
   peer applies the receipts, answers with the ids it lacks
   and the receipts of ids the syncer still lists, and gets a REPLICATE of
   each id it lacks (SF-7.2, SF-7.3). Deletions so spread within one repair
   period, and lost replicas are made again. The SYNC also goes to every
   peer announcing the key, tombstone holders included, and a holder that
   rejoins copies nothing for ``rejoin_quiet`` seconds (SF-7.4), so a replica
   that missed a deletion learns of it before it can spread.
6. Expired messages and tombstones are dropped at their deadlines (SF-2.3).

Each message id moves through `MessageState` as `TRANSITIONS` allows;
anything else raises `LocalProtocolError`.
"""

import functools
import heapq
import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from types import MappingProxyType
from typing import Any, Final, Protocol

from railgun_ref.abuse.admission import AdmissionGate
from railgun_ref.abuse.pow import PowChallenge, PowError
from railgun_ref.capacity.selection import Candidate
from railgun_ref.core.constants import MAX_CLOCK_SKEW
from railgun_ref.core.counters import Counters
from railgun_ref.core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from railgun_ref.core.ids import NodeId
from railgun_ref.identity.keys import node_id_of, public_key_problem
from railgun_ref.storeforward import messages as m
from railgun_ref.storeforward.placement import choose_holders

#: SF-2.3: the default defaultTTL (HT-5.1), seconds (7 days).
DEFAULT_TTL: Final = 7 * 86_400.0
#: SF-3.2: the default redundancyFactor (HT-5.1).
DEFAULT_REDUNDANCY: Final = 3


class SfError(LocalProtocolError):
    """A store-and-forward configuration or call the caller got wrong."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreForwardConfig:
    """The parameters of SF (paper/spec.md, section SF), each with its unit and clause."""

    #: SF-2.1: ``storeAndForward.enabled`` (HT-5.1): False refuses every STORE (QUOTA).
    enabled: bool = True
    #: SF-3.2: ``redundancyFactor`` (HT-5.1): holders per message.
    redundancy: int = DEFAULT_REDUNDANCY
    #: SF-3.2: nearest eligible peers the holders are ranked among.
    candidate_pool: int = 2 * DEFAULT_REDUNDANCY
    #: SF-2.3: ``defaultTTL`` (HT-5.1), seconds.
    default_ttl: float = DEFAULT_TTL
    #: SF-2.3: longest accepted time to expiry, seconds (TTL plus clock skew).
    max_ttl: float = DEFAULT_TTL + MAX_CLOCK_SKEW
    #: SF-3.1: accepted |timestamp - now| of STORE and PICKUP, seconds.
    max_clock_skew: float = MAX_CLOCK_SKEW
    #: SF-7.1: seconds between two repair rounds.
    repair_interval: float = 3600.0
    #: SF-7.4: seconds after a rejoin during which the holder sends no REPLICATE.
    rejoin_quiet: float = 60.0
    #: SF-4.3: seconds a tombstone outlives the expiry of the message it deletes.
    tombstone_grace: float = DEFAULT_TTL
    #: SF-3.3: messages one sender may have held here at once.
    sender_quota_messages: int = 256
    #: SF-3.3: ciphertext bytes one sender may have held here at once.
    sender_quota_bytes: int = 4 * 1024 * 1024
    #: SF-3.3: messages held for one rendezvous key (one recipient in one epoch).
    recipient_quota_messages: int = 512
    #: SF-3.3: ciphertext bytes held for one rendezvous key.
    recipient_quota_bytes: int = 8 * 1024 * 1024
    #: SF-3.3: ciphertext bytes this holder keeps in all.
    total_quota_bytes: int = 256 * 1024 * 1024
    #: SF-4.2: tombstones kept per rendezvous key (receipts for unknown ids beyond are dropped).
    max_tombstones_per_key: int = 1024

    def __post_init__(self) -> None:
        if self.redundancy < 1 or self.candidate_pool < self.redundancy:
            raise SfError("redundancy >= 1 and candidate_pool >= redundancy")
        for name in ("default_ttl", "max_ttl", "max_clock_skew", "repair_interval", "rejoin_quiet"):
            if not getattr(self, name) > 0:
                raise SfError(f"{name} must be positive")
        if self.tombstone_grace < 0 or self.default_ttl > self.max_ttl:
            raise SfError("tombstone_grace >= 0 and default_ttl <= max_ttl")


DEFAULT_CONFIG: Final = StoreForwardConfig()

#: StoreForwardConfig field -> JSON name (the design's camelCase where it names one).
CONFIG_JSON: Final = {
    "enabled": "enabled",
    "redundancy": "redundancyFactor",
    "candidate_pool": "candidatePool",
    "default_ttl": "defaultTTL",
    "max_ttl": "maxTTL",
    "max_clock_skew": "maxClockSkew",
    "repair_interval": "repairInterval",
    "rejoin_quiet": "rejoinQuiet",
    "tombstone_grace": "tombstoneGrace",
    "sender_quota_messages": "senderQuotaMessages",
    "sender_quota_bytes": "senderQuotaBytes",
    "recipient_quota_messages": "recipientQuotaMessages",
    "recipient_quota_bytes": "recipientQuotaBytes",
    "total_quota_bytes": "totalQuotaBytes",
    "max_tombstones_per_key": "maxTombstonesPerKey",
}


def config_to_json(config: StoreForwardConfig) -> dict[str, Any]:
    """The JSON form of `config` (times in seconds, sizes in bytes)."""
    return {json: getattr(config, name) for name, json in CONFIG_JSON.items()}


def config_from_json(value: object) -> StoreForwardConfig:
    """Parse the JSON form; absent fields take their defaults."""
    if not isinstance(value, dict):
        raise SfError("a store-and-forward config is a JSON object")
    unknown = sorted(set(value) - set(CONFIG_JSON.values()))
    if unknown:
        raise SfError(f"unknown store-and-forward config field {unknown[0]!r}")
    return StoreForwardConfig(
        **{name: value[json] for name, json in CONFIG_JSON.items() if json in value}
    )


class StoreAuthoriser(Protocol):
    """SF-3.5: decides whether `sender` may store for the recipient behind `rendezvous_key`.

    Closed rooms (ROOM membership) provide the real one: `proof` shows the
    sender is a member of the recipient's room without naming the room.
    """

    def may_store(self, sender: NodeId, rendezvous_key: bytes, proof: bytes, *, now: float) -> bool:
        """True if the store may proceed."""
        ...


class MessageState(Enum):
    """SF-4.4: what a holder knows of one message id."""

    ABSENT = "absent"
    HELD = "held"
    TOMBSTONED = "tombstoned"


class Trigger(Enum):
    """SF-4.4: what moves a message id from one state to another."""

    STORED = "stored"  #: a STORE was accepted
    REPLICATED = "replicated"  #: a REPLICATE was accepted
    RECEIPT = "receipt"  #: a valid receipt named it
    EXPIRED = "expired"  #: its expiry passed
    TOMBSTONE_EXPIRED = "tombstone-expired"  #: its tombstone's time passed


#: SF-4.4: the transition table; a (state, trigger) pair not listed is a bug.
TRANSITIONS: Final[Mapping[MessageState, Mapping[Trigger, MessageState]]] = MappingProxyType(
    {
        MessageState.ABSENT: MappingProxyType(
            {
                Trigger.STORED: MessageState.HELD,
                Trigger.REPLICATED: MessageState.HELD,
                Trigger.RECEIPT: MessageState.TOMBSTONED,
            }
        ),
        MessageState.HELD: MappingProxyType(
            {Trigger.RECEIPT: MessageState.TOMBSTONED, Trigger.EXPIRED: MessageState.ABSENT}
        ),
        MessageState.TOMBSTONED: MappingProxyType(
            {
                Trigger.RECEIPT: MessageState.TOMBSTONED,
                Trigger.TOMBSTONE_EXPIRED: MessageState.ABSENT,
            }
        ),
    }
)


def state_diagram() -> str:
    """The Mermaid state diagram of `TRANSITIONS` (paper/spec.md SF-4.4 embeds it)."""
    lines = ["stateDiagram-v2", "    [*] --> absent"]
    for state, row in TRANSITIONS.items():
        for trigger, target in row.items():
            lines.append(f"    {state.value} --> {target.value}: {trigger.value}")
    return "\n".join(lines)


class SfCounter(StrEnum):
    """What `StorageHolder.counters` counts."""

    STORED = "sf.stored"  #: a STORE kept
    DUPLICATE = "sf.duplicate"  #: a STORE or REPLICATE of a message already held
    REFUSED = "sf.refused"  #: an input refused; labelled with its ErrorCode
    REPLICATED = "sf.replicated"  #: a REPLICATE kept
    PICKED_UP = "sf.picked_up"  #: messages handed to a recipient
    DELETED = "sf.deleted"  #: messages deleted by a receipt
    TOMBSTONED = "sf.tombstoned"  #: tombstones created
    EXPIRED = "sf.expired"  #: messages dropped at expiry
    TOMBSTONE_PURGED = "sf.tombstone_purged"  #: tombstones dropped after their time
    SYNC_SENT = "sf.sync_sent"  #: SYNC messages sent in repair


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredMessage:
    """SF-2.5: everything a holder keeps of a message."""

    message_id: bytes
    rendezvous_key: bytes
    mailbox_key: bytes
    expires_ms: int
    ciphertext: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Tombstone:
    """SF-4.3: a deleted message id, bound to its mailbox key, with the receipt that deleted it."""

    message_id: bytes
    mailbox_key: bytes
    rendezvous_key: bytes
    keep_until_ms: int
    receipt: bytes  #: the encoded RECEIPT, forwarded to other holders


@dataclass(frozen=True, slots=True, kw_only=True)
class Persist:
    """Commit these changes before the next action (SF-2.6)."""

    put: tuple[StoredMessage, ...] = ()
    delete: tuple[bytes, ...] = ()  #: message ids
    tombstones: tuple[Tombstone, ...] = ()
    purge: tuple[tuple[bytes, bytes], ...] = ()  #: (message id, mailbox key) of tombstones

    def to_json(self) -> dict[str, Any]:
        return {
            "action": "persist",
            "put": [s.message_id.hex() for s in self.put],
            "delete": [i.hex() for i in self.delete],
            "tombstones": [t.message_id.hex() for t in self.tombstones],
            "purge": [i.hex() for i, _ in self.purge],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Send:
    """Send `data` (a store-and-forward message) to `peer`."""

    peer: NodeId
    data: bytes

    def to_json(self) -> dict[str, Any]:
        return {"action": "send", "peer": self.peer.hex(), "data": self.data.hex()}


@dataclass(frozen=True, slots=True, kw_only=True)
class FindHolders:
    """SF-7.1: look up `rendezvous_key` and report the candidates with `holders_found`."""

    rendezvous_key: bytes

    def to_json(self) -> dict[str, Any]:
        return {"action": "find-holders", "rendezvousKey": self.rendezvous_key.hex()}


@dataclass(frozen=True, slots=True, kw_only=True)
class PublishRendezvous:
    """SF-3.4: announce on the DHT that this node holds messages for the key until `expires_at`."""

    rendezvous_key: bytes
    expires_at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "action": "publish-rendezvous",
            "rendezvousKey": self.rendezvous_key.hex(),
            "expiresAt": self.expires_at,
        }


Action = Persist | Send | FindHolders | PublishRendezvous


@dataclass(slots=True)
class _Usage:
    messages: int = 0
    size: int = 0
    ids: set[bytes] = field(default_factory=set)


class StorageHolder:
    """SF-2 .. SF-7: one node's store of messages for offline recipients (see the module doc)."""

    def __init__(
        self,
        node_id: NodeId,
        *,
        authoriser: StoreAuthoriser,
        config: StoreForwardConfig = DEFAULT_CONFIG,
        restored: Iterable[StoredMessage] = (),
        restored_tombstones: Iterable[Tombstone] = (),
        admission: "StoreGate | None" = None,
        now: float,
    ) -> None:
        self.node_id = node_id
        #: SF-9.3: admission by proof of work under load; None serves every STORE at once.
        self.admission = admission
        self.config = config
        self._authoriser = authoriser
        self._held: dict[bytes, StoredMessage] = {}
        self._tombstones: dict[tuple[bytes, bytes], Tombstone] = {}
        self._tomb_ids: dict[bytes, int] = {}
        self._by_key: dict[bytes, _Usage] = {}
        self._by_sender: dict[NodeId, _Usage] = {}
        self._total = 0
        self._seen: dict[tuple[bytes, int], float] = {}  # (signer key, request id) -> forget at
        self._expiries: list[tuple[int, int, bytes]] = []  # (ms, kind 0 msg/1 tomb, id)
        self._actions: deque[Action] = deque()
        self._counters: Counters[SfCounter] = Counters()
        self._next_repair = now + config.repair_interval
        self._quiet_until = -math.inf
        #: SF-3.4: keys this holder has announced since it started (renewed each repair round)
        self._announced: set[bytes] = set()
        self.last_refusal: ErrorCode | None = None
        #: SF-3.2, REP-5.1: this node's reputation scores of peers for repair; None: capacity
        self.reputation: Mapping[NodeId, int] | None = None
        for stored in restored:
            self._keep(stored, sender=None)
        for tomb in restored_tombstones:
            self._add_tombstone(tomb)

    # ---------------------------------------------------------------- views

    @property
    def counters(self) -> Counters[SfCounter]:
        return self._counters

    @property
    def held(self) -> Mapping[bytes, StoredMessage]:
        return MappingProxyType(self._held)

    @property
    def tombstones(self) -> Mapping[tuple[bytes, bytes], Tombstone]:
        return MappingProxyType(self._tombstones)

    @property
    def stored_bytes(self) -> int:
        return self._total

    def state_of(self, message_id: bytes) -> MessageState:
        if message_id in self._held:
            return MessageState.HELD
        if self._tomb_ids.get(message_id, 0):
            return MessageState.TOMBSTONED
        return MessageState.ABSENT

    def next_action(self) -> Action | None:
        """CORE-1.2: the oldest action not yet taken, or None."""
        return self._actions.popleft() if self._actions else None

    def next_deadline(self) -> float | None:
        """CORE-1.3: the next repair round, expiry or admission (SF-9.3), whichever is first."""
        times = [self._next_repair]
        if self._expiries:
            times.append(self._expiries[0][0] / 1000)
        gate = self.admission.next_deadline() if self.admission is not None else None
        if gate is not None:
            times.append(gate)
        return min(times)

    # ---------------------------------------------------------------- inputs

    def receive(self, data: bytes, *, peer: NodeId, now: float) -> None:
        """SF-6.2: one store-and-forward message from `peer`; bad input is refused and counted."""
        self.last_refusal = None
        try:
            message = m.decode(data)
        except RemoteProtocolError as exc:
            self._refuse(exc.code)
            return
        match message:
            case m.StoreRequest():
                self._on_store(message, peer, now)
            case m.Pickup():
                self._guard(lambda: self._on_pickup(message, peer, now))
            case m.Receipt():
                self._guard(lambda: self._apply_receipt(message, now))
            case m.Sync():
                self._guard(lambda: self._on_sync(message, peer, now))
            case m.Replicate():
                self._guard(lambda: self._on_replicate(message, peer, now))
            case m.Result() | m.PickupReply() | m.MailboxKeys():
                self._refuse(ErrorCode.UNEXPECTED_RESPONSE)

    def holders_found(
        self,
        rendezvous_key: bytes,
        candidates: Sequence[Candidate],
        *,
        announced: Sequence[NodeId] = (),
        now: float,
    ) -> None:
        """SF-7.2: SYNC with the key's holder set now and with every peer announcing the key.

        `candidates` are the lookup's peers with their capabilities (SF-3.2);
        `announced` the publishers of the key's ``rendezvous`` records (SF-3.4),
        which include the holders that saw the recipient's receipts.
        """
        targets = choose_holders(
            rendezvous_key,
            candidates,
            redundancy=self.config.redundancy,
            candidate_pool=self.config.candidate_pool,
            exclude=frozenset({self.node_id}),
            reputation=self.reputation,
        )
        targets += sorted(set(announced) - set(targets) - {self.node_id})
        ids = tuple(sorted(i for i, s in self._held.items() if s.rendezvous_key == rendezvous_key))
        receipts = self._receipts_for(rendezvous_key, None)
        if not ids and not receipts:
            return
        sync = m.Sync(
            reply=False,
            rendezvous_key=rendezvous_key,
            message_ids=ids[: m.MAX_SYNC_IDS],
            receipts=receipts,
        )
        data = m.encode(sync)
        for target in targets:
            self._counters.inc(SfCounter.SYNC_SENT)
            self._actions.append(Send(peer=target, data=data))

    def on_timer(self, *, now: float) -> None:
        """CORE-1.3: expiries due, and the repair round (SF-2.3, SF-7.1)."""
        self._expire(now)
        if now >= self._next_repair:
            self._next_repair = now + self.config.repair_interval
            self.repair_now(now=now)
        for key in [k for k, at in self._seen.items() if at <= now]:
            del self._seen[key]
        self._serve_admitted(now)

    def repair_now(self, *, now: float, rejoined: bool = False) -> None:
        """SF-7.1: start a repair round at once; a driver calls it with `rejoined` on rejoin.

        SF-7.4: after a rejoin with replicas held the holder only learns for
        ``rejoin_quiet`` seconds (it answers no SYNC_REPLY with a REPLICATE), so
        a replica that missed a deletion meets the receipt before it can be
        copied again; a holder that rejoins holding nothing is not quiet.
        """
        if rejoined and self._held:  # SF-7.4: no replica held, none can have missed a deletion
            self._quiet_until = now + self.config.rejoin_quiet
        latest: dict[bytes, int] = {}
        for stored in self._held.values():
            key = stored.rendezvous_key
            latest[key] = max(latest.get(key, 0), stored.expires_ms)
        grace_ms = int(self.config.tombstone_grace * 1000)
        live_tombs = {  # SF-7.1: deletions of messages a replica of which may still be alive
            t.rendezvous_key
            for t in self._tombstones.values()
            if t.keep_until_ms - grace_ms > now * 1000
        }
        for key in sorted(set(latest) | live_tombs):
            self._actions.append(FindHolders(rendezvous_key=key))
        for tomb in self._tombstones.values():  # SF-3.4: tombstone holders stay announced
            key = tomb.rendezvous_key
            latest[key] = max(
                latest.get(key, 0), min(tomb.keep_until_ms, int((now + self.config.max_ttl) * 1000))
            )
        self._announced = set(latest)
        for key in sorted(latest):
            self._actions.append(
                PublishRendezvous(rendezvous_key=key, expires_at=latest[key] / 1000)
            )

    # ---------------------------------------------------------------- store

    def _on_store(self, request: m.StoreRequest, peer: NodeId, now: float) -> None:
        if self.admission is not None:
            self._admit_store(self.admission, request, peer, now)
            return
        try:
            sender = self._check_store(request, now)
        except RemoteProtocolError as exc:
            self._refuse(exc.code)
            self._reply(peer, request, exc.code)
            return
        self._keep_stored(request, peer, sender)

    def _admit_store(
        self, gate: "StoreGate", request: m.StoreRequest, peer: NodeId, now: float
    ) -> None:
        """SF-9.3: the signed-request checks, then the proof of work and the queue."""
        try:
            self._check_signed(request, now)
            self._remember(request.sender_key, request.request_id, request.timestamp_ms)
            gate.offer(
                node_id_of(request.sender_key), request.pow_solution, (request, peer), now=now
            )
        except PowError as exc:  # POW-3.2: counted by reason in gate.pow.counters
            self._refuse(exc.code)
            self._reply(peer, request, exc.code, gate.challenge())
        except RemoteProtocolError as exc:
            self._refuse(exc.code)
            self._reply(peer, request, exc.code)
        self._serve_admitted(now)

    def _serve_admitted(self, now: float) -> None:
        """SF-9.3: answer what the queue shed (QUOTA with a challenge), serve what it admits."""
        gate = self.admission
        if gate is None:
            return
        ready = gate.ready(now=now)
        for (request, peer), challenge in gate.shed():
            self._refuse(ErrorCode.QUOTA)
            self._reply(peer, request, ErrorCode.QUOTA, challenge)
        for request, peer in ready:
            try:
                sender = self._check_admissible(request, now)
            except RemoteProtocolError as exc:
                self._refuse(exc.code)
                self._reply(peer, request, exc.code)
                continue
            self._keep_stored(request, peer, sender)

    def _keep_stored(self, request: m.StoreRequest, peer: NodeId, sender: NodeId) -> None:
        stored = self._stored_from(
            request.rendezvous_key, request.mailbox_key, request.expires_ms, request.ciphertext
        )
        if stored.message_id in self._held:
            self._counters.inc(SfCounter.DUPLICATE)
        else:
            self._transition(stored.message_id, Trigger.STORED)
            self._keep(stored, sender=sender)
            self._counters.inc(SfCounter.STORED)
            self._actions.append(Persist(put=(stored,)))
        self._reply(peer, request, None)
        self._announce_first(stored)  # SF-3.7: after the answer; once per key

    def _check_store(self, request: m.StoreRequest, now: float) -> NodeId:
        """SF-3.1: the checks of a STORE, in order; returns the sender's NodeId."""
        self._check_signed(request, now)
        sender = self._check_admissible(request, now)
        self._remember(request.sender_key, request.request_id, request.timestamp_ms)
        return sender

    def _check_signed(self, request: m.StoreRequest, now: float) -> None:
        """SF-3.1: sender key, signature, clock skew and replay (before any queue, SF-9.3)."""
        problem = public_key_problem(request.sender_key)
        if problem is not None:
            raise RemoteProtocolError(ErrorCode.BAD_KEY, problem)
        if not request.signature_ok():
            raise RemoteProtocolError(ErrorCode.BAD_SIGNATURE, "store signature does not verify")
        self._check_fresh(request.sender_key, request.request_id, request.timestamp_ms, now)

    def _check_admissible(self, request: m.StoreRequest, now: float) -> NodeId:
        """SF-3.1: expiry, ``enabled``, authorisation, tombstone and quotas."""
        self._check_expiry(request.expires_ms, now)
        sender = node_id_of(request.sender_key)
        if not self.config.enabled:
            raise RemoteProtocolError(ErrorCode.QUOTA, "store-and-forward is disabled here")
        if not self._authoriser.may_store(sender, request.rendezvous_key, request.proof, now=now):
            raise RemoteProtocolError(ErrorCode.FORBIDDEN, "sender may not store for this key")
        self._check_room(
            request.message_id,
            request.mailbox_key,
            request.rendezvous_key,
            len(request.ciphertext),
            sender,
        )
        return sender

    def _check_fresh(self, key: bytes, request_id: int, timestamp_ms: int, now: float) -> None:
        if abs(timestamp_ms / 1000 - now) > self.config.max_clock_skew:
            raise RemoteProtocolError(ErrorCode.STALE, "timestamp outside the clock skew")
        if (key, request_id) in self._seen:
            raise RemoteProtocolError(ErrorCode.REPLAY, "request id already seen")

    def _remember(self, key: bytes, request_id: int, timestamp_ms: int) -> None:
        self._seen[(key, request_id)] = timestamp_ms / 1000 + 2 * self.config.max_clock_skew

    def _check_expiry(self, expires_ms: int, now: float) -> None:
        if expires_ms / 1000 <= now:
            raise RemoteProtocolError(ErrorCode.EXPIRED, "message expiry is past")
        if expires_ms / 1000 > now + self.config.max_ttl:
            raise RemoteProtocolError(ErrorCode.TTL_TOO_LONG, "message expires too far ahead")

    def _check_room(
        self, message_id: bytes, mailbox: bytes, key: bytes, size: int, sender: NodeId | None
    ) -> None:
        """SF-4.3 then SF-3.3: no tombstone, and room under every quota."""
        if (message_id, mailbox) in self._tombstones:
            raise RemoteProtocolError(ErrorCode.DELETED, "message was delivered and deleted")
        if message_id in self._held:
            return  # a duplicate costs nothing
        c = self.config
        usage = self._by_key.get(key, _Usage())
        if (
            usage.messages + 1 > c.recipient_quota_messages
            or usage.size + size > c.recipient_quota_bytes
        ):
            raise RemoteProtocolError(ErrorCode.QUOTA, "recipient quota reached")
        if sender is not None:
            mine = self._by_sender.get(sender, _Usage())
            if (
                mine.messages + 1 > c.sender_quota_messages
                or mine.size + size > c.sender_quota_bytes
            ):
                raise RemoteProtocolError(ErrorCode.QUOTA, "sender quota reached")
        if self._total + size > c.total_quota_bytes:
            raise RemoteProtocolError(ErrorCode.QUOTA, "holder storage full")

    def _reply(
        self,
        peer: NodeId,
        request: m.StoreRequest,
        code: ErrorCode | None,
        challenge: PowChallenge | None = None,
    ) -> None:
        result = m.Result(
            request_id=request.request_id,
            status=0 if code is None else int(code),
            message_id=request.message_id,
            challenge=challenge,
        )
        self._actions.append(Send(peer=peer, data=m.encode(result)))

    # ---------------------------------------------------------------- pickup and receipts

    def _on_pickup(self, pickup: m.Pickup, peer: NodeId, now: float) -> None:
        if not pickup.signature_ok():
            raise RemoteProtocolError(ErrorCode.BAD_SIGNATURE, "pickup signature does not verify")
        self._check_fresh(pickup.mailbox_key, pickup.request_id, pickup.timestamp_ms, now)
        self._remember(pickup.mailbox_key, pickup.request_id, pickup.timestamp_ms)
        mine = sorted(
            (
                s
                for s in self._held.values()
                if s.rendezvous_key == pickup.rendezvous_key and s.mailbox_key == pickup.mailbox_key
            ),
            key=lambda s: (s.expires_ms, s.message_id),
        )
        entries: list[tuple[int, bytes]] = []
        budget = m.BUCKETS[-1]
        for stored in mine[: m.MAX_PICKUP_ENTRIES]:
            if entries and len(stored.ciphertext) > budget:
                break
            budget -= len(stored.ciphertext)
            entries.append((stored.expires_ms, stored.ciphertext))
        self._counters.inc(SfCounter.PICKED_UP, len(entries))
        reply = m.PickupReply(
            request_id=pickup.request_id, entries=tuple(entries), more=len(entries) < len(mine)
        )
        self._actions.append(Send(peer=peer, data=m.encode(reply)))

    def _apply_receipt(self, receipt: m.Receipt, now: float) -> None:
        """SF-4.1, SF-4.2: delete what the recipient got; tombstone each id."""
        if all((i, receipt.mailbox_key) in self._tombstones for i in receipt.message_ids):
            return  # already applied: receipts are idempotent, and repair repeats them
        if not receipt.signature_ok():
            raise RemoteProtocolError(ErrorCode.BAD_SIGNATURE, "receipt signature does not verify")
        for message_id in receipt.message_ids:
            stored = self._held.get(message_id)
            if stored is not None and stored.mailbox_key != receipt.mailbox_key:
                raise RemoteProtocolError(ErrorCode.WRONG_SENDER, "receipt for another's message")
        encoded = m.encode(receipt)
        deleted: list[bytes] = []
        tombs: list[Tombstone] = []
        for message_id in receipt.message_ids:
            if (message_id, receipt.mailbox_key) in self._tombstones:
                continue
            stored = self._held.get(message_id)
            if stored is None and not self._tombstone_room(receipt.rendezvous_key):
                continue
            expires_ms = (
                stored.expires_ms
                if stored
                else receipt.timestamp_ms + int(self.config.max_ttl * 1000)
            )
            self._transition(message_id, Trigger.RECEIPT)
            if stored is not None:
                self._drop(stored)
                deleted.append(message_id)
                self._counters.inc(SfCounter.DELETED)
            tomb = Tombstone(
                message_id=message_id,
                mailbox_key=receipt.mailbox_key,
                rendezvous_key=receipt.rendezvous_key,
                keep_until_ms=expires_ms + int(self.config.tombstone_grace * 1000),
                receipt=encoded,
            )
            self._add_tombstone(tomb)
            tombs.append(tomb)
        if deleted or tombs:
            self._actions.append(Persist(delete=tuple(deleted), tombstones=tuple(tombs)))

    def _tombstone_room(self, key: bytes) -> bool:
        count = sum(1 for t in self._tombstones.values() if t.rendezvous_key == key)
        return count < self.config.max_tombstones_per_key

    # ---------------------------------------------------------------- repair

    def _on_sync(self, sync: m.Sync, peer: NodeId, now: float) -> None:
        for receipt in sync.receipts:
            self._guard(functools.partial(self._apply_receipt, receipt, now))
        if sync.reply:
            if now < self._quiet_until:  # SF-7.4: learning only, just after a rejoin
                return
            for message_id in sync.message_ids:
                stored = self._held.get(message_id)
                if stored is not None and stored.rendezvous_key == sync.rendezvous_key:
                    replica = m.Replicate(
                        rendezvous_key=stored.rendezvous_key,
                        mailbox_key=stored.mailbox_key,
                        expires_ms=stored.expires_ms,
                        ciphertext=stored.ciphertext,
                    )
                    self._actions.append(Send(peer=peer, data=m.encode(replica)))
            return
        listed = set(sync.message_ids)
        wanted = tuple(i for i in sync.message_ids if self.state_of(i) is MessageState.ABSENT)
        reply = m.Sync(
            reply=True,
            rendezvous_key=sync.rendezvous_key,
            message_ids=wanted,
            receipts=self._receipts_for(sync.rendezvous_key, listed),
        )
        self._actions.append(Send(peer=peer, data=m.encode(reply)))

    def _receipts_for(self, key: bytes, listed: set[bytes] | None) -> tuple[m.Receipt, ...]:
        """The receipts behind this key's tombstones (those naming `listed` ids, if given)."""
        out: dict[bytes, m.Receipt] = {}
        for tomb in self._tombstones.values():
            if tomb.rendezvous_key != key or (listed is not None and tomb.message_id not in listed):
                continue
            if tomb.receipt not in out:
                decoded = m.decode(tomb.receipt)
                assert isinstance(decoded, m.Receipt)
                out[tomb.receipt] = decoded
        return tuple(out[k] for k in sorted(out))[: m.MAX_SYNC_RECEIPTS]

    def _on_replicate(self, replica: m.Replicate, peer: NodeId, now: float) -> None:
        """SF-7.3: a copy from another holder, under the same expiry, tombstone and quota rules."""
        self._check_expiry(replica.expires_ms, now)
        if not self.config.enabled:
            raise RemoteProtocolError(ErrorCode.QUOTA, "store-and-forward is disabled here")
        stored = self._stored_from(
            replica.rendezvous_key, replica.mailbox_key, replica.expires_ms, replica.ciphertext
        )
        self._check_room(
            stored.message_id,
            stored.mailbox_key,
            stored.rendezvous_key,
            len(stored.ciphertext),
            peer,
        )
        if stored.message_id in self._held:
            self._counters.inc(SfCounter.DUPLICATE)
            return
        self._transition(stored.message_id, Trigger.REPLICATED)
        self._keep(stored, sender=peer)
        self._counters.inc(SfCounter.REPLICATED)
        self._actions.append(Persist(put=(stored,)))
        self._announce_first(stored)

    # ---------------------------------------------------------------- internals

    def _announce_first(self, stored: StoredMessage) -> None:
        """SF-3.7: the first message kept under a key is announced at once (after its
        Persist and answer); repair rounds renew the announcement with the latest expiry."""
        key = stored.rendezvous_key
        if key not in self._announced:
            self._announced.add(key)
            self._actions.append(
                PublishRendezvous(rendezvous_key=key, expires_at=stored.expires_ms / 1000)
            )

    def _guard(self, call: "_Call") -> None:
        try:
            call()
        except RemoteProtocolError as exc:
            self._refuse(exc.code)

    def _refuse(self, code: ErrorCode) -> None:
        self.last_refusal = code
        self._counters.inc(SfCounter.REFUSED, label=code)

    def _transition(self, message_id: bytes, trigger: Trigger) -> None:
        state = self.state_of(message_id)
        if trigger not in TRANSITIONS[state]:
            raise LocalProtocolError(f"{trigger.value} is not allowed in {state.value}")

    @staticmethod
    def _stored_from(key: bytes, mailbox: bytes, expires_ms: int, data: bytes) -> StoredMessage:
        return StoredMessage(
            message_id=m.message_id(key, mailbox, expires_ms, data),
            rendezvous_key=key,
            mailbox_key=mailbox,
            expires_ms=expires_ms,
            ciphertext=data,
        )

    def _keep(self, stored: StoredMessage, *, sender: NodeId | None) -> None:
        self._held[stored.message_id] = stored
        size = len(stored.ciphertext)
        self._total += size
        usages = [self._by_key.setdefault(stored.rendezvous_key, _Usage())]
        if sender is not None:
            usages.append(self._by_sender.setdefault(sender, _Usage()))
        for usage in usages:
            usage.messages += 1
            usage.size += size
            usage.ids.add(stored.message_id)
        heapq.heappush(self._expiries, (stored.expires_ms, 0, stored.message_id))

    def _drop(self, stored: StoredMessage) -> None:
        del self._held[stored.message_id]
        size = len(stored.ciphertext)
        self._total -= size
        for table, owner in (
            (self._by_key, stored.rendezvous_key),
            *(
                (self._by_sender, s)
                for s, u in self._by_sender.items()
                if stored.message_id in u.ids
            ),
        ):
            usage = table[owner]  # type: ignore[index]
            usage.messages -= 1
            usage.size -= size
            usage.ids.discard(stored.message_id)

    def _add_tombstone(self, tomb: Tombstone) -> None:
        if (tomb.message_id, tomb.mailbox_key) not in self._tombstones:
            self._tomb_ids[tomb.message_id] = self._tomb_ids.get(tomb.message_id, 0) + 1
        self._tombstones[(tomb.message_id, tomb.mailbox_key)] = tomb
        self._counters.inc(SfCounter.TOMBSTONED)
        heapq.heappush(self._expiries, (tomb.keep_until_ms, 1, tomb.message_id))

    def _expire(self, now: float) -> None:
        """SF-2.3, SF-4.3: drop messages past expiry and tombstones past their time."""
        deleted: list[bytes] = []
        purged: list[tuple[bytes, bytes]] = []
        while self._expiries and self._expiries[0][0] / 1000 <= now:
            at, kind, message_id = heapq.heappop(self._expiries)
            if kind == 0:
                stored = self._held.get(message_id)
                if stored is not None and stored.expires_ms == at:
                    self._transition(message_id, Trigger.EXPIRED)
                    self._drop(stored)
                    deleted.append(message_id)
                    self._counters.inc(SfCounter.EXPIRED)
                continue
            for key, tomb in list(self._tombstones.items()):
                if key[0] == message_id and tomb.keep_until_ms <= at:
                    del self._tombstones[key]
                    self._tomb_ids[message_id] -= 1
                    purged.append(key)
                    self._counters.inc(SfCounter.TOMBSTONE_PURGED)
        if deleted or purged:
            self._actions.append(Persist(delete=tuple(deleted), purge=tuple(purged)))


#: SF-9.3: the admission gate of a holder; it queues (STORE, the peer that carried it).
StoreGate = AdmissionGate[tuple[m.StoreRequest, NodeId]]


class _Call(Protocol):
    def __call__(self) -> None: ...
