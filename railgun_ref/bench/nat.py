"""`railgun-ref bench nat`: NAT traversal (spec §20) for every pair of NAT behaviours.

For every ordered pair (initiator's NAT, responder's NAT) of none (open),
full-cone, restricted, port-restricted and symmetric, `attempts` connection
attempts, each from fresh sockets and identities (so fresh NAT mappings):
register with the relay on the central host, then one attempt (up to
`TraversalConfig.max_attempts` punch attempts inside it) from the initiator.

``--driver netlab`` (default; root): real `railgun_ref.netlab.agent` peer
processes in the lab's namespaces, behind kernel NATs (nftables), the relay
on the central host; the lab's round trip is well under a millisecond, so
times measure the protocol's own steps. ``--driver sim``: the same cores in
the simulator behind `NatBox`es, 25 ms links, virtual time.

Keys: ``connected_rate`` (attempts that ended direct or relayed),
``punchable_direct_rate`` (attempts of pairs the spec calls punchable,
NAT-3.1, that ended on a direct path), ``first_attempt_rate`` (direct
successes that needed one punch attempt), ``outcomes``,
``attempts_until_success``, ``time_to_direct_ms`` (from the initiator's
CONNECT to its first PUNCH_ACK: the first direct datagram that proves the
path both ways), per pair details, and the anchor measurement in the same
JSON: libp2p's DCUtR hole punching in IPFS, 4.4 million attempts (Trautwein
et al., 2025): 70 % +- 7.1 % success, 97.6 % of successes on the first attempt.
"""

import json
import queue
import statistics
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any, Final

from railgun_ref.capacity.nat import NatType
from railgun_ref.netlab.topology import LAB_NATS
from railgun_ref.traversal.plan import choose_plan, punchable
from railgun_ref.traversal.punch import Outcome

ANCHOR: Final = {
    "name": "libp2p DCUtR hole punching in IPFS, 4.4 M attempts (Trautwein, Ihle, Schubotz, "
    "Gipp, Challenging Tribal Knowledge, arXiv:2510.27500, 2025)",
    "success_rate": 0.70,
    "success_rate_spread": 0.071,
    "first_attempt_rate": 0.976,
}
DIRECT: Final = frozenset({Outcome.DIRECT.value, Outcome.REVERSED.value, Outcome.PUNCHED.value})
CONNECTED: Final = DIRECT | {Outcome.RELAYED.value}
_SHORT: Final = {
    NatType.OPEN: "open",
    NatType.FULL_CONE: "full",
    NatType.RESTRICTED: "restr",
    NatType.PORT_RESTRICTED: "port",
    NatType.SYMMETRIC: "sym",
}


def _pairs() -> Iterator[tuple[NatType, NatType]]:
    for a in LAB_NATS:
        for b in LAB_NATS:
            yield a, b


def _record(
    a: NatType, b: NatType, mine: dict[str, Any], theirs: dict[str, Any] | None
) -> dict[str, Any]:
    return {
        "initiator": a.value,
        "responder": b.value,
        "outcome": mine["outcome"],
        "responder_outcome": theirs["outcome"] if theirs else None,
        "reason": mine["reason"],
        "attempts": mine["attempts"],
        "elapsed_ms": mine["elapsed"] * 1000,
    }


# ------------------------------------------------------------------ sim


def run_sim(attempts: int, seed: int) -> list[dict[str, Any]]:
    from railgun_ref.drivers.sim_traversal import traverse_in_sim  # noqa: PLC0415

    records = []
    for index, (a, b) in enumerate(_pairs()):
        for n in range(attempts):
            mine, theirs = traverse_in_sim(a, b, seed=seed * 100_000 + index * 1000 + n)
            records.append(
                _record(
                    a,
                    b,
                    {
                        "outcome": mine.outcome.value,
                        "reason": mine.reason.value if mine.reason else None,
                        "attempts": mine.attempts,
                        "elapsed": mine.finished - mine.started,
                    },
                    {"outcome": theirs.outcome.value},
                )
            )
    return records


# ------------------------------------------------------------------ netlab


class _Agent:
    """A peer agent process and a thread that queues its stdout lines."""

    def __init__(self, process: "subprocess.Popen[str]") -> None:
        self.process = process
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("{"):
                self.lines.put(json.loads(line))

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def expect(self, event: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            item = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            if item.get("event") == event:
                return item


def _one_netlab_attempt(a: _Agent, b: _Agent) -> tuple[dict[str, Any], dict[str, Any] | None]:
    a.send("new")
    b.send("new")
    a.expect("registered", 10)
    peer = b.expect("registered", 10)
    a.send(f"connect {peer['id']}")
    try:
        mine = a.expect("finished", 20)
    except queue.Empty:
        mine = {"outcome": "failed", "reason": "bench_timeout", "attempts": 0, "elapsed": 20.0}
    try:
        theirs: dict[str, Any] | None = b.expect("finished", 10)
    except queue.Empty:
        theirs = None
    return mine, theirs


def run_netlab(attempts: int) -> list[dict[str, Any]]:
    from railgun_ref.netlab.agent import RELAY_PORT  # noqa: PLC0415
    from railgun_ref.netlab.lab import LabError, NetLab  # noqa: PLC0415
    from railgun_ref.netlab.topology import CENTRAL, CENTRAL_IP, parse_topology  # noqa: PLC0415

    hosts = ",".join(f"{_SHORT[n]}{i}:{n.value}" for n in LAB_NATS for i in (1, 2))
    records = []
    with NetLab(parse_topology(hosts)) as lab:
        relay = lab.start(
            CENTRAL, lab.python("railgun_ref.netlab.agent", "relay", "--host", CENTRAL_IP)
        )
        assert relay.stdout is not None
        if relay.stdout.readline().strip() != "ready":
            raise LabError("the relay did not start")
        agents = {}
        for host in lab.topology.hosts:
            argv = ["peer", "--local", host.address, "--relay", f"{CENTRAL_IP}:{RELAY_PORT}"]
            argv += ["--nat", host.nat.value]
            agents[host.name] = _Agent(
                lab.start(host.name, lab.python("railgun_ref.netlab.agent", *argv))
            )
        for a, b in _pairs():
            for _ in range(attempts):
                mine, theirs = _one_netlab_attempt(agents[f"{_SHORT[a]}1"], agents[f"{_SHORT[b]}2"])
                records.append(_record(a, b, mine, theirs))
    return records


# ------------------------------------------------------------------ summary


def _rate(hits: int, total: int) -> float | None:
    return hits / total if total else None


def _times(records: list[dict[str, Any]]) -> dict[str, float | None]:
    times = sorted(r["elapsed_ms"] for r in records if r["outcome"] in DIRECT)
    if not times:
        return {"median": None, "p95": None, "max": None}
    p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
    return {"median": statistics.median(times), "p95": p95, "max": times[-1]}


def _pair_summary(a: NatType, b: NatType, records: list[dict[str, Any]]) -> dict[str, Any]:
    mine = [r for r in records if r["initiator"] == a.value and r["responder"] == b.value]
    direct = sum(r["outcome"] in DIRECT for r in mine)
    return {
        "initiator": a.value,
        "responder": b.value,
        "punchable": punchable(a, b),
        "plan": choose_plan(a, b).value,
        "attempts": len(mine),
        "outcomes": dict(Counter(r["outcome"] for r in mine)),
        "direct_rate": _rate(direct, len(mine)),
        "both_sides_agree": all(r["responder_outcome"] == r["outcome"] for r in mine),
        "time_to_direct_ms": _times(mine),
    }


def summarise(records: list[dict[str, Any]], *, driver: str, attempts: int) -> dict[str, Any]:
    punchable_records = [
        r for r in records if punchable(NatType(r["initiator"]), NatType(r["responder"]))
    ]
    direct = [r for r in records if r["outcome"] in DIRECT]
    return {
        "benchmark": "nat",
        "driver": driver,
        "attempts_per_pair": attempts,
        "attempts": len(records),
        "connected_rate": _rate(sum(r["outcome"] in CONNECTED for r in records), len(records)),
        "punchable_direct_rate": _rate(
            sum(r["outcome"] in DIRECT for r in punchable_records), len(punchable_records)
        ),
        "first_attempt_rate": _rate(sum(r["attempts"] == 1 for r in direct), len(direct)),
        "direct_rate_all_pairs": _rate(len(direct), len(records)),
        "outcomes": dict(Counter(r["outcome"] for r in records)),
        "failure_reasons": dict(Counter(r["reason"] for r in records if r["reason"])),
        "attempts_until_success": {
            str(k): v for k, v in sorted(Counter(r["attempts"] for r in direct).items())
        },
        "time_to_direct_ms": _times(records),
        "pairs": [_pair_summary(a, b, records) for a, b in _pairs()],
        "anchor": ANCHOR,
    }


def run(*, driver: str, attempts: int, seed: int) -> dict[str, Any]:
    records = run_sim(attempts, seed) if driver == "sim" else run_netlab(attempts)
    return summarise(records, driver=driver, attempts=attempts)


def render(result: dict[str, Any]) -> str:
    lines = [
        f"NAT traversal ({result['driver']}, {result['attempts']} attempts): "
        f"connected {result['connected_rate']:.1%}, punchable pairs direct "
        f"{result['punchable_direct_rate']:.1%}, first attempt {result['first_attempt_rate']:.1%}"
        f" (anchor: DCUtR 70 % +- 7.1 %, 97.6 % first attempt)",
    ]
    for pair in result["pairs"]:
        rate = pair["direct_rate"]
        lines.append(
            f"  {pair['initiator']:>15} -> {pair['responder']:<15} {pair['plan']:<8} "
            f"direct {rate:.0%}  {pair['outcomes']}"
        )
    return "\n".join(lines)


def main(*, json_output: bool, driver: str, attempts: int, seed: int) -> int:
    if driver == "netlab":
        from railgun_ref.drivers.console import UsageError  # noqa: PLC0415
        from railgun_ref.netlab.lab import unavailable_reason  # noqa: PLC0415

        reason = unavailable_reason()
        if reason is not None:
            raise UsageError(f"{reason}; --driver sim runs without it")
    result = run(driver=driver, attempts=attempts, seed=seed)
    print(json.dumps(result, indent=2) if json_output else render(result))
    return 0
