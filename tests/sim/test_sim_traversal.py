"""NAT traversal (spec §20) in the simulator: every NAT pair, and peers that misbehave."""

import pytest

from railgun_ref.capacity.nat import NatType
from railgun_ref.core.ids import Address
from railgun_ref.drivers.sim_traversal import SIM_RELAY, build_pair, traverse_in_sim
from railgun_ref.netlab.topology import LAB_NATS
from railgun_ref.traversal import messages
from railgun_ref.traversal.envelopes import seal
from railgun_ref.traversal.messages import Plan
from railgun_ref.traversal.plan import choose_plan
from railgun_ref.traversal.punch import (
    FailureReason,
    Outcome,
    TraversalConfig,
    TraversalCounter,
)
from railgun_ref.traversal.relay import RelayCounter

EXPECTED: dict[Plan, Outcome] = {
    Plan.DIRECT: Outcome.DIRECT,
    Plan.REVERSE: Outcome.REVERSED,
    Plan.PUNCH: Outcome.PUNCHED,
    Plan.RELAY: Outcome.RELAYED,
}
PAIRS = [(a, b) for a in LAB_NATS for b in LAB_NATS]


@pytest.mark.parametrize(("a", "b"), PAIRS, ids=[f"{a.value}-{b.value}" for a, b in PAIRS])
def test_every_pair_ends_as_its_plan_says(a: NatType, b: NatType) -> None:
    """NAT-3.1, NAT-3.2, NAT-5.2, NAT-5.3: punchable pairs connect directly on the first
    attempt, by the plan's mechanism; the others stay relayed; both sides agree."""
    mine, theirs = traverse_in_sim(a, b, seed=7)
    want = EXPECTED[choose_plan(a, b)]
    assert (mine.outcome, theirs.outcome) == (want, want)
    assert mine.initiator and not theirs.initiator
    if want is Outcome.RELAYED:
        assert mine.reason is FailureReason.UNPUNCHABLE and mine.direct is None
    else:
        assert mine.attempts == 1 and mine.direct is not None and theirs.direct is not None


def _sent_only_where_allowed(sent: list[Address], allowed: set[Address]) -> bool:
    return set(sent) <= allowed


def test_datagrams_go_only_to_the_relay_and_learned_addresses() -> None:
    """NAT-5.5: the relay, the peer's CONNECT candidates, sources of its authentic PUNCHes."""
    built = build_pair(NatType.SYMMETRIC, NatType.RESTRICTED, seed=3)
    a, b = built.peers
    a.core.connect(b.core.identity.node_id, now=built.sim.now)
    built.sim.pump_app(a.address)
    built.sim.run_for(10)
    assert a.finished[0].outcome is Outcome.PUNCHED
    assert b.core.observed is not None and a.core.observed is not None
    assert a.finished[0].direct == b.core.observed
    # b learned a's second symmetric mapping only from a's authentic PUNCH (peer-reflexive)
    assert b.finished[0].direct is not None and b.finished[0].direct != a.core.observed
    assert _sent_only_where_allowed(a.sent_to, {SIM_RELAY, b.core.observed})
    assert _sent_only_where_allowed(b.sent_to, {SIM_RELAY, a.core.observed, b.finished[0].direct})


def test_a_peer_that_lies_about_its_address_ends_relayed_after_every_attempt() -> None:
    """NAT-5.4: PUNCHes to a made-up candidate never get an ACK: punch_timeout, relayed."""
    built = build_pair(NatType.PORT_RESTRICTED, NatType.PORT_RESTRICTED, seed=5)
    a, b = built.peers
    b.core.observed = ("127.99.0.1", 9)  # b advertises an address it does not have
    a.core.connect(b.core.identity.node_id, now=built.sim.now)
    built.sim.pump_app(a.address)
    built.sim.run_for(20)
    assert [f.outcome for f in a.finished] == [Outcome.RELAYED]
    assert a.finished[0].reason is FailureReason.PUNCH_TIMEOUT
    assert a.finished[0].attempts == TraversalConfig().max_attempts
    assert b.finished and b.finished[0].outcome is Outcome.RELAYED


def test_a_relay_that_drops_everything_fails_the_attempt_with_a_label() -> None:
    """NAT-5.1: no answer over the relay within the coordination timeout: FAILED."""
    built = build_pair(NatType.RESTRICTED, NatType.RESTRICTED, seed=9)
    a, b = built.peers
    built.sim.network.split([[a.address, b.address], [SIM_RELAY]])  # the relay is cut off
    a.core.connect(b.core.identity.node_id, now=built.sim.now)
    built.sim.pump_app(a.address)
    built.sim.run_for(10)
    assert a.finished[0].outcome is Outcome.FAILED
    assert a.finished[0].reason is FailureReason.COORDINATION_TIMEOUT
    assert b.finished == []


def test_connecting_before_registering_fails_with_a_label() -> None:
    built = build_pair(NatType.OPEN, NatType.OPEN, seed=1)
    a, b = built.peers
    a.core.observed = None
    a.core.connect(b.core.identity.node_id, now=built.sim.now)
    built.sim.pump_app(a.address)
    assert a.finished[0].reason is FailureReason.NOT_REGISTERED


def test_forged_and_flooded_coordination_is_dropped_and_counted() -> None:
    """NAT-1.1, NAT-5.5: garbage, a PUNCH of an unknown session and a CONNECT flood."""
    built = build_pair(NatType.RESTRICTED, NatType.RESTRICTED, seed=11)
    a, b = built.peers
    now = built.sim.now
    b.core.receive_datagram(b"not an envelope", SIM_RELAY, now=now)
    nonce = bytes(16)
    punch = seal(a.core.identity, messages.Punch(nonce=nonce, attempt=1), now=now, seq=1)
    b.core.receive_datagram(punch, a.address, now=now)
    connect = messages.Connect(nonce=nonce, addresses=(("127.10.0.1", 5000),), nat=NatType.OPEN)
    for seq in range(40):  # the same CONNECT, over and over, through the relay
        b.core.receive_datagram(
            seal(a.core.identity, connect, now=now, seq=seq), SIM_RELAY, now=now
        )
    counters = b.core.counters
    assert counters.get_count(TraversalCounter.REJECTED_MALFORMED) == 1
    assert counters.get_count(TraversalCounter.REJECTED_NO_SESSION) == 1
    assert counters.get_count(TraversalCounter.REJECTED_FLOOD) == 40 - 1 - 32
    direct = seal(a.core.identity, connect, now=now, seq=99)
    b.core.receive_datagram(direct, ("127.10.0.1", 5000), now=now)  # not via the relay
    assert counters.get_count(TraversalCounter.REJECTED_NOT_RELAY) == 1


def test_the_relay_forwards_only_between_registered_nodes_and_rate_limits() -> None:
    """NAT-4.1, NAT-4.2: registrations, unknown destinations, the per-sender rate."""
    built = build_pair(NatType.OPEN, NatType.OPEN, seed=2)
    a, b = built.peers
    relay = built.relay.core
    assert relay.counters.get_count(RelayCounter.REGISTERED) == 2
    now = built.sim.now
    inner = seal(a.core.identity, messages.Register(), now=now, seq=1)
    stranger = seal(
        a.core.identity, messages.Relay(to=relay.identity.node_id, inner=inner), now=now, seq=2
    )
    relay.receive_datagram(stranger, a.address, now=now)
    assert relay.counters.get_count(RelayCounter.DROPPED_UNKNOWN_DESTINATION) == 1
    relay.receive_datagram(stranger, ("127.77.0.1", 1), now=now)  # a's id from elsewhere
    assert relay.counters.get_count(RelayCounter.DROPPED_UNREGISTERED_SENDER) == 1
    to_b = seal(
        a.core.identity, messages.Relay(to=b.core.identity.node_id, inner=inner), now=now, seq=3
    )
    for _ in range(250):
        relay.receive_datagram(to_b, a.address, now=now)
    # 200 tokens a second: one went on the unknown destination above
    assert relay.counters.get_count(RelayCounter.FORWARDED) == 199
    assert relay.counters.get_count(RelayCounter.DROPPED_RATE) == 51


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_both_sides_initiating_at_once_still_connect(seed: int) -> None:
    """NAT-5.6 (glare): the lower NodeId's attempt goes on; the other side gives its own
    up and answers it; one direct path, found by one session on each side."""
    built = build_pair(NatType.RESTRICTED, NatType.PORT_RESTRICTED, seed=seed)
    a, b = built.peers
    a.core.connect(b.core.identity.node_id, now=built.sim.now)
    b.core.connect(a.core.identity.node_id, now=built.sim.now)
    built.sim.pump_app(a.address)
    built.sim.pump_app(b.address)
    built.sim.run_for(10)
    lower, higher = sorted((a, b), key=lambda app: app.core.identity.node_id)
    assert higher.core.counters.get_count(TraversalCounter.GLARE_YIELDED) == 1
    assert lower.core.counters.get_count(TraversalCounter.GLARE_YIELDED) == 0
    assert [(f.initiator, f.outcome) for f in lower.finished] == [(True, Outcome.PUNCHED)]
    assert [(f.initiator, f.outcome) for f in higher.finished] == [(False, Outcome.PUNCHED)]


def test_a_second_connect_while_an_attempt_runs_starts_nothing() -> None:
    """NAT-5.6: one attempt per peer at a time; a repeated connect is ignored and counted."""
    built = build_pair(NatType.RESTRICTED, NatType.RESTRICTED, seed=21)
    a, b = built.peers
    a.core.connect(b.core.identity.node_id, now=built.sim.now)
    a.core.connect(b.core.identity.node_id, now=built.sim.now)
    assert a.core.counters.get_count(TraversalCounter.IGNORED) == 1
    built.sim.pump_app(a.address)
    built.sim.run_for(10)
    assert [f.outcome for f in a.finished] == [Outcome.PUNCHED]
