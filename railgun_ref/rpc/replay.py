"""Freshness and replay protection (ENV-2.3, ENV-2.4).

An envelope is fresh if its timestamp is within `max_skew` seconds of the
receiver's clock. A fresh envelope is remembered by (sender key, type,
request id) until it could no longer be fresh; seeing the same triple again
in that time is a replay. Memory is bounded: triples that can no longer be
fresh are forgotten first, and when more than `capacity` still-fresh triples
are remembered the one that stops being fresh soonest is forgotten, so a
replay can only slip through if more than `capacity` envelopes are fresh at
once; the node counts such evictions (`replay.evicted`).

Expiries live in a heap beside the table, one heap entry per remembered
triple (a triple enters both or neither and leaves both at once): expiry
does not follow arrival order, since each sender stamps its own clock.
"""

import heapq

from railgun_ref.core.constants import MAX_CLOCK_SKEW
from railgun_ref.core.errors import ErrorCode, RemoteProtocolError


class ReplayGuard:
    def __init__(self, *, max_skew: float = MAX_CLOCK_SKEW, capacity: int = 65536) -> None:
        self._max_skew = max_skew
        self._capacity = capacity
        self._seen: dict[tuple[bytes, int, int], float] = {}
        self._expiries: list[tuple[float, tuple[bytes, int, int]]] = []
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
        key = (sender_key, msg_type, request_id)
        if key in self._seen:
            raise RemoteProtocolError(ErrorCode.REPLAY, "envelope already seen")
        # It can be replayed while still fresh, i.e. until sent_at + max_skew.
        expiry = sent_at + self._max_skew
        self._seen[key] = expiry
        heapq.heappush(self._expiries, (expiry, key))
        if len(self._seen) > self._capacity:
            _, soonest = heapq.heappop(self._expiries)
            del self._seen[soonest]
            self.evicted += 1

    def _forget_until(self, now: float) -> None:
        while self._expiries and self._expiries[0][0] < now:
            _, key = heapq.heappop(self._expiries)
            del self._seen[key]
