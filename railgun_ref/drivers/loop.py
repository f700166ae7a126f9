"""One driver loop that pumps any set of protocol cores on anyio (spec CORE-1.4).

Theory of operation
===================

1. A ``CoreLoop`` holds one or more *pumped cores*: a core that satisfies
   ``ProtocolCore[A]`` and a synchronous ``dispatch(action)`` for its action
   union. Dispatch functions ``match`` on the union and end in
   ``assert_never``; anything slow they do is handed to a task or a memory
   stream, never awaited inside dispatch.
2. ``poke()`` is called after every input fed to any of the cores: it drains
   every core until *all* are idle (an action of one core may feed another,
   as the transport service and the P2P room core do), then re-arms the timer
   if a deadline moved earlier.
3. ``run()`` is the only timer task: it sleeps until the earliest deadline of
   all cores (or until poked with an earlier one), calls ``on_timer(now=...)``
   on every core whose deadline is due, and drains again. It yields at least
   once per round, so a core whose deadline stays in the past cannot starve
   the event loop.
4. ``now`` comes from the injected clock (``time.time`` by default), so tests
   can drive it with a virtual clock.

The discrete-event simulator has the same semantics with virtual time
(``drivers/sim.py``): drain after each input, schedule ``on_timer`` at
``next_deadline()``.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import anyio

from railgun_ref.core.contract import ProtocolCore

__all__ = ["CoreLoop"]

A = TypeVar("A")


@dataclass(slots=True)
class _Pumped(Generic[A]):
    core: ProtocolCore[A]
    dispatch: Callable[[A], None]

    def drain(self) -> bool:
        busy = False
        while (action := self.core.next_action()) is not None:
            busy = True
            self.dispatch(action)
        return busy


class CoreLoop:
    """Pumps cores: drain after every input, ``on_timer`` at the earliest deadline."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._pumped: list[_Pumped[Any]] = []
        self._wake: anyio.Event | None = None  # made in run(): an Event needs the event loop
        self._sleeping_until: float | None = None

    def add(self, core: ProtocolCore[A], dispatch: Callable[[A], None]) -> None:
        """Pump ``core`` with ``dispatch`` from now on (drains it at once)."""
        self._pumped.append(_Pumped(core, dispatch))
        self.poke()

    def now(self) -> float:
        return self._clock()

    def next_deadline(self) -> float | None:
        deadlines = [d for p in self._pumped if (d := p.core.next_deadline()) is not None]
        return min(deadlines) if deadlines else None

    def poke(self) -> None:
        """Drain every core until all are idle; wake the timer if a deadline moved earlier."""
        busy = True
        while busy:
            busy = False
            for pumped in tuple(self._pumped):
                busy = pumped.drain() or busy
        deadline = self.next_deadline()
        if (
            self._wake is not None
            and deadline is not None
            and (self._sleeping_until is None or deadline < self._sleeping_until)
        ):
            self._wake.set()

    async def run(self) -> None:
        """The timer task; runs until cancelled."""
        while True:
            wake = self._wake = anyio.Event()
            deadline = self.next_deadline()
            self._sleeping_until = deadline
            if deadline is None:
                await wake.wait()
            else:
                delay = deadline - self._clock()
                if delay > 0:
                    with anyio.move_on_after(delay):
                        await wake.wait()
            self._sleeping_until = None
            now = self._clock()
            for pumped in tuple(self._pumped):
                due = pumped.core.next_deadline()
                if due is not None and due <= now:
                    pumped.core.on_timer(now=now)
            self.poke()
            await anyio.sleep(0)  # never spin without yielding
