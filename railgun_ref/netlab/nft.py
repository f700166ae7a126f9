"""nftables rulesets of the lab's home routers and censor (pure text, no IO).

Home routers (RFC 4787 behaviours; ``wan`` faces the internet, ``lan`` the host):

* every kind masquerades UDP and TCP leaving ``wan``. Plain ``masquerade``
  keeps the host's source port when it is free (one host per router, so it
  always is): the mapping is endpoint-independent (EIM);
* ``symmetric``: ``masquerade fully-random`` draws a new port for every new
  5-tuple, i.e. address-and-port-dependent mapping;
* filtering: conntrack alone lets in only replies from the exact remote
  address and port (port-restricted, and symmetric). ``restricted`` adds a
  dynamic set of (remote address, mapped port) pairs the host has sent to and
  forwards new inbound datagrams matching one; ``full-cone`` forwards any
  datagram to a port the host has a live mapping on;
* unsolicited datagrams the filter refuses are dropped at the router.

The censor sits in the internet namespace's forward path: it drops (or
rejects: ICMP admin-prohibited, TCP reset) traffic between chosen sources and
a destination, partitions groups of addresses, and redirects DNS queries to a
forging resolver.
"""

from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import Final

from railgun_ref.capacity.nat import NatType

NAT_TABLE: Final = "rgl_nat"
CENSOR_TABLE: Final = "rgl_censor"
FIREWALL6_TABLE: Final = "rgl_fw6"
#: how long an idle mapping keeps its filtering entry (UDP conntrack default is 30/120 s)
MAPPING_TIMEOUT_S: Final = 120


class BlockMode(StrEnum):
    """How the censor blocks an address."""

    DROP = "drop"  #: silently: the sender waits out its timeouts
    REJECT = "reject"  #: ICMP admin-prohibited / TCP reset: the sender learns at once


def router_ruleset(nat: NatType, *, host: str) -> str:
    """The ruleset of a home router with `nat` in front of `host` (``nft -f`` input)."""
    if nat is NatType.OPEN:
        raise ValueError("an open host has no router")
    masquerade = "masquerade fully-random" if nat is NatType.SYMMETRIC else "masquerade"
    sets, learn, admit = _filtering(nat, host)
    lines = [
        f"table ip {NAT_TABLE} {{",
        *sets,
        "  chain forward {",
        "    type filter hook forward priority 0; policy accept;",
        *learn,
        "  }",
        "  chain prerouting {",
        "    type nat hook prerouting priority -100; policy accept;",
        *admit,
        "  }",
        "  chain postrouting {",
        "    type nat hook postrouting priority 100; policy accept;",
        f'    oifname "wan" {masquerade}',
        "  }",
        "  chain input {",
        "    type filter hook input priority 0; policy accept;",
        '    iifname "wan" ct state new drop',
        "  }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def firewall6_ruleset() -> str:
    """The IPv6 side of a dual-stack home router (RFC 6092): no translation; replies
    in, unsolicited TCP and UDP from ``wan`` dropped (ICMPv6, e.g. neighbour
    discovery, passes)."""
    drop = '    iifname "wan" ct state new meta l4proto { tcp, udp } drop'
    lines = [
        f"table ip6 {FIREWALL6_TABLE} {{",
        "  chain forward {",
        "    type filter hook forward priority 0; policy accept;",
        drop,
        "  }",
        "  chain input {",
        "    type filter hook input priority 0; policy accept;",
        drop,
        "  }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def _filtering(nat: NatType, host: str) -> tuple[list[str], list[str], list[str]]:
    """(set declarations, forward rules that learn, prerouting rules that admit)."""
    timeout = f"timeout {MAPPING_TIMEOUT_S}s"
    if nat is NatType.FULL_CONE:
        sets = [f"  set mapped {{ type inet_service; flags dynamic,timeout; {timeout}; }}"]
        learn = ['    iifname "lan" meta l4proto udp update @mapped { udp sport }']
        admit = [f'    iifname "wan" udp dport @mapped dnat to {host}']
        return sets, learn, admit
    if nat is NatType.RESTRICTED:
        sets = [
            f"  set peers {{ type ipv4_addr . inet_service; flags dynamic,timeout; {timeout}; }}"
        ]
        learn = ['    iifname "lan" meta l4proto udp update @peers { ip daddr . udp sport }']
        admit = [f'    iifname "wan" ip saddr . udp dport @peers dnat to {host}']
        return sets, learn, admit
    return [], [], []


def censor_ruleset(rules: Sequence[str]) -> str:
    """The censor's table: `rules` filter forwarded and local traffic (DNAT ones redirect)."""
    filters = [f"    {r}" for r in rules if " dnat " not in r]
    lines = [
        f"table inet {CENSOR_TABLE} {{",
        "  chain prerouting {",
        "    type nat hook prerouting priority -100; policy accept;",
        *(f"    {r}" for r in rules if r.startswith("ip saddr") and " dnat " in r),
        "  }",
        "  chain forward {",
        "    type filter hook forward priority -10; policy accept;",
        *filters,
        "  }",
        "  chain input {",  # what the internet namespace serves itself (the resolver)
        "    type filter hook input priority -10; policy accept;",
        *filters,
        "  }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def _addresses(addresses: Iterable[str]) -> str:
    items = sorted(set(addresses))
    if not items:
        raise ValueError("a rule needs at least one address")
    return items[0] if len(items) == 1 else "{ " + ", ".join(items) + " }"


def block_rules(sources: Iterable[str], destination: str, mode: BlockMode) -> list[str]:
    """Rules that block `sources` from reaching `destination` (both directions)."""
    match_ = f"ip saddr {_addresses(sources)} ip daddr {destination}"
    if mode is BlockMode.DROP:
        return [f"{match_} drop"]
    return [
        f"{match_} meta l4proto tcp reject with tcp reset",
        f"{match_} reject with icmpx type admin-prohibited",
    ]


def partition_rules(group_a: Iterable[str], group_b: Iterable[str]) -> list[str]:
    """Rules that drop every packet between the two groups, both ways (IPv4 and IPv6
    addresses alike: each family gets its own pair of rules)."""
    rules = []
    for family, is_v6 in (("ip", False), ("ip6", True)):
        a = [x for x in group_a if (":" in x) is is_v6]
        b = [x for x in group_b if (":" in x) is is_v6]
        if a and b:
            sa, sb = _addresses(a), _addresses(b)
            rules += [
                f"{family} saddr {sa} {family} daddr {sb} drop",
                f"{family} saddr {sb} {family} daddr {sa} drop",
            ]
    if not rules:
        raise ValueError("a partition needs at least one address of one family on both sides")
    return rules


def dns_rules(sources: Iterable[str], resolver: str, *, forger: str | None) -> list[str]:
    """Queries from `sources` to `resolver`: dropped (forger None) or sent to `forger`."""
    match_ = f"ip saddr {_addresses(sources)} ip daddr {resolver} udp dport 53"
    if forger is None:
        return [f"{match_} drop"]
    return [f"{match_} dnat ip to {forger}"]
