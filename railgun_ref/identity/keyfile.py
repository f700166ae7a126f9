"""The identity file format (ID-3). Pure encode/parse; the driver writes it.

A file is one line of ASCII: the tag ``railgun-identity-v1``, a space, and the
64 hex digits of the 32-byte Ed25519 seed, then a newline. The node id is not
stored: it is derived from the seed on load, so the file can never contradict
itself. Files are created with mode 0600 (drivers/keystore.py).

ID-3.3 (key rotation, ROT-5): a rotated identity's generation *g* >= 1 lives
in its own file, never written over the one before: one line with the tag
``railgun-identity-v2``, the generation in decimal, the seed in hex and the
handover from generation *g - 1* (ROT-1.1) in hex, separated by single
spaces. The handover must name this seed's key as its new key and *g* as
its generation.
"""

from dataclasses import dataclass
from typing import Final

from railgun_ref.core.constants import SEED_SIZE
from railgun_ref.core.errors import RemoteProtocolError
from railgun_ref.identity.keys import Identity
from railgun_ref.identity.rotation import Handover, decode_handover

KEYFILE_TAG: Final = "railgun-identity-v1"
ROTATED_TAG: Final = "railgun-identity-v2"
#: ID-3.1 Decision: the white space a reader may strip before the tag and after the seed
#: (space, tab, LF, VT, FF, CR). Python's `str.strip()` would also strip 0x1C..0x1F.
WHITE_SPACE: Final = " \t\n\x0b\x0c\r"
_HEX_DIGITS: Final = frozenset("0123456789abcdefABCDEF")


class KeyFileError(ValueError):
    """The identity file exists but cannot be read as one."""


def dump_identity(identity: Identity) -> bytes:
    return f"{KEYFILE_TAG} {identity.seed.hex()}\n".encode("ascii")


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyGeneration:
    """ID-3.3: one generation of an identity: its key and the handover that made it current."""

    identity: Identity
    generation: int
    handover: Handover | None  #: None for generation 0


def dump_generation(identity: Identity, handover: Handover) -> bytes:
    """ID-3.3: the file of a rotated generation."""
    return (
        f"{ROTATED_TAG} {handover.generation} {identity.seed.hex()} {handover.encoded.hex()}\n"
    ).encode("ascii")


def load_generation(data: bytes) -> KeyGeneration:
    """ID-3.1, ID-3.3: read either file format; raises `KeyFileError`."""
    text = _ascii(data)
    if text.startswith(KEYFILE_TAG + " "):
        return KeyGeneration(identity=load_identity(data), generation=0, handover=None)
    parts = text.split(" ")
    if len(parts) != 4 or parts[0] != ROTATED_TAG or not parts[1].isdigit():
        raise KeyFileError(f"identity file does not start with {KEYFILE_TAG!r} or {ROTATED_TAG!r}")
    identity = _identity_from_hex(parts[2])
    try:
        handover = decode_handover(bytes.fromhex(parts[3]), now_ms=0)
    except (ValueError, RemoteProtocolError) as exc:
        raise KeyFileError(f"identity handover is unreadable: {exc}") from None
    if handover.new_key != identity.public_key or handover.generation != int(parts[1]):
        raise KeyFileError("identity handover does not name this key and generation")
    return KeyGeneration(identity=identity, generation=handover.generation, handover=handover)


def _ascii(data: bytes) -> str:
    try:
        return data.decode("ascii").strip(WHITE_SPACE)
    except UnicodeDecodeError as exc:
        raise KeyFileError("identity file is not ASCII") from exc


def load_identity(data: bytes) -> Identity:
    """ID-3.1: the tag, one space and 64 hex digits, with only `WHITE_SPACE` around them."""
    text = _ascii(data)
    tag, _, hex_seed = text.partition(" ")
    if tag != KEYFILE_TAG:
        raise KeyFileError(f"identity file does not start with {KEYFILE_TAG!r}")
    return _identity_from_hex(hex_seed)


def _identity_from_hex(hex_seed: str) -> Identity:
    # Not bytes.fromhex alone: it skips white space between digit pairs, which ID-3.1 refuses.
    if len(hex_seed) != 2 * SEED_SIZE or not _HEX_DIGITS.issuperset(hex_seed):
        raise KeyFileError(f"identity seed must be {2 * SEED_SIZE} hex digits")
    return Identity.from_seed(bytes.fromhex(hex_seed))
