"""Capacity-aware selection: eligibility per role and the deterministic ranking (CAP-4.x)."""

import random

import pytest

from railgun_ref.capacity import (
    Candidate,
    DeviceClass,
    Ineligibility,
    NatType,
    Role,
    eligibility,
    is_eligible,
    rank_candidates,
    score,
    select_hosts,
)
from railgun_ref.capacity.selection import MIN_BATTERY_PERCENT, accepted_nat_types
from railgun_ref.core.errors import LocalProtocolError
from railgun_ref.core.ids import NodeId

from .helpers import battery, caps


def node(n: int) -> NodeId:
    return NodeId(bytes([n]) * 32)


def test_roles_are_the_four_hosting_roles() -> None:
    """CAP-4.1: relay, turn, sfu-host, message-storage."""
    assert [r.value for r in Role] == ["relay", "turn", "sfu-host", "message-storage"]


def test_a_capable_desktop_hosts_every_role() -> None:
    """CAP-4.2: nothing rules out an open, plugged, capable desktop."""
    assert all(is_eligible(caps(), role) for role in Role)


def test_turn_needs_the_flag_capacity_and_an_open_nat() -> None:
    """CAP-4.2: canActAsTurn, relay capacity, open or full-cone."""
    assert eligibility(caps(can_act_as_turn=False), Role.TURN) == (Ineligibility.NOT_TURN_CAPABLE,)
    assert eligibility(caps(max_relay_bandwidth=0), Role.TURN) == (Ineligibility.NO_RELAY_CAPACITY,)
    assert eligibility(caps(nat_type=NatType.RESTRICTED), Role.TURN) == (
        Ineligibility.NAT_UNSUITABLE,
    )
    assert is_eligible(caps(nat_type=NatType.FULL_CONE), Role.TURN)
    assert accepted_nat_types(Role.TURN) == {NatType.OPEN, NatType.FULL_CONE}


def test_storage_needs_the_flag() -> None:
    """CAP-4.2: canStoreMessages."""
    assert eligibility(caps(can_store_messages=False), Role.MESSAGE_STORAGE) == (
        Ineligibility.NOT_STORAGE_CAPABLE,
    )
    assert is_eligible(caps(can_store_messages=False), Role.RELAY)


@pytest.mark.parametrize(
    ("nat", "sfu", "relay"),
    [
        (NatType.OPEN, True, True),
        (NatType.PORT_RESTRICTED, True, True),
        (NatType.SYMMETRIC, False, True),
        (NatType.UNKNOWN, False, True),
        (NatType.UDP_BLOCKED, False, False),
    ],
)
def test_nat_rules_per_role(nat: NatType, sfu: bool, relay: bool) -> None:
    """CAP-4.2: an SFU host must be reachable by all; nobody hosts without UDP."""
    assert is_eligible(caps(nat_type=nat), Role.SFU_HOST) is sfu
    assert is_eligible(caps(nat_type=nat), Role.RELAY) is relay
    assert is_eligible(caps(nat_type=nat), Role.MESSAGE_STORAGE) is relay


def test_cellular_hosts_nothing() -> None:
    """CAP-4.2: mobile-cellular is never eligible, even plugged in."""
    phone = caps(
        device_class=DeviceClass.MOBILE_CELLULAR, battery_status=battery(100, plugged_in=True)
    )
    for role in Role:
        assert eligibility(phone, role)[0] is Ineligibility.CELLULAR


def test_battery_rules() -> None:
    """CAP-4.3: long-lived roles never on battery; session roles from 50 % with a level."""
    below, at = battery(MIN_BATTERY_PERCENT - 1), battery(MIN_BATTERY_PERCENT)
    assert MIN_BATTERY_PERCENT == 50
    for role in (Role.RELAY, Role.SFU_HOST):
        assert eligibility(caps(battery_status=below), role) == (Ineligibility.LOW_BATTERY,)
        assert is_eligible(caps(battery_status=at), role)
        no_level = caps(device_class=DeviceClass.LAPTOP_BATTERY)
        assert eligibility(no_level, role) == (Ineligibility.LOW_BATTERY,)
    for role in (Role.TURN, Role.MESSAGE_STORAGE):
        assert eligibility(caps(battery_status=battery(100)), role) == (Ineligibility.ON_BATTERY,)
    plugged_laptop = caps(
        device_class=DeviceClass.LAPTOP_BATTERY, battery_status=battery(5, plugged_in=True)
    )
    assert all(is_eligible(plugged_laptop, role) for role in Role)


def test_every_reason_is_reported_in_table_order() -> None:
    """CAP-4.2: all reasons, in the order of the table."""
    worst = caps(
        device_class=DeviceClass.MOBILE_CELLULAR,
        can_act_as_turn=False,
        max_relay_connections=0,
        nat_type=NatType.SYMMETRIC,
    )
    assert eligibility(worst, Role.TURN) == (
        Ineligibility.CELLULAR,
        Ineligibility.NOT_TURN_CAPABLE,
        Ineligibility.NO_RELAY_CAPACITY,
        Ineligibility.NAT_UNSUITABLE,
        Ineligibility.ON_BATTERY,
    )
    assert list(Ineligibility) == sorted(Ineligibility, key=list(Ineligibility).index)


def test_ranking_is_by_score_then_node_id() -> None:
    """CAP-4.4: total descending, NodeId ascending; the input order does not matter."""
    candidates = [
        Candidate(node_id=node(5), capabilities=caps()),
        Candidate(node_id=node(2), capabilities=caps()),
        Candidate(node_id=node(9), capabilities=caps(device_class=DeviceClass.SERVER)),
        Candidate(node_id=node(1), capabilities=caps(upload_bandwidth=1_249_999)),
        Candidate(node_id=node(3), capabilities=caps(nat_type=NatType.UDP_BLOCKED)),
    ]
    want = [node(9), node(2), node(5), node(1)]
    for seed in range(5):
        shuffled = candidates[:]
        random.Random(seed).shuffle(shuffled)
        ranking = rank_candidates(shuffled, Role.RELAY)
        assert [r.node_id for r in ranking.ranked] == want
        assert ranking.excluded == ((node(3), (Ineligibility.NAT_UNSUITABLE,)),)
    assert ranking.ranked[0].score == score(caps(device_class=DeviceClass.SERVER))
    assert select_hosts(candidates, Role.RELAY, 2) == want[:2]
    assert select_hosts(candidates, Role.RELAY, 10) == want
    assert ranking.best(0) == []


def test_a_repeated_node_id_is_the_callers_error() -> None:
    """CAP-4.4: one advertisement per node; the caller picks the newest."""
    twice = [Candidate(node_id=node(1), capabilities=caps())] * 2
    with pytest.raises(LocalProtocolError):
        rank_candidates(twice, Role.SFU_HOST)
    with pytest.raises(LocalProtocolError):
        rank_candidates([], Role.SFU_HOST).best(-1)
