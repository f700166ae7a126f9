"""The lab itself: real processes in namespaces, censorship by the kernel, clean teardown."""

import re
import subprocess
import sys

import pytest

from railgun_ref.netlab.lab import NetLab, _alive, cleanup_leftovers, lab_namespaces
from railgun_ref.netlab.nft import BlockMode
from railgun_ref.netlab.topology import (
    CENTRAL,
    CENTRAL_IP,
    FORGER_IP,
    RESOLVER_IP,
    parse_topology,
)

from .conftest import require_lab

#: a TCP connect from inside a namespace: prints connected, refused or timeout
_TCP_PROBE = """
import socket, sys
s = socket.socket()
s.settimeout(float(sys.argv[3]))
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
    print("connected")
except ConnectionRefusedError:
    print("refused")
except TimeoutError:
    print("timeout")
except OSError as exc:
    print("error", exc.errno)
"""

#: the project's stub resolver from inside a namespace: prints the answer or the error label
_RESOLVE = """
import sys, anyio
from railgun_ref.drivers.central_client import DnsError
from railgun_ref.drivers.resolver import StubResolver
async def main():
    try:
        print(await StubResolver((sys.argv[1], 53), timeout=1.0)("central.lab"))
    except DnsError as exc:
        print(exc.label.value)
anyio.run(main)
"""

CENTRAL_PORT = "8080"


def _probe(lab: NetLab, host: str, port: str = CENTRAL_PORT, timeout: float = 1.0) -> str:
    argv = [sys.executable, "-c", _TCP_PROBE, CENTRAL_IP, port, str(timeout)]
    return lab.run(host, argv).strip()


@pytest.fixture(scope="module")
def central(lab: NetLab) -> NetLab:
    """`railgun-ref central` on the central host's lab address."""
    args = ["central", "--host", CENTRAL_IP, "--port", CENTRAL_PORT, "--allow-public-bind"]
    process = lab.start(CENTRAL, lab.railgun(*args))
    assert process.stdout is not None
    assert process.stdout.readline().startswith("railgun-ref central listening http://198.18.0.2")
    return lab


def test_every_host_reaches_the_central_service_through_its_nat(central: NetLab) -> None:
    assert {h.name: _probe(central, h.name) for h in central.topology.hosts} == {
        h.name: "connected" for h in central.topology.hosts
    }


def test_blocking_central_drops_or_rejects_for_the_chosen_clients(central: NetLab) -> None:
    try:
        central.block(mode=BlockMode.DROP, hosts=["full"])
        assert _probe(central, "full", timeout=0.5) == "timeout"
        assert _probe(central, "sym") == "connected"
        central.block(mode=BlockMode.REJECT)  # every client, now rejected
        assert {_probe(central, h.name) for h in central.topology.hosts} == {"refused"}
    finally:
        central.lift()
    assert _probe(central, "full") == "connected"


def test_a_partition_cuts_one_group_off_the_other(central: NetLab) -> None:
    try:
        central.partition(["open", "full"], [CENTRAL])
        assert _probe(central, "open", timeout=0.5) == "timeout"
        assert _probe(central, "port") == "connected"
    finally:
        central.lift()


def test_the_resolver_answers_blocks_or_forges(lab: NetLab) -> None:
    agent = ["railgun_ref.netlab.agent", "dns"]
    for address, answer in ((RESOLVER_IP, CENTRAL_IP), (FORGER_IP, "198.18.0.99")):
        process = lab.start(
            "inet", lab.python(*agent, "--host", address, "--record", f"central.lab={answer}")
        )
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    resolve = [sys.executable, "-c", _RESOLVE, RESOLVER_IP]
    try:
        assert lab.run("port", resolve).strip() == CENTRAL_IP
        lab.dns(forge=True, hosts=["port"])
        assert lab.run("port", resolve).strip() == "198.18.0.99"
        assert lab.run("sym", resolve).strip() == CENTRAL_IP
        lab.dns(forge=False)
        assert lab.run("sym", resolve).strip() == "dns_timeout"
    finally:
        lab.lift()


def test_a_lab_leaves_nothing_behind() -> None:
    require_lab()
    with NetLab(parse_topology("a:symmetric,b:open")) as lab:
        assert len(lab_namespaces(owner=lab.owner)) == 5  # inet, central, ra, a, b
        lab.start("a", ["sleep", "60"])
    assert lab_namespaces(owner=lab.owner) == []


def test_the_leftovers_of_a_killed_builder_are_cleaned_up() -> None:
    require_lab()
    crash = (
        "import os, signal\n"
        "from railgun_ref.netlab.lab import NetLab\n"
        "from railgun_ref.netlab.topology import parse_topology\n"
        "lab = NetLab(parse_topology('a:full-cone'))\n"
        "lab.up()\n"
        "print(lab.owner, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    argv = [sys.executable, "-c", crash]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == -9
    owner = done.stdout.strip()
    assert len(lab_namespaces(owner=owner)) == 4  # the crash left them
    removed = cleanup_leftovers()
    assert set(removed) >= {f"rgl{owner}-a", f"rgl{owner}-inet"}
    assert lab_namespaces(owner=owner) == []
    # What is left belongs to live builders only (this test's, or another lab running
    # on the machine at the same time); nothing of a dead builder survives the cleanup.
    left = [ns for ns in lab_namespaces() if "keep" not in ns]
    assert all(_alive(ns[len("rgl") :].partition("-")[0]) for ns in left), left


def test_nodes_bind_lab_interfaces_and_see_peers_at_their_public_address(lab: NetLab) -> None:
    """`railgun-ref node --allow-public-bind` in two namespaces: the node behind the NAT
    joins through the open one, which sees it at its router's address, not its bind."""
    open_host, natted = lab.topology.host("open"), lab.topology.host("port")
    serve = ["node", "--host", open_host.address, "--port", "7000", "--allow-public-bind", "-vv"]
    server = lab.start("open", lab.railgun(*serve))
    assert server.stdout is not None
    assert server.stdout.readline().startswith(
        f"railgun-ref node listening udp://{open_host.address}"
    )
    join = ["node", "--host", natted.address, "--allow-public-bind"]
    joiner = lab.start("port", lab.railgun(*join, "--bootstrap", f"{open_host.address}:7000"))
    assert joiner.stdout is not None
    assert joiner.stdout.readline().startswith(f"railgun-ref node listening udp://{natted.address}")
    assert joiner.stdout.readline().startswith("joined: 1 contacts")
    server.terminate()
    _, log = server.communicate(timeout=15)
    seen = set(re.findall(r"<- datagram \S+ ([0-9.]+):[0-9]+", log))
    assert seen == {natted.public}  # 198.18.4.2, the router; never 10.4.0.2
