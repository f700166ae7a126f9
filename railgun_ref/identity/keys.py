"""Ed25519 identities and the exact verification rules of ID-2.

Ed25519 libraries disagree on edge cases (Chalkias et al., "Taming the many
EdDSAs", 2020). This module fixes one behaviour and states it as spec clauses:

* ID-2.1: a public key is 32 bytes and a signature 64 bytes.
* ID-2.2: the public key A MUST be a canonical encoding (y < p) of a curve
  point that does not have small order. Mixed-order keys are accepted.
* ID-2.3: R MUST NOT encode a small-order point.
* ID-2.4: S MUST be canonical: S < L.
* ID-2.5: the equation is the cofactorless one, checked on encodings:
  encode([S]B - [k]A) == R, with k = SHA-512(R || A || M) mod L.

libsodium (what PyNaCl wraps) implements exactly these rules in its default
build; the cheap checks of ID-2.2..2.4 are repeated here anyway so the rules
do not silently change with the bundled library version.

Fast crypto (simulator only): `set_crypto_mode(CryptoMode.FAST)` makes `sign`
return a 64-byte BLAKE2b hash of the message keyed with the signer's public
key, and `verify` recompute it. Sizes, wire bytes and every accept/reject of an
honestly built message stay the same; nothing is secret any more, so it is a
stand-in for large simulations where every node is honest, never for a real
node. Only the simulator driver switches it (`drivers.sim.crypto_mode`), and
only for the extent of one run; conformance vectors are always made with
real Ed25519.
"""

import functools
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

import nacl.bindings
import nacl.exceptions

from railgun_ref.core.constants import PUBLIC_KEY_SIZE, SEED_SIZE, SIGNATURE_SIZE
from railgun_ref.core.errors import LocalProtocolError
from railgun_ref.core.ids import NodeId
from railgun_ref.identity import ed25519_math

_Y_MASK: Final = (1 << 255) - 1
#: y coordinates of the eight small-order points (five distinct values),
#: computed from the curve rather than copied from a table.
_SMALL_ORDER_Y: Final = ed25519_math.small_order_y_values()

#: A source of random bytes, injected so keys are reproducible in vectors.
RandomBytes = Callable[[int], bytes]


class CryptoMode(StrEnum):
    """How signatures are made and checked in this process (see the module docstring)."""

    REAL = "real"  #: Ed25519 under ID-2
    FAST = "fast"  #: simulator only: a keyed hash stands in for Ed25519


#: The process-wide mode; a one-element list so it is changed in place, never rebound.
_MODE: Final[list[CryptoMode]] = [CryptoMode.REAL]


def crypto_mode() -> CryptoMode:
    return _MODE[0]


def set_crypto_mode(mode: CryptoMode) -> CryptoMode:
    """Switch the mode; returns the previous one (the simulator restores it after a run)."""
    previous, _MODE[0] = _MODE[0], mode
    return previous


def _fast_signature(public_key: bytes, message: bytes) -> bytes:
    return hashlib.blake2b(message, key=public_key, digest_size=SIGNATURE_SIZE).digest()


#: Identities whose NodeId `node_id_of` remembers: every envelope names its sender's key,
#: and one shared NodeId per peer, rather than one per datagram, is what routing tables keep.
_NODE_ID_CACHE: Final = 65536


@functools.lru_cache(maxsize=_NODE_ID_CACHE)
def node_id_of(public_key: bytes) -> NodeId:
    """ID-1.1: NodeId = SHA-256(public key)."""
    return NodeId(hashlib.sha256(public_key).digest())


def public_key_problem(public_key: bytes) -> str | None:
    """Why `public_key` breaks ID-2.1/ID-2.2, or None if it is acceptable."""
    if len(public_key) != PUBLIC_KEY_SIZE:
        return f"public key must be {PUBLIC_KEY_SIZE} bytes"
    y = int.from_bytes(public_key, "little") & _Y_MASK
    if y >= ed25519_math.P:
        return "public key is not canonically encoded (y >= p)"
    if y in _SMALL_ORDER_Y:
        return "public key has small order"
    return None


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Verify an Ed25519 signature under the rules ID-2.1..ID-2.5."""
    if len(signature) != SIGNATURE_SIZE or public_key_problem(public_key) is not None:
        return False
    if _MODE[0] is CryptoMode.FAST:
        return hmac.compare_digest(signature, _fast_signature(public_key, message))
    r_y = int.from_bytes(signature[:32], "little") & _Y_MASK
    if r_y % ed25519_math.P in _SMALL_ORDER_Y:  # ID-2.3, non-canonical R included
        return False
    if int.from_bytes(signature[32:], "little") >= ed25519_math.L:  # ID-2.4
        return False
    try:
        nacl.bindings.crypto_sign_open(signature + message, public_key)
    except (nacl.exceptions.BadSignatureError, ValueError, TypeError):
        return False
    return True


@dataclass(frozen=True, slots=True)
class Identity:
    """A node's long-term Ed25519 identity.

    Build one with `Identity.from_seed` (vectors, persistence) or
    `Identity.generate` with an injected byte source; never from a clock.
    """

    seed: bytes = field(repr=False)
    public_key: bytes = field(init=False)
    node_id: NodeId = field(init=False)
    #: libsodium's 64-byte secret key (seed || public key), what crypto_sign takes.
    _secret: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.seed) != SEED_SIZE:
            raise LocalProtocolError(f"an Ed25519 seed is {SEED_SIZE} bytes")
        public_key, secret = nacl.bindings.crypto_sign_seed_keypair(self.seed)
        object.__setattr__(self, "_secret", secret)
        object.__setattr__(self, "public_key", public_key)
        object.__setattr__(self, "node_id", node_id_of(public_key))

    @classmethod
    def from_seed(cls, seed: bytes) -> "Identity":
        return cls(bytes(seed))

    @classmethod
    def generate(cls, random_bytes: RandomBytes) -> "Identity":
        """A fresh identity from `random_bytes` (the OS CSPRNG, passed in by drivers)."""
        return cls(random_bytes(SEED_SIZE))

    def sign(self, message: bytes) -> bytes:
        """Detached Ed25519 signature (64 bytes) over `message`."""
        if _MODE[0] is CryptoMode.FAST:
            return _fast_signature(self.public_key, message)
        signed: bytes = nacl.bindings.crypto_sign(message, self._secret)
        return signed[:SIGNATURE_SIZE]
