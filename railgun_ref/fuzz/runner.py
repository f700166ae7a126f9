"""Drive one fuzz target with atheris (libFuzzer) for a bounded time or number of runs.

libFuzzer owns the process from `atheris.Fuzz()` on and exits it when done:
0 when the budget ran out with no crash, non-zero (and the crashing input
saved under the artifact directory) when a target broke its contract. So a
run is one process; tests start it as a subprocess.
"""

import sys
import tempfile
from hashlib import sha256
from pathlib import Path
from typing import NoReturn

from railgun_ref.fuzz.targets import FuzzTarget, seeds_of

#: Largest input libFuzzer generates: above the largest stream message most decoders take.
MAX_LEN = 4096


def write_seeds(target: FuzzTarget, directory: Path) -> int:
    """Write `target`'s seeds into `directory`, one file each (named by digest)."""
    directory.mkdir(parents=True, exist_ok=True)
    seeds = seeds_of(target)
    for seed in seeds:
        (directory / sha256(seed).hexdigest()[:16]).write_bytes(seed)
    return len(seeds)


def libfuzzer_args(
    *,
    corpus: Path,
    extra: list[Path],
    artifacts: Path,
    seconds: float | None,
    runs: int | None,
) -> list[str]:
    """libFuzzer's command line: corpus directories first, then flags."""
    args = [sys.argv[0] or "railgun-ref", str(corpus), *(str(d) for d in extra if d.is_dir())]
    args += [f"-artifact_prefix={artifacts}/", f"-max_len={MAX_LEN}", "-print_final_stats=1"]
    if seconds is not None:
        args.append(f"-max_total_time={max(1, round(seconds))}")
    if runs is not None:
        args.append(f"-runs={runs}")
    return args


def fuzz(
    target: FuzzTarget,
    *,
    seconds: float | None,
    runs: int | None = None,
    corpus: Path | None = None,
    extra: list[Path] | None = None,
    artifacts: Path,
) -> NoReturn:
    """Fuzz `target` until the budget runs out or it crashes; never returns.

    Call it from a process whose railgun_ref modules were imported under
    ``atheris.instrument_imports`` (``python -m railgun_ref.fuzz`` does).
    """
    import atheris  # noqa: PLC0415 -- an optional dependency (the fuzz extra)

    artifacts.mkdir(parents=True, exist_ok=True)
    if corpus is None:  # libFuzzer exits the process, so a temporary directory stays behind
        corpus = Path(tempfile.mkdtemp(prefix=f"railgun-fuzz-{target.name}-")) / "corpus"
    seeds = corpus.parent / f"{corpus.name}-seeds"
    count = write_seeds(target, seeds)
    corpus.mkdir(parents=True, exist_ok=True)
    args = libfuzzer_args(
        corpus=corpus,
        extra=[seeds, *(extra or [])],
        artifacts=artifacts,
        seconds=seconds,
        runs=runs,
    )
    print(f"fuzzing {target.name}: {count} seeds, corpus {corpus}, crashes to {artifacts}/")
    atheris.Setup(args, target.check)
    atheris.Fuzz()
    raise SystemExit(0)  # not reached: libFuzzer exits the process
