"""Lookup properties over random small networks, answer orders and dead peers (DHT-6.1 .. 6.4).

Each live peer knows every other live peer (dead ones have been evicted from
tables, DHT-5.3) and answers with its k closest to the target; the local node
is seeded with a random mix of live and dead contacts. Whatever the order the
answers arrive in (live peers answer within slow_after, dead ones never), the
lookup must end with exactly the k closest live ids, never have more than
alpha queries waiting, and never ask itself.
"""

import random

from hypothesis import given
from hypothesis import strategies as st

from railgun_ref.core.ids import NodeId
from railgun_ref.dht.geometry import distance
from railgun_ref.dht.lookup import Finished, Lookup, QueryPeer, Waiting
from railgun_ref.dht.routing import Contact


def closest(ids: list[NodeId], target: bytes, count: int) -> list[NodeId]:
    return sorted(ids, key=lambda i: distance(i, target))[:count]


@given(
    st.lists(st.binary(min_size=32, max_size=32), min_size=2, max_size=120, unique=True),
    st.binary(min_size=32, max_size=32),
    st.integers(1, 8),
    st.integers(1, 4),
    st.floats(0.0, 0.5),
    st.randoms(use_true_random=False),
)
def test_lookup_ends_with_the_k_closest_live_ids(
    raw_ids: list[bytes],
    random_target: bytes,
    k: int,
    alpha: int,
    dead_fraction: float,
    rng: random.Random,
) -> None:
    """DHT-6.1, DHT-6.2, DHT-6.3, DHT-6.4: exact result, alpha bound and termination,
    whatever the answer order."""
    ids = [NodeId(i) for i in raw_ids]
    size = len(ids)
    local, others = ids[0], ids[1:]
    dead = set(rng.sample(others, int(len(others) * dead_fraction)))
    live = [i for i in others if i not in dead]
    contacts = {i: Contact(node_id=i, address=("10.0.0.1", 1 + n)) for n, i in enumerate(ids)}
    target = rng.choice([random_target, *ids])
    seeds = [contacts[i] for i in rng.sample(others, min(len(others), rng.randint(1, 2 * k)))]
    if not any(s.node_id in live for s in seeds) and live:
        seeds.append(contacts[live[0]])
    lookup = Lookup(target, seeds, local_id=local, k=k, alpha=alpha, slow_after=1.0)

    now = 0.0
    asked: set[NodeId] = set()
    outstanding: list[NodeId] = []
    silent: list[tuple[float, NodeId]] = []  # (RPC deadline, dead peer asked)
    for _ in range(10 * size + 100):
        step = lookup.next(now=now)
        if isinstance(step, Finished):
            break
        if isinstance(step, QueryPeer):
            node_id = step.contact.node_id
            assert node_id != local
            assert node_id not in asked
            assert lookup.in_flight <= alpha
            asked.add(node_id)
            if node_id in dead:
                silent.append((now + 5.0, node_id))
            else:
                outstanding.append(node_id)
            continue
        assert isinstance(step, Waiting)
        if outstanding:
            # Live peers answer in any order, well within slow_after (a live peer past it
            # would rightly be skipped as unresponsive, DHT-6.2).
            node_id = outstanding.pop(rng.randrange(len(outstanding)))
            now += rng.random() * 0.001
            # DHT-7.2: a peer leaves itself and the asker out of its answer.
            answer = closest([i for i in live if i != node_id], target, k)
            lookup.on_success(node_id, [contacts[i] for i in answer], now=now)
        elif step.until is not None:
            # Only dead peers are waiting: time runs to the iterator's wake-up.
            now = step.until
        else:
            # Waiting on unresponsive dead peers only: the next RPC timeout fails one.
            assert silent, "waiting on nothing"
            silent.sort()
            deadline, node_id = silent.pop(0)
            now = max(now, deadline)
            lookup.on_failure(node_id, now=now)
    else:
        raise AssertionError("lookup did not terminate")

    assert [c.node_id for c in lookup.closest_succeeded()] == closest(live, target, k)
