"""REP-5.1 in the selections that lacked it: relay committees, holders chosen by a member's
store-and-forward client and a holder's repair. A peer with a bad score is not chosen when
an alternative exists; without scores every choice is what it was."""

from railgun_ref.abuse.reputation import DEFAULT_CONFIG as REPUTATION
from railgun_ref.capacity.selection import Candidate
from railgun_ref.core.ids import NodeId
from railgun_ref.relay.committee import CommitteeConfig, select_committee
from railgun_ref.relay.directory import CapabilityDirectory, NearPeer, SetCommittee
from railgun_ref.storeforward import Send, StorageHolder
from railgun_ref.storeforward import messages as m
from railgun_ref.storeforward.authorisers import VectorAuthoriser
from railgun_ref.storeforward.client import HolderCandidate, SendTo, SfClientConfig
from railgun_ref.storeforward.placement import choose_holders
from tests.unit.capacity.helpers import caps
from tests.unit.relay.test_committee import candidates
from tests.unit.storeforward.sf import HOLDER, KEY, T0, store
from tests.unit.storeforward.test_client import CAPS, MEMBER, ROOM, SENDER, Net
from tests.unit.transport.test_p2p_closed import IDENT

BAD = REPUTATION.host_threshold - 1  #: one millipoint below the host threshold
CONFIG = CommitteeConfig(size=3, pool=6)


def test_a_shunned_relay_leaves_the_committee_for_the_next_best() -> None:
    """RLY-1.2, REP-5.1: the committee member with a score below the host threshold is
    replaced by another peer; without scores (or with only neutral ones) it is as before."""
    pool = candidates(30)
    before = select_committee(IDENT, pool, CONFIG)
    assert select_committee(IDENT, pool, CONFIG, reputation={}) == before
    assert select_committee(IDENT, pool, CONFIG, reputation={before[0]: 0}) == before
    after = select_committee(IDENT, pool, CONFIG, reputation={before[0]: BAD})
    assert before[0] not in after and len(after) == 3
    assert set(before[1:]) <= set(after)


def test_a_good_record_breaks_a_capacity_tie() -> None:
    """REP-5.1: between two peers of equal capacity the one with the better record sits,
    where without scores the lower NodeId would (CAP-4.4)."""
    twins = [
        Candidate(node_id=c.node_id, capabilities=caps(upload_bandwidth=10_000))
        for c in candidates(2)
    ]
    config = CommitteeConfig(size=1, pool=2)
    (first,) = select_committee(IDENT, twins, config)
    assert first == min(c.node_id for c in twins)
    (other,) = {c.node_id for c in twins} - {first}
    assert select_committee(IDENT, twins, config, reputation={other: 5_000}) == (other,)


def test_the_directory_recomputes_committees_with_new_scores() -> None:
    """RLY-1.2: scores given to the directory change the committee it reports."""
    me = NodeId(bytes(32))
    directory = CapabilityDirectory(me, config=None, now=T0)
    directory.track_room(ROOM, IDENT, now=T0)
    peers = [
        NearPeer(node_id=c.node_id, address=("127.0.0.1", 20_000 + i), capabilities=c.capabilities)
        for i, c in enumerate(candidates(12))
    ]
    directory.near_found(ROOM, peers, now=T0)
    first = [a for a in iter(directory.next_action, None) if isinstance(a, SetCommittee)][-1]
    shunned = first.relays[0][0]
    directory.set_reputation({shunned: BAD})
    second = [a for a in iter(directory.next_action, None) if isinstance(a, SetCommittee)]
    assert second and shunned not in {n for n, _ in second[-1].relays}
    directory.set_reputation({shunned: BAD})  # the same view again changes nothing
    assert not [a for a in iter(directory.next_action, None) if isinstance(a, SetCommittee)]


def test_a_sender_does_not_store_on_a_shunned_holder() -> None:
    """SF-3.2, REP-5.1: the member's client skips a holder below the host threshold."""
    plain = Net(holders=3)
    sender = plain.client(SENDER, 1)
    sender.config = SfClientConfig(redundancy=1, candidate_pool=3)
    member = plain.client(MEMBER, 2)
    member.members_reachable(ROOM, [SENDER.node_id], now=T0)
    plain.pump(T0)
    found = [
        HolderCandidate(node_id=h, address=("127.0.0.1", 2), capabilities=CAPS)
        for h in sorted(plain.holders)
    ]
    usual = choose_holders(KEY, _as_candidates(found), redundancy=1, candidate_pool=3)
    sender.reputation = {usual[0]: BAD}
    sender.store(
        room_id=ROOM,
        message_id=b"m" * 16,
        member=MEMBER.node_id,
        blob=b"hi",
        expires_at=T0 + 3600,
        now=T0,
    )
    plain.pump(T0)
    sent_to = {a.peer for a in plain.out[SENDER.node_id] if isinstance(a, SendTo)}
    assert sent_to and usual[0] not in sent_to


def test_repair_skips_a_shunned_holder() -> None:
    """SF-7.2, REP-5.1: a holder's repair SYNCs go to the other holders, not a shunned one."""
    h = StorageHolder(HOLDER, authoriser=VectorAuthoriser(), now=T0)
    h.receive(m.encode(store(1)), peer=HOLDER, now=T0)
    while h.next_action() is not None:
        pass
    pool = candidates(4)
    usual = choose_holders(KEY, pool, redundancy=3, candidate_pool=6, exclude=frozenset({HOLDER}))
    h.reputation = {usual[0]: BAD}
    h.holders_found(KEY, pool, now=T0 + 1)
    targets = {a.peer for a in iter(h.next_action, None) if isinstance(a, Send)}
    assert usual[0] not in targets and set(usual[1:]) <= targets


def _as_candidates(found: list[HolderCandidate]) -> list[Candidate]:
    return [
        Candidate(node_id=c.node_id, capabilities=c.capabilities)
        for c in found
        if c.capabilities is not None
    ]
