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
5. A process serving many nodes (a benchmark's hundreds of hosts) shares one
   timer task among their loops: a ``TimerHeap`` holds each attached loop's
   earliest deadline, its ``run()`` sleeps until the earliest of all and
   fires the loops that are due. A loop attached to a heap (``attach``) arms
   its deadline there on every poke instead of running its own timer task.

The discrete-event simulator has the same semantics with virtual time
(``drivers/sim.py``): drain after each input, schedule ``on_timer`` at
``next_deadline()``.
"""

import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import anyio

from railgun_ref.core.contract import ProtocolCore

__all__ = ["CoreLoop", "TimerHeap"]

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
        self._timers: TimerHeap | None = None
        #: The entry this loop holds in its `TimerHeap`; any other entry of it is stale.
        self._armed: _Armed | None = None

    def attach(self, timers: "TimerHeap") -> None:
        """Let `timers` fire this loop from now on (instead of `run`), and arm it."""
        self._timers = timers
        self._armed = None
        self.poke()

    def detach(self) -> None:
        """Stop firing this loop: its entry in the heap goes stale."""
        self._timers = None
        self._armed = None

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
        if self._timers is not None:
            if deadline is not None and (self._armed is None or deadline < self._armed[0]):
                self._armed = self._timers.arm(self, deadline)
            return
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
            self._fire_due(self._clock())
            await anyio.sleep(0)  # never spin without yielding

    def fire(self, entry: "_Armed", now: float) -> None:
        """`TimerHeap`'s callback: run the due timers if `entry` is still this loop's."""
        if entry is self._armed:
            self._armed = None
            self._fire_due(now)

    def _fire_due(self, now: float) -> None:
        for pumped in tuple(self._pumped):
            due = pumped.core.next_deadline()
            if due is not None and due <= now:
                pumped.core.on_timer(now=now)
        self.poke()


#: A `TimerHeap` entry: deadline, tie-breaking sequence number, the loop it fires.
_Armed = tuple[float, int, CoreLoop]


class TimerHeap:
    """One timer task for many `CoreLoop`s: sleeps until the earliest armed deadline.

    A loop arms (`CoreLoop.attach`) a new entry whenever its deadline moves
    earlier; an entry the loop no longer holds is skipped when it comes up, and
    a loop whose deadline moved later is fired early, finds nothing due and
    arms again, as a loop's own timer task does. All loops share `clock`.
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._heap: list[_Armed] = []
        self._order = itertools.count()
        self._wake: anyio.Event | None = None
        self._sleeping_until: float | None = None

    def __len__(self) -> int:
        return len(self._heap)

    def arm(self, loop: CoreLoop, deadline: float) -> _Armed:
        entry = (deadline, next(self._order), loop)
        heapq.heappush(self._heap, entry)
        if (
            self._wake is not None
            and self._sleeping_until is not None
            and deadline < self._sleeping_until
        ):
            self._wake.set()
        return entry

    async def run(self) -> None:
        """The timer task of every attached loop; runs until cancelled."""
        heap = self._heap
        while True:
            while heap and heap[0][2]._armed is not heap[0]:
                heapq.heappop(heap)  # stale: its loop re-armed or detached
            wake = self._wake = anyio.Event()
            self._sleeping_until = heap[0][0] if heap else float("inf")
            delay = self._sleeping_until - self._clock()
            if delay > 0:
                with anyio.move_on_after(delay):
                    await wake.wait()
            self._sleeping_until = None
            now = self._clock()
            due: list[_Armed] = []
            while heap and heap[0][0] <= now:
                due.append(heapq.heappop(heap))
            for entry in due:  # loops re-armed in the past wait for the next round
                entry[2].fire(entry, now)
            await anyio.sleep(0)  # never spin without yielding
