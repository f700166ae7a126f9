"""Build, drive and tear down a lab of network namespaces (needs root).

Every namespace is named ``rgl<PID>.<N>-<role>``, PID being the process
that built it and N its lab's serial number: `cleanup_leftovers` removes the
namespaces of labs whose builder is gone (a crash, a SIGKILL), and
`NetLab.down` (also run at exit) removes its own. Processes started in a lab
are killed before its namespaces go.

Links are veth pairs created directly inside the two namespaces they join;
none touches the host's namespace, so the lab has no way out of the machine.
"""

import atexit
import contextlib
import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Final, Self

from railgun_ref.capacity.nat import NatType
from railgun_ref.drivers.addresses import ALLOWED_NETWORKS_ENV
from railgun_ref.netlab import nft
from railgun_ref.netlab.topology import (
    CENTRAL,
    CENTRAL_ALT_IP,
    CENTRAL_ALT_IP6,
    CENTRAL_IP,
    CENTRAL_IP6,
    FORGER_IP,
    INTERNET,
    LAB_NETWORKS,
    RESOLVER_IP,
    HostPlan,
    Topology,
)

PREFIX: Final = "rgl"
_COMMAND_TIMEOUT: Final = 20.0


class LabError(RuntimeError):
    """A lab could not be built or driven (with the command that failed)."""


def unavailable_reason() -> str | None:
    """Why a lab cannot be built here, or None when it can."""
    if os.geteuid() != 0:
        return "the network lab needs root (network namespaces, nftables)"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"the network lab needs `{tool}` (OS package {_PACKAGE[tool]})"
    return None


_PACKAGE: Final = {"ip": "iproute2", "nft": "nftables"}


def _run(argv: Sequence[str], *, stdin: str | None = None) -> str:
    try:
        done = subprocess.run(
            list(argv),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=_COMMAND_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LabError(f"{' '.join(argv)}: {exc}") from None
    if done.returncode != 0:
        raise LabError(f"{' '.join(argv)}: {done.stderr.strip() or done.returncode}")
    return done.stdout


def list_namespaces() -> list[str]:
    """Names of every network namespace (``ip netns list``)."""
    return [line.split()[0] for line in _run(["ip", "netns", "list"]).splitlines() if line]


#: the owner part of a lab kept past its builder (``railgun-ref netlab up``)
KEPT: Final = "keep"
#: the owner part of any other lab: ``<builder PID>.<serial>``
_OWNER: Final = re.compile(r"[0-9]+\.[0-9]+")
_SERIAL: Final = itertools.count(1)


def _owner(namespace: str) -> str | None:
    """The owner in a lab namespace's name (a builder PID or `KEPT`), None if not a lab's."""
    if not namespace.startswith(PREFIX):
        return None
    owner, sep, _role = namespace[len(PREFIX) :].partition("-")
    return owner if sep and (_OWNER.fullmatch(owner) or owner == KEPT) else None


def _alive(owner: str) -> bool:
    if owner == KEPT:
        return True
    try:
        os.kill(int(owner.partition(".")[0]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lab_namespaces(*, owner: str | None = None) -> list[str]:
    """The lab namespaces on this machine (of one owner, or of all)."""
    found = [(ns, _owner(ns)) for ns in list_namespaces()]
    return [ns for ns, who in found if who is not None and owner in (None, who)]


def _delete_namespace(namespace: str) -> None:
    """Kill what runs inside `namespace` (processes a lab started), then delete it."""
    with contextlib.suppress(LabError):
        for pid_text in _run(["ip", "netns", "pids", namespace]).split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid_text), signal.SIGKILL)
    with contextlib.suppress(LabError):
        _run(["ip", "netns", "delete", namespace])


def cleanup_leftovers(*, kept: bool = False) -> list[str]:
    """Delete the namespaces of labs whose builder is dead (and kept labs with `kept`)."""
    removed = []
    for namespace in lab_namespaces():
        owner = _owner(namespace)
        if owner is not None and (not _alive(owner) or (kept and owner == KEPT)):
            _delete_namespace(namespace)
            removed.append(namespace)
    return removed


def lab_environment() -> dict[str, str]:
    """The environment of a process in a lab: the harness allows the lab's networks."""
    env = dict(os.environ)
    env[ALLOWED_NETWORKS_ENV] = LAB_NETWORKS
    return env


class NetLab:
    """A lab built from a `Topology`: ``with NetLab(topology) as lab: ...``.

    Roles: ``inet`` (the internet router, also the resolver and the censor),
    ``central`` (198.18.0.2 and .3), each host's name, and ``r<name>`` for a
    home router.
    """

    def __init__(self, topology: Topology, *, keep: bool = False) -> None:
        """With `keep`, the lab outlives this process (`KEPT` owner) until
        ``railgun-ref netlab down``; otherwise it goes with `down`, at exit, or
        as a leftover of a dead builder."""
        self.topology = topology
        self.keep = keep
        self.owner = KEPT if keep else f"{os.getpid()}.{next(_SERIAL)}"
        self._built: list[str] = []
        self._processes: list[subprocess.Popen[str]] = []
        self._censor: dict[str, list[str]] = {}

    # ------------------------------------------------------------ lifecycle

    def __enter__(self) -> Self:
        self.up()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.down()

    def namespace(self, role: str) -> str:
        return f"{PREFIX}{self.owner}-{role}"

    def up(self) -> None:
        """Build every namespace, link, address, route and NAT; on failure, undo it all."""
        reason = unavailable_reason()
        if reason is not None:
            raise LabError(reason)
        cleanup_leftovers(kept=self.keep)
        if not self.keep:
            atexit.register(self.down)
        try:
            self._add_namespace(INTERNET)
            self._forwarding(INTERNET)
            _run(
                [
                    "ip",
                    "-n",
                    self.namespace(INTERNET),
                    "addr",
                    "add",
                    f"{RESOLVER_IP}/32",
                    "dev",
                    "lo",
                ]
            )
            _run(
                [
                    "ip",
                    "-n",
                    self.namespace(INTERNET),
                    "addr",
                    "add",
                    f"{FORGER_IP}/32",
                    "dev",
                    "lo",
                ]
            )
            self._add_central()
            for host in self.topology.hosts:
                self._add_host(host)
        except BaseException:
            self.down()
            raise

    def down(self) -> None:
        """Stop the lab's processes and delete its namespaces (idempotent)."""
        for process in self._processes:
            if process.poll() is None:
                process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
        self._processes.clear()
        for namespace in reversed(self._built):
            _delete_namespace(namespace)
        self._built.clear()
        atexit.unregister(self.down)

    # ------------------------------------------------------------ building

    def _add_namespace(self, role: str) -> str:
        name = self.namespace(role)
        _run(["ip", "netns", "add", name])
        self._built.append(name)
        _run(["ip", "-n", name, "link", "set", "lo", "up"])
        return name

    def _forwarding(self, role: str) -> None:
        self.run(role, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
        if self.topology.ipv6:
            self.run(role, ["sysctl", "-q", "-w", "net.ipv6.conf.all.forwarding=1"])

    def _address6(self, role: str, dev: str, ip: str) -> None:
        """An IPv6 /64 on `dev`, usable at once (no duplicate address detection wait)."""
        _run(["ip", "-n", self.namespace(role), "addr", "add", f"{ip}/64", "dev", dev, "nodad"])

    def _route6(self, role: str, prefix: str, via: str) -> None:
        _run(["ip", "-n", self.namespace(role), "-6", "route", "add", prefix, "via", via])

    def _link(self, a: str, a_dev: str, a_ip: str, b: str, b_dev: str, b_ip: str) -> None:
        """A veth pair between roles `a` and `b` with a /24 address on each end."""
        na, nb = self.namespace(a), self.namespace(b)
        _run(
            [
                "ip",
                "link",
                "add",
                a_dev,
                "netns",
                na,
                "type",
                "veth",
                "peer",
                "name",
                b_dev,
                "netns",
                nb,
            ]
        )
        for ns, dev, ip in ((na, a_dev, a_ip), (nb, b_dev, b_ip)):
            _run(["ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", dev])
            _run(["ip", "-n", ns, "link", "set", dev, "up"])

    def _default_route(self, role: str, via: str) -> None:
        _run(["ip", "-n", self.namespace(role), "route", "add", "default", "via", via])

    def _add_central(self) -> None:
        self._add_namespace(CENTRAL)
        self._link(INTERNET, "l0", "198.18.0.1", CENTRAL, "eth0", CENTRAL_IP)
        ns = self.namespace(CENTRAL)
        _run(["ip", "-n", ns, "addr", "add", f"{CENTRAL_ALT_IP}/24", "dev", "eth0"])
        self._default_route(CENTRAL, "198.18.0.1")
        if self.topology.ipv6:
            self._address6(INTERNET, "l0", "fd00:18::1")
            for ip in (CENTRAL_IP6, CENTRAL_ALT_IP6):
                self._address6(CENTRAL, "eth0", ip)
            self._route6(CENTRAL, "default", "fd00:18::1")

    def _add_host(self, host: HostPlan) -> None:
        inet_side = f"198.18.{host.index}.1"
        self._add_namespace(host.name)
        if host.router is None:
            self._link(INTERNET, f"l{host.index}", inet_side, host.name, "eth0", host.address)
            self._default_route(host.name, inet_side)
            if self.topology.ipv6:
                self._add_host6(host)
            return
        self._add_namespace(host.router)
        self._forwarding(host.router)
        self._link(INTERNET, f"l{host.index}", inet_side, host.router, "wan", host.public)
        self._link(host.router, "lan", host.lan_gateway, host.name, "eth0", host.address)
        self._default_route(host.router, inet_side)
        self._default_route(host.name, host.lan_gateway)
        self.apply_ruleset(host.router, nft.router_ruleset(host.nat, host=host.address))
        if self.topology.ipv6:
            self._add_host6(host)

    def _add_host6(self, host: HostPlan) -> None:
        """The IPv6 side of a host (dual-stack labs): routed, behind a stateful firewall."""
        self._address6(INTERNET, f"l{host.index}", host.internet6)
        if host.router is None:
            self._address6(host.name, "eth0", host.address6)
            self._route6(host.name, "default", host.internet6)
            return
        self._address6(host.router, "wan", host.wan6)
        self._address6(host.router, "lan", host.lan_gateway6)
        self._address6(host.name, "eth0", host.address6)
        self._route6(host.router, "default", host.internet6)
        self._route6(host.name, "default", host.lan_gateway6)
        self._route6(INTERNET, host.lan6, host.wan6)
        self.apply_ruleset(host.router, nft.firewall6_ruleset())

    # ------------------------------------------------------------ driving

    def apply_ruleset(self, role: str, ruleset: str) -> None:
        _run(["ip", "netns", "exec", self.namespace(role), "nft", "-f", "-"], stdin=ruleset)

    def argv(self, role: str, argv: Sequence[str]) -> list[str]:
        """`argv` run inside `role`'s namespace."""
        return ["ip", "netns", "exec", self.namespace(role), *argv]

    def run(self, role: str, argv: Sequence[str], *, timeout: float = _COMMAND_TIMEOUT) -> str:
        """Run `argv` in `role`'s namespace to completion; its stdout (LabError on failure)."""
        try:
            done = subprocess.run(
                self.argv(role, argv),
                capture_output=True,
                text=True,
                timeout=timeout,
                env=lab_environment(),
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise LabError(f"{role}: {' '.join(argv)} did not finish in {timeout} s") from None
        if done.returncode != 0:
            raise LabError(f"{role}: {' '.join(argv)}: {done.stderr.strip()[-800:]}")
        return done.stdout

    def start(self, role: str, argv: Sequence[str]) -> "subprocess.Popen[str]":
        """Start `argv` in `role`'s namespace; it is killed when the lab goes down."""
        process = subprocess.Popen(
            self.argv(role, argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=lab_environment(),
        )
        self._processes.append(process)
        return process

    @staticmethod
    def python(*args: str) -> list[str]:
        """``python -m railgun_ref ...`` argv with this interpreter."""
        return [sys.executable, "-m", *args]

    def railgun(self, *args: str) -> list[str]:
        """A `railgun-ref` command line with this interpreter."""
        return self.python("railgun_ref.cli", *args)

    def processes(self) -> Iterator["subprocess.Popen[str]"]:
        return iter(self._processes)

    # ------------------------------------------------------------ censorship

    def _publics(self, hosts: Sequence[str] | None) -> list[str]:
        plans = self.topology.hosts if hosts is None else [self.topology.host(h) for h in hosts]
        return [h.public for h in plans]

    def _apply_censor(self) -> None:
        rules = [rule for group in self._censor.values() for rule in group]
        self.apply_ruleset(
            INTERNET, f"table inet {nft.CENSOR_TABLE}\ndelete table inet {nft.CENSOR_TABLE}\n"
        )
        if rules:
            self.apply_ruleset(INTERNET, nft.censor_ruleset(rules))

    def block(
        self,
        destination: str = CENTRAL_IP,
        *,
        mode: nft.BlockMode = nft.BlockMode.DROP,
        hosts: Sequence[str] | None = None,
    ) -> None:
        """Block `hosts` (all clients by default) from `destination` in the internet."""
        self._censor[f"block {destination}"] = nft.block_rules(
            self._publics(hosts), destination, mode
        )
        self._apply_censor()

    def partition(self, group_a: Sequence[str], group_b: Sequence[str]) -> None:
        """Drop everything between two groups of hosts (names; ``central`` allowed)."""
        key = f"partition {sorted(group_a)} {sorted(group_b)}"
        self._censor[key] = nft.partition_rules(self._role_ips(group_a), self._role_ips(group_b))
        self._apply_censor()

    def _role_ips(self, roles: Sequence[str]) -> list[str]:
        ips = [CENTRAL_IP if r == CENTRAL else self.topology.host(r).public for r in roles]
        if self.topology.ipv6:
            ips += [CENTRAL_IP6 if r == CENTRAL else self.topology.host(r).address6 for r in roles]
        return ips

    def dns(self, *, forge: bool, hosts: Sequence[str] | None = None) -> None:
        """Censor the resolver for `hosts`: drop their queries, or answer from the forger."""
        forger = FORGER_IP if forge else None
        self._censor["dns"] = nft.dns_rules(self._publics(hosts), RESOLVER_IP, forger=forger)
        self._apply_censor()

    def lift(self) -> None:
        """Remove every censorship rule."""
        self._censor.clear()
        self._apply_censor()

    def nat_of(self, name: str) -> NatType:
        return self.topology.host(name).nat
