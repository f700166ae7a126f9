"""Shared pieces of the store-and-forward tests: identities, keys, signed requests."""

from typing import Final

from railgun_ref.core.ids import NodeId
from railgun_ref.identity.keys import Identity
from railgun_ref.storeforward import StorageHolder, StoreForwardConfig, rendezvous
from railgun_ref.storeforward import messages as m
from railgun_ref.storeforward.authorisers import VectorAuthoriser, vector_proof

T0: Final = 1_700_000_000.0
SECRET: Final = b"room-secret-0123456789abcdef"
SENDER: Final = Identity.from_seed(bytes([1]) * 32)
OTHER_SENDER: Final = Identity.from_seed(bytes([2]) * 32)
RECIPIENT: Final = Identity.from_seed(bytes([3]) * 32)
HOLDER: Final = NodeId(bytes([9]) * 32)
EPOCH: Final = rendezvous.epoch_of(T0)
RID: Final = rendezvous.rendezvous_id(SECRET, RECIPIENT.node_id, EPOCH)
KEY: Final = rendezvous.rendezvous_key(SECRET, RECIPIENT.node_id, EPOCH)
MAILBOX: Final = rendezvous.mailbox_identity(RECIPIENT.seed, RID)
STRANGER_MAILBOX: Final = Identity.from_seed(bytes([4]) * 32)


def holder(config: StoreForwardConfig | None = None, *, now: float = T0) -> StorageHolder:
    return StorageHolder(
        HOLDER, authoriser=VectorAuthoriser(), config=config or StoreForwardConfig(), now=now
    )


def store(
    n: int = 1,
    *,
    sender: Identity = SENDER,
    now: float = T0,
    ttl: float = 86_400.0,
    size: int = 256,
    proof: bytes | None = None,
    key: bytes = KEY,
) -> m.StoreRequest:
    return m.sign_store(
        sender,
        request_id=n,
        timestamp_ms=int(now * 1000),
        rendezvous_key=key,
        mailbox_key=MAILBOX.public_key,
        expires_ms=int((now + ttl) * 1000),
        ciphertext=bytes([n % 256]) * size,
        proof=vector_proof(sender.node_id, key) if proof is None else proof,
    )


def drain(h: StorageHolder) -> list[object]:
    out: list[object] = []
    while (action := h.next_action()) is not None:
        out.append(action)
    return out
