"""The shared driver loop (CORE-1.4) and typed counters, on a tiny core."""

from dataclasses import dataclass
from enum import StrEnum

import anyio
import pytest

from railgun_ref.core.contract import ProtocolCore
from railgun_ref.core.counters import Counters
from railgun_ref.drivers.loop import CoreLoop


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
