"""Identity files on disk: format (ID-3.1) and protection (ID-3.2), through the keystore."""

import os
import re
import stat
from pathlib import Path

import pytest

from railgun_ref.drivers.keystore import KeyFilePermissionError, load_or_create_identity
from railgun_ref.identity.keyfile import dump_identity

pytestmark = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")

_FORMAT = re.compile(rb"railgun-identity-v1 [0-9a-f]{64}\n")


@pytest.mark.clause("ID-3.1", "ID-3.2")
def test_created_file_is_owner_only_and_exactly_the_format(tmp_path: Path) -> None:
    """ID-3.2: a new identity file has mode 0600, its directory 0700; ID-3.1: 85 exact bytes."""
    path = tmp_path / "keys" / "node.key"
    identity = load_or_create_identity(path, random_bytes=lambda n: bytes(range(n)))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    data = path.read_bytes()
    assert _FORMAT.fullmatch(data) and len(data) == 85
    assert data == dump_identity(identity)
    assert load_or_create_identity(path).node_id == identity.node_id


@pytest.mark.clause("ID-3.2")
@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o601, 0o610])
def test_file_others_can_access_is_refused_not_fixed(tmp_path: Path, mode: int) -> None:
    """ID-3.2: any group/other permission bit makes the file unusable, and the mode stays."""
    path = tmp_path / "node.key"
    load_or_create_identity(path, random_bytes=lambda n: b"\x07" * n)
    path.chmod(mode)
    with pytest.raises(KeyFilePermissionError):
        load_or_create_identity(path)
    assert stat.S_IMODE(path.stat().st_mode) == mode


@pytest.mark.clause("ID-3.2")
def test_existing_file_is_never_overwritten(tmp_path: Path) -> None:
    """ID-3.2: a second call with another byte source returns the stored identity."""
    path = tmp_path / "node.key"
    first = load_or_create_identity(path, random_bytes=lambda n: b"\x01" * n)
    before = path.read_bytes()
    second = load_or_create_identity(path, random_bytes=lambda n: b"\x02" * n)
    assert second.node_id == first.node_id
    assert path.read_bytes() == before
