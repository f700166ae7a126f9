"""The iterative lookup as a pollable iterator (DHT-6.1 .. DHT-6.4).

The model test runs lookups against an oracle network: a few hundred random
ids, each with a real routing table built from the whole population, answering
FIND_NODE with the k closest contacts it holds. The result must be the true k
closest ids (brute force), with at most alpha queries waiting at every step.
"""

import functools
import random
from collections.abc import Callable

import pytest

from railgun_ref.core.constants import DHT_ALPHA
from railgun_ref.core.ids import NodeId
from railgun_ref.dht.geometry import distance
from railgun_ref.dht.lookup import Finished, Lookup, PeerState, QueryPeer, Waiting
from railgun_ref.dht.routing import Contact, RoutingTable

from .helpers import address, closest_ids

K = 20
ALPHA = 3


class OracleNetwork:
    """`size` random ids; each answers from a routing table built from everyone (lazily)."""

    def __init__(self, size: int, seed: int, *, k: int = K, dead_fraction: float = 0.0) -> None:
        self.rng = random.Random(seed)
        self.k = k
        self.ids = [NodeId(self.rng.randbytes(32)) for _ in range(size)]
        self.dead = frozenset(self.rng.sample(self.ids, int(size * dead_fraction)))
        self.contacts = {i: Contact(node_id=i, address=address(n)) for n, i in enumerate(self.ids)}
        self._tables: dict[NodeId, RoutingTable] = {}

    def table(self, node_id: NodeId) -> RoutingTable:
        table = self._tables.get(node_id)
        if table is None:
            table = RoutingTable(node_id, k=self.k)
            order = [i for i in self.ids if i not in self.dead]
            random.Random(node_id).shuffle(order)  # each node met the others in its own order
            # Dead nodes come last: a full bucket keeps its live old contacts (DHT-5.2), so
            # the dead linger only where there was room, as stale entries.
            order += sorted(self.dead)
            for other in order:
                table.observe(self.contacts[other], now=0.0)
            self._tables[node_id] = table
        return table

    def answer(self, node_id: NodeId, target: bytes) -> list[Contact]:
        return self.table(node_id).closest(target, self.k)


RPC_TIMEOUT = 5.0


def drive(
    lookup: Lookup,
    answer: Callable[[NodeId], list[Contact]],
    *,
    rng: random.Random,
    alpha: int,
    dead: frozenset[NodeId] = frozenset(),
) -> list[NodeId]:
    """Run `lookup` to the end, answering waiting queries in random order; return who was asked.

    Dead peers never answer: when only they are outstanding, time jumps to the iterator's
    `until` (they turn unresponsive) or, if it names none, to the next RPC timeout of a
    dead peer, which is then reported as failed.
    """
    now = 0.0
    asked: list[NodeId] = []
    outstanding: list[NodeId] = []
    silent: list[tuple[float, NodeId]] = []  # (RPC deadline, dead peer)
    for _ in range(100_000):
        step = lookup.next(now=now)
        if isinstance(step, QueryPeer):
            assert lookup.in_flight <= alpha  # DHT-6.1
            node_id = step.contact.node_id
            assert node_id != lookup.local_id
            assert node_id not in asked
            asked.append(node_id)
            if node_id in dead:
                silent.append((now + RPC_TIMEOUT, node_id))
            else:
                outstanding.append(node_id)
            continue
        if isinstance(step, Finished):
            return asked
        assert isinstance(step, Waiting)
        if outstanding:
            node_id = outstanding.pop(rng.randrange(len(outstanding)))
            now += 0.01
            lookup.on_success(node_id, answer(node_id), now=now)
        elif step.until is not None:
            now = step.until
        else:
            assert silent, "waiting on nothing"
            silent.sort()
            deadline, node_id = silent.pop(0)
            now = max(now, deadline)
            lookup.on_failure(node_id, now=now)
    raise AssertionError("lookup did not terminate")


@pytest.mark.parametrize(("size", "seed"), [(200, 1), (500, 2), (1000, 3)])
def test_lookup_finds_the_true_k_closest(size: int, seed: int) -> None:
    """DHT-6.3: against an honest network the lookup ends with exactly the true k closest."""
    net = OracleNetwork(size, seed)
    rng = random.Random(seed)
    for _ in range(4):
        local = rng.choice(net.ids)
        target = rng.randbytes(32)
        lookup = Lookup(
            target, net.table(local).closest(target, K), local_id=local, k=K, alpha=ALPHA
        )
        asked = drive(lookup, functools.partial(net.answer, target=target), rng=rng, alpha=ALPHA)
        others = [i for i in net.ids if i != local]
        expected = closest_ids(others, target, K)
        assert [c.node_id for c in lookup.closest_succeeded()] == expected
        assert local not in asked
        assert lookup.queries == len(asked)


@pytest.mark.parametrize("seed", [4, 5])
def test_lookup_for_an_existing_id_finds_it_first(seed: int) -> None:
    """DHT-6.4: a lookup of a member's id ends with that member nearest (distance 0)."""
    net = OracleNetwork(300, seed)
    rng = random.Random(seed)
    local, wanted = rng.sample(net.ids, 2)
    lookup = Lookup(wanted, net.table(local).closest(wanted, K), local_id=local, k=K)
    drive(lookup, lambda n: net.answer(n, wanted), rng=rng, alpha=ALPHA)
    assert lookup.closest_succeeded()[0].node_id == wanted


def test_dead_peers_are_routed_around() -> None:
    """DHT-6.2, DHT-6.3: with a fifth of the network dead, the lookup terminates with live peers
    only, and every live id among the true k closest is found, in order.

    (Live ids beyond the true k closest may stay unknown: honest peers answer with their k
    closest contacts, dead ones included, so nobody names them. That is Kademlia's bound,
    not the iterator's.)
    """
    net = OracleNetwork(300, 6, dead_fraction=0.2)
    rng = random.Random(6)
    dead = net.dead
    local = next(i for i in net.ids if i not in dead)
    target = rng.randbytes(32)
    lookup = Lookup(target, net.table(local).closest(target, K), local_id=local, k=K)
    asked = drive(lookup, lambda n: net.answer(n, target), rng=rng, alpha=ALPHA, dead=dead)
    got = [c.node_id for c in lookup.closest_succeeded()]
    others = [i for i in net.ids if i != local]
    live_among_true = [i for i in closest_ids(others, target, K) if i not in dead]
    assert not dead & set(got)
    assert got[: len(live_among_true)] == live_among_true
    assert got == sorted(got, key=lambda i: distance(i, target))
    met = dead & set(asked)
    assert met, "the scenario should have met dead peers"
    # skipped as unresponsive, or failed at their RPC timeout; never in the result
    assert all(lookup.state_of(d) in (PeerState.UNRESPONSIVE, PeerState.FAILED) for d in met)


# ------------------------------------------------------------------ small, hand-built cases

TARGET = bytes(32)


def near(rank: int) -> Contact:
    """A contact at distance `rank` + 1 from TARGET: smaller rank, closer."""
    return Contact(node_id=NodeId((rank + 1).to_bytes(32, "big")), address=address(rank))


LOCAL = NodeId(b"\xff" * 32)


def test_parameters_are_checked() -> None:
    """DHT-9.1: k, alpha and slow_after must be positive."""
    for kwargs in ({"k": 0}, {"alpha": 0}, {"slow_after": 0.0}):
        with pytest.raises(ValueError, match="positive"):
            Lookup(TARGET, [], local_id=LOCAL, **kwargs)


def test_queries_go_nearest_first_and_at_most_alpha_wait() -> None:
    """DHT-6.1, DHT-6.4: the alpha nearest candidates are queried first, then the lookup waits."""
    lookup = Lookup(TARGET, [near(r) for r in (4, 0, 3, 1, 2)], local_id=LOCAL, alpha=DHT_ALPHA)
    steps = [lookup.next(now=0.0) for _ in range(4)]
    assert steps[:3] == [QueryPeer(near(0)), QueryPeer(near(1)), QueryPeer(near(2))]
    assert steps[3] == Waiting(until=1.0)
    assert lookup.in_flight == 3


def test_an_answer_releases_a_query_at_once() -> None:
    """DHT-6.1: there are no rounds: one answer lets the next query out while others wait."""
    lookup = Lookup(TARGET, [near(r) for r in range(5)], local_id=LOCAL, alpha=DHT_ALPHA)
    for _ in range(3):
        lookup.next(now=0.0)
    lookup.on_success(near(1).node_id, [], now=0.1)
    assert lookup.next(now=0.1) == QueryPeer(near(3))
    assert isinstance(lookup.next(now=0.1), Waiting)
    assert lookup.in_flight == 3


def test_a_dead_peer_does_not_stall_the_lookup() -> None:
    """DHT-6.2: after slow_after the dead peer stops counting against alpha; others go out
    long before its RPC timeout."""
    dead, live = near(0), near(1)
    lookup = Lookup(TARGET, [dead, live], local_id=LOCAL, k=1, alpha=1, slow_after=1.0)
    assert lookup.next(now=0.0) == QueryPeer(dead)
    assert lookup.next(now=0.5) == Waiting(until=1.0)
    assert lookup.next(now=1.0) == QueryPeer(live)
    assert lookup.state_of(dead.node_id) is PeerState.UNRESPONSIVE
    lookup.on_success(live.node_id, [], now=1.1)
    assert lookup.next(now=1.1) == Finished()
    assert lookup.closest_succeeded() == [live]


def test_dead_peers_cost_slow_after_not_the_rpc_timeout() -> None:
    """DHT-6.2: with three dead peers nearest the target, the live ones are all asked by
    3 x slow_after, and the result holds only live peers."""
    dead = [near(r) for r in range(3)]
    live = [near(r) for r in range(3, 6)]
    lookup = Lookup(TARGET, dead + live, local_id=LOCAL, k=3, alpha=3, slow_after=1.0)
    asked_at: dict[NodeId, float] = {}
    now = 0.0
    while len(asked_at) < 6:
        step = lookup.next(now=now)
        if isinstance(step, QueryPeer):
            asked_at[step.contact.node_id] = now
            if step.contact in live:
                lookup.on_success(step.contact.node_id, [], now=now + 0.05)
            continue
        assert isinstance(step, Waiting)
        assert step.until is not None
        now = step.until
    assert max(asked_at[c.node_id] for c in live) < RPC_TIMEOUT
    assert lookup.next(now=now) == Finished()
    assert lookup.closest_succeeded() == live


def test_a_late_answer_is_still_used() -> None:
    """DHT-6.2: an unresponsive peer that answers after all counts, and its contacts are asked."""
    slow, live, closer = near(1), near(2), near(0)
    lookup = Lookup(TARGET, [slow, live], local_id=LOCAL, alpha=1, slow_after=1.0)
    assert lookup.next(now=0.0) == QueryPeer(slow)
    assert lookup.next(now=1.0) == QueryPeer(live)
    lookup.on_success(slow.node_id, [closer], now=1.5)
    assert lookup.late_answers == 1
    assert lookup.state_of(slow.node_id) is PeerState.SUCCEEDED
    assert lookup.next(now=1.5) == Waiting(until=2.0)  # live still counts against alpha=1
    lookup.on_success(live.node_id, [], now=1.6)
    assert lookup.next(now=1.6) == QueryPeer(closer)
    assert lookup.hops_to(closer.node_id) == 2
    lookup.on_success(closer.node_id, [], now=1.7)
    assert lookup.next(now=1.7) == Finished()
    assert lookup.closest_succeeded() == [closer, slow, live]


def test_failed_peers_are_replaced_by_the_next_closest() -> None:
    """DHT-6.3: failed peers do not count among the k closest; the next one is asked."""
    seeds = [near(r) for r in range(4)]
    lookup = Lookup(TARGET, seeds, local_id=LOCAL, k=2, alpha=2)
    assert lookup.next(now=0.0) == QueryPeer(seeds[0])
    assert lookup.next(now=0.0) == QueryPeer(seeds[1])
    lookup.on_failure(seeds[0].node_id, now=0.1)
    assert lookup.next(now=0.1) == QueryPeer(seeds[2])
    lookup.on_success(seeds[1].node_id, [], now=0.2)
    lookup.on_success(seeds[2].node_id, [], now=0.2)
    assert lookup.next(now=0.2) == Finished()
    assert lookup.closest_succeeded() == [seeds[1], seeds[2]]
    assert lookup.queries == 3  # seeds[3], beyond the k closest, was never needed


def test_terminates_with_fewer_than_k_peers_in_total() -> None:
    """DHT-6.3: when no candidate is left and nothing waits, the lookup ends with what it has."""
    seeds = [near(r) for r in range(3)]
    lookup = Lookup(TARGET, seeds, local_id=LOCAL, k=20)
    asked = drive(lookup, lambda n: list(seeds), rng=random.Random(0), alpha=3)
    assert sorted(asked) == sorted(c.node_id for c in seeds)
    assert lookup.closest_succeeded() == seeds
    assert lookup.finished


def test_no_seeds_finishes_at_once() -> None:
    """DHT-6.3: a lookup with nobody to ask is finished immediately."""
    lookup = Lookup(TARGET, [], local_id=LOCAL)
    assert lookup.next(now=0.0) == Finished()
    assert lookup.closest_succeeded() == []


def test_finish_stops_the_lookup() -> None:
    """DHT-6.3: finish() ends the lookup; later answers add no candidates."""
    lookup = Lookup(TARGET, [near(r) for r in range(5)], local_id=LOCAL, alpha=2)
    lookup.next(now=0.0)
    lookup.next(now=0.0)
    lookup.finish()
    assert lookup.next(now=0.0) == Finished()
    lookup.on_success(near(0).node_id, [near(10)], now=0.1)
    assert lookup.state_of(near(10).node_id) is None
    assert lookup.closest_succeeded() == [near(0)]


def test_the_local_id_is_never_a_candidate() -> None:
    """DHT-6.4: the local node is never queried, even when seeded with itself or named by peers."""
    me = Contact(node_id=NodeId(TARGET), address=address(99))  # closest possible id
    lookup = Lookup(TARGET, [me, near(0)], local_id=me.node_id)
    asked = drive(lookup, lambda n: [me, near(1)], rng=random.Random(0), alpha=3)
    assert me.node_id not in asked
    assert lookup.state_of(me.node_id) is None
    assert [c.node_id for c in lookup.closest_succeeded()] == [near(0).node_id, near(1).node_id]


def test_spurious_outcomes_are_ignored() -> None:
    """DHT-6.3: answers from peers never asked (or asked and already answered) change nothing."""
    lookup = Lookup(TARGET, [near(0), near(1)], local_id=LOCAL, alpha=1)
    assert lookup.next(now=0.0) == QueryPeer(near(0))
    lookup.on_success(near(1).node_id, [near(5)], now=0.1)  # not asked
    lookup.on_success(near(7).node_id, [near(6)], now=0.1)  # unknown
    lookup.on_failure(near(1).node_id, now=0.1)
    assert lookup.state_of(near(5).node_id) is None
    assert lookup.state_of(near(1).node_id) is PeerState.NOT_CONTACTED
    lookup.on_success(near(0).node_id, [], now=0.2)
    lookup.on_failure(near(0).node_id, now=0.3)  # already answered: stays succeeded
    assert lookup.state_of(near(0).node_id) is PeerState.SUCCEEDED


def test_peer_table_describes_every_peer() -> None:
    """DHT-6.4: peer_table lists peers by distance with state, hop and who named them."""
    lookup = Lookup(TARGET, [near(1)], local_id=LOCAL, alpha=1)
    lookup.next(now=0.0)
    lookup.on_success(near(1).node_id, [near(0)], now=0.1)
    rows = lookup.peer_table()
    assert [r["node_id"] for r in rows] == [near(0).node_id.hex(), near(1).node_id.hex()]
    assert rows[0]["learned_from"] == near(1).node_id.hex()
    assert rows[0]["hop"] == 2
    assert rows[0]["state"] == "not_contacted"
    assert rows[1]["state"] == "succeeded"
    assert distance(near(0).node_id, TARGET) == 1
