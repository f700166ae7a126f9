"""voice.json: call plans and the make-before-break controller (VOICE-x).

Every vector is computed by the reference (`railgun_ref.voice`) while it is
built; each plan case also states by hand what the spec makes of it
(topology, hosts, degradation) and each script the kinds of actions a step
must produce, and the builder asserts both agree, so a regression in the
reference cannot silently rewrite the file.
"""

from collections.abc import Callable
from typing import Any, Final

from railgun_ref.capacity.types import DeviceCapabilities
from railgun_ref.conformance.builders.base import T0, Vectors
from railgun_ref.conformance.builders.capacity import caps_json
from railgun_ref.conformance.common import JsonObject
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

NOTES: Final = {
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


def _same(count: int, caps: JsonObject, first: int = 1) -> list[tuple[int, JsonObject]]:
    return [(n, caps) for n in range(first, first + count)]


def _plan_of(people: list[JsonObject], config: VoiceConfig, **kwargs: Any) -> CallPlan:
    return plan_call(participants_from_json(people), config=config, **kwargs)


# ------------------------------------------------------------------ plans


def _plan_tests(v: Vectors, config: VoiceConfig) -> None:
    tests = v.group("VoicePlanTest", config=config.to_json())

    def add(
        comment: str,
        clause: str,
        flags: tuple[str, ...],
        people: list[tuple[int, JsonObject]],
        *,
        topology: str,
        hosts: list[int],
        degraded: str | None = None,
        previous: CallPlan | None = None,
        excluded: tuple[int, ...] = (),
        check: Callable[[CallPlan], bool] | None = None,
    ) -> CallPlan:
        listed = _people(*people)
        plan = _plan_of(listed, config, previous=previous, excluded={_node(n) for n in excluded})
        assert plan.topology.value == topology, (comment, plan.topology)
        assert list(plan.hosts) == [_node(n) for n in hosts], (comment, plan.hosts)
        assert (plan.degraded.value if plan.degraded else None) == degraded, comment
        assert check is None or check(plan), comment
        v.test(
            tests,
            comment=comment,
            result="valid",
            clause=clause,
            flags=flags,
            participants=listed,
            previous=None if previous is None else previous.to_json(),
            excluded=[_node(n).hex() for n in excluded],
            plan=plan.to_json(),
            links=[[a.hex(), b.hex()] for a, b in plan.media_links()],
            streams={p.hex(): list(c) for p, c in stream_counts(plan).items()},
        )
        return plan

    add(
        "one participant: a mesh with no link",
        "VOICE-2.1",
        (),
        _same(1, DESKTOP),
        topology="mesh",
        hosts=[],
    )
    add("two participants: one link", "VOICE-1.1", (), _same(2, DESKTOP), topology="mesh", hosts=[])
    add(
        "four participants: the largest mesh",
        "VOICE-2.1",
        ("Threshold",),
        _same(4, DESKTOP),
        topology="mesh",
        hosts=[],
    )
    five = add(
        "five equal desktops: one host, the smallest NodeId",
        "VOICE-2.3",
        ("Threshold", "TieBreak"),
        _same(5, DESKTOP),
        topology="sfu",
        hosts=[1],
    )
    add(
        "given in reverse order: the same plan",
        "VOICE-1.2",
        ("TieBreak",),
        list(reversed(_same(5, DESKTOP))),
        topology="sfu",
        hosts=[1],
        check=lambda p: p == five,
    )
    add(
        "a server among desktops hosts",
        "VOICE-2.3",
        (),
        [*_same(4, DESKTOP), (9, SERVER)],
        topology="sfu",
        hosts=[9],
    )
    add(
        "the best score cannot host (symmetric NAT): the next one does",
        "VOICE-2.3",
        ("Eligibility",),
        [(1, LAPTOP), (2, LAPTOP), (3, PHONE), (4, PHONE), (5, SYMMETRIC_SERVER)],
        topology="sfu",
        hosts=[1],
    )
    add(
        "nine desktops: 64 streams fit one desktop's 78",
        "VOICE-3.3",
        ("Capacity",),
        _same(9, DESKTOP),
        topology="sfu",
        hosts=[1],
    )
    ten = add(
        "ten desktops: 81 streams do not fit 78, two hosts do",
        "VOICE-3.3",
        ("Capacity",),
        _same(10, DESKTOP),
        topology="distributed-sfu",
        hosts=[1, 2],
    )
    add(
        "twelve desktops and a server: the server alone",
        "VOICE-2.1",
        ("Threshold",),
        [*_same(11, DESKTOP), (20, SERVER)],
        topology="sfu",
        hosts=[20],
    )
    thirteen = add(
        "thirteen with a server: at least two hosts",
        "VOICE-2.1",
        ("Threshold",),
        [*_same(12, DESKTOP), (20, SERVER)],
        topology="distributed-sfu",
        hosts=[20, 1],
    )
    add(
        "thirteen desktops: three hosts",
        "VOICE-3.2",
        ("Capacity",),
        _same(13, DESKTOP),
        topology="distributed-sfu",
        hosts=[1, 2, 3],
    )
    add(
        "twenty desktops: five hosts of four",
        "VOICE-3.4",
        ("Capacity",),
        _same(20, DESKTOP),
        topology="distributed-sfu",
        hosts=[1, 2, 3, 4, 5],
        check=lambda p: all(len(p.served_by(h)) == 4 for h in p.hosts),
    )
    add(
        "a server with no relay connections cannot host: a desktop does",
        "VOICE-3.2",
        ("Capacity",),
        [(1, NO_CONNECTIONS_SERVER), *_same(4, DESKTOP, first=2)],
        topology="sfu",
        hosts=[2],
    )
    weak = caps_json(deviceClass="server", maxRelayBandwidth=127_999)  # 15 streams
    add(
        "a weak server (15 streams) cannot carry five: the first set that does is one desktop",
        "VOICE-3.3",
        ("Capacity",),
        [(1, weak), *_same(4, DESKTOP, first=2)],
        topology="sfu",
        hosts=[2],
    )
    add(
        "exactly 16 streams carry five",
        "VOICE-3.2",
        ("Capacity", "Threshold"),
        [
            (1, caps_json(deviceClass="server", maxRelayBandwidth=128_000)),
            *_same(4, DESKTOP, first=2),
        ],
        topology="sfu",
        hosts=[1],
    )
    add(
        "a failed host cooling down is skipped",
        "VOICE-5.1",
        ("Excluded",),
        _same(5, DESKTOP),
        excluded=(1,),
        topology="sfu",
        hosts=[2],
    )

    # hysteresis (VOICE-2.2, VOICE-3.3)
    add(
        "four after a hosted five: still hosted",
        "VOICE-2.2",
        ("Hysteresis", "Threshold"),
        _same(4, DESKTOP),
        previous=five,
        topology="sfu",
        hosts=[1],
    )
    add(
        "three after a hosted five: a mesh again",
        "VOICE-2.2",
        ("Hysteresis", "Threshold"),
        _same(3, DESKTOP),
        previous=five,
        topology="mesh",
        hosts=[],
    )
    add(
        "twelve after a distributed thirteen: still two hosts",
        "VOICE-2.2",
        ("Hysteresis", "Threshold"),
        [*_same(11, DESKTOP), (20, SERVER)],
        previous=thirteen,
        topology="distributed-sfu",
        hosts=[20, 1],
    )
    add(
        "eleven after a distributed thirteen: the server alone",
        "VOICE-2.2",
        ("Hysteresis", "Threshold"),
        [*_same(10, DESKTOP), (20, SERVER)],
        previous=thirteen,
        topology="sfu",
        hosts=[20],
    )
    add(
        "nine after two hosts for ten: two hosts while they would carry ten",
        "VOICE-3.3",
        ("Hysteresis", "Capacity"),
        _same(9, DESKTOP),
        previous=ten,
        topology="distributed-sfu",
        hosts=[1, 2],
    )
    add(
        "eight after two hosts for ten: one host carries nine, so one",
        "VOICE-3.3",
        ("Hysteresis", "Capacity"),
        _same(8, DESKTOP),
        previous=ten,
        topology="sfu",
        hosts=[1],
    )

    # incumbents (VOICE-2.3)
    laptop_host = add(
        "five laptops", "VOICE-2.3", ("TieBreak",), _same(5, LAPTOP), topology="sfu", hosts=[1]
    )
    add(
        "a desktop (90) beats a laptop host (51) by more than the margin",
        "VOICE-2.3",
        ("Incumbent",),
        [*_same(4, LAPTOP), (9, DESKTOP)],
        previous=laptop_host,
        topology="sfu",
        hosts=[9],
    )
    add(
        "a 95-point challenger does not unseat a 90-point host",
        "VOICE-2.3",
        ("Incumbent",),
        [*_same(4, DESKTOP), (0, POWERFUL)],
        previous=five,
        topology="sfu",
        hosts=[1],
    )
    add(
        "a server exactly 10 points better: the tie keeps the incumbent",
        "VOICE-2.3",
        ("Incumbent", "TieBreak"),
        [*_same(4, DESKTOP), (0, SERVER)],
        previous=five,
        topology="sfu",
        hosts=[1],
    )
    add(
        "the incumbent's capacity is gone: a challenger takes over",
        "VOICE-2.3",
        ("Incumbent", "Capacity"),
        [(1, caps_json(maxRelayBandwidth=0)), *_same(4, DESKTOP, 2)],
        previous=five,
        topology="sfu",
        hosts=[2],
    )

    # stickiness (VOICE-3.4)
    eleven = [*_same(10, DESKTOP), (0, DESKTOP)]
    add(
        "a newcomer goes where there is room; the others keep their hosts",
        "VOICE-3.4",
        ("Sticky",),
        eleven,
        previous=ten,
        topology="distributed-sfu",
        hosts=[1, 2],
        check=lambda p: all(p.assignment[q] == ten.assignment[q] for q in ten.participants),
    )
    add(
        "without the previous plan the newcomer (smallest id) lands first",
        "VOICE-3.4",
        ("Sticky",),
        eleven,
        topology="distributed-sfu",
        hosts=[0, 1],
    )

    # degraded (VOICE-3.5)
    add(
        "five phones: nobody can host, a degraded mesh",
        "VOICE-3.5",
        ("Degraded",),
        _same(5, PHONE),
        topology="mesh",
        hosts=[],
        degraded="no-eligible-host",
    )
    add(
        "eligible but no connections: nobody served, a degraded mesh",
        "VOICE-3.5",
        ("Degraded",),
        _same(5, caps_json(maxRelayConnections=0)),
        topology="mesh",
        hosts=[],
        degraded="no-eligible-host",
    )
    tiny = caps_json(maxRelayBandwidth=200_000)  # 25 streams: 3 of 13 at one host
    add(
        "thirteen with one weak host: overloaded and degraded",
        "VOICE-3.5",
        ("Degraded",),
        [(1, tiny), *_same(12, PHONE, first=2)],
        topology="sfu",
        hosts=[1],
        degraded="insufficient-capacity",
    )
    weak2 = caps_json(maxRelayBandwidth=56_000)  # 7 streams: 2 of 6 each with two hosts
    add(
        "six with two weak hosts: both, overloaded evenly",
        "VOICE-3.5",
        ("Degraded",),
        [(1, weak2), (2, weak2), *_same(4, PHONE, first=3)],
        topology="distributed-sfu",
        hosts=[1, 2],
        degraded="insufficient-capacity",
        check=lambda p: [len(p.served_by(h)) for h in p.hosts] == [3, 3],
    )

    # refusals (VOICE-1.1, VOICE-1.2)
    def refuse(
        comment: str,
        clause: str,
        flags: tuple[str, ...],
        participants: list[JsonObject],
        previous: JsonObject | None = None,
    ) -> None:
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

    refuse("no participant", "VOICE-1.2", ("Empty",), [])
    refuse(
        "a NodeId twice",
        "VOICE-1.2",
        ("Duplicate",),
        _people((1, DESKTOP), (2, DESKTOP), (1, LAPTOP)),
    )
    refuse(
        "a NodeId of 31 bytes", "VOICE-1.2", (), [{"nodeId": "01" * 31, "capabilities": DESKTOP}]
    )
    people5 = _people(*_same(5, DESKTOP))
    good = five.to_json()
    broken: list[tuple[str, JsonObject]] = [
        ("a mesh with a host", {**good, "topology": "mesh"}),
        ("an sfu with two hosts", {**good, "hosts": good["hosts"] + [good["participants"][1]]}),
        ("a distributed SFU with one host", {**good, "topology": "distributed-sfu"}),
        (
            "a participant without a host",
            {**good, "assignment": {k: h for k, h in list(good["assignment"].items())[:-1]}},
        ),
        (
            "participants out of order",
            {**good, "participants": list(reversed(good["participants"]))},
        ),
        (
            "assigned to a non-host",
            {
                **good,
                "assignment": {
                    **good["assignment"],
                    good["participants"][2]: good["participants"][3],
                },
            },
        ),
        ("an unknown topology", {**good, "topology": "star"}),
    ]
    for comment, previous in broken:
        refuse(f"previous plan: {comment}", "VOICE-1.1", ("MalformedPlan",), people5, previous)


# ------------------------------------------------------------------ controller


class _Script:
    """Drive a controller step by step and record what each step produced."""

    def __init__(self, config: VoiceConfig) -> None:
        self.controller = CallController(config=config)
        self.steps: list[JsonObject] = []

    def step(
        self,
        now: float,
        event: str,
        *,
        kinds: list[str] | None = None,
        error: bool = False,
        **fields: Any,
    ) -> list[JsonObject]:
        c = self.controller
        record: JsonObject = {"now": now, "event": event, **fields}
        refused = False
        try:
            match event:
                case "join":
                    c.join(
                        NodeId(bytes.fromhex(fields["nodeId"])),
                        DeviceCapabilities.from_json(fields["capabilities"]),
                        now=now,
                    )
                case "leave":
                    c.leave(NodeId(bytes.fromhex(fields["nodeId"])), now=now)
                case "capabilitiesChanged":
                    c.capabilities_changed(
                        NodeId(bytes.fromhex(fields["nodeId"])),
                        DeviceCapabilities.from_json(fields["capabilities"]),
                        now=now,
                    )
                case "hostFailed":
                    c.host_failed(NodeId(bytes.fromhex(fields["nodeId"])), now=now)
                case "linksReady":
                    c.links_ready(
                        [
                            (NodeId(bytes.fromhex(a)), NodeId(bytes.fromhex(b)))
                            for a, b in fields["links"]
                        ],
                        now=now,
                    )
                case "timer":
                    c.on_timer(now=now)
                case _:
                    raise AssertionError(event)
        except VoiceError:
            refused = True
        assert refused == error, (event, now)
        actions = [a.to_json() for a in c.actions()]
        if kinds is not None:
            assert [a["action"] for a in actions] == kinds, (event, now, actions)
        expect: JsonObject = {
            "actions": actions,
            "state": c.state.value,
            "nextDeadline": c.next_deadline(),
        }
        if error:
            expect = {"error": "caller", **expect}
        record["expect"] = expect
        self.steps.append(record)
        return actions

    def join(self, now: float, n: int, caps: JsonObject, **kw: Any) -> list[JsonObject]:
        return self.step(now, "join", nodeId=_node(n).hex(), capabilities=caps, **kw)

    def leave(self, now: float, n: int, **kw: Any) -> list[JsonObject]:
        return self.step(now, "leave", nodeId=_node(n).hex(), **kw)

    def ready_all(self, now: float, **kw: Any) -> list[JsonObject]:
        pending = sorted(self.controller.links_pending)
        return self.step(now, "linksReady", links=[[a.hex(), b.hex()] for a, b in pending], **kw)

    def ready(self, now: float, pairs: list[tuple[int, int]], **kw: Any) -> list[JsonObject]:
        links = [[_node(a).hex(), _node(b).hex()] for a, b in pairs]
        return self.step(now, "linksReady", links=links, **kw)


def _controller_tests(v: Vectors, config: VoiceConfig) -> None:
    tests = v.group("VoiceControllerTest", config=config.to_json())

    def add(
        comment: str, clause: str, flags: tuple[str, ...], script: _Script, result: str = "valid"
    ) -> None:
        v.test(
            tests,
            comment=comment,
            result=result,
            clause=clause,
            flags=flags,
            steps=script.steps,
            counters=dict(sorted(script.controller.counters.items())),
        )

    def call_of(count: int, caps: JsonObject = DESKTOP) -> _Script:
        s = _Script(config)
        for n in range(1, count + 1):
            s.join(T0 + n, n, caps)
            if s.controller.links_pending:
                s.ready_all(T0 + n + 0.1)
        return s

    s = _Script(config)
    s.join(T0, 1, DESKTOP, kinds=["switch"])
    s.join(T0 + 1, 2, DESKTOP, kinds=["connect"])
    s.ready(T0 + 1.5, [(1, 2)], kinds=["switch"])
    add(
        "a call of one, then two: the link first, then the switch",
        "VOICE-4.2",
        ("MakeBeforeBreak",),
        s,
    )

    s = call_of(4)
    s.join(T0 + 10, 5, DESKTOP, kinds=["connect"])
    s.ready(T0 + 10.4, [(1, 5)], kinds=["switch", "disconnect"])
    add(
        "mesh of four to one host: only the host's new link, then the mesh links go",
        "VOICE-4.2",
        ("MakeBeforeBreak", "Threshold"),
        s,
    )

    s = call_of(4)
    s.join(T0 + 10, 5, DESKTOP, kinds=["connect"])
    s.step(T0 + 14.999, "timer", kinds=[])
    s.step(T0 + 15, "timer", kinds=["switch", "disconnect"])
    s.ready(T0 + 16, [(1, 5)], kinds=[])
    add(
        "the new link never reported: switch at the timeout, and it joins later",
        "VOICE-4.2",
        ("Timeout",),
        s,
    )

    s = call_of(5)
    s.join(T0 + 10, 6, DESKTOP, kinds=["connect"])
    s.join(T0 + 12, 7, DESKTOP, kinds=["connect"])
    s.ready(T0 + 13, [(1, 6)], kinds=[])
    s.step(T0 + 15, "timer", kinds=["switch"])
    add(
        "a join while switching retargets; the first change's deadline holds",
        "VOICE-4.4",
        ("Retarget", "Timeout"),
        s,
    )

    s = call_of(5)
    s.join(T0 + 10, 6, DESKTOP, kinds=["connect"])
    s.leave(T0 + 11, 6, kinds=["disconnect"])
    add(
        "join then leave while switching: the newcomer's link closes, the plan stays",
        "VOICE-4.4",
        ("Retarget",),
        s,
    )

    s = call_of(5)
    s.leave(T0 + 10, 3, kinds=["disconnect", "switch"])
    s.join(T0 + 11, 3, DESKTOP, kinds=["connect"])
    s.ready(T0 + 11.2, [(1, 3)], kinds=["switch"])
    s.leave(T0 + 12, 3, kinds=["disconnect", "switch"])
    add(
        "five, four, five, four: one host throughout, no mesh links opened",
        "VOICE-2.2",
        ("Hysteresis", "Threshold"),
        s,
    )

    s = call_of(5)
    s.leave(T0 + 10, 1, kinds=["disconnect", "connect"])
    s.ready_all(T0 + 11, kinds=["switch"])
    add("the host leaves: its links close at once; the next host is elected", "VOICE-4.3", (), s)

    s = _Script(config)
    s.join(T0, 1, SERVER)
    for n in range(2, 6):
        s.join(T0 + n, n, LAPTOP)
        s.ready_all(T0 + n + 0.1)
    s.step(T0 + 10, "hostFailed", nodeId=_node(1).hex(), kinds=["disconnect", "connect"])
    s.ready_all(T0 + 11, kinds=["switch"])
    s.step(T0 + 69.9, "timer", kinds=[])
    s.step(T0 + 70, "timer", kinds=["connect"])
    s.ready_all(T0 + 71, kinds=["switch", "disconnect"])
    add(
        "a failed server sits out 60 s, then takes the host role back from a laptop",
        "VOICE-5.2",
        ("HostFailure", "Incumbent", "MakeBeforeBreak"),
        s,
    )

    s = call_of(5)
    s.step(T0 + 10, "hostFailed", nodeId=_node(1).hex(), kinds=["disconnect", "connect"])
    s.ready_all(T0 + 11, kinds=["switch"])
    s.step(T0 + 70, "timer", kinds=[])
    add(
        "a failed desktop host returns as a challenger and does not unseat its equal",
        "VOICE-5.1",
        ("HostFailure", "Incumbent"),
        s,
    )

    s = call_of(5)
    s.step(T0 + 10, "hostFailed", nodeId=_node(3).hex(), kinds=[])
    s.ready(T0 + 11, [(2, 3)], kinds=[])
    s.ready(T0 + 12, [(1, 2)], kinds=[])
    add(
        "late reports: a host failure of a non-host and links never asked for",
        "VOICE-4.6",
        ("LateReport",),
        s,
    )

    s = call_of(3)
    s.leave(T0 + 10, 2, kinds=["disconnect", "switch"])
    s.leave(T0 + 11, 3, kinds=["disconnect", "switch"])
    s.leave(T0 + 12, 1, kinds=[])
    add("everyone leaves: idle, nothing left open", "VOICE-4.5", (), s)

    s = call_of(2)
    s.join(T0 + 10, 2, DESKTOP, error=True, kinds=[])
    s.leave(T0 + 11, 9, error=True, kinds=[])
    s.step(T0 + 12, "hostFailed", nodeId=_node(9).hex(), error=True, kinds=[])
    s.step(
        T0 + 13,
        "capabilitiesChanged",
        nodeId=_node(9).hex(),
        capabilities=DESKTOP,
        error=True,
        kinds=[],
    )
    s.join(T0 + 14, 3, DESKTOP, kinds=["connect"])
    add(
        "caller errors are refused and change nothing",
        "VOICE-4.6",
        ("CallerError",),
        s,
        result="invalid",
    )

    s = call_of(5, LAPTOP)
    s.step(
        T0 + 10,
        "capabilitiesChanged",
        nodeId=_node(5).hex(),
        capabilities=DESKTOP,
        kinds=["connect"],
    )
    s.ready_all(T0 + 10.5, kinds=["switch", "disconnect"])
    add(
        "a participant upgrades past the margin: the host moves make-before-break",
        "VOICE-4.1",
        ("Incumbent", "MakeBeforeBreak"),
        s,
    )


def build() -> JsonObject:
    v = Vectors("voice", "VOICE", HEADER, NOTES)
    config = VoiceConfig()
    _plan_tests(v, config)
    _controller_tests(v, config)
    return v.document()
