"""Adaptive admission proof-of-work (POW): the puzzle, refusals, the queue and the effort."""

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from railgun_ref.abuse.pow import (
    UINT32_MAX,
    Admitted,
    EffortChanged,
    PowConfig,
    PowCounter,
    PowError,
    PowRefusal,
    PowService,
    PowSolution,
    SeedRotated,
    Shed,
    decode_solution,
    encode_solution,
    pow_value,
    solve,
    solves,
)
from railgun_ref.core.errors import ErrorCode
from railgun_ref.core.ids import NodeId

T0 = 1_700_000_000.0
SERVICE = NodeId(b"\x05" * 32)
HONEST = NodeId(b"\x01" * 32)
ATTACKER = NodeId(b"\x02" * 32)


class Bytes:
    """A deterministic byte source (SHA-256 in counter mode)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.calls = 0

    def __call__(self, size: int) -> bytes:
        self.calls += 1
        return hashlib.sha256(f"{self.label}/{self.calls}".encode()).digest()[:size]


def service(config: PowConfig | None = None) -> PowService:
    return PowService(SERVICE, Bytes("seed"), config or PowConfig(), now=T0)


def solved(svc: PowService, requester: NodeId, effort: int, start: int = 0) -> PowSolution:
    seed = svc._seeds[0]
    found = solve(
        seed, SERVICE, requester, effort, start=start.to_bytes(16, "big"), max_tries=effort * 40
    )
    assert found is not None
    return found


def test_the_puzzle_meets_its_effort_and_costs_about_effort_hashes() -> None:
    """POW-2.1: 200 solutions at effort 64 take about 64 tries each (within a wide bound)."""
    seed = b"\x07" * 32
    tries = 0
    for k in range(200):
        start = (k * 10**9).to_bytes(16, "big")
        found = solve(seed, SERVICE, HONEST, 64, start=start, max_tries=10_000)
        assert found is not None
        assert pow_value(seed, SERVICE, HONEST, 64, found.nonce) * 64 <= UINT32_MAX
        tries += int.from_bytes(found.nonce, "big") - k * 10**9 + 1
    assert 64 * 200 / 2 < tries < 64 * 200 * 2


def test_a_solution_is_bound_to_its_requester_and_seed() -> None:
    """POW-2.1: the same nonce fails for another requester or another seed (almost surely)."""
    seed = b"\x07" * 32
    found = solve(seed, SERVICE, HONEST, 4096, start=bytes(16), max_tries=200_000)
    assert found is not None
    assert solves(seed, SERVICE, HONEST, found)
    assert not solves(seed, SERVICE, ATTACKER, found)
    assert not solves(b"\x08" * 32, SERVICE, HONEST, found)


def test_effort_zero_is_no_work() -> None:
    assert solves(
        b"\x00" * 32, SERVICE, HONEST, PowSolution(seed_head=bytes(4), nonce=bytes(16), effort=0)
    )


def test_solution_codec_round_trips_and_refuses_malformed() -> None:
    """POW-2.2."""
    solution = PowSolution(seed_head=b"abcd", nonce=bytes(range(16)), effort=1000)
    assert decode_solution(encode_solution(solution)) == solution
    for bad in (b"\xff", encode_solution(solution)[:-1], b"\x84\x02\x40\x40\x00"):
        with pytest.raises(PowError) as info:
            decode_solution(bad)
        assert info.value.refusal is PowRefusal.MALFORMED


def test_wrong_stale_and_reused_solutions_are_refused_and_counted() -> None:
    """POW-3.2: typed errors with codes, one counter per refusal."""
    svc = service()
    good = solved(svc, HONEST, 256)
    svc.submit(HONEST, good, 1, now=T0)
    cases = [
        (HONEST, good, PowRefusal.REUSED, ErrorCode.REPLAY),
        (ATTACKER, good, PowRefusal.WRONG, ErrorCode.FORBIDDEN),
        (
            HONEST,
            PowSolution(seed_head=b"zzzz", nonce=good.nonce, effort=256),
            PowRefusal.STALE,
            ErrorCode.STALE,
        ),
        (
            HONEST,
            PowSolution(seed_head=good.seed_head, nonce=good.nonce, effort=1 << 30),
            PowRefusal.EFFORT_TOO_HIGH,
            ErrorCode.MALFORMED,
        ),
    ]
    for requester, solution, refusal, code in cases:
        with pytest.raises(PowError) as info:
            svc.submit(requester, solution, 2, now=T0)
        assert (info.value.refusal, info.value.code) == (refusal, code)
        assert svc.counters.get_count(PowCounter.REFUSED, refusal) == 1
    assert svc.counters.get_count(PowCounter.ACCEPTED) == 1
    assert svc.waiting == 1


def test_seeds_rotate_and_the_previous_one_stays_valid_for_one_period() -> None:
    """POW-1.1, POW-3.1: previous seed accepted, the one before it stale; its cache gone."""
    svc = service()
    first = solved(svc, HONEST, 64)
    svc.on_timer(now=T0 + 3600)
    assert SeedRotated(seed_head=svc.seed_head) in _drain(svc)
    svc.submit(HONEST, first, 1, now=T0 + 3600)
    second = solved(svc, HONEST, 64, start=5)
    svc.on_timer(now=T0 + 7200)
    with pytest.raises(PowError) as info:
        svc.submit(HONEST, first, 2, now=T0 + 7200)
    assert info.value.refusal is PowRefusal.STALE
    svc.submit(HONEST, second, 3, now=T0 + 7200)


def test_the_queue_serves_highest_effort_first_and_sheds_the_lowest() -> None:
    """POW-4.1, POW-4.2."""
    svc = service(PowConfig(queue_limit=2))
    svc.submit(ATTACKER, None, 1, now=T0)
    svc.submit(HONEST, solved(svc, HONEST, 64), 2, now=T0)
    svc.submit(HONEST, solved(svc, HONEST, 16, start=99), 3, now=T0)
    assert _drain(svc) == [Shed(request_id=1, requester=ATTACKER, suggested_effort=0)]
    assert svc.take(now=T0) == Admitted(request_id=2, requester=HONEST, effort=64)
    assert svc.take(now=T0) == Admitted(request_id=3, requester=HONEST, effort=16)
    assert svc.take(now=T0) is None


def test_effort_rises_only_under_overload_and_decays_after() -> None:
    """POW-5.1: a flood that overflows the queue doubles the effort each period; then it
    falls back to 0 once the service keeps up."""
    svc = service(PowConfig(queue_limit=4))
    now = T0
    for period in range(4):
        for n in range(10):
            svc.submit(ATTACKER, None, period * 100 + n, now=now)
        now += 60
        svc.on_timer(now=now)
        while svc.take(now=now) is not None:
            pass
    assert svc.suggested_effort == 128
    for _ in range(12):
        now += 60
        svc.on_timer(now=now)
    assert svc.suggested_effort == 0
    assert EffortChanged(effort=0) in _drain(svc)


def test_an_attacker_cannot_inflate_the_price_for_others() -> None:
    """POW-5.2: high-effort, wrong, stale and reused solutions from an attacker leave the
    suggested effort at 0 while the service keeps up with its load."""
    svc = service()
    now = T0
    rich = solved(svc, ATTACKER, 1 << 12)
    svc.submit(ATTACKER, rich, 999, now=now)
    for period in range(10):
        svc.submit(ATTACKER, solved(svc, ATTACKER, 1 << 10, start=period * 10**6), period, now=now)
        for bad in (rich, PowSolution(seed_head=b"zzzz", nonce=bytes(16), effort=1 << 19)):
            with pytest.raises(PowError):
                svc.submit(ATTACKER if period else HONEST, bad, 1000 + period, now=now)
        while svc.take(now=now) is not None:
            pass
        now += 60
        svc.on_timer(now=now)
    assert svc.suggested_effort == 0
    assert svc.counters.get_count(PowCounter.EFFORT_RAISED) == 0
    assert svc.counters.total(PowCounter.REFUSED) == 20
    assert svc.counters.get_count(PowCounter.REFUSED, PowRefusal.REUSED) == 9


def _drain(svc: PowService) -> list[object]:
    out: list[object] = []
    while (action := svc.next_action()) is not None:
        out.append(action)
    return out


@given(st.binary(max_size=64))
def test_solution_decoder_raises_only_remote_protocol_errors(data: bytes) -> None:
    """POW-2.2: any bytes parse or raise PowError (a RemoteProtocolError), nothing else."""
    try:
        decode_solution(data)
    except PowError as exc:
        assert exc.refusal is PowRefusal.MALFORMED
