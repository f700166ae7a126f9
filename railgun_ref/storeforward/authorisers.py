"""`StoreAuthoriser`s (SF-3.5): who may store for the recipient behind a rendezvous key.

* `RoomProofAuthoriser`: the one deployed nodes run. The proof is the
  deterministic CBOR ``[store public key, signature]`` (SF-3.5): the store
  key of the rendezvous (SF-1.5, derived from the room secret, so only
  members can sign with it) must give the rendezvous key (SF-1.3), and its
  signature must verify over ``"railgun/v1/sf-store-proof" || 0x00 ||
  sender NodeId || rendezvous key``. The holder so checks that the sender
  knows the recipient's room secret without learning the room, the
  recipient or the members; like a room record's proof (ROOM-6.5) it cannot
  tell a removed member that kept the secret from a member.
* `MemberSetAuthoriser`: a sender may store if its NodeId is in a member
  set the holder knows (tests, and a holder that is itself a member).
* `VectorAuthoriser`: the rule the conformance vectors and the benchmark
  use, defined so another implementation can reproduce it: the proof MUST
  be ``SHA-256("railgun/v1/sf-vector-proof" || 0x00 || sender NodeId ||
  rendezvous key)``. It proves nothing (anyone can compute it); it only
  lets vectors tell an authorised store from one that is not.
"""

import hashlib
from dataclasses import dataclass
from typing import Final

from railgun_ref.core import cbor
from railgun_ref.core.constants import PUBLIC_KEY_SIZE, SIGNATURE_SIZE
from railgun_ref.core.errors import ErrorCode, RemoteProtocolError
from railgun_ref.core.ids import NodeId
from railgun_ref.identity.keys import Identity, public_key_problem, verify
from railgun_ref.storeforward.rendezvous import key_of_store_key, store_identity

VECTOR_PROOF_DOMAIN: Final = b"railgun/v1/sf-vector-proof\x00"
#: SF-3.5: the domain of the store key's signature in a room proof.
STORE_PROOF_DOMAIN: Final = b"railgun/v1/sf-store-proof\x00"


def vector_proof(sender: NodeId, rendezvous_key: bytes) -> bytes:
    """The proof `VectorAuthoriser` accepts from `sender` for `rendezvous_key`."""
    return hashlib.sha256(VECTOR_PROOF_DOMAIN + sender + rendezvous_key).digest()


def room_store_proof(rendezvous: bytes, sender: NodeId) -> bytes:
    """SF-3.5: the proof a member `sender` shows to store under `rendezvous` (a rendezvous id)."""
    store_key: Identity = store_identity(rendezvous)
    key = key_of_store_key(store_key.public_key)
    signature = store_key.sign(STORE_PROOF_DOMAIN + sender + key)
    return cbor.encode([store_key.public_key, signature])


def store_key_of_proof(proof: bytes) -> bytes:
    """The store public key a room proof names; `RemoteProtocolError` if it is not one."""
    value = cbor.decode(proof)
    if (
        type(value) is not list
        or len(value) != 2
        or type(value[0]) is not bytes
        or len(value[0]) != PUBLIC_KEY_SIZE
        or type(value[1]) is not bytes
        or len(value[1]) != SIGNATURE_SIZE
    ):
        raise RemoteProtocolError(ErrorCode.MALFORMED, "a store proof is [key, signature]")
    return value[0]


@dataclass(frozen=True, slots=True)
class RoomProofAuthoriser:
    """SF-3.5: accepts a sender that signs with the rendezvous key's store key (see above)."""

    def may_store(self, sender: NodeId, rendezvous_key: bytes, proof: bytes, *, now: float) -> bool:
        try:
            store_key = store_key_of_proof(proof)
        except RemoteProtocolError:
            return False
        if public_key_problem(store_key) is not None or key_of_store_key(store_key) != (
            rendezvous_key
        ):
            return False
        signature = cbor.decode(proof)[1]
        return verify(store_key, STORE_PROOF_DOMAIN + sender + rendezvous_key, signature)


@dataclass(frozen=True, slots=True)
class VectorAuthoriser:
    """SF-3.5, vectors only: accepts exactly the `vector_proof` of the sender and key."""

    def may_store(self, sender: NodeId, rendezvous_key: bytes, proof: bytes, *, now: float) -> bool:
        return proof == vector_proof(sender, rendezvous_key)


@dataclass(frozen=True, slots=True)
class MemberSetAuthoriser:
    """SF-3.5: accepts senders in `members` (the room's members as the holder knows them)."""

    members: frozenset[NodeId]

    def may_store(self, sender: NodeId, rendezvous_key: bytes, proof: bytes, *, now: float) -> bool:
        return sender in self.members
