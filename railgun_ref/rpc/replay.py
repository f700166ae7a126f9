"""Freshness and replay protection (ENV-2.3, ENV-2.4).

An envelope is fresh if its timestamp is within `max_skew` seconds of the
receiver's clock. A fresh envelope is remembered by (sender key, type,
request id) until it could no longer be fresh; seeing the same triple again
in that time is a replay. Memory is bounded: triples that can no longer be
fresh are forgotten first, and when more than `capacity` still-fresh triples
are remembered the one that stops being fresh soonest is forgotten, so a
replay can only slip through if more than `capacity` envelopes are fresh at
once; the node counts such evictions (`replay.evicted`).

Compact form (every node keeps one of these, so at simulated scale it is a
large share of memory): a triple is remembered as a 16-byte BLAKE2b digest of
its fixed-width encoding (a false "replay" needs a 128-bit collision), and its
expiry as one 32-byte string: the expiry as a big-endian IEEE 754 double, an
arrival counter, then the digest. Positive doubles order like their
big-endian bytes, so a heap of these strings pops the soonest expiry first
(the earliest arrival among equal expiries), as a heap of (expiry, triple)
pairs would, with a third of the objects. Expiry does not follow arrival
order, since each sender stamps its own clock: hence a heap.
"""

import hashlib
import heapq
import struct
from typing import Final

from railgun_ref.core.constants import MAX_CLOCK_SKEW
from railgun_ref.core.errors import ErrorCode, RemoteProtocolError

_EXPIRY: Final = struct.Struct(">dQ")  #: expiry, arrival counter
_DIGEST_SIZE: Final = 16
_TRIPLE_TAIL: Final = struct.Struct(">QQ")


def _digest(sender_key: bytes, msg_type: int, request_id: int) -> bytes:
    """16 bytes naming the triple. Type and request id are unsigned 64-bit (the envelope
    decoder checks it), so the fixed-width tail keeps distinct triples distinct."""
    tail = _TRIPLE_TAIL.pack(msg_type, request_id)
    return hashlib.blake2b(sender_key + tail, digest_size=_DIGEST_SIZE).digest()


class ReplayGuard:
    def __init__(self, *, max_skew: float = MAX_CLOCK_SKEW, capacity: int = 65536) -> None:
        self._max_skew = max_skew
        self._capacity = capacity
        #: Digests of the remembered triples. A dict, not a set: a set's table is kept
        #: sparse (a quarter to a half full), which at this size costs 100 bytes a digest.
        self._seen: dict[bytes, None] = {}
        self._expiries: list[bytes] = []  #: heap of expiry, arrival counter (16 bytes), digest
        self._arrivals = 0
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._seen)

    def check(
        self, sender_key: bytes, msg_type: int, request_id: int, timestamp_ms: int, *, now: float
    ) -> None:
        """Accept the envelope or raise STALE / REPLAY. Remembers accepted ones."""
        sent_at = timestamp_ms / 1000.0
        if abs(sent_at - now) > self._max_skew:
            raise RemoteProtocolError(
                ErrorCode.STALE, f"timestamp {sent_at - now:+.1f} s from the receiver's clock"
            )
        self._forget_until(now)
        digest = _digest(sender_key, msg_type, request_id)
        if digest in self._seen:
            raise RemoteProtocolError(ErrorCode.REPLAY, "envelope already seen")
        # It can be replayed while still fresh, i.e. until sent_at + max_skew (> 0).
        self._seen[digest] = None
        self._arrivals += 1
        entry = _EXPIRY.pack(sent_at + self._max_skew, self._arrivals) + digest
        heapq.heappush(self._expiries, entry)
        if len(self._seen) > self._capacity:
            soonest = heapq.heappop(self._expiries)
            del self._seen[soonest[_EXPIRY.size :]]
            self.evicted += 1

    def _forget_until(self, now: float) -> None:
        expiries = self._expiries
        while expiries and _EXPIRY.unpack_from(expiries[0])[0] < now:
            del self._seen[heapq.heappop(expiries)[_EXPIRY.size :]]
