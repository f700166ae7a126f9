"""Cross-check of the simulator's fast-crypto mode against real Ed25519.

``python -m railgun_ref.bench.crypto_check --nodes N --keys K [--output PATH]`` runs
`bench dht --driver sim` twice on the same seed and workload, once with real crypto
and once with ``crypto="fast"`` (a keyed hash in place of Ed25519,
`railgun_ref.identity.keys`), keeps every get's outcome, and compares:

* get success: Fisher's exact test on the 2x2 table (succeeded, failed) x (real, fast);
* hops and latency: the two-sample Kolmogorov-Smirnov test (scipy ``ks_2samp``,
  exact mode where scipy can), two-sided;
* and whether the per-get outcomes are identical, get by get.

A high p-value says the data give no evidence that the distributions differ; identical
per-get outcomes say more: the mode changed the cost of a run, not what happened in it.
CPU seconds (``time.process_time``) and events per CPU second are reported for both.
"""

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from railgun_ref.bench.dht import run_ours_sim
from railgun_ref.bench.dht_common import BenchParams, OpResult, Progress, make_workload


def per_get_outcomes(params: BenchParams) -> dict[str, Any]:
    """One simulated run in this process: every get's (ok, hops, latency ms), and its cost."""
    cpu = time.process_time()
    run = run_ours_sim(params, make_workload(params), Progress("crypto_check", enabled=False))
    cpu = time.process_time() - cpu
    events = int(run.extra["events_processed"])
    return {
        "crypto": params.crypto,
        "ok": [get.ok for get in run.gets],
        "hops": [_hops(get) for get in run.gets],
        "latency_ms": [round(get.latency_s * 1000, 3) for get in run.gets],
        "joins_failed": run.joins_failed,
        "events": events,
        "cpu_s": round(cpu, 2),
        "events_per_cpu_s": round(events / cpu) if cpu > 0 else None,
    }


def _hops(get: OpResult) -> int:
    return -1 if get.hops is None else get.hops


def compare(real: dict[str, Any], fast: dict[str, Any]) -> dict[str, Any]:
    """The tests named in the module docstring, on two `per_get_outcomes` results."""
    from scipy import stats  # noqa: PLC0415  (the lab extra)

    def ks(name: str) -> dict[str, float]:
        result = stats.ks_2samp(real[name], fast[name])
        return {"statistic": float(result.statistic), "p_value": float(result.pvalue)}

    table = [[sum(side["ok"]), len(side["ok"]) - sum(side["ok"])] for side in (real, fast)]
    fisher = stats.fisher_exact(table)
    return {
        "success": {
            "test": "Fisher exact, two-sided",
            "table_real_fast_ok_failed": table,
            "p_value": float(fisher.pvalue),
        },
        "hops": {"test": "two-sample Kolmogorov-Smirnov, two-sided", **ks("hops")},
        "latency_ms": {"test": "two-sample Kolmogorov-Smirnov, two-sided", **ks("latency_ms")},
        "identical_per_get": all(real[name] == fast[name] for name in ("ok", "hops", "latency_ms")),
        "same_event_count": real["events"] == fast["events"],
    }


def crosscheck(params: BenchParams) -> dict[str, Any]:
    """Run real then fast on `params` (its own crypto is ignored) and compare them."""
    real = per_get_outcomes(replace(params, crypto="real"))
    fast = per_get_outcomes(replace(params, crypto="fast"))
    summary = {side["crypto"]: _summary(side) for side in (real, fast)}
    speedup = None
    if real["cpu_s"] and fast["cpu_s"]:
        speedup = round(real["cpu_s"] / fast["cpu_s"], 2)
    return {
        "benchmark": "dht_crypto_check",
        "parameters": {"nodes": params.nodes, "keys": params.keys, "seed": params.seed},
        "runs": summary,
        "cpu_speedup_fast_over_real": speedup,
        "comparison": compare(real, fast),
    }


def _summary(side: dict[str, Any]) -> dict[str, Any]:
    gets = len(side["ok"])
    return {
        "gets": gets,
        "success_rate": sum(side["ok"]) / gets if gets else None,
        "hops_mean": sum(side["hops"]) / gets if gets else None,
        "latency_ms_mean": sum(side["latency_ms"]) / gets if gets else None,
        **{key: side[key] for key in ("joins_failed", "events", "cpu_s", "events_per_cpu_s")},
    }


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m railgun_ref.bench.crypto_check")
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--keys", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--output", default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    params = BenchParams(nodes=args.nodes, keys=args.keys, seed=args.seed, rtt_ms=50.0)
    text = json.dumps(crosscheck(params), indent=2)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as out:
            out.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
