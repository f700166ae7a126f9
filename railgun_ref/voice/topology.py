"""Voice call topology (VOICE-1 .. VOICE-3): mesh, one SFU host, or several, as a pure function.

`plan_call` maps the participants of a call and the capabilities they
advertise (CAP-1.1) to a `CallPlan`: the topology, the SFU hosts best first,
and which host every participant sends to and receives from. Every node that
holds the same advertisements (and the same previous plan) computes the same
plan, so a call needs no election round (VOICE-1.2).

Theory of operation (the spec clause of each step in brackets):

1. The participant count N and the previous plan give the *least* number of
   hosts, ``h_min``: 0 up to 4 participants, 1 from 5, 2 from 13 (the topology
   table, spec §0.7), with hysteresis on the way down (VOICE-2.1, VOICE-2.2).
2. Host candidates are the participants eligible for ``sfu-host`` (CAP-4.2,
   CAP-4.3) that are not cooling down after a failure (VOICE-5.1), ranked by
   CAP-4.4 with a bonus for the previous plan's hosts, so a challenger must
   beat an incumbent by a margin (VOICE-2.3).
3. A host's capacity is how many participants it can serve, from its upload
   budget in streams and its relay connection limit (VOICE-3.1, VOICE-3.2).
   The number of hosts is the smallest that carries N, at least ``h_min``,
   and not fewer than the previous plan had while those still carry N + 1
   (VOICE-3.3).
4. Participants keep their previous host while it has room, the rest go to
   the host with the most room left (VOICE-3.4).
5. If no host qualifies the call falls back to a mesh; if the hosts cannot
   carry it, to the hosts that carry the most, overloaded; either way the plan
   says it is ``degraded`` (VOICE-3.5).

Invariants a `CallPlan` keeps (checked when built, VOICE-1.1): participants
are sorted and unique; a mesh has no hosts and no assignment; an SFU has one
host, a distributed SFU at least two; every participant is assigned to
exactly one host and every host to itself.

Units: bit rates are bits per second (``_bps``), DeviceCapabilities
bandwidths bytes per second; the conversion multiplies by 8, in integers.
"""

import dataclasses
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from types import MappingProxyType
from typing import Any, Final, Self

from railgun_ref.abuse.reputation import DEFAULT_CONFIG as REPUTATION_DEFAULTS
from railgun_ref.abuse.reputation import rank_score
from railgun_ref.capacity.scoring import score
from railgun_ref.capacity.selection import Role, is_eligible
from railgun_ref.capacity.types import DeviceCapabilities
from railgun_ref.core.constants import NODE_ID_SIZE
from railgun_ref.core.errors import LocalProtocolError
from railgun_ref.core.ids import NodeId

#: An undirected media link (a peer connection), as (smaller id, larger id).
Link = tuple[NodeId, NodeId]


class VoiceError(LocalProtocolError):
    """The caller asked for a plan of an impossible call (VOICE-1.1, VOICE-1.2)."""


class Topology(Enum):
    """VOICE-1.1: how the media of a call flows (Rail Gun's topology selection)."""

    MESH = "mesh"  #: every participant sends to every other one directly
    SFU = "sfu"  #: one participant forwards everyone's streams
    DISTRIBUTED_SFU = "distributed-sfu"  #: several hosts, each for a share, linked to each other


class Degradation(StrEnum):
    """VOICE-3.5: why a plan is not the one the participant count calls for."""

    NO_ELIGIBLE_HOST = "no-eligible-host"  #: no participant can host: mesh instead
    INSUFFICIENT_CAPACITY = "insufficient-capacity"  #: hosts overloaded: some hold too many


#: VOICE-2.1: at most this many participants talk in a mesh (the topology table: 1-4).
MESH_MAX_PARTICIPANTS: Final = 4
#: VOICE-2.1: at most this many participants share one SFU host (the topology table: 5-12).
SFU_MAX_PARTICIPANTS: Final = 12
#: VOICE-2.2: participants below a threshold a call must fall before it steps down.
TOPOLOGY_HYSTERESIS: Final = 1
#: VOICE-3.1: one Opus voice stream on the wire, bit/s (40 kbit/s Opus + RTP/SRTP/UDP/IP).
STREAM_BITRATE_BPS: Final = 64_000
#: VOICE-2.3: millipoints (CAP-2.1) a challenger must beat an incumbent host by (10 points).
HOST_SWITCH_MARGIN: Final = 10_000
#: VOICE-5.1: seconds a failed host may not host again.
HOST_COOLDOWN: Final = 60.0
#: VOICE-4.2: seconds the controller waits for a new plan's links before switching anyway.
SWITCH_TIMEOUT: Final = 5.0


def _check_count(name: str, value: object, minimum: int) -> None:
    if type(value) is not int or value < minimum:
        raise VoiceError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_seconds(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise VoiceError(f"{name} must be a number of seconds")
    if not 0.0 < value < float("inf"):  # NaN fails this too
        raise VoiceError(f"{name} must be positive and finite, got {value}")


@dataclass(frozen=True, slots=True, kw_only=True)
class VoiceConfig:
    """The parameters of VOICE (paper/spec.md section 16), each with its unit and clause."""

    #: VOICE-2.1: largest mesh, participants.
    mesh_max_participants: int = MESH_MAX_PARTICIPANTS
    #: VOICE-2.1: largest single-host call, participants.
    sfu_max_participants: int = SFU_MAX_PARTICIPANTS
    #: VOICE-2.2: participants; a topology steps down at threshold - hysteresis, not at it.
    topology_hysteresis: int = TOPOLOGY_HYSTERESIS
    #: VOICE-3.1: bit/s of one voice stream on the wire, headers included.
    stream_bitrate_bps: int = STREAM_BITRATE_BPS
    #: VOICE-2.3: millipoints an incumbent host is credited with.
    host_switch_margin: int = HOST_SWITCH_MARGIN
    #: VOICE-5.1: seconds a failed host is excluded from hosting.
    host_cooldown: float = HOST_COOLDOWN
    #: VOICE-4.2: seconds to wait for new links before tearing old ones down anyway.
    switch_timeout: float = SWITCH_TIMEOUT

    def __post_init__(self) -> None:
        _check_count("mesh_max_participants", self.mesh_max_participants, 1)
        _check_count("sfu_max_participants", self.sfu_max_participants, 1)
        if self.sfu_max_participants <= self.mesh_max_participants:
            raise VoiceError("sfu_max_participants must exceed mesh_max_participants")
        _check_count("topology_hysteresis", self.topology_hysteresis, 0)
        if self.topology_hysteresis >= self.mesh_max_participants:
            raise VoiceError("topology_hysteresis must be below mesh_max_participants")
        _check_count("stream_bitrate_bps", self.stream_bitrate_bps, 1)
        _check_count("host_switch_margin", self.host_switch_margin, 0)
        _check_seconds("host_cooldown", self.host_cooldown)
        _check_seconds("switch_timeout", self.switch_timeout)

    def to_json(self) -> dict[str, Any]:
        """The JSON form: camelCase names (`_CONFIG_JSON`), numbers as given."""
        return {json: getattr(self, name) for name, json in _CONFIG_JSON.items()}

    @classmethod
    def from_json(cls, value: object) -> Self:
        """Parse the JSON form (camelCase names); absent fields take their defaults."""
        if not isinstance(value, dict):
            raise VoiceError("a voice config is a JSON object")
        unknown = sorted(set(value) - set(_CONFIG_JSON.values()))
        if unknown:
            raise VoiceError(f"unknown voice config field {unknown[0]!r}")
        return cls(**{name: value[json] for name, json in _CONFIG_JSON.items() if json in value})


#: VoiceConfig field -> JSON name.
_CONFIG_JSON: Final = {
    "mesh_max_participants": "meshMaxParticipants",
    "sfu_max_participants": "sfuMaxParticipants",
    "topology_hysteresis": "topologyHysteresis",
    "stream_bitrate_bps": "streamBitrateBps",
    "host_switch_margin": "hostSwitchMargin",
    "host_cooldown": "hostCooldown",
    "switch_timeout": "switchTimeout",
}

DEFAULT_CONFIG: Final = VoiceConfig()

#: VOICE-7.6: bit/s a video stream adds on the wire (320x240 VP8 at 300 kbit/s, headers
#: and the occasional keyframe included).
VIDEO_STREAM_BITRATE_BPS: Final = 330_000


def with_video(config: VoiceConfig = DEFAULT_CONFIG) -> VoiceConfig:
    """VOICE-7.6: the config of a video call, whose every stream is audio plus video."""
    bitrate = config.stream_bitrate_bps + VIDEO_STREAM_BITRATE_BPS
    return dataclasses.replace(config, stream_bitrate_bps=bitrate)


def link(a: NodeId, b: NodeId) -> Link:
    """The undirected link between `a` and `b`, in its one normal form (VOICE-1.1)."""
    if a == b:
        raise VoiceError("a link joins two different participants")
    return (a, b) if a < b else (b, a)


def _check_node_id(node_id: object) -> None:
    if not isinstance(node_id, bytes) or len(node_id) != NODE_ID_SIZE:
        raise VoiceError(f"a participant is a {NODE_ID_SIZE}-byte NodeId, got {node_id!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class CallPlan:
    """VOICE-1.1: who sends media to whom in a call.

    `hosts` are best first; `assignment` maps every participant to the host it
    sends to and receives from (a host to itself); both are empty for a mesh.
    `degraded` is None unless the plan is a fallback (VOICE-3.5).
    """

    topology: Topology
    participants: tuple[NodeId, ...]  #: sorted ascending, unique, at least one
    hosts: tuple[NodeId, ...]  #: SFU hosts, best first; () for MESH
    assignment: Mapping[NodeId, NodeId]  #: participant -> its host; {} for MESH
    degraded: Degradation | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.topology, Topology):
            raise VoiceError(f"topology must be a Topology, got {self.topology!r}")
        participants = tuple(self.participants)
        hosts = tuple(self.hosts)
        if not participants:
            raise VoiceError("a call has at least one participant")
        for node_id in participants:
            _check_node_id(node_id)
        if list(participants) != sorted(set(participants)):
            raise VoiceError("participants must be sorted and unique")
        if len(set(hosts)) != len(hosts) or not set(hosts) <= set(participants):
            raise VoiceError("hosts must be distinct participants")
        assignment = dict(self.assignment)
        match self.topology:
            case Topology.MESH:
                if hosts or assignment:
                    raise VoiceError("a mesh has no hosts and no assignment")
            case Topology.SFU | Topology.DISTRIBUTED_SFU:
                want = 1 if self.topology is Topology.SFU else 2
                if (len(hosts) != 1) if want == 1 else (len(hosts) < 2):
                    raise VoiceError(f"{self.topology.value} with {len(hosts)} hosts")
                if set(assignment) != set(participants):
                    raise VoiceError("every participant is assigned exactly once")
                if not set(assignment.values()) <= set(hosts):
                    raise VoiceError("participants are assigned to hosts only")
                if any(assignment[h] != h for h in hosts):
                    raise VoiceError("a host is assigned to itself")
        if self.degraded is not None and not isinstance(self.degraded, Degradation):
            raise VoiceError(f"degraded must be a Degradation or None, got {self.degraded!r}")
        object.__setattr__(self, "participants", participants)
        object.__setattr__(self, "hosts", hosts)
        ordered = {p: assignment[p] for p in participants if p in assignment}
        object.__setattr__(self, "assignment", MappingProxyType(ordered))

    @property
    def is_degraded(self) -> bool:
        return self.degraded is not None

    def media_links(self) -> tuple[Link, ...]:
        """VOICE-1.1: the peer connections the plan needs, sorted.

        Mesh: every pair. SFU: each participant with its host. Distributed:
        each participant with its host, and every pair of hosts.
        """
        links: set[Link] = set()
        if self.topology is Topology.MESH:
            people = self.participants
            links = {link(a, b) for i, a in enumerate(people) for b in people[i + 1 :]}
        else:
            links = {link(p, h) for p, h in self.assignment.items() if p != h}
            links |= {link(a, b) for i, a in enumerate(self.hosts) for b in self.hosts[i + 1 :]}
        return tuple(sorted(links))

    def links_of(self, node_id: NodeId) -> tuple[Link, ...]:
        """The media links of `node_id` (what its own driver opens)."""
        return tuple(pair for pair in self.media_links() if node_id in pair)

    def served_by(self, host: NodeId) -> tuple[NodeId, ...]:
        """The participants assigned to `host`, itself included, sorted."""
        return tuple(p for p, h in self.assignment.items() if h == host)

    def to_json(self) -> dict[str, Any]:
        """The JSON form vectors write: hex ids, the topology's and degradation's strings."""
        return {
            "topology": self.topology.value,
            "participants": [p.hex() for p in self.participants],
            "hosts": [h.hex() for h in self.hosts],
            "assignment": {p.hex(): h.hex() for p, h in self.assignment.items()},
            "degraded": None if self.degraded is None else self.degraded.value,
        }

    @classmethod
    def from_json(cls, value: object) -> Self:
        """Parse the JSON form; raises `VoiceError` if it is not a well-formed plan."""
        if not isinstance(value, dict):
            raise VoiceError("a call plan is a JSON object")
        expected = {"topology", "participants", "hosts", "assignment", "degraded"}
        if set(value) != expected:
            raise VoiceError(f"a call plan has exactly the fields {sorted(expected)}")
        try:
            topology = Topology(value["topology"])
            degraded = None if value["degraded"] is None else Degradation(value["degraded"])
            assignment = value["assignment"]
            if not isinstance(assignment, dict):
                raise VoiceError("assignment is a JSON object")
            return cls(
                topology=topology,
                participants=tuple(_node_from_hex(p) for p in value["participants"]),
                hosts=tuple(_node_from_hex(h) for h in value["hosts"]),
                assignment={_node_from_hex(p): _node_from_hex(h) for p, h in assignment.items()},
                degraded=degraded,
            )
        except (ValueError, TypeError) as exc:
            raise VoiceError(f"malformed call plan: {exc}") from None


def _node_from_hex(text: object) -> NodeId:
    if not isinstance(text, str):
        raise VoiceError("a NodeId is written as a hex string")
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise VoiceError(f"not a hex NodeId: {text!r}") from None
    _check_node_id(raw)
    return NodeId(raw)


def participants_from_pairs(
    pairs: Iterable[tuple[NodeId, DeviceCapabilities]],
) -> dict[NodeId, DeviceCapabilities]:
    """VOICE-1.2: a participant list as a mapping, refusing a NodeId given twice."""
    out: dict[NodeId, DeviceCapabilities] = {}
    for node_id, capabilities in pairs:
        _check_node_id(node_id)
        if node_id in out:
            raise VoiceError(f"participant {node_id.hex()} given twice")
        out[node_id] = capabilities
    return out


def participants_from_json(value: object) -> dict[NodeId, DeviceCapabilities]:
    """Parse ``[{"nodeId": hex, "capabilities": {CAP-1.1 JSON}}, ...]`` (VOICE-1.2)."""
    if not isinstance(value, list):
        raise VoiceError("participants are a JSON array")
    pairs = []
    for item in value:
        if not isinstance(item, dict) or set(item) != {"nodeId", "capabilities"}:
            raise VoiceError("a participant is {nodeId, capabilities}")
        pairs.append(
            (_node_from_hex(item["nodeId"]), DeviceCapabilities.from_json(item["capabilities"]))
        )
    return participants_from_pairs(pairs)


# ------------------------------------------------------------------ capacity (VOICE-3.1, 3.2)


def stream_budget(capabilities: DeviceCapabilities, config: VoiceConfig = DEFAULT_CONFIG) -> int:
    """VOICE-3.1: whole streams a host may send at once.

    ``floor(min(uploadBandwidth, maxRelayBandwidth) x 8 / stream_bitrate_bps)``.
    """
    budget = min(capabilities.upload_bandwidth, capabilities.max_relay_bandwidth)
    return budget * 8 // config.stream_bitrate_bps


def host_upload_streams(served: int, participants: int, hosts: int) -> int:
    """VOICE-3.2: streams a host serving `served` participants (itself included) sends.

    Every other participant's stream to each of its ``served - 1`` participants,
    and its participants' streams to each of the ``hosts - 1`` other hosts.
    """
    return (served - 1) * (participants - 1) + (hosts - 1) * served


def host_capacity(
    capabilities: DeviceCapabilities,
    participants: int,
    hosts: int,
    config: VoiceConfig = DEFAULT_CONFIG,
) -> int:
    """VOICE-3.2: most participants (itself included) one of `hosts` hosts can serve; 0: none.

    The largest L in 1..`participants` with ``host_upload_streams(L, ...)`` within
    `stream_budget` and ``(L - 1) + (hosts - 1)`` connections within maxRelayConnections.
    """
    if participants < 1 or hosts < 1:
        raise VoiceError("a hosted call has at least one participant and one host")
    budget = stream_budget(capabilities, config)
    connections = capabilities.max_relay_connections
    if hosts - 1 > budget or hosts - 1 > connections:
        return 0
    per_participant = participants + hosts - 2  # the increase of upload_streams per L
    by_bandwidth = (
        participants if per_participant == 0 else (budget + participants - 1) // per_participant
    )
    by_connections = connections - hosts + 2
    return max(0, min(participants, by_bandwidth, by_connections))


# ------------------------------------------------------------------ selection (VOICE-2)


def minimum_hosts(count: int, previous: CallPlan | None, config: VoiceConfig) -> int:
    """VOICE-2.1, VOICE-2.2: the least number of hosts for `count` participants."""
    hyst = config.topology_hysteresis
    was = previous.topology if previous is not None else Topology.MESH
    if count > config.sfu_max_participants:
        return 2
    if was is Topology.DISTRIBUTED_SFU and count > config.sfu_max_participants - hyst:
        return 2
    if count > config.mesh_max_participants:
        return 1
    if was is not Topology.MESH and count > config.mesh_max_participants - hyst:
        return 1
    return 0


@dataclass(frozen=True, slots=True, kw_only=True)
class HostCandidate:
    """VOICE-2.3: a participant that may host, with its score and the bonus it ranks by."""

    node_id: NodeId
    score: int  #: CAP-2.1 total, millipoints
    incumbent: bool  #: a host of the previous plan (ranked with host_switch_margin added)
    capabilities: DeviceCapabilities = field(repr=False)


def host_candidates(
    participants: Mapping[NodeId, DeviceCapabilities],
    *,
    config: VoiceConfig = DEFAULT_CONFIG,
    previous: CallPlan | None = None,
    excluded: Collection[NodeId] = (),
    reputation: Mapping[NodeId, int] | None = None,
) -> tuple[HostCandidate, ...]:
    """VOICE-2.3: the participants that may host, in election order.

    Eligible for ``sfu-host`` (CAP-4.2, CAP-4.3) and not in `excluded`; ordered
    by score (plus `host_switch_margin` for a previous host) descending, then
    previous hosts before others, then NodeId bytes ascending.

    `reputation` (REP-5.2) makes the score `rank_score` and drops participants
    below the host threshold. Every participant must pass the *same* mapping
    (one all of them hold, such as the reputation of the call's initiator sent
    with the call), or they elect different hosts (VOICE-1.2).
    """
    incumbents = set(previous.hosts) if previous is not None else set()
    rep = {} if reputation is None else reputation
    floor = REPUTATION_DEFAULTS.host_threshold
    found = [
        HostCandidate(
            node_id=node_id,
            score=rank_score(score(caps).total, rep.get(node_id, 0)),
            incumbent=node_id in incumbents,
            capabilities=caps,
        )
        for node_id, caps in participants.items()
        if node_id not in excluded
        and is_eligible(caps, Role.SFU_HOST)
        and rep.get(node_id, 0) >= floor
    ]
    margin = config.host_switch_margin
    found.sort(
        key=lambda c: (-(c.score + (margin if c.incumbent else 0)), not c.incumbent, c.node_id)
    )
    return tuple(found)


def _select(
    order: tuple[HostCandidate, ...], count: int, hosts: int, target: int, config: VoiceConfig
) -> list[tuple[HostCandidate, int]] | None:
    """VOICE-3.3: the first set (by election order) of `hosts` candidates, each with capacity
    >= 1 at (count, hosts), whose capacities add up to `target`; None if there is none.

    Greedy per slot: take the earliest candidate that, with the largest capacities
    still after it, can reach `target` (this yields the lexicographically first set).
    """
    capacities = [host_capacity(c.capabilities, count, hosts, config) for c in order]
    usable = [i for i, capacity in enumerate(capacities) if capacity >= 1]
    chosen: list[int] = []
    total = 0
    start = 0
    for slot in range(hosts):
        remaining = hosts - slot - 1
        for k in range(start, len(usable)):
            rest = sorted((capacities[j] for j in usable[k + 1 :]), reverse=True)[:remaining]
            if len(rest) < remaining:
                return None
            if total + capacities[usable[k]] + sum(rest) >= target:
                chosen.append(usable[k])
                total += capacities[usable[k]]
                start = k + 1
                break
        else:
            return None
    return [(order[i], capacities[i]) for i in chosen]


def _fit(
    order: tuple[HostCandidate, ...], count: int, lowest: int, config: VoiceConfig
) -> list[tuple[HostCandidate, int]] | None:
    """VOICE-3.3: the first host set of the smallest h >= `lowest` that carries `count`."""
    for hosts in range(max(lowest, 1), len(order) + 1):
        chosen = _select(order, count, hosts, count, config)
        if chosen is not None:
            return chosen
    return None


def _assign(
    participants: tuple[NodeId, ...],
    hosts: list[tuple[HostCandidate, int]],
    previous: CallPlan | None,
) -> dict[NodeId, NodeId]:
    """VOICE-3.4: hosts to themselves; others keep their previous host while it has room,
    then each (NodeId ascending) goes to the host with the most room left (ties: host order)."""
    room = {candidate.node_id: capacity - 1 for candidate, capacity in hosts}
    assignment = {candidate.node_id: candidate.node_id for candidate, _ in hosts}
    others = [p for p in participants if p not in assignment]
    if previous is not None:
        for p in others:
            before = previous.assignment.get(p)
            if before is not None and before in room and room[before] > 0:
                assignment[p] = before
                room[before] -= 1
    order = [candidate.node_id for candidate, _ in hosts]
    for p in others:
        if p in assignment:
            continue
        best = max(order, key=lambda h: (room[h], -order.index(h)))
        assignment[p] = best
        room[best] -= 1
    return assignment


def plan_call(
    participants: Mapping[NodeId, DeviceCapabilities],
    *,
    config: VoiceConfig = DEFAULT_CONFIG,
    previous: CallPlan | None = None,
    excluded: Collection[NodeId] = (),
    reputation: Mapping[NodeId, int] | None = None,
) -> CallPlan:
    """VOICE-1.2 .. VOICE-3.5: the plan of a call of `participants`.

    `previous` is the plan in force (or being switched to), for hysteresis and
    stickiness; `excluded` are participants that may not host now (failed
    hosts cooling down, VOICE-5.1); `reputation` is a view all participants
    share (REP-5.2, `host_candidates`). Raises `VoiceError` for an empty call.
    """
    if not participants:
        raise VoiceError("a call has at least one participant")  # VOICE-1.2
    for node_id, capabilities in participants.items():
        _check_node_id(node_id)
        if not isinstance(capabilities, DeviceCapabilities):
            raise VoiceError(f"participant {node_id.hex()} has no DeviceCapabilities")
    people = tuple(sorted(participants))
    count = len(people)
    least = minimum_hosts(count, previous, config)
    if least == 0:
        return CallPlan(topology=Topology.MESH, participants=people, hosts=(), assignment={})
    order = host_candidates(
        participants, config=config, previous=previous, excluded=excluded, reputation=reputation
    )
    lowest = least
    if previous is not None and previous.hosts:
        # VOICE-3.3: keep as many hosts as before while they would still carry one more.
        ahead = _fit(order, count + 1, least, config)
        keep = len(previous.hosts) if ahead is None else min(len(previous.hosts), len(ahead))
        lowest = max(least, keep)
    chosen = _fit(order, count, lowest, config)
    degraded: Degradation | None = None
    if chosen is None:
        chosen = _fallback_hosts(order, count, config)
        if chosen is None:  # VOICE-3.5: nobody can host
            return CallPlan(
                topology=Topology.MESH,
                participants=people,
                hosts=(),
                assignment={},
                degraded=Degradation.NO_ELIGIBLE_HOST,
            )
        degraded = Degradation.INSUFFICIENT_CAPACITY
    assignment = _assign(people, chosen, previous)
    return CallPlan(
        topology=Topology.SFU if len(chosen) == 1 else Topology.DISTRIBUTED_SFU,
        participants=people,
        hosts=tuple(candidate.node_id for candidate, _ in chosen),
        assignment=assignment,
        degraded=degraded,
    )


def _fallback_hosts(
    order: tuple[HostCandidate, ...], count: int, config: VoiceConfig
) -> list[tuple[HostCandidate, int]] | None:
    """VOICE-3.5: the first host set of the h whose best capacities add up to most (ties:
    fewer), if they serve more than themselves; else None."""
    best_hosts, best_total = 0, 0
    for hosts in range(1, len(order) + 1):
        capacities = sorted(
            (host_capacity(c.capabilities, count, hosts, config) for c in order), reverse=True
        )[:hosts]
        total = sum(capacities)
        # hosts that could serve nobody but themselves are no help: then a mesh
        if capacities[-1] >= 1 and total > hosts and total > best_total:
            best_hosts, best_total = hosts, total
    if best_hosts == 0:
        return None
    return _select(order, count, best_hosts, best_total, config)


# ------------------------------------------------------------------ bandwidth (VOICE-3.6)


def stream_counts(plan: CallPlan) -> Mapping[NodeId, tuple[int, int]]:
    """VOICE-3.6: streams each participant sends and receives at once, (up, down).

    Everyone receives every other participant's stream once (N - 1). A mesh
    participant sends its stream to each other one; an SFU participant sends
    one stream to its host; a host sends `host_upload_streams`.
    """
    count = len(plan.participants)
    if plan.topology is Topology.MESH:
        return MappingProxyType({p: (count - 1, count - 1) for p in plan.participants})
    hosts = len(plan.hosts)
    served = {h: len(plan.served_by(h)) for h in plan.hosts}
    out: dict[NodeId, tuple[int, int]] = {}
    for p, h in plan.assignment.items():
        if p == h:
            out[p] = (host_upload_streams(served[h], count, hosts), count - 1)
        else:
            out[p] = (1, count - 1)
    return MappingProxyType(out)


def bandwidth_per_participant(
    plan: CallPlan, bitrate_bps: int = STREAM_BITRATE_BPS
) -> Mapping[NodeId, tuple[int, int]]:
    """VOICE-3.6: (upload, download) bit/s of each participant at `bitrate_bps` per stream."""
    if type(bitrate_bps) is not int or bitrate_bps < 0:
        raise VoiceError("bitrate_bps must be an integer >= 0")
    return MappingProxyType(
        {p: (up * bitrate_bps, down * bitrate_bps) for p, (up, down) in stream_counts(plan).items()}
    )
