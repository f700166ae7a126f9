"""Parameter sweeps: (parameters, seed) -> metric rows, on a process pool or a Dask cluster.

A sweep expands a grid of parameter values, runs each point on several seeds (each seed
samples an independent network: node ids, workload, churn), collects one row per run into
a pandas table (saved as Parquet) and summarises each point with a mean and a 95 %
Student-t confidence interval across seeds. Runs go to a local process pool by default, or
to an existing Dask distributed scheduler (`--scheduler tcp://HOST:PORT`).
"""

from railgun_ref.sweep.experiments import EXPERIMENTS, Experiment
from railgun_ref.sweep.runner import (
    SweepResult,
    Task,
    confidence_interval,
    expand_grid,
    parse_param,
    run_sweep,
    run_task,
    summarise,
)

__all__ = [
    "EXPERIMENTS",
    "Experiment",
    "SweepResult",
    "Task",
    "confidence_interval",
    "expand_grid",
    "parse_param",
    "run_sweep",
    "run_task",
    "summarise",
]
