"""One demo client in a process of its own, driven over its stdin and stdout (JSON lines).

``railgun-ref demo`` starts one of these per client (``python -m
railgun_ref.apps.demo_worker --index 3 ...``): each client then has its own
event loop and its own share of the CPU, so one busy client, or a host busy
with other work, no longer delays every other client's health checks and P2P
deliveries (issue 11: twelve clients on one loop saw 1.2 s of lag and failed).

Protocol, one JSON object per line:

* stdout (worker -> coordinator): ``{"kind": "ready", "address", "node_id",
  "public_key", "pid", "nat"}`` once the client runs; then every client event as
  ``{"kind", "at" (Unix s), ...}`` (the kinds of `event_record`); ``status``
  (state, central session, members reachable, outbox size) when it changes;
  ``lag`` once a second (the worst oversleep of this process's loop, ms);
  ``bootstrap`` once, when the client races the bootstrap methods
  (``--bootstrap-root``: which method won, why each other did not,
  `apps.demo_bootstrap.race_record`); and one reply per command, with the
  command's ``id`` as ``reply_to``.
* stdin (coordinator -> worker): ``{"id", "cmd", ...}`` with ``cmd`` one of
  ``create_room`` (name), ``invite`` (public_key hex), ``accept``
  (invitation hex, or ``line``: the pasteable line of apps/chat.py; name),
  ``send`` (text; replies with the message id or an error) and ``outbox``
  (the entries still unsettled, with the members each still misses, and the
  transport's counters). End of stdin stops the client.

Anything the worker cannot do ends it with a traceback on stderr and a
non-zero exit status, which the coordinator reports as the client's crash.
"""

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, Final, assert_never

import anyio
import anyio.abc

from railgun_ref.apps.chat import ChatError, decode_invitation
from railgun_ref.apps.demo_bootstrap import race_record
from railgun_ref.bootstrap import manifest as m
from railgun_ref.bootstrap.race import Method
from railgun_ref.capacity.nat import NatType
from railgun_ref.client import (
    CallSignalRefused,
    Client,
    Failure,
    IncomingCall,
    InvitationExpired,
    MembersChange,
    MessageAccepted,
    MessageAcked,
    MessageReceived,
    NoMembersError,
    PathChange,
    ReachChange,
    RoomMembershipChanged,
    StateChange,
    TransportEvent,
    connect,
    fast_profile,
)
from railgun_ref.core.errors import LocalProtocolError, RemoteProtocolError
from railgun_ref.drivers.bootstrap import BootstrapSetup, DnsSrvSource, IpfsSource
from railgun_ref.drivers.hardcoded import hardcoded_list
from railgun_ref.drivers.resolver import StubResolver

#: Seconds between looks at the client's status (sent only when it changed).
STATUS_INTERVAL: Final = 0.1
#: The lag probe sleeps this long and measures how late it wakes up, ten times a report.
LAG_PROBE: Final = 0.1

Emit = Callable[[dict[str, Any]], None]


def _emit(record: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(record, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def event_record(event: TransportEvent) -> dict[str, Any]:
    """A client event as a JSON-ready record (``kind``, ``at`` and the event's data)."""
    match event:
        case MessageReceived():
            return {
                "kind": "received",
                "at": event.at,
                "message_id": event.message_id.hex(),
                "sender": event.sender.hex(),
                "path": event.path,
                "latency_ms": round(event.at * 1000 - event.sent_ms, 1),
            }
        case MessageAccepted():
            mid = event.message_id.hex()
            return {
                "kind": "accepted",
                "at": event.at,
                "message_id": mid,
                "recipients": len(event.members),
                "to": sorted(member.hex() for member in event.members),
            }
        case MessageAcked():
            member = event.member.hex() if event.member is not None else None
            mid = event.message_id.hex()
            return {
                "kind": "acked",
                "at": event.at,
                "message_id": mid,
                "path": event.path,
                "member": member,
            }
        case StateChange():
            return {
                "kind": "state",
                "at": event.at,
                "old": event.old.value,
                "new": event.new.value,
                "reason": event.reason,
            }
        case PathChange():
            return {"kind": "path", "at": event.at, "central": event.central, "p2p": event.p2p}
        case ReachChange():
            return {
                "kind": "reach",
                "at": event.at,
                "reach": event.reach.value,
                "reachable": event.reachable,
                "members": event.members,
            }
        case MembersChange():
            return {"kind": "members", "at": event.at, "members": len(event.members)}
        case RoomMembershipChanged():
            members = len(event.members)
            return {"kind": "membership", "at": event.at, "members": members, "state": event.state}
        case InvitationExpired():
            return {"kind": "invitation-expired", "at": event.at}
        case Failure():
            label = event.label.value if event.label is not None else None
            return {
                "kind": "failure",
                "at": event.at,
                "failure": event.kind,
                "label": label,
                "detail": event.detail,
            }
        case IncomingCall():
            return {"kind": "incoming-call", "at": event.at, "caller": event.caller.hex()}
        case CallSignalRefused():
            return {"kind": "call-refused", "at": event.at, "reason": event.reason.value}
        case _:
            assert_never(event)


class Worker:
    """The client of one process and the commands it obeys (module docstring)."""

    def __init__(self, client: Client, room: str, emit: Emit = _emit) -> None:
        self.client = client
        self.room = room
        self.emit = emit
        self._status: dict[str, Any] = {}

    def status(self) -> dict[str, Any]:
        transport = self.client.transport
        reachable = len(self.client.reachable_members(self.room)) if self._in_room() else 0
        return {
            "kind": "status",
            "state": self.client.state,
            "central_connected": transport.central_connected,
            "reachable": reachable,
            "outbox": transport.outbox_size(),
        }

    def _in_room(self) -> bool:
        try:
            self.client.room_id(self.room)
        except LocalProtocolError:
            return False
        return True

    async def command(self, request: dict[str, Any]) -> dict[str, Any]:
        """Do one command; the reply (without ``reply_to``)."""
        cmd = request["cmd"]
        if cmd == "create_room":
            return {"room_id": self.client.create_room(request["name"]).hex()}
        if cmd == "invite":
            key = bytes.fromhex(request["public_key"])
            return {"invitation": self.client.invite(self.room, key).hex()}
        if cmd == "accept":
            if "line" in request:  # the pasteable line (apps/chat.py)
                invitation = decode_invitation(request["line"])
            else:
                invitation = bytes.fromhex(request["invitation"])
            return {"room_id": self.client.accept(invitation, name=request["name"]).hex()}
        if cmd == "send":
            try:
                message_id = await self.client.send(self.room, request["text"])
            except NoMembersError:
                return {"error": "no_members"}
            return {"message_id": message_id.hex()}
        if cmd == "outbox":
            return self.outbox()
        raise ValueError(f"unknown command {cmd!r}")

    def outbox(self) -> dict[str, Any]:
        """Each unsettled entry with the members that still miss it, and the counters."""
        transport = self.client.transport
        entries = [
            {"message_id": e.message_id.hex(), "missing": sorted(m.hex() for m in e.missing_p2p())}
            for e in transport.service.outbox.unsettled(now=time.time())
        ]
        counters = dict(sorted(transport.counters.items()))
        p2p = transport.p2p
        p2p_counters = dict(sorted(p2p.counters.items())) if p2p is not None else {}
        addresses: dict[str, str] = {}
        if p2p is not None and self._in_room():
            for member in p2p.members(self.client.room_id(self.room)):
                where = p2p.member_address(member)
                addresses[member.hex()] = "" if where is None else f"{where[0]}:{where[1]}"
        return {
            "entries": entries,
            "counters": counters,
            "p2p_counters": p2p_counters,
            "node_counters": dict(sorted(transport.host.node.counters.items())),
            "host_counters": dict(sorted(transport.host.counters.items())),
            "p2p_addresses": addresses,  #: where the P2P path sends to each member
            "p2p_address": None if p2p is None else f"{p2p.address[0]}:{p2p.address[1]}",
            "p2p_reach": self._reach(),
            "traversal": self._traversal(),
            "state": self.client.state,
        }

    def _reach(self) -> dict[str, str]:
        """Each member's status on the P2P path (HT-6.4), by node id (hex)."""
        p2p = self.client.transport.p2p
        if p2p is None or not self._in_room():
            return {}
        members = p2p.members(self.client.room_id(self.room))
        return {member.hex(): p2p.status(member).value for member in sorted(members)}

    def _traversal(self) -> dict[str, Any]:
        """NAT-6.3: every traversal attempt this client took part in, and its counters."""
        wiring = self.client.transport.traversal
        if wiring is None:
            return {}
        attempts = [
            {
                "peer": f.peer.hex(),
                "initiator": f.initiator,
                "outcome": f.outcome.value,
                "reason": None if f.reason is None else f.reason.value,
                "direct": None if f.direct is None else f"{f.direct[0]}:{f.direct[1]}",
                "attempts": f.attempts,
            }
            for f in wiring.finished
        ]
        relay = wiring.relay_core
        return {
            "attempts": attempts,
            "counters": dict(sorted(wiring.counters.items())),
            "core_counters": {}
            if wiring.core is None
            else dict(sorted(wiring.core.counters.items())),
            "relay_counters": {} if relay is None else dict(sorted(relay.counters.items())),
        }

    async def events(self) -> None:
        async for event in self.client:
            self.emit(event_record(event))

    async def watch_status(self) -> None:
        while True:
            status = self.status()
            if status != self._status:
                self._status = status
                self.emit({**status, "at": time.time()})
            await anyio.sleep(STATUS_INTERVAL)

    async def watch_lag(self) -> None:
        """Once a second, the worst oversleep of this loop (ms): its scheduling delay."""
        while True:
            worst = 0.0
            for _ in range(10):
                before = time.monotonic()
                await anyio.sleep(LAG_PROBE)
                worst = max(worst, time.monotonic() - before - LAG_PROBE)
            self.emit({"kind": "lag", "at": time.time(), "lag_ms": round(worst * 1000, 1)})

    async def watch_bootstrap(self, configured: Collection[Method]) -> None:
        """Once the bootstrap race ran: a ``bootstrap`` record (`race_record`)."""
        while (result := self.client.transport.bootstrap_race) is None:
            await anyio.sleep(STATUS_INTERVAL)
        self.emit({"kind": "bootstrap", "at": time.time(), **race_record(result, configured)})

    async def serve_commands(self) -> None:
        """Obey stdin until it ends (the coordinator closed it: stop)."""
        stdin = anyio.wrap_file(sys.stdin)
        async for line in stdin:
            if not line.strip():
                continue
            request = json.loads(line)
            try:
                reply = await self.command(request)
            except (LocalProtocolError, RemoteProtocolError, ChatError) as exc:
                reply = {"error": f"{type(exc).__name__}: {exc}"}
            self.emit({"kind": "reply", "reply_to": request["id"], **reply})


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m railgun_ref.apps.demo_worker")
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--central-url", required=True)
    parser.add_argument("--origin", required=True)
    parser.add_argument("--dns", required=True, help="HOST:PORT of the resolver")
    parser.add_argument("--bootstrap", default="", help="HOST:PORT of a node to join by")
    parser.add_argument("--room", required=True)
    parser.add_argument("--host", default="127.0.0.1", help="the address the node binds")
    parser.add_argument(
        "--allow-public-bind", action="store_true", help="--host may be off loopback"
    )
    parser.add_argument(
        "--nat",
        default=NatType.UNKNOWN.value,
        choices=[t.value for t in NatType],
        help="this client's NAT type, as RFC 5780 detection reports it (NAT-6.3 plans)",
    )
    parser.add_argument(
        "--stun", default="", help="HOST:PORT of a STUN server to detect the NAT type with"
    )
    boot = parser.add_argument_group("bootstrap race (a client that never saw a peer)")
    boot.add_argument("--bootstrap-root", default="", help="the deployment's root document")
    boot.add_argument("--ipfs-cid", default="", help="CID of the signed manifest")
    boot.add_argument("--ipfs-gateway", default="", help="HOST:PORT of the IPFS gateway")
    boot.add_argument("--srv-name", default="", help="SRV owner name, asked of --dns")
    return parser.parse_args(argv)


def bootstrap_setup(args: argparse.Namespace) -> BootstrapSetup | None:
    """BOOT-4.1 for the demo's fresh client: the shipped list, DNS SRV, the IPFS manifest
    (the peer cache is added by `connect`); None without ``--bootstrap-root``."""
    if not args.bootstrap_root:
        return None
    root = m.root_from_document(Path(args.bootstrap_root).read_bytes())
    ipfs = None
    if args.ipfs_cid:
        ipfs = IpfsSource(cid=args.ipfs_cid, gateway=_address(args.ipfs_gateway), root=root)
    dns_srv = None
    if args.srv_name:
        dns_srv = DnsSrvSource(name=args.srv_name, nameserver=_address(args.dns))
    return BootstrapSetup(hardcoded=hardcoded_list(), dns_srv=dns_srv, ipfs=ipfs)


def configured_methods(setup: BootstrapSetup) -> set[Method]:
    """The methods `setup` races (CACHED always: `connect` gives every client a cache)."""
    methods = {Method.CACHED}
    for method, part in (
        (Method.HARDCODED, setup.hardcoded),
        (Method.TOR, setup.tor),
        (Method.I2P, setup.i2p),
        (Method.IPFS, setup.ipfs),
        (Method.DNS_SRV, setup.dns_srv),
    ):
        if part is not None:
            methods.add(method)
    return methods


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


async def _run(args: argparse.Namespace) -> None:
    profile = fast_profile()
    # HT-2.5: the check's own deadline decides when a slow lookup is a dns_timeout; the
    # resolver waits as long as a check may (a late answer is a sample), not 0.5 s, which a
    # late event loop turned into dns_timeout on every check after the DNS block.
    resolve = StubResolver(_address(args.dns), timeout=profile.transport.check_timeout_ceiling)
    setup = bootstrap_setup(args)
    async with (
        connect(
            data_dir=Path(args.data_dir),
            central_url=args.central_url,
            bootstrap=[_address(args.bootstrap)] if args.bootstrap else [],
            bootstrap_setup=setup,
            profile=profile,
            resolve=resolve,
            origin=args.origin,
            host=args.host,
            allow_public=args.allow_public_bind,
            nat=args.nat,
            stun=_address(args.stun) if args.stun else None,
        ) as client,
        anyio.create_task_group() as tg,
    ):
        worker = Worker(client, args.room)
        host, port = client.address
        worker.emit(
            {
                "kind": "ready",
                "at": time.time(),
                "address": f"{host}:{port}",
                "node_id": client.node_id.hex(),
                "public_key": client.public_key.hex(),
                "pid": os.getpid(),
                "nat": client.nat.value,
            }
        )
        for task in (worker.events, worker.watch_status, worker.watch_lag):
            tg.start_soon(task)
        if setup is not None:
            tg.start_soon(worker.watch_bootstrap, configured_methods(setup))
        await worker.serve_commands()
        tg.cancel_scope.cancel()


def main(argv: list[str] | None = None) -> None:
    anyio.run(_run, _parse(argv))


if __name__ == "__main__":
    main()
