"""Capacity sharing limits (CAP-5.x): the `capacitySharing` config, enforced.

A device shares at most ``maxUploadShare`` of its upload bandwidth and at
most ``maxRelayConnections`` relay connections with others. Both limits are
enforced here, sans-IO:

* bandwidth by a token bucket (CAP-5.2) that fills at the sharing rate and
  holds ``burst`` seconds of it; time is the caller's ``now``, and a clock
  that steps backwards never mints tokens;
* connections by a count of open relay connections, each under a key the
  caller chooses (a connection id, a peer id), so a double open or close is
  caught as the caller's bug (CAP-5.3).

Every request is answered with a `Granted` or a refusal (`BandwidthRefused`,
`ConnectionsRefused`, `SharingDisabled`): typed values that carry the limit,
the current use and, for bandwidth, when to retry, so the requester can
act on them; on the wire each becomes ERROR QUOTA (CAP-5.4) with a reason
text from `reason()`. A refusal changes no state.
"""

import math
from collections.abc import Hashable
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar, Final

from railgun_ref.capacity.types import DeviceCapabilities
from railgun_ref.core.errors import ErrorCode, LocalProtocolError


@dataclass(frozen=True, slots=True, kw_only=True)
class CapacitySharingConfig:
    """The design's ``capacitySharing`` (CAP-5.1), with its defaults."""

    enabled: bool = True  #: share at all; when false every request is refused
    max_upload_share: float = 0.5  #: fraction of uploadBandwidth shared, 0..1
    max_relay_connections: int = 20  #: relay connections open at once
    burst: float = 1.0  #: CAP-5.2: seconds of the sharing rate the bucket holds

    def __post_init__(self) -> None:
        if type(self.enabled) is not bool:
            raise LocalProtocolError("enabled must be a boolean")
        share = self.max_upload_share
        if isinstance(share, bool) or not isinstance(share, int | float):
            raise LocalProtocolError("max_upload_share must be a number")
        if not 0.0 <= share <= 1.0:  # NaN fails this too
            raise LocalProtocolError(f"max_upload_share must be within 0..1, got {share}")
        if type(self.max_relay_connections) is not int or self.max_relay_connections < 0:
            raise LocalProtocolError("max_relay_connections must be an integer >= 0")
        if isinstance(self.burst, bool) or not isinstance(self.burst, int | float):
            raise LocalProtocolError("burst must be a number of seconds")
        if not 0.0 < self.burst < math.inf:
            raise LocalProtocolError(f"burst must be positive and finite, got {self.burst}")


DEFAULT_SHARING: Final = CapacitySharingConfig()


def sharing_rate(capabilities: DeviceCapabilities, config: CapacitySharingConfig) -> int:
    """CAP-5.1: bytes/s shared: floor(upload x share), at most maxRelayBandwidth; 0 if disabled."""
    if not config.enabled:
        return 0
    share = math.floor(capabilities.upload_bandwidth * config.max_upload_share)
    return min(share, capabilities.max_relay_bandwidth)


def connection_limit(capabilities: DeviceCapabilities, config: CapacitySharingConfig) -> int:
    """CAP-5.1: relay connections allowed at once: the smaller limit; 0 if disabled."""
    if not config.enabled:
        return 0
    return min(config.max_relay_connections, capabilities.max_relay_connections)


class LimitKind(StrEnum):
    """Which limit a grant or refusal is about (CAP-5.4)."""

    BANDWIDTH = "bandwidth"
    CONNECTIONS = "connections"
    DISABLED = "disabled"


@dataclass(frozen=True, slots=True, kw_only=True)
class Granted:
    """A request within its limit: `in_use` counts it already."""

    kind: LimitKind
    requested: int  #: bytes, or 1 connection
    limit: int  #: bytes/s of the bucket's rate, or connections
    in_use: int  #: bytes of the burst spent (rounded up), or connections open


@dataclass(frozen=True, slots=True, kw_only=True)
class BandwidthRefused:
    """CAP-5.4: `requested` bytes exceed what the bucket holds now."""

    requested: int  #: bytes asked for
    limit: int  #: the sharing rate, bytes/s
    burst: int  #: the bucket's size, bytes
    available: float  #: bytes in the bucket now
    in_use: int  #: bytes of the burst spent: burst - floor(available)
    retry_after: float | None  #: seconds until the bytes are there; None: they never fit

    kind: ClassVar[LimitKind] = LimitKind.BANDWIDTH
    code: ClassVar[ErrorCode] = ErrorCode.QUOTA

    @property
    def retry_after_ms(self) -> int | None:
        """`retry_after` in whole milliseconds, rounded up (what the reason text states)."""
        return None if self.retry_after is None else math.ceil(self.retry_after * 1000)

    def reason(self) -> str:
        retry = "never" if self.retry_after_ms is None else str(self.retry_after_ms)
        return (
            f"quota bandwidth limit={self.limit} in_use={self.in_use}"
            f" requested={self.requested} retry_after_ms={retry}"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionsRefused:
    """CAP-5.4: every relay connection this device shares is taken."""

    limit: int  #: relay connections allowed at once
    in_use: int  #: relay connections open

    kind: ClassVar[LimitKind] = LimitKind.CONNECTIONS
    code: ClassVar[ErrorCode] = ErrorCode.QUOTA
    requested: ClassVar[int] = 1
    #: a slot frees when a connection closes, which no one can predict: no time to give
    retry_after: ClassVar[None] = None

    def reason(self) -> str:
        return f"quota connections limit={self.limit} in_use={self.in_use} requested=1"


@dataclass(frozen=True, slots=True, kw_only=True)
class SharingDisabled:
    """CAP-5.4: this device does not share capacity (``capacitySharing.enabled`` is false)."""

    requested: int

    kind: ClassVar[LimitKind] = LimitKind.DISABLED
    code: ClassVar[ErrorCode] = ErrorCode.QUOTA
    limit: ClassVar[int] = 0
    in_use: ClassVar[int] = 0
    retry_after: ClassVar[None] = None

    def reason(self) -> str:
        return f"quota disabled limit=0 in_use=0 requested={self.requested}"


Refusal = BandwidthRefused | ConnectionsRefused | SharingDisabled


@dataclass(frozen=True, slots=True, kw_only=True)
class BucketDecision:
    """One `TokenBucket.take`: granted or not, the bytes left, and when to retry."""

    granted: bool
    available: float  #: bytes in the bucket after the decision
    retry_after: float | None  #: None when granted, or when the request never fits


class TokenBucket:
    """CAP-5.2: a token bucket of `capacity` bytes refilled at `rate` bytes/s, full at `now`.

    The arithmetic is IEEE 754 binary64 in the order CAP-5.2 states, so every
    implementation computes the same `available` and `retry_after`.
    """

    def __init__(self, *, rate: int, capacity: int, now: float) -> None:
        if type(rate) is not int or type(capacity) is not int or rate < 0 or capacity < 0:
            raise LocalProtocolError("rate and capacity are integers >= 0")
        self.rate = rate
        self.capacity = capacity
        self._tokens = float(capacity)
        self._updated = now

    def _refill(self, now: float) -> None:
        # A clock that steps back adds nothing and leaves the mark where it was,
        # so stepping back and forth cannot mint tokens.
        if now > self._updated:
            self._tokens = min(
                float(self.capacity), self._tokens + (now - self._updated) * self.rate
            )
            self._updated = now

    def available(self, *, now: float) -> float:
        """Bytes in the bucket at `now` (refills first)."""
        self._refill(now)
        return self._tokens

    def take(self, size: int, *, now: float) -> BucketDecision:
        """Take `size` bytes if the bucket holds them at `now`; a refusal takes nothing."""
        if type(size) is not int or size < 0:
            raise LocalProtocolError("size is an integer number of bytes >= 0")
        self._refill(now)
        if size <= self._tokens:
            self._tokens -= size
            return BucketDecision(granted=True, available=self._tokens, retry_after=None)
        if size > self.capacity or self.rate == 0:
            return BucketDecision(granted=False, available=self._tokens, retry_after=None)
        return BucketDecision(
            granted=False, available=self._tokens, retry_after=(size - self._tokens) / self.rate
        )

    def resize(self, *, rate: int, capacity: int, now: float) -> None:
        """New limits from `now` on: tokens accrued so far are kept, up to the new capacity."""
        if type(rate) is not int or type(capacity) is not int or rate < 0 or capacity < 0:
            raise LocalProtocolError("rate and capacity are integers >= 0")
        self._refill(now)
        self.rate = rate
        self.capacity = capacity
        self._tokens = min(self._tokens, float(capacity))


class CapacitySharing:
    """What this device shares with others, enforced (CAP-5.1..CAP-5.4).

    Built from the device's own `DeviceCapabilities` and the sharing config;
    `update` applies new capabilities (a fresh bandwidth measurement, a
    config change) without forgetting what is in use.
    """

    def __init__(
        self,
        capabilities: DeviceCapabilities,
        config: CapacitySharingConfig = DEFAULT_SHARING,
        *,
        now: float,
    ) -> None:
        self._config = config
        rate = sharing_rate(capabilities, config)
        self._bucket = TokenBucket(rate=rate, capacity=_burst(rate, config), now=now)
        self._connection_limit = connection_limit(capabilities, config)
        self._connections: set[Hashable] = set()

    @property
    def config(self) -> CapacitySharingConfig:
        return self._config

    @property
    def rate(self) -> int:
        """CAP-5.1: bytes/s shared with others."""
        return self._bucket.rate

    @property
    def burst(self) -> int:
        """CAP-5.2: the bucket's size in bytes: floor(rate x burst seconds)."""
        return self._bucket.capacity

    @property
    def connection_limit(self) -> int:
        return self._connection_limit

    @property
    def connections_in_use(self) -> int:
        return len(self._connections)

    def available(self, *, now: float) -> float:
        """Bytes that could be granted at `now`."""
        return self._bucket.available(now=now)

    def update(
        self,
        capabilities: DeviceCapabilities,
        config: CapacitySharingConfig | None = None,
        *,
        now: float,
    ) -> None:
        """New limits from `now` on. Open connections stay open even if now over the limit."""
        if config is not None:
            self._config = config
        rate = sharing_rate(capabilities, self._config)
        self._bucket.resize(rate=rate, capacity=_burst(rate, self._config), now=now)
        self._connection_limit = connection_limit(capabilities, self._config)

    def request_bandwidth(self, size: int, *, now: float) -> Granted | Refusal:
        """CAP-5.2: spend `size` bytes of shared upload at `now`, or say why not."""
        if not self._config.enabled:
            return SharingDisabled(requested=size)
        decision = self._bucket.take(size, now=now)
        in_use = self.burst - math.floor(decision.available)
        if decision.granted:
            return Granted(kind=LimitKind.BANDWIDTH, requested=size, limit=self.rate, in_use=in_use)
        return BandwidthRefused(
            requested=size,
            limit=self.rate,
            burst=self.burst,
            available=decision.available,
            in_use=in_use,
            retry_after=decision.retry_after,
        )

    def open_relay_connection(self, key: Hashable) -> Granted | Refusal:
        """CAP-5.3: take one relay connection slot for `key`, or say why not."""
        if key in self._connections:
            raise LocalProtocolError(f"relay connection {key!r} is already open")
        if not self._config.enabled:
            return SharingDisabled(requested=1)
        if len(self._connections) >= self._connection_limit:
            return ConnectionsRefused(limit=self._connection_limit, in_use=len(self._connections))
        self._connections.add(key)
        return Granted(
            kind=LimitKind.CONNECTIONS,
            requested=1,
            limit=self._connection_limit,
            in_use=len(self._connections),
        )

    def close_relay_connection(self, key: Hashable) -> None:
        """Free the slot `key` holds; closing a key that is not open is a caller bug."""
        try:
            self._connections.remove(key)
        except KeyError:
            raise LocalProtocolError(f"relay connection {key!r} is not open") from None


def _burst(rate: int, config: CapacitySharingConfig) -> int:
    return math.floor(rate * config.burst)
