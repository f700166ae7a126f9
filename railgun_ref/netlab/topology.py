"""A lab's description and address plan (pure data, no IO).

A lab is one "internet" router namespace, one central-service host and client
hosts. A client host either sits on the internet itself (`NatType.OPEN`) or
behind its own home router running a kernel NAT of the given behaviour. The
description is a comma-separated list ``NAME:NAT`` (``alice:full-cone,
bob:symmetric,carol:open``).

Address plan (private and benchmark ranges only, RFC 6890):

* link ``i`` between the internet and the ``i``-th attachment is
  198.18.i.0/24: the internet is 198.18.i.1, the attachment 198.18.i.2
  (a home router's WAN side, or an open host);
* the central host is attachment 0: 198.18.0.2 and a second address
  198.18.0.3 (the STUN server's alternate, RFC 5780 §4.1);
* the resolver the clients use lives in the internet namespace: 198.19.0.53,
  and its forging twin 198.19.0.54;
* behind home router ``i``: 10.i.0.1 (router) and 10.i.0.2 (the host).

A dual-stack lab (``ipv6=True``) adds unique local IPv6 addresses (RFC 4193,
fd00::/8) beside those, with ``h`` the link number in hex:

* link ``i``: fd00:18:h::1 (internet) and fd00:18:h::2 (the attachment); the
  central host is fd00:18::2 and fd00:18::3;
* behind home router ``i``: fd00:10:h::1 (router) and fd00:10:h::2 (the host).
  IPv6 is routed, not translated: the host's address is its public one, and
  the home router is a stateful firewall (RFC 6092: replies in, unsolicited
  TCP/UDP dropped), which maps endpoint-independently (no mapping at all) and
  filters like a port-restricted NAT.
"""

import re
from dataclasses import dataclass
from typing import Final

from railgun_ref.capacity.nat import NatType

#: the NAT behaviours a lab builds (RFC 4787 terms in `nft`); OPEN is no NAT at all
LAB_NATS: Final = (
    NatType.OPEN,
    NatType.FULL_CONE,
    NatType.RESTRICTED,
    NatType.PORT_RESTRICTED,
    NatType.SYMMETRIC,
)
MAX_HOSTS: Final = 200
#: networks a lab's processes may bind and send to (`drivers.addresses` harness)
LAB_NETWORKS: Final = "127.0.0.0/8,::1/128,198.18.0.0/15,10.0.0.0/8,fd00:18::/32,fd00:10::/32"
CENTRAL_IP: Final = "198.18.0.2"
CENTRAL_ALT_IP: Final = "198.18.0.3"
CENTRAL_IP6: Final = "fd00:18::2"
CENTRAL_ALT_IP6: Final = "fd00:18::3"
RESOLVER_IP: Final = "198.19.0.53"
FORGER_IP: Final = "198.19.0.54"
INTERNET: Final = "inet"
CENTRAL: Final = "central"
_NAME: Final = re.compile(r"[a-z][a-z0-9]{0,7}")


class TopologyError(ValueError):
    """A description the lab cannot build."""


@dataclass(frozen=True, slots=True, kw_only=True)
class HostPlan:
    """One client host: its namespace role, NAT and addresses."""

    name: str
    nat: NatType
    index: int  #: link number on the internet (1..MAX_HOSTS)
    address: str  #: the host's own address
    public: str  #: its address as the internet sees it (router WAN, or itself)

    @property
    def router(self) -> str | None:
        """The home router's role name, or None for an open host."""
        return None if self.nat is NatType.OPEN else f"r{self.name}"

    @property
    def lan_gateway(self) -> str:
        return f"10.{self.index}.0.1"

    @property
    def address6(self) -> str:
        """The host's IPv6 address in a dual-stack lab (also its public one: no NAT66)."""
        return self.wan6 if self.router is None else f"fd00:10:{self.index:x}::2"

    @property
    def wan6(self) -> str:
        """The IPv6 address of the attachment on the internet (router WAN, or the host)."""
        return f"fd00:18:{self.index:x}::2"

    @property
    def internet6(self) -> str:
        """The internet's end of this host's link (its IPv6 default gateway or router's)."""
        return f"fd00:18:{self.index:x}::1"

    @property
    def lan_gateway6(self) -> str:
        return f"fd00:10:{self.index:x}::1"

    @property
    def lan6(self) -> str:
        """The home network's IPv6 prefix (routed to the router's WAN address)."""
        return f"fd00:10:{self.index:x}::/64"


@dataclass(frozen=True, slots=True, kw_only=True)
class Topology:
    """A parsed description with its address plan."""

    hosts: tuple[HostPlan, ...]
    ipv6: bool = False  #: dual-stack: every namespace also gets its IPv6 addresses

    def host(self, name: str) -> HostPlan:
        for plan in self.hosts:
            if plan.name == name:
                return plan
        raise TopologyError(f"no host named {name!r} in this lab")

    def describe(self) -> str:
        return ",".join(f"{h.name}:{h.nat.value}" for h in self.hosts)


def plan_host(name: str, nat: NatType, index: int) -> HostPlan:
    if nat not in LAB_NATS:
        raise TopologyError(f"{nat.value} is not a NAT the lab builds")
    wan = f"198.18.{index}.2"
    address = wan if nat is NatType.OPEN else f"10.{index}.0.2"
    return HostPlan(name=name, nat=nat, index=index, address=address, public=wan)


def parse_topology(text: str, *, ipv6: bool = False) -> Topology:
    """``NAME:NAT,...`` (NAT one of `LAB_NATS`' values) as a `Topology` (`ipv6`: dual-stack)."""
    hosts: list[HostPlan] = []
    for index, item in enumerate((p.strip() for p in text.split(",") if p.strip()), start=1):
        name, sep, nat_text = item.partition(":")
        if not sep or not _NAME.fullmatch(name) or name in (INTERNET, CENTRAL):
            raise TopologyError(
                f"expected NAME:NAT with NAME of 1-8 lower-case letters/digits, got {item!r}"
            )
        nat = next((k for k in LAB_NATS if k.value == nat_text), None)
        if nat is None:
            kinds = ", ".join(k.value for k in LAB_NATS)
            raise TopologyError(f"unknown NAT {nat_text!r}: one of {kinds}")
        if any(h.name == name for h in hosts):
            raise TopologyError(f"host {name!r} appears twice")
        hosts.append(plan_host(name, nat, index))
    if not hosts or len(hosts) > MAX_HOSTS:
        raise TopologyError(f"a lab has 1..{MAX_HOSTS} client hosts")
    return Topology(hosts=tuple(hosts), ipv6=ipv6)
