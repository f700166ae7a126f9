"""NAT traversal (spec §20) through kernel NATs: agent processes in the lab's namespaces."""

import json
import subprocess
from collections.abc import Iterator

import pytest

from railgun_ref.netlab.agent import RELAY_PORT
from railgun_ref.netlab.lab import NetLab
from railgun_ref.netlab.topology import CENTRAL, CENTRAL_IP

AGENT = "railgun_ref.netlab.agent"


class Peer:
    def __init__(self, lab: NetLab, name: str) -> None:
        host = lab.topology.host(name)
        argv = ["peer", "--local", host.address, "--relay", f"{CENTRAL_IP}:{RELAY_PORT}"]
        self.process: subprocess.Popen[str] = lab.start(
            name, lab.python(AGENT, *argv, "--nat", host.nat.value)
        )

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def read(self) -> dict[str, object]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, "the agent exited"
        result: dict[str, object] = json.loads(line)
        return result


@pytest.fixture(scope="module")
def peers(lab: NetLab) -> Iterator[dict[str, Peer]]:
    relay = lab.start(CENTRAL, lab.python(AGENT, "relay", "--host", CENTRAL_IP))
    assert relay.stdout is not None and relay.stdout.readline().strip() == "ready"
    yield {h.name: Peer(lab, h.name) for h in lab.topology.hosts}
    relay.kill()


def _attempt(a: Peer, b: Peer) -> tuple[dict[str, object], dict[str, object]]:
    a.send("new")
    b.send("new")
    mine, theirs = a.read(), b.read()
    assert mine["event"] == theirs["event"] == "registered"
    a.send(f"connect {theirs['id']}")
    return a.read(), b.read()


@pytest.mark.parametrize(
    ("a", "b", "outcome", "public"),
    [
        ("sym", "restr", "punched", "198.18.3.2"),
        ("port", "restr", "punched", "198.18.3.2"),
        ("open", "port", "reversed", "198.18.4.2"),
        ("full", "sym", "reversed", "198.18.5.2"),
        ("port", "full", "direct", "198.18.2.2"),
    ],
)
def test_punchable_pairs_connect_directly_through_kernel_nats(
    peers: dict[str, Peer], a: str, b: str, outcome: str, public: str
) -> None:
    """NAT-3.2, NAT-5.2, NAT-5.3: the plan's mechanism works on real NATs; the direct path
    is the responder's router's public address (what the relay observed), not its bind."""
    mine, theirs = _attempt(peers[a], peers[b])
    assert (mine["outcome"], theirs["outcome"]) == (outcome, outcome)
    assert mine["initiator"] is True and mine["attempts"] == 1
    direct = mine["direct"]
    assert isinstance(direct, list) and direct[0] == public


def test_an_unpunchable_pair_stays_relayed(peers: dict[str, Peer]) -> None:
    """NAT-3.1: symmetric with port-restricted: relayed at once, labelled."""
    mine, theirs = _attempt(peers["sym"], peers["port"])
    assert (mine["outcome"], mine["reason"]) == ("relayed", "unpunchable")
    assert theirs["outcome"] == "relayed"
