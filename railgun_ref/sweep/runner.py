"""Expand a grid, run every (point, seed) on a pool or a Dask cluster, summarise with CIs.

A seed is one independently sampled network (node ids, workload, churn draws): Jansen et
al. (USENIX Security 2021, "Once is Never Enough") show that conclusions drawn from one
sampled network are not sound, so every point runs on ``seeds`` networks and the summary
gives a Student-t 95 % confidence interval across them. The pool is the standard library's
process pool (local runs); a cluster is an existing Dask distributed scheduler, reached
with `distributed.Client` -- this module adds no cluster layer of its own.
"""

import itertools
import math
import os
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import TYPE_CHECKING, Any, Final

from railgun_ref.drivers.console import UsageError
from railgun_ref.sweep.experiments import EXPERIMENTS, Experiment, Metric

if TYPE_CHECKING:
    import pandas as pd

#: Confidence level of the intervals in a summary.
CONFIDENCE: Final = 0.95
#: Seconds to wait for a Dask scheduler to answer before giving up.
SCHEDULER_TIMEOUT_S: Final = 10.0
#: Columns every row has besides the parameters and the metrics.
ROW_COLUMNS: Final = ("experiment", "point", "seed", "wall_s", "error")


@dataclass(frozen=True, slots=True, kw_only=True)
class Task:
    """One run: an experiment at one grid point on one seed."""

    experiment: str
    point: int  #: index of the grid point (rows of one point share it)
    params: Mapping[str, int | float]
    seed: int


@dataclass(slots=True, kw_only=True)
class SweepResult:
    """The rows (one per run) and the summary (one per point) of a sweep."""

    experiment: Experiment
    rows: "pd.DataFrame"
    summary: "pd.DataFrame"
    failed_runs: int
    wall_s: float
    where: str  #: "in-process", "process pool (N workers)" or the scheduler's address
    notes: list[str] = field(default_factory=list)


def experiment_named(name: str) -> Experiment:
    try:
        return EXPERIMENTS[name]
    except KeyError:
        raise UsageError(
            f"no experiment {name!r}; choose one of: {', '.join(sorted(EXPERIMENTS))}"
        ) from None


def _value(experiment: Experiment, name: str, text: str) -> int | float:
    """`text` as the type of the parameter's default (an int parameter takes no fraction)."""
    default = experiment.defaults[name]
    try:
        value: int | float = int(text) if isinstance(default, int) else float(text)
    except ValueError:
        kind = "an integer" if isinstance(default, int) else "a number"
        raise UsageError(f"--param {name}: {text!r} is not {kind}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise UsageError(f"--param {name}: {text!r} is not a finite number")
    return value


def parse_param(experiment: Experiment, text: str) -> tuple[str, list[int | float]]:
    """``name=v1,v2,...`` -> (name, values), checked against the experiment's parameters."""
    name, sep, values = text.partition("=")
    name = name.strip()
    if not sep or not name or not values.strip():
        raise UsageError(f"--param {text!r}: write NAME=V1,V2,... (e.g. nodes=50,100)")
    if name not in experiment.defaults:
        raise UsageError(
            f"--param {name}: experiment {experiment.name!r} has no such parameter; it has: "
            + ", ".join(experiment.defaults)
        )
    parsed = [_value(experiment, name, part.strip()) for part in values.split(",")]
    if len(set(parsed)) != len(parsed):
        raise UsageError(f"--param {name}: a value is given twice")
    return name, parsed


def expand_grid(
    experiment: Experiment, values: Mapping[str, Sequence[int | float]]
) -> list[dict[str, int | float]]:
    """Every combination of the swept values, over the experiment's defaults, in order."""
    names = list(values)
    points = []
    for combination in itertools.product(*(values[name] for name in names)):
        points.append({**experiment.defaults, **dict(zip(names, combination, strict=True))})
    return points


def tasks_for(
    experiment: Experiment, points: Sequence[Mapping[str, int | float]], seeds: Sequence[int]
) -> list[Task]:
    return [
        Task(experiment=experiment.name, point=index, params=dict(point), seed=seed)
        for index, point in enumerate(points)
        for seed in seeds
    ]


def run_task(task: Task) -> dict[str, Any]:
    """One run as a row; an exception in the run is the row's `error`, not a lost sweep."""
    experiment = EXPERIMENTS[task.experiment]
    started = time.perf_counter()
    metrics: dict[str, Metric] = dict.fromkeys(experiment.metrics)
    error: str | None = None
    try:
        metrics.update(experiment.run(task.params, task.seed))
    except Exception as exc:  # recorded in the row; the sweep goes on
        last = traceback.extract_tb(exc.__traceback__)[-1:]
        where = f" at {last[0].filename}:{last[0].lineno}" if last else ""
        error = f"{type(exc).__name__}: {exc}{where}"
    return {
        "experiment": task.experiment,
        "point": task.point,
        "seed": task.seed,
        **task.params,
        **metrics,
        "wall_s": round(time.perf_counter() - started, 3),
        "error": error,
    }


# ------------------------------------------------------------------ executors


def _in_process(tasks: Sequence[Task]) -> Iterator[dict[str, Any]]:
    for task in tasks:
        yield run_task(task)


def _process_pool(tasks: Sequence[Task], workers: int) -> Iterator[dict[str, Any]]:
    # spawn: a fresh interpreter per worker, so nothing of the caller's threads or event
    # loops is copied into it (fork would, and a simulator run needs none of it).
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(run_task, task) for task in tasks]
        for future in as_completed(futures):
            yield future.result()


def _dask(tasks: Sequence[Task], scheduler: str) -> Iterator[dict[str, Any]]:
    try:
        import distributed  # noqa: PLC0415
    except ImportError:
        raise UsageError(
            "--scheduler needs Dask distributed: pip install 'railgun-ref[sweep]'"
        ) from None
    # distributed has no type hints: its two entry points are held as Any.
    client_class: Any = distributed.Client
    dask_completed: Any = distributed.as_completed
    try:
        client = client_class(scheduler, timeout=SCHEDULER_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise UsageError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
    with client:
        futures = client.map(run_task, list(tasks), pure=False)
        for future in dask_completed(futures, loop=client.loop):
            yield future.result()


def check_scheduler(address: str) -> str:
    """A scheduler address as Dask's Client takes it: ``tcp://HOST:PORT`` (or tls://)."""
    scheme, sep, rest = address.partition("://")
    host, colon, port = rest.rpartition(":")
    if not sep or scheme not in ("tcp", "tls") or not colon or not host or not port.isdigit():
        raise UsageError(f"--scheduler {address!r}: write tcp://HOST:PORT")
    return address


# ------------------------------------------------------------------ summary


def confidence_interval(values: Sequence[float]) -> tuple[float, float] | None:
    """The Student-t 95 % interval of the mean of `values`; None for fewer than two."""
    from scipy import stats  # noqa: PLC0415

    n = len(values)
    if n < 2:
        return None
    mean = math.fsum(values) / n
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1)) * sd / math.sqrt(n)
    return mean - half, mean + half


def summarise(experiment: Experiment, rows: "pd.DataFrame", swept: Sequence[str]) -> "pd.DataFrame":
    """One row per point: the swept parameters, runs, and mean / CI per metric."""
    import pandas as pd  # noqa: PLC0415

    out = []
    for point, group in rows.groupby("point", sort=True):
        ok = group[group["error"].isna()]
        line: dict[str, Any] = {"point": point, **{p: group[p].iloc[0] for p in swept}}
        line["runs"] = len(group)
        line["failed"] = len(group) - len(ok)
        for metric in experiment.metrics:
            values = [float(v) for v in ok[metric] if v is not None and not pd.isna(v)]
            interval = confidence_interval(values)
            line[f"{metric}_mean"] = math.fsum(values) / len(values) if values else None
            line[f"{metric}_ci_low"] = interval[0] if interval else None
            line[f"{metric}_ci_high"] = interval[1] if interval else None
        out.append(line)
    return pd.DataFrame(out)


def run_sweep(
    experiment: Experiment,
    values: Mapping[str, Sequence[int | float]],
    *,
    seeds: Sequence[int],
    scheduler: str | None = None,
    workers: int | None = None,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> SweepResult:
    """Run the grid on every seed; `workers=0` runs in this process (no pool)."""
    import pandas as pd  # noqa: PLC0415

    if not seeds:
        raise UsageError("--seeds: at least one seed")
    tasks = tasks_for(experiment, expand_grid(experiment, values), seeds)
    started = time.perf_counter()
    pool_size = workers if workers is not None else (os.cpu_count() or 1)
    if scheduler is not None:
        rows_iter, where = _dask(tasks, check_scheduler(scheduler)), f"dask {scheduler}"
    elif pool_size == 0:
        rows_iter, where = _in_process(tasks), "in-process"
    else:
        rows_iter = _process_pool(tasks, pool_size)
        where = f"process pool ({pool_size} workers)"
    collected = []
    for row in rows_iter:
        collected.append(row)
        if on_row is not None:
            on_row(row)
    columns = [*ROW_COLUMNS[:3], *experiment.defaults, *experiment.metrics, *ROW_COLUMNS[3:]]
    rows = pd.DataFrame(collected, columns=columns).sort_values(["point", "seed"])
    rows = rows.reset_index(drop=True)
    return SweepResult(
        experiment=experiment,
        rows=rows,
        summary=summarise(experiment, rows, list(values)),
        failed_runs=int(rows["error"].notna().sum()),
        wall_s=round(time.perf_counter() - started, 2),
        where=where,
    )
