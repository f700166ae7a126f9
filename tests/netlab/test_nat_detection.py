"""The RFC 5780 classifier (stun/, drivers/stun_server.py) on real kernel NATs.

Each client host runs the classifier against the project's STUN server on the
central host's two addresses; what it concludes must be the NAT the lab built
in front of it (nftables rules, `railgun_ref.netlab.nft`).
"""

import json
import subprocess

from railgun_ref.capacity.nat import NatType
from railgun_ref.netlab.agent import STUN_PORT
from railgun_ref.netlab.lab import NetLab
from railgun_ref.netlab.topology import CENTRAL, CENTRAL_ALT_IP, CENTRAL_IP


def test_each_nat_is_classified_from_inside_its_host(lab: NetLab) -> None:
    stun_args = ["stun", "--primary", CENTRAL_IP, "--alternate", CENTRAL_ALT_IP]
    server = lab.start(CENTRAL, lab.python("railgun_ref.netlab.agent", *stun_args))
    assert server.stdout is not None and server.stdout.readline().strip() == "ready"
    running: dict[str, subprocess.Popen[str]] = {}
    for host in lab.topology.hosts:  # in parallel: silent tests cost 3.5 s each
        detect = ["detect", "--server", f"{CENTRAL_IP}:{STUN_PORT}", "--local", host.address]
        running[host.name] = lab.start(host.name, lab.python("railgun_ref.netlab.agent", *detect))
    found = {}
    for name, process in running.items():
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        found[name] = json.loads(out)
    assert {name: NatType(r["nat_type"]) for name, r in found.items()} == {
        h.name: h.nat for h in lab.topology.hosts
    }
    for host in lab.topology.hosts:  # the mapped address is the router's WAN side
        assert found[host.name]["mapped"][0] == host.public
        assert found[host.name]["behind_nat"] is (host.nat is not NatType.OPEN)
