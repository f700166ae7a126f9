"""One sharing budget for every duty a device does for others (CAP-7.x).

`CapacitySharing` (CAP-5) enforces ``maxUploadShare`` and ``maxRelayConnections``;
`SharingBudget` puts every duty that spends them behind that one object, so
relaying (committee relays), bridging (HT-6.5), store-and-forward holding and
peer-hosted TURN draw on the same token bucket and the same connection slots
instead of each getting the full share. Each request names its `Duty`; grants
and refusals are counted per duty (`BudgetCounter`, labelled by `Duty`), and a
refusal is the `CapacitySharing` value itself (kind, limit, use, retry-after),
so the caller can say why on the wire (ERROR QUOTA, CAP-5.4).

Connections are held under ``(duty, key)``, so two duties can use the same key
(a peer id) without colliding, and `close` frees exactly what `open` took.
Sans-IO: time is the caller's ``now``.
"""

from collections.abc import Hashable
from enum import StrEnum

from railgun_ref.capacity.sharing import (
    BandwidthRefused,
    CapacitySharing,
    ConnectionsRefused,
    Granted,
    Refusal,
    SharingDisabled,
)
from railgun_ref.core.counters import Counters


class Duty(StrEnum):
    """CAP-7.1: what a device spends its shared capacity on."""

    RELAY = "relay"  #: a committee relay forwarding a room's ciphertext
    BRIDGE = "bridge"  #: a room member relaying for members others cannot reach
    STORAGE = "storage"  #: holding and handing out store-and-forward messages
    TURN = "turn"  #: a peer-hosted TURN allocation


class BudgetCounter(StrEnum):
    """Counters of `SharingBudget` (label: the `Duty`)."""

    BYTES_GRANTED = "bytes.granted"  #: bytes of upload granted
    REFUSED_BANDWIDTH = "refused.bandwidth"  #: requests over the token bucket
    REFUSED_CONNECTIONS = "refused.connections"  #: requests over the connection limit
    REFUSED_DISABLED = "refused.disabled"  #: requests while sharing is off
    CONNECTIONS_OPENED = "connections.opened"
    CONNECTIONS_CLOSED = "connections.closed"


_REFUSAL_COUNTERS: dict[type, BudgetCounter] = {
    BandwidthRefused: BudgetCounter.REFUSED_BANDWIDTH,
    ConnectionsRefused: BudgetCounter.REFUSED_CONNECTIONS,
    SharingDisabled: BudgetCounter.REFUSED_DISABLED,
}


class SharingBudget:
    """CAP-7.1: the device's `CapacitySharing`, shared by every `Duty`, counted per duty."""

    def __init__(self, sharing: CapacitySharing) -> None:
        self.sharing = sharing
        self.counters: Counters[BudgetCounter] = Counters()
        self._open: dict[Duty, int] = {duty: 0 for duty in Duty}

    def bandwidth(self, duty: Duty, size: int, *, now: float) -> Granted | Refusal:
        """CAP-7.2: spend `size` bytes of shared upload on `duty` at `now`, or say why not."""
        decision = self.sharing.request_bandwidth(size, now=now)
        if isinstance(decision, Granted):
            self.counters.inc(BudgetCounter.BYTES_GRANTED, size, label=duty)
        else:
            self.counters.inc(_REFUSAL_COUNTERS[type(decision)], label=duty)
        return decision

    def open(self, duty: Duty, key: Hashable) -> Granted | Refusal:
        """CAP-7.2: take one relay connection slot for `duty` under `key`, or say why not."""
        decision = self.sharing.open_relay_connection((duty, key))
        if isinstance(decision, Granted):
            self._open[duty] += 1
            self.counters.inc(BudgetCounter.CONNECTIONS_OPENED, label=duty)
        else:
            self.counters.inc(_REFUSAL_COUNTERS[type(decision)], label=duty)
        return decision

    def close(self, duty: Duty, key: Hashable) -> None:
        """Free the slot `open(duty, key)` took; closing one not open is the caller's bug."""
        self.sharing.close_relay_connection((duty, key))
        self._open[duty] -= 1
        self.counters.inc(BudgetCounter.CONNECTIONS_CLOSED, label=duty)

    def connections(self, duty: Duty | None = None) -> int:
        """Slots held by `duty`, or by every duty together."""
        return sum(self._open.values()) if duty is None else self._open[duty]

    def refused(self, duty: Duty) -> int:
        """Requests of `duty` refused, whatever the limit."""
        return sum(self.counters.get_count(name, duty) for name in _REFUSAL_COUNTERS.values())
