"""`railgun-ref chat` as a user runs it: a real central process and two chat processes on
pipes create a room, invite, accept, chat both ways, and keep chatting over P2P after the
central process is killed (SIGKILL).

Every process a test starts is killed in its teardown, whatever happened. Waits are
bounded by `LINE_TIMEOUT` per expected line; nothing asserts on timings.
"""

import contextlib
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

#: Seconds to wait for one expected line (failover with the fast profile takes ~3 s).
LINE_TIMEOUT = 30.0


class Proc:
    """A subprocess with stdin on a pipe and stdout read line by line by a thread."""

    def __init__(self, name: str, *args: str) -> None:
        self.name = name
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "railgun_ref.cli", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def expect(self, pattern: str, timeout: float = LINE_TIMEOUT) -> re.Match[str]:
        """The first line from now on that matches `pattern` (re.search)."""
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                pytest.fail(f"{self.name}: no line matching {pattern!r}; saw {self.seen}")
            if line is None:
                pytest.fail(f"{self.name} ended before {pattern!r}; saw {self.seen}")
            self.seen.append(line)
            found = re.search(pattern, line)
            if found:
                return found

    def type(self, line: str) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write(line + "\n")
        self.popen.stdin.flush()

    def end_input(self) -> int:
        """Close stdin (end of input, as Ctrl-D) and return the exit status."""
        assert self.popen.stdin is not None
        self.popen.stdin.close()
        return self.popen.wait(timeout=LINE_TIMEOUT)

    def stderr(self) -> str:
        assert self.popen.stderr is not None
        return self.popen.stderr.read()

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(timeout=10)
        for pipe in (self.popen.stdin, self.popen.stdout, self.popen.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


class Procs:
    def __init__(self) -> None:
        self.started: list[Proc] = []

    def start(self, name: str, *args: str) -> Proc:
        proc = Proc(name, *args)
        self.started.append(proc)
        return proc

    def central(self, tmp_path: Path) -> tuple[Proc, str]:
        db = str(tmp_path / "central.sqlite3")
        proc = self.start("central", "central", "--host", "127.0.0.1", "--port", "0", "--db", db)
        return proc, proc.expect(r"listening (http://127\.0\.0\.1:\d+)").group(1)

    def chat(self, name: str, data_dir: Path, *args: str) -> tuple[Proc, str, str]:
        """A chat process; its key and its P2P address, from its greeting."""
        proc = self.start(name, "chat", "--data-dir", str(data_dir), *args)
        key = proc.expect(r"your key: ([0-9a-f]{64})").group(1)
        address = proc.expect(r"p2p node on (127\.0\.0\.1:\d+)").group(1)
        return proc, key, address


@pytest.fixture
def procs() -> Iterator[Procs]:
    started = Procs()
    try:
        yield started
    finally:
        for proc in started.started:
            proc.kill()


def _invite_and_accept(alice: Proc, bob: Proc, bob_key: str) -> str:
    """Alice creates `lobby` and invites bob (nickname "bob"); bob accepts. Alice's short id."""
    alice.type("/create lobby")
    alice.expect(r"^\* created lobby")
    alice.type(f"/invite {bob_key} bob")
    alice.expect(r"^\* invitation to lobby for bob")
    invitation = alice.expect(r"^railgun-invite:\S+$").group(0)
    bob.type(f"/accept {invitation} lobby")
    bob.expect(r"^\* joined lobby")
    alice.expect(r"^\* lobby: bob joined")
    alice.type("/whoami")
    return alice.expect(r"^\* you are ([0-9a-f]{8})").group(1)


def test_two_chats_create_invite_accept_and_survive_a_takedown(
    procs: Procs, tmp_path: Path
) -> None:
    central, url = procs.central(tmp_path)
    alice, _, alice_p2p = procs.chat("alice", tmp_path / "alice", "--central", url)
    bob, bob_key, _ = procs.chat(
        "bob", tmp_path / "bob", "--central", url, "--bootstrap", alice_p2p
    )
    alice_id = _invite_and_accept(alice, bob, bob_key)
    bob.type(f"/nick {alice_id[:6]} alice")
    bob.expect(rf"^\* {alice_id} is alice here")

    alice.type("hello bob")
    bob.expect(r"^\[lobby\] alice via central: hello bob$")
    bob.type("hi alice")
    alice.expect(r"^\[lobby\] bob via central: hi alice$")

    # Both find each other on the DHT, then the central process dies without a word.
    # (reach may already be all: room frames travel as datagrams, APP-1.5, and are fast)
    for proc in (alice, bob):
        reaches = [line for line in proc.seen if line.startswith("* p2p reach:")]
        if not reaches or not reaches[-1].startswith("* p2p reach: all (1 of 1 members)"):
            proc.expect(r"^\* p2p reach: all \(1 of 1 members\)")
    central.popen.send_signal(signal.SIGKILL)
    central.popen.wait(timeout=10)
    for proc in (alice, bob):
        proc.expect(r"^\* state: connected-p2p \(was connected-aws")
        proc.expect(r"^\* path: p2p$")
    alice.type("still there?")
    bob.expect(r"^\[lobby\] alice via p2p: still there\?$")
    bob.type("yes, peer to peer")
    alice.expect(r"^\[lobby\] bob via p2p: yes, peer to peer$")

    for proc in (alice, bob):
        assert proc.end_input() == 0
        assert "Traceback" not in proc.stderr()


def test_a_restarted_chat_is_the_same_member_in_the_same_rooms(
    procs: Procs, tmp_path: Path
) -> None:
    """The identity, the room and the nickname live in --data-dir (0700, identity 0600)."""
    _, url = procs.central(tmp_path)
    alice, alice_key, _ = procs.chat("alice", tmp_path / "alice", "--central", url)
    bob, bob_key, _ = procs.chat("bob", tmp_path / "bob", "--central", url)
    _invite_and_accept(alice, bob, bob_key)
    assert alice.end_input() == 0
    assert (tmp_path / "alice").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "alice" / "identity.key").stat().st_mode & 0o777 == 0o600

    again, key, _ = procs.chat("alice again", tmp_path / "alice", "--central", url)
    assert key == alice_key
    again.expect(r"^\* lobby: you and 1 other\(s\) \(current\)$")
    again.type("/members")
    again.expect(r"^\* lobby: [0-9a-f]{8} \(bob\), ")
    again.type("back again")
    assert again.end_input() == 0  # input ends at once, as a script's: sent before the exit
    bob.expect(r"^\[lobby\] [0-9a-f]{8} via central: back again$")
    assert bob.end_input() == 0


def test_a_second_chat_on_one_data_directory_is_refused(procs: Procs, tmp_path: Path) -> None:
    first, _, _ = procs.chat("first", tmp_path / "alice")
    second = procs.start("second", "chat", "--data-dir", str(tmp_path / "alice"))
    assert second.popen.wait(timeout=LINE_TIMEOUT) == 2
    (line,) = second.stderr().splitlines()
    assert (
        line == f"railgun-ref: error: {tmp_path / 'alice'} is in use by another railgun-ref"
        " chat (one data directory, one session)"
    )
    assert first.end_input() == 0


def test_ctrl_c_ends_the_session_at_once_without_a_traceback(procs: Procs, tmp_path: Path) -> None:
    chat, _, _ = procs.chat("chat", tmp_path / "alice")
    chat.expect(r"^\* /help lists the commands")
    chat.popen.send_signal(signal.SIGINT)
    assert chat.popen.wait(timeout=LINE_TIMEOUT) == 130
    assert "Traceback" not in chat.stderr()
