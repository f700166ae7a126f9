"""Source groups: which addresses a limit treats as one source (ABUSE-1.2, DHT-5.5).

Theory of operation:

1. A *group* is the unit a limit counts: for a public IPv4 address its /24,
   for a public IPv6 address its /48 (what one operator can cheaply hold,
   as in geth's `DistinctNetSet`); for a private, link-local or loopback
   address the *endpoint* (IP and port), because test networks run every node
   on 127.0.0.1 and a LAN's hosts are not one operator.
2. `loopback_hosts=True` groups loopback addresses by IP instead, so a test
   can model several hosts as 127.0.0.2, 127.0.0.3, ... each with many ports.
3. A host that is not an IP literal is its own group (its name).

The group is a plain tuple so it can key a dict; it is never sent.
"""

import functools
import ipaddress
from typing import Final

from railgun_ref.core.ids import Address

#: A hashable name of a source group.
Group = tuple[str, str, int]

#: Prefix lengths of one public group.
IPV4_PREFIX: Final = 24
IPV6_PREFIX: Final = 48


@functools.lru_cache(maxsize=65536)
def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def is_public(address: Address) -> bool:
    """True for a global unicast IP literal (the addresses subnet limits apply to)."""
    ip = _ip(address[0])
    return ip is not None and ip.is_global


def source_group(address: Address, *, loopback_hosts: bool = False) -> Group:
    """The group `address` belongs to (ABUSE-1.2)."""
    host, port = address
    ip = _ip(host)
    if ip is None:
        return ("name", host, 0)
    if ip.is_global:
        prefix = IPV4_PREFIX if ip.version == 4 else IPV6_PREFIX
        network = ipaddress.ip_network(f"{ip}/{prefix}", strict=False)
        return ("net", str(network.network_address), prefix)
    if loopback_hosts and ip.is_loopback:
        return ("ip", str(ip), 0)
    return ("endpoint", str(ip), port)
