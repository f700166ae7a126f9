"""The proof-of-work formats on the wire (POW-2.2, POW-6.1, POW-6.2), below every protocol.

`railgun_ref.abuse.pow` holds the puzzle and the service; requests that pay
(STORE, SF-9.1; RELAY, RLY-9.1) and refusals that name a price (RESULT,
SF-9.2; BUSY, RLY-9.2) nest these arrays in their own maps, so the codecs
live here, where `wire` and every protocol above it can use them.
Decoders raise only `PowError`, a `RemoteProtocolError`.
"""

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from railgun_ref.core import cbor
from railgun_ref.core.errors import ErrorCode, RemoteProtocolError

__all__ = [
    "DEFAULT_MAX_EFFORT",
    "NONCE_SIZE",
    "SEED_HEAD_SIZE",
    "SEED_SIZE",
    "UINT32_MAX",
    "PowChallenge",
    "PowError",
    "PowRefusal",
    "PowSolution",
    "challenge_from_value",
    "decode_solution",
    "encode_solution",
    "solution_from_value",
    "solution_value",
]

POW_VERSION: Final = 1
SEED_SIZE: Final = 32
SEED_HEAD_SIZE: Final = 4
NONCE_SIZE: Final = 16
#: POW-2.1: the right-hand side of the puzzle's inequality.
UINT32_MAX: Final = 2**32 - 1
#: POW-2.3: the highest effort a service accepts or suggests.
DEFAULT_MAX_EFFORT: Final = 1 << 19


class PowRefusal(StrEnum):
    """POW-3.2: why a solution was refused (counter labels)."""

    MALFORMED = "malformed"
    WRONG = "wrong"  #: the hash does not meet the effort (or was made for another requester)
    STALE = "stale"  #: names a seed the service no longer (or never) held
    REUSED = "reused"  #: (requester, nonce) already accepted under this seed
    EFFORT_TOO_HIGH = "effort-too-high"  #: above max_effort: no honest client pays that


_CODES: Final = {
    PowRefusal.MALFORMED: ErrorCode.MALFORMED,
    PowRefusal.WRONG: ErrorCode.FORBIDDEN,
    PowRefusal.STALE: ErrorCode.STALE,
    PowRefusal.REUSED: ErrorCode.REPLAY,
    PowRefusal.EFFORT_TOO_HIGH: ErrorCode.MALFORMED,
}


class PowError(RemoteProtocolError):
    """A refused solution; `refusal` says which rule it broke."""

    def __init__(self, refusal: PowRefusal, message: str) -> None:
        super().__init__(_CODES[refusal], f"proof of work: {message}")
        self.refusal = refusal


@dataclass(frozen=True, slots=True, kw_only=True)
class PowSolution:
    """POW-2.2: ``[1, seed head, nonce, effort]`` on the wire."""

    seed_head: bytes
    nonce: bytes
    effort: int


def encode_solution(solution: PowSolution) -> bytes:
    return cbor.encode([POW_VERSION, solution.seed_head, solution.nonce, solution.effort])


def solution_value(solution: PowSolution) -> list[object]:
    """POW-2.2: the CBOR array of a solution, to nest in a request map (POW-6.1)."""
    return [POW_VERSION, solution.seed_head, solution.nonce, solution.effort]


def decode_solution(data: bytes) -> PowSolution:
    """POW-2.2: parse a solution. Raises only `RemoteProtocolError` (a `PowError`)."""
    try:
        value = cbor.decode(data)
    except RemoteProtocolError as exc:
        raise PowError(PowRefusal.MALFORMED, exc.message) from None
    return solution_from_value(value)


def solution_from_value(value: object) -> PowSolution:
    """POW-2.2: a solution from its decoded CBOR array; `PowError` (MALFORMED) otherwise."""
    if not isinstance(value, list) or len(value) != 4 or value[0] != POW_VERSION:
        raise PowError(PowRefusal.MALFORMED, "must be [1, seed head, nonce, effort]")
    _, head, nonce, effort = value
    if not (isinstance(head, bytes) and len(head) == SEED_HEAD_SIZE):
        raise PowError(PowRefusal.MALFORMED, "seed head must be 4 bytes")
    if not (isinstance(nonce, bytes) and len(nonce) == NONCE_SIZE):
        raise PowError(PowRefusal.MALFORMED, "nonce must be 16 bytes")
    if type(effort) is not int or not 0 <= effort <= UINT32_MAX:
        raise PowError(PowRefusal.MALFORMED, "effort must be a uint32")
    return PowSolution(seed_head=head, nonce=nonce, effort=effort)


@dataclass(frozen=True, slots=True, kw_only=True)
class PowChallenge:
    """POW-6.2: what a refusal for load tells the requester: the full current seed and the
    effort to pay. On the wire the CBOR array ``[seed (32 bytes), effort (1..2^19)]``."""

    seed: bytes
    effort: int

    def to_value(self) -> list[object]:
        return [self.seed, self.effort]


def challenge_from_value(value: object) -> PowChallenge:
    """POW-6.2: parse a challenge; anything else is MALFORMED (`RemoteProtocolError`)."""
    if not isinstance(value, list) or len(value) != 2:
        raise PowError(PowRefusal.MALFORMED, "a challenge is [seed, effort]")
    seed, effort = value
    if not (isinstance(seed, bytes) and len(seed) == SEED_SIZE):
        raise PowError(PowRefusal.MALFORMED, "a challenge's seed is 32 bytes")
    if type(effort) is not int or not 1 <= effort <= DEFAULT_MAX_EFFORT:
        raise PowError(PowRefusal.MALFORMED, "a challenge's effort is 1..2^19")
    return PowChallenge(seed=seed, effort=effort)
