"""Solving a proof-of-work challenge off the event loop (POW-2.1, SF-9.4, RLY-9.2).

A core that is asked for work emits an action naming the challenge, the
service, the requester, a random start and a bound on the hashes; the
driver runs `solve` in a worker thread (a pure-Python search of up to
about one core-second) so the loop keeps serving, and hands the solution,
or None if the bound ran out, back to the core.
"""

import anyio.to_thread

from railgun_ref.abuse.pow import PowChallenge, PowSolution, solve
from railgun_ref.core.ids import NodeId


async def solve_off_loop(
    challenge: PowChallenge, *, service: NodeId, requester: NodeId, start: bytes, max_tries: int
) -> PowSolution | None:
    """POW-2.1: a solution of `challenge` for (service, requester), or None within the bound."""

    def work() -> PowSolution | None:
        return solve(
            challenge.seed,
            service,
            requester,
            challenge.effort,
            start=start,
            max_tries=max_tries,
        )

    return await anyio.to_thread.run_sync(work)
