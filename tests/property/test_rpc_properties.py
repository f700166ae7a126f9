"""Model-based tests of request bookkeeping (RPC-1.x) and replay protection (ENV-2.3/2.4)."""

from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from railgun_ref.core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from railgun_ref.core.ids import NodeId
from railgun_ref.rpc.replay import ReplayGuard
from railgun_ref.rpc.requests import Channel, PendingRequest, PendingRequests

PEER = NodeId(b"\x01" * 32)
OTHER = NodeId(b"\x02" * 32)


class PendingRequestsMachine(RuleBasedStateMachine):
    """RPC-1.1/RPC-1.2/RPC-1.3: PendingRequests against a dict model, with request ids reused.

    Every request ends exactly once (answered, cancelled or timed out), at its own
    deadline, whatever happened earlier to other requests that had the same id.
    """

    def __init__(self) -> None:
        super().__init__()
        self.pending = PendingRequests()
        self.model: dict[int, PendingRequest] = {}
        self.now = 0.0

    @rule(
        request_id=st.integers(0, 3),
        timeout=st.sampled_from([0.25, 0.5, 1.0, 2.0]),
        expected=st.sampled_from([None, PEER]),
        kind=st.sampled_from([1, 16]),
    )
    def add(self, request_id: int, timeout: float, expected: NodeId | None, kind: int) -> None:
        request = PendingRequest(
            request_id=request_id,
            kind=kind,
            address=("127.0.0.1", 1),
            expected_sender=expected,
            channel=Channel.DATAGRAM,
            sent_at=self.now,
            deadline=self.now + timeout,
        )
        if request_id in self.model:
            try:
                self.pending.add(request)
            except LocalProtocolError:
                return
            raise AssertionError("duplicate id accepted")
        self.pending.add(request)
        self.model[request_id] = request

    @rule(
        request_id=st.integers(0, 3),
        sender=st.sampled_from([PEER, OTHER]),
        kind=st.sampled_from([None, 1, 16]),
    )
    def complete(self, request_id: int, sender: NodeId, kind: int | None) -> None:
        held = self.model.get(request_id)
        expected_code: ErrorCode | None = None
        if held is None:
            expected_code = ErrorCode.UNEXPECTED_RESPONSE
        elif held.expected_sender is not None and held.expected_sender != sender:
            expected_code = ErrorCode.WRONG_SENDER
        elif kind is not None and held.kind != kind:
            expected_code = ErrorCode.UNEXPECTED_RESPONSE
        try:
            got = self.pending.complete(request_id, sender, kind=kind)
        except RemoteProtocolError as exc:
            assert exc.code is expected_code
            return
        assert expected_code is None
        assert got == held
        del self.model[request_id]

    @rule(request_id=st.integers(0, 3))
    def cancel(self, request_id: int) -> None:
        assert self.pending.cancel(request_id) == self.model.pop(request_id, None)

    @rule(step=st.sampled_from([0.0, 0.25, 0.5, 1.0]))
    def advance_and_expire(self, step: float) -> None:
        self.now += step
        due = sorted(
            (r for r in self.model.values() if r.deadline <= self.now),
            key=lambda r: (r.deadline, r.request_id),
        )
        assert self.pending.expire(self.now) == due
        for request in due:
            del self.model[request.request_id]

    @precondition(lambda self: True)
    @invariant()
    def matches_model(self) -> None:
        assert len(self.pending) == len(self.model)
        deadlines = [r.deadline for r in self.model.values()]
        assert self.pending.next_deadline() == (min(deadlines) if deadlines else None)
        for request_id in range(4):
            assert (request_id in self.pending) == (request_id in self.model)


TestPendingRequests = PendingRequestsMachine.TestCase

SKEW = 10.0


@given(
    capacity=st.integers(1, 4),
    steps=st.lists(
        st.tuples(
            st.integers(0, 5),  # which (type, request id) triple
            st.integers(-12, 12),  # timestamp offset from now, seconds
            st.sampled_from([0, 0, 1, 3, 11]),  # clock advance before the check
        ),
        max_size=40,
    ),
)
def test_replay_guard_guarantee(capacity: int, steps: list[tuple[int, int, int]]) -> None:
    """ENV-2.3/ENV-2.4: stale iff off by more than the skew; a triple accepted at ts is refused
    until ts + skew unless evicted; and evictions happen only with more than `capacity`
    triples still fresh."""
    guard = ReplayGuard(max_skew=SKEW, capacity=capacity)
    now = 1000.0
    accepted: dict[int, float] = {}  # triple -> timestamp of the accepted envelope
    evicted: set[int] = set()  # triples that may have been evicted (over-approximation)
    for triple, offset, advance in steps:
        now += advance
        sent_at = now + offset
        remembered = triple in accepted and now <= accepted[triple] + SKEW
        before = guard.evicted
        try:
            guard.check(b"k", 1, triple, int(sent_at * 1000), now=now)
        except RemoteProtocolError as exc:
            if abs(offset) > SKEW:
                assert exc.code is ErrorCode.STALE
            else:
                assert exc.code is ErrorCode.REPLAY
                assert remembered
            continue
        assert abs(offset) <= SKEW
        assert not remembered or triple in evicted, "a fresh replay slipped through"
        accepted[triple] = sent_at
        evicted.discard(triple)
        if guard.evicted > before:
            live = [t for t, ts in accepted.items() if now <= ts + SKEW]
            assert len(live) > capacity, "evicted while expired triples could have gone"
            # which one went is not observable: any live one may now be replayable
            evicted.update(live)
