"""voice.json: call plans and the make-before-break controller (VOICE-x).

Every vector is computed by the reference (`railgun_ref.voice`) while it is
built; each plan case also states by hand what the spec makes of it
(topology, hosts, degradation) and each script the kinds of actions a step
must produce, and the builder asserts both agree, so a regression in the
reference cannot silently rewrite the file.
"""

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final

from railgun_ref.capacity.types import DeviceCapabilities
from railgun_ref.conformance.builders.base import T0, Vectors
from railgun_ref.conformance.builders.capacity import caps_json
from railgun_ref.conformance.common import JsonObject
from railgun_ref.core import cbor
from railgun_ref.core.errors import RemoteProtocolError
from railgun_ref.core.ids import NodeId
from railgun_ref.voice import (
    CallController,
    CallPlan,
    VoiceConfig,
    VoiceError,
    participants_from_json,
    plan_call,
    stream_counts,
)
from railgun_ref.voice import signalling as sig

NOTES: Final = {
    "Signalling": "Call signalling bytes given to the decoder (VOICE-6.1).",
    "Threshold": "A participant count at, or one either side of, a topology threshold.",
    "Hysteresis": "A previous plan keeps the topology or host count (VOICE-2.2, VOICE-3.3).",
    "TieBreak": "Candidates with equal scores, ordered by NodeId (VOICE-2.3).",
    "Incumbent": "A previous host against a challenger, at and around the margin.",
    "Eligibility": "The best-scoring participant may not host (CAP-4.2, CAP-4.3).",
    "Capacity": "The stream budget or connection limit decides hosts or their number.",
    "Sticky": "Participants keep their previous host (VOICE-3.4).",
    "Degraded": "No host, or not enough capacity (VOICE-3.5).",
    "Excluded": "A failed host cooling down (VOICE-5.1).",
    "Empty": "A call with no participant.",
    "Duplicate": "The same NodeId twice.",
    "MalformedPlan": "A previous plan that breaks VOICE-1.1.",
    "MakeBeforeBreak": "New links are asked for before old ones are closed (VOICE-4.2).",
    "Timeout": "The switch timeout passes with links still down.",
    "Retarget": "A change while switching (VOICE-4.4).",
    "HostFailure": "A host reported failed, and its cool-down.",
    "LateReport": "A report that crossed a change: counted, ignored (VOICE-4.6).",
    "CallerError": "An event the controller must refuse, changing nothing (VOICE-4.6).",
}

HEADER: Final = [
    "Voice topology (VOICE-x). NodeIds are 64 hex digits; capabilities are the JSON form",
    "of CAP-1.1; 'config' is the VoiceConfig in camelCase (streamBitrateBps in bit/s,",
    "hostSwitchMargin in millipoints, hostCooldown and switchTimeout in seconds).",
    "VoicePlanTest: plan the call of 'participants' given 'previous' (a plan or null) and",
    "the participants 'excluded' from hosting. A valid test gives the 'plan' (hosts best",
    "first, assignment participant -> host), its media 'links' (sorted pairs), and per",
    "participant the 'streams' [up, down] it sends and receives at once (VOICE-3.6; times",
    "streamBitrateBps: its bandwidth). An invalid test must be refused as the caller's error.",
    "VoiceControllerTest: one call controller with 'config'; each step is an event at",
    "'now' (join, leave, capabilitiesChanged, hostFailed, linksReady, timer). 'expect'",
    "lists the actions the step produces, in order (connect / switch / disconnect), the",
    "state after it and the next deadline; a step expecting 'error' must be refused and",
    "change nothing. 'counters' are the controller's counters after the last step.",
    "VoiceSignallingDecodeTest: 'encoded' (VOICE-6.1) must decode to 'decoded' and",
    "re-encode to the same bytes, or be refused with 'expectedError' (an ErrorCode name).",
]


def _node(n: int) -> NodeId:
    return NodeId(bytes([n]) * 32)


DESKTOP: Final = caps_json()
SERVER: Final = caps_json(
    deviceClass="server",
    uploadBandwidth=12_500_000,
    maxRelayConnections=100,
    maxRelayBandwidth=6_250_000,
)  # 100 points, 781 streams
POWERFUL: Final = caps_json(deviceClass="desktop-powerful")  # 95 points
LAPTOP: Final = caps_json(
    deviceClass="laptop-plugged",
    uploadBandwidth=625_000,
    downloadBandwidth=2_500_000,
    maxRelayConnections=10,
    maxRelayBandwidth=312_500,
    natType="restricted",
    availability="when-active",
)  # 51 points, 39 streams
PHONE: Final = caps_json(deviceClass="mobile-cellular", natType="symmetric")  # never hosts
SYMMETRIC_SERVER: Final = caps_json(deviceClass="server", natType="symmetric")  # 92, cannot host
NO_CONNECTIONS_SERVER: Final = caps_json(deviceClass="server", maxRelayConnections=0)


def _people(*profiles: tuple[int, JsonObject]) -> list[JsonObject]:
    return [{"nodeId": _node(n).hex(), "capabilities": caps} for n, caps in profiles]


# ------------------------------------------------------------------ plans


@dataclass(frozen=True, slots=True, kw_only=True)
class _PlanCase:
    """One VoicePlanTest: who is in the call and what the spec makes of it.

    `previous` names an earlier case (its `name`) whose plan is the previous plan;
    `check` is an extra assertion given the plan and the earlier named plans.
    """

    comment: str
    clause: str
    flags: tuple[str, ...] = ()
    people: tuple[tuple[int, JsonObject], ...]
    topology: str
    hosts: tuple[int, ...] = ()
    degraded: str | None = None
    previous: str | None = None
    excluded: tuple[int, ...] = ()
    name: str | None = None
    check: Callable[[CallPlan, Mapping[str, CallPlan]], bool] | None = None


def _same(count: int, caps: JsonObject, first: int = 1) -> tuple[tuple[int, JsonObject], ...]:
    return tuple((n, caps) for n in range(first, first + count))


_WEAK_SERVER: Final = caps_json(deviceClass="server", maxRelayBandwidth=127_999)  # 15 streams
_SIXTEEN_SERVER: Final = caps_json(deviceClass="server", maxRelayBandwidth=128_000)
_TINY: Final = caps_json(maxRelayBandwidth=200_000)  # 25 streams: 3 of 13 at one host
_WEAK2: Final = caps_json(maxRelayBandwidth=56_000)  # 7 streams: 2 of 6 each with two hosts
_ELEVEN: Final = (*_same(10, DESKTOP), (0, DESKTOP))


def _kept_assignments(plan: CallPlan, earlier: Mapping[str, CallPlan]) -> bool:
    ten = earlier["ten"]
    return all(plan.assignment[q] == ten.assignment[q] for q in ten.participants)


PLAN_CASES: Final = (
    _PlanCase(
        comment="one participant: a mesh with no link",
        clause="VOICE-2.1",
        people=_same(1, DESKTOP),
        topology="mesh",
    ),
    _PlanCase(
        comment="two participants: one link",
        clause="VOICE-1.1",
        people=_same(2, DESKTOP),
        topology="mesh",
    ),
    _PlanCase(
        comment="four participants: the largest mesh",
        clause="VOICE-2.1",
        flags=("Threshold",),
        people=_same(4, DESKTOP),
        topology="mesh",
    ),
    _PlanCase(
        comment="five equal desktops: one host, the smallest NodeId",
        clause="VOICE-2.3",
        flags=("Threshold", "TieBreak"),
        people=_same(5, DESKTOP),
        topology="sfu",
        hosts=(1,),
        name="five",
    ),
    _PlanCase(
        comment="given in reverse order: the same plan",
        clause="VOICE-1.2",
        flags=("TieBreak",),
        people=tuple(reversed(_same(5, DESKTOP))),
        topology="sfu",
        hosts=(1,),
        check=lambda plan, earlier: plan == earlier["five"],
    ),
    _PlanCase(
        comment="a server among desktops hosts",
        clause="VOICE-2.3",
        people=(*_same(4, DESKTOP), (9, SERVER)),
        topology="sfu",
        hosts=(9,),
    ),
    _PlanCase(
        comment="the best score cannot host (symmetric NAT): the next one does",
        clause="VOICE-2.3",
        flags=("Eligibility",),
        people=((1, LAPTOP), (2, LAPTOP), (3, PHONE), (4, PHONE), (5, SYMMETRIC_SERVER)),
        topology="sfu",
        hosts=(1,),
    ),
    _PlanCase(
        comment="nine desktops: 64 streams fit one desktop's 78",
        clause="VOICE-3.3",
        flags=("Capacity",),
        people=_same(9, DESKTOP),
        topology="sfu",
        hosts=(1,),
    ),
    _PlanCase(
        comment="ten desktops: 81 streams do not fit 78, two hosts do",
        clause="VOICE-3.3",
        flags=("Capacity",),
        people=_same(10, DESKTOP),
        topology="distributed-sfu",
        hosts=(1, 2),
        name="ten",
    ),
    _PlanCase(
        comment="twelve desktops and a server: the server alone",
        clause="VOICE-2.1",
        flags=("Threshold",),
        people=(*_same(11, DESKTOP), (20, SERVER)),
        topology="sfu",
        hosts=(20,),
    ),
    _PlanCase(
        comment="thirteen with a server: at least two hosts",
        clause="VOICE-2.1",
        flags=("Threshold",),
        people=(*_same(12, DESKTOP), (20, SERVER)),
        topology="distributed-sfu",
        hosts=(20, 1),
        name="thirteen",
    ),
    _PlanCase(
        comment="thirteen desktops: three hosts",
        clause="VOICE-3.2",
        flags=("Capacity",),
        people=_same(13, DESKTOP),
        topology="distributed-sfu",
        hosts=(1, 2, 3),
    ),
    _PlanCase(
        comment="twenty desktops: five hosts of four",
        clause="VOICE-3.4",
        flags=("Capacity",),
        people=_same(20, DESKTOP),
        topology="distributed-sfu",
        hosts=(1, 2, 3, 4, 5),
        check=lambda plan, _: all(len(plan.served_by(h)) == 4 for h in plan.hosts),
    ),
    _PlanCase(
        comment="a server with no relay connections cannot host: a desktop does",
        clause="VOICE-3.2",
        flags=("Capacity",),
        people=((1, NO_CONNECTIONS_SERVER), *_same(4, DESKTOP, first=2)),
        topology="sfu",
        hosts=(2,),
    ),
    _PlanCase(
        comment=(
            "a weak server (15 streams) cannot carry five: the first set that does is one desktop"
        ),
        clause="VOICE-3.3",
        flags=("Capacity",),
        people=((1, _WEAK_SERVER), *_same(4, DESKTOP, first=2)),
        topology="sfu",
        hosts=(2,),
    ),
    _PlanCase(
        comment="exactly 16 streams carry five",
        clause="VOICE-3.2",
        flags=("Capacity", "Threshold"),
        people=((1, _SIXTEEN_SERVER), *_same(4, DESKTOP, first=2)),
        topology="sfu",
        hosts=(1,),
    ),
    _PlanCase(
        comment="a failed host cooling down is skipped",
        clause="VOICE-5.1",
        flags=("Excluded",),
        people=_same(5, DESKTOP),
        excluded=(1,),
        topology="sfu",
        hosts=(2,),
    ),
    # hysteresis (VOICE-2.2, VOICE-3.3)
    _PlanCase(
        comment="four after a hosted five: still hosted",
        clause="VOICE-2.2",
        flags=("Hysteresis", "Threshold"),
        people=_same(4, DESKTOP),
        previous="five",
        topology="sfu",
        hosts=(1,),
    ),
    _PlanCase(
        comment="three after a hosted five: a mesh again",
        clause="VOICE-2.2",
        flags=("Hysteresis", "Threshold"),
        people=_same(3, DESKTOP),
        previous="five",
        topology="mesh",
    ),
    _PlanCase(
        comment="twelve after a distributed thirteen: still two hosts",
        clause="VOICE-2.2",
        flags=("Hysteresis", "Threshold"),
        people=(*_same(11, DESKTOP), (20, SERVER)),
        previous="thirteen",
        topology="distributed-sfu",
        hosts=(20, 1),
    ),
    _PlanCase(
        comment="eleven after a distributed thirteen: the server alone",
        clause="VOICE-2.2",
        flags=("Hysteresis", "Threshold"),
        people=(*_same(10, DESKTOP), (20, SERVER)),
        previous="thirteen",
        topology="sfu",
        hosts=(20,),
    ),
    _PlanCase(
        comment="nine after two hosts for ten: two hosts while they would carry ten",
        clause="VOICE-3.3",
        flags=("Hysteresis", "Capacity"),
        people=_same(9, DESKTOP),
        previous="ten",
        topology="distributed-sfu",
        hosts=(1, 2),
    ),
    _PlanCase(
        comment="eight after two hosts for ten: one host carries nine, so one",
        clause="VOICE-3.3",
        flags=("Hysteresis", "Capacity"),
        people=_same(8, DESKTOP),
        previous="ten",
        topology="sfu",
        hosts=(1,),
    ),
    # incumbents (VOICE-2.3)
    _PlanCase(
        comment="five laptops",
        clause="VOICE-2.3",
        flags=("TieBreak",),
        people=_same(5, LAPTOP),
        topology="sfu",
        hosts=(1,),
        name="laptop host",
    ),
    _PlanCase(
        comment="a desktop (90) beats a laptop host (51) by more than the margin",
        clause="VOICE-2.3",
        flags=("Incumbent",),
        people=(*_same(4, LAPTOP), (9, DESKTOP)),
        previous="laptop host",
        topology="sfu",
        hosts=(9,),
    ),
    _PlanCase(
        comment="a 95-point challenger does not unseat a 90-point host",
        clause="VOICE-2.3",
        flags=("Incumbent",),
        people=(*_same(4, DESKTOP), (0, POWERFUL)),
        previous="five",
        topology="sfu",
        hosts=(1,),
    ),
    _PlanCase(
        comment="a server exactly 10 points better: the tie keeps the incumbent",
        clause="VOICE-2.3",
        flags=("Incumbent", "TieBreak"),
        people=(*_same(4, DESKTOP), (0, SERVER)),
        previous="five",
        topology="sfu",
        hosts=(1,),
    ),
    _PlanCase(
        comment="the incumbent's capacity is gone: a challenger takes over",
        clause="VOICE-2.3",
        flags=("Incumbent", "Capacity"),
        people=((1, caps_json(maxRelayBandwidth=0)), *_same(4, DESKTOP, 2)),
        previous="five",
        topology="sfu",
        hosts=(2,),
    ),
    # stickiness (VOICE-3.4)
    _PlanCase(
        comment="a newcomer goes where there is room; the others keep their hosts",
        clause="VOICE-3.4",
        flags=("Sticky",),
        people=_ELEVEN,
        previous="ten",
        topology="distributed-sfu",
        hosts=(1, 2),
        check=_kept_assignments,
    ),
    _PlanCase(
        comment="without the previous plan the newcomer (smallest id) lands first",
        clause="VOICE-3.4",
        flags=("Sticky",),
        people=_ELEVEN,
        topology="distributed-sfu",
        hosts=(0, 1),
    ),
    # degraded (VOICE-3.5)
    _PlanCase(
        comment="five phones: nobody can host, a degraded mesh",
        clause="VOICE-3.5",
        flags=("Degraded",),
        people=_same(5, PHONE),
        topology="mesh",
        degraded="no-eligible-host",
    ),
    _PlanCase(
        comment="eligible but no connections: nobody served, a degraded mesh",
        clause="VOICE-3.5",
        flags=("Degraded",),
        people=_same(5, caps_json(maxRelayConnections=0)),
        topology="mesh",
        degraded="no-eligible-host",
    ),
    _PlanCase(
        comment="thirteen with one weak host: overloaded and degraded",
        clause="VOICE-3.5",
        flags=("Degraded",),
        people=((1, _TINY), *_same(12, PHONE, first=2)),
        topology="sfu",
        hosts=(1,),
        degraded="insufficient-capacity",
    ),
    _PlanCase(
        comment="six with two weak hosts: both, overloaded evenly",
        clause="VOICE-3.5",
        flags=("Degraded",),
        people=((1, _WEAK2), (2, _WEAK2), *_same(4, PHONE, first=3)),
        topology="distributed-sfu",
        hosts=(1, 2),
        degraded="insufficient-capacity",
        check=lambda plan, _: [len(plan.served_by(h)) for h in plan.hosts] == [3, 3],
    ),
)


def _add_plan(
    v: Vectors,
    tests: list[JsonObject],
    config: VoiceConfig,
    case: _PlanCase,
    earlier: Mapping[str, CallPlan],
) -> CallPlan:
    listed = _people(*case.people)
    previous = None if case.previous is None else earlier[case.previous]
    excluded = {_node(n) for n in case.excluded}
    plan = plan_call(
        participants_from_json(listed), config=config, previous=previous, excluded=excluded
    )
    assert plan.topology.value == case.topology, (case.comment, plan.topology)
    assert list(plan.hosts) == [_node(n) for n in case.hosts], (case.comment, plan.hosts)
    assert (plan.degraded.value if plan.degraded else None) == case.degraded, case.comment
    assert case.check is None or case.check(plan, earlier), case.comment
    v.test(
        tests,
        comment=case.comment,
        result="valid",
        clause=case.clause,
        flags=case.flags,
        participants=listed,
        previous=None if previous is None else previous.to_json(),
        excluded=[_node(n).hex() for n in case.excluded],
        plan=plan.to_json(),
        links=[[a.hex(), b.hex()] for a, b in plan.media_links()],
        streams={p.hex(): list(c) for p, c in stream_counts(plan).items()},
    )
    return plan


def _broken_plans(good: JsonObject) -> list[tuple[str, JsonObject]]:
    """Previous plans that break VOICE-1.1, each made from the valid plan `good`."""
    members = good["participants"]
    assignment = good["assignment"]
    return [
        ("a mesh with a host", {**good, "topology": "mesh"}),
        ("an sfu with two hosts", {**good, "hosts": good["hosts"] + [members[1]]}),
        ("a distributed SFU with one host", {**good, "topology": "distributed-sfu"}),
        (
            "a participant without a host",
            {**good, "assignment": {k: h for k, h in list(assignment.items())[:-1]}},
        ),
        ("participants out of order", {**good, "participants": list(reversed(members))}),
        ("assigned to a non-host", {**good, "assignment": {**assignment, members[2]: members[3]}}),
        ("an unknown topology", {**good, "topology": "star"}),
    ]


def _refusal_cases(
    five: CallPlan,
) -> list[tuple[str, str, tuple[str, ...], list[JsonObject], JsonObject | None]]:
    """(comment, clause, flags, participants, previous) of every plan the reference refuses."""
    people5 = _people(*_same(5, DESKTOP))
    return [
        ("no participant", "VOICE-1.2", ("Empty",), [], None),
        (
            "a NodeId twice",
            "VOICE-1.2",
            ("Duplicate",),
            _people((1, DESKTOP), (2, DESKTOP), (1, LAPTOP)),
            None,
        ),
        (
            "a NodeId of 31 bytes",
            "VOICE-1.2",
            (),
            [{"nodeId": "01" * 31, "capabilities": DESKTOP}],
            None,
        ),
        *(
            (f"previous plan: {comment}", "VOICE-1.1", ("MalformedPlan",), people5, previous)
            for comment, previous in _broken_plans(five.to_json())
        ),
    ]


def _plan_tests(v: Vectors, config: VoiceConfig) -> None:
    tests = v.group("VoicePlanTest", config=config.to_json())
    earlier: dict[str, CallPlan] = {}
    for case in PLAN_CASES:
        plan = _add_plan(v, tests, config, case, earlier)
        if case.name is not None:
            earlier[case.name] = plan
    for comment, clause, flags, participants, previous in _refusal_cases(earlier["five"]):
        try:
            prior = None if previous is None else CallPlan.from_json(previous)
            plan_call(participants_from_json(participants), config=config, previous=prior)
        except VoiceError:
            pass
        else:
            raise AssertionError(f"not refused: {comment}")
        v.test(
            tests,
            comment=comment,
            result="invalid",
            clause=clause,
            flags=flags,
            participants=participants,
            previous=previous,
            excluded=[],
        )


# ------------------------------------------------------------------ controller


@dataclass(frozen=True, slots=True, kw_only=True)
class _Step:
    """One controller event at `at`; `kinds` the actions it must produce (None: not checked).

    A linksReady step with `links` None reports every link the controller waits for.
    """

    at: float
    event: str
    node: int | None = None
    caps: JsonObject | None = None
    links: tuple[tuple[int, int], ...] | None = None
    kinds: tuple[str, ...] | None = None
    error: bool = False


def _join(at: float, n: int, caps: JsonObject, *kinds: str, error: bool = False) -> _Step:
    return _Step(at=at, event="join", node=n, caps=caps, kinds=kinds, error=error)


def _leave(at: float, n: int, *kinds: str, error: bool = False) -> _Step:
    return _Step(at=at, event="leave", node=n, kinds=kinds, error=error)


def _failed(at: float, n: int, *kinds: str, error: bool = False) -> _Step:
    return _Step(at=at, event="hostFailed", node=n, kinds=kinds, error=error)


def _changed(at: float, n: int, caps: JsonObject, *kinds: str, error: bool = False) -> _Step:
    return _Step(at=at, event="capabilitiesChanged", node=n, caps=caps, kinds=kinds, error=error)


def _ready(at: float, pairs: tuple[tuple[int, int], ...] | None, *kinds: str) -> _Step:
    return _Step(at=at, event="linksReady", links=pairs, kinds=kinds)


def _timer(at: float, *kinds: str) -> _Step:
    return _Step(at=at, event="timer", kinds=kinds)


@dataclass(frozen=True, slots=True, kw_only=True)
class _ScriptCase:
    """One VoiceControllerTest: `call` participants with `caps` join first, one a second
    (their links reported ready), then `steps` run."""

    comment: str
    clause: str
    flags: tuple[str, ...] = ()
    result: str = "valid"
    call: int = 0
    caps: JsonObject = field(default_factory=lambda: DESKTOP)
    steps: tuple[_Step, ...]


def _server_and_laptops() -> tuple[_Step, ...]:
    """A server joins first, then four laptops, each one's links reported ready."""
    joins = [
        step
        for n in range(2, 6)
        for step in (
            _Step(at=T0 + n, event="join", node=n, caps=LAPTOP),
            _Step(at=T0 + n + 0.1, event="linksReady"),
        )
    ]
    return (_Step(at=T0, event="join", node=1, caps=SERVER), *joins)


SCRIPT_CASES: Final = (
    _ScriptCase(
        comment="a call of one, then two: the link first, then the switch",
        clause="VOICE-4.2",
        flags=("MakeBeforeBreak",),
        steps=(
            _join(T0, 1, DESKTOP, "switch"),
            _join(T0 + 1, 2, DESKTOP, "connect"),
            _ready(T0 + 1.5, ((1, 2),), "switch"),
        ),
    ),
    _ScriptCase(
        comment="mesh of four to one host: only the host's new link, then the mesh links go",
        clause="VOICE-4.2",
        flags=("MakeBeforeBreak", "Threshold"),
        call=4,
        steps=(
            _join(T0 + 10, 5, DESKTOP, "connect"),
            _ready(T0 + 10.4, ((1, 5),), "switch", "disconnect"),
        ),
    ),
    _ScriptCase(
        comment="the new link never reported: switch at the timeout, and it joins later",
        clause="VOICE-4.2",
        flags=("Timeout",),
        call=4,
        steps=(
            _join(T0 + 10, 5, DESKTOP, "connect"),
            _timer(T0 + 14.999),
            _timer(T0 + 15, "switch", "disconnect"),
            _ready(T0 + 16, ((1, 5),)),
        ),
    ),
    _ScriptCase(
        comment="a join while switching retargets; the first change's deadline holds",
        clause="VOICE-4.4",
        flags=("Retarget", "Timeout"),
        call=5,
        steps=(
            _join(T0 + 10, 6, DESKTOP, "connect"),
            _join(T0 + 12, 7, DESKTOP, "connect"),
            _ready(T0 + 13, ((1, 6),)),
            _timer(T0 + 15, "switch"),
        ),
    ),
    _ScriptCase(
        comment="join then leave while switching: the newcomer's link closes, the plan stays",
        clause="VOICE-4.4",
        flags=("Retarget",),
        call=5,
        steps=(
            _join(T0 + 10, 6, DESKTOP, "connect"),
            _leave(T0 + 11, 6, "disconnect"),
        ),
    ),
    _ScriptCase(
        comment="five, four, five, four: one host throughout, no mesh links opened",
        clause="VOICE-2.2",
        flags=("Hysteresis", "Threshold"),
        call=5,
        steps=(
            _leave(T0 + 10, 3, "disconnect", "switch"),
            _join(T0 + 11, 3, DESKTOP, "connect"),
            _ready(T0 + 11.2, ((1, 3),), "switch"),
            _leave(T0 + 12, 3, "disconnect", "switch"),
        ),
    ),
    _ScriptCase(
        comment="the host leaves: its links close at once; the next host is elected",
        clause="VOICE-4.3",
        call=5,
        steps=(
            _leave(T0 + 10, 1, "disconnect", "connect"),
            _ready(T0 + 11, None, "switch"),
        ),
    ),
    _ScriptCase(
        comment="a failed server sits out 60 s, then takes the host role back from a laptop",
        clause="VOICE-5.2",
        flags=("HostFailure", "Incumbent", "MakeBeforeBreak"),
        steps=(
            *_server_and_laptops(),
            _failed(T0 + 10, 1, "disconnect", "connect"),
            _ready(T0 + 11, None, "switch"),
            _timer(T0 + 69.9),
            _timer(T0 + 70, "connect"),
            _ready(T0 + 71, None, "switch", "disconnect"),
        ),
    ),
    _ScriptCase(
        comment="a failed desktop host returns as a challenger and does not unseat its equal",
        clause="VOICE-5.1",
        flags=("HostFailure", "Incumbent"),
        call=5,
        steps=(
            _failed(T0 + 10, 1, "disconnect", "connect"),
            _ready(T0 + 11, None, "switch"),
            _timer(T0 + 70),
        ),
    ),
    _ScriptCase(
        comment="late reports: a host failure of a non-host and links never asked for",
        clause="VOICE-4.6",
        flags=("LateReport",),
        call=5,
        steps=(
            _failed(T0 + 10, 3),
            _ready(T0 + 11, ((2, 3),)),
            _ready(T0 + 12, ((1, 2),)),
        ),
    ),
    _ScriptCase(
        comment="everyone leaves: idle, nothing left open",
        clause="VOICE-4.5",
        call=3,
        steps=(
            _leave(T0 + 10, 2, "disconnect", "switch"),
            _leave(T0 + 11, 3, "disconnect", "switch"),
            _leave(T0 + 12, 1),
        ),
    ),
    _ScriptCase(
        comment="caller errors are refused and change nothing",
        clause="VOICE-4.6",
        flags=("CallerError",),
        result="invalid",
        call=2,
        steps=(
            _join(T0 + 10, 2, DESKTOP, error=True),
            _leave(T0 + 11, 9, error=True),
            _failed(T0 + 12, 9, error=True),
            _changed(T0 + 13, 9, DESKTOP, error=True),
            _join(T0 + 14, 3, DESKTOP, "connect"),
        ),
    ),
    _ScriptCase(
        comment="a participant upgrades past the margin: the host moves make-before-break",
        clause="VOICE-4.1",
        flags=("Incumbent", "MakeBeforeBreak"),
        call=5,
        caps=LAPTOP,
        steps=(
            _changed(T0 + 10, 5, DESKTOP, "connect"),
            _ready(T0 + 10.5, None, "switch", "disconnect"),
        ),
    ),
)


def _nodes(pairs: list[list[str]]) -> list[tuple[NodeId, NodeId]]:
    return [(NodeId(bytes.fromhex(a)), NodeId(bytes.fromhex(b))) for a, b in pairs]


def _apply(c: CallController, now: float, event: str, fields: JsonObject) -> None:
    """Feed one event, in its JSON form, to the controller."""
    node = NodeId(bytes.fromhex(fields["nodeId"])) if "nodeId" in fields else None
    caps = (
        DeviceCapabilities.from_json(fields["capabilities"]) if "capabilities" in fields else None
    )
    match event:
        case "join":
            assert node is not None and caps is not None
            c.join(node, caps, now=now)
        case "leave":
            assert node is not None
            c.leave(node, now=now)
        case "capabilitiesChanged":
            assert node is not None and caps is not None
            c.capabilities_changed(node, caps, now=now)
        case "hostFailed":
            assert node is not None
            c.host_failed(node, now=now)
        case "linksReady":
            c.links_ready(_nodes(fields["links"]), now=now)
        case "timer":
            c.on_timer(now=now)
        case _:
            raise AssertionError(event)


def _event_fields(c: CallController, step: _Step) -> JsonObject:
    fields: JsonObject = {}
    if step.node is not None:
        fields["nodeId"] = _node(step.node).hex()
    if step.caps is not None:
        fields["capabilities"] = step.caps
    if step.event == "linksReady":
        pairs = (
            sorted(c.links_pending)
            if step.links is None
            else [(_node(a), _node(b)) for a, b in step.links]
        )
        fields["links"] = [[a.hex(), b.hex()] for a, b in pairs]
    return fields


def _run_step(c: CallController, step: _Step) -> JsonObject:
    """Run `step` on `c`, check it, and give its JSON record with what it produced."""
    fields = _event_fields(c, step)
    try:
        _apply(c, step.at, step.event, fields)
        refused = False
    except VoiceError:
        refused = True
    assert refused == step.error, (step.event, step.at)
    actions: list[JsonObject] = []
    while (action := c.next_action()) is not None:
        actions.append(action.to_json())
    if step.kinds is not None:
        assert [a["action"] for a in actions] == list(step.kinds), (step, actions)
    expect: JsonObject = {
        "actions": actions,
        "state": c.state.value,
        "nextDeadline": c.next_deadline(),
    }
    if step.error:
        expect = {"error": "caller", **expect}
    return {"now": step.at, "event": step.event, **fields, "expect": expect}


def _call_of(count: int, caps: JsonObject, c: CallController) -> Iterator[_Step]:
    """The steps that bring `count` participants into the call, one a second.

    Lazy on purpose: each join must have run on `c` before its pending links are read.
    """
    for n in range(1, count + 1):
        yield _Step(at=T0 + n, event="join", node=n, caps=caps)
        if c.links_pending:
            yield _Step(at=T0 + n + 0.1, event="linksReady")


def _controller_tests(v: Vectors, config: VoiceConfig) -> None:
    tests = v.group("VoiceControllerTest", config=config.to_json())
    for case in SCRIPT_CASES:
        c = CallController(config=config)
        steps = [_run_step(c, step) for step in _call_of(case.call, case.caps, c)]
        steps += [_run_step(c, step) for step in case.steps]
        v.test(
            tests,
            comment=case.comment,
            result=case.result,
            clause=case.clause,
            flags=case.flags,
            steps=steps,
            counters=dict(sorted(c.counters.items())),
        )


def build() -> JsonObject:
    v = Vectors("voice", "VOICE", HEADER, NOTES)
    config = VoiceConfig()
    _plan_tests(v, config)
    _controller_tests(v, config)
    _signalling_tests(v)
    return v.document()


# ------------------------------------------------------- VOICE-6.1 signalling

_CALL: Final = bytes(range(16))
_N1: Final = NodeId(bytes([0x11]) * 32)
_N2: Final = NodeId(bytes([0x22]) * 32)
_ROOM: Final = bytes([0x33]) * 32

#: (comment, message or raw CBOR body) -- a message is encoded, a dict is CBOR as given.
_SIGNALLING: Final[tuple[tuple[str, sig.SignalMessage | dict[int, object]], ...]] = (
    (
        "an offer: one stream each way",
        sig.Offer(
            call_id=_CALL, epoch=2, sdp="v=0\r\n", forward=(("0", _N1),), backward=(("1", _N2),)
        ),
    ),
    ("an answer", sig.Answer(call_id=_CALL, epoch=2, sdp="v=0\r\n")),
    ("a hang-up: a replan naming its sender", sig.Replan(call_id=_CALL, epoch=3, gone=(_N2,))),
    ("a ring for an audio call", sig.Ring(call_id=_CALL, room_id=_ROOM, media=1)),
    ("a join with audio and video", sig.Join(call_id=_CALL, room_id=_ROOM, media=3)),
    (
        "a mesh plan",
        sig.PlanMessage(
            call_id=_CALL,
            epoch=2,
            topology="mesh",
            participants=(_N1, _N2),
            hosts=(),
            assignment=(),
        ),
    ),
    (
        "an SFU plan",
        sig.PlanMessage(
            call_id=_CALL,
            epoch=4,
            topology="sfu",
            participants=(_N1, _N2),
            hosts=(_N2,),
            assignment=((_N1, _N2), (_N2, _N2)),
        ),
    ),
    ("a TURN credential request", sig.TurnRequest(call_id=_CALL, room_id=_ROOM)),
    (
        "a TURN grant",
        sig.TurnGrant(
            call_id=_CALL,
            room_id=_ROOM,
            host="127.0.0.1",
            port=3478,
            username=f"1700000600:{bytes(_N1).hex()}",
            password="c2VjcmV0",
            expires_at=1_700_000_600,
        ),
    ),
    (
        "a TURN grant with port 0",
        {0: 1, 1: 8, 2: _CALL, 3: 0, 8: _ROOM, 14: "h", 15: 0, 16: "u", 17: "p", 18: 1},
    ),
    (
        "a TURN grant with an empty password",
        {0: 1, 1: 8, 2: _CALL, 3: 0, 8: _ROOM, 14: "h", 15: 1, 16: "u", 17: "", 18: 1},
    ),
    ("unknown type", {0: 1, 1: 99, 2: _CALL, 3: 0}),
    ("unknown version", {0: 2, 1: 2, 2: _CALL, 3: 0, 4: "x"}),
    ("a 5-byte call id", {0: 1, 1: 2, 2: b"short", 3: 0, 4: "x"}),
    ("a stray field", {0: 1, 1: 2, 2: _CALL, 3: 0, 4: "x", 9: 1}),
    ("a ring with an empty room id", {0: 1, 1: 4, 2: _CALL, 3: 0, 8: b"", 9: 1}),
    ("a ring with an unknown media bit", {0: 1, 1: 4, 2: _CALL, 3: 0, 8: _ROOM, 9: 4}),
    ("a ring with no media", {0: 1, 1: 4, 2: _CALL, 3: 0, 8: _ROOM, 9: 0}),
    ("a join with an epoch", {0: 1, 1: 5, 2: _CALL, 3: 1, 8: _ROOM, 9: 1}),
    (
        "a plan with an unknown topology",
        {0: 1, 1: 6, 2: _CALL, 3: 1, 10: "ring", 11: [_N1], 12: [], 13: []},
    ),
    (
        "a plan with unsorted participants",
        {0: 1, 1: 6, 2: _CALL, 3: 1, 10: "mesh", 11: [_N2, _N1], 12: [], 13: []},
    ),
    (
        "a plan assigning a participant to a non-host",
        {0: 1, 1: 6, 2: _CALL, 3: 1, 10: "sfu", 11: [_N1, _N2], 12: [_N2], 13: [[_N1, _N1]]},
    ),
    (
        "a mesh plan with a host",
        {0: 1, 1: 6, 2: _CALL, 3: 1, 10: "mesh", 11: [_N1], 12: [_N1], 13: []},
    ),
    (
        "a plan with no participant",
        {0: 1, 1: 6, 2: _CALL, 3: 1, 10: "mesh", 11: [], 12: [], 13: []},
    ),
)


def _signalling_tests(v: Vectors) -> None:
    tests = v.group("VoiceSignallingDecodeTest")
    for comment, case in _SIGNALLING:
        data = cbor.encode(case) if isinstance(case, dict) else sig.encode_message(case)
        try:
            message = sig.decode_message(data)
        except RemoteProtocolError as exc:
            v.test(
                tests,
                comment=comment,
                result="invalid",
                clause="VOICE-6.1",
                flags=("Signalling",),
                encoded=data.hex(),
                expectedError=exc.code.name,
            )
            continue
        assert sig.encode_message(message) == data, comment
        v.test(
            tests,
            comment=comment,
            result="valid",
            clause="VOICE-6.1",
            flags=("Signalling",),
            encoded=data.hex(),
            decoded=sig.to_json(message),
        )
