"""``python -m railgun_ref.fuzz TARGET [--seconds N] [--runs N] ...``: one fuzzing process.

`railgun-ref fuzz` starts this; the exit status is libFuzzer's (0: the budget ran
out with no crash; non-zero: a crash, its input saved under --artifacts).
"""

import argparse
import sys
from pathlib import Path

from railgun_ref.fuzz import ALL, TARGET_NAMES


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m railgun_ref.fuzz")
    parser.add_argument("target", choices=[*TARGET_NAMES, ALL])
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--corpus", type=Path, default=None)
    parser.add_argument("--extra", type=Path, action="append", default=[])
    parser.add_argument("--artifacts", type=Path, default=Path("fuzz-crashes"))
    return parser.parse_args(argv)


def main(argv: list[str]) -> None:
    args = parse(argv)
    import atheris  # noqa: PLC0415 -- the fuzz extra; imported before the decoders

    with atheris.instrument_imports(include=["railgun_ref", "dnslib"]):
        from railgun_ref.fuzz import runner, targets  # noqa: PLC0415

    target = targets.target_named(args.target)
    if target is None:  # argparse already refused unknown names
        raise SystemExit(2)
    runner.fuzz(
        target,
        seconds=args.seconds,
        runs=args.runs,
        corpus=args.corpus,
        extra=args.extra,
        artifacts=args.artifacts,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
