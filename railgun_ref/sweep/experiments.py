"""The experiments a sweep can run: each maps (parameters, seed) to a flat row of metrics.

Every experiment runs the project's own cores in the discrete-event simulator, so a run
is deterministic for its parameters and seed, and the same row comes back whether the run
went to a local process pool or to a Dask worker on another machine. The defaults are
small (a run of seconds); a sweep sets the sizes it studies with ``--param``.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

#: One metric value: a number, or None when the run had nothing to measure.
Metric = float | None
#: The parameters a run gets: the experiment's defaults with the sweep's values applied.
Params = Mapping[str, int | float]


@dataclass(frozen=True, slots=True, kw_only=True)
class Experiment:
    """A named experiment: its parameters (with defaults), its metrics and its runner."""

    name: str
    description: str
    defaults: Mapping[str, int | float]
    metrics: tuple[str, ...]
    #: Module-level, so a process pool or a Dask worker can import it by name.
    run: Callable[[Params, int], dict[str, Metric]]


def _nested(report: Mapping[str, Any], *path: str) -> Metric:
    """``report[path[0]][path[1]]...`` as a float, or None where a level is missing."""
    value: Any = report
    for key in path:
        if not isinstance(value, Mapping) or value.get(key) is None:
            return None
        value = value[key]
    return float(value)


def run_dht(params: Params, seed: int) -> dict[str, Metric]:
    """Stores then gets in the simulated DHT (`bench dht --driver sim`, same Node code)."""
    from railgun_ref.bench.dht import measure  # noqa: PLC0415
    from railgun_ref.bench.dht_common import BenchParams  # noqa: PLC0415

    changes: dict[str, Any] = dict(params)  # checked against the defaults by the sweep
    # fast_crypto=1: a keyed hash stands in for Ed25519 (simulator only, cross-checked).
    fast = changes.pop("fast_crypto", 0)
    if fast not in (0, 1):
        raise ValueError("fast_crypto is 0 (Ed25519) or 1 (a keyed hash in its place)")
    changes["crypto"] = "fast" if fast else "real"
    bench = replace(BenchParams(seed=seed), **changes)
    report = measure("ours", "sim", bench, quiet=True)
    return {
        "store_success": _nested(report, "stores", "success_rate"),
        "get_success": _nested(report, "gets", "success_rate"),
        "hops_mean": _nested(report, "gets", "hops", "mean"),
        "hops_p95": _nested(report, "gets", "hops", "p95"),
        "rpcs_mean": _nested(report, "gets", "rpcs", "mean"),
        "get_ms_median": _nested(report, "gets", "latency_ms", "median"),
        "get_ms_p95": _nested(report, "gets", "latency_ms", "p95"),
        "joins_failed": float(report["joins_failed"]),
        "events": _nested(report, "events_processed"),
    }


def run_storeforward(params: Params, seed: int) -> dict[str, Metric]:
    """Store-and-forward under Weibull churn, with and without repair (`bench storeforward`)."""
    from railgun_ref.bench.storeforward import BenchParams, run  # noqa: PLC0415

    changes: dict[str, Any] = dict(params)
    report = run(replace(BenchParams(seed=seed), **changes))
    return {
        name: _nested(report, name)
        for name in (
            "delivery_rate",
            "delivery_rate_without_repair",
            "deleted_after_delivery",
            "resurrections",
            "sf_messages_per_node_per_day",
        )
    }


EXPERIMENTS: Final[Mapping[str, Experiment]] = {
    experiment.name: experiment
    for experiment in (
        Experiment(
            name="dht",
            description="DHT stores and gets in the simulator, optionally under churn",
            defaults={
                "nodes": 50,
                "keys": 20,
                "churn": 0.0,
                "rtt_ms": 50.0,
                "k": 20,
                "alpha": 3,
                "fast_crypto": 0,
            },
            metrics=(
                "store_success",
                "get_success",
                "hops_mean",
                "hops_p95",
                "rpcs_mean",
                "get_ms_median",
                "get_ms_p95",
                "joins_failed",
                "events",
            ),
            run=run_dht,
        ),
        Experiment(
            name="storeforward",
            description="store-and-forward delivery and deletion under KAD-calibrated churn",
            defaults={
                "nodes": 80,
                "recipients": 12,
                "senders": 5,
                "messages": 40,
                "days": 2.0,
                "send_window_days": 0.5,
                "max_offline_hours": 12.0,
                "partitioned_holders": 3,
                "partition_start_hours": 2.0,
                "partition_days": 1.2,
                "redundancy": 3,
            },
            metrics=(
                "delivery_rate",
                "delivery_rate_without_repair",
                "deleted_after_delivery",
                "resurrections",
                "sf_messages_per_node_per_day",
            ),
            run=run_storeforward,
        ),
    )
}
