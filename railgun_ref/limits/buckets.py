"""Token buckets per source group and per identity (ABUSE-1).

Theory of operation:

1. A `TokenBucket` holds up to `burst` tokens and gains `rate` per second of
   `now`; an input that finds a token takes it and passes, one that finds none
   is dropped. Time only moves forward: an earlier `now` adds nothing.
2. `KeyedBuckets` keeps one bucket per key (a source group, a node id), at
   most `capacity` of them; the bucket touched longest ago is forgotten
   first. A forgotten key starts again with a full bucket, which is why the
   node also keeps one shared bucket for every source it does not know
   (`PeerLimits`): many keys cannot add up to more than that.
3. `PeerLimits` is the node's policy (ABUSE-1.1..1.4): a datagram or stream
   message passes the bucket of its source group *before* it is decoded (so a
   flood costs a dict lookup, not a signature check), and a source that is not
   a known contact also passes the shared bucket of unknown sources; after
   authentication the sender's identity passes its own bucket. Known contacts
   (in the routing table at that address) skip the shared bucket, so a flood
   from elsewhere cannot crowd them out (ABUSE-1.3).
"""

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

from railgun_ref.core.errors import LocalProtocolError

K = TypeVar("K", bound=Hashable)


class LimitReason(StrEnum):
    """Why an input was dropped by a limit (the label of ``limits.dropped``)."""

    SOURCE = "source"  #: its source group's bucket was empty
    UNKNOWN_SOURCES = "unknown_sources"  #: the shared bucket of unknown sources was empty
    IDENTITY = "identity"  #: its sender's bucket was empty


@dataclass(frozen=True, slots=True, kw_only=True)
class Rate:
    """A sustained `rate` (per second) with bursts of up to `burst`."""

    rate: float
    burst: float

    def __post_init__(self) -> None:
        if not (self.rate > 0 and self.burst >= 1):
            raise LocalProtocolError("a rate must be positive and a burst at least 1")


class TokenBucket:
    __slots__ = ("_last", "_rate", "tokens")

    def __init__(self, rate: Rate, *, now: float) -> None:
        self._rate = rate
        self.tokens = rate.burst
        self._last = now

    def take(self, *, now: float, amount: float = 1.0) -> bool:
        """Take `amount` tokens if the bucket holds them at `now`."""
        if now > self._last:
            elapsed = now - self._last
            self.tokens = min(self._rate.burst, self.tokens + elapsed * self._rate.rate)
            self._last = now
        if self.tokens >= amount:
            self.tokens -= amount
            return True
        return False


class KeyedBuckets(Generic[K]):
    """One `TokenBucket` per key, at most `capacity` keys (least recently used forgotten)."""

    __slots__ = ("_buckets", "_capacity", "_rate")

    def __init__(self, rate: Rate, *, capacity: int) -> None:
        if capacity < 1:
            raise LocalProtocolError("capacity must be at least 1")
        self._rate = rate
        self._capacity = capacity
        self._buckets: OrderedDict[K, TokenBucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: K, *, now: float) -> bool:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self._rate, now=now)
            if len(self._buckets) > self._capacity:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket.take(now=now)


@dataclass(frozen=True, slots=True, kw_only=True)
class LimitsConfig:
    """Per-peer limits of a node (ABUSE-1, ABUSE-2); each field names its clause."""

    #: ABUSE-1.1: datagrams per second from one source group (IPv4 /24, loopback endpoint).
    datagram_source: Rate = Rate(rate=200.0, burst=400.0)
    #: ABUSE-1.1: stream messages per second from one source group.
    stream_source: Rate = Rate(rate=200.0, burst=400.0)
    #: ABUSE-1.1: authenticated inputs per second from one identity, any source.
    identity: Rate = Rate(rate=200.0, burst=400.0)
    #: ABUSE-1.3: inputs per second from every source that is not a known contact, together.
    unknown_sources: Rate = Rate(rate=2000.0, burst=4000.0)
    #: Keys remembered per kind of bucket.
    capacity: int = 8192
    #: ABUSE-1.2: group loopback addresses by IP (model hosts as 127.0.0.x) rather than endpoint.
    loopback_hosts: bool = False
    #: ABUSE-2.1: validate source addresses with cookies before any reply larger than its request.
    address_validation: bool = True
    #: ABUSE-2.3: seconds an address stays validated after its last proof.
    validated_for: float = 3600.0
    #: ABUSE-2.2: seconds a cookie is issued under one epoch (accepted for two).
    cookie_epoch: float = 120.0
    #: ABUSE-2.3: validated addresses remembered (least recently proved forgotten first).
    validated_capacity: int = 65536

    def __post_init__(self) -> None:
        if self.capacity < 1 or self.validated_capacity < 1:
            raise LocalProtocolError("capacities must be at least 1")
        if not (self.validated_for > 0 and self.cookie_epoch > 0):
            raise LocalProtocolError("validated_for and cookie_epoch must be positive")
