"""`railgun-ref bench attacks`: the scenarios of `drivers.attacks_sim`, with and without
the defences, and the JSON report.

Virtual time throughout: latencies are simulated seconds, not wall time.
"""

import json
import sys
import time
from pathlib import Path
from typing import Any

from railgun_ref.drivers.attacks_sim import (
    ECLIPSE_IPS,
    FLOOD_IPS,
    Params,
    build,
    eclipse,
    flood,
    lookups,
    node_config,
)

__all__ = [
    "ECLIPSE_IPS",
    "FLOOD_IPS",
    "Params",
    "build",
    "eclipse",
    "flood",
    "lookups",
    "main",
    "node_config",
    "report",
    "run_side",
]


# ---------------------------------------------------------------- the run


def run_side(params: Params, *, defended: bool) -> dict[str, Any]:
    wall = time.perf_counter()
    side = "defended" if defended else "undefended"

    def note(what: str) -> None:
        print(f"[{side}] {what} ({time.perf_counter() - wall:.0f} s)", file=sys.stderr)

    world = build(params, defended=defended)
    note(f"{params.nodes} nodes joined")
    out: dict[str, Any] = {"lookups": lookups(world, params)}
    note("lookups done")
    out["eclipse"] = eclipse(world, params)
    note("eclipse done")
    out["flood"] = flood(world, params)
    note("flood done")
    out["wall_s"] = round(time.perf_counter() - wall, 1)
    return out


def _localhost_flood() -> dict[str, Any] | None:
    path = Path("benchmarks/results/flood_localhost.json")
    if not path.exists():
        return None
    saved = json.loads(path.read_text())
    return {
        "source": str(path),
        "flood_size": saved.get("flood_size"),
        "known_contacts_answered_under_flood": saved.get("known_contacts_answered_under_flood"),
    }


def report(params: Params, ours: dict[str, Any], peer: dict[str, Any]) -> dict[str, Any]:
    flood_ours = ours["flood"]
    return {
        "benchmark": "attacks",
        "driver": "sim",
        "parameters": {k: getattr(params, k) for k in Params.__dataclass_fields__},
        "defences": "DHT-5.5 diversity (loopback grouped by IP), DHT-6.5 disjoint_paths=3, "
        "ABUSE-1/2 per-peer limits (LimitsConfig defaults, loopback_hosts)",
        "peer": "the same population without any of them (diversity None, 1 path, no limits)",
        "lookup_success_malicious_20pct": ours["lookups"]["get_success"],
        "lookup_success_malicious_20pct_undefended": peer["lookups"]["get_success"],
        "eclipse_share_2_ips": ours["eclipse"]["share"],
        "eclipse_share_2_ips_without_diversity": peer["eclipse"]["share"],
        "honest_delivery_under_flood": flood_ours["delivery"],
        "honest_delivery_under_flood_undefended": peer["flood"]["delivery"],
        "flood_p95_ratio": flood_ours["p95_ratio_flooded_to_unloaded"],
        "flood_p95_ratio_undefended": peer["flood"]["p95_ratio_flooded_to_unloaded"],
        "localhost_flood": _localhost_flood(),
        "defended": ours,
        "undefended": peer,
        "how_counted": [
            "virtual time: latencies are simulated seconds, not wall time",
            "flood CPU model: 1 / (capacity_factor x pingers) s per datagram decoded, "
            "check_cost per datagram a limit drops before decoding; "
            "FIFO receive buffer of `queue` datagrams",
        ],
    }


def main(*, json_output: bool, params: Params, output: str | None) -> int:
    from railgun_ref.drivers.sim import crypto_mode  # noqa: PLC0415
    from railgun_ref.identity.keys import CryptoMode  # noqa: PLC0415

    with crypto_mode(CryptoMode(params.crypto)):
        ours = run_side(params, defended=True)
        peer = run_side(params, defended=False)
    result = report(params, ours, peer)
    text = json.dumps(result, indent=2)
    if output is not None:
        Path(output).write_text(text + "\n")
    if json_output:
        print(text)
    else:
        for key in (
            "lookup_success_malicious_20pct",
            "lookup_success_malicious_20pct_undefended",
            "eclipse_share_2_ips",
            "eclipse_share_2_ips_without_diversity",
            "honest_delivery_under_flood",
            "honest_delivery_under_flood_undefended",
            "flood_p95_ratio",
            "flood_p95_ratio_undefended",
        ):
            print(f"{key}: {result[key]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(json_output=True, params=Params(nodes=int(sys.argv[1])), output=None))
