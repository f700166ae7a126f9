"""Where a message is stored (SF-3.2): capacity-ranked holders among the peers nearest its key.

1. Candidates are the peers a DHT lookup of the rendezvous key returned
   (DHT-6), each with the capabilities it advertised (CAP-3).
2. Those not eligible for ``message-storage`` (CAP-4.2, CAP-4.3:
   ``canStoreMessages``, no cellular, no battery) are dropped.
3. Of the rest, the ``candidate_pool`` nearest the key (XOR, DHT-1.2) are
   ranked by capacity score (CAP-4.4) and the best ``redundancy`` are the
   holders. Sender and repairing holders apply the same rule, so with the
   same view they pick the same set.
"""

from collections.abc import Iterable

from railgun_ref.capacity.selection import Candidate, Role, is_eligible, rank_candidates
from railgun_ref.core.errors import LocalProtocolError
from railgun_ref.core.ids import NodeId
from railgun_ref.dht.geometry import distance


def choose_holders(
    rendezvous_key: bytes,
    candidates: Iterable[Candidate],
    *,
    redundancy: int,
    candidate_pool: int,
    exclude: frozenset[NodeId] = frozenset(),
) -> list[NodeId]:
    """SF-3.2: the holders of `rendezvous_key`, best first (fewer if fewer qualify)."""
    if redundancy < 1 or candidate_pool < redundancy:
        raise LocalProtocolError("redundancy >= 1 and candidate_pool >= redundancy")
    unique = {c.node_id: c for c in candidates if c.node_id not in exclude}
    eligible = [c for c in unique.values() if is_eligible(c.capabilities, Role.MESSAGE_STORAGE)]
    eligible.sort(key=lambda c: distance(c.node_id, rendezvous_key))
    return rank_candidates(eligible[:candidate_pool], Role.MESSAGE_STORAGE).best(redundancy)
