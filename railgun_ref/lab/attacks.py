"""Notebook 07: Sybil, eclipse, flood and outsider attacks, with and without each defence.

Small live runs of `railgun_ref.bench.attacks` (the real Node cores in the
simulator, at a size a notebook runs in seconds), the DHT-5.5 share rule as a
curve, peer reputation (REP) and adaptive proof of work (POW) driven step by
step, and the fuzz targets replayed (ABUSE-5). `attacks_sim_frame` reads the
saved 1,000-node run of `railgun-ref bench attacks`.
"""

import json
import random
from pathlib import Path
from typing import Any, Final

import altair as alt
import pandas as pd

from railgun_ref.abuse.pow import PowConfig, PowService, solve
from railgun_ref.abuse.reputation import EVENT, Behaviour, score_of, standing_of
from railgun_ref.core.ids import NodeId
from railgun_ref.dht.routing import Diversity
from railgun_ref.drivers import attacks_sim as attacks
from railgun_ref.drivers.sim import crypto_mode
from railgun_ref.fuzz.targets import TARGETS, replay, seeds_of
from railgun_ref.identity.keys import CryptoMode

#: The notebook's population: small enough for seconds of wall time per side.
SMALL: Final = attacks.Params(
    nodes=30, keys=10, sybils=60, pingers=10, flood_seconds=3.0, crypto="fast"
)
SIDES: Final = ("defended", "undefended")


def live_runs(params: attacks.Params = SMALL) -> dict[str, dict[str, Any]]:
    """The three scenarios on one population per side (see `bench.attacks`)."""
    out: dict[str, dict[str, Any]] = {}
    with crypto_mode(CryptoMode(params.crypto)):
        for side in SIDES:
            world = attacks.build(params, defended=side == "defended")
            out[side] = {
                "lookups": attacks.lookups(world, params),
                "eclipse": attacks.eclipse(world, params),
                "flood": attacks.flood(world, params),
            }
    return out


def eclipse_frame(runs: dict[str, dict[str, Any]]) -> pd.DataFrame:
    rows = []
    for side in SIDES:
        e = runs[side]["eclipse"]
        rows.append(
            {
                "side": side,
                "victim_entries": e["victim_routing_entries"],
                "attacker_entries": e["attacker_entries"],
                "share": e["share"],
            }
        )
    return pd.DataFrame(rows)


def lookups_frame(runs: dict[str, dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"side": side, **runs[side]["lookups"]} for side in SIDES],
    )


def flood_frame(runs: dict[str, dict[str, Any]]) -> pd.DataFrame:
    rows = []
    for side in SIDES:
        f = runs[side]["flood"]
        for phase in ("unloaded", "flooded"):
            rows.append(
                {
                    "side": side,
                    "phase": phase,
                    "delivery": f[phase]["delivery"],
                    "p95_rtt_s": f[phase]["p95_rtt_s"],
                }
            )
    return pd.DataFrame(rows)


def share_bound_frame(sizes: range = range(10, 301, 10)) -> pd.DataFrame:
    """DHT-5.5: the most of a table two hosts can hold, by honest contacts in the table."""
    d = Diversity()
    rows = []
    for honest in sizes:
        fixed = 2 * d.per_table
        held = 0  # the share rule: grow each host while its cap allows
        while held < 2 * d.group_cap(held=0, table=honest + held // 2):
            held += 1
        rows.extend(
            [
                {"honest": honest, "rule": "10 per host", "share": fixed / (honest + fixed)},
                {"honest": honest, "rule": "5 % of the others", "share": held / (honest + held)},
            ]
        )
    return pd.DataFrame(rows)


def share_chart(frame: pd.DataFrame) -> Any:
    return (
        alt.Chart(frame, title="most of a table two attacker hosts can hold (DHT-5.5)")
        .mark_line(point=True)
        .encode(
            x=alt.X("honest:Q", title="honest contacts in the table"),
            y=alt.Y("share:Q", title="attacker share", axis=alt.Axis(format="%")),
            color="rule:N",
        )
        .properties(width=420, height=220)
    )


def standing_frame(max_events: int = 8) -> pd.DataFrame:
    """REP-2, REP-4: score and standing after n misbehaviours (nothing else observed)."""
    rows = []
    for n in range(max_events + 1):
        counters = {Behaviour.MISBEHAVED: n * EVENT} if n else {}
        score = score_of(counters, peers_on_address=1)
        rows.append({"misbehaviours": n, "points": score / 1000, "standing": standing_of(score)})
    return pd.DataFrame(rows)


def effort_frame(periods: int = 16, overloaded: int = 6, seed: int = 7) -> pd.DataFrame:
    """POW-5: the suggested effort period by period; the first `overloaded` periods get
    twice the service's capacity, the rest half of it. Also what one honest solve cost."""
    rng = random.Random(seed)
    config = PowConfig(queue_limit=20)
    service = PowService(NodeId(bytes(32)), rng.randbytes, config, now=0.0)
    rows = []
    request = 0
    for period in range(periods):
        now = period * config.update_period
        arrivals = 40 if period < overloaded else 10
        for _ in range(arrivals):
            request += 1
            service.submit(NodeId(rng.randbytes(32)), None, request, now=now)
        for _ in range(20):  # what the service serves in a period
            service.take(now=now)
        rows.append(
            {
                "period": period,
                "load": "overloaded" if period < overloaded else "normal",
                "suggested_effort": service.suggested_effort,
            }
        )
        service.on_timer(now=now + config.update_period)
    return pd.DataFrame(rows)


def solve_tries(effort: int, samples: int = 20, seed: int = 3) -> float:
    """POW-2.1: mean hashes an honest requester needs at `effort` (expected: `effort`)."""
    rng = random.Random(seed)
    total = 0
    for _ in range(samples):
        start = rng.randbytes(16)
        solution = solve(
            rng.randbytes(32), bytes(32), bytes(32), effort, start=start, max_tries=effort * 50
        )
        assert solution is not None
        total += int.from_bytes(solution.nonce, "big") - int.from_bytes(start, "big") + 1
    return total / samples


def effort_chart(frame: pd.DataFrame) -> Any:
    return (
        alt.Chart(frame, title="suggested effort follows the service's own load (POW-5)")
        .mark_line(point=True, interpolate="step-after")
        .encode(
            x=alt.X("period:Q", title="update period (60 s each)"),
            y=alt.Y("suggested_effort:Q", title="suggested effort (hashes)"),
            color="load:N",
        )
        .properties(width=420, height=200)
    )


def fuzz_frame() -> pd.DataFrame:
    """ABUSE-5.1: each target's seeds replayed; inputs that broke the contract (0)."""
    rows = []
    for target in TARGETS:
        inputs = seeds_of(target)
        rows.append(
            {"target": target.name, "inputs": len(inputs), "broken": len(replay(target, inputs))}
        )
    return pd.DataFrame(rows)


def attacks_sim_frame(path: Path) -> pd.DataFrame:
    """The headline keys of a saved `bench attacks` run, defended vs undefended."""
    saved = json.loads(path.read_text())
    keys = (
        "lookup_success_malicious_20pct",
        "eclipse_share_2_ips",
        "honest_delivery_under_flood",
        "flood_p95_ratio",
    )
    peer = {
        "eclipse_share_2_ips": "eclipse_share_2_ips_without_diversity",
    }
    return pd.DataFrame(
        [
            {
                "key": key,
                "defended": saved[key],
                "undefended": saved[peer.get(key, key + "_undefended")],
            }
            for key in keys
        ]
    )
