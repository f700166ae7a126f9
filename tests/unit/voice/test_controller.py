"""The call controller: make-before-break, timeouts, retargeting, failures (VOICE-4, VOICE-5)."""

import pytest

from railgun_ref.core.errors import LocalProtocolError
from railgun_ref.voice import (
    TRANSITIONS,
    CallController,
    CallCounter,
    CallState,
    Connect,
    Disconnect,
    SwitchTo,
    Topology,
    Trigger,
    VoiceError,
    link,
)
from railgun_ref.voice.controller import Action

from .helpers import caps, laptop, node, server

T0 = 1000.0


def pulled(c: CallController) -> list[Action]:
    """Every action the controller has queued, oldest first (what a driver's pump takes)."""
    return list(iter(c.next_action, None))


def kinds(actions: list[Action]) -> list[str]:
    return [type(a).__name__ for a in actions]


def call_of(count: int) -> CallController:
    """A controller with `count` desktops joined and every link reported up."""
    c = CallController()
    for n in range(1, count + 1):
        c.join(node(n), caps(), now=T0 + n)
        c.links_ready(c.links_pending, now=T0 + n)
    pulled(c)
    assert c.state is CallState.ACTIVE
    return c


def test_first_participants() -> None:
    """VOICE-4.1, VOICE-4.2: one participant is a plan at once; the second waits for its link."""
    c = CallController()
    states = [c.state]
    c.join(node(1), caps(), now=T0)
    assert kinds(pulled(c)) == ["SwitchTo"]
    c.join(node(2), caps(), now=T0 + 1)
    (connect,) = pulled(c)
    assert connect == Connect(links=(link(node(1), node(2)),))
    states.append(c.state)
    assert c.plan is not None and len(c.plan.participants) == 1
    c.links_ready([(node(2), node(1))], now=T0 + 2)  # either order names the link
    assert kinds(pulled(c)) == ["SwitchTo"]
    states.append(c.state)
    assert states == [CallState.IDLE, CallState.SWITCHING, CallState.ACTIVE]


def test_make_before_break_mesh_to_sfu() -> None:
    """VOICE-4.2: new links first; the switch and the teardown only once they are up."""
    c = call_of(4)
    mesh_links = set(c.links_up)
    c.join(node(5), caps(), now=T0 + 10)
    actions = pulled(c)
    assert actions == [Connect(links=(link(node(1), node(5)),))]
    assert mesh_links <= c.links_up  # old links still carry media
    assert c.plan is not None and c.plan.topology is Topology.MESH
    c.links_ready([link(node(1), node(5))], now=T0 + 10.5)
    switch, disconnect = pulled(c)
    assert isinstance(switch, SwitchTo) and switch.plan.topology is Topology.SFU
    assert isinstance(disconnect, Disconnect)
    assert set(disconnect.links) == mesh_links - set(switch.plan.media_links())
    assert not set(disconnect.links) & set(switch.plan.media_links())


def test_timeout_switches_anyway() -> None:
    """VOICE-4.2: after switch_timeout the switch happens; the late link joins later."""
    c = call_of(4)
    c.join(node(5), caps(), now=T0 + 10)
    pulled(c)
    assert c.next_deadline() == T0 + 15
    c.on_timer(now=T0 + 14.9)
    assert pulled(c) == [] and c.state is CallState.SWITCHING
    c.on_timer(now=T0 + 15)
    assert kinds(pulled(c)) == ["SwitchTo", "Disconnect"]
    assert c.counters.get_count(CallCounter.SWITCH_TIMEOUT) == 1
    assert link(node(1), node(5)) in c.links_pending
    c.links_ready([link(node(1), node(5))], now=T0 + 16)
    assert pulled(c) == [] and link(node(1), node(5)) in c.links_up


def test_retarget_keeps_the_deadline() -> None:
    """VOICE-4.4: a change while switching asks only for new links; deadline unchanged."""
    c = call_of(5)
    c.join(node(6), caps(), now=T0 + 10)
    c.join(node(7), caps(), now=T0 + 12)
    assert pulled(c) == [
        Connect(links=(link(node(1), node(6)),)),
        Connect(links=(link(node(1), node(7)),)),
    ]
    assert c.next_deadline() == T0 + 15
    c.join(node(8), caps(), now=T0 + 13)
    c.leave(node(8), now=T0 + 13.5)
    assert kinds(pulled(c)) == ["Connect", "Disconnect"]
    c.links_ready([link(node(1), node(6)), link(node(1), node(7))], now=T0 + 14)
    (switch,) = pulled(c)
    assert isinstance(switch, SwitchTo) and len(switch.plan.participants) == 7


def test_leaver_links_close_at_once() -> None:
    """VOICE-4.3: a departed participant's links close before re-planning."""
    c = call_of(5)
    c.leave(node(1), now=T0 + 10)  # the host
    first, second = pulled(c)
    assert isinstance(first, Disconnect)
    assert all(node(1) in pair for pair in first.links) and len(first.links) == 4
    assert isinstance(second, Connect)
    assert all(node(2) in pair for pair in second.links)
    c.links_ready(c.links_pending, now=T0 + 11)
    assert kinds(pulled(c)) == ["SwitchTo"]


def test_host_failure_cooldown_and_return() -> None:
    """VOICE-5.1, VOICE-5.2: a failed host sits out, then competes as a challenger."""
    c = CallController()
    c.join(node(1), server(), now=T0)
    for n in range(2, 6):
        c.join(node(n), laptop(), now=T0 + n)
        c.links_ready(c.links_pending, now=T0 + n)
    pulled(c)
    assert c.plan is not None and c.plan.hosts == (node(1),)
    c.host_failed(node(1), now=T0 + 10)
    assert kinds(pulled(c)) == ["Disconnect", "Connect"]
    assert c.cooling_down == {node(1): T0 + 70}
    c.links_ready(c.links_pending, now=T0 + 11)
    (switch,) = pulled(c)
    assert isinstance(switch, SwitchTo) and switch.plan.hosts == (node(2),)
    assert node(1) in switch.plan.participants
    assert c.next_deadline() == T0 + 70
    c.on_timer(now=T0 + 70)
    assert kinds(pulled(c)) == ["Connect"]  # the server (100) beats a laptop (51 + 10)
    c.links_ready(c.links_pending, now=T0 + 71)
    switch, _ = pulled(c)
    assert isinstance(switch, SwitchTo) and switch.plan.hosts == (node(1),)
    assert c.next_deadline() is None


def test_late_reports_are_counted() -> None:
    """VOICE-4.6: unexpected link reports and non-host failures change nothing."""
    c = call_of(5)
    before = (c.plan, c.links_up, c.state)
    c.host_failed(node(3), now=T0 + 10)
    c.links_ready([link(node(2), node(3)), link(node(1), node(2))], now=T0 + 11)
    assert pulled(c) == []
    assert (c.plan, c.links_up, c.state) == before
    assert c.counters.get_count(CallCounter.SWITCH_COMPLETED) == 5
    assert c.counters.get_count(CallCounter.HOST_FAILED_NOT_HOST) == 1
    assert c.counters.get_count(CallCounter.LINKS_READY_UNEXPECTED) == 2
    assert c.counters.total(CallCounter.HOST_FAILED) == 0


def test_caller_errors_change_nothing() -> None:
    """VOICE-4.6: duplicate joins and unknown participants are refused."""
    c = call_of(3)
    before = (c.plan, c.links_up, c.state, dict(c.participants))
    with pytest.raises(VoiceError):
        c.join(node(2), caps(), now=T0 + 10)
    with pytest.raises(VoiceError):
        c.leave(node(9), now=T0 + 10)
    with pytest.raises(VoiceError):
        c.host_failed(node(9), now=T0 + 10)
    with pytest.raises(VoiceError):
        c.capabilities_changed(node(9), caps(), now=T0 + 10)
    with pytest.raises(VoiceError):
        c.links_ready([(node(1), node(1))], now=T0 + 10)
    assert (c.plan, c.links_up, c.state, dict(c.participants)) == before
    assert pulled(c) == []


def test_capability_change_moves_the_host() -> None:
    """VOICE-4.1: a capability change re-plans; the host moves make-before-break."""
    c = CallController()
    for n in range(1, 6):
        c.join(node(n), laptop(), now=T0 + n)
        c.links_ready(c.links_pending, now=T0 + n)
    pulled(c)
    c.capabilities_changed(node(5), caps(), now=T0 + 10)
    assert kinds(pulled(c)) == ["Connect"]
    c.links_ready(c.links_pending, now=T0 + 11)
    switch, _ = pulled(c)
    assert isinstance(switch, SwitchTo) and switch.plan.hosts == (node(5),)


def test_empty_call_returns_to_idle() -> None:
    """VOICE-4.5: the last leave ends in idle with nothing open."""
    c = call_of(3)
    for n in (1, 2, 3):
        c.leave(node(n), now=T0 + 10 + n)
    assert c.state is CallState.IDLE and c.plan is None
    assert not c.links_up and not c.links_pending and c.next_deadline() is None


def test_transition_table_is_closed() -> None:
    """VOICE-4.5: every state is in the table; a move it lacks is refused."""
    assert set(TRANSITIONS) == set(CallState)
    assert Trigger.LINKS_READY not in TRANSITIONS[CallState.ACTIVE]
    c = CallController()
    with pytest.raises(LocalProtocolError):
        c._transition(Trigger.SWITCH_TIMEOUT)
