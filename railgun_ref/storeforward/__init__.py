"""Store-and-forward (SF): messages for offline recipients, kept by k capacity-chosen peers.

Rail Gun's eight store-and-forward steps as sans-IO pieces (paper/spec.md, section SF):
rendezvous and mailbox keys (`rendezvous`), the wire messages (`messages`),
where messages go (`placement`) and the holder core that keeps, hands over,
deletes and repairs them (`holder`).
"""

from railgun_ref.storeforward.holder import (
    DEFAULT_CONFIG,
    TRANSITIONS,
    Action,
    FindHolders,
    MessageState,
    Persist,
    PublishRendezvous,
    Send,
    SfCounter,
    SfError,
    StorageHolder,
    StoreAuthoriser,
    StoredMessage,
    StoreForwardConfig,
    Tombstone,
    Trigger,
    state_diagram,
)
from railgun_ref.storeforward.placement import choose_holders
from railgun_ref.storeforward.rendezvous import (
    epoch_of,
    hkdf_sha256,
    mailbox_identity,
    pickup_epochs,
    rendezvous_id,
    rendezvous_key,
)

__all__ = [
    "DEFAULT_CONFIG",
    "TRANSITIONS",
    "Action",
    "FindHolders",
    "MessageState",
    "Persist",
    "PublishRendezvous",
    "Send",
    "SfCounter",
    "SfError",
    "StorageHolder",
    "StoreAuthoriser",
    "StoreForwardConfig",
    "StoredMessage",
    "Tombstone",
    "Trigger",
    "choose_holders",
    "epoch_of",
    "hkdf_sha256",
    "mailbox_identity",
    "pickup_epochs",
    "rendezvous_id",
    "rendezvous_key",
    "state_diagram",
]
