"""Capacity-aware selection (CAP-4.x): who may host a role, and in which order.

Four hosting roles take capacity from the device that plays them: forwarding
for others (``relay``), a peer-hosted TURN server (``turn``), the SFU of a
group call (``sfu-host``) and holding store-and-forward messages
(``message-storage``). A candidate is first checked against the role's
eligibility rules (CAP-4.2, CAP-4.3); the eligible ones are then ranked by
total score, highest first, ties broken by NodeId bytes ascending (CAP-4.4),
so every node that knows the same advertisements picks the same hosts.

With the local node's peer reputation (REP-5) the order is by
`railgun_ref.abuse.reputation.rank_score` instead -- capacity plus clamped
reputation -- and peers below the host threshold are ruled out
(``low-reputation``); without it, ranking is capacity alone, as before.

`eligibility` returns *every* reason a candidate is ruled out, in the fixed
order of `Ineligibility`, so a notebook (or a vector) can show why.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from railgun_ref.abuse.reputation import DEFAULT_CONFIG as REPUTATION_DEFAULTS
from railgun_ref.abuse.reputation import ReputationConfig, rank_score
from railgun_ref.capacity.nat import NatType
from railgun_ref.capacity.scoring import CapacityScore, score
from railgun_ref.capacity.types import DeviceCapabilities, DeviceClass
from railgun_ref.core.errors import LocalProtocolError
from railgun_ref.core.ids import NodeId


class Role(StrEnum):
    """CAP-4.1: the hosting roles capacity-aware selection fills."""

    RELAY = "relay"
    TURN = "turn"
    SFU_HOST = "sfu-host"
    MESSAGE_STORAGE = "message-storage"


class Ineligibility(StrEnum):
    """CAP-4.2, CAP-4.3: why a candidate may not host a role (in reporting order)."""

    CELLULAR = "mobile-cellular"  #: metered link behind carrier-grade NAT: no hosting role
    NOT_TURN_CAPABLE = "cannot-act-as-turn"  #: turn needs canActAsTurn
    NOT_STORAGE_CAPABLE = "cannot-store-messages"  #: message-storage needs canStoreMessages
    NO_RELAY_CAPACITY = "no-relay-capacity"  #: maxRelayConnections or maxRelayBandwidth is 0
    NAT_UNSUITABLE = "nat-unsuitable"  #: the role's NAT rule excludes the node's NAT type
    ON_BATTERY = "on-battery"  #: long-lived roles never run on battery
    LOW_BATTERY = "battery-low"  #: on battery below the level (or with no level) a role needs
    LOW_REPUTATION = "low-reputation"  #: REP-4.1: score below the host threshold


#: CAP-4.3: on battery, relay and sfu-host need at least this charge (percent).
MIN_BATTERY_PERCENT: Final = 50

#: CAP-4.2: NAT types each role accepts.
_REACHABLE: Final = frozenset(NatType) - {NatType.UDP_BLOCKED}
_ROLE_NATS: Final[dict[Role, frozenset[NatType]]] = {
    Role.RELAY: _REACHABLE,
    Role.TURN: frozenset({NatType.OPEN, NatType.FULL_CONE}),
    Role.SFU_HOST: _REACHABLE - {NatType.SYMMETRIC, NatType.UNKNOWN},
    Role.MESSAGE_STORAGE: _REACHABLE,
}
#: CAP-4.3: roles held for hours (a TURN allocation, 7-day mailboxes): never on battery.
_LONG_LIVED: Final = frozenset({Role.TURN, Role.MESSAGE_STORAGE})
#: CAP-4.2: roles that forward others' traffic and so need relay capacity.
_FORWARDING: Final = frozenset({Role.RELAY, Role.TURN})


def accepted_nat_types(role: Role) -> frozenset[NatType]:
    """CAP-4.2: the NAT types a host of `role` may be behind."""
    return _ROLE_NATS[role]


def eligibility(capabilities: DeviceCapabilities, role: Role) -> tuple[Ineligibility, ...]:
    """CAP-4.2, CAP-4.3: every reason `capabilities` may not host `role`; () if eligible."""
    reasons: list[Ineligibility] = []
    if capabilities.device_class is DeviceClass.MOBILE_CELLULAR:
        reasons.append(Ineligibility.CELLULAR)
    if role is Role.TURN and not capabilities.can_act_as_turn:
        reasons.append(Ineligibility.NOT_TURN_CAPABLE)
    if role is Role.MESSAGE_STORAGE and not capabilities.can_store_messages:
        reasons.append(Ineligibility.NOT_STORAGE_CAPABLE)
    if role in _FORWARDING and (
        capabilities.max_relay_connections == 0 or capabilities.max_relay_bandwidth == 0
    ):
        reasons.append(Ineligibility.NO_RELAY_CAPACITY)
    if capabilities.nat_type not in _ROLE_NATS[role]:
        reasons.append(Ineligibility.NAT_UNSUITABLE)
    if capabilities.on_battery:
        battery = capabilities.battery_status
        if role in _LONG_LIVED:
            reasons.append(Ineligibility.ON_BATTERY)
        elif battery is None or battery.level_percent < MIN_BATTERY_PERCENT:
            reasons.append(Ineligibility.LOW_BATTERY)
    return tuple(reasons)


def is_eligible(capabilities: DeviceCapabilities, role: Role) -> bool:
    return not eligibility(capabilities, role)


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    """A node that could host a role, with the capabilities it advertised."""

    node_id: NodeId
    capabilities: DeviceCapabilities


@dataclass(frozen=True, slots=True, kw_only=True)
class Ranked:
    """An eligible candidate and its score, as `rank_candidates` orders them."""

    node_id: NodeId
    score: CapacityScore
    reputation: int  #: REP-2.1 score used, millipoints (0 without reputation)
    rank: int  #: REP-5.1 rank_score; equals score.total without reputation


@dataclass(frozen=True, slots=True, kw_only=True)
class Ranking:
    """The outcome of selection for one role: the eligible in order, the rest with reasons."""

    role: Role
    ranked: tuple[Ranked, ...]  #: best first (CAP-4.4)
    excluded: tuple[tuple[NodeId, tuple[Ineligibility, ...]], ...]  #: by NodeId ascending

    def best(self, count: int = 1) -> list[NodeId]:
        """The node ids of the `count` best eligible candidates (fewer if fewer are eligible)."""
        if count < 0:
            raise LocalProtocolError("count must not be negative")
        return [entry.node_id for entry in self.ranked[:count]]


def rank_candidates(
    candidates: Iterable[Candidate],
    role: Role,
    *,
    reputation: Mapping[NodeId, int] | None = None,
    reputation_config: ReputationConfig = REPUTATION_DEFAULTS,
) -> Ranking:
    """CAP-4.4: the eligible candidates by score descending, then NodeId bytes ascending.

    With `reputation` (REP-5.1: peer -> score, unknown peers 0) the order is by
    `rank_score` and peers below the host threshold are excluded (REP-4.1).
    Raises `LocalProtocolError` if a node id appears twice: which of two
    advertisements counts is the caller's decision (the newest, CAP-3.6).
    """
    seen: set[NodeId] = set()
    ranked: list[Ranked] = []
    excluded: list[tuple[NodeId, tuple[Ineligibility, ...]]] = []
    for candidate in candidates:
        if candidate.node_id in seen:
            raise LocalProtocolError(f"candidate {candidate.node_id.hex()} given twice")
        seen.add(candidate.node_id)
        reasons = eligibility(candidate.capabilities, role)
        known = 0 if reputation is None else reputation.get(candidate.node_id, 0)
        if known < reputation_config.host_threshold:
            reasons += (Ineligibility.LOW_REPUTATION,)
        if reasons:
            excluded.append((candidate.node_id, reasons))
            continue
        capacity = score(candidate.capabilities)
        rank = rank_score(capacity.total, known, reputation_config)
        ranked.append(
            Ranked(node_id=candidate.node_id, score=capacity, reputation=known, rank=rank)
        )
    ranked.sort(key=lambda entry: (-entry.rank, entry.node_id))
    excluded.sort(key=lambda entry: entry[0])
    return Ranking(role=role, ranked=tuple(ranked), excluded=tuple(excluded))


def select_hosts(
    candidates: Iterable[Candidate],
    role: Role,
    count: int = 1,
    *,
    reputation: Mapping[NodeId, int] | None = None,
) -> list[NodeId]:
    """The `count` best hosts for `role` among `candidates` (CAP-4.4, REP-5.1)."""
    return rank_candidates(candidates, role, reputation=reputation).best(count)
