"""Ed25519 identities, node ids and signature verification rules (ID-1..ID-3)."""

from railgun_ref.identity.keyfile import KeyFileError, dump_identity, load_identity
from railgun_ref.identity.keys import Identity, RandomBytes, node_id_of, public_key_problem, verify

__all__ = [
    "Identity",
    "KeyFileError",
    "RandomBytes",
    "dump_identity",
    "load_identity",
    "node_id_of",
    "public_key_problem",
    "verify",
]
