"""The shared UDP receive loop of the STUN, TURN and DNS servers."""

from typing import Any

import anyio
import pytest

from railgun_ref.drivers.udp_receive import udp_datagrams


class ScriptedSocket:
    """Answers `receive()` from a script: bytes are datagrams, exceptions are raised."""

    def __init__(self, script: list[Any]) -> None:
        self.script = script

    async def receive(self) -> tuple[bytes, tuple[str, int]]:
        item = self.script.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item, ("127.0.0.1", 4000)


def collect(script: list[Any], *, max_errors: int = 100) -> tuple[list[bytes], int]:
    errors = 0

    def count() -> None:
        nonlocal errors
        errors += 1

    async def run() -> list[bytes]:
        sock: Any = ScriptedSocket(script)
        return [d async for d, _ in udp_datagrams(sock, on_error=count, max_errors=max_errors)]

    return anyio.run(run), errors


def test_errors_are_counted_and_skipped_until_the_socket_closes() -> None:
    got, errors = collect(
        [b"a", OSError("icmp"), b"b", OSError(), b"c", anyio.ClosedResourceError()]
    )
    assert got == [b"a", b"b", b"c"] and errors == 2


def test_too_many_errors_in_a_row_re_raise() -> None:
    with pytest.raises(OSError):
        collect([b"a", OSError(), OSError(), OSError(), b"never"], max_errors=3)


def test_a_good_datagram_resets_the_error_run() -> None:
    script: list[Any] = [OSError(), OSError(), b"x", OSError(), OSError(), b"y"]
    got, errors = collect([*script, anyio.EndOfStream()], max_errors=3)
    assert got == [b"x", b"y"] and errors == 4
