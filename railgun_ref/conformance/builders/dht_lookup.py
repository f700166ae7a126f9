"""dht_lookup.json: the decisions of the iterative lookup (DHT-6.x), step by step.

Each test scripts one lookup on synthetic ids. A tiny event loop plays the
network: every peer answers after a fixed latency with the contacts it knows,
or fails after a delay (an ERROR reply or an RPC timeout), or never answers
at all. The loop polls the reference `railgun_ref.dht.lookup.Lookup` exactly
as a driver does — `next(now)` until it says Waiting or Finished, then the
earliest of the next arrival and the `until` it asked for — and records every
poll with its result and every success or failure it reported, so another
implementation replays the same inputs and must make the same decisions.

Peers are named P<n>: the id at distance ``n * 2^240`` from the target, so
P5 is closer to the target than P12 and the order is readable in comments.
Times are the vectors' T0 plus multiples of 1/16 s, exact in binary floating
point.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from railgun_ref.conformance.builders.base import T0, Vectors, seed_for
from railgun_ref.conformance.common import JsonObject
from railgun_ref.core.ids import NodeId
from railgun_ref.dht.geometry import id_at_distance
from railgun_ref.dht.lookup import Finished, Lookup, QueryPeer, Waiting
from railgun_ref.dht.routing import Contact

NOTES: Final = {
    "Converges": "Answers name closer peers until the k closest have answered.",
    "AlphaLimit": "More candidates than alpha: the lookup waits with alpha queries out.",
    "NoLockstep": "A new query goes out as soon as one answer arrives, not after a round.",
    "DeadPeer": "A peer that never answers: slow_after frees its slot, no stall.",
    "LateAnswer": "A peer answers after being marked unresponsive; its answer is used.",
    "Failure": "A query fails (ERROR or timeout) and its peer is left out.",
    "FewerThanK": "The lookup ends knowing fewer than k peers.",
    "NoSeeds": "A lookup with no candidates at all.",
    "Ignored": "Input the lookup must ignore: itself, duplicates, peers it never asked.",
    "Boundary": "A poll exactly at sent_at + slow_after.",
    "AfterFinish": "Input arriving after the lookup finished changes nothing.",
    "AllUnresponsive": "Every candidate is slower than slow_after.",
}

HEADER: Final = [
    "Iterative lookup decisions (DHT-6.x). Start a lookup for 'target' from 'localId'",
    "with k, alpha and slowAfter (seconds) of the group and the test's 'seeds', then",
    "replay 'steps' in order. A 'next' step polls the lookup at 'now': its result",
    "must be {step: query, nodeId} (send one FIND_NODE to that peer), {step: waiting,",
    "until} (nothing to send; poll again at 'until' or when an answer arrives) or",
    "{step: finished, closest} (the up to k closest peers that answered, nearest",
    "first). A 'success' step reports that 'nodeId' answered naming the contacts",
    "'closer'; a 'failure' step that its query failed (ERROR reply or RPC timeout).",
    "Contacts are node ids only: addresses play no part in the decisions. 'now' and",
    "'until' are seconds since the Unix epoch. 'result' is invalid when the script",
    "feeds the lookup input it must ignore (answers from peers it never queried or",
    "whose query already failed, its own id, duplicates); the steps still apply.",
]

#: Where every synthetic peer listens; addresses do not influence a lookup.
_ADDRESS: Final = ("192.0.2.1", 7000)
_TARGET: Final = NodeId(seed_for("dht_lookup/target"))


def peer(n: int) -> NodeId:
    """P<n>: the id at distance n * 2^240 from the target."""
    return NodeId(id_at_distance(_TARGET, n << 240))


_LOCAL: Final = peer(0xFF00)


def _contact(node_id: NodeId) -> Contact:
    return Contact(node_id=node_id, address=_ADDRESS)


@dataclass(frozen=True, slots=True)
class Behaviour:
    """How one synthetic peer treats a query sent to it."""

    latency: float | None = 0.25  #: answer after this long; None: never answers
    knows: tuple[NodeId, ...] = ()  #: the contacts its answer names
    fail_after: float | None = None  #: instead of answering, the query fails after this long


@dataclass(slots=True)
class Scenario:
    seeds: list[NodeId]
    peers: dict[NodeId, Behaviour]
    #: extra inputs at fixed times: (t, "success" or "failure", peer, contacts it names)
    extra: list[tuple[float, str, NodeId, tuple[NodeId, ...]]] = field(default_factory=list)
    #: keep delivering scheduled arrivals after the lookup finished
    drain_after_finish: bool = False


def _name(node_id: NodeId) -> str:
    n = int.from_bytes(node_id, "big") ^ int.from_bytes(_TARGET, "big")
    return f"P{n >> 240}" if n % (1 << 240) == 0 else node_id.hex()[:8]


class _Run:
    """A tiny event loop around one Lookup: the peers' answers and failures as an agenda."""

    def __init__(self, scenario: Scenario, lookup: Lookup) -> None:
        self.scenario = scenario
        self.lookup = lookup
        self.steps: list[JsonObject] = []
        # (time, order, kind, node id, closer): kind is "success" or "failure"
        self.agenda: list[tuple[float, int, str, NodeId, tuple[NodeId, ...]]] = []
        self._order = 0

    def schedule(self, at: float, kind: str, node_id: NodeId, closer: tuple[NodeId, ...]) -> None:
        self.agenda.append((at, self._order, kind, node_id, closer))
        self.agenda.sort(key=lambda item: (item[0], item[1]))
        self._order += 1

    def _send(self, node_id: NodeId, now: float) -> None:
        """The peer's reaction to a query sent at `now`, put on the agenda."""
        behaviour = self.scenario.peers.get(node_id, Behaviour(latency=None))
        if behaviour.fail_after is not None:
            self.schedule(now + behaviour.fail_after, "failure", node_id, ())
        elif behaviour.latency is not None:
            self.schedule(now + behaviour.latency, "success", node_id, behaviour.knows)

    def poll(self, now: float) -> tuple[float | None, bool]:
        """Poll as a driver does until the lookup waits or finishes: (until, finished)."""
        while True:
            step = self.lookup.next(now=now)
            record: JsonObject = {"op": "next", "now": now}
            self.steps.append(record)
            if isinstance(step, QueryPeer):
                record["expect"] = {"step": "query", "nodeId": step.contact.node_id.hex()}
                self._send(step.contact.node_id, now)
            elif isinstance(step, Waiting):
                record["expect"] = {"step": "waiting", "until": step.until}
                return step.until, False
            else:
                assert isinstance(step, Finished)
                closest = [c.node_id.hex() for c in self.lookup.closest_succeeded()]
                record["expect"] = {"step": "finished", "closest": closest}
                return None, True

    def deliver(self, now: float, *, finished: bool) -> None:
        """Report every arrival due at `now`; after the end, check the result stays fixed."""
        while self.agenda and self.agenda[0][0] == now:
            _, _, kind, node_id, closer = self.agenda.pop(0)
            step: JsonObject = {"op": kind, "now": now, "nodeId": node_id.hex()}
            if kind == "success":
                self.lookup.on_success(node_id, [_contact(c) for c in closer], now=now)
                step["closer"] = [c.hex() for c in closer]
            else:
                self.lookup.on_failure(node_id, now=now)
            self.steps.append(step)
        if finished:
            assert isinstance(self.lookup.next(now=now), Finished)
            # DHT-6.3: a finished lookup's result was fixed when it finished.
            closest = steps_closest(self.steps)
            self.steps.append(
                {"op": "next", "now": now, "expect": {"step": "finished", "closest": closest}}
            )


def run(scenario: Scenario, *, k: int, alpha: int, slow_after: float) -> JsonObject:
    """Drive a Lookup through `scenario`; the recorded steps and the final result."""
    lookup = Lookup(
        _TARGET,
        [_contact(s) for s in scenario.seeds],
        local_id=_LOCAL,
        k=k,
        alpha=alpha,
        slow_after=slow_after,
    )
    loop = _Run(scenario, lookup)
    for at, kind, node_id, closer in scenario.extra:
        loop.schedule(at, kind, node_id, closer)
    now, until, finished = T0, None, False
    while True:
        if not finished:
            until, finished = loop.poll(now)
        if finished and not scenario.drain_after_finish:
            break
        if not loop.agenda and (finished or until is None):
            break
        next_at = loop.agenda[0][0] if loop.agenda else None
        if not finished and until is not None and (next_at is None or until < next_at):
            now, until = until, None
            continue
        assert next_at is not None
        now = next_at
        loop.deliver(now, finished=finished)
    return {"seeds": [s.hex() for s in scenario.seeds], "steps": loop.steps}


def steps_closest(steps: list[JsonObject]) -> list[str]:
    """The closest list of the first 'finished' step: a finished lookup's result is fixed."""
    for step in steps:
        expect = step.get("expect")
        if expect is not None and expect["step"] == "finished":
            closest: list[str] = expect["closest"]
            return closest
    raise AssertionError("the lookup never finished")


def _queried(result: JsonObject) -> list[str]:
    return [
        _name(NodeId(bytes.fromhex(s["expect"]["nodeId"])))
        for s in result["steps"]
        if s["op"] == "next" and s["expect"]["step"] == "query"
    ]


def _final(result: JsonObject) -> list[str]:
    return [_name(NodeId(bytes.fromhex(h))) for h in steps_closest(result["steps"])]


def _finished_at(result: JsonObject) -> float:
    for step in result["steps"]:
        if step["op"] == "next" and step["expect"]["step"] == "finished":
            now: float = step["now"]
            return now
    raise AssertionError("the lookup never finished")


P = peer


@dataclass(frozen=True, slots=True, kw_only=True)
class _LookupCase:
    """One scripted lookup with its parameters; `check` states by hand what it must decide."""

    comment: str
    clause: str
    flags: tuple[str, ...]
    k: int
    alpha: int
    slow_after: float
    scenario: Scenario
    check: Callable[[JsonObject], bool]
    result: str = "valid"


def _first_wait_at_slow_after(r: JsonObject) -> bool:
    return bool(r["steps"][3]["expect"] == {"step": "waiting", "until": T0 + 1.0})


LOOKUP_CASES: Final = (
    # 1. Convergence: answers lead to ever closer peers; the k closest answered.
    _LookupCase(
        comment="converges on the 3 closest: P5, P10, P12",
        clause="DHT-6.3",
        flags=("Converges", "NoLockstep"),
        k=3,
        alpha=2,
        slow_after=1.0,
        scenario=Scenario(
            [P(60), P(50), P(40)],
            {
                P(40): Behaviour(0.25, (P(20), P(30))),
                P(50): Behaviour(0.375, (P(25),)),
                P(60): Behaviour(0.125, ()),
                P(20): Behaviour(0.25, (P(10), P(12))),
                P(30): Behaviour(0.25, (P(10),)),
                P(25): Behaviour(0.25, ()),
                P(10): Behaviour(0.25, (P(5),)),
                P(12): Behaviour(0.25, ()),
                P(5): Behaviour(0.25, (P(10), P(12))),
            },
        ),
        check=lambda r: _final(r) == ["P5", "P10", "P12"] and _queried(r)[:2] == ["P40", "P50"],
    ),
    # 2. Alpha limit and termination while farther candidates stay uncontacted.
    _LookupCase(
        comment="alpha = 3 queries out at once; done when the 4 closest answered,"
        " P50 and P60 never asked",
        clause="DHT-6.1",
        flags=("AlphaLimit", "NoLockstep"),
        k=4,
        alpha=3,
        slow_after=1.0,
        scenario=Scenario(
            [P(60), P(50), P(40), P(30), P(20), P(10)],
            {P(n): Behaviour(0.5 if n != 10 else 0.25, ()) for n in (10, 20, 30, 40, 50, 60)},
        ),
        check=lambda r: (
            _queried(r) == ["P10", "P20", "P30", "P40"]
            and _first_wait_at_slow_after(r)
            and _final(r) == ["P10", "P20", "P30", "P40"]
        ),
    ),
    # 3. A dead peer with alpha = 1: slow_after frees its slot; no stall until the timeout.
    _LookupCase(
        comment="P10 never answers: after slow_after = 0.5 s the lookup moves on and finishes at"
        " 1.25 s; the RPC timeout at 5 s comes after the end",
        clause="DHT-6.2",
        flags=("DeadPeer", "Boundary", "AfterFinish"),
        k=3,
        alpha=1,
        slow_after=0.5,
        scenario=Scenario(
            [P(30), P(20), P(10)],
            {
                P(10): Behaviour(latency=None, fail_after=5.0),
                P(20): Behaviour(0.25, (P(15),)),
                P(30): Behaviour(0.25, ()),
                P(15): Behaviour(0.25, ()),
            },
            drain_after_finish=True,
        ),
        check=lambda r: (
            _queried(r)[:2] == ["P10", "P20"]
            and _final(r) == ["P15", "P20", "P30"]
            and _finished_at(r) == T0 + 1.25
        ),
    ),
    # 4. A late answer: P10 answers after being marked unresponsive; its contacts are used.
    _LookupCase(
        comment="P10 answers at 0.75 s, after slow_after = 0.5 s: still used, its P2 and P3"
        " queried",
        clause="DHT-6.2",
        flags=("LateAnswer",),
        k=3,
        alpha=1,
        slow_after=0.5,
        scenario=Scenario(
            [P(50), P(40), P(10)],
            {
                P(10): Behaviour(0.75, (P(2), P(3))),
                P(40): Behaviour(0.5, ()),
                P(50): Behaviour(0.5, ()),
                P(2): Behaviour(0.25, ()),
                P(3): Behaviour(0.25, ()),
            },
        ),
        check=lambda r: _final(r) == ["P2", "P3", "P10"],
    ),
    # 5. Fewer than k peers exist.
    _LookupCase(
        comment="only 3 peers exist, k = 5: done when all 3 answered",
        clause="DHT-6.3",
        flags=("FewerThanK",),
        k=5,
        alpha=3,
        slow_after=1.0,
        scenario=Scenario(
            [P(10)],
            {
                P(10): Behaviour(0.25, (P(20), P(30))),
                P(20): Behaviour(0.25, (P(10),)),
                P(30): Behaviour(0.25, (P(10), P(20))),
            },
        ),
        check=lambda r: _final(r) == ["P10", "P20", "P30"],
    ),
    # 6. Failures (ERROR replies) are left out and the next candidate is asked.
    _LookupCase(
        comment="P10 fails at once (ERROR): P40 takes its place among the 3 closest",
        clause="DHT-6.6",
        flags=("Failure",),
        k=3,
        alpha=2,
        slow_after=1.0,
        scenario=Scenario(
            [P(40), P(30), P(20), P(10)],
            {
                P(10): Behaviour(latency=None, fail_after=0.125),
                P(20): Behaviour(0.25, ()),
                P(30): Behaviour(0.25, ()),
                P(40): Behaviour(0.25, ()),
            },
        ),
        check=lambda r: _final(r) == ["P20", "P30", "P40"],
    ),
    # 7. No seeds.
    _LookupCase(
        comment="no candidates: finished at once, empty",
        clause="DHT-6.3",
        flags=("NoSeeds",),
        k=3,
        alpha=2,
        slow_after=1.0,
        scenario=Scenario([], {}),
        check=lambda r: (
            r["steps"] == [{"op": "next", "now": T0, "expect": {"step": "finished", "closest": []}}]
        ),
    ),
    # 8. Ignored input: the local id, duplicates, answers from peers never queried.
    _LookupCase(
        comment="its own id, duplicates and answers from unknown peers change nothing",
        clause="DHT-6.4",
        flags=("Ignored",),
        k=3,
        alpha=1,
        slow_after=1.0,
        scenario=Scenario(
            [P(50), P(40)],
            {
                P(40): Behaviour(0.25, (_LOCAL, P(40), P(30), P(30))),
                P(30): Behaviour(0.25, (P(40), _LOCAL)),
                P(50): Behaviour(0.25, ()),
            },
            [(T0 + 0.0625, "success", P(7), (P(1),)), (T0 + 0.125, "failure", P(9), ())],
        ),
        check=lambda r: (
            _final(r) == ["P30", "P40", "P50"]
            and "P1" not in _queried(r)
            and _LOCAL.hex()[:8] not in _queried(r)
        ),
        result="invalid",
    ),
    # 9. Every candidate slower than slow_after: short of k answers, the lookup waits for them.
    _LookupCase(
        comment="all 3 seeds answer at 1.5 s, after slow_after = 1 s: they turn unresponsive at"
        " 1 s, but with fewer than k answers the lookup waits and ends at 1.5 s with all three",
        clause="DHT-6.3",
        flags=("AllUnresponsive", "LateAnswer", "Boundary"),
        k=3,
        alpha=3,
        slow_after=1.0,
        scenario=Scenario(
            [P(30), P(20), P(10)],
            {P(n): Behaviour(1.5, ()) for n in (10, 20, 30)},
            drain_after_finish=True,
        ),
        check=lambda r: _final(r) == ["P10", "P20", "P30"] and _finished_at(r) == T0 + 1.5,
    ),
    # 10. A failure of an unresponsive peer: it stays out; the answer of a failed peer is ignored.
    _LookupCase(
        comment="P10 turns unresponsive at 0.5 s and fails at 0.75 s; its answer at 1 s is ignored",
        clause="DHT-6.6",
        flags=("Failure", "Ignored"),
        k=2,
        alpha=1,
        slow_after=0.5,
        scenario=Scenario(
            [P(30), P(20), P(10)],
            {
                P(10): Behaviour(latency=None, fail_after=0.75),
                P(20): Behaviour(0.25, ()),
                P(30): Behaviour(0.25, ()),
            },
            [(T0 + 1.0, "success", P(10), (P(1),))],
        ),
        check=lambda r: _final(r) == ["P20", "P30"],
        result="invalid",
    ),
)


def build() -> JsonObject:
    v = Vectors("dht_lookup", "railgun-dht-lookup-v1", HEADER, NOTES)
    groups: dict[tuple[int, int, float], list[JsonObject]] = {}
    for case in LOOKUP_CASES:
        params = (case.k, case.alpha, case.slow_after)
        if params not in groups:
            groups[params] = v.group(
                "DhtLookupTest",
                target=_TARGET.hex(),
                localId=_LOCAL.hex(),
                k=case.k,
                alpha=case.alpha,
                slowAfter=case.slow_after,
            )
        script = run(case.scenario, k=case.k, alpha=case.alpha, slow_after=case.slow_after)
        assert case.check(script), (case.comment, _queried(script), _final(script))
        v.test(
            groups[params],
            comment=case.comment,
            result=case.result,
            clause=case.clause,
            flags=case.flags,
            **script,
        )
    return v.document()
