"""The sharing budget: one CapacitySharing for relaying, bridging, storage and TURN (CAP-7)."""

import pytest

from railgun_ref.capacity import CapacitySharing, CapacitySharingConfig, Granted
from railgun_ref.capacity.budget import BudgetCounter, Duty, SharingBudget
from railgun_ref.capacity.sharing import BandwidthRefused, ConnectionsRefused, SharingDisabled
from railgun_ref.core.errors import LocalProtocolError

from .helpers import caps

T = 1_700_000_000.0


def budget(**config: object) -> SharingBudget:
    # 1000 B/s upload x 0.5 = 500 B/s shared, a 500-byte burst; 2 relay connections.
    capabilities = caps(upload_bandwidth=1000, max_relay_connections=2)
    sharing = CapacitySharing(capabilities, CapacitySharingConfig(**config), now=T)  # type: ignore[arg-type]
    return SharingBudget(sharing)


def test_every_duty_draws_on_the_same_upload_share() -> None:
    """CAP-7.1, CAP-7.2: what bridging spent, storage cannot spend; refusals are counted
    per duty and say when to retry."""
    shared = budget()
    assert isinstance(shared.bandwidth(Duty.BRIDGE, 400, now=T), Granted)
    refused = shared.bandwidth(Duty.STORAGE, 200, now=T)
    assert isinstance(refused, BandwidthRefused)
    assert refused.retry_after == pytest.approx(0.2)
    assert isinstance(shared.bandwidth(Duty.STORAGE, 200, now=T + 0.2), Granted)
    assert shared.counters.get_count(BudgetCounter.BYTES_GRANTED, Duty.BRIDGE) == 400
    assert shared.counters.get_count(BudgetCounter.BYTES_GRANTED, Duty.STORAGE) == 200
    assert shared.refused(Duty.STORAGE) == 1 and shared.refused(Duty.BRIDGE) == 0


def test_every_duty_draws_on_the_same_connection_slots() -> None:
    """CAP-7.2: maxRelayConnections counts relay, bridge and storage slots together;
    the same key under two duties is two slots; closing frees one."""
    shared = budget()
    assert isinstance(shared.open(Duty.RELAY, "peer-1"), Granted)
    assert isinstance(shared.open(Duty.BRIDGE, "peer-1"), Granted)
    assert isinstance(shared.open(Duty.STORAGE, "peer-2"), ConnectionsRefused)
    assert shared.counters.get_count(BudgetCounter.REFUSED_CONNECTIONS, Duty.STORAGE) == 1
    assert shared.connections() == 2 and shared.connections(Duty.BRIDGE) == 1
    shared.close(Duty.RELAY, "peer-1")
    assert isinstance(shared.open(Duty.STORAGE, "peer-2"), Granted)
    with pytest.raises(LocalProtocolError):
        shared.close(Duty.RELAY, "peer-1")


def test_turn_slots_held_on_the_same_sharing_count_too() -> None:
    """CAP-7.1: a TURN allocation holding a slot of the same CapacitySharing leaves one
    fewer for the budget's duties."""
    shared = budget()
    assert isinstance(shared.sharing.open_relay_connection(("turn", 1)), Granted)
    assert isinstance(shared.open(Duty.RELAY, "a"), Granted)
    assert isinstance(shared.open(Duty.RELAY, "b"), ConnectionsRefused)


def test_sharing_disabled_refuses_every_duty() -> None:
    """CAP-5.1, CAP-7.2: with sharing off, every duty is refused and counted as disabled."""
    shared = budget(enabled=False)
    for duty in Duty:
        assert isinstance(shared.bandwidth(duty, 1, now=T), SharingDisabled)
        assert isinstance(shared.open(duty, "k"), SharingDisabled)
        assert shared.counters.get_count(BudgetCounter.REFUSED_DISABLED, duty) == 2
