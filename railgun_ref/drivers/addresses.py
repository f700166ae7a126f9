"""Address policy of every driver: this project only ever talks to 127.0.0.0/8 or ::1."""

import ipaddress


def check_loopback(host: str) -> None:
    """Raise ValueError unless `host` is a loopback IP literal (or 'localhost')."""
    if host == "localhost":
        return
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{host!r} is not an IP literal; use 127.0.0.0/8 or ::1") from None
    if not address.is_loopback:
        raise ValueError(f"{host} is not a loopback address; only 127.0.0.0/8 and ::1 are used")


def parse_target(target: str, *, scheme: str = "udp") -> tuple[str, int]:
    """Parse ``udp://HOST:PORT`` (or ``HOST:PORT``) and check the host is loopback."""
    prefix = f"{scheme}://"
    rest = target.removeprefix(prefix)
    host, sep, port_text = rest.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"expected {prefix}HOST:PORT, got {target!r}")
    check_loopback(host)
    return host, int(port_text)
