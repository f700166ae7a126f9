"""Address policy of every driver: what the product binds and where it sends.

The product binds loopback unless told otherwise: any other interface (or the
unspecified address) needs an explicit ``allow_public=True`` (the CLI's
``--allow-public-bind``). It sends to IPv4 and IPv6 unicast literals only; where
the addresses come from (a bootstrap list, a PONG's observed address, a DHT
contact) is the caller's business.

A test harness narrows this: when the environment variable
``RAILGUN_REF_ALLOWED_NETWORKS`` holds comma-separated networks, every bound
address and every destination must lie in one of them (the unspecified address
may still be bound). The test suite sets it to loopback; the network lab adds
the ranges of the namespaces it built. Subprocesses inherit it.
"""

import functools
import ipaddress
import os
import socket
from typing import Final, Literal

from railgun_ref.core.ids import Address

LOOPBACK_NETWORK: Final = ipaddress.IPv4Network("127.0.0.0/8")
LOOPBACK_NETWORKS: Final = "127.0.0.0/8,::1/128"
#: the harness's restriction (unset in production: no restriction)
ALLOWED_NETWORKS_ENV: Final = "RAILGUN_REF_ALLOWED_NETWORKS"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_ip(host: str) -> IPAddress:
    """`host` as an IP address; ValueError if it is not an IPv4 or IPv6 literal."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{host!r} is not an IP address literal") from None


Family = Literal[socket.AddressFamily.AF_INET, socket.AddressFamily.AF_INET6]


def family_of(host: str) -> Family:
    """AF_INET or AF_INET6 for an IP literal (ValueError otherwise)."""
    return socket.AF_INET6 if parse_ip(host).version == 6 else socket.AF_INET


def harness_networks() -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] | None:
    """The networks the harness allows, or None when no harness restricts anything."""
    text = os.environ.get(ALLOWED_NETWORKS_ENV, "").strip()
    if not text:
        return None
    return tuple(ipaddress.ip_network(part.strip()) for part in text.split(",") if part.strip())


def _check_harness(ip: IPAddress) -> None:
    networks = harness_networks()
    if networks is not None and not any(ip in network for network in networks):
        raise ValueError(
            f"{ip} is outside the networks this harness allows ({ALLOWED_NETWORKS_ENV})"
        )


def check_bind_host(host: str, *, allow_public: bool = False) -> str:
    """Return `host` if this process may bind it, else raise ValueError.

    Loopback (127.0.0.0/8, ::1) always; any other address only with `allow_public`.
    """
    ip = parse_ip(host)
    if not ip.is_loopback and not allow_public:
        raise ValueError(
            f"{host} is not a loopback address: binding another interface needs "
            "--allow-public-bind (allow_public=True)"
        )
    if not ip.is_unspecified:
        _check_harness(ip)
    return host


def check_destination_host(host: str) -> str:
    """Return `host` if it is a unicast IP literal this process may send to."""
    problem = _destination_problem(host, os.environ.get(ALLOWED_NETWORKS_ENV, ""))
    if problem is not None:
        raise ValueError(problem)
    return host


@functools.lru_cache(maxsize=4096)
def _destination_problem(host: str, allowed: str) -> str | None:
    """Why `host` is no destination under the harness's `allowed` networks, or None.
    Every datagram sent is checked, so the verdict is remembered per (host, allowed)."""
    try:
        ip = parse_ip(host)
        if ip.is_unspecified or ip.is_multicast:
            raise ValueError(f"{host} is not a unicast address")
        if isinstance(ip, ipaddress.IPv4Address) and ip == ipaddress.IPv4Address("255.255.255.255"):
            raise ValueError(f"{host} is the broadcast address")
        _check_harness(ip)
    except ValueError as exc:
        return str(exc)
    return None


def check_destination(address: Address) -> Address:
    """Return `address` if it is (unicast literal, 1..65535) this process may send to."""
    host, port = address
    check_destination_host(host)
    if type(port) is not int or not 0 < port <= 0xFFFF:
        raise ValueError(f"port must be 1..65535, got {port!r}")
    return (host, port)


def is_sendable(address: Address) -> bool:
    try:
        check_destination(address)
    except ValueError:
        return False
    return True


def parse_target(target: str, *, scheme: str = "udp") -> Address:
    """Parse ``udp://HOST:PORT``, ``HOST:PORT`` or ``[V6]:PORT`` and check the destination."""
    rest = target.removeprefix(f"{scheme}://")
    host, sep, port_text = rest.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port_text.isdigit():
        raise ValueError(f"expected HOST:PORT or {scheme}://HOST:PORT, got {target!r}")
    return check_destination((host, int(port_text)))


def url_host(host: str) -> str:
    """`host` as it goes in a URL's authority (IPv6 literals in brackets)."""
    return f"[{host}]" if ":" in host else host
