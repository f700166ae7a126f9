"""SF-2.6: every message a holder acknowledged survives kill -9 (SQLite, a real process)."""

import os
import signal
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from railgun_ref.core.ids import NodeId
from railgun_ref.drivers.storeforward_store import SCHEMA, SqliteHolderStore
from railgun_ref.storeforward import messages as m
from railgun_ref.storeforward.authorisers import VectorAuthoriser
from railgun_ref.storeforward.holder import Persist, StorageHolder
from tests.unit.storeforward.sf import KEY, MAILBOX, T0, store

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).with_name("sf_holder_process.py")


def _start(db: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), str(db), str(T0)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def test_acknowledged_messages_survive_sigkill(tmp_path: Path) -> None:
    """SF-2.6: RESULT 0 was sent for 20 messages, then SIGKILL: all 20 are on disk, 0600."""
    db = tmp_path / "holder" / "sf.sqlite"
    proc = _start(db)
    acked: list[bytes] = []
    try:
        assert proc.stdin is not None and proc.stdout is not None
        for n in range(1, 21):
            proc.stdin.write(m.encode(store(n)).hex() + "\n")
            proc.stdin.flush()
            result = m.decode(bytes.fromhex(proc.stdout.readline().strip()))
            assert isinstance(result, m.Result) and result.status == 0
            acked.append(result.message_id)
        # one more request in flight when the process dies: kept or not, never half-kept
        proc.stdin.write(m.encode(store(21)).hex() + "\n")
        proc.stdin.flush()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    assert stat.S_IMODE(os.stat(db).st_mode) == 0o600
    saved = SqliteHolderStore(db)
    holder = saved.restore_holder(NodeId(bytes(32)), authoriser=VectorAuthoriser(), now=T0)
    assert set(acked) <= set(holder.held)
    assert all(len(s.ciphertext) == 256 for s in holder.held.values())
    pickup = m.sign_pickup(MAILBOX, request_id=1, timestamp_ms=int(T0 * 1000), rendezvous_key=KEY)
    holder.receive(m.encode(pickup), peer=NodeId(bytes(32)), now=T0)
    reply = m.decode(holder.next_action().data)  # type: ignore[union-attr]
    assert isinstance(reply, m.PickupReply) and len(reply.entries) >= 20


def test_deletions_and_tombstones_are_kept_too(tmp_path: Path) -> None:
    """SF-4.3: a tombstone survives a restart, so a replica cannot come back after one."""
    saved = SqliteHolderStore(tmp_path / "sf.sqlite")
    holder = StorageHolder(NodeId(bytes(32)), authoriser=VectorAuthoriser(), now=T0)
    request = store()
    holder.receive(m.encode(request), peer=NodeId(bytes(32)), now=T0)
    receipt = m.sign_receipt(
        MAILBOX, timestamp_ms=int(T0 * 1000), rendezvous_key=KEY, message_ids=(request.message_id,)
    )
    holder.receive(m.encode(receipt), peer=NodeId(bytes(32)), now=T0)
    while (action := holder.next_action()) is not None:
        if isinstance(action, Persist):
            saved.apply(action)
    saved.close()
    again = SqliteHolderStore(tmp_path / "sf.sqlite")
    messages, tombstones = again.load()
    assert messages == [] and [t.message_id for t in tombstones] == [request.message_id]
    restored = again.restore_holder(NodeId(bytes(32)), authoriser=VectorAuthoriser(), now=T0)
    replica = m.Replicate(
        rendezvous_key=KEY,
        mailbox_key=MAILBOX.public_key,
        expires_ms=request.expires_ms,
        ciphertext=request.ciphertext,
    )
    restored.receive(m.encode(replica), peer=NodeId(bytes(32)), now=T0 + 1)
    assert restored.held == {}


def test_store_keys_survive_a_restart_and_go_with_what_they_named(tmp_path: Path) -> None:
    """SF-3.7: a holder keeps the store keys it learned on disk, so it publishes again
    after a restart; a key under which it keeps nothing any more is forgotten."""
    path = tmp_path / "sf.sqlite"
    saved = SqliteHolderStore(path)
    holder = StorageHolder(NodeId(bytes(32)), authoriser=VectorAuthoriser(), now=T0)
    holder.receive(m.encode(store()), peer=NodeId(bytes(32)), now=T0)
    while (action := holder.next_action()) is not None:
        if isinstance(action, Persist):
            saved.apply(action)
    saved.put_store_key(KEY, b"S" * 32)
    saved.put_store_key(b"K" * 32, b"T" * 32)  # nothing is kept under this one
    saved.put_store_key(KEY, b"X" * 32)  # the first key learned stays
    saved.close()
    again = SqliteHolderStore(path)
    assert again.store_keys() == {KEY: b"S" * 32}
    again.close()
    assert SqliteHolderStore(path).store_keys() == {KEY: b"S" * 32}


def test_a_version_1_holder_file_gains_the_store_key_table(tmp_path: Path) -> None:
    """SF-2.6: a file written before store keys were kept opens, keeps its messages."""
    path = tmp_path / "sf.sqlite"
    old = sqlite3.connect(path)
    old.executescript(SCHEMA.migrations[0])
    old.execute(
        "INSERT INTO sf_messages VALUES (?, ?, ?, ?, ?)",
        (b"i" * 32, KEY, MAILBOX.public_key, int(T0 * 1000) + 1000, bytes(256)),
    )
    old.execute("PRAGMA user_version = 1")
    old.commit()
    old.close()
    opened = SqliteHolderStore(path)
    assert [s.message_id for s in opened.load()[0]] == [b"i" * 32]
    opened.put_store_key(KEY, b"S" * 32)
    assert opened.store_keys() == {KEY: b"S" * 32}
