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
"""

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import nacl.bindings
import nacl.exceptions
import nacl.signing

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
    _signer: nacl.signing.SigningKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.seed) != SEED_SIZE:
            raise LocalProtocolError(f"an Ed25519 seed is {SEED_SIZE} bytes")
        signer = nacl.signing.SigningKey(self.seed)
        public_key = bytes(signer.verify_key)
        object.__setattr__(self, "_signer", signer)
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
        signature: bytes = self._signer.sign(message).signature
        return signature
