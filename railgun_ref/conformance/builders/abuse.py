"""abuse.json: peer reputation (REP), admission proof-of-work (POW), key rotation (ROT, ROOM-3.9).

Every case is computed by the reference while it is built; the runner's checks
(`railgun_ref.conformance.runner_abuse`) recompute them from the JSON alone.
"""

from typing import Any, Final

from railgun_ref.abuse import pow as p
from railgun_ref.abuse import reputation as r
from railgun_ref.conformance.builders.base import T0, Vectors, seed_for
from railgun_ref.conformance.common import JsonObject
from railgun_ref.core.errors import RemoteProtocolError
from railgun_ref.core.ids import NodeId
from railgun_ref.identity.keys import Identity
from railgun_ref.identity.rotation import (
    NEW_DOMAIN,
    OLD_DOMAIN,
    RotationError,
    decode_handover,
    sign_handover,
)
from railgun_ref.rooms.changes import COSIGN_DOMAIN, ChangeKind, decode_change, sign_change
from railgun_ref.wire import cbor

HEADER: Final = [
    "Abuse resistance vectors (paper/spec.md section 21, ROOM-3.9).",
    "ReputationScoreTest: counters (behaviour -> milli-events) and peersOnAddress give",
    "'score' (millipoints, REP-2) and 'standing' (REP-4.1).",
    "ReputationDecayTest: 'counters' after 'steps' decay intervals are 'after' (REP-3).",
    "RankScoreTest: capacityTotal + reputation clamped gives 'rankScore' (REP-5.1).",
    "PowSolutionTest: a service holding 'seeds' (current first) checks 'solution' (hex CBOR)",
    "from 'requester'; valid ones give 'value' (R of POW-2.1), invalid ones a reason.",
    "HandoverTest: decode 'handover' at 'nowMs' (expecting 'expectedOld' if given).",
    "RoomRotateTest: decode the room change 'change' (ROOM-3.9).",
]
NOTES: Final = {
    "Squared": "A squared penalty (invalid records, misbehaviour).",
    "Capped": "A positive component above its cap.",
    "Colocation": "Peers sharing one IP address (REP-2.3).",
    "Threshold": "A score at or just past a standing threshold.",
    "Bound": "Solution bound to requester or seed.",
    "Replay": "A solution already accepted.",
    "Stale": "A seed no longer held.",
    "WrongKey": "Signed by a key other than the one the rule names.",
    "Malformed": "Breaks the encoding.",
    "Expiry": "Issued/expiry limits.",
}

_DEFAULT: Final = r.DEFAULT_CONFIG


def _person(name: str) -> Identity:
    return Identity.from_seed(seed_for(f"abuse/{name}"))


def _score_cases(v: Vectors) -> None:
    tests = v.group("ReputationScoreTest", config="default")
    e = r.EVENT
    b = r.Behaviour
    cases: list[tuple[str, dict[r.Behaviour, int], int, str, tuple[str, ...]]] = [
        ("no history", {}, 1, "REP-2.1", ()),
        ("ten answers", {b.ANSWERED: 10 * e}, 1, "REP-2.1", ()),
        ("answers over the cap", {b.ANSWERED: 500 * e}, 1, "REP-2.1", ("Capped",)),
        ("half an answer left after decay", {b.ANSWERED: 499}, 1, "REP-2.1", ()),
        (
            "every good component capped",
            {x: 1000 * e for x in (b.ANSWERED, b.VALID_RECORD, b.RELAYED, b.STORED)},
            1,
            "REP-2.2",
            ("Capped",),
        ),
        ("four timeouts", {b.TIMED_OUT: 4 * e}, 1, "REP-2.1", ()),
        ("a timeout rounds toward zero", {b.TIMED_OUT: 1001}, 1, "REP-2.1", ()),
        ("three invalid records", {b.INVALID_RECORD: 3 * e}, 1, "REP-2.1", ("Squared",)),
        (
            "ten invalid records: graylisted",
            {b.INVALID_RECORD: 10 * e},
            1,
            "REP-4.1",
            ("Squared", "Threshold"),
        ),
        ("misbehaviour within its allowance", {b.MISBEHAVED: 2 * e}, 1, "REP-2.1", ("Squared",)),
        ("misbehaviour past its allowance", {b.MISBEHAVED: 5 * e}, 1, "REP-2.1", ("Squared",)),
        ("fractional squared rounds down", {b.INVALID_RECORD: 1501}, 1, "REP-2.1", ("Squared",)),
        ("two peers on one address", {}, 2, "REP-2.3", ("Colocation",)),
        ("three peers on one address", {}, 3, "REP-2.3", ("Colocation", "Threshold")),
        ("five peers on one address", {}, 5, "REP-2.3", ("Colocation", "Threshold")),
        ("exactly the host threshold", {b.TIMED_OUT: 20 * e}, 1, "REP-4.1", ("Threshold",)),
        ("just below the host threshold", {b.TIMED_OUT: 20 * e + 2}, 1, "REP-4.1", ("Threshold",)),
        ("good record against colocation", {b.RELAYED: 100 * e}, 3, "REP-2.3", ("Colocation",)),
    ]
    for comment, counters, peers, clause, flags in cases:
        score = r.score_of(counters, peers_on_address=peers)
        v.test(
            tests,
            comment=comment,
            result="valid",
            clause=clause,
            flags=flags,
            counters={k.value: c for k, c in counters.items()},
            peersOnAddress=peers,
            score=score,
            standing=r.standing_of(score).value,
        )


def _decay_cases(v: Vectors) -> None:
    tests = v.group("ReputationDecayTest", config="default")
    b = r.Behaviour
    cases: list[tuple[str, dict[r.Behaviour, int], int, str]] = [
        (
            "one step of each decay",
            {b.ANSWERED: 1000, b.TIMED_OUT: 1000, b.INVALID_RECORD: 1000},
            1,
            "REP-3.1",
        ),
        ("rounding down", {b.ANSWERED: 999, b.TIMED_OUT: 11}, 1, "REP-3.1"),
        ("dropped below ten", {b.ANSWERED: 10, b.TIMED_OUT: 11}, 1, "REP-3.2"),
        ("an hour of timeouts", {b.TIMED_OUT: 5000}, 60, "REP-3.2"),
        ("a day of invalid records", {b.INVALID_RECORD: 10_000}, 1440, "REP-3.1"),
    ]
    for comment, counters, steps, clause in cases:
        after: dict[r.Behaviour, int] = dict(counters)
        for _ in range(steps):
            after = r.decay_step(after)
        v.test(
            tests,
            comment=comment,
            result="valid",
            clause=clause,
            counters={k.value: c for k, c in counters.items()},
            steps=steps,
            after={k.value: c for k, c in after.items()},
        )


def _rank_cases(v: Vectors) -> None:
    tests = v.group("RankScoreTest", config="default")
    for comment, capacity, reputation in [
        ("no reputation", 90_000, 0),
        ("good reputation counts", 90_000, 20_000),
        ("capped at +50 points", 90_000, 200_000),
        ("floored at -100 points", 90_000, -500_000),
        ("a fresh 'server' against a known desktop", 100_000, 0),
    ]:
        v.test(
            tests,
            comment=comment,
            result="valid",
            clause="REP-5.1",
            capacityTotal=capacity,
            reputation=reputation,
            rankScore=r.rank_score(capacity, reputation),
        )


_SEEDS: Final = [seed_for("abuse/pow-seed-1"), seed_for("abuse/pow-seed-0")]
_SERVICE: Final = _person("service").node_id
_ALICE: Final = _person("alice").node_id
_MALLORY: Final = _person("mallory").node_id


def _solution(effort: int, seed: bytes = _SEEDS[0], requester: bytes = _ALICE) -> p.PowSolution:
    found = p.solve(seed, _SERVICE, requester, effort, start=bytes(16), max_tries=effort * 64)
    assert found is not None
    return found


def pow_check(seeds: list[bytes], requester: bytes, data: bytes, max_effort: int) -> JsonObject:
    """POW-2, POW-3.2 (without replay): what a service holding `seeds` concludes."""
    try:
        solution = p.decode_solution(data)
        if solution.effort > max_effort:
            raise p.PowError(p.PowRefusal.EFFORT_TOO_HIGH, "effort")
        seed = next((s for s in seeds if s[:4] == solution.seed_head), None)
        if seed is None:
            raise p.PowError(p.PowRefusal.STALE, "seed")
        if not p.solves(seed, _SERVICE, requester, solution):
            raise p.PowError(p.PowRefusal.WRONG, "hash")
    except p.PowError as exc:
        return {"result": "invalid", "reason": exc.refusal.value, "error": exc.code.name}
    value = p.pow_value(seed, _SERVICE, requester, solution.effort, solution.nonce)
    return {"result": "valid", "value": value}


def _pow_cases(v: Vectors) -> None:
    tests = v.group(
        "PowSolutionTest",
        seeds=[s.hex() for s in _SEEDS],
        service=_SERVICE.hex(),
        maxEffort=p.DEFAULT_CONFIG.max_effort,
    )
    good = _solution(1000)
    wrong_nonce = p.PowSolution(seed_head=good.seed_head, nonce=bytes(16), effort=1 << 16)
    cases: list[tuple[str, bytes, bytes, str, tuple[str, ...]]] = [
        ("effort 1000 under the current seed", p.encode_solution(good), _ALICE, "POW-2.1", ()),
        (
            "effort 0 needs no work",
            p.encode_solution(p.PowSolution(seed_head=_SEEDS[0][:4], nonce=bytes(16), effort=0)),
            _ALICE,
            "POW-2.1",
            (),
        ),
        (
            "effort 64 under the previous seed",
            p.encode_solution(_solution(64, _SEEDS[1])),
            _ALICE,
            "POW-3.1",
            (),
        ),
        ("another requester's solution", p.encode_solution(good), _MALLORY, "POW-3.2", ("Bound",)),
        (
            "a nonce that does not meet the effort",
            p.encode_solution(wrong_nonce),
            _ALICE,
            "POW-3.2",
            (),
        ),
        (
            "a seed never held",
            p.encode_solution(
                p.PowSolution(seed_head=b"\x00\x01\x02\x03", nonce=good.nonce, effort=1000)
            ),
            _ALICE,
            "POW-3.1",
            ("Stale",),
        ),
        (
            "over the highest effort",
            p.encode_solution(
                p.PowSolution(seed_head=good.seed_head, nonce=good.nonce, effort=(1 << 19) + 1)
            ),
            _ALICE,
            "POW-2.3",
            (),
        ),
        (
            "version 2",
            cbor.encode([2, good.seed_head, good.nonce, 1000]),
            _ALICE,
            "POW-2.2",
            ("Malformed",),
        ),
        (
            "short nonce",
            cbor.encode([1, good.seed_head, good.nonce[:8], 1000]),
            _ALICE,
            "POW-2.2",
            ("Malformed",),
        ),
        (
            "effort over uint32",
            cbor.encode([1, good.seed_head, good.nonce, 2**32]),
            _ALICE,
            "POW-2.2",
            ("Malformed",),
        ),
        ("not CBOR", b"\xff", _ALICE, "POW-2.2", ("Malformed",)),
    ]
    for comment, data, requester, clause, flags in cases:
        outcome = pow_check(_SEEDS, requester, data, p.DEFAULT_CONFIG.max_effort)
        v.test(
            tests,
            comment=comment,
            clause=clause,
            flags=flags,
            solution=data.hex(),
            requester=requester.hex(),
            **_outcome(outcome),
        )


def _outcome(outcome: JsonObject) -> dict[str, Any]:
    """A check's conclusion as vector fields (the reason only where the rule names one)."""
    if outcome["result"] == "valid":
        return dict(outcome)
    fields = {"result": "invalid", "expectedError": outcome["error"]}
    if outcome["reason"] is not None:
        fields["expectedReason"] = outcome["reason"]
    return fields


def pow_script(seeds: list[bytes], steps: list[JsonObject]) -> list[JsonObject]:
    """POW-1.1, POW-3: replay submissions to a service whose random source yields `seeds`;
    what it concluded after each step."""
    source = iter(seeds)
    service = p.PowService(_SERVICE, lambda n: next(source), now=T0)
    out: list[JsonObject] = []
    for number, step in enumerate(steps):
        now = T0 + float(step["at"])
        requester = NodeId(bytes.fromhex(step["requester"]))
        try:
            solution = p.decode_solution(bytes.fromhex(step["solution"]))
            service.submit(requester, solution, number, now=now)
        except p.PowError as exc:
            out.append({"accepted": False, "reason": exc.refusal.value, "error": exc.code.name})
            continue
        out.append({"accepted": True, "seedHead": service.seed_head.hex()})
    return out


def _pow_script_cases(v: Vectors) -> None:
    seeds = [seed_for(f"abuse/script-seed-{n}") for n in range(3)]
    tests = v.group(
        "PowScriptTest",
        seeds=[s.hex() for s in seeds],
        service=_SERVICE.hex(),
        startTime=T0,
        seedPeriod=p.DEFAULT_CONFIG.seed_period,
    )
    first = p.encode_solution(_solution(256, seeds[0])).hex()
    second = p.encode_solution(_solution(256, seeds[1])).hex()
    alice, mallory = _ALICE.hex(), _MALLORY.hex()
    scripts: list[tuple[str, str, str, list[JsonObject], tuple[str, ...]]] = [
        (
            "accepted once, then reused",
            "POW-3.2",
            "invalid",
            [
                {"at": 0, "requester": alice, "solution": first},
                {"at": 10, "requester": alice, "solution": first},
            ],
            ("Replay",),
        ),
        (
            "the same nonce from another requester is wrong, not reused",
            "POW-3.2",
            "invalid",
            [
                {"at": 0, "requester": alice, "solution": first},
                {"at": 1, "requester": mallory, "solution": first},
            ],
            ("Bound",),
        ),
        (
            "previous seed accepted for one period, then stale",
            "POW-3.1",
            "invalid",
            [
                {"at": 3600, "requester": alice, "solution": first},
                {"at": 3601, "requester": alice, "solution": second},
                {"at": 7200, "requester": alice, "solution": second},
                {"at": 7200, "requester": mallory, "solution": first},
            ],
            ("Stale",),
        ),
        (
            "a replay cache does not outlive its seed's acceptance",
            "POW-3.2",
            "valid",
            [
                {"at": 0, "requester": alice, "solution": first},
                {"at": 3600, "requester": alice, "solution": second},
            ],
            (),
        ),
    ]
    for comment, clause, result, steps, flags in scripts:
        expect = pow_script(seeds, steps)
        v.test(
            tests,
            comment=comment,
            result=result,
            clause=clause,
            flags=flags,
            steps=[{**step, "expect": e} for step, e in zip(steps, expect, strict=True)],
        )


_T0_MS: Final = int(T0 * 1000)
_DAY_MS: Final = 86_400_000
_OLD: Final = _person("old-key")
_NEW: Final = _person("new-key")
_OTHER: Final = _person("other-key")


def _resign(data: bytes, old: Identity, new: Identity, changes: dict[int, object]) -> bytes:
    """`data` with `changes` to its fields, signed again by `old` (as old) and `new` (as new)."""
    value = cbor.decode(data)
    assert isinstance(value, dict)
    value.update(changes)
    body = cbor.encode({k: value[k] for k in range(6)})
    value[6], value[7] = old.sign(OLD_DOMAIN + body), new.sign(NEW_DOMAIN + body)
    return cbor.encode(value)


def handover_check(data: bytes, now_ms: int, expected_old: bytes | None) -> JsonObject:
    """ROT-1: what a receiver concludes about `data`."""
    try:
        handover = decode_handover(data, now_ms=now_ms, expected_old=expected_old)
    except RotationError as exc:
        return {"result": "invalid", "reason": exc.refusal.value, "error": exc.code.name}
    return {
        "result": "valid",
        "oldId": handover.old_id.hex(),
        "newId": handover.new_id.hex(),
        "generation": handover.generation,
    }


def _handover_cases(v: Vectors) -> None:
    tests = v.group("HandoverTest")
    good = sign_handover(
        _OLD, _NEW, generation=1, issued_ms=_T0_MS, expires_ms=_T0_MS + 7 * _DAY_MS
    ).encoded
    now = _T0_MS + 1000
    cases: list[tuple[str, bytes, int, bytes | None, str, tuple[str, ...]]] = [
        ("a 7-day handover", good, now, None, "ROT-1.1", ()),
        ("expecting its old key", good, now, _OLD.public_key, "ROT-1.2", ()),
        (
            "second rotation, 30 days",
            _resign(
                good,
                _NEW,
                _OTHER,
                {1: _NEW.public_key, 2: _OTHER.public_key, 3: 2, 5: _T0_MS + 30 * _DAY_MS},
            ),
            now,
            None,
            "ROT-1.3",
            (),
        ),
        (
            "retires another key than expected",
            good,
            now,
            _OTHER.public_key,
            "ROT-1.2",
            ("WrongKey",),
        ),
        (
            "old signature by another key",
            _resign(good, _OTHER, _NEW, {}),
            now,
            None,
            "ROT-1.2",
            ("WrongKey",),
        ),
        (
            "new signature by another key",
            _resign(good, _OLD, _OTHER, {}),
            now,
            None,
            "ROT-1.2",
            ("WrongKey",),
        ),
        ("expired", good, _T0_MS + 7 * _DAY_MS, None, "ROT-1.3", ("Expiry",)),
        (
            "31 days",
            _resign(good, _OLD, _NEW, {5: _T0_MS + 31 * _DAY_MS}),
            now,
            None,
            "ROT-1.3",
            ("Expiry",),
        ),
        (
            "expires when issued",
            _resign(good, _OLD, _NEW, {5: _T0_MS}),
            _T0_MS - 1,
            None,
            "ROT-1.3",
            ("Expiry",),
        ),
        ("generation 0", _resign(good, _OLD, _NEW, {3: 0}), now, None, "ROT-1.2", ("Malformed",)),
        (
            "old key = new key",
            _resign(good, _OLD, _OLD, {2: _OLD.public_key}),
            now,
            None,
            "ROT-1.2",
            ("Malformed",),
        ),
        ("truncated", good[:-1], now, None, "ROT-1.1", ("Malformed",)),
        ("a map without signatures", cbor.encode({0: 1}), now, None, "ROT-1.1", ("Malformed",)),
    ]
    for comment, data, now_ms, expected_old, clause, flags in cases:
        extra = {} if expected_old is None else {"expectedOld": expected_old.hex()}
        v.test(
            tests,
            comment=comment,
            clause=clause,
            flags=flags,
            handover=data.hex(),
            nowMs=now_ms,
            **extra,
            **_outcome(handover_check(data, now_ms, expected_old)),
        )


_ROOM: Final = seed_for("abuse/room-id")


def room_rotate_check(data: bytes) -> JsonObject:
    """ROOM-3.9: what decoding the change `data` concludes."""
    try:
        change = decode_change(data)
    except RemoteProtocolError as exc:
        return {"result": "invalid", "reason": None, "error": exc.code.name}
    return {
        "result": "valid",
        "kind": change.kind.name,
        "signer": change.signer.hex(),
        "subject": change.subject.hex(),
    }


def _room_cases(v: Vectors) -> None:
    tests = v.group("RoomRotateTest")
    parent = seed_for("abuse/parent")
    rotate = sign_change(
        _OLD,
        room_id=_ROOM,
        kind=ChangeKind.ROTATE,
        parents=[parent],
        issued_ms=_T0_MS,
        cosigner=_NEW,
    ).encoded
    value = cbor.decode(rotate)
    assert isinstance(value, dict)
    body = cbor.encode({k: value[k] for k in range(10)})
    forged = cbor.encode({**value, 11: _OTHER.sign(COSIGN_DOMAIN + body)})
    unsigned = cbor.encode({k: value[k] for k in range(11)})
    cases: list[tuple[str, bytes, tuple[str, ...]]] = [
        ("a ROTATE co-signed by its new key", rotate, ()),
        ("a ROTATE co-signed by another key", forged, ("WrongKey",)),
        ("a ROTATE without co-signature", unsigned, ("Malformed",)),
    ]
    for comment, data, flags in cases:
        v.test(
            tests,
            comment=comment,
            clause="ROOM-3.9",
            flags=flags,
            change=data.hex(),
            **_outcome(room_rotate_check(data)),
        )


def build() -> JsonObject:
    v = Vectors("abuse", "REP/POW/ROT", HEADER, NOTES)
    _score_cases(v)
    _decay_cases(v)
    _rank_cases(v)
    _pow_cases(v)
    _pow_script_cases(v)
    _handover_cases(v)
    _room_cases(v)
    return v.document()
