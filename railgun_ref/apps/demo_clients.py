"""The demo's clients as processes: start one, read what it reports, ask it things.

Each client of ``railgun-ref demo`` runs in its own process
(`railgun_ref.apps.demo_worker`): its own event loop, its own share of the
CPU. `ClientProcess` is the coordinator's handle on one: `start` launches it
and returns once it reported ``ready``; `pump` reads its JSON lines and hands
each record to a callback (keeping the latest status and replies); `request`
sends a command and waits for its reply; `stop` closes its stdin (the worker
stops cleanly) and kills it if it does not exit in time.

A worker that exits while the demo still needs it -- a crash, a kill, an
import error -- ends `pump` with `ClientCrashedError`, which names the client,
its pid, its exit status and the last lines it wrote to stderr: the demo
fails at once with that message instead of waiting out its bounds.
"""

import json
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import anyio
import anyio.abc
from anyio.streams.buffered import BufferedByteReceiveStream

#: Seconds a worker may take to start its client and report ``ready``.
CLIENT_START_TIMEOUT: Final = 60.0
#: Seconds a worker may take to reply to a command.
REQUEST_TIMEOUT: Final = 60.0
#: Seconds a worker may take to exit after its stdin closed, before it is killed.
STOP_TIMEOUT: Final = 10.0
#: The longest line a worker may write (the outbox reply is the largest).
MAX_LINE: Final = 64 * 1024 * 1024


class ClientCrashedError(RuntimeError):
    """A client process exited while the demo still needed it."""


def exit_description(code: int | None) -> str:
    """``exit status 3`` or ``killed by SIGKILL`` (a negative code is a signal)."""
    if code is None:
        return "no exit status"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def _tail(path: Path, lines: int = 4) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()[-lines:]
    except OSError:
        return "(no stderr)"
    return " | ".join(text) or "(no stderr)"


@dataclass(slots=True)
class ClientProcess:
    """The coordinator's handle on one client process (module docstring)."""

    index: int
    log_path: Path  #: the worker's stderr
    #: argv put before the worker's (e.g. ``ip netns exec NS``: a client in a network lab)
    launcher: tuple[str, ...] = ()
    env: dict[str, str] | None = None  #: the worker's environment (None: this process's)
    process: anyio.abc.Process | None = None
    pid: int | None = None
    address: str = ""
    node_id: str = ""
    public_key: str = ""
    nat: str | None = None  #: the NAT type it found or was given (NAT-6.4)
    #: The latest ``status`` record: state, central_connected, reachable, outbox.
    status: dict[str, Any] = field(default_factory=dict)
    stopping: bool = False
    ready: anyio.Event = field(default_factory=anyio.Event)
    _replies: dict[int, dict[str, Any]] = field(default_factory=dict)
    _reply_events: dict[int, anyio.Event] = field(default_factory=dict)
    _next_id: int = 0

    @property
    def name(self) -> str:
        return f"c{self.index:02d}"

    @property
    def state(self) -> str:
        return str(self.status.get("state", "connecting"))

    @property
    def central_connected(self) -> bool:
        return bool(self.status.get("central_connected", False))

    @property
    def reachable(self) -> int:
        return int(self.status.get("reachable", 0))

    @property
    def outbox(self) -> int:
        return int(self.status.get("outbox", 0))

    async def start(self, argv: Sequence[str]) -> anyio.abc.Process:
        """Launch the worker (``python -m railgun_ref.apps.demo_worker`` + `argv`)."""
        with self.log_path.open("ab") as log:
            self.process = await anyio.open_process(
                [*self.launcher, sys.executable, "-m", "railgun_ref.apps.demo_worker", *argv],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env=self.env,
            )
        self.pid = self.process.pid
        return self.process

    def crashed(self, code: int | None) -> ClientCrashedError:
        return ClientCrashedError(
            f"client {self.name} (pid {self.pid}) exited unexpectedly, "
            f"{exit_description(code)}; its stderr ends: {_tail(self.log_path)}"
        )

    async def pump(self, on_record: Callable[["ClientProcess", dict[str, Any]], None]) -> None:
        """Read the worker's lines until it exits; ClientCrashedError unless `stopping`."""
        assert self.process is not None and self.process.stdout is not None
        lines = BufferedByteReceiveStream(self.process.stdout)
        try:
            while True:
                line = await lines.receive_until(b"\n", MAX_LINE)
                try:
                    record = json.loads(line)
                except ValueError:
                    record = None
                if not isinstance(record, dict) or "kind" not in record:
                    # not one of ours (a library printing to stdout): keep it, as output
                    text = line.decode(errors="replace")
                    record = {"kind": "output", "text": text}
                self._take(record)
                on_record(self, record)
        except (anyio.EndOfStream, anyio.IncompleteRead, anyio.ClosedResourceError):
            pass
        code = await self.process.wait()
        if not self.stopping:
            raise self.crashed(code)

    def _take(self, record: dict[str, Any]) -> None:
        kind = record["kind"]
        if kind == "ready":
            self.address = record["address"]
            self.node_id = record["node_id"]
            self.public_key = record["public_key"]
            self.nat = record.get("nat")
            self.ready.set()
        elif kind == "status":
            self.status = record
        elif kind == "reply":
            request_id = int(record["reply_to"])
            self._replies[request_id] = record
            event = self._reply_events.pop(request_id, None)
            if event is not None:
                event.set()

    async def request(self, cmd: str, **data: Any) -> dict[str, Any]:
        """Send a command and wait for its reply (TimeoutError after REQUEST_TIMEOUT)."""
        assert self.process is not None and self.process.stdin is not None
        request_id = self._next_id
        self._next_id += 1
        done = self._reply_events[request_id] = anyio.Event()
        line = json.dumps({"id": request_id, "cmd": cmd, **data}) + "\n"
        try:
            await self.process.stdin.send(line.encode())
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            raise self.crashed(await self.process.wait()) from None
        with anyio.fail_after(REQUEST_TIMEOUT):
            await done.wait()
        return self._replies.pop(request_id)

    async def stop(self) -> None:
        """Close stdin (the worker stops its client and exits); kill it if it lingers."""
        self.stopping = True
        process = self.process
        if process is None or process.returncode is not None:
            return
        with anyio.CancelScope(shield=True):
            if process.stdin is not None:
                with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                    await process.stdin.aclose()
            with anyio.move_on_after(STOP_TIMEOUT):
                await process.wait()
                return
            process.kill()
            await process.wait()
