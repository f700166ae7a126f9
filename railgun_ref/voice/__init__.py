"""Voice: topology selection, SFU host election, call plans, make-before-break switching (sans-IO).

Rail Gun's peer-to-peer voice service (paper/spec.md, section VOICE): `plan_call`
turns the participants of a call and their capabilities (CAP-1.1) into a
`CallPlan` — mesh, one SFU host, or a distributed SFU — and
`CallController` keeps a call's plan over time, switching make-before-break.
Media itself is the driver's (railgun_ref.drivers, aiortc).
"""

from railgun_ref.voice.controller import (
    TRANSITIONS,
    Action,
    CallController,
    CallCounter,
    CallState,
    Connect,
    Disconnect,
    SwitchTo,
    Trigger,
    state_diagram,
)
from railgun_ref.voice.topology import (
    DEFAULT_CONFIG,
    CallPlan,
    Degradation,
    HostCandidate,
    Link,
    Topology,
    VoiceConfig,
    VoiceError,
    bandwidth_per_participant,
    host_candidates,
    host_capacity,
    host_upload_streams,
    link,
    minimum_hosts,
    participants_from_json,
    participants_from_pairs,
    plan_call,
    stream_budget,
    stream_counts,
)

__all__ = [
    "DEFAULT_CONFIG",
    "TRANSITIONS",
    "Action",
    "CallController",
    "CallCounter",
    "CallPlan",
    "CallState",
    "Connect",
    "Degradation",
    "Disconnect",
    "HostCandidate",
    "Link",
    "SwitchTo",
    "Topology",
    "Trigger",
    "VoiceConfig",
    "VoiceError",
    "bandwidth_per_participant",
    "host_candidates",
    "host_capacity",
    "host_upload_streams",
    "link",
    "minimum_hosts",
    "participants_from_json",
    "participants_from_pairs",
    "plan_call",
    "state_diagram",
    "stream_budget",
    "stream_counts",
]
