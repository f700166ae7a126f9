"""The checks of abuse.json (REP, POW, ROT, ROOM-3.9), registered in the vector runner.

Each check recomputes what the vector states from its JSON alone, with the
reference's functions, and raises `AbuseMismatchError` when they differ.
"""

from collections.abc import Callable
from typing import Any, Final

from railgun_ref.abuse import reputation as r
from railgun_ref.conformance.builders import abuse
from railgun_ref.conformance.common import JsonObject


class AbuseMismatchError(AssertionError):
    """What the reference concluded differs from what the vector says."""


def _same(what: str, got: object, want: object) -> None:
    if got != want:
        raise AbuseMismatchError(f"{what}: reference gives {got!r}, vector says {want!r}")


def _counters(value: JsonObject) -> dict[r.Behaviour, int]:
    return {r.Behaviour(name): int(count) for name, count in value.items()}


def _outcome(test: JsonObject, keys: tuple[str, ...]) -> JsonObject:
    """What the vector expects, in the shape the builder's check functions return."""
    if test["result"] == "valid":
        return {"result": "valid", **{k: test[k] for k in keys}}
    return {
        "result": test["result"],
        "reason": test.get("expectedReason"),
        "error": test.get("expectedError"),
    }


def check_score(group: JsonObject, test: JsonObject) -> None:
    score = r.score_of(_counters(test["counters"]), peers_on_address=test["peersOnAddress"])
    _same("score", score, test["score"])
    _same("standing", r.standing_of(score).value, test["standing"])


def check_decay(group: JsonObject, test: JsonObject) -> None:
    after = _counters(test["counters"])
    for _ in range(int(test["steps"])):
        after = r.decay_step(after)
    _same("after", {k.value: v for k, v in after.items()}, test["after"])


def check_rank(group: JsonObject, test: JsonObject) -> None:
    got = r.rank_score(int(test["capacityTotal"]), int(test["reputation"]))
    _same("rankScore", got, test["rankScore"])


def check_pow_solution(group: JsonObject, test: JsonObject) -> None:
    seeds = [bytes.fromhex(s) for s in group["seeds"]]
    got = abuse.pow_check(
        seeds,
        bytes.fromhex(test["requester"]),
        bytes.fromhex(test["solution"]),
        int(group["maxEffort"]),
    )
    _same("outcome", got, _outcome(test, ("value",)))


def check_pow_script(group: JsonObject, test: JsonObject) -> None:
    seeds = [bytes.fromhex(s) for s in group["seeds"]]
    steps = [{k: v for k, v in step.items() if k != "expect"} for step in test["steps"]]
    got = abuse.pow_script(seeds, steps)
    _same("steps", got, [step["expect"] for step in test["steps"]])


def check_handover(group: JsonObject, test: JsonObject) -> None:
    expected_old = test.get("expectedOld")
    got = abuse.handover_check(
        bytes.fromhex(test["handover"]),
        int(test["nowMs"]),
        None if expected_old is None else bytes.fromhex(expected_old),
    )
    _same("outcome", got, _outcome(test, ("oldId", "newId", "generation")))


def check_room_rotate(group: JsonObject, test: JsonObject) -> None:
    got = abuse.room_rotate_check(bytes.fromhex(test["change"]))
    _same("outcome", got, _outcome(test, ("kind", "signer", "subject")))


CHECKS: Final[dict[str, Callable[[JsonObject, JsonObject], Any]]] = {
    "ReputationScoreTest": check_score,
    "ReputationDecayTest": check_decay,
    "RankScoreTest": check_rank,
    "PowSolutionTest": check_pow_solution,
    "PowScriptTest": check_pow_script,
    "HandoverTest": check_handover,
    "RoomRotateTest": check_room_rotate,
}
