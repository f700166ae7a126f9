"""Solving a proof-of-work challenge off the event loop (POW-2.1, SF-9.4, RLY-9.2).

A core that is asked for work emits an action naming the challenge, the
service, the requester, a random start and a bound on the hashes; the
driver runs `solve` in a worker thread (a pure-Python search of up to
about one core-second) so the loop keeps serving, and hands the solution,
or None if the bound ran out, back to the core.
"""

import anyio.to_thread

from railgun_ref.abuse.admission import SolvePow
from railgun_ref.abuse.pow import PowSolution, solve


async def solve_off_loop(action: SolvePow) -> PowSolution | None:
    """POW-2.1: a solution of the action's challenge, or None within its bound."""

    def work() -> PowSolution | None:
        return solve(
            action.challenge.seed,
            action.service,
            action.requester,
            action.challenge.effort,
            start=action.start,
            max_tries=action.max_tries,
        )

    return await anyio.to_thread.run_sync(work)
