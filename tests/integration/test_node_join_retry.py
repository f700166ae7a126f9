"""DHT-8.2: a node whose bootstrap nodes are all down keeps retrying, then joins."""

import signal
import socket
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _readline(proc: subprocess.Popen[str], deadline: float) -> str:
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line:
            return line.strip()
    raise AssertionError("no output before the deadline")


def test_join_is_retried_until_a_bootstrap_node_answers() -> None:
    port = _free_port()
    node = [sys.executable, "-m", "railgun_ref.cli", "node", "--host", "127.0.0.1"]
    joiner = subprocess.Popen(
        [*node, "--bootstrap", f"127.0.0.1:{port}"], stdout=subprocess.PIPE, text=True
    )
    bootstrap = None
    try:
        deadline = time.monotonic() + 30
        assert _readline(joiner, deadline).startswith("railgun-ref node listening")
        assert _readline(joiner, deadline).startswith("join: no bootstrap node answered")
        bootstrap = subprocess.Popen(
            [*node, "--port", str(port)], stdout=subprocess.PIPE, text=True
        )
        assert _readline(bootstrap, deadline).startswith("railgun-ref node listening")
        line = _readline(joiner, deadline)
        while line.startswith("join: no bootstrap"):
            line = _readline(joiner, deadline)
        assert line.startswith("joined: 1 contacts")
    finally:
        for proc in (joiner, bootstrap):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=10)
