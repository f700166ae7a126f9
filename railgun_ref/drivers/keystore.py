"""The identity keystore: a node's Ed25519 seed in a file that survives restarts (ID-3).

The format is `identity/keyfile.py`'s; this module does the file IO around it.

Invariants:
* a key file is never overwritten: once a path holds an identity, every later
  call returns that identity or fails;
* a key file is never visible half-written: it is written to a temporary file
  in the same directory (created ``O_CREAT | O_EXCL`` with mode 0600, so no
  other user can open it even for an instant), flushed to disk, then linked
  into place with ``link(2)``, which fails instead of replacing an existing
  file; two processes racing to create the same identity both end up with the
  one that won;
* a key file that group or others can access in any way is refused rather than
  used, as ssh does for private keys: a leaked seed is a stolen identity, and
  silently "fixing" the mode would hide that it may already have been read.
"""

import errno
import os
import secrets
import stat
from pathlib import Path
from typing import Final

from railgun_ref.drivers.sqlite import make_private_directory
from railgun_ref.identity.keyfile import KeyFileError, dump_identity, load_identity
from railgun_ref.identity.keys import Identity, RandomBytes

#: Mode of a key file: read/write for its owner only.
KEY_FILE_MODE: Final = 0o600
#: Mode of directories the keystore creates for key files.
KEY_DIR_MODE: Final = 0o700
#: A key file is at most this long (the format needs 85 bytes); longer is corrupt.
_MAX_KEY_FILE_SIZE: Final = 4096


class KeyFilePermissionError(KeyFileError):
    """The identity file can be accessed by group or others, so it is not trusted."""


def load_or_create_identity(path: Path, random_bytes: RandomBytes = os.urandom) -> Identity:
    """Load the identity stored at `path`, or create it there if there is none.

    Raises `KeyFileError` if the file exists but is not an identity file, and
    `KeyFilePermissionError` (a `KeyFileError`) if its mode lets group or
    others access it. `random_bytes` makes the seed of a new identity.
    """
    path = Path(path)
    try:
        return _load(path)
    except FileNotFoundError:
        pass
    identity = Identity.generate(random_bytes)
    if _create(path, dump_identity(identity)):
        return identity
    # Another process created the file between our look and our link: use theirs.
    return _load(path)


def _load(path: Path) -> Identity:
    """Read and check the key file; FileNotFoundError if there is none."""
    fd = os.open(path, os.O_RDONLY)
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise KeyFileError(f"{path} is a directory, not an identity file")
        if not stat.S_ISREG(info.st_mode):
            raise KeyFileError(f"{path} is not a regular file")
        if info.st_mode & 0o077:
            raise KeyFilePermissionError(
                f"{path} has mode {stat.S_IMODE(info.st_mode):04o}: an identity file must be "
                f"accessible by its owner only (chmod 600 {path})"
            )
        data = os.read(fd, _MAX_KEY_FILE_SIZE + 1)
    finally:
        os.close(fd)
    if len(data) > _MAX_KEY_FILE_SIZE:
        raise KeyFileError(f"{path} is too large to be an identity file")
    try:
        return load_identity(data)
    except KeyFileError as exc:
        raise KeyFileError(f"{path}: {exc}") from exc


def _create(path: Path, data: bytes) -> bool:
    """Write `data` to `path` atomically; False if `path` appeared meanwhile."""
    directory = path.parent
    make_private_directory(directory)  # KEY_DIR_MODE, 0700
    temporary = directory / f".{path.name}.{secrets.token_hex(8)}.tmp"
    fd = os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, KEY_FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, path)  # fails if `path` exists: never overwrites
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV):
                raise
            # A file system without hard links: rename, checking first that the
            # path is still free (the race window is then only between the two calls).
            if path.exists():
                return False
            os.rename(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    _fsync_directory(directory)
    return True


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms that cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - file systems that refuse directory fsync
        pass
    finally:
        os.close(fd)
