"""`railgun-ref node -v/-vv`: joins, lookups and traffic as timestamped lines on stderr.

Two real node processes on 127.0.0.1: one to join through, one that joins with
the verbosity under test. stdout keeps its contract (listening line, joined line);
the log goes to stderr only, and without ``-v`` stderr stays empty.
"""

import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} ")
NODE = [sys.executable, "-m", "railgun_ref.cli", "node", "--host", "127.0.0.1"]


class _Lines:
    """Lines of a child's pipe, read from the raw descriptor so `select` sees every byte
    (a buffered reader could hold lines that `select` does not report)."""

    def __init__(self, pipe: IO[bytes] | None) -> None:
        assert pipe is not None
        self._fd = pipe.fileno()
        self._pending = b""

    def until(self, wanted: list[str], *, within: float = 30.0) -> list[str]:
        """Lines until each of `wanted` has appeared in one of them."""
        lines: list[str] = []
        missing = list(wanted)
        deadline = time.monotonic() + within
        with selectors.DefaultSelector() as selector:
            selector.register(self._fd, selectors.EVENT_READ)
            while missing:
                while missing and b"\n" in self._pending:
                    raw, self._pending = self._pending.split(b"\n", 1)
                    lines.append(raw.decode())
                    missing = [w for w in missing if w not in lines[-1]]
                if not missing:
                    break
                left = deadline - time.monotonic()
                assert left > 0 and selector.select(left), f"missing {missing}; got {lines}"
                chunk = os.read(self._fd, 65536)
                assert chunk, f"pipe closed; missing {missing}; got {lines}"
                self._pending += chunk
        return lines


@contextmanager
def _node(*extra: str) -> Iterator[tuple[subprocess.Popen[bytes], _Lines, _Lines]]:
    proc = subprocess.Popen([*NODE, *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        yield proc, _Lines(proc.stdout), _Lines(proc.stderr)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=15)


def _listening_port(out: _Lines) -> int:
    (line,) = out.until(["railgun-ref node listening udp://"])
    return int(line.split()[3].rsplit(":", 1)[1])


@pytest.mark.parametrize("flag", ["-v", "-vv"])
def test_verbose_node_logs_its_join_lookup_and_peers(flag: str) -> None:
    with _node() as (_, first_out, _):
        port = _listening_port(first_out)
        with _node(flag, "--bootstrap", f"127.0.0.1:{port}") as (_, out, err):
            _listening_port(out)
            assert out.until(["joined: 1 contacts"])
            wanted = ["joining through 127.0.0.1", "lookup ", "peers known: 1 (was 0)"]
            if flag == "-vv":
                wanted += ["-> datagram FIND_NODE 127.0.0.1", "<- datagram NODES 127.0.0.1"]
            lines = err.until(wanted)
    assert all(TIMESTAMP.match(line) for line in lines), lines
    per_datagram = [line for line in lines if " datagram " in line]
    assert bool(per_datagram) == (flag == "-vv"), lines


def test_quiet_node_writes_nothing_to_stderr() -> None:
    with _node() as (_, first_out, _):
        port = _listening_port(first_out)
        with _node("--bootstrap", f"127.0.0.1:{port}") as (joiner, out, _):
            _listening_port(out)
            assert out.until(["joined: 1 contacts"])
            joiner.send_signal(signal.SIGTERM)
            _, err = joiner.communicate(timeout=15)
    assert err == b""
