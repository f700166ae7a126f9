"""Roles a lab runs inside its namespaces that have no `railgun-ref` command of their own.

``python -m railgun_ref.netlab.agent ROLE ...``:

* ``stun --primary IP --alternate IP [--port N]``: the RFC 5780 server on two
  addresses and two ports (N and N+1), printing ``ready`` once bound;
* ``detect --server IP:PORT --local IP``: classify the NAT in front of this
  host and print the result as one JSON line;
* ``dns --host IP --record NAME=IP ...``: the project's DNS server, printing
  ``ready`` once bound;
* ``relay --host IP --port N``: the traversal relay (`RelayHost`), printing
  ``ready``;
* ``peer --local IP --relay IP:PORT --nat NAT``: a traversal peer driven by
  lines on stdin: ``new`` (a fresh socket and identity, registered with the
  relay: prints ``{"event": "registered", ...}``) and ``connect HEX_ID``;
  every attempt it takes part in prints ``{"event": "finished", ...}``.

Each binds lab addresses (``allow_public``); the lab's harness variable keeps
them inside the lab's networks.
"""

import argparse
import json
import os
import sys
from collections.abc import Sequence

import anyio
import anyio.abc

from railgun_ref.capacity.nat import NatType
from railgun_ref.core.ids import node_id_from_hex
from railgun_ref.drivers.addresses import parse_target
from railgun_ref.drivers.dns_server import DnsServer
from railgun_ref.drivers.stun_server import StunServer, detect_nat_type
from railgun_ref.drivers.traversal import RelayHost, TraversalHost
from railgun_ref.identity.keys import Identity
from railgun_ref.traversal.punch import TraversalFinished

STUN_PORT = 3478
RELAY_PORT = 4000


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


async def _relay(host: str, port: int) -> None:
    relay = RelayHost(Identity.generate(os.urandom), host=host, port=port, allow_public=True)
    async with anyio.create_task_group() as tg:
        await tg.start(relay.run)
        print("ready", flush=True)
        await anyio.sleep_forever()


def _emit(fields: dict[str, object]) -> None:
    print(json.dumps(fields), flush=True)


def _finished_fields(done: TraversalFinished) -> dict[str, object]:
    return {
        "event": "finished",
        "initiator": done.initiator,
        "outcome": done.outcome.value,
        "reason": done.reason.value if done.reason else None,
        "direct": list(done.direct) if done.direct else None,
        "attempts": done.attempts,
        "elapsed": done.finished - done.started,
    }


async def _serve_peer(
    host: TraversalHost,
    scope: anyio.CancelScope,
    *,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    with scope:
        async with anyio.create_task_group() as tg:
            await tg.start(host.run)
            task_status.started()
            count = 0
            while True:
                count += 1
                _emit(_finished_fields(await host.next_finished(count)))


async def _peer(local: str, relay: tuple[str, int], nat: NatType) -> None:
    current: TraversalHost | None = None
    scope = anyio.CancelScope()
    async with anyio.create_task_group() as tg:
        async for line in anyio.wrap_file(sys.stdin):
            command, _, argument = line.strip().partition(" ")
            if command == "new":
                scope.cancel()
                scope = anyio.CancelScope()
                identity = Identity.generate(os.urandom)
                current = TraversalHost(
                    identity, relay=relay, host=local, nat=nat, allow_public=True
                )
                await tg.start(_serve_peer, current, scope)
                observed = await current.register()
                _emit(
                    {
                        "event": "registered",
                        "id": identity.node_id.hex(),
                        "observed": list(observed),
                    }
                )
            elif command == "connect" and current is not None:
                current.start_connect(node_id_from_hex(argument))
        tg.cancel_scope.cancel()


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
    relay = sub.add_parser("relay")
    relay.add_argument("--host", required=True)
    relay.add_argument("--port", type=int, default=RELAY_PORT)
    peer = sub.add_parser("peer")
    peer.add_argument("--local", required=True)
    peer.add_argument("--relay", required=True)
    peer.add_argument("--nat", required=True, choices=[n.value for n in NatType])
    args = parser.parse_args(argv)
    match args.role:
        case "stun":
            anyio.run(_stun, args.primary, args.alternate, args.port)
        case "detect":
            anyio.run(_detect, parse_target(args.server), args.local)
        case "relay":
            anyio.run(_relay, args.host, args.port)
        case "peer":
            anyio.run(_peer, args.local, parse_target(args.relay), NatType(args.nat))
        case _:
            anyio.run(_dns, args.host, args.record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
