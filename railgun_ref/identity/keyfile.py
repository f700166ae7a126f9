"""The identity file format (ID-3). Pure encode/parse; the driver writes it.

A file is one line of ASCII: the tag ``railgun-identity-v1``, a space, and the
64 hex digits of the 32-byte Ed25519 seed, then a newline. The node id is not
stored: it is derived from the seed on load, so the file can never contradict
itself. Files are created with mode 0600 (drivers/keystore.py).
"""

from typing import Final

from railgun_ref.core.constants import SEED_SIZE
from railgun_ref.identity.keys import Identity

KEYFILE_TAG: Final = "railgun-identity-v1"


class KeyFileError(ValueError):
    """The identity file exists but cannot be read as one."""


def dump_identity(identity: Identity) -> bytes:
    return f"{KEYFILE_TAG} {identity.seed.hex()}\n".encode("ascii")


def load_identity(data: bytes) -> Identity:
    try:
        text = data.decode("ascii").strip()
    except UnicodeDecodeError as exc:
        raise KeyFileError("identity file is not ASCII") from exc
    tag, _, hex_seed = text.partition(" ")
    if tag != KEYFILE_TAG:
        raise KeyFileError(f"identity file does not start with {KEYFILE_TAG!r}")
    try:
        seed = bytes.fromhex(hex_seed)
    except ValueError as exc:
        raise KeyFileError("identity seed is not hex") from exc
    if len(seed) != SEED_SIZE:
        raise KeyFileError(f"identity seed must be {SEED_SIZE} bytes, got {len(seed)}")
    return Identity.from_seed(seed)
