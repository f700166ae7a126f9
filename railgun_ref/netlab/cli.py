"""`railgun-ref netlab up/run/down`: a lab kept between commands, for researchers.

``up`` builds a kept lab (`lab.KEPT` owner) and prints its plan as JSON;
``run ROLE -- ARGV`` runs a command in a role's namespace with the lab's
harness environment; ``down`` removes kept labs and leftovers of dead
builders. Python code drives labs directly with `lab.NetLab`.
"""

import json
import subprocess
from collections.abc import Sequence

from railgun_ref.drivers.console import UsageError
from railgun_ref.netlab.lab import (
    KEPT,
    PREFIX,
    LabError,
    NetLab,
    cleanup_leftovers,
    lab_environment,
    lab_namespaces,
    unavailable_reason,
)
from railgun_ref.netlab.topology import (
    CENTRAL,
    CENTRAL_ALT_IP,
    CENTRAL_ALT_IP6,
    CENTRAL_IP,
    CENTRAL_IP6,
    INTERNET,
    RESOLVER_IP,
    TopologyError,
    parse_topology,
)


def _require_lab() -> None:
    reason = unavailable_reason()
    if reason is not None:
        raise UsageError(reason)


def netlab_up(description: str, *, ipv6: bool = False) -> int:
    """Build a kept lab from ``NAME:NAT,...`` (`ipv6`: dual-stack) and print its plan."""
    _require_lab()
    try:
        topology = parse_topology(description, ipv6=ipv6)
    except TopologyError as exc:
        raise UsageError(str(exc)) from None
    if lab_namespaces(owner=KEPT):
        raise UsageError("a kept lab is already up: `railgun-ref netlab down` first")
    lab = NetLab(topology, keep=True)
    try:
        lab.up()
    except LabError as exc:
        raise UsageError(f"cannot build the lab: {exc}") from None
    plan = {
        "namespaces": {role: lab.namespace(role) for role in (INTERNET, CENTRAL)},
        "central": [CENTRAL_IP, CENTRAL_ALT_IP] + ([CENTRAL_IP6, CENTRAL_ALT_IP6] if ipv6 else []),
        "resolver": RESOLVER_IP,
        "hosts": {
            h.name: {
                "nat": h.nat.value,
                "address": h.address,
                "public": h.public,
                "address6": h.address6 if ipv6 else None,
                "namespace": lab.namespace(h.name),
                "router": lab.namespace(h.router) if h.router else None,
            }
            for h in topology.hosts
        },
    }
    print(json.dumps(plan, indent=2))
    return 0


def netlab_run(role: str, argv: Sequence[str]) -> int:
    """Run `argv` in the kept lab's `role` namespace; its exit status."""
    _require_lab()
    namespace = f"{PREFIX}{KEPT}-{role}"
    if namespace not in lab_namespaces(owner=KEPT):
        raise UsageError(f"no namespace {role!r} in a kept lab (`railgun-ref netlab up` first)")
    if not argv:
        raise UsageError("nothing to run: railgun-ref netlab run ROLE -- COMMAND ...")
    command = ["ip", "netns", "exec", namespace, *argv]
    return subprocess.run(command, env=lab_environment(), check=False).returncode


def netlab_down() -> int:
    """Remove kept labs and the leftovers of crashed builders; print what went."""
    _require_lab()
    for namespace in cleanup_leftovers(kept=True):
        print(f"removed {namespace}")
    return 0
