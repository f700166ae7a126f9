"""The call controller (VOICE-4, VOICE-5): a call's plan over time, switched make-before-break.

A `CallController` owns the participants of one call, the plan in force and,
while a change is under way, the plan being switched to. It is sans-IO: the
media driver (aiortc) feeds it events with ``now`` — `join`, `leave`,
`capabilities_changed`, `host_failed`, `links_ready`, `on_timer` — and pulls
actions one at a time with `next_action` (the core contract, CORE-1):

* `Connect(links)`: open these peer connections (each driver opens the ones it
  is an endpoint of; the controller computes the plan of the whole call, the
  same on every participant);
* `SwitchTo(plan)`: route media by `plan` from now on;
* `Disconnect(links)`: close these peer connections.

Theory of operation (make-before-break, VOICE-4.2). After every event the
call is re-planned (`plan_call` with the current or pending plan as
``previous``). If the new plan needs a link that is not up, the controller
emits `Connect` for the links not yet requested and waits in SWITCHING; the
old links keep carrying media. When the driver reports every link of the new
plan up, or ``switch_timeout`` seconds after the change began, it emits
`SwitchTo` and only then `Disconnect` for the links the new plan does not use.
A further change while switching retargets the switch without extending its
deadline. The only links torn down at once are those of a participant that
left or a host that failed (VOICE-4.3): no media can flow over them.

Invariants: a link is in at most one of ``links_up`` and ``links_pending``;
every link of the plan in force is in one of them; `Connect` never names a
link that is up or already pending; `Disconnect` never names a link the plan
in force uses. The states and their changes are the data `TRANSITIONS`;
anything else raises `LocalProtocolError`.
"""

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum, StrEnum
from types import MappingProxyType
from typing import Any, Final

from railgun_ref.capacity.types import DeviceCapabilities
from railgun_ref.core.counters import Counters
from railgun_ref.core.errors import LocalProtocolError
from railgun_ref.core.ids import NodeId
from railgun_ref.voice.topology import (
    DEFAULT_CONFIG,
    CallPlan,
    Link,
    VoiceConfig,
    VoiceError,
    link,
    plan_call,
)


class CallState(Enum):
    """VOICE-4.5: where a call's controller stands."""

    IDLE = "idle"  #: no participants, no plan
    ACTIVE = "active"  #: a plan in force, no change under way
    SWITCHING = "switching"  #: a plan in force and a new one waiting for its links


class Trigger(Enum):
    """VOICE-4.5: what moves the controller from one state to another."""

    SAME_PLAN = "same-plan"  #: re-planning gave the plan already in force or pending
    NEW_PLAN_LINKS_UP = "new-plan-links-up"  #: a new plan whose links are all up: switch now
    NEW_PLAN_NEEDS_LINKS = "new-plan-needs-links"  #: a new plan with links to open first
    LINKS_READY = "links-ready"  #: every link of the pending plan is up
    SWITCH_TIMEOUT = "switch-timeout"  #: switch_timeout passed with links still down
    CALL_EMPTY = "call-empty"  #: the last participant left


#: VOICE-4.5: the transition table; a (state, trigger) pair not listed is a bug.
TRANSITIONS: Final[Mapping[CallState, Mapping[Trigger, CallState]]] = MappingProxyType(
    {
        CallState.IDLE: MappingProxyType({Trigger.NEW_PLAN_LINKS_UP: CallState.ACTIVE}),
        CallState.ACTIVE: MappingProxyType(
            {
                Trigger.SAME_PLAN: CallState.ACTIVE,
                Trigger.NEW_PLAN_LINKS_UP: CallState.ACTIVE,
                Trigger.NEW_PLAN_NEEDS_LINKS: CallState.SWITCHING,
                Trigger.CALL_EMPTY: CallState.IDLE,
            }
        ),
        CallState.SWITCHING: MappingProxyType(
            {
                Trigger.SAME_PLAN: CallState.SWITCHING,
                Trigger.NEW_PLAN_LINKS_UP: CallState.ACTIVE,
                Trigger.NEW_PLAN_NEEDS_LINKS: CallState.SWITCHING,
                Trigger.LINKS_READY: CallState.ACTIVE,
                Trigger.SWITCH_TIMEOUT: CallState.ACTIVE,
                Trigger.CALL_EMPTY: CallState.IDLE,
            }
        ),
    }
)


class CallCounter(StrEnum):
    """What `CallController.counters` counts (the names the voice vectors record)."""

    HOST_FAILED = "host_failed"  #: VOICE-5.1: a host was reported failed and excluded
    HOST_FAILED_NOT_HOST = "host_failed.not_host"  #: ...about a node that hosts nothing: late
    LINKS_READY_UNEXPECTED = "links_ready.unexpected"  #: a link reported up crossed a change
    SWITCH_TIMEOUT = "switch.timeout"  #: VOICE-4.2: switched with links still down
    SWITCH_COMPLETED = "switch.completed"  #: media moved to a new plan


def state_diagram() -> str:
    """The Mermaid state diagram of `TRANSITIONS` (paper/spec.md VOICE-4.5 embeds it)."""
    lines = ["stateDiagram-v2", "    [*] --> idle"]
    for state, row in TRANSITIONS.items():
        for trigger, target in row.items():
            lines.append(f"    {state.value} --> {target.value}: {trigger.value}")
    return "\n".join(lines)


@dataclass(frozen=True, slots=True, kw_only=True)
class Connect:
    """Open these peer connections; report each with `CallController.links_ready`."""

    links: tuple[Link, ...]  #: sorted, normal form (`link`)

    def to_json(self) -> dict[str, Any]:
        return {"action": "connect", "links": _links_json(self.links)}


@dataclass(frozen=True, slots=True, kw_only=True)
class SwitchTo:
    """Route media by `plan` from now on."""

    plan: CallPlan

    def to_json(self) -> dict[str, Any]:
        return {"action": "switch", "plan": self.plan.to_json()}


@dataclass(frozen=True, slots=True, kw_only=True)
class Disconnect:
    """Close these peer connections: no plan uses them (or their peer is gone)."""

    links: tuple[Link, ...]  #: sorted, normal form (`link`)

    def to_json(self) -> dict[str, Any]:
        return {"action": "disconnect", "links": _links_json(self.links)}


Action = Connect | SwitchTo | Disconnect


def _links_json(links: Iterable[Link]) -> list[list[str]]:
    return [[a.hex(), b.hex()] for a, b in links]


class CallController:
    """VOICE-4: one call's plan over time, switched make-before-break (see the module doc)."""

    def __init__(self, *, config: VoiceConfig = DEFAULT_CONFIG) -> None:
        self.config = config
        self._state = CallState.IDLE
        self._participants: dict[NodeId, DeviceCapabilities] = {}
        self._active: CallPlan | None = None
        self._pending: CallPlan | None = None
        self._deadline: float | None = None
        self._up: set[Link] = set()
        self._requested: set[Link] = set()
        self._cooldown: dict[NodeId, float] = {}
        self._actions: deque[Action] = deque()
        self._counters: Counters[CallCounter] = Counters()

    # ---------------------------------------------------------------- views

    @property
    def state(self) -> CallState:
        return self._state

    @property
    def plan(self) -> CallPlan | None:
        """The plan in force: the one media follows now."""
        return self._active

    @property
    def pending(self) -> CallPlan | None:
        """The plan being switched to (SWITCHING only)."""
        return self._pending

    @property
    def participants(self) -> Mapping[NodeId, DeviceCapabilities]:
        return MappingProxyType(self._participants)

    @property
    def links_up(self) -> frozenset[Link]:
        return frozenset(self._up)

    @property
    def links_pending(self) -> frozenset[Link]:
        """Links asked for with `Connect` and not reported up yet."""
        return frozenset(self._requested)

    @property
    def cooling_down(self) -> Mapping[NodeId, float]:
        """VOICE-5.1: failed hosts and when each may host again (seconds)."""
        return MappingProxyType(dict(self._cooldown))

    @property
    def counters(self) -> Counters[CallCounter]:
        return self._counters

    def next_action(self) -> Action | None:
        """The oldest action not yet taken, or None (CORE-1.2)."""
        return self._actions.popleft() if self._actions else None

    def next_deadline(self) -> float | None:
        """When `on_timer` must next be called: the switch timeout or a cool-down's end."""
        times = list(self._cooldown.values())
        if self._deadline is not None:
            times.append(self._deadline)
        return min(times) if times else None

    # ---------------------------------------------------------------- events

    def join(self, node_id: NodeId, capabilities: DeviceCapabilities, *, now: float) -> None:
        """VOICE-4.1: `node_id` joins with the capabilities it advertises."""
        if node_id in self._participants:
            raise VoiceError(f"participant {node_id.hex()} has already joined")
        if not isinstance(capabilities, DeviceCapabilities):
            raise VoiceError("capabilities must be a DeviceCapabilities")
        self._participants[node_id] = capabilities
        try:
            self._replan(now)
        except VoiceError:
            del self._participants[node_id]
            raise

    def leave(self, node_id: NodeId, *, now: float) -> None:
        """VOICE-4.1, VOICE-4.3: `node_id` left; its links go at once."""
        self._require_participant(node_id)
        del self._participants[node_id]
        self._cooldown.pop(node_id, None)
        self._drop_links_of(node_id)
        self._replan(now)

    def capabilities_changed(
        self, node_id: NodeId, capabilities: DeviceCapabilities, *, now: float
    ) -> None:
        """VOICE-4.1: `node_id` advertised new capabilities."""
        self._require_participant(node_id)
        if not isinstance(capabilities, DeviceCapabilities):
            raise VoiceError("capabilities must be a DeviceCapabilities")
        self._participants[node_id] = capabilities
        self._replan(now)

    def host_failed(self, node_id: NodeId, *, now: float) -> None:
        """VOICE-5.1: the host `node_id` stopped forwarding: exclude it, re-elect.

        A report about a participant that hosts in neither the plan in force
        nor the pending one changes nothing and is counted
        (``host_failed.not_host``): it is late, not wrong.
        """
        self._require_participant(node_id)
        hosts = set(self._active.hosts if self._active else ())
        hosts |= set(self._pending.hosts if self._pending else ())
        if node_id not in hosts:
            self._count(CallCounter.HOST_FAILED_NOT_HOST)
            return
        self._count(CallCounter.HOST_FAILED)
        self._cooldown[node_id] = now + self.config.host_cooldown
        self._drop_links_of(node_id)
        self._replan(now)

    def links_ready(self, links: Iterable[Link], *, now: float) -> None:
        """VOICE-4.2, VOICE-4.6: the driver has these peer connections up.

        A link never asked for (or already up, or cancelled) is counted as
        ``links_ready.unexpected`` and ignored: the report crossed a change.
        """
        reported = [link(a, b) for a, b in links]
        for pair in reported:
            if pair in self._requested:
                self._requested.discard(pair)
                self._up.add(pair)
            else:
                self._count(CallCounter.LINKS_READY_UNEXPECTED)
        if self._state is CallState.SWITCHING:
            assert self._pending is not None
            if set(self._pending.media_links()) <= self._up:
                self._transition(Trigger.LINKS_READY)
                self._commit(self._pending)

    def on_timer(self, *, now: float) -> None:
        """VOICE-4.2, VOICE-5.2: the switch timeout, and cool-downs that ended."""
        if self._state is CallState.SWITCHING:
            assert self._pending is not None and self._deadline is not None
            if now >= self._deadline:
                self._count(CallCounter.SWITCH_TIMEOUT)
                self._transition(Trigger.SWITCH_TIMEOUT)
                self._commit(self._pending)
        ended = [node_id for node_id, until in self._cooldown.items() if until <= now]
        for node_id in ended:
            del self._cooldown[node_id]
        if ended and self._participants:
            self._replan(now)

    # ---------------------------------------------------------------- internals

    def _count(self, name: CallCounter) -> None:
        self._counters.inc(name)

    def _require_participant(self, node_id: NodeId) -> None:
        if node_id not in self._participants:
            raise VoiceError(f"{node_id.hex()} is not a participant of this call")

    def _transition(self, trigger: Trigger) -> None:
        target = TRANSITIONS[self._state].get(trigger)
        if target is None:
            raise LocalProtocolError(f"{trigger.value} is not allowed in {self._state.value}")
        self._state = target

    def _drop_links_of(self, node_id: NodeId) -> None:
        """VOICE-4.3: a departed or failed node's links are closed at once."""
        gone = {pair for pair in self._up | self._requested if node_id in pair}
        if gone:
            self._up -= gone
            self._requested -= gone
            self._actions.append(Disconnect(links=tuple(sorted(gone))))

    def _replan(self, now: float) -> None:
        """VOICE-4.1: plan again after an event, and start (or retarget) the switch."""
        if not self._participants:
            self._transition(Trigger.CALL_EMPTY)
            leftover = self._up | self._requested
            if leftover:
                self._actions.append(Disconnect(links=tuple(sorted(leftover))))
            self._up.clear()
            self._requested.clear()
            self._active = self._pending = None
            self._deadline = None
            return
        base = self._pending if self._pending is not None else self._active
        excluded = {n for n, until in self._cooldown.items() if until > now}
        new = plan_call(self._participants, config=self.config, previous=base, excluded=excluded)
        if base is not None and new == base:
            self._transition(Trigger.SAME_PLAN)
            return
        missing = set(new.media_links()) - self._up
        fresh = missing - self._requested
        if fresh:
            self._requested |= fresh
            self._actions.append(Connect(links=tuple(sorted(fresh))))
        if not missing:
            self._transition(Trigger.NEW_PLAN_LINKS_UP)
            self._commit(new)
            return
        self._transition(Trigger.NEW_PLAN_NEEDS_LINKS)
        self._pending = new
        if self._deadline is None:  # VOICE-4.4: a retarget does not extend the deadline
            self._deadline = now + self.config.switch_timeout

    def _commit(self, plan: CallPlan) -> None:
        """VOICE-4.2: switch media to `plan`, then close the links it does not use."""
        changed = plan != self._active
        self._active = plan
        self._pending = None
        self._deadline = None
        if changed:
            self._count(CallCounter.SWITCH_COMPLETED)
            self._actions.append(SwitchTo(plan=plan))
        stale = (self._up | self._requested) - set(plan.media_links())
        if stale:
            self._up -= stale
            self._requested -= stale
            self._actions.append(Disconnect(links=tuple(sorted(stale))))
