"""Iterative lookup as a pollable iterator (DHT-6.x).

Shape (rust-libp2p `ClosestPeersIter`): the caller asks `next(now=...)` and
gets `QueryPeer` (send one FIND_* to that contact), `Waiting` (nothing to
send until `until` or until a response arrives) or `Finished`; it reports
each outcome with `on_success` (with the closer contacts the peer named) or
`on_failure`. The iterator never sends, sleeps or reads a clock.

Rules:
* DHT-6.1: at most `alpha` queries are *waiting* at once, and a new query is
  issued as soon as any answer arrives — there are no lockstep rounds.
* DHT-6.2: a query outstanding for `slow_after` seconds stops counting
  against `alpha` (the peer is *unresponsive*, not failed): the lookup goes
  on with other peers, and a late answer is still used. This is how a dead
  or slow peer never costs the lookup its RPC timeout, which the Kademlia
  paper promises ("without imposing timeout delays").
* DHT-6.3: the lookup is finished when the `k` closest peers it knows of,
  not counting failed or unresponsive ones, have all answered — or when no
  candidate is left to ask and nothing is waiting. While fewer than `k`
  peers have answered, unresponsive peers are still waited for (until they
  answer or their RPC times out): a lookup whose only paths are slow ends
  late rather than empty.
* DHT-6.4: contacts are ordered by XOR distance to the target; ties cannot
  happen between distinct ids. The local node is never a candidate.
"""

import bisect
from dataclasses import dataclass
from enum import Enum

from railgun_ref.core.constants import DHT_ALPHA, DHT_K
from railgun_ref.core.ids import NodeId
from railgun_ref.dht.geometry import distance
from railgun_ref.dht.routing import Contact


class PeerState(Enum):
    NOT_CONTACTED = "not_contacted"
    WAITING = "waiting"
    UNRESPONSIVE = "unresponsive"  #: past slow_after, still may answer
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"  #: claimed by another path of a disjoint lookup (DHT-6.5)


@dataclass(frozen=True, slots=True)
class QueryPeer:
    contact: Contact


@dataclass(frozen=True, slots=True)
class Waiting:
    until: float | None  #: when the iterator next wants to be polled, if nothing arrives


@dataclass(frozen=True, slots=True)
class Finished:
    pass


Step = QueryPeer | Waiting | Finished


@dataclass(slots=True)
class _Peer:
    contact: Contact
    distance: int
    hop: int  #: 1 for seeds; learned-from peer's hop + 1 otherwise
    state: PeerState = PeerState.NOT_CONTACTED
    sent_at: float = 0.0
    answered_at: float | None = None
    learned_from: NodeId | None = None


class Lookup:
    def __init__(
        self,
        target: bytes,
        seeds: list[Contact],
        *,
        local_id: NodeId,
        k: int = DHT_K,
        alpha: int = DHT_ALPHA,
        slow_after: float = 1.0,
    ) -> None:
        if k < 1 or alpha < 1 or slow_after <= 0:
            raise ValueError("k, alpha and slow_after must be positive")
        self.target = target
        self.local_id = local_id
        self.k = k
        self.alpha = alpha
        self.slow_after = slow_after
        self._peers: dict[NodeId, _Peer] = {}
        #: The peers in state WAITING, so a poll need not walk every peer known.
        self._waiting: dict[NodeId, _Peer] = {}
        self._order: list[tuple[int, NodeId]] = []  # sorted by distance
        self._finished = False
        self.queries = 0
        self.late_answers = 0
        for contact in seeds:
            self._add(contact, hop=1, learned_from=None)

    # ------------------------------------------------------------------ state

    def add_seeds(self, contacts: list[Contact]) -> None:
        """Add first-hop candidates (e.g. bootstrap nodes that just answered)."""
        for contact in contacts:
            self._add(contact, hop=1, learned_from=None)

    def _add(self, contact: Contact, *, hop: int, learned_from: NodeId | None) -> None:
        if contact.node_id == self.local_id or contact.node_id in self._peers:
            return
        d = distance(contact.node_id, self.target)
        self._peers[contact.node_id] = _Peer(contact, d, hop, learned_from=learned_from)
        bisect.insort(self._order, (d, contact.node_id))

    @property
    def finished(self) -> bool:
        return self._finished

    def finish(self) -> None:
        """End the lookup early (e.g. FIND_VALUE found what it needed)."""
        self._finished = True

    def state_of(self, node_id: NodeId) -> PeerState | None:
        peer = self._peers.get(node_id)
        return peer.state if peer else None

    @property
    def in_flight(self) -> int:
        return len(self._waiting)

    # ------------------------------------------------------------------ poll

    def next(self, *, now: float) -> Step:
        if self._finished:
            return Finished()
        waiting = 0
        earliest_slow: float | None = None
        for node_id, peer in list(self._waiting.items()):
            if now >= peer.sent_at + self.slow_after:
                peer.state = PeerState.UNRESPONSIVE  # DHT-6.2
                del self._waiting[node_id]
            else:
                waiting += 1
                deadline = peer.sent_at + self.slow_after
                earliest_slow = deadline if earliest_slow is None else min(earliest_slow, deadline)
        # DHT-6.3: walk the closest live candidates.
        considered = 0
        candidate: _Peer | None = None
        all_answered = True
        for _, node_id in self._order:
            peer = self._peers[node_id]
            if peer.state in (PeerState.FAILED, PeerState.UNRESPONSIVE, PeerState.SKIPPED):
                continue
            considered += 1
            if peer.state is PeerState.NOT_CONTACTED:
                all_answered = False
                if candidate is None:
                    candidate = peer
            elif peer.state is PeerState.WAITING:
                all_answered = False
            if considered >= self.k:
                break
        if all_answered:
            if self._answered() < self.k and self._any(PeerState.UNRESPONSIVE):
                # DHT-6.3: short of k answers, a slow peer is still worth its RPC
                # timeout: wait for it to answer or fail rather than end short.
                return Waiting(until=None)
            self._finished = True
            return Finished()
        if candidate is not None and waiting < self.alpha:  # DHT-6.1
            candidate.state = PeerState.WAITING
            self._waiting[candidate.contact.node_id] = candidate
            candidate.sent_at = now
            self.queries += 1
            return QueryPeer(candidate.contact)
        return Waiting(until=earliest_slow)

    def _answered(self) -> int:
        return sum(1 for p in self._peers.values() if p.state is PeerState.SUCCEEDED)

    def _any(self, state: PeerState) -> bool:
        return any(p.state is state for p in self._peers.values())

    # ------------------------------------------------------------------ outcomes

    def on_success(self, node_id: NodeId, closer: list[Contact], *, now: float) -> None:
        peer = self._peers.get(node_id)
        if peer is None or peer.state not in (PeerState.WAITING, PeerState.UNRESPONSIVE):
            return
        if peer.state is PeerState.UNRESPONSIVE:
            self.late_answers += 1
        self._waiting.pop(node_id, None)
        peer.state = PeerState.SUCCEEDED
        peer.answered_at = now
        if self._finished:
            return
        for contact in closer:
            self._add(contact, hop=peer.hop + 1, learned_from=node_id)

    def on_failure(self, node_id: NodeId, *, now: float) -> None:
        peer = self._peers.get(node_id)
        if peer is not None and peer.state in (PeerState.WAITING, PeerState.UNRESPONSIVE):
            self._waiting.pop(node_id, None)
            peer.state = PeerState.FAILED
            peer.answered_at = now

    def skip(self, node_id: NodeId) -> None:
        """Withdraw a query `next` just issued: the peer belongs to another path."""
        peer = self._peers.get(node_id)
        if peer is not None and peer.state is PeerState.WAITING:
            del self._waiting[node_id]
            peer.state = PeerState.SKIPPED
            self.queries -= 1

    # ------------------------------------------------------------------ results

    def closest_succeeded(self) -> list[Contact]:
        """The up-to-k closest peers that answered, nearest first."""
        out = []
        for _, node_id in self._order:
            peer = self._peers[node_id]
            if peer.state is PeerState.SUCCEEDED:
                out.append(peer.contact)
                if len(out) == self.k:
                    break
        return out

    def hops_to(self, node_id: NodeId) -> int | None:
        peer = self._peers.get(node_id)
        return peer.hop if peer else None

    def peer_table(self) -> list[dict[str, object]]:
        """Every peer the lookup knew of, for notebooks: state, distance, hop, who named it."""
        return [
            {
                "node_id": p.contact.node_id.hex(),
                "distance_bits": p.distance.bit_length(),
                "state": p.state.value,
                "hop": p.hop,
                "learned_from": p.learned_from.hex() if p.learned_from else None,
                "sent_at": p.sent_at if p.state is not PeerState.NOT_CONTACTED else None,
                "answered_at": p.answered_at,
            }
            for _, node_id in self._order
            for p in (self._peers[node_id],)
        ]


class DisjointLookup:
    """DHT-6.5: `d` lookups over disjoint peer sets (S/Kademlia, Baumgart & Mies 2007).

    The seeds are dealt round-robin to `d` paths; a peer queried on one path
    is never queried on another, so one adversarial node can poison at most
    one path. The lookup ends when every path has ended; the result is the
    k closest peers that answered on any path. Same interface as `Lookup`.
    """

    def __init__(
        self,
        target: bytes,
        seeds: list[Contact],
        *,
        local_id: NodeId,
        paths: int,
        k: int = DHT_K,
        alpha: int = DHT_ALPHA,
        slow_after: float = 1.0,
    ) -> None:
        if paths < 1:
            raise ValueError("need at least one path")
        self.target = target
        self.k = k
        ordered = sorted(seeds, key=lambda c: distance(c.node_id, target))
        self._paths = [
            Lookup(
                target,
                ordered[i::paths],
                local_id=local_id,
                k=k,
                alpha=alpha,
                slow_after=slow_after,
            )
            for i in range(paths)
        ]
        self._owner: dict[NodeId, int] = {}
        self._next_path = 0

    @property
    def finished(self) -> bool:
        return all(p.finished for p in self._paths)

    def finish(self) -> None:
        for path in self._paths:
            path.finish()

    def add_seeds(self, contacts: list[Contact]) -> None:
        for i, contact in enumerate(contacts):
            self._paths[i % len(self._paths)].add_seeds([contact])

    @property
    def queries(self) -> int:
        return sum(p.queries for p in self._paths)

    @property
    def late_answers(self) -> int:
        return sum(p.late_answers for p in self._paths)

    def next(self, *, now: float) -> Step:
        """Poll the paths in turn; a peer another path already claimed is skipped."""
        earliest: float | None = None
        for _ in range(len(self._paths)):
            index = self._next_path
            self._next_path = (self._next_path + 1) % len(self._paths)
            path = self._paths[index]
            while True:
                step = path.next(now=now)
                if not isinstance(step, QueryPeer):
                    break
                owner = self._owner.setdefault(step.contact.node_id, index)
                if owner == index:
                    return step
                path.skip(step.contact.node_id)  # claimed by another path
            if isinstance(step, Waiting) and step.until is not None:
                earliest = step.until if earliest is None else min(earliest, step.until)
        return Finished() if self.finished else Waiting(until=earliest)

    def on_success(self, node_id: NodeId, closer: list[Contact], *, now: float) -> None:
        index = self._owner.get(node_id)
        if index is not None:
            self._paths[index].on_success(node_id, closer, now=now)

    def on_failure(self, node_id: NodeId, *, now: float) -> None:
        index = self._owner.get(node_id)
        if index is not None:
            self._paths[index].on_failure(node_id, now=now)

    def closest_succeeded(self) -> list[Contact]:
        merged = {c.node_id: c for p in self._paths for c in p.closest_succeeded()}
        return sorted(merged.values(), key=lambda c: distance(c.node_id, self.target))[: self.k]

    def hops_to(self, node_id: NodeId) -> int | None:
        index = self._owner.get(node_id)
        return self._paths[index].hops_to(node_id) if index is not None else None

    def peer_table(self) -> list[dict[str, object]]:
        rows = []
        for index, path in enumerate(self._paths):
            for row in path.peer_table():
                rows.append({**row, "path": index})
        return rows
