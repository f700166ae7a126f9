"""PRIV-4: the slot scheduler: one message per slot, real messages take slots."""

import itertools
import random

import pytest

from railgun_ref.core.errors import LocalProtocolError
from railgun_ref.privacy.cover import (
    DEFAULT,
    INTERACTIVE,
    OFF,
    CoverCounter,
    CoverProfile,
    CoverScheduler,
    EmitCover,
    EmitReal,
    Outgoing,
)

T0 = 1_800_000_000.0


def run(scheduler: CoverScheduler, until: float) -> list[EmitReal | EmitCover]:
    out: list[EmitReal | EmitCover] = []
    while (deadline := scheduler.next_deadline()) is not None and deadline <= until:
        scheduler.on_timer(now=deadline)
        while (action := scheduler.next_action()) is not None:
            out.append(action)
    return out


def message(i: int, at: float, bucket: int = 256) -> Outgoing:
    return Outgoing(message_id=bytes([i]) * 16, bucket=bucket, destination=b"m1", submitted_at=at)


def test_every_gap_is_inside_the_jitter_whether_or_not_real_messages_are_sent() -> None:
    """PRIV-4.1, PRIV-4.2: gaps stay in 30 s ± 10 s; the real message takes a slot."""
    scheduler = CoverScheduler(DEFAULT, rng=random.Random(1), now=T0)
    scheduler.add_destination(b"relay")
    first = run(scheduler, T0 + 200)
    assert scheduler.submit(message(1, T0 + 200), now=T0 + 200)
    rest = run(scheduler, T0 + 2000)
    slots = [a.slot_at for a in first + rest]
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert all(20.0 <= g <= 40.0 for g in gaps)
    real = [a for a in rest if isinstance(a, EmitReal)]
    assert len(real) == 1 and 0 < real[0].waited_s <= 40.0
    assert scheduler.counters.get_count(CoverCounter.REAL_SENT) == 1
    assert scheduler.counters.get_count(CoverCounter.COVER_SENT) == len(slots) - 1


def test_cover_follows_the_real_bucket_mix_and_destinations() -> None:
    """PRIV-4.3: cover goes where real messages go, in their bucket mix."""
    scheduler = CoverScheduler(INTERACTIVE, rng=random.Random(2), now=T0)
    for i in range(200):
        scheduler.submit(message(i % 250, T0, bucket=4096), now=T0)
        run(scheduler, T0 + 10 * (i + 1))
    cover = [a for a in run(scheduler, T0 + 10_000) if isinstance(a, EmitCover)]
    assert {c.destination for c in cover} == {b"m1"}
    share = sum(c.bucket == 4096 for c in cover) / len(cover)
    assert share > 0.5  # 200 real 4 KiB messages outweigh the prior of 100


def test_off_sends_at_once_and_has_no_slots() -> None:
    """PRIV-4.1: the off profile."""
    scheduler = CoverScheduler(OFF, rng=random.Random(3), now=T0)
    assert scheduler.next_deadline() is None
    scheduler.submit(message(1, T0), now=T0)
    action = scheduler.next_action()
    assert isinstance(action, EmitReal) and action.waited_s == 0.0


def test_queue_bound_and_burst_slots_are_bounded() -> None:
    """PRIV-4.5: the queue bound refuses; burst slots are bounded."""
    profile = CoverProfile(name="t", enabled=True, queue_bound=4, burst_slots=2)
    scheduler = CoverScheduler(profile, rng=random.Random(4), now=T0)
    accepted = [scheduler.submit(message(i, T0), now=T0) for i in range(6)]
    assert accepted == [True] * 4 + [False] * 2
    assert scheduler.counters.get_count(CoverCounter.QUEUE_FULL) == 2
    run(scheduler, T0 + 400)
    assert scheduler.counters.get_count(CoverCounter.BURST_SLOT) == 2
    assert scheduler.counters.get_count(CoverCounter.REAL_SENT) == 4


def test_the_budget_stops_cover_but_never_real_messages() -> None:
    """PRIV-4.6: the budget stops cover, never a real message."""
    profile = CoverProfile(name="t", enabled=True, budget_bytes_per_day=512)
    scheduler = CoverScheduler(profile, rng=random.Random(6), now=T0)
    scheduler.add_destination(b"relay")
    run(scheduler, T0 + 600)
    assert scheduler.counters.get_count(CoverCounter.COVER_SENT) <= 2
    assert scheduler.counters.get_count(CoverCounter.BUDGET_SPENT) > 0
    scheduler.submit(message(1, T0 + 600), now=T0 + 600)
    assert any(isinstance(a, EmitReal) for a in run(scheduler, T0 + 700))


def test_the_stated_costs() -> None:
    """PRIV-4.2, PRIV-4.6: the latency and bytes a day the spec states."""
    assert round(DEFAULT.bytes_per_day(256) / 1e6, 2) == 0.74
    assert round(DEFAULT.bytes_per_day(65536) / 1e6) == 189
    assert (
        round(CoverProfile(name="u", enabled=True, interval_s=30, jitter_s=10).mean_wait_s(), 1)
        == 15.6
    )
    with pytest.raises(LocalProtocolError):
        CoverProfile(name="bad", enabled=True, interval_s=1.0, jitter_s=2.0)
