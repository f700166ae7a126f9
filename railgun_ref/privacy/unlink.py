"""Sender and recipient unlinkability on the P2P path (PRIV-5).

Theory of operation
===================

1. **Transport keys** (PRIV-5.1). The key that signs a node's envelopes on the
   P2P path is not its E2EE identity: it is an Ed25519 key derived for each
   epoch, ``seed_e = SHA-256("railgun/v1/transport-key" || 0 || identity seed
   || epoch as u64 big-endian)``, epoch = floor(now / epoch_s). Only the
   holder of the identity seed can derive or link the keys; a relay, bridge
   or network observer sees an id that changes every epoch and matches no
   identity it knows.
2. **Sealed sender** (PRIV-5.2). Who wrote a room message is stated only
   inside the E2EE ciphertext (ROOM-1.2: the inner message carries the
   sender's key and signature). Nothing outside it names the sender.
3. **Blinded relay targets** (PRIV-5.3). A request to a bridge names the
   members to relay to by 16-byte tags ``SHA-256("railgun/v1/relay-tag" || 0 ||
   room secret || message id || member key)[:16]``, which only a holder of the
   room secret resolves, and which differ for every message.
4. **Receipts** (PRIV-5.4). Delivery receipts are batched per destination and
   sent after a random delay uniform in ``[min_delay_s, max_delay_s]`` from
   the first receipt of the batch, so a receipt's timing does not point at
   the message that caused it (Martiny et al., "Improving Signal's Sealed
   Sender", NDSS 2021, linked sealed-sender users in about five messages from
   receipt timing).
"""

import hashlib
import random
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from railgun_ref.core.counters import Counters
from railgun_ref.core.errors import LocalProtocolError
from railgun_ref.identity.keys import Identity

_TRANSPORT_DOMAIN: Final = b"railgun/v1/transport-key\x00"
_RELAY_TAG_DOMAIN: Final = b"railgun/v1/relay-tag\x00"
#: PRIV-5.1: a transport key lives this long (seconds).
TRANSPORT_EPOCH_S: Final = 3600.0
RELAY_TAG_SIZE: Final = 16


def epoch_of(now: float, epoch_s: float = TRANSPORT_EPOCH_S) -> int:
    """PRIV-5.1: the transport-key epoch of time `now`."""
    if now < 0 or epoch_s <= 0:
        raise LocalProtocolError("now >= 0 and epoch_s > 0")
    return int(now // epoch_s)


def transport_key(identity: Identity, epoch: int) -> Identity:
    """PRIV-5.1: the transport signing key of `identity` for `epoch`."""
    if not 0 <= epoch < 2**64:
        raise LocalProtocolError("an epoch is an unsigned 64-bit integer")
    seed = hashlib.sha256(_TRANSPORT_DOMAIN + identity.seed + epoch.to_bytes(8, "big")).digest()
    return Identity.from_seed(seed)


def relay_tag(room_secret: bytes, message_id: bytes, member_key: bytes) -> bytes:
    """PRIV-5.3: the blinded name of `member_key` in a relay request for `message_id`."""
    digest = hashlib.sha256(_RELAY_TAG_DOMAIN + room_secret + message_id + member_key).digest()
    return digest[:RELAY_TAG_SIZE]


def resolve_relay_tags(
    tags: Iterable[bytes], *, room_secret: bytes, message_id: bytes, members: Sequence[bytes]
) -> list[bytes]:
    """PRIV-5.3: the member keys the tags name (tags naming no member are ignored)."""
    by_tag = {relay_tag(room_secret, message_id, key): key for key in members}
    return [by_tag[tag] for tag in tags if tag in by_tag]


class ReceiptCounter(StrEnum):
    QUEUED = "receipts.queued"
    BATCH_SENT = "receipts.batch_sent"


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceiptBatcherConfig:
    """PRIV-5.4: receipt batching (seconds)."""

    min_delay_s: float = 5.0
    max_delay_s: float = 30.0
    max_batch: int = 64  #: a batch this full goes at once

    def __post_init__(self) -> None:
        if not 0 <= self.min_delay_s <= self.max_delay_s or self.max_batch < 1:
            raise LocalProtocolError("0 <= min_delay_s <= max_delay_s, max_batch >= 1")


@dataclass(frozen=True, slots=True, kw_only=True)
class SendReceipts:
    """Send these receipts, in one frame, to `destination`."""

    destination: bytes
    receipts: tuple[bytes, ...]


@dataclass
class _Batch:
    due: float
    receipts: list[bytes]


class ReceiptBatcher:
    """PRIV-5.4: holds receipts per destination and releases them in delayed batches."""

    def __init__(self, config: ReceiptBatcherConfig, *, rng: random.Random) -> None:
        self.config = config
        self.counters: Counters[ReceiptCounter] = Counters()
        self._rng = rng
        self._batches: dict[bytes, _Batch] = {}
        self._actions: deque[SendReceipts] = deque()

    def add(self, destination: bytes, receipt: bytes, *, now: float) -> None:
        self.counters.inc(ReceiptCounter.QUEUED)
        batch = self._batches.get(destination)
        if batch is None:
            c = self.config
            batch = _Batch(due=now + self._rng.uniform(c.min_delay_s, c.max_delay_s), receipts=[])
            self._batches[destination] = batch
        batch.receipts.append(receipt)
        if len(batch.receipts) >= self.config.max_batch:
            self._flush(destination)

    def on_timer(self, *, now: float) -> None:
        for destination in [d for d, b in self._batches.items() if b.due <= now]:
            self._flush(destination)

    def next_deadline(self) -> float | None:
        return min((b.due for b in self._batches.values()), default=None)

    def next_action(self) -> SendReceipts | None:
        return self._actions.popleft() if self._actions else None

    def _flush(self, destination: bytes) -> None:
        batch = self._batches.pop(destination)
        self.counters.inc(ReceiptCounter.BATCH_SENT)
        self._actions.append(SendReceipts(destination=destination, receipts=tuple(batch.receipts)))
