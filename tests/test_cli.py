"""The `railgun-ref` command line: help everywhere, loopback-only, sim determinism."""

import json
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

import railgun_ref
from railgun_ref.cli import build_parser, main
from railgun_ref.drivers.addresses import (
    ALLOWED_NETWORKS_ENV,
    check_bind_host,
    check_destination,
    parse_target,
)

SUBCOMMANDS = [
    [],
    ["node"],
    ["central"],
    ["turn"],
    ["demo"],
    ["sim"],
    ["conformance"],
    ["conformance", "vectors"],
    ["conformance", "run"],
    ["bench"],
    ["bench", "wire"],
    ["bench", "detectors"],
    ["bench", "failover"],
    ["bench", "dht"],
    ["bench", "voice"],
]


@pytest.mark.parametrize("words", SUBCOMMANDS, ids=lambda w: " ".join(w) or "top")
def test_every_subcommand_has_help(words: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([*words, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: railgun-ref")


def _pyproject_version() -> str:
    pyproject = Path(railgun_ref.__file__).resolve().parent.parent / "pyproject.toml"
    return str(tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"])


def test_version_option_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    """`railgun-ref --version` prints the installed version, the one pyproject.toml names."""
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"railgun-ref {railgun_ref.__version__}\n"
    assert railgun_ref.__version__ == _pyproject_version()
    assert "__version__" in railgun_ref.__all__


def test_version_of_an_uninstalled_checkout_comes_from_pyproject(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without installed metadata (a bare checkout on PYTHONPATH) pyproject.toml answers."""

    def not_installed(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", not_installed)
    railgun_ref._version.cache_clear()
    try:
        assert railgun_ref.__version__ == _pyproject_version()
    finally:
        railgun_ref._version.cache_clear()


@pytest.mark.parametrize(
    "argv",
    [
        ["turn", "--host", "turn.example", "--user", "a:b"],
        ["turn", "--user", "no-password"],
        ["turn"],  # at least one user
    ],
)
def test_turn_refuses_bad_arguments(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(argv)
    assert exit_info.value.code == 2


@pytest.mark.parametrize("command", [["node"], ["central"], ["turn", "--user", "a:b"]])
def test_a_non_loopback_host_needs_the_option(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*command, "--host", "192.0.2.1"]) == 2
    err = capsys.readouterr().err
    assert "not a loopback address" in err and "--allow-public-bind" in err


def test_host_must_be_an_ip_literal(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["central", "--host", "localhost"])
    assert exit_info.value.code == 2
    assert "not an IP address literal" in capsys.readouterr().err


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "127.255.1.9", "::1"])
def test_loopback_hosts_bind_by_default(host: str) -> None:
    assert check_bind_host(host) == host


@pytest.mark.parametrize("host", ["10.0.0.1", "192.168.1.1", "0.0.0.0", "::", "fd00::1"])
def test_other_hosts_need_allow_public(host: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="allow-public-bind"):
        check_bind_host(host)
    monkeypatch.delenv(ALLOWED_NETWORKS_ENV)  # production: no harness restriction
    assert check_bind_host(host, allow_public=True) == host


@pytest.mark.parametrize("host", ["example.org", "", "localhost"])
def test_names_are_refused(host: str) -> None:
    with pytest.raises(ValueError, match="literal"):
        check_bind_host(host, allow_public=True)


def test_the_harness_keeps_destinations_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    assert check_destination(("::1", 9)) == ("::1", 9)
    with pytest.raises(ValueError, match=ALLOWED_NETWORKS_ENV):
        check_destination(("192.0.2.1", 9))
    monkeypatch.setenv(ALLOWED_NETWORKS_ENV, "127.0.0.0/8,198.18.0.0/15")
    assert check_destination(("198.18.3.4", 9)) == ("198.18.3.4", 9)
    monkeypatch.delenv(ALLOWED_NETWORKS_ENV)
    assert check_destination(("192.0.2.1", 9)) == ("192.0.2.1", 9)  # the product sends anywhere
    for bad in [("224.0.0.1", 9), ("0.0.0.0", 9), ("255.255.255.255", 9), ("::", 9)]:
        with pytest.raises(ValueError, match=r"unicast|broadcast"):
            check_destination(bad)


def test_parse_target() -> None:
    assert parse_target("udp://127.0.0.2:4000") == ("127.0.0.2", 4000)
    assert parse_target("[::1]:4000") == ("::1", 4000)
    for bad in ["udp://127.0.0.1", "udp://127.0.0.1:0", "udp://127.0.0.1:x", "udp://1.2.3.4:5"]:
        with pytest.raises(ValueError):
            parse_target(bad)


def _sim_json(capsys: pytest.CaptureFixture[str], seed: int) -> dict[str, object]:
    args = ["sim", "--nodes", "10", "--duration", "5", "--seed", str(seed), "--json"]
    assert main(args) == 0
    result: dict[str, object] = json.loads(capsys.readouterr().out)
    return result


def test_sim_summary_is_deterministic_per_seed(capsys: pytest.CaptureFixture[str]) -> None:
    first, again, other = (_sim_json(capsys, s) for s in (3, 3, 4))
    assert first["trace_sha256"] == again["trace_sha256"]
    assert first["trace_sha256"] != other["trace_sha256"]
    assert first["pings_sent"] == again["pings_sent"]
    pongs, sent = first["pongs"], first["pings_sent"]
    assert isinstance(pongs, int) and isinstance(sent, int)
    assert 0 < pongs <= sent
