"""Address policy of every driver: this project only ever talks to 127.0.0.0/8.

The whole 127.0.0.0/8 range is local, so a second address (127.0.0.2...) is
always at hand; nothing here ever binds or sends elsewhere.
"""

import ipaddress
from typing import Final

from railgun_ref.core.ids import Address

LOOPBACK_NETWORK: Final = ipaddress.IPv4Network("127.0.0.0/8")


def check_loopback_host(host: str) -> str:
    """Return `host` if it is an IPv4 literal in 127.0.0.0/8, else raise ValueError."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f"{host!r} is not an IP address literal; only 127.0.0.0/8 is used"
        ) from None
    if not isinstance(ip, ipaddress.IPv4Address) or ip not in LOOPBACK_NETWORK:
        raise ValueError(f"{host} is not a loopback address; only 127.0.0.0/8 is used")
    return host


def check_loopback_address(address: Address) -> Address:
    """Return `address` if it is (127.x.y.z, 1..65535), else raise ValueError."""
    host, port = address
    check_loopback_host(host)
    if type(port) is not int or not 0 < port <= 0xFFFF:
        raise ValueError(f"port must be 1..65535, got {port!r}")
    return (host, port)


def parse_target(target: str, *, scheme: str = "udp") -> Address:
    """Parse ``udp://HOST:PORT`` (or ``HOST:PORT``) and check it is loopback."""
    rest = target.removeprefix(f"{scheme}://")
    host, sep, port_text = rest.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ValueError(f"expected HOST:PORT or {scheme}://HOST:PORT, got {target!r}")
    return check_loopback_address((host, int(port_text)))
