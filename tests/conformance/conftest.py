"""Conformance tests: the `clause` marker and a bounded helper for node processes.

``@pytest.mark.clause("ENV-2.4", ...)`` names the spec clauses a test covers;
`railgun_ref.conformance.traceability` reads it (and clause ids in docstrings)
to build paper/traceability.md.
"""

import selectors
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

RESPONDERS = Path(__file__).with_name("responders.py")
#: Longest wait for a node process to print its listening line, seconds.
START_TIMEOUT = 20.0


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "clause(*ids): the paper/spec.md clauses this test covers (traceability)"
    )


def _first_line(process: subprocess.Popen[str], timeout: float) -> str:
    """The first stdout line of `process`, waiting at most `timeout` seconds."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    buffer = ""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while "\n" not in buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(timeout=left):
                raise TimeoutError(f"no listening line within {timeout} s")
            chunk = process.stdout.readline()
            if not chunk:
                raise RuntimeError(f"process exited with status {process.wait(timeout=5)}")
            buffer += chunk
    return buffer.splitlines()[0]


@contextmanager
def node_process(*argv: str) -> Iterator[tuple[str, str]]:
    """Start a node process; yield (target URL, node id hex); always stop it."""
    process = subprocess.Popen(
        [sys.executable, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = _first_line(process, START_TIMEOUT)
        words = line.split()
        assert words[:3] == ["railgun-ref", "node", "listening"], line
        assert words[3].startswith("udp://") and words[4].startswith("id="), line
        yield words[3], words[4].removeprefix("id=")
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        if process.stdout is not None:
            process.stdout.close()


Starter = Callable[..., AbstractContextManager[tuple[str, str]]]


@pytest.fixture
def responder() -> Starter:
    """`responder(mode)`: runs tests/conformance/responders.py in that mode."""

    def start(mode: str) -> AbstractContextManager[tuple[str, str]]:
        return node_process(str(RESPONDERS), "--mode", mode)

    return start


@pytest.fixture
def reference_node() -> Starter:
    """`reference_node()`: runs ``python -m railgun_ref.cli node`` on 127.0.0.1."""

    def start() -> AbstractContextManager[tuple[str, str]]:
        return node_process("-m", "railgun_ref.cli", "node", "--host", "127.0.0.1", "--port", "0")

    return start
