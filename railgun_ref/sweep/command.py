"""`railgun-ref sweep EXPERIMENT --param NAME=V1,V2 --seeds N`: run, save, summarise."""

import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from railgun_ref.drivers.console import ProgressReport, UsageError
from railgun_ref.sweep.runner import (
    CONFIDENCE,
    SweepResult,
    experiment_named,
    parse_param,
    run_sweep,
)


def _plain(value: Any) -> Any:
    """A JSON-safe scalar: NaN and missing values become null, numpy scalars Python's."""
    if value is None:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def report(result: SweepResult, *, out: Path, seeds: Sequence[int]) -> dict[str, Any]:
    """The JSON a sweep prints: where it ran, the table it wrote and the summary."""
    return {
        "sweep": result.experiment.name,
        "description": result.experiment.description,
        "seeds": list(seeds),
        "runs": len(result.rows),
        "failed_runs": result.failed_runs,
        "where": result.where,
        "wall_s": result.wall_s,
        "rows_parquet": str(out),
        "confidence": CONFIDENCE,
        "interval": "Student t across seeds (each seed an independently sampled network)",
        "summary": [
            {key: _plain(value) for key, value in line.items()}
            for line in result.summary.to_dict(orient="records")
        ],
        "errors": sorted({e for e in result.rows["error"] if isinstance(e, str)}),
    }


def _print_table(data: dict[str, Any]) -> None:
    print(
        f"sweep {data['sweep']}: {data['runs']} runs ({data['failed_runs']} failed), "
        f"{data['where']}, {data['wall_s']} s; rows in {data['rows_parquet']}"
    )
    for line in data["summary"]:
        swept = ", ".join(
            f"{k}={v}"
            for k, v in line.items()
            if k not in ("point", "runs", "failed") and not k.endswith(("_mean", "_low", "_high"))
        )
        print(f"  point {line['point']} ({swept or 'defaults'}): runs {line['runs']}")
        for key, value in line.items():
            if key.endswith("_mean") and value is not None:
                metric = key[: -len("_mean")]
                low, high = line[f"{metric}_ci_low"], line[f"{metric}_ci_high"]
                ci = f" [{low:.4g}, {high:.4g}]" if low is not None else ""
                print(f"    {metric:32s} {value:.4g}{ci}")


def main(
    experiment_name: str,
    params: Sequence[str],
    *,
    seeds: int,
    first_seed: int,
    scheduler: str | None,
    workers: int | None,
    out: str | None,
    json_output: bool,
    quiet: bool,
) -> int:
    experiment = experiment_named(experiment_name)
    values = dict(parse_param(experiment, text) for text in params)
    if len(values) != len(params):
        raise UsageError("--param: the same parameter is swept twice")
    if seeds < 1:
        raise UsageError(f"--seeds {seeds}: at least 1")
    if workers is not None and workers < 0:
        raise UsageError(f"--workers {workers}: 0 (in this process) or more")
    path = Path(out if out is not None else f"sweep-{experiment.name}.parquet")
    if path.is_dir():
        raise UsageError(f"--out {path}: is a directory")
    if not path.parent.is_dir():
        raise UsageError(f"--out {path}: no directory {path.parent}")
    seed_list = list(range(first_seed, first_seed + seeds))
    total = seeds * math.prod(len(v) for v in values.values())
    with ProgressReport(
        f"sweep {experiment.name}", total=total, unit="runs", enabled=not quiet
    ) as progress:
        result = run_sweep(
            experiment,
            values,
            seeds=seed_list,
            scheduler=scheduler,
            workers=workers,
            on_row=lambda _row: progress.advance(1),
        )
    result.rows.to_parquet(path, index=False)
    data = report(result, out=path, seeds=seed_list)
    if json_output:
        json.dump(data, sys.stdout, indent=2)
        print()
    else:
        _print_table(data)
    return 1 if result.failed_runs else 0
