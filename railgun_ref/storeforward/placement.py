"""Where a message is stored (SF-3.2): capacity-ranked holders among the peers nearest its key.

1. Candidates are the peers a DHT lookup of the rendezvous key returned
   (DHT-6), each with the capabilities it advertised (CAP-3).
2. Those not eligible for ``message-storage`` (CAP-4.2, CAP-4.3:
   ``canStoreMessages``, no cellular, no battery) are dropped.
3. Of the rest, the ``candidate_pool`` nearest the key (XOR, DHT-1.2) are
   ranked by capacity score (CAP-4.4) and the best ``redundancy`` are the
   holders. Sender and repairing holders apply the same rule, so with the
   same view they pick the same set.
4. With the local node's reputation scores (REP-5.1), peers below the host
   threshold are dropped in step 2 and step 3 ranks by `rank_score`.
"""

from collections.abc import Iterable, Mapping

from railgun_ref.abuse.reputation import DEFAULT_CONFIG as REPUTATION_DEFAULTS
from railgun_ref.capacity.selection import Candidate, Role, is_eligible, rank_candidates
from railgun_ref.core.errors import LocalProtocolError
from railgun_ref.core.ids import NodeId
from railgun_ref.dht.geometry import distance

#: REP-4.1: below this reputation a peer holds no messages.
HOST_THRESHOLD = REPUTATION_DEFAULTS.host_threshold


def choose_holders(
    rendezvous_key: bytes,
    candidates: Iterable[Candidate],
    *,
    redundancy: int,
    candidate_pool: int,
    exclude: frozenset[NodeId] = frozenset(),
    reputation: Mapping[NodeId, int] | None = None,
) -> list[NodeId]:
    """SF-3.2: the holders of `rendezvous_key`, best first (fewer if fewer qualify)."""
    if redundancy < 1 or candidate_pool < redundancy:
        raise LocalProtocolError("redundancy >= 1 and candidate_pool >= redundancy")
    unique = {c.node_id: c for c in candidates if c.node_id not in exclude}
    eligible = [
        c
        for c in unique.values()
        if is_eligible(c.capabilities, Role.MESSAGE_STORAGE)
        and (reputation is None or reputation.get(c.node_id, 0) >= HOST_THRESHOLD)
    ]
    eligible.sort(key=lambda c: distance(c.node_id, rendezvous_key))
    pool = eligible[:candidate_pool]
    return rank_candidates(pool, Role.MESSAGE_STORAGE, reputation=reputation).best(redundancy)
