"""The demo's clients run in processes of their own; what that changes (issue 11).

* Accounting: a message not delivered when the drain bound ran out is "still
  queued" if its sender's outbox or the central mailbox still holds it for
  that member, and "lost" only if nothing holds it (`judge` on a constructed
  history; `FailoverNetwork.queued_pairs` on constructed end-of-run stock).
* Adaptive bounds: a bound stretches with the measured loop lag, up to a ceiling.
* A client process that dies mid-run fails the demo at once, naming the
  client, its pid and how it ended -- not a hang until the bounds run out.
* The worker: a real client process obeys its commands over stdin/stdout.
Nothing asserts on timings.
"""

import json
import os
import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import anyio
import pytest

from railgun_ref.apps.demo import (
    LAG_STRETCH_CEILING,
    FailoverNetwork,
    adaptive_bound,
    judge,
)
from railgun_ref.apps.demo_clients import ClientProcess, exit_description

A, B, C = b"a" * 16, b"b" * 16, b"c" * 16


def test_undelivered_messages_still_queued_are_not_lost() -> None:
    """Three members; A (from 0) reached 1 but not 2, B (from 1) reached nobody, C (from 2)
    reached 0 only. Still queued: A for 2 (sender's outbox), B for 0 (central mailbox).
    Nothing holds B for 2 or C for 1: those two are lost."""
    sender_of = {A: 0, B: 1, C: 2}
    received = [Counter({C: 1}), Counter({A: 1}), Counter()]
    paths: list[dict[bytes, str]] = [{C: "p2p"}, {A: "central"}, {}]
    queued = {(2, A), (0, B), (1, A), (0, A)}  # (1, A) delivered; (0, A) its own sender
    summary = judge(3, sender_of, received, paths, queued=queued)
    assert (summary.expected, summary.delivered) == (6, 2)
    assert (summary.queued, summary.lost, summary.duplicates) == (2, 2, 0)
    assert not summary.ok
    assert "2 still queued, 2 lost - FAILED" in summary.line()
    assert "2 deliveries LOST" in summary.why() and "2 deliveries still queued" in summary.why()
    assert summary.to_json()["queued"] == 2


def test_all_undelivered_queued_is_a_failure_but_no_loss() -> None:
    sender_of = {A: 0, B: 1}
    received = [Counter({B: 1}), Counter(), Counter({B: 1})]
    summary = judge(3, sender_of, received, [{}, {}, {}], queued={(1, A), (2, A)})
    assert (summary.queued, summary.lost) == (2, 0)
    assert not summary.ok
    assert "LOST" not in summary.why()
    assert "still queued when the drain bound ran out" in summary.why()
    assert judge(3, sender_of, received, [{}, {}, {}]).lost == 2  # nothing queued: lost


def test_queued_pairs_come_from_outboxes_and_the_central_mailbox(tmp_path: Path) -> None:
    """End-of-run stock as the workers and the central database report it."""
    network = FailoverNetwork(peers=3, data_dir=tmp_path)
    ids = [f"{i:02x}" * 32 for i in range(3)]
    network._index_of = {node: index for index, node in enumerate(ids)}
    network.final_outboxes = [
        {"entries": [{"message_id": A.hex(), "missing": [ids[1], ids[2]]}]},
        {"entries": []},
        {"entries": [{"message_id": C.hex(), "missing": ["ff" * 32]}]},  # not a member
    ]
    network.held_by_central = {(bytes.fromhex(ids[0]), B), (b"\x07" * 32, C)}
    assert network.queued_pairs() == {(1, A), (2, A), (0, B)}


def test_bounds_stretch_with_lag_up_to_a_ceiling() -> None:
    assert adaptive_bound(40.0, 0.0) == 40.0
    assert adaptive_bound(40.0, -1.0) == 40.0
    quiet, busy = adaptive_bound(40.0, 0.005), adaptive_bound(40.0, 0.3)
    assert 40.0 < quiet < busy < 40.0 * LAG_STRETCH_CEILING
    assert adaptive_bound(40.0, 5.0) == adaptive_bound(40.0, 60.0) == 40.0 * LAG_STRETCH_CEILING


def test_wait_until_reports_the_stretched_bound(tmp_path: Path) -> None:
    """A lag reported during the wait stretches it; the report says by how much."""
    network = FailoverNetwork(peers=2, data_dir=tmp_path)

    async def main() -> bool:
        network.lags.append((network.now(), 0.25))  # twice the base
        return await network.wait_until(lambda: False, 0.2, "test")

    assert anyio.run(main) is False
    (entry,) = network.bounds
    assert entry["what"] == "test" and entry["met"] is False
    assert entry["bound_s"] == pytest.approx(0.4)
    assert entry["waited_s"] >= entry["bound_s"]
    assert "stretched to" in network.bound_note()


def test_exit_descriptions() -> None:
    assert exit_description(-signal.SIGKILL) == "killed by SIGKILL"
    assert exit_description(3) == "exit status 3"
    assert exit_description(None) == "no exit status"


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_a_dead_client_process_is_reported_not_waited_for(tmp_path: Path) -> None:
    """SIGKILL one client process once it runs: the demo exits 1 promptly, naming it."""
    demo = subprocess.Popen(
        [
            *(sys.executable, "-m", "railgun_ref.cli", "demo", "--quick"),
            *("--peers", "3", "--report", "out"),
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert demo.stdout is not None
    output: list[str] = []
    victim = None
    try:
        for line in demo.stdout:
            output.append(line)
            found = re.match(r"^  client c01: pid (\d+),", line)
            if found:
                victim = int(found.group(1))
                os.kill(victim, signal.SIGKILL)
                break
        assert victim is not None, "".join(output)
        rest, _ = demo.communicate(timeout=90)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    text = "".join(output) + rest
    assert demo.returncode == 1, text
    assert f"demo FAILED: client c01 (pid {victim}) exited unexpectedly, killed by SIGKILL" in text
    assert "Traceback" not in text
    report = json.loads((tmp_path / "out" / "events.json").read_text())
    assert report["demo"]["peers"] == 3  # the events up to the failure were kept


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_worker_obeys_commands_over_its_pipes(tmp_path: Path) -> None:
    """One real worker (no central service reachable): ready, status, lag, a room, an
    outbox reply; closing its stdin stops it cleanly."""

    async def main() -> list[dict[str, object]]:
        records: list[dict[str, object]] = []
        client = ClientProcess(index=0, log_path=tmp_path / "stderr.log")
        argv = ["--index", "0", "--data-dir", str(tmp_path / "c0"), "--room", "r"]
        argv += ["--central-url", "http://127.0.0.1:9", "--origin", "ws://127.0.0.1:9"]
        argv += ["--dns", "127.0.0.1:9"]
        async with anyio.create_task_group() as tg:
            await client.start(argv)
            tg.start_soon(client.pump, lambda _c, record: records.append(record))
            with anyio.fail_after(30):
                await client.ready.wait()
            room = await client.request("create_room", name="r")
            no_one = await client.request("send", text="hello")
            stock = await client.request("outbox")
            records.append({"kind": "replies", "room": room, "send": no_one, "stock": stock})
            with anyio.fail_after(30):
                while not any(r["kind"] == "lag" for r in records):
                    await anyio.sleep(0.1)
            await client.stop()
        assert client.process is not None and client.process.returncode == 0
        return records

    records = anyio.run(main)
    kinds = {r["kind"] for r in records}
    assert {"ready", "status", "lag", "reply"} <= kinds
    (replies,) = [r for r in records if r["kind"] == "replies"]
    assert isinstance(replies["room"], dict) and len(str(replies["room"]["room_id"])) == 64
    assert replies["send"] == {"kind": "reply", "reply_to": 1, "error": "no_members"}
    assert isinstance(replies["stock"], dict) and replies["stock"]["entries"] == []
