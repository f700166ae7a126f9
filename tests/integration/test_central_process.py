"""`railgun-ref central` as its own process: the CLI contract, SIGTERM, and kill -9 (CEN-1.1,
CEN-4.4).

Every process a test starts is killed in its teardown, whatever happened.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from railgun_ref.cli import main
from railgun_ref.drivers.central_client import CentralClient, Delivery, connect_central
from railgun_ref.identity.keys import Identity

from .rooms_helpers import room_log

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

ALICE = Identity.from_seed(bytes([11]) * 32)
BOB = Identity.from_seed(bytes([12]) * 32)
ROOM, LOG = room_log(ALICE, BOB)  #: a closed room; LOG is its JOIN proof (ROOM-6.3)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Processes:
    """Starts `railgun-ref central` processes and kills every one of them at teardown."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[str]] = []

    def start(self, db: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "railgun_ref.cli",
                "central",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--db",
                str(db),
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.started.append(proc)
        assert proc.stdout is not None
        first = proc.stdout.readline()  # EOF (not a hang) if the process dies
        assert first.startswith("railgun-ref central listening http://127.0.0.1:"), first
        return proc, first.split()[-1]

    def kill_all(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()


@pytest.fixture
def processes() -> Iterator[Processes]:
    procs = Processes()
    try:
        yield procs
    finally:
        procs.kill_all()


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


async def receive(client: CentralClient, timeout: float = 5.0) -> Delivery:
    with anyio.fail_after(timeout):
        return await client.receive()


async def nothing_more(client: CentralClient, wait: float = 0.5) -> None:
    with anyio.move_on_after(wait):
        extra = await client.receive()
        pytest.fail(f"unexpected delivery {extra}")


def test_cli_prints_the_url_and_stops_on_sigterm(processes: Processes, tmp_path: Path) -> None:
    """CEN-1.1: the first stdout line names the URL; SIGTERM stops the process cleanly."""
    proc, url = processes.start(tmp_path / "central.sqlite3")
    health = get_json(url + "/health")
    assert health["status"] == "ok"
    assert isinstance(health["time"], float)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    assert (tmp_path / "central.sqlite3").exists()


def test_cli_refuses_a_non_loopback_host(capsys: pytest.CaptureFixture[str]) -> None:
    """CEN-1.1: the service binds loopback unless told --allow-public-bind."""
    assert main(["central", "--host", "0.0.0.0", "--port", "0"]) == 2
    assert "--allow-public-bind" in capsys.readouterr().err


def test_cli_reports_a_port_in_use(tmp_path: Path) -> None:
    """CEN-1.1: a port that cannot be bound is a clear error and exit status 1."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "railgun_ref.cli",
                "central",
                "--port",
                str(port),
                "--db",
                str(tmp_path / "db.sqlite3"),
            ],
            capture_output=True,
            check=False,
            text=True,
            timeout=30,
        )
    assert done.returncode == 2
    assert "cannot listen on 127.0.0.1" in done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stdout == ""


@pytest.mark.anyio
async def test_kill_9_after_sent_loses_and_duplicates_nothing(
    processes: Processes, tmp_path: Path
) -> None:
    """CEN-4.4, CEN-4.3, CEN-4.1: SIGKILL right after SENT; the restarted service still holds
    the membership and the entry, the offline member receives it exactly once, and the
    sender's retry with the same message id is acknowledged without a second copy."""
    db = tmp_path / "central.sqlite3"
    proc, url = processes.start(db)
    async with connect_central(url, BOB) as bob:
        await bob.join(ROOM, LOG)
    message_id = os.urandom(16)
    async with connect_central(url, ALICE) as alice:
        await alice.join(ROOM, LOG)
        receipt = await alice.send(ROOM, b"survives", message_id=message_id)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    proc, url = processes.start(db)
    async with connect_central(url, BOB) as bob:
        assert bob.rooms == frozenset({ROOM})
        delivery = await receive(bob)
        assert (delivery.message_id, delivery.blob) == (message_id, b"survives")
        assert delivery.timestamp_ms == receipt.timestamp_ms
        async with connect_central(url, ALICE) as alice:  # the sender retries after failover
            assert await alice.send(ROOM, b"survives", message_id=message_id) == receipt
        await nothing_more(bob)
        assert await bob.ack([delivery.seq]) == 1
    assert get_json(url + "/metrics")["mailbox_rows"] == 0


@pytest.mark.anyio
async def test_kill_9_before_ack_is_delivered_once_to_the_application(
    processes: Processes, tmp_path: Path
) -> None:
    """CEN-4.5, CEN-4.6: a member got the push but the service died before the ACK; after the
    restart the entry is pushed again and the client, keeping its seen set, drops the repeat."""
    db = tmp_path / "central.sqlite3"
    proc, url = processes.start(db)
    seen: set[int] = set()
    async with (
        connect_central(url, ALICE) as alice,
        connect_central(url, BOB, seen_seqs=seen) as bob,
    ):
        await alice.join(ROOM, LOG)
        await bob.join(ROOM, LOG)
        await alice.send(ROOM, b"pushed, not acked")
        delivery = await receive(bob)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    proc, url = processes.start(db)
    async with connect_central(url, BOB, seen_seqs=seen) as bob:
        await nothing_more(bob)
        assert bob.duplicates_dropped == 1
        assert await bob.ack([delivery.seq]) == 1
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
