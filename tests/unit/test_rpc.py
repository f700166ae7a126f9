"""Requests in flight (RPC-1.x) and freshness/replay protection (ENV-2.3, ENV-2.4)."""

import pytest

from railgun_ref.core.constants import MAX_CLOCK_SKEW
from railgun_ref.core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from railgun_ref.core.ids import NodeId
from railgun_ref.rpc.replay import ReplayGuard
from railgun_ref.rpc.requests import Channel, PendingRequest, PendingRequests

PEER = NodeId(b"\x01" * 32)
OTHER = NodeId(b"\x02" * 32)
KEY = b"\x11" * 32


def request(
    request_id: int, *, deadline: float = 10.0, expected: NodeId | None = PEER
) -> PendingRequest:
    return PendingRequest(
        request_id=request_id,
        kind=1,
        address=("127.0.0.1", 1),
        expected_sender=expected,
        channel=Channel.DATAGRAM,
        sent_at=deadline - 5.0,
        deadline=deadline,
    )


def remote_code(exc: pytest.ExceptionInfo[RemoteProtocolError]) -> ErrorCode:
    return exc.value.code


# ------------------------------------------------------------------------- PendingRequests


def test_duplicate_request_id_is_a_local_error() -> None:
    """RPC-1.1: request ids in flight are unique; reusing one is a caller bug."""
    pending = PendingRequests()
    pending.add(request(1))
    with pytest.raises(LocalProtocolError):
        pending.add(request(1, deadline=20.0))
    assert len(pending) == 1
    assert pending.expire(10.0)[0].deadline == 10.0


def test_response_completes_exactly_once() -> None:
    """RPC-1.2: a response completes its request once; a second one matches nothing."""
    pending = PendingRequests()
    pending.add(request(1))
    assert pending.complete(1, PEER) == request(1)
    assert 1 not in pending
    with pytest.raises(RemoteProtocolError) as info:
        pending.complete(1, PEER)
    assert remote_code(info) is ErrorCode.UNEXPECTED_RESPONSE


def test_unknown_response_is_unexpected() -> None:
    """RPC-1.2: a response to no request in flight is UNEXPECTED_RESPONSE."""
    with pytest.raises(RemoteProtocolError) as info:
        PendingRequests().complete(7, PEER)
    assert remote_code(info) is ErrorCode.UNEXPECTED_RESPONSE


def test_response_from_wrong_sender_keeps_request_in_flight() -> None:
    """RPC-1.3: a response from another node is WRONG_SENDER; the right node may still answer."""
    pending = PendingRequests()
    pending.add(request(1))
    with pytest.raises(RemoteProtocolError) as info:
        pending.complete(1, OTHER)
    assert remote_code(info) is ErrorCode.WRONG_SENDER
    assert 1 in pending
    assert pending.next_deadline() == 10.0
    assert pending.complete(1, PEER).request_id == 1
    assert len(pending) == 0


def test_any_sender_completes_when_peer_unknown() -> None:
    """RPC-1.3: without an expected sender, whoever answers completes the request."""
    pending = PendingRequests()
    pending.add(request(1, expected=None))
    assert pending.complete(1, OTHER).request_id == 1


def test_expire_at_exactly_the_deadline() -> None:
    """RPC-1.2: a request times out at its deadline, not a moment before."""
    pending = PendingRequests()
    pending.add(request(1, deadline=10.0))
    assert pending.expire(9.999999) == []
    assert 1 in pending
    assert [r.request_id for r in pending.expire(10.0)] == [1]
    assert len(pending) == 0
    assert pending.expire(100.0) == []


def test_expire_returns_due_requests_in_deadline_order() -> None:
    """RPC-1.2: every due request is returned once, earliest deadline first."""
    pending = PendingRequests()
    for request_id, deadline in [(3, 30.0), (1, 10.0), (2, 20.0), (4, 40.0)]:
        pending.add(request(request_id, deadline=deadline))
    assert [r.request_id for r in pending.expire(30.0)] == [1, 2, 3]
    assert pending.next_deadline() == 40.0


def test_next_deadline_skips_completed_and_cancelled() -> None:
    """RPC-1.2: the next deadline is that of the earliest request still in flight."""
    pending = PendingRequests()
    assert pending.next_deadline() is None
    pending.add(request(1, deadline=10.0))
    pending.add(request(2, deadline=20.0))
    pending.add(request(3, deadline=30.0))
    assert pending.next_deadline() == 10.0
    pending.complete(1, PEER)
    assert pending.next_deadline() == 20.0
    assert pending.cancel(2) == request(2, deadline=20.0)
    assert pending.cancel(2) is None
    assert pending.next_deadline() == 30.0
    assert [r.request_id for r in pending.expire(30.0)] == [3]
    assert pending.next_deadline() is None


def test_completed_request_does_not_time_out() -> None:
    """RPC-1.2: an answered request ends as answered; expire never reports it."""
    pending = PendingRequests()
    pending.add(request(1, deadline=10.0))
    pending.complete(1, PEER)
    assert pending.expire(10.0) == []


def test_reused_id_keeps_its_own_deadline() -> None:
    """RPC-1.2: an id reused after its request ended times out at the new deadline only."""
    pending = PendingRequests()
    pending.add(request(1, deadline=10.0))
    pending.complete(1, PEER)
    pending.add(request(1, deadline=20.0))
    assert pending.next_deadline() == 20.0
    assert pending.expire(10.0) == []
    assert 1 in pending
    assert [r.deadline for r in pending.expire(20.0)] == [20.0]


# ----------------------------------------------------------------------------- ReplayGuard

NOW = 1_700_000_000.0


def ms(seconds: float) -> int:
    return round(seconds * 1000)


def refusal(guard: ReplayGuard, *args: int, now: float, key: bytes = KEY) -> ErrorCode:
    with pytest.raises(RemoteProtocolError) as info:
        guard.check(key, *args, now=now)
    return remote_code(info)


def test_fresh_envelope_accepted_and_replay_refused() -> None:
    """ENV-2.4: the same (sender, type, request id) seen twice in the window is a REPLAY."""
    guard = ReplayGuard()
    guard.check(KEY, 1, 5, ms(NOW), now=NOW)
    assert refusal(guard, 1, 5, ms(NOW), now=NOW + 1) is ErrorCode.REPLAY
    # re-stamping does not help: the triple is what is remembered
    assert refusal(guard, 1, 5, ms(NOW + 1), now=NOW + 1) is ErrorCode.REPLAY
    # another type, request id or sender is another envelope
    guard.check(KEY, 2, 5, ms(NOW), now=NOW)
    guard.check(KEY, 1, 6, ms(NOW), now=NOW)
    guard.check(b"\x22" * 32, 1, 5, ms(NOW), now=NOW)
    assert len(guard) == 4


@pytest.mark.parametrize("offset", [MAX_CLOCK_SKEW + 0.001, -(MAX_CLOCK_SKEW + 0.001), 1e6, -1e6])
def test_stale_in_both_directions(offset: float) -> None:
    """ENV-2.3: a timestamp more than the skew away from the receiver's clock is STALE."""
    guard = ReplayGuard()
    assert refusal(guard, 1, 5, ms(NOW + offset), now=NOW) is ErrorCode.STALE
    assert len(guard) == 0  # nothing stale is remembered


@pytest.mark.parametrize("offset", [MAX_CLOCK_SKEW, -MAX_CLOCK_SKEW, 0.0])
def test_skew_boundary_is_fresh(offset: float) -> None:
    """ENV-2.3: a timestamp exactly the skew away is still fresh."""
    guard = ReplayGuard()
    guard.check(KEY, 1, 5, ms(NOW + offset), now=NOW)
    assert len(guard) == 1


def test_future_dated_envelope_remembered_while_it_can_be_fresh() -> None:
    """ENV-2.4: an envelope is remembered until its timestamp plus the skew."""
    guard = ReplayGuard()
    sent = NOW + MAX_CLOCK_SKEW  # the sender's clock runs ahead
    guard.check(KEY, 1, 5, ms(sent), now=NOW)
    late = sent + MAX_CLOCK_SKEW  # last moment a copy is still fresh
    assert refusal(guard, 1, 5, ms(sent), now=late) is ErrorCode.REPLAY
    assert refusal(guard, 1, 5, ms(sent), now=late + 0.001) is ErrorCode.STALE


def test_forgets_after_the_window() -> None:
    """ENV-2.4: after the window a triple is forgotten, so memory does not grow forever."""
    guard = ReplayGuard()
    guard.check(KEY, 1, 5, ms(NOW), now=NOW)
    guard.check(KEY, 1, 6, ms(NOW), now=NOW)
    later = NOW + MAX_CLOCK_SKEW + 1
    guard.check(KEY, 1, 7, ms(later), now=later)
    assert len(guard) == 1
    # the same request id, freshly stamped after the window, is a new envelope
    guard.check(KEY, 1, 5, ms(later), now=later)
    assert len(guard) == 2
    assert guard.evicted == 0


def test_capacity_eviction_is_counted() -> None:
    """ENV-2.4: over capacity the guard forgets a triple and counts the eviction."""
    guard = ReplayGuard(capacity=2)
    for request_id in (1, 2, 3):
        guard.check(KEY, 1, request_id, ms(NOW), now=NOW)
    assert len(guard) == 2
    assert guard.evicted == 1
    assert refusal(guard, 1, 2, ms(NOW), now=NOW) is ErrorCode.REPLAY
    assert refusal(guard, 1, 3, ms(NOW), now=NOW) is ErrorCode.REPLAY
    # the evicted one is the documented price of bounded memory
    guard.check(KEY, 1, 1, ms(NOW), now=NOW)
    assert guard.evicted == 2


def test_expired_entries_go_before_live_ones_are_evicted() -> None:
    """ENV-2.4: a replay slips through only if more than `capacity` envelopes are still fresh.

    Here only two envelopes can still be replayed (A and C) and capacity is two, so the
    one that can no longer be fresh (B) must be dropped, not A.
    """
    guard = ReplayGuard(capacity=2)
    guard.check(KEY, 1, 0xA, ms(NOW + MAX_CLOCK_SKEW), now=NOW)  # A: fresh until NOW + 600
    guard.check(KEY, 1, 0xB, ms(NOW - MAX_CLOCK_SKEW), now=NOW)  # B: fresh until NOW
    guard.check(KEY, 1, 0xC, ms(NOW + 1), now=NOW + 1)  # C: B is stale by now
    assert guard.evicted == 0
    assert refusal(guard, 1, 0xA, ms(NOW + MAX_CLOCK_SKEW), now=NOW + 2) is ErrorCode.REPLAY
    assert refusal(guard, 1, 0xC, ms(NOW + 1), now=NOW + 2) is ErrorCode.REPLAY


def test_response_of_wrong_kind_keeps_request_in_flight() -> None:
    """RPC-1.4: a response of a type that does not answer the request leaves it pending."""
    pending = PendingRequests()
    pending.add(request(1))  # kind 1 (PING)
    with pytest.raises(RemoteProtocolError) as info:
        pending.complete(1, PEER, kind=16)
    assert remote_code(info) is ErrorCode.UNEXPECTED_RESPONSE
    assert 1 in pending
    assert pending.complete(1, PEER, kind=1).request_id == 1
    assert 1 not in pending
