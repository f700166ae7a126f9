"""The member's side of store-and-forward (SF-8): storing for, and picking up as, a recipient.

`SfClient` is a sans-IO core (CORE-1) that one client runs beside its
P2P room core. Its driver feeds it the store-and-forward messages that
arrive for it (RESULT, PICKUP_REPLY, MAILBOX_KEYS), the holder candidates
of each key it asked for, API calls and timers; it pulls actions.

Theory of operation (clauses of spec section SF):

1. **Mailbox keys** (SF-8.1). A recipient's mailbox key changes every epoch
   and only the recipient can derive it (SF-1.4), so a member tells the
   others, over the P2P path while both are online, its mailbox public keys
   for the current epoch and the next ones (`MailboxKeys`). It does so to
   each member the first time it is reachable and again every
   ``announce_interval``; a sender keeps what it learned (persisted by the
   driver) and accepts announcements only from members of the room.
2. **Storing** (SF-8.3). When the transport could not deliver a message to
   a member, `store` seals the room blob to the member (SF-8.2), derives the
   rendezvous key of the current epoch and the store proof (SF-3.5), asks
   for holder candidates (`LookupHolders`), chooses ``redundancy`` holders
   by SF-3.2 and sends each a signed STORE. The first RESULT 0 makes the
   job *stored* (`StoredFor`, which settles the outbox for that member); a
   round where none answers 0 is retried after ``store_retry``, up to
   ``max_store_attempts`` rounds, then `StoreFailed`.
   SF-9.4: a holder that refuses for load names a price (a proof-of-work
   challenge, POW-6.2); the client asks its driver to solve it (`SolvePow`,
   bounded by ``max_pow_tries`` hashes, about one core-second) and sends that
   holder the STORE again, signed with the solution, once per round.
3. **Pickup** (SF-5, SF-8.4). On start, on reconnect (`pickup_now`) and
   every ``pickup_interval``, the recipient looks up the rendezvous key of
   every epoch a live message can be in for every room, sends a signed
   PICKUP to each candidate holder, opens what comes back, hands each
   message on (`PickedUp`; the transport's dedup makes it exactly once)
   and sends a signed RECEIPT of the ids to *every* holder it asked for the
   key, so holders that never held a replica get the tombstone too.
"""

import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, assert_never

from railgun_ref.abuse.admission import MAX_POW_TRIES, SolvePow
from railgun_ref.abuse.pow import DEFAULT_MAX_EFFORT, NONCE_SIZE, PowChallenge, PowSolution
from railgun_ref.capacity.selection import Candidate
from railgun_ref.capacity.types import DeviceCapabilities
from railgun_ref.core import cbor
from railgun_ref.core.counters import Counters
from railgun_ref.core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from railgun_ref.core.ids import Address, NodeId
from railgun_ref.dht.geometry import distance
from railgun_ref.identity.keys import Identity
from railgun_ref.storeforward import messages as m
from railgun_ref.storeforward.authorisers import room_store_proof
from railgun_ref.storeforward.holder import DEFAULT_REDUNDANCY, DEFAULT_TTL
from railgun_ref.storeforward.placement import choose_holders
from railgun_ref.storeforward.rendezvous import (
    DEFAULT_EPOCH_LENGTH,
    epoch_of,
    key_of_store_key,
    mailbox_identity,
    pickup_epochs,
    rendezvous_id,
    store_identity,
)
from railgun_ref.storeforward.sealed import open_sealed, seal, sealed_size

#: SF-8.1: mailbox keys announced per room: the current epoch and the next seven.
MAILBOX_EPOCHS: Final = 8
#: SF-8.1: announcements held from senders the room's log does not count yet.
MAX_WAITING_KEYS: Final = 256
#: SF-8.4: seconds after a return at which the member picks up again (stores in flight).
FOLLOW_UPS: Final = (2.0, 5.0, 10.0, 20.0)
#: SF-8.7: (message, member) pairs whose failed store is remembered, oldest forgotten first.
MAX_FAILED_STORES: Final = 4096


@dataclass(frozen=True, slots=True, kw_only=True)
class SfClientConfig:
    """SF-8: the member side's parameters (seconds unless stated)."""

    enabled: bool = True  #: ``storeAndForward.enabled`` (SF-2.1)
    redundancy: int = DEFAULT_REDUNDANCY  #: ``redundancyFactor`` (SF-3.2)
    candidate_pool: int = 2 * DEFAULT_REDUNDANCY  #: SF-3.2
    default_ttl: float = DEFAULT_TTL  #: ``defaultTTL`` (SF-2.3)
    epoch_length: float = DEFAULT_EPOCH_LENGTH  #: SF-1.1
    pickup_interval: float = 60.0  #: SF-8.4: periodic pickup
    announce_interval: float = 3600.0  #: SF-8.1: mailbox keys re-sent to a member
    store_timeout: float = 5.0  #: SF-8.3: a store round waits this long for RESULTs
    store_retry: float = 10.0  #: SF-8.3: pause before another round
    max_store_attempts: int = 5  #: SF-8.3: rounds before the job fails
    max_pow_effort: int = DEFAULT_MAX_EFFORT  #: SF-9.4: the highest price the client pays
    max_pow_tries: int = MAX_POW_TRIES  #: SF-9.4: hashes one solution may take
    #: SF-8.7: the longest pause before a failed store may start again
    max_store_backoff: float = 300.0

    def __post_init__(self) -> None:
        if self.redundancy < 1 or self.candidate_pool < self.redundancy:
            raise LocalProtocolError("redundancy >= 1 and candidate_pool >= redundancy")
        for name in ("default_ttl", "pickup_interval", "announce_interval", "store_timeout"):
            if not getattr(self, name) > 0:
                raise LocalProtocolError(f"{name} must be positive")


@dataclass(frozen=True, slots=True, kw_only=True)
class HolderCandidate:
    """A peer a lookup of a rendezvous key returned, with its address and capabilities."""

    node_id: NodeId
    address: Address
    capabilities: DeviceCapabilities | None  #: None: no advertisement found (pickup only)


# ----------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True, kw_only=True)
class LookupHolders:
    """Look `rendezvous_key` up (DHT-6) with capabilities; report with `holders_found`."""

    rendezvous_key: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class SendTo:
    """Send the store-and-forward message `data` to `peer` at `address`."""

    peer: NodeId
    address: Address
    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class SendMailboxKeys:
    """SF-8.1: send `data` (a MAILBOX_KEYS) to the member `member` (its P2P address)."""

    room_id: bytes
    member: NodeId
    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class PersistMailboxKeys:
    """Keep what `member` announced (`data`, a MAILBOX_KEYS) across restarts."""

    room_id: bytes
    member: NodeId
    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredFor:
    """SF-8.3: a holder kept our message for `member`: the outbox job is settled."""

    room_id: bytes
    message_id: bytes
    member: NodeId
    holder: NodeId


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreFailed:
    """SF-8.3: the message could not be stored for `member` (the transport retries later)."""

    room_id: bytes
    message_id: bytes
    member: NodeId
    reason: "StoreFailure"


@dataclass(frozen=True, slots=True, kw_only=True)
class PickedUp:
    """SF-8.4: a room message picked up from `holder`: hand it to the transport's dedup."""

    room_id: bytes
    message_id: bytes
    blob: bytes
    expires_at: float
    holder: NodeId


Action = (
    LookupHolders
    | SendTo
    | SolvePow
    | SendMailboxKeys
    | PersistMailboxKeys
    | StoredFor
    | StoreFailed
    | PickedUp
)


def _fits_a_bucket(room_id: bytes, message_id: bytes, blob: bytes) -> bool:
    """Whether `blob` seals into a bucket (SF-8.2), counting the longest expiry head."""
    plain = cbor.encode([room_id, message_id, 2**63, blob])
    return sealed_size(len(plain)) is not None


class StoreFailure(StrEnum):
    NO_MAILBOX_KEY = "no-mailbox-key"  #: the member never announced its mailbox keys
    NO_HOLDERS = "no-holders"  #: no eligible holder near the key
    REFUSED = "refused"  #: every round was refused or unanswered
    TOO_LARGE = "too-large"  #: the blob does not fit the largest bucket
    DISABLED = "disabled"  #: ``storeAndForward.enabled`` is false


class SfClientCounter(StrEnum):
    """What `SfClient.counters` counts (labels: `ErrorCode`, `StoreFailure`)."""

    STORE_SENT = "sfc.store_sent"
    STORED = "sfc.stored"  #: (message, member) settled by a RESULT 0
    STORE_REFUSED = "sfc.store_refused"  #: a RESULT with a code; label: the code
    STORE_FAILED = "sfc.store_failed"  #: label: `StoreFailure`
    STORE_DEFERRED = "sfc.store_deferred"  #: SF-8.7: a store asked for too soon after a failure
    PICKUP_SENT = "sfc.pickup_sent"
    PICKUP_ANNOUNCER = "sfc.pickup_announcer"  #: SF-8.6: pickups to announcers beyond the pool
    PICKED_UP = "sfc.picked_up"  #: messages opened from pickups
    RECEIPT_SENT = "sfc.receipt_sent"
    REJECTED = "sfc.rejected"  #: input refused; label: its code
    MAILBOX_SENT = "sfc.mailbox_sent"
    MAILBOX_LEARNED = "sfc.mailbox_learned"
    POW_ASKED = "sfc.pow_asked"  #: SF-9.4: a holder's price accepted, a solution asked for
    POW_DECLINED = "sfc.pow_declined"  #: SF-9.4: a price over ``max_pow_effort``, not paid
    POW_PAID = "sfc.pow_paid"  #: SF-9.4: a STORE sent again with a solution
    POW_UNSOLVED = "sfc.pow_unsolved"  #: SF-9.4: no solution within ``max_pow_tries``
    POW_LATE = "sfc.pow_late"  #: SF-9.4: a solution for a round that had ended


@dataclass(slots=True)
class _Room:
    secret: bytes
    members: dict[NodeId, bytes] = field(default_factory=dict)  #: NodeId -> Ed25519 key
    announced: dict[NodeId, float] = field(default_factory=dict)  #: member -> next announce


@dataclass(slots=True)
class _StoreJob:
    room_id: bytes
    message_id: bytes
    member: NodeId
    blob: bytes
    expires_at: float
    rendezvous_key: bytes = b""
    attempts: int = 0
    stored: bool = False
    pending: dict[int, NodeId] = field(default_factory=dict)  #: request id -> holder
    next_at: float | None = None  #: round timeout or retry time; None: waiting for a lookup
    retrying: bool = False  #: `next_at` is the start of the next round
    sealed: bytes = b""  #: the ciphertext, sealed once (every round stores the same message)
    expires_ms: int = 0
    mailbox: bytes = b""  #: this round's mailbox key and store proof
    proof: bytes = b""
    holders: dict[NodeId, "HolderCandidate"] = field(default_factory=dict)  #: this round's
    solving: dict[int, NodeId] = field(default_factory=dict)  #: SF-9.4: token -> holder
    paid: set[NodeId] = field(default_factory=set)  #: SF-9.4: holders paid this round


@dataclass(slots=True)
class _Pickup:
    room_id: bytes
    mailbox: Identity
    holders: dict[NodeId, Address] = field(default_factory=dict)


class SfClient:
    """One member's store-and-forward client (see the module docstring)."""

    def __init__(
        self,
        identity: Identity,
        *,
        config: SfClientConfig | None = None,
        random_bytes: Callable[[int], bytes],
        now: float,
    ) -> None:
        self.identity = identity
        self.config = config or SfClientConfig()
        self.counters: Counters[SfClientCounter] = Counters()
        self._random_bytes = random_bytes
        self._actions: deque[Action] = deque()
        self._rooms: dict[bytes, _Room] = {}
        self._mailboxes: dict[tuple[bytes, NodeId], m.MailboxKeys] = {}
        self._waiting: dict[tuple[bytes, NodeId], m.MailboxKeys] = {}  #: not members yet
        self._jobs: dict[tuple[bytes, NodeId], _StoreJob] = {}
        self._done: set[tuple[bytes, NodeId]] = set()
        #: SF-8.7: (message, member) -> (failures so far, earliest time of another try)
        self._failed: dict[tuple[bytes, NodeId], tuple[int, float]] = {}
        self._requests: dict[int, tuple[bytes, NodeId]] = {}  #: STORE request id -> job key
        self._pickups: dict[bytes, _Pickup] = {}  #: rendezvous key -> pickup in progress
        self._pickup_requests: dict[int, tuple[bytes, NodeId]] = {}  #: id -> (key, holder)
        self._lookups: set[bytes] = set()
        self._next_request = int.from_bytes(random_bytes(4), "big") + 1
        self._next_pickup: float | None = None
        self._follow_ups: list[float] = []  #: times of the follow-up pickups still due
        #: SF-3.2, REP-5.1: this node's reputation scores of peers; None: capacity alone
        self.reputation: Mapping[NodeId, int] | None = None

    # ---------------------------------------------------------------- contract

    def next_action(self) -> Action | None:
        return self._actions.popleft() if self._actions else None

    def next_deadline(self) -> float | None:
        times = [j.next_at for j in self._jobs.values() if j.next_at is not None]
        if self._next_pickup is not None:
            times.append(self._next_pickup)
        times += [at for r in self._rooms.values() for at in r.announced.values()]
        return min(times) if times else None

    def on_timer(self, *, now: float) -> None:
        if self._next_pickup is not None and now >= self._next_pickup:
            self.pickup_now(now=now, returned=False)
        for room_id, room in self._rooms.items():
            for member, at in list(room.announced.items()):
                if now >= at:
                    self._announce_to(room_id, member, now)
        for key, job in list(self._jobs.items()):
            if job.next_at is not None and now >= job.next_at:
                self._on_job_timer(key, job, now)

    # ---------------------------------------------------------------- rooms

    def add_room(self, room_id: bytes, secret: bytes, *, now: float) -> None:
        """A closed room this node is a member of (its secret gives the rendezvous ids)."""
        if room_id not in self._rooms:
            self._rooms[room_id] = _Room(secret=secret)

    def remove_room(self, room_id: bytes) -> None:
        self._rooms.pop(room_id, None)

    def set_members(self, room_id: bytes, members: Mapping[NodeId, bytes]) -> None:
        """The room's other members by its log: NodeId -> Ed25519 public key."""
        room = self._rooms.get(room_id)
        if room is not None:
            room.members = dict(members)
            for gone in set(room.announced) - set(members):
                del room.announced[gone]
            for key in [k for k in self._waiting if k[0] == room_id and k[1] in members]:
                self._learn(key[1], self._waiting.pop(key))  # SF-8.1: counted by the log now

    def members_reachable(self, room_id: bytes, members: Iterable[NodeId], *, now: float) -> None:
        """SF-8.1: these members have a P2P address now: tell each our mailbox keys once."""
        room = self._rooms.get(room_id)
        if room is None:
            return
        for member in members:
            if member in room.members and member not in room.announced:
                self._announce_to(room_id, member, now)

    def mailbox_keys(self, room_id: bytes, *, now: float) -> m.MailboxKeys:
        """SF-8.1: our mailbox public keys in `room_id` from the current epoch on."""
        room = self._rooms[room_id]
        first = epoch_of(now, self.config.epoch_length)
        keys = tuple(
            mailbox_identity(
                self.identity.seed, rendezvous_id(room.secret, self.identity.node_id, e)
            ).public_key
            for e in range(first, first + MAILBOX_EPOCHS)
        )
        return m.MailboxKeys(room_id=room_id, first_epoch=first, keys=keys)

    def known_mailboxes(self) -> int:
        """How many (room, member) mailbox keys this member has learned (SF-8.1)."""
        return len(self._mailboxes)

    def restore_mailbox_keys(self, member: NodeId, data: bytes) -> None:
        """What `PersistMailboxKeys` wrote (re-checked shape, no membership check)."""
        try:
            keys = m.decode(data)
        except RemoteProtocolError:
            return
        if isinstance(keys, m.MailboxKeys):
            self._mailboxes[(keys.room_id, member)] = keys

    def _announce_to(self, room_id: bytes, member: NodeId, now: float) -> None:
        room = self._rooms[room_id]
        room.announced[member] = now + self.config.announce_interval
        data = m.encode(self.mailbox_keys(room_id, now=now))
        self.counters.inc(SfClientCounter.MAILBOX_SENT)
        self._actions.append(SendMailboxKeys(room_id=room_id, member=member, data=data))

    # ---------------------------------------------------------------- inputs

    def receive(self, peer: NodeId, address: Address, data: bytes, *, now: float) -> None:
        """A RESULT, PICKUP_REPLY or MAILBOX_KEYS from `peer`; anything else is refused."""
        try:
            message = m.decode(data)
            match message:
                case m.Result():
                    self._on_result(message, peer, now)
                case m.PickupReply():
                    self._on_pickup_reply(message, peer, address, now)
                case m.MailboxKeys():
                    self._on_mailbox_keys(message, peer)
                case m.StoreRequest() | m.Pickup() | m.Receipt() | m.Sync() | m.Replicate():
                    raise RemoteProtocolError(ErrorCode.UNEXPECTED_RESPONSE, "not for a client")
                case _:
                    assert_never(message)
        except RemoteProtocolError as exc:
            self.counters.inc(SfClientCounter.REJECTED, label=exc.code)

    def _on_mailbox_keys(self, keys: m.MailboxKeys, peer: NodeId) -> None:
        room = self._rooms.get(keys.room_id)
        if room is None or peer not in room.members:
            # SF-8.1: held (bounded) in case our log counts the sender later (its ACCEPT
            # may still be on its way), but refused and counted now.
            if room is not None and len(self._waiting) < MAX_WAITING_KEYS:
                self._waiting[(keys.room_id, peer)] = keys
            raise RemoteProtocolError(ErrorCode.FORBIDDEN, "mailbox keys from a non-member")
        self._learn(peer, keys)

    def _learn(self, peer: NodeId, keys: m.MailboxKeys) -> None:
        self._mailboxes[(keys.room_id, peer)] = keys
        self.counters.inc(SfClientCounter.MAILBOX_LEARNED)
        self._actions.append(
            PersistMailboxKeys(room_id=keys.room_id, member=peer, data=m.encode(keys))
        )

    # ---------------------------------------------------------------- storing

    def store(
        self,
        *,
        room_id: bytes,
        message_id: bytes,
        member: NodeId,
        blob: bytes,
        expires_at: float,
        now: float,
    ) -> None:
        """SF-8.3: keep `blob` for the offline `member` on holders (idempotent per pair;
        after a failure, not again before the pause of SF-8.7)."""
        key = (message_id, member)
        if key in self._jobs or key in self._done:
            return
        failed = self._failed.get(key)
        if failed is not None and now < failed[1]:
            self.counters.inc(SfClientCounter.STORE_DEFERRED)
            return
        reason = self._cannot_store(room_id, member, now)
        if reason is None and not _fits_a_bucket(room_id, message_id, blob):
            reason = StoreFailure.TOO_LARGE  # the outbox keeps it for the other paths
        if reason is not None:
            self._fail(room_id, message_id, member, reason, now)
            return
        job = _StoreJob(
            room_id=room_id, message_id=message_id, member=member, blob=blob, expires_at=expires_at
        )
        self._jobs[key] = job
        self._start_round(job, now)

    def _cannot_store(self, room_id: bytes, member: NodeId, now: float) -> StoreFailure | None:
        if not self.config.enabled:
            return StoreFailure.DISABLED
        room = self._rooms.get(room_id)
        if (
            room is None
            or member not in room.members
            or self._mailbox_of(room_id, member, now) is None
        ):
            return StoreFailure.NO_MAILBOX_KEY
        return None

    def _mailbox_of(self, room_id: bytes, member: NodeId, now: float) -> bytes | None:
        keys = self._mailboxes.get((room_id, member))
        if keys is None:
            return None
        index = epoch_of(now, self.config.epoch_length) - keys.first_epoch
        return keys.keys[index] if 0 <= index < len(keys.keys) else None

    def _start_round(self, job: _StoreJob, now: float) -> None:
        room = self._rooms[job.room_id]
        rid = rendezvous_id(room.secret, job.member, epoch_of(now, self.config.epoch_length))
        job.rendezvous_key = key_of_store_key(store_identity(rid).public_key)
        job.attempts += 1
        job.next_at = None
        self._lookup(job.rendezvous_key)

    def _lookup(self, key: bytes) -> None:
        if key not in self._lookups:
            self._lookups.add(key)
            self._actions.append(LookupHolders(rendezvous_key=key))

    def holders_found(
        self,
        rendezvous_key: bytes,
        candidates: Sequence[HolderCandidate],
        *,
        announced: Sequence[HolderCandidate] = (),
        now: float,
    ) -> None:
        """The lookup of `rendezvous_key` ended with these peers (SF-3.2); `announced`
        are the publishers of the key's rendezvous records (SF-3.4, SF-3.7), whom a
        pickup asks too (SF-8.6)."""
        self._lookups.discard(rendezvous_key)
        by_id = {c.node_id: c for c in [*announced, *candidates]}
        ranked = [
            Candidate(node_id=c.node_id, capabilities=c.capabilities)
            for c in candidates
            if c.capabilities is not None
        ]
        for key, job in list(self._jobs.items()):
            if job.rendezvous_key == rendezvous_key and job.next_at is None:
                exclude = frozenset({self.identity.node_id, job.member})
                chosen = choose_holders(
                    rendezvous_key,
                    ranked,
                    redundancy=self.config.redundancy,
                    candidate_pool=self.config.candidate_pool,
                    exclude=exclude,
                    reputation=self.reputation,
                )
                self._send_stores(key, job, [by_id[h] for h in chosen], now)
        pickup = self._pickups.get(rendezvous_key)
        if pickup is not None:
            # SF-8.4: every peer near the key is asked, advertised or not (a holder whose
            # advertisement a lookup missed may still hold our messages).
            near = sorted(
                (c.node_id for c in candidates if c.node_id != self.identity.node_id),
                key=lambda n: distance(n, rendezvous_key),
            )
            asked = near[: self.config.candidate_pool]
            extra = sorted({a.node_id for a in announced} - set(asked) - {self.identity.node_id})
            if extra:
                self.counters.inc(SfClientCounter.PICKUP_ANNOUNCER, len(extra))
            for holder in asked + extra:
                self._send_pickup(rendezvous_key, pickup, holder, by_id[holder].address, now)

    def _send_stores(
        self,
        key: tuple[bytes, NodeId],
        job: _StoreJob,
        holders: list[HolderCandidate],
        now: float,
    ) -> None:
        if not holders:
            del self._jobs[key]
            self._fail(job.room_id, job.message_id, job.member, StoreFailure.NO_HOLDERS, now)
            return
        room = self._rooms[job.room_id]
        member_key = room.members[job.member]
        mailbox = self._mailbox_of(job.room_id, job.member, now)
        assert mailbox is not None
        if not job.sealed:
            job.expires_ms = int(min(job.expires_at, now + self.config.default_ttl) * 1000)
            job.sealed = seal(
                member_key,
                room_id=job.room_id,
                message_id=job.message_id,
                expires_ms=job.expires_ms,
                blob=job.blob,
                ephemeral_seed=self._random_bytes(32),
            )
        rid = rendezvous_id(room.secret, job.member, epoch_of(now, self.config.epoch_length))
        job.proof = room_store_proof(rid, self.identity.node_id)
        job.mailbox = mailbox
        job.holders = {h.node_id: h for h in holders}
        for holder in holders:
            self._send_store(key, job, holder, now, None)
        job.next_at = now + self.config.store_timeout

    def _send_store(
        self,
        key: tuple[bytes, NodeId],
        job: _StoreJob,
        holder: HolderCandidate,
        now: float,
        solution: PowSolution | None,
    ) -> None:
        request_id = self._new_request()
        request = m.sign_store(
            self.identity,
            request_id=request_id,
            timestamp_ms=int(now * 1000),
            rendezvous_key=job.rendezvous_key,
            mailbox_key=job.mailbox,
            expires_ms=job.expires_ms,
            ciphertext=job.sealed,
            proof=job.proof,
            pow_solution=solution,
        )
        job.pending[request_id] = holder.node_id
        self._requests[request_id] = key
        self.counters.inc(SfClientCounter.STORE_SENT)
        self._actions.append(
            SendTo(peer=holder.node_id, address=holder.address, data=m.encode(request))
        )

    def _on_result(self, result: m.Result, peer: NodeId, now: float) -> None:
        key = self._requests.get(result.request_id)
        job = self._jobs.get(key) if key is not None else None
        if key is None or job is None or job.pending.get(result.request_id) != peer:
            raise RemoteProtocolError(ErrorCode.UNEXPECTED_RESPONSE, "no such store request")
        del job.pending[result.request_id]
        del self._requests[result.request_id]
        if result.status != 0:
            self.counters.inc(SfClientCounter.STORE_REFUSED, label=ErrorCode(result.status))
            if result.challenge is not None:
                self._pay(job, peer, result.challenge)
        elif not job.stored:
            job.stored = True
            self.counters.inc(SfClientCounter.STORED)
            self._actions.append(
                StoredFor(
                    room_id=job.room_id, message_id=job.message_id, member=job.member, holder=peer
                )
            )
        if not job.pending and not job.solving:
            self._end_round(key, job, now)

    def _pay(self, job: _StoreJob, holder: NodeId, challenge: PowChallenge) -> None:
        """SF-9.4: pay a holder's price once per round, if it is one an honest client pays."""
        if job.stored or holder in job.paid or holder not in job.holders:
            return
        if challenge.effort > self.config.max_pow_effort:
            self.counters.inc(SfClientCounter.POW_DECLINED)
            return
        token = self._new_request()
        job.paid.add(holder)
        job.solving[token] = holder
        self.counters.inc(SfClientCounter.POW_ASKED)
        self._actions.append(
            SolvePow(
                token=token,
                service=holder,
                requester=self.identity.node_id,
                challenge=challenge,
                start=self._random_bytes(NONCE_SIZE),
                max_tries=self.config.max_pow_tries,
            )
        )

    def pow_solved(self, token: int, solution: PowSolution | None, *, now: float) -> None:
        """SF-9.4: the driver's answer to `SolvePow`: send the paid STORE (None: gave up)."""
        found = next(((k, j) for k, j in self._jobs.items() if token in j.solving), None)
        if found is None:
            self.counters.inc(SfClientCounter.POW_LATE)
            return
        key, job = found
        holder = job.solving.pop(token)
        if solution is None or job.stored:
            if solution is None:
                self.counters.inc(SfClientCounter.POW_UNSOLVED)
            if not job.pending and not job.solving:
                self._end_round(key, job, now)
            return
        self.counters.inc(SfClientCounter.POW_PAID)
        self._send_store(key, job, job.holders[holder], now, solution)
        job.next_at = max(job.next_at or now, now + self.config.store_timeout)

    def _on_job_timer(self, key: tuple[bytes, NodeId], job: _StoreJob, now: float) -> None:
        if job.retrying:
            job.retrying = False
            self._start_round(job, now)
        else:
            self._end_round(key, job, now)

    def _end_round(self, key: tuple[bytes, NodeId], job: _StoreJob, now: float) -> None:
        """SF-8.3: stored if any holder kept it; else retry later, or give up."""
        for request_id in job.pending:
            self._requests.pop(request_id, None)
        job.pending.clear()
        job.solving.clear()  # SF-9.4: a solution that comes later is counted and dropped
        job.paid.clear()
        if job.stored:
            del self._jobs[key]
            self._done.add(key)
            self._failed.pop(key, None)
        elif job.attempts >= self.config.max_store_attempts:
            del self._jobs[key]
            self._fail(job.room_id, job.message_id, job.member, StoreFailure.REFUSED, now)
        else:
            job.retrying = True
            job.next_at = now + self.config.store_retry

    def _fail(
        self, room_id: bytes, message_id: bytes, member: NodeId, why: StoreFailure, now: float
    ) -> None:
        """Report the failure; SF-8.7: the pair waits store_retry x 2^(failures - 1), at most
        max_store_backoff, before another store (forever if it can never fit a bucket)."""
        key = (message_id, member)
        failures = self._failed.pop(key, (0, now))[0] + 1
        pause = min(self.config.store_retry * 2 ** (failures - 1), self.config.max_store_backoff)
        self._failed[key] = (failures, math.inf if why is StoreFailure.TOO_LARGE else now + pause)
        if len(self._failed) > MAX_FAILED_STORES:
            del self._failed[next(iter(self._failed))]
        self.counters.inc(SfClientCounter.STORE_FAILED, label=why)
        self._actions.append(
            StoreFailed(room_id=room_id, message_id=message_id, member=member, reason=why)
        )

    def _new_request(self) -> int:
        request_id = self._next_request
        self._next_request = (self._next_request + 1) % 2**64 or 1
        return request_id

    # ---------------------------------------------------------------- pickup

    def pickup_now(self, *, now: float, returned: bool = True) -> None:
        """SF-5.1, SF-8.4: ask for every epoch a live message can be in, for every room.

        On a return (`returned`), pick up again `FOLLOW_UPS` seconds later: a
        sender may store for us until it notices we are back."""
        if returned:
            self._follow_ups = [now + delay for delay in FOLLOW_UPS]
        while self._follow_ups and self._follow_ups[0] <= now:
            self._follow_ups.pop(0)
        self._next_pickup = min([now + self.config.pickup_interval, *self._follow_ups])
        self._pickups.clear()
        self._pickup_requests.clear()
        epochs = pickup_epochs(
            now, ttl=self.config.default_ttl, epoch_length=self.config.epoch_length
        )
        for room_id, room in self._rooms.items():
            for epoch in epochs:
                rid = rendezvous_id(room.secret, self.identity.node_id, epoch)
                key = key_of_store_key(store_identity(rid).public_key)
                mailbox = mailbox_identity(self.identity.seed, rid)
                self._pickups[key] = _Pickup(room_id=room_id, mailbox=mailbox)
                self._lookup(key)

    def _send_pickup(
        self, key: bytes, pickup: _Pickup, holder: NodeId, address: Address, now: float
    ) -> None:
        pickup.holders[holder] = address
        request_id = self._new_request()
        self._pickup_requests[request_id] = (key, holder)
        request = m.sign_pickup(
            pickup.mailbox, request_id=request_id, timestamp_ms=int(now * 1000), rendezvous_key=key
        )
        self.counters.inc(SfClientCounter.PICKUP_SENT)
        self._actions.append(SendTo(peer=holder, address=address, data=m.encode(request)))

    def _on_pickup_reply(
        self, reply: m.PickupReply, peer: NodeId, address: Address, now: float
    ) -> None:
        asked = self._pickup_requests.pop(reply.request_id, None)
        if asked is None or asked[1] != peer:
            raise RemoteProtocolError(ErrorCode.UNEXPECTED_RESPONSE, "no such pickup")
        key = asked[0]
        pickup = self._pickups[key]
        ids: list[bytes] = []
        for expires_ms, ciphertext in reply.entries:
            ids.append(m.message_id(key, pickup.mailbox.public_key, expires_ms, ciphertext))
            self._open(pickup, ciphertext, expires_ms, peer)
        if ids:
            receipt = m.sign_receipt(
                pickup.mailbox,
                timestamp_ms=int(now * 1000),
                rendezvous_key=key,
                message_ids=tuple(ids),
            )
            data = m.encode(receipt)
            for holder, holder_address in sorted(pickup.holders.items()):
                self.counters.inc(SfClientCounter.RECEIPT_SENT)
                self._actions.append(SendTo(peer=holder, address=holder_address, data=data))
        if reply.more:
            self._send_pickup(key, pickup, peer, pickup.holders.get(peer, address), now)

    def _open(self, pickup: _Pickup, ciphertext: bytes, expires_ms: int, holder: NodeId) -> None:
        try:
            unsealed = open_sealed(self.identity, ciphertext)
        except RemoteProtocolError as exc:
            self.counters.inc(SfClientCounter.REJECTED, label=exc.code)
            return
        if unsealed.room_id != pickup.room_id:
            self.counters.inc(SfClientCounter.REJECTED, label=ErrorCode.WRONG_KEY)
            return
        self.counters.inc(SfClientCounter.PICKED_UP)
        self._actions.append(
            PickedUp(
                room_id=unsealed.room_id,
                message_id=unsealed.message_id,
                blob=unsealed.blob,
                expires_at=min(unsealed.expires_ms, expires_ms) / 1000,
                holder=holder,
            )
        )
