"""The failover scenarios on a network lab: kernel-level faults, clients behind real NATs.

`LabFailoverNetwork` is the demo's engine (`railgun_ref.apps.demo.FailoverNetwork`)
with its pieces moved into a `NetLab`:

* the central service is a real ``railgun-ref central`` process in the lab's
  central host (198.18.0.2), named ``central.railgun.test`` by the project's
  DNS server running as the lab resolver (198.19.0.53, in the internet
  namespace);
* each client is a demo worker process (one process per client, its own
  event loop) inside its own client host, behind the home-router NAT its
  topology names; client 0 sits on the internet without a NAT (the others
  join the DHT through it), the rest cycle through the endpoint-independent
  NATs (full cone, restricted, port-restricted) and further open hosts. Each
  worker is told its host's NAT type (what the RFC 5780 classifier finds
  there, tests/netlab) and runs NAT traversal (NAT-6.3) through client 0;
  the failover scenarios keep to endpoint-independent NATs, and
  tests/netlab/test_client_traversal.py covers the symmetric pairs;
* every fault is the kernel's, applied by the lab's censor in the internet
  router (nftables): ``dns_block`` drops every query to the resolver,
  ``ip_block`` drops every packet to the service's address (the checks time
  out), ``ip_reject`` rejects them (TCP reset, ICMP admin-prohibited),
  ``takedown`` SIGKILLs the central process (restarted on restore), and
  ``partition`` takes the service down *and* drops every packet between two
  groups of clients, which only `bridges` clients reach both of (the sim's
  scenario 4; here the service comes back at the end, so exactly-once is
  judged as in the other scenarios).

Everything the processes send stays inside the lab's namespaces.
"""

import contextlib
import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Final

import anyio
import anyio.abc

from railgun_ref.apps.demo import CENTRAL_NAME, ROOM, CentralProcess, FailoverNetwork
from railgun_ref.apps.demo_clients import ClientProcess
from railgun_ref.capacity.nat import NatType
from railgun_ref.netlab.agent import STUN_PORT
from railgun_ref.netlab.lab import NetLab, lab_environment
from railgun_ref.netlab.nft import BlockMode
from railgun_ref.netlab.topology import (
    CENTRAL,
    CENTRAL_ALT_IP,
    CENTRAL_IP,
    INTERNET,
    RESOLVER_IP,
    Topology,
    plan_host,
)

#: The scenarios a lab runs, and what each does.
LAB_SCENARIOS: Final = {
    "dns_block": "DNS blocking: the resolver's censor drops every query",
    "ip_block": "IP blocking (drop): the censor drops every packet to the service's address",
    "ip_reject": "IP blocking (reject): the censor answers TCP reset / ICMP admin-prohibited",
    "takedown": "Complete takedown: the central process is killed",
    "partition": "Takedown and partition: two groups of clients cut off from each other",
}
#: The health-check label each scenario is expected to produce first.
LAB_EXPECTED_LABELS: Final = {
    "dns_block": "dns_timeout",
    "ip_block": "generic_timeout",
    "ip_reject": "connection_refused",
    "takedown": "connection_refused",
    "partition": "connection_refused",
}
CENTRAL_PORT: Final = 8080
DNS_PORT: Final = 53
#: The NATs client hosts 1, 2, ... sit behind, in turn (client 0 is open).
CLIENT_NATS: Final = (
    NatType.FULL_CONE,
    NatType.RESTRICTED,
    NatType.PORT_RESTRICTED,
    NatType.OPEN,
)
#: Seconds a lab agent may take to report ``ready``.
AGENT_START_TIMEOUT: Final = 30.0


def client_name(index: int) -> str:
    return f"c{index:02d}"


def lab_topology(clients: int) -> Topology:
    """Client 0 open (the others bootstrap through it), then `CLIENT_NATS` in turn."""
    hosts = [plan_host(client_name(0), NatType.OPEN, 1)]
    for index in range(1, clients):
        nat = CLIENT_NATS[(index - 1) % len(CLIENT_NATS)]
        hosts.append(plan_host(client_name(index), nat, index + 1))
    return Topology(hosts=tuple(hosts))


def partition_groups(clients: int, bridges: int) -> tuple[list[str], list[str], list[str]]:
    """(group A only, group B only, bridges): the first `bridges` clients are in both."""
    rest = [client_name(i) for i in range(bridges, clients)]
    half = len(rest) // 2
    return rest[:half], rest[half:], [client_name(i) for i in range(bridges)]


async def _wait_ready(process: "subprocess.Popen[str]", what: str) -> None:
    """Wait for an agent's ``ready`` line (RuntimeError if it exits or takes too long)."""
    assert process.stdout is not None
    stdout = process.stdout
    with anyio.fail_after(AGENT_START_TIMEOUT):
        line = await anyio.to_thread.run_sync(stdout.readline, abandon_on_cancel=True)
    if line.strip() != "ready":
        error = process.stderr.read()[-500:] if process.stderr else ""
        raise RuntimeError(f"{what} did not start: {line.strip() or error}")


class LabFailoverNetwork(FailoverNetwork):
    """The demo's network inside `lab` (module docstring); one client per lab host."""

    def __init__(
        self,
        lab: NetLab,
        *,
        data_dir: Path,
        chat_interval: float = 0.5,
        hold: float = 3.0,
        bridges: int = 2,
        log: Callable[[str], None] | None = None,
        p2p_ipv6: bool = False,
    ) -> None:
        """`p2p_ipv6`: in a dual-stack lab, each client's node binds the host's IPv6
        address (its P2P path runs over IPv6, the central path stays on IPv4)."""
        if p2p_ipv6 and not lab.topology.ipv6:
            raise ValueError("p2p_ipv6 needs a dual-stack lab (parse_topology(..., ipv6=True))")
        hosts = [h.name for h in lab.topology.hosts]
        super().__init__(
            peers=len(hosts),
            data_dir=data_dir,
            chat_interval=chat_interval,
            hold=hold,
            log=log,
            fresh_client=False,
        )
        self.lab = lab
        self.hosts = hosts
        self.bridges = bridges
        self.p2p_ipv6 = p2p_ipv6

    def title(self, scenario: str) -> str:
        if scenario not in LAB_SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}; known: {', '.join(LAB_SCENARIOS)}")
        return LAB_SCENARIOS[scenario]

    def _origin(self) -> str:
        return f"ws://{CENTRAL_NAME}:{CENTRAL_PORT}"

    async def _start_services(self, tg: anyio.abc.TaskGroup) -> None:
        """The lab resolver (the project's DNS server) and the central process."""
        record = f"{CENTRAL_NAME}={CENTRAL_IP}"
        argv = ["railgun_ref.netlab.agent", "dns", "--host", RESOLVER_IP, "--record", record]
        await _wait_ready(self.lab.start(INTERNET, self.lab.python(*argv)), "the lab resolver")
        # NAT-6.4: each client detects its own NAT type against this server
        argv = ["railgun_ref.netlab.agent", "stun", "--primary", CENTRAL_IP]
        argv += ["--alternate", CENTRAL_ALT_IP]
        await _wait_ready(self.lab.start(CENTRAL, self.lab.python(*argv)), "the STUN server")
        self.central = CentralProcess(
            data_dir=self.data_dir,
            port=CENTRAL_PORT,
            origin=self._origin(),
            host=CENTRAL_IP,
            launcher=self.lab.argv(CENTRAL, []),
            env=lab_environment(),
        )
        await self.central.start()
        self._record(None, "central", action="started", port=CENTRAL_PORT)

    async def _start_client(self, tg: anyio.abc.TaskGroup, client: ClientProcess) -> None:
        client.launcher = tuple(self.lab.argv(self.hosts[client.index], []))
        client.env = lab_environment()
        await super()._start_client(tg, client)

    def worker_argv(self, index: int, data: Path) -> list[str]:
        host = self.lab.topology.host(self.hosts[index])
        # NAT-6.4: the client detects its NAT type from inside its host (tests/netlab)
        bind, nat = host.address, ["--stun", f"{CENTRAL_IP}:{STUN_PORT}"]
        if self.p2p_ipv6:  # no NAT66: an open host or a stateful firewall (topology docs)
            bind = host.address6
            kind = NatType.OPEN if host.router is None else NatType.PORT_RESTRICTED
            nat = ["--nat", kind.value]
        return [
            *("--index", str(index), "--data-dir", str(data), "--room", ROOM),
            *("--central-url", f"http://{CENTRAL_NAME}:{CENTRAL_PORT}"),
            *("--origin", self._origin(), "--dns", f"{RESOLVER_IP}:{DNS_PORT}"),
            *("--host", bind, "--allow-public-bind"),
            *nat,
        ]

    async def apply_fault(self, scenario: str) -> None:
        assert self.central is not None
        match scenario:
            case "dns_block":
                self.lab.dns(forge=False)
            case "ip_block":
                self.lab.block(CENTRAL_IP, mode=BlockMode.DROP)
            case "ip_reject":
                self.lab.block(CENTRAL_IP, mode=BlockMode.REJECT)
            case "takedown" | "partition":
                self.central.kill()
                self._record(None, "central", action="killed")
                if scenario == "partition":
                    group_a, group_b, bridges = partition_groups(self.peers, self.bridges)
                    self.lab.partition(group_a, group_b)
                    self._record(None, "partition", a=group_a, b=group_b, bridges=bridges)
            case _:
                raise ValueError(f"unknown scenario {scenario!r}")
        self._record(None, "nft", action="applied", scenario=scenario)

    async def lift_fault(self, scenario: str) -> None:
        assert self.central is not None
        self.lab.lift()
        if scenario in ("takedown", "partition"):
            await self.central.start()
            self._record(None, "central", action="started")
        self._record(None, "nft", action="lifted", scenario=scenario)


def lab_hosts_note(topology: Topology) -> dict[str, str]:
    """Each client's NAT, for the report."""
    return {h.name: h.nat.value for h in topology.hosts}


@contextlib.contextmanager
def scenario_lab(clients: int) -> Iterator[NetLab]:
    """A fresh lab for one scenario (torn down when the block ends)."""
    with NetLab(lab_topology(clients)) as lab:
        yield lab


__all__: Sequence[str] = (
    "LAB_EXPECTED_LABELS",
    "LAB_SCENARIOS",
    "LabFailoverNetwork",
    "lab_hosts_note",
    "lab_topology",
    "partition_groups",
    "scenario_lab",
)
