"""One task set for many hosts in one process: a benchmark's or a lab's hundreds of nodes.

Each `NodeHost` used to run its own tasks — a receive loop, a send loop, an
accept loop and a timer — so an idle host cost some 30 KB of task state and
each datagram a wake-up of its own task. A `HostGroup` serves any number of
hosts with two tasks, as an asyncio server serves many protocol objects:

* **one watch loop** over every socket of every host: the sockets are
  registered in one OS selector (epoll, kqueue), the loop waits until the
  selector itself is readable, then calls the callback of each ready socket
  synchronously (a host's UDP socket drains up to a batch of datagrams and
  pumps its node once; its TCP listener accepts what is waiting);
* **one timer task** (`TimerHeap`) for the `CoreLoop`s of every host.

What a host still runs as tasks is what needs its own: each stream
connection's reader and writer, and a datagram backlog's writer while there
is a backlog (a socket that would block, or an emulated link delay). They
run in the group's task group, each under a cancel scope its host cancels
when it stops.

A host served alone (`NodeHost.run`) runs in a group of its own; hosts that
share a group share its clock.
"""

import contextlib
import selectors
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, Protocol

import anyio
import anyio.abc

from railgun_ref.core.ids import Address
from railgun_ref.drivers.loop import TimerHeap

__all__ = ["GroupMember", "GroupStoppedError", "HostGroup"]

#: What a watched socket's callback is: called when the socket is readable.
ReadyCallback = Callable[[], None]
#: Set on a group that has stopped: further `add` calls fail.
_STOPPED: Final = object()


class GroupStoppedError(RuntimeError):
    """The group is not running (never started, or stopped)."""


class GroupMember(Protocol):
    """What a group serves (`NodeHost`): started with the group, stopped with it."""

    def start_in(self, group: "HostGroup") -> Address: ...

    def stop(self) -> None: ...


class HostGroup:
    """Serves many hosts from one watch loop and one timer task (see the module docstring).

    Use it inside a task group: ``await tg.start(group.run)``, then
    ``address = group.add(host)`` for each host; ``host.stop()`` stops one,
    cancelling the group's task stops them all.
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.timers = TimerHeap(clock=clock)
        self._selector: selectors.BaseSelector | None = None
        self._task_group: anyio.abc.TaskGroup | None = None
        self._members: dict[int, GroupMember] = {}
        self._state: object | None = None

    @property
    def running(self) -> bool:
        return self._task_group is not None

    def __len__(self) -> int:
        return len(self._members)

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Run the watch loop and the timer task until cancelled; then stop every host."""
        if self._state is not None:
            raise GroupStoppedError("a HostGroup runs only once; make a new one")
        selector = selectors.DefaultSelector()
        fileno: Callable[[], int] | None = getattr(selector, "fileno", None)
        if fileno is None:  # pragma: no cover - platforms with select() only
            selector.close()
            raise OSError("HostGroup needs a pollable selector (epoll, kqueue or devpoll)")
        try:
            async with anyio.create_task_group() as tg:
                self._selector, self._task_group = selector, tg
                tg.start_soon(self._watch_loop, selector, fileno())
                tg.start_soon(self.timers.run)
                task_status.started()
        finally:
            self._task_group, self._state = None, _STOPPED
            for member in list(self._members.values()):
                member.stop()
            self._members.clear()
            self._selector = None
            selector.close()

    def add(self, member: GroupMember) -> Address:
        """Start `member` in this group (`NodeHost`: binds it and returns its address)."""
        if self._task_group is None:
            raise GroupStoppedError("the group is not running: start run() first")
        started = member.start_in(self)
        self._members[id(member)] = member
        return started

    def discard(self, member: GroupMember) -> None:
        """Forget a member that stopped (its own `stop` calls this)."""
        self._members.pop(id(member), None)

    def watch(self, sock: socket.socket, on_ready: ReadyCallback) -> None:
        """Call `on_ready()` from the watch loop whenever `sock` is readable."""
        if self._selector is None:
            raise GroupStoppedError("the group is not running")
        self._selector.register(sock, selectors.EVENT_READ, on_ready)

    def unwatch(self, sock: socket.socket) -> None:
        """Stop watching `sock` (before it is closed); a no-op if it is not watched."""
        if self._selector is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(sock)

    def start_soon(
        self, func: Callable[..., Awaitable[Any]], *args: Any, scopes: set[anyio.CancelScope]
    ) -> None:
        """Run `func(*args)` as a task of the group, under a cancel scope put in `scopes`
        for as long as it runs (the owner cancels them all when it stops)."""
        if self._task_group is None:
            raise GroupStoppedError("the group is not running")
        self._task_group.start_soon(_scoped, func, args, scopes)

    async def _watch_loop(self, selector: selectors.BaseSelector, fileno: int) -> None:
        """Wait until some socket is readable, then call every ready socket's callback."""
        while True:
            await anyio.wait_readable(fileno)
            for key, _ in selector.select(0):
                callback: ReadyCallback = key.data
                callback()


async def _scoped(
    func: Callable[..., Awaitable[Any]], args: tuple[Any, ...], scopes: set[anyio.CancelScope]
) -> None:
    with anyio.CancelScope() as scope:
        scopes.add(scope)
        try:
            await func(*args)
        finally:
            scopes.discard(scope)
