"""Stream connection slots: separate pools, a fair share per source, idle timeouts (ABUSE-3).

`ConnectionSlots` is a sans-IO core (`ProtocolCore[CloseConnection]`, CORE-1)
that a driver consults for every stream connection it accepts or dials.

Theory of operation:

1. Inbound and outbound connections have pools of their own (ABUSE-3.1), so
   connections others open can never take the slots this node needs to dial.
2. A connection is never refused for want of a slot (ABUSE-3.2): when its
   source group (`limits.groups`) already holds its `fair_share` of the
   inbound pool, that group's idlest connection is closed to make room; when
   the pool is full, the idlest inbound connection of all is. A connection that
   never carried a frame counts as idler than any that did. So idle
   connections cannot lock a legitimate peer out: each newcomer costs the
   idlest holder its slot, and an attacker who keeps opening connections mostly
   closes its own.
3. A connection that carried no frame either way for `idle_timeout` seconds is
   closed (ABUSE-3.3). The earliest possible expiry is kept, not recomputed on
   every frame, so activity costs O(1) and the timer scans only when due.
"""

from collections import deque
from dataclasses import dataclass
from enum import StrEnum

from railgun_ref.core.counters import Counters
from railgun_ref.core.errors import LocalProtocolError
from railgun_ref.limits.groups import Group


class CloseReason(StrEnum):
    IDLE = "idle"  #: ABUSE-3.3
    GROUP_SHARE = "group_share"  #: ABUSE-3.2: its group held its fair share
    POOL_FULL = "pool_full"  #: ABUSE-3.2: its pool was full


@dataclass(frozen=True, slots=True, kw_only=True)
class CloseConnection:
    """Close stream connection `connection` (the driver's number) for `reason`."""

    connection: int
    reason: CloseReason


class SlotCounter(StrEnum):
    CLOSED = "slots.closed"  #: connections closed by this policy, by `CloseReason`


@dataclass(frozen=True, slots=True, kw_only=True)
class SlotsConfig:
    inbound: int = 384  #: ABUSE-3.1: slots for connections peers open
    outbound: int = 128  #: ABUSE-3.1: slots for connections this node dials
    fair_share: float = 0.5  #: ABUSE-3.2: the share of the inbound pool one source group may hold
    idle_timeout: float = 60.0  #: ABUSE-3.3: seconds without a frame before a close

    def __post_init__(self) -> None:
        if self.inbound < 1 or self.outbound < 1:
            raise LocalProtocolError("each pool needs at least one slot")
        if not (0 < self.fair_share <= 1 and self.idle_timeout > 0):
            raise LocalProtocolError("need 0 < fair_share <= 1 and idle_timeout > 0")


@dataclass(slots=True)
class _Slot:
    group: Group
    inbound: bool
    last_active: float
    active: bool = False  #: carried at least one frame


class ConnectionSlots:
    """Satisfies `ProtocolCore[CloseConnection]`."""

    def __init__(self, config: SlotsConfig | None = None) -> None:
        self.config = config or SlotsConfig()
        self.counters: Counters[SlotCounter] = Counters()
        self._slots: dict[int, _Slot] = {}
        self._actions: deque[CloseConnection] = deque()
        self._next_check: float | None = None

    def __len__(self) -> int:
        return len(self._slots)

    def open(self, connection: int, group: Group, *, inbound: bool, now: float) -> None:
        """ABUSE-3.2: a connection opened; make room by closing the idlest if needed."""
        pool = [c for c, s in self._slots.items() if s.inbound == inbound]
        if inbound:
            mine = [c for c in pool if self._slots[c].group == group]
            if len(mine) >= max(1, int(self.config.fair_share * self.config.inbound)):
                self._close(self._idlest(mine), CloseReason.GROUP_SHARE)
                pool = []  # a slot is freed
        size = self.config.inbound if inbound else self.config.outbound
        if len(pool) >= size:
            self._close(self._idlest(pool), CloseReason.POOL_FULL)
        self._slots[connection] = _Slot(group=group, inbound=inbound, last_active=now)
        expiry = now + self.config.idle_timeout
        if self._next_check is None or expiry < self._next_check:
            self._next_check = expiry

    def activity(self, connection: int, *, now: float) -> None:
        """A frame went either way on `connection`."""
        slot = self._slots.get(connection)
        if slot is not None:
            slot.last_active, slot.active = now, True

    def closed(self, connection: int) -> None:
        """The driver closed `connection` (for any reason)."""
        self._slots.pop(connection, None)

    def _idlest(self, candidates: list[int]) -> int:
        return min(candidates, key=lambda c: (self._slots[c].active, self._slots[c].last_active))

    def _close(self, connection: int, reason: CloseReason) -> None:
        del self._slots[connection]
        self.counters.inc(SlotCounter.CLOSED, label=reason)
        self._actions.append(CloseConnection(connection=connection, reason=reason))

    # ------------------------------------------------------------ CORE-1

    def next_action(self) -> CloseConnection | None:
        return self._actions.popleft() if self._actions else None

    def next_deadline(self) -> float | None:
        return self._next_check

    def on_timer(self, *, now: float) -> None:
        """ABUSE-3.3: close every connection idle for `idle_timeout`."""
        timeout = self.config.idle_timeout
        for connection, slot in list(self._slots.items()):
            if now - slot.last_active >= timeout:
                self._close(connection, CloseReason.IDLE)
        oldest = min((s.last_active for s in self._slots.values()), default=None)
        self._next_check = None if oldest is None else oldest + timeout
