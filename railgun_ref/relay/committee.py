"""Committee relays (RLY): a few peers per room forward its ciphertext (sans-IO).

When members of a room cannot reach each other and no member can bridge
(HT-6.5) — the design's scenario 3, "peer relay committees" — a small
committee of relays, chosen per room, forwards the room's sealed messages.

Theory of operation:

1. **Committee** (RLY-1). Among the peers whose capability advertisements
   (CAP-3) a member knows, those eligible for the ``relay`` role (CAP-4.2,
   CAP-4.3) are ordered by XOR distance (DHT-1) to the room's DHT key
   (``derive_key(room, dht ident)``); the `pool` nearest form the pool, and
   the `size` best of the pool by capacity score (CAP-4.4) are the
   committee. Every member with the same view picks the same committee;
   `all_malicious_probability` gives the chance an adversary fills it.
2. **Request** (RLY-2). A member sends a `RelayFrame` on APP topic
   `APP_TOPIC_RELAY` to each committee relay: the room id, its DHT ident,
   the message id, the expiry and the sealed blob (ROOM-1.3).
3. **Forwarding** (RLY-3). The relay learns the room's members as any
   non-member does: the publishers of room records under the DHT ident
   whose proof of the room secret verifies (ROOM-6.2), looked up with
   `LookupRoom` and fed back with `members_found`. It forwards a request
   only from such a publisher, sends each member except the requester one
   ROOM frame (HT-6.2, no hops, no relay_to), charges each copy to the
   sharing budget (duty ``relay``, CAP-7) and holds one ``relay`` slot per
   room with messages in flight. A repeated request re-sends to the
   members that have not acknowledged yet.
4. **Receipts** (RLY-4). Members acknowledge the relay with ACK frames
   (HT-6.3); the relay verifies each receipt under the member's key from
   its record and forwards it to every requester once.
5. **Opacity** (RLY-5). A relay sees the room id and DHT ident, the message
   id, the expiry, the blob's length (its size bucket) and the addresses
   of requesters and members; never a body, a sender identity inside the
   seal, or the room secret.

Decoding raises only `RemoteProtocolError`; `receive` counts every refusal
under `RelayCounter` and never raises for peer input.
"""

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from railgun_ref.abuse.admission import AdmissionGate
from railgun_ref.capacity.budget import Duty, SharingBudget
from railgun_ref.capacity.selection import Candidate, Role, rank_candidates
from railgun_ref.capacity.sharing import Granted
from railgun_ref.core.constants import APP_TOPIC_RELAY, APP_TOPIC_ROOM
from railgun_ref.core.counters import Counters
from railgun_ref.core.errors import LocalProtocolError, RemoteProtocolError
from railgun_ref.core.ids import Address, NodeId
from railgun_ref.dht.geometry import distance
from railgun_ref.dht.keys import KeyType, derive_key
from railgun_ref.identity.keys import verify
from railgun_ref.transport.p2p import (
    AckFrame,
    Receipt,
    RoomFrame,
    RoomMember,
    SendApp,
    decode_frame,
    encode_frame,
    member_from_record,
    receipt_message,
)
from railgun_ref.wire.pow import PowChallenge, PowError
from railgun_ref.wire.relay import (
    BusyFrame,
    RelayFrame,
    decode_relay_frame,
    encode_busy_frame,
)

# ------------------------------------------------------------ committee (RLY-1)


@dataclass(frozen=True, slots=True, kw_only=True)
class CommitteeConfig:
    """RLY-1: committee parameters."""

    size: int = 5  #: relays per room (c)
    pool: int = 8  #: the eligible peers nearest the room key the committee is drawn from

    def __post_init__(self) -> None:
        if not 1 <= self.size <= self.pool:
            raise LocalProtocolError("1 <= size <= pool")


def room_key(dht_ident: bytes) -> bytes:
    """RLY-1: the DHT key committees are near: the room records' key (DHT-2.1, ROOM-2.2)."""
    return derive_key(KeyType.ROOM, dht_ident)


def select_committee(
    dht_ident: bytes,
    candidates: Iterable[Candidate],
    config: CommitteeConfig | None = None,
    *,
    reputation: Mapping[NodeId, int] | None = None,
) -> tuple[NodeId, ...]:
    """RLY-1: the `size` best by capacity of the `pool` eligible peers nearest the room key.

    RLY-1.2, REP-5.1: with `reputation` (the chooser's scores, unknown peers 0) a peer
    below the host threshold is not eligible, so takes no place in the pool, and the
    pool is ranked by `rank_score`; without it the order is capacity alone.
    """
    config = config or CommitteeConfig()
    key = room_key(dht_ident)
    eligible = rank_candidates(candidates, Role.RELAY, reputation=reputation).ranked
    nearest = sorted(eligible, key=lambda ranked: distance(ranked.node_id, key))[: config.pool]
    best = sorted(nearest, key=lambda ranked: (-ranked.rank, ranked.node_id))
    return tuple(ranked.node_id for ranked in best[: config.size])


def all_malicious_probability(f: float, size: int, pool: int | None = None) -> float:
    """RLY-6: the chance an adversary holding a fraction `f` of the nodes fills a committee.

    Worst case: its nodes advertise the best capacity, so they take every seat
    they can; the committee is all theirs when at least `size` of the `pool`
    nearest eligible peers are. Node ids are hashes of keys (ID-2), so each of
    the pool is the adversary's with probability `f`: the binomial tail
    P[Bin(pool, f) >= size]. With `pool == size` this is f ** size.
    """
    pool = size if pool is None else pool
    if not 0.0 <= f <= 1.0 or not 1 <= size <= pool:
        raise LocalProtocolError("0 <= f <= 1 and 1 <= size <= pool")
    return sum(math.comb(pool, k) * f**k * (1 - f) ** (pool - k) for k in range(size, pool + 1))


def all_malicious_finite(nodes: int, malicious: int, size: int, pool: int) -> float:
    """RLY-6: the same for a network of `nodes` of which `malicious` are the adversary's
    (the pool drawn without replacement: a hypergeometric tail)."""
    if not 0 <= malicious <= nodes or not 1 <= size <= pool <= nodes:
        raise LocalProtocolError("0 <= malicious <= nodes and 1 <= size <= pool <= nodes")
    total = math.comb(nodes, pool)
    honest = nodes - malicious
    hits = sum(math.comb(malicious, k) * math.comb(honest, pool - k) for k in range(size, pool + 1))
    return hits / total


# ------------------------------------------------------------ the relay (RLY-3, RLY-4)


@dataclass(frozen=True, slots=True, kw_only=True)
class RelayConfig:
    """RLY-3: parameters of a committee relay (seconds unless stated)."""

    lookup_interval: float = 30.0  #: a room's member list is looked up again after this long
    max_rooms: int = 256  #: rooms served at once
    max_messages: int = 4096  #: messages in flight at once
    max_waiting: int = 64  #: requests waiting for a member lookup


@dataclass(frozen=True, slots=True, kw_only=True)
class LookupRoom:
    """Look the room's members up: `find_room_peers(dht_ident)`, then `members_found`."""

    dht_ident: bytes


#: The closed set of what `CommitteeRelay.next_action` returns (CORE-1.2).
RelayAction = SendApp | LookupRoom


class RelayCounter(StrEnum):
    """Counters of `CommitteeRelay` (labels: `ErrorCode` or `RelayRefusal`)."""

    REJECTED = "rejected"  #: a frame refused; label: its `ErrorCode` or `RelayRefusal`
    REJECTED_MEMBER = "rejected.member"  #: a room record refused; label: its `ErrorCode`
    FORWARDED = "forwarded"  #: ROOM frames sent to members
    THROTTLED = "throttled"  #: copies not sent: the budget's bandwidth was spent
    DUPLICATE = "duplicate"  #: a request for a message already relayed
    RECEIPTS_FORWARDED = "receipts.forwarded"
    RECEIPT_UNKNOWN = "receipt.unknown"  #: a receipt for no message or member we relay
    BUSY_SENT = "busy.sent"  #: RLY-9.3: BUSY answers naming a price


class RelayRefusal(StrEnum):
    """Why a well-formed request was refused (labels of `RelayCounter.REJECTED`)."""

    EXPIRED = "expired"
    STRANGER = "stranger"  #: the requester publishes no valid record of the room
    QUOTA = "quota"  #: max_rooms, max_messages or max_waiting reached
    BUDGET = "budget"  #: the sharing budget refused the room's connection slot
    BAD_RECEIPT = "bad_receipt"
    SHED = "shed"  #: RLY-9.3: dropped from the full admission queue (answered BUSY)


#: RLY-9.3: the admission gate of a relay; it queues (requester, its address, request).
RelayGate = AdmissionGate[tuple[NodeId, Address, RelayFrame]]


@dataclass(slots=True)
class _RoomView:
    members: dict[NodeId, RoomMember]
    looked_up_at: float


@dataclass(slots=True)
class _Relayed:
    frame: RelayFrame
    expires_at: float
    upstream: dict[NodeId, Address] = field(default_factory=dict)
    receipts: dict[NodeId, bytes] = field(default_factory=dict)


class CommitteeRelay:
    """A committee relay; a `ProtocolCore[RelayAction]` (see the module docstring)."""

    def __init__(
        self,
        *,
        config: RelayConfig | None = None,
        budget: SharingBudget | None = None,
        node_id: NodeId | None = None,
        admission: RelayGate | None = None,
        now: float,
    ) -> None:
        """`node_id`: this relay's own NodeId when it may be a member of rooms it relays
        for (a client): it never sends itself a copy (RLY-3.1). `admission`: requests pay
        for admission while the relay is overloaded (RLY-9.3); None serves each at once."""
        self.config = config or RelayConfig()
        self.admission = admission
        self.node_id = node_id
        self.budget = budget
        self.counters: Counters[RelayCounter] = Counters()
        self._actions: deque[RelayAction] = deque()
        self._rooms: dict[bytes, _RoomView] = {}
        self._slots: set[bytes] = set()  #: rooms holding a `relay` slot of the budget
        self._messages: dict[bytes, _Relayed] = {}
        self._waiting: dict[bytes, list[tuple[NodeId, Address, RelayFrame]]] = {}
        del now  # nothing is due before the first request

    def next_action(self) -> RelayAction | None:
        return self._actions.popleft() if self._actions else None

    def next_deadline(self) -> float | None:
        times = [m.expires_at for m in self._messages.values()]
        gate = self.admission.next_deadline() if self.admission is not None else None
        if gate is not None:
            times.append(gate)
        return min(times, default=None)

    def on_timer(self, *, now: float) -> None:
        self._serve_admitted(now)
        for message_id, relayed in list(self._messages.items()):
            if relayed.expires_at <= now:
                del self._messages[message_id]
        live = {m.frame.dht_ident for m in self._messages.values()}
        for ident in self._slots - live:
            self._slots.discard(ident)
            if self.budget is not None:
                self.budget.close(Duty.RELAY, ident)

    def in_flight(self) -> int:
        return len(self._messages)

    def members(self, dht_ident: bytes) -> frozenset[NodeId]:
        view = self._rooms.get(dht_ident)
        return frozenset() if view is None else frozenset(view.members)

    # ---------------------------------------------------------------- inputs

    def members_found(self, dht_ident: bytes, records: Iterable[bytes], *, now: float) -> int:
        """RLY-3: `find_room_peers(dht_ident)` records; only valid closed-room records count."""
        members: dict[NodeId, RoomMember] = {}
        for record in records:
            try:
                member = member_from_record(record, room_id=dht_ident, now=now, closed=True)
            except RemoteProtocolError as exc:
                self.counters.inc(RelayCounter.REJECTED_MEMBER, label=exc.code)
                continue
            members[member.node_id] = member
        if dht_ident in self._rooms or len(self._rooms) < self.config.max_rooms:
            self._rooms[dht_ident] = _RoomView(members=members, looked_up_at=now)
        for sender, address, frame in self._waiting.pop(dht_ident, []):
            self._request(sender, address, frame, now)
        return len(members)

    def receive(
        self, sender: NodeId, address: Address, topic: int, payload: bytes, *, now: float
    ) -> None:
        """An APP message from the authenticated node `sender`: a RELAY request on
        `APP_TOPIC_RELAY`, or a member's ACK on `APP_TOPIC_ROOM`. Never raises."""
        try:
            if topic == APP_TOPIC_RELAY:
                self._request(sender, address, decode_relay_frame(payload), now)
            elif topic == APP_TOPIC_ROOM:
                frame = decode_frame(payload)
                if isinstance(frame, AckFrame):
                    self._on_ack(frame)
        except RemoteProtocolError as exc:
            self.counters.inc(RelayCounter.REJECTED, label=exc.code)

    # ------------------------------------------------------------- internals

    def _request(self, sender: NodeId, address: Address, frame: RelayFrame, now: float) -> None:
        expires_at = frame.expires_ms / 1000
        if expires_at <= now:
            self.counters.inc(RelayCounter.REJECTED, label=RelayRefusal.EXPIRED)
            return
        view = self._rooms.get(frame.dht_ident)
        if view is None or (
            sender not in view.members and now - view.looked_up_at >= self.config.lookup_interval
        ):
            self._wait_for_lookup(sender, address, frame)
            return
        if sender not in view.members:
            self.counters.inc(RelayCounter.REJECTED, label=RelayRefusal.STRANGER)
            return
        if self.admission is None:
            self._relay(sender, address, frame, now)
            return
        try:  # RLY-9.3: a member's request waits its turn by the work it paid
            self.admission.offer(sender, frame.pow_solution, (sender, address, frame), now=now)
        except PowError as exc:  # POW-3.2: counted by reason in admission.pow.counters
            self.counters.inc(RelayCounter.REJECTED, label=exc.code)
            challenge = self.admission.challenge()
            if challenge is not None:
                self._busy(sender, address, frame, challenge)
        self._serve_admitted(now)

    def _serve_admitted(self, now: float) -> None:
        """RLY-9.3: answer what the queue shed (BUSY), relay what it admits."""
        gate = self.admission
        if gate is None:
            return
        ready = gate.ready(now=now)
        for (sender, address, frame), challenge in gate.shed():
            self.counters.inc(RelayCounter.REJECTED, label=RelayRefusal.SHED)
            self._busy(sender, address, frame, challenge)
        for sender, address, frame in ready:
            view = self._rooms.get(frame.dht_ident)
            if view is not None and sender in view.members and frame.expires_ms > now * 1000:
                self._relay(sender, address, frame, now)

    def _busy(
        self, sender: NodeId, address: Address, frame: RelayFrame, challenge: PowChallenge
    ) -> None:
        self.counters.inc(RelayCounter.BUSY_SENT)
        busy = BusyFrame(message_id=frame.message_id, challenge=challenge)
        self._actions.append(
            SendApp(
                peer=sender, address=address, topic=APP_TOPIC_RELAY, payload=encode_busy_frame(busy)
            )
        )

    def _relay(self, sender: NodeId, address: Address, frame: RelayFrame, now: float) -> None:
        """RLY-3.1: relay an admitted request from a member."""
        view = self._rooms[frame.dht_ident]
        expires_at = frame.expires_ms / 1000
        relayed = self._messages.get(frame.message_id)
        if relayed is None:
            if not self._admit(frame):
                return
            relayed = _Relayed(frame=frame, expires_at=expires_at)
            self._messages[frame.message_id] = relayed
        else:
            self.counters.inc(RelayCounter.DUPLICATE)
        relayed.upstream[sender] = address
        if relayed.receipts:
            self._send_receipts(relayed, {sender: address}, relayed.receipts)
        self._forward(relayed, view, sender, now)

    def _wait_for_lookup(self, sender: NodeId, address: Address, frame: RelayFrame) -> None:
        waiting = self._waiting.get(frame.dht_ident)
        if waiting is None:
            if len(self._waiting) >= self.config.max_waiting:
                self.counters.inc(RelayCounter.REJECTED, label=RelayRefusal.QUOTA)
                return
            waiting = self._waiting[frame.dht_ident] = []
            self._actions.append(LookupRoom(dht_ident=frame.dht_ident))
        if len(waiting) >= self.config.max_waiting:
            self.counters.inc(RelayCounter.REJECTED, label=RelayRefusal.QUOTA)
            return
        waiting.append((sender, address, frame))

    def _admit(self, frame: RelayFrame) -> bool:
        """RLY-3: room for one more message, and the room's `relay` slot (CAP-7)."""
        if len(self._messages) >= self.config.max_messages:
            self.counters.inc(RelayCounter.REJECTED, label=RelayRefusal.QUOTA)
            return False
        budget = self.budget
        new_room = frame.dht_ident not in self._slots
        if (
            new_room
            and budget is not None
            and not isinstance(budget.open(Duty.RELAY, frame.dht_ident), Granted)
        ):
            self.counters.inc(RelayCounter.REJECTED, label=RelayRefusal.BUDGET)
            return False
        self._slots.add(frame.dht_ident)
        return True

    def _forward(self, relayed: _Relayed, view: _RoomView, sender: NodeId, now: float) -> None:
        frame = relayed.frame
        payload = encode_frame(
            RoomFrame(
                room_id=frame.room_id,
                message_id=frame.message_id,
                expires_ms=frame.expires_ms,
                blob=frame.blob,
            )
        )
        for member in sorted(view.members.values(), key=lambda m: m.node_id):
            if member.node_id in (sender, self.node_id) or member.node_id in relayed.receipts:
                continue
            if self.budget is not None and not isinstance(
                self.budget.bandwidth(Duty.RELAY, len(payload), now=now), Granted
            ):
                self.counters.inc(RelayCounter.THROTTLED)
                continue
            self.counters.inc(RelayCounter.FORWARDED)
            self._actions.append(
                SendApp(
                    peer=member.node_id,
                    address=member.address,
                    topic=APP_TOPIC_ROOM,
                    payload=payload,
                )
            )

    def _on_ack(self, ack: AckFrame) -> None:
        relayed = self._messages.get(ack.message_id)
        view = None if relayed is None else self._rooms.get(relayed.frame.dht_ident)
        if relayed is None or view is None or ack.room_id != relayed.frame.room_id:
            self.counters.inc(RelayCounter.RECEIPT_UNKNOWN)
            return
        fresh: dict[NodeId, bytes] = {}
        for receipt in ack.receipts:
            member = view.members.get(receipt.member)
            if member is None:
                self.counters.inc(RelayCounter.RECEIPT_UNKNOWN)
                continue
            if not verify(
                member.public_key, receipt_message(ack.room_id, ack.message_id), receipt.signature
            ):
                self.counters.inc(RelayCounter.REJECTED, label=RelayRefusal.BAD_RECEIPT)
                continue
            if receipt.member not in relayed.receipts:
                relayed.receipts[receipt.member] = receipt.signature
                fresh[receipt.member] = receipt.signature
        if fresh:
            self._send_receipts(relayed, relayed.upstream, fresh)

    def _send_receipts(
        self, relayed: _Relayed, to: dict[NodeId, Address], receipts: dict[NodeId, bytes]
    ) -> None:
        ack = AckFrame(
            room_id=relayed.frame.room_id,
            message_id=relayed.frame.message_id,
            receipts=tuple(Receipt(member=m, signature=s) for m, s in sorted(receipts.items())),
        )
        payload = encode_frame(ack)
        for up, address in to.items():
            self.counters.inc(RelayCounter.RECEIPTS_FORWARDED, len(receipts))
            self._actions.append(
                SendApp(peer=up, address=address, topic=APP_TOPIC_ROOM, payload=payload)
            )
