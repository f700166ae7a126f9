"""What a command says on stderr: one-line usage errors and progress of long phases.

* A mistake of the person running a command (a port in use, a directory that is a
  file, a value out of range found after parsing) is raised as `UsageError`; the
  command line prints it as one line and exits 2, never with a traceback.
* A long phase reports progress with `ProgressReport`: a rich bar when stderr is a
  terminal, else a plain line at most every `interval` seconds, so a log file gets
  a heartbeat and not a redraw per step. Progress never goes to stdout, which
  carries a command's results (JSON, tables).
"""

import sys
import time
from types import TracebackType
from typing import Final, Self

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)


class UsageError(Exception):
    """A mistake of the user, stated in one line; the command line exits 2 on it."""


#: Seconds between two plain progress lines (stderr is not a terminal).
PLAIN_INTERVAL: Final = 5.0


def stderr_is_terminal() -> bool:
    return sys.stderr.isatty()


def _amount(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


class ProgressReport:
    """Progress of one phase (`description`) towards `total` (None: unknown) on stderr.

    Use as a context manager; `update(completed)` or `advance(amount)` as work is done.
    `enabled=False` makes it silent (``--quiet``); `final_line=False` leaves out the
    closing "done" line, for a caller that prints its own.
    """

    def __init__(
        self,
        description: str,
        *,
        total: float | None,
        unit: str = "",
        enabled: bool = True,
        interval: float = PLAIN_INTERVAL,
        terminal: bool | None = None,
        final_line: bool = True,
    ) -> None:
        self.description = description
        self.total = total
        self.unit = unit
        self.completed = 0.0
        self._enabled = enabled
        self._final_line = final_line
        self._interval = interval
        self._terminal = stderr_is_terminal() if terminal is None else terminal
        self._started = time.monotonic()
        self._last_line = self._started
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> Self:
        if self._enabled and self._terminal:
            self._bar = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn(self.unit),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task(self.description, total=self.total)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        if self._enabled and self._final_line and exc_type is None:
            self._line("done")

    def advance(self, amount: float = 1) -> None:
        self.update(self.completed + amount)

    def update(self, completed: float) -> None:
        self.completed = completed
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=completed)
        elif self._enabled and not self._terminal and completed != self.total:
            now = time.monotonic()  # (the last step is left to the closing line)
            if now - self._last_line >= self._interval:
                self._last_line = now
                self._line()

    def _line(self, suffix: str = "") -> None:
        elapsed = time.monotonic() - self._started
        of = f"/{_amount(self.total)}" if self.total is not None else ""
        unit = f" {self.unit}" if self.unit else ""
        tail = f" {suffix}" if suffix else ""
        line = f"[{elapsed:6.1f} s] {self.description}: {_amount(self.completed)}{of}{unit}{tail}"
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
