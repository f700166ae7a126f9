"""Two `StoreAuthoriser`s (SF-3.5) until closed rooms provide the real one.

* `MemberSetAuthoriser`: a sender may store if its NodeId is in a member
  set the holder knows (a holder that is itself a member of the room reads
  the set from the room's signed membership). The proof is not used.
* `VectorAuthoriser`: the rule the conformance vectors and the benchmark
  use, defined so another implementation can reproduce it: the proof MUST
  be ``SHA-256("railgun/v1/sf-vector-proof" || 0x00 || sender NodeId ||
  rendezvous key)``. It proves nothing (anyone can compute it); it only
  lets vectors tell an authorised store from one that is not.
"""

import hashlib
from dataclasses import dataclass
from typing import Final

from railgun_ref.core.ids import NodeId

VECTOR_PROOF_DOMAIN: Final = b"railgun/v1/sf-vector-proof\x00"


def vector_proof(sender: NodeId, rendezvous_key: bytes) -> bytes:
    """The proof `VectorAuthoriser` accepts from `sender` for `rendezvous_key`."""
    return hashlib.sha256(VECTOR_PROOF_DOMAIN + sender + rendezvous_key).digest()


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
