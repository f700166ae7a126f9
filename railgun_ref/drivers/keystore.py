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

Key rotation (ID-3.3, ROT-5): generation *g* >= 1 of the identity at ``path``
lives in ``path.g`` (``identity.key.1``, ``identity.key.2``, ...), created
like any key file, so rotating never rewrites a key: the newest generation
is the identity, the older files stay until the handover out of them has
expired (`prune_retired`), and a crash mid-rotation leaves either the old
identity or a complete new generation.
"""

import errno
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from railgun_ref.drivers.sqlite import make_private_directory
from railgun_ref.identity.keyfile import (
    KeyFileError,
    KeyGeneration,
    dump_generation,
    dump_identity,
    load_generation,
    load_identity,
)
from railgun_ref.identity.keys import Identity, RandomBytes
from railgun_ref.identity.rotation import DEFAULT_HANDOVER, Handover, sign_handover

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
    if _rotated(path):
        return load_keyring(path).current
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
    data = _read(path)
    try:
        return load_identity(data)
    except KeyFileError as exc:
        raise KeyFileError(f"{path}: {exc}") from exc


def _read(path: Path) -> bytes:
    """The bytes of a key file, after the checks of the invariants above."""
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
    return data


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyRing:
    """ID-3.3: the generations of one identity found on disk, oldest first."""

    generations: tuple[KeyGeneration, ...]

    @property
    def current(self) -> Identity:
        return self.generations[-1].identity

    @property
    def generation(self) -> int:
        return self.generations[-1].generation

    @property
    def handovers(self) -> tuple[Handover, ...]:
        return tuple(g.handover for g in self.generations if g.handover is not None)


def generation_path(path: Path, generation: int) -> Path:
    """ID-3.3: where generation `generation` of the identity at `path` lives."""
    return path if generation == 0 else path.with_name(f"{path.name}.{generation}")


def _rotated(path: Path) -> list[int]:
    """The generations >= 1 present next to `path`, ascending."""
    if not path.parent.is_dir():
        return []
    prefix = path.name + "."
    found = [
        int(entry.name[len(prefix) :])
        for entry in path.parent.iterdir()
        if entry.name.startswith(prefix) and entry.name[len(prefix) :].isdigit()
    ]
    return sorted(found)


def load_keyring(path: Path) -> KeyRing:
    """Every generation of the identity at `path` on disk; each handover must link the
    generation before it (when that one is still there). Raises `KeyFileError`."""
    path = Path(path)
    numbers = ([0] if path.exists() else []) + _rotated(path)
    if not numbers:
        raise KeyFileError(f"{path}: no identity file (create one by running a node with it)")
    generations: list[KeyGeneration] = []
    for number in numbers:
        where = generation_path(path, number)
        data = _read(where)
        try:
            generation = load_generation(data)
        except KeyFileError as exc:
            raise KeyFileError(f"{where}: {exc}") from exc
        if generation.generation != number:
            raise KeyFileError(f"{where}: holds generation {generation.generation}")
        previous = generations[-1] if generations else None
        handover = generation.handover
        if previous is not None and previous.generation == number - 1:
            assert handover is not None
            if handover.old_key != previous.identity.public_key:
                raise KeyFileError(f"{where}: its handover is not from generation {number - 1}")
        generations.append(generation)
    return KeyRing(generations=tuple(generations))


def rotate_identity(
    path: Path,
    random_bytes: RandomBytes = os.urandom,
    *,
    now: float,
    handover_seconds: float = DEFAULT_HANDOVER,
) -> tuple[Identity, Handover]:
    """ROT-5.1: make generation g + 1 of the identity at `path` with a handover valid for
    `handover_seconds`; returns the new identity and the handover. Never overwrites a file;
    raises `KeyFileError` if there is no identity or a concurrent rotation won."""
    path = Path(path)
    ring = load_keyring(path)
    new = Identity.generate(random_bytes)
    issued_ms = int(now * 1000)
    handover = sign_handover(
        ring.current,
        new,
        generation=ring.generation + 1,
        issued_ms=issued_ms,
        expires_ms=issued_ms + int(handover_seconds * 1000),
    )
    target = generation_path(path, handover.generation)
    if not _create(target, dump_generation(new, handover)):
        raise KeyFileError(f"{target} already exists: another rotation happened meanwhile")
    return new, handover


def prune_retired(path: Path, *, now: float) -> list[Path]:
    """ROT-5.2: delete, oldest first, the files of generations whose handover out of them has
    expired; stop at the first that is still needed (its key still signs the forwarding
    record, and the next file holds the handover it needs)."""
    ring = load_keyring(Path(path))
    now_ms = int(now * 1000)
    removed: list[Path] = []
    for older, newer in zip(ring.generations, ring.generations[1:], strict=False):
        handover = newer.handover
        if newer.generation != older.generation + 1 or handover is None:
            break
        if handover.expires_ms > now_ms:
            break
        where = generation_path(Path(path), older.generation)
        where.unlink()
        removed.append(where)
    if removed:
        _fsync_directory(Path(path).parent)
    return removed


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
