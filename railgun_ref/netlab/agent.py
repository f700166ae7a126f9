"""Roles a lab runs inside its namespaces that have no `railgun-ref` command of their own.

``python -m railgun_ref.netlab.agent ROLE ...``:

* ``stun --primary IP --alternate IP [--port N]``: the RFC 5780 server on two
  addresses and two ports (N and N+1), printing ``ready`` once bound;
* ``detect --server IP:PORT --local IP``: classify the NAT in front of this
  host and print the result as one JSON line;
* ``dns --host IP --record NAME=IP ...``: the project's DNS server, printing
  ``ready`` once bound.

Each binds lab addresses (``allow_public``); the lab's harness variable keeps
them inside the lab's networks.
"""

import argparse
import json
import sys
from collections.abc import Sequence

import anyio

from railgun_ref.drivers.addresses import parse_target
from railgun_ref.drivers.dns_server import DnsServer
from railgun_ref.drivers.stun_server import StunServer, detect_nat_type

STUN_PORT = 3478


async def _stun(primary: str, alternate: str, port: int) -> None:
    server = StunServer(
        primary_host=primary,
        alternate_host=alternate,
        primary_port=port,
        alternate_port=port + 1,
        allow_public=True,
    )
    async with anyio.create_task_group() as tg:
        await tg.start(server.run)
        print("ready", flush=True)
        await anyio.sleep_forever()


async def _detect(server: tuple[str, int], local: str) -> None:
    result = await detect_nat_type(server, local_host=local, allow_public=True)
    fields = {
        "nat_type": result.nat_type.value,
        "mapping": result.mapping.value if result.mapping else None,
        "filtering": result.filtering.value if result.filtering else None,
        "behind_nat": result.behind_nat,
        "local": list(result.local_address),
        "mapped": list(result.mapped_address) if result.mapped_address else None,
    }
    print(json.dumps(fields), flush=True)


async def _dns(host: str, records: Sequence[str]) -> None:
    server = DnsServer(host=host, port=53, allow_public=True)
    for record in records:
        name, _, ip = record.partition("=")
        server.register(name, ip)
    async with anyio.create_task_group() as tg:
        await tg.start(server.run)
        print("ready", flush=True)
        await anyio.sleep_forever()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="railgun_ref.netlab.agent")
    sub = parser.add_subparsers(dest="role", required=True)
    stun = sub.add_parser("stun")
    stun.add_argument("--primary", required=True)
    stun.add_argument("--alternate", required=True)
    stun.add_argument("--port", type=int, default=STUN_PORT)
    detect = sub.add_parser("detect")
    detect.add_argument("--server", required=True)
    detect.add_argument("--local", required=True)
    dns = sub.add_parser("dns")
    dns.add_argument("--host", required=True)
    dns.add_argument("--record", action="append", default=[])
    args = parser.parse_args(argv)
    match args.role:
        case "stun":
            anyio.run(_stun, args.primary, args.alternate, args.port)
        case "detect":
            anyio.run(_detect, parse_target(args.server), args.local)
        case _:
            anyio.run(_dns, args.host, args.record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
