"""The shared driver loop (CORE-1.4) and typed counters, on a tiny core."""

import functools
from dataclasses import dataclass
from enum import StrEnum

import anyio
import pytest

from railgun_ref.core.contract import ProtocolCore
from railgun_ref.core.counters import Counters
from railgun_ref.drivers.loop import CoreLoop, TimerHeap


@dataclass(frozen=True, slots=True)
class Tick:
    at: float


class Ticker:
    """Emits a Tick every `period` seconds of `now`, three times."""

    def __init__(self, period: float, *, now: float) -> None:
        self.period = period
        self.due: float | None = now + period
        self.out: list[Tick] = []
        self.fired = 0

    def on_timer(self, *, now: float) -> None:
        if self.due is not None and now >= self.due:
            self.out.append(Tick(at=now))
            self.fired += 1
            self.due = None if self.fired == 3 else now + self.period

    def next_deadline(self) -> float | None:
        return self.due

    def next_action(self) -> Tick | None:
        return self.out.pop(0) if self.out else None


class Echo:
    """A second core fed by the first: counts what it is given, emits it back once."""

    def __init__(self) -> None:
        self.out: list[Tick] = []

    def give(self, tick: Tick, *, now: float) -> None:
        self.out.append(tick)

    def on_timer(self, *, now: float) -> None:
        pass

    def next_deadline(self) -> float | None:
        return None

    def next_action(self) -> Tick | None:
        return self.out.pop(0) if self.out else None


def test_loop_runs_timers_and_drains_chained_cores() -> None:
    """CORE-1.4: after every input and timer the loop drains all cores until idle."""
    seen: list[str] = []

    async def main() -> None:
        loop = CoreLoop(clock=anyio.current_time)
        ticker = Ticker(0.02, now=anyio.current_time())
        echo = Echo()
        core: ProtocolCore[Tick] = ticker  # mypy: Ticker satisfies the contract

        def on_tick(tick: Tick) -> None:
            seen.append("tick")
            echo.give(tick, now=loop.now())

        loop.add(core, on_tick)
        loop.add(echo, lambda tick: seen.append("echo"))
        async with anyio.create_task_group() as tg:
            tg.start_soon(loop.run)
            with anyio.fail_after(5):
                while ticker.fired < 3 or echo.out:
                    await anyio.sleep(0.01)
            tg.cancel_scope.cancel()

    anyio.run(main)
    assert seen == ["tick", "echo"] * 3


def _record(fired: list[tuple[str, float]], name: str, tick: Tick) -> None:
    fired.append((name, tick.at))


def test_one_timer_heap_fires_many_loops_in_deadline_order() -> None:
    """A TimerHeap is the timer task of every attached loop: each fires at its own deadlines."""
    fired: list[tuple[str, float]] = []

    async def main() -> None:
        timers = TimerHeap(clock=anyio.current_time)
        tickers: dict[str, Ticker] = {}
        for name, period in (("slow", 0.03), ("fast", 0.01)):
            loop = CoreLoop(clock=anyio.current_time)
            ticker = tickers[name] = Ticker(period, now=anyio.current_time())
            loop.add(ticker, functools.partial(_record, fired, name))
            loop.attach(timers)
        async with anyio.create_task_group() as tg:
            tg.start_soon(timers.run)
            with anyio.fail_after(5):
                while any(t.fired < 3 for t in tickers.values()):
                    await anyio.sleep(0.01)
            tg.cancel_scope.cancel()

    anyio.run(main)
    assert sorted(name for name, _ in fired) == ["fast"] * 3 + ["slow"] * 3
    assert [at for _, at in fired] == sorted(at for _, at in fired)


def test_a_detached_loop_is_not_fired_and_a_deadline_moved_earlier_fires_early() -> None:
    async def main() -> tuple[int, int]:
        timers = TimerHeap(clock=anyio.current_time)
        now = anyio.current_time()
        late, gone = Ticker(60.0, now=now), Ticker(0.01, now=now)
        late_loop, gone_loop = (
            CoreLoop(clock=anyio.current_time),
            CoreLoop(clock=anyio.current_time),
        )
        late_loop.add(late, lambda tick: None)
        gone_loop.add(gone, lambda tick: None)
        late_loop.attach(timers)
        gone_loop.attach(timers)
        gone_loop.detach()
        async with anyio.create_task_group() as tg:
            tg.start_soon(timers.run)
            await anyio.sleep(0.01)
            late.due = anyio.current_time() + 0.01  # an input moved the deadline earlier
            late_loop.poke()
            with anyio.fail_after(5):
                while late.fired < 1:
                    await anyio.sleep(0.01)
            await anyio.sleep(0.05)
            tg.cancel_scope.cancel()
        return late.fired, gone.fired

    assert anyio.run(main) == (1, 0)


class C(StrEnum):
    SENT = "sent"
    REJECTED = "rejected"


class Why(StrEnum):
    STALE = "stale"


def test_counters_are_typed_and_flatten() -> None:
    """CORE-1.5: counters are named by enum members, read by name, flattened for output."""
    counters: Counters[C] = Counters()
    counters.inc(C.SENT)
    counters.inc(C.SENT, 2)
    counters.inc(C.REJECTED, label=Why.STALE)
    assert counters.get_count(C.SENT) == 3
    assert counters.get_count(C.REJECTED, Why.STALE) == 1
    assert counters.total(C.REJECTED) == 1
    assert dict(counters) == {"rejected.stale": 1, "sent": 3}
    with pytest.raises(KeyError):
        counters["nope"]
