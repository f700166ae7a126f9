"""Abuse resistance that sits beside the node: peer reputation (REP) and admission work (POW).

`reputation` scores peers from what they did and ranks hosting candidates by
capacity and reputation together; `pow` prices admission to relaying and
storage while a service is overloaded. Key rotation lives with the identity
(`railgun_ref.identity.rotation`).
"""

from railgun_ref.abuse.pow import PowError, PowRefusal, PowService, PowSolution
from railgun_ref.abuse.reputation import (
    Behaviour,
    ReputationConfig,
    ReputationTable,
    Standing,
    rank_score,
)

__all__ = [
    "Behaviour",
    "PowError",
    "PowRefusal",
    "PowService",
    "PowSolution",
    "ReputationConfig",
    "ReputationTable",
    "Standing",
    "forwarding",
    "pow",
    "rank_score",
    "reputation",
]
