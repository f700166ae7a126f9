"""Every user mistake ends in one line on stderr and exit status 2, never a traceback.

Option values are checked by argparse validators (`main` raises SystemExit(2) after
one line); mistakes found only at run time (a port in use, a file that is not an
identity) are caught at the top of `main`. The ones a new user met first are run as
real processes, the way they typed them; missing extras are simulated in a child
process by making the extra's module unimportable (``sys.modules[name] = None``).
"""

import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from railgun_ref.cli import build_parser, main

pytestmark = pytest.mark.timeout(60)


def _assert_one_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


def _main_exit(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run `main(argv)`: its exit status (returned or raised) and its one stderr line."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    return code, _assert_one_line(capsys.readouterr().err)


#: argv -> a fragment of the one line it must print.
OPTION_MISTAKES = [
    (["node", "--port", "70000"], "a port is 0..65535"),
    (["node", "--port", "-1"], "a port is 0..65535"),
    (["node", "--port", "http"], "expected an integer"),
    (["node", "--host", "192.0.2.1"], "not a loopback address"),
    (["node", "--host", "localhost"], "not an IP address literal"),
    (["node", "--bootstrap", "127.0.0.1"], "expected HOST:PORT or udp://HOST:PORT"),
    (["node", "--bootstrap", "10.0.0.1:4000"], "outside the networks this harness allows"),
    (["node", "--bootstrap", "127.0.0.1:0"], "port must be 1..65535"),
    (["node", "--identity", "."], "is a directory, not a file"),
    (["sim", "--nodes", "0"], "--nodes: must be at least 2"),
    (["sim", "--loss", "2"], "--loss: must be in [0, 1]"),
    (["sim", "--loss", "nan"], "finite"),
    (["sim", "--latency-ms", "-5"], "--latency-ms: must be >= 0"),
    (["sim", "--duration", "0"], "--duration: must be > 0"),
    (["central", "--port", "99999"], "a port is 0..65535"),
    (["central", "--sweep-interval", "-1"], "must be > 0"),
    (["central", "--db", "."], "is a directory"),
    (["turn", "--port", "65536", "--user", "a:b"], "a port is 0..65535"),
    (["turn", "--user", "nopassword"], "expected NAME:PASSWORD"),
    (["demo", "--peers", "1"], "--peers: must be at least 2"),
    (["demo", "--scenarios", "flood"], "comma-separated list of dns, ip, takedown"),
    (["conformance", "run", "--target", "127.0.0.1"], "udp://HOST:PORT"),
    (["conformance", "run", "--target", "udp://192.0.2.1:4000"], "refusing 192.0.2.1"),
    (["conformance", "run", "--target", "udp://127.0.0.1:0"], "non-zero port"),
    (["bench", "wire", "--payload-size", "-1"], "must be at least 0"),
    (["bench", "detectors", "--phi", "0"], "must be > 0"),
    (["bench", "detectors", "--client-hours", "-3"], "must be > 0"),
    (["bench", "failover", "--clients", "1"], "must be at least 2"),
    (["bench", "failover", "--scenario", "volcano"], "unknown scenario 'volcano'"),
    (["bench", "failover", "--driver", "localhost", "--seed", "3"], "--seed applies"),
    (["bench", "failover", "--output", "/nonexistent-dir/out.json"], "does not exist"),
    (["bench", "dht", "--nodes", "1"], "must be at least 2"),
    (["bench", "dht", "--keys", "0"], "must be at least 1"),
    (["bench", "dht", "--churn", "1.5"], "must be in [0, 1]"),
    (["bench", "dht", "--timeout", "0"], "must be > 0"),
    (["bench", "dht", "--join-concurrency", "0"], "must be at least 1"),
    (["bench", "dht", "--driver", "sim", "--impl", "kademlia"], "runs ours only"),
    (["bench", "voice", "--participants", "4,x"], "each at least 2"),
    (["bench", "voice", "--participants", "1"], "each at least 2"),
    (["bench", "voice", "--workers", "0"], "must be at least 1"),
    (["frobnicate"], "invalid choice"),
    (["bench"], "required"),
    (["node", "--no-such-option"], "unrecognized arguments"),
    (["node", "--admission-rate", "0"], "must be > 0"),
]


@pytest.mark.parametrize(
    ("argv", "fragment"), OPTION_MISTAKES, ids=lambda v: " ".join(v) if isinstance(v, list) else ""
)
def test_option_mistakes_are_one_line_and_exit_2(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, line = _main_exit(argv, capsys)
    assert code == 2
    assert line.startswith("railgun-ref"), line
    assert "error" in line or "unknown" in line
    assert fragment in line


def test_files_in_the_way_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("not a directory")
    for argv in (
        ["node", "--data-dir", str(a_file)],
        ["demo", "--report", str(a_file)],
        ["bench", "dht", "--output", str(tmp_path)],
    ):
        code, line = _main_exit(argv, capsys)
        assert code == 2, argv
        assert str(tmp_path) in line


def test_an_unusable_identity_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Found at run time (not by argparse): KeyFileError is the user's to fix."""
    identity = tmp_path / "identity"
    identity.write_bytes(b"garbage")
    identity.chmod(0o600)
    code, line = _main_exit(["node", "--identity", str(identity)], capsys)
    assert code == 2
    assert line.startswith("railgun-ref: error: ") and str(identity) in line


def test_bootstrap_takes_both_forms_the_help_names(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    for form in ("127.0.0.2:4000", "udp://127.0.0.2:4000"):
        assert parser.parse_args(["node", "--bootstrap", form]).bootstrap == [("127.0.0.2", 4000)]
    with pytest.raises(SystemExit):
        parser.parse_args(["node", "--help"])
    assert "HOST:PORT or udp://HOST:PORT" in " ".join(capsys.readouterr().out.split())


# ------------------------------------------------------------------ real processes


def _cli(*argv: str, prelude: str = "") -> subprocess.CompletedProcess[str]:
    """``python -m railgun_ref.cli ARGV`` (after `prelude`, a line of Python)."""
    code = f"{prelude}\nimport sys\nfrom railgun_ref.cli import main\nsys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *argv],
        capture_output=True,
        text=True,
        timeout=45,
        check=False,
    )


@contextmanager
def _port_in_use() -> Iterator[int]:
    """A UDP port on 127.0.0.1 that another socket holds."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("127.0.0.1", 0))
        yield holder.getsockname()[1]


def test_node_on_a_port_in_use_says_so_in_one_line() -> None:
    with _port_in_use() as port:
        done = _cli("node", "--port", str(port))
    assert done.returncode == 2
    line = _assert_one_line(done.stderr)
    assert line == f"railgun-ref: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    assert done.stdout == ""


def test_turn_on_a_port_in_use_says_so_in_one_line() -> None:
    with _port_in_use() as port:
        done = _cli("turn", "--port", str(port), "--user", "a:b")
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in _assert_one_line(done.stderr)


@pytest.mark.parametrize(
    "argv",
    [
        ["node", "--port", "70000"],
        ["sim", "--nodes", "0"],
        ["sim", "--loss", "2"],
        ["node", "--bootstrap", "127.0.0.1"],
    ],
    ids=" ".join,
)
def test_the_first_mistakes_as_typed(argv: list[str]) -> None:
    done = _cli(*argv)
    assert done.returncode == 2
    assert _assert_one_line(done.stderr).startswith(f"railgun-ref {argv[0]}: error: argument")


def test_lab_without_its_extra_names_the_install_command() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import sys; sys.modules['altair'] = None; import railgun_ref.lab"],
        capture_output=True,
        text=True,
        timeout=45,
        check=False,
    )
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: railgun_ref.lab needs the lab extra (missing: altair)")
    assert "pip install 'railgun-ref[lab]'" in last
    assert "ModuleNotFoundError" not in done.stderr


def test_bench_dht_kademlia_without_its_extra_names_the_install_command() -> None:
    done = _cli(
        "bench", "dht", "--impl", "kademlia", prelude="import sys; sys.modules['kademlia'] = None"
    )
    assert done.returncode == 2
    line = _assert_one_line(done.stderr)
    assert line.startswith("railgun-ref: error: ") and "pip install 'railgun-ref[bench]'" in line
