"""Every network decoder decodes or raises its typed protocol error, nothing else (ABUSE-5).

Three layers: the saved corpus (tests/fuzz/corpus/TARGET/: inputs that once
crashed a decoder, kept as regressions) and each target's seeds replayed in
process; a bounded coverage-guided atheris run over every target at once in
a process of its own; and the command line's handling of a bad target name.
"""

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from railgun_ref.cli import main
from railgun_ref.core.errors import ErrorCode, RemoteProtocolError
from railgun_ref.fuzz import ALL, TARGET_NAMES
from railgun_ref.fuzz.targets import TARGETS, corpus_inputs, replay, seeds_of, target_named

CORPUS = Path(__file__).parent / "corpus"
#: Inputs of the bounded atheris run (a few seconds on a 2-core machine; `railgun-ref fuzz`
#: runs for as long as asked).
CI_RUNS = 8_000


def test_target_names_match_the_registry() -> None:
    assert tuple(target.name for target in TARGETS) == TARGET_NAMES
    assert target_named(ALL) is not None
    assert target_named("no-such-decoder") is None


@pytest.mark.parametrize("name", TARGET_NAMES)
def test_seeds_and_saved_corpus_keep_the_contract(name: str) -> None:
    """ABUSE-5.1, ABUSE-5.2: seeds and saved regressions decode or raise the typed error."""
    target = target_named(name)
    assert target is not None
    inputs = seeds_of(target) + corpus_inputs(CORPUS / name)
    assert len(inputs) >= 2
    assert replay(target, inputs) == []


def test_a_broken_decoder_is_caught() -> None:
    """The harness itself: an exception other than the typed error is reported."""
    target = target_named("cbor")
    assert target is not None
    broken = replay(target, [b"\x00"])  # a valid CBOR integer: decodes
    assert broken == []

    def crash(data: bytes) -> None:
        raise IndexError(data.hex())

    def typed(data: bytes) -> None:
        raise RemoteProtocolError(ErrorCode.MALFORMED, "refused")

    assert [type(e) for _, e in replay(replace(target, check=crash), [b"\x01"])] == [IndexError]
    assert [type(e) for _, e in replay(replace(target, check=typed), [b"\x01"])] == [
        RemoteProtocolError
    ]


def test_bounded_atheris_run_over_every_target(tmp_path: Path) -> None:
    """ABUSE-5.1: a coverage-guided run of CI_RUNS inputs over all targets finds no crash."""
    pytest.importorskip("atheris")
    command = [sys.executable, "-m", "railgun_ref.fuzz", ALL, f"--runs={CI_RUNS}"]
    command += ["--seconds=90", f"--artifacts={tmp_path / 'crashes'}", f"--corpus={tmp_path / 'c'}"]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=150, env=os.environ.copy(), check=False
    )
    crashes = list((tmp_path / "crashes").glob("*"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert crashes == []
    assert "Done " in done.stderr  # libFuzzer's end-of-run line: the budget ran out


def test_cli_bad_target_is_one_line_and_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["fuzz", "no-such-decoder", "--seconds", "1"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "unknown target 'no-such-decoder'" in err
