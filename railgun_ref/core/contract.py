"""The core contract: the one shape every sans-IO protocol core has (spec CORE-1).

Theory of operation
===================

1. A *core* is a synchronous, deterministic object. Its inputs are methods
   whose last argument is the keyword-only ``now`` (float seconds since the
   Unix epoch): ``receive_*`` for what arrives from a peer, API calls for what
   the local user asks, and ``on_timer(now=...)`` when its deadline is due.
2. Its outputs are *pulled*: ``next_action()`` returns the next frozen action
   dataclass from a closed union the core declares (``None`` when it has
   nothing to say). A core never calls back into its driver.
3. ``next_deadline()`` returns the earliest ``now`` at which ``on_timer``
   must run (``None``: no timer pending). Running ``on_timer`` early is
   harmless; running it late only delays what the deadline was for.
4. After every input, the driver drains ``next_action()`` until ``None`` and
   reads ``next_deadline()`` again (an input may have moved it earlier).

Drivers pump any core with one loop (``drivers/loop.py`` on anyio, the event
heap in ``drivers/sim.py``) and dispatch actions with ``match`` ending in
``assert_never``, so a new action type fails type checking in every driver
that does not handle it.
"""

from typing import Protocol, TypeVar

__all__ = ["ProtocolCore"]

A_co = TypeVar("A_co", covariant=True)


class ProtocolCore(Protocol[A_co]):
    """What every protocol core is (CORE-1.1..1.4); ``A_co`` is its closed action union."""

    def on_timer(self, *, now: float) -> None:
        """CORE-1.3: do what was due at or before ``now``."""
        ...

    def next_deadline(self) -> float | None:
        """CORE-1.3: when ``on_timer`` must run next, or ``None``."""
        ...

    def next_action(self) -> A_co | None:
        """CORE-1.2: the next output, or ``None`` when the core is idle."""
        ...
