"""The identity keystore on a real file system (drivers/keystore.py, ID-3)."""

import os
import stat
import threading
from pathlib import Path

import pytest

from railgun_ref.drivers.keystore import KeyFilePermissionError, load_or_create_identity
from railgun_ref.identity.keyfile import KeyFileError, dump_identity
from railgun_ref.identity.keys import Identity


def fixed_bytes(n: int) -> bytes:
    return bytes(range(n))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_identity_is_created_with_mode_0600_in_a_0700_directory(tmp_path: Path) -> None:
    path = tmp_path / "state" / "node" / "identity"
    identity = load_or_create_identity(path, random_bytes=fixed_bytes)
    assert identity == Identity.from_seed(fixed_bytes(32))
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700 and mode(path.parent.parent) == 0o700
    assert path.read_bytes() == dump_identity(identity)
    assert os.listdir(path.parent) == ["identity"]  # no temporary file left behind


def test_a_restart_loads_the_same_identity(tmp_path: Path) -> None:
    path = tmp_path / "identity"
    first = load_or_create_identity(path)
    second = load_or_create_identity(path, random_bytes=fixed_bytes)  # not used: file exists
    assert second == first and second.node_id == first.node_id
    assert second.seed == first.seed


def test_an_existing_file_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "identity"
    original = Identity.from_seed(b"\x07" * 32)
    path.write_bytes(dump_identity(original))
    path.chmod(0o600)
    before = path.stat()
    assert load_or_create_identity(path, random_bytes=fixed_bytes) == original
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"railgun-identity-v1\n",
        b"railgun-identity-v1 " + b"zz" * 32 + b"\n",
        b"railgun-identity-v1 " + b"00" * 31 + b"\n",
        b"railgun-identity-v2 " + b"00" * 32 + b"\n",
        b"\xff\xfe not ascii",
        b"railgun-identity-v1 " + b"00" * 32 + b"\n" + b" " * 5000,
    ],
    ids=["empty", "no-seed", "not-hex", "short-seed", "wrong-tag", "not-ascii", "too-long"],
)
def test_a_corrupt_file_is_refused_and_left_as_it_was(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "identity"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(KeyFileError, match="identity"):
        load_or_create_identity(path)
    assert path.read_bytes() == content


@pytest.mark.parametrize("file_mode", [0o640, 0o604, 0o644, 0o660, 0o602, 0o610])
def test_a_file_others_can_access_is_refused(tmp_path: Path, file_mode: int) -> None:
    path = tmp_path / "identity"
    load_or_create_identity(path)
    path.chmod(file_mode)
    with pytest.raises(KeyFilePermissionError, match="chmod 600"):
        load_or_create_identity(path)
    assert issubclass(KeyFilePermissionError, KeyFileError)


def test_a_directory_in_place_of_the_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "identity"
    path.mkdir(mode=0o700)
    with pytest.raises(KeyFileError, match="directory"):
        load_or_create_identity(path)


def test_a_symlink_to_a_good_key_file_is_followed(tmp_path: Path) -> None:
    target = tmp_path / "real"
    identity = load_or_create_identity(target)
    link = tmp_path / "identity"
    link.symlink_to(target)
    assert load_or_create_identity(link) == identity


def test_concurrent_creators_all_get_the_one_identity_that_won(tmp_path: Path) -> None:
    path = tmp_path / "identity"
    start = threading.Barrier(8)
    results: list[Identity] = []

    def create(n: int) -> None:
        start.wait()
        results.append(load_or_create_identity(path, random_bytes=lambda size: bytes([n]) * size))

    threads = [threading.Thread(target=create, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(results) == 8
    assert len({identity.seed for identity in results}) == 1
    assert load_or_create_identity(path) == results[0]
    assert os.listdir(tmp_path) == ["identity"]
