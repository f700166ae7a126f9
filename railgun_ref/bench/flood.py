"""`railgun-ref bench flood`: a PING flood at one real node, with its known contacts talking.

On 127.0.0.1: a victim `NodeHost` in a process of its own (the deployed
configuration: per-peer limits on, ABUSE-1), as a deployed node has its own
process and core; in the benchmark's process, `contacts` other hosts that PING
it first so they are in its routing table (its *known contacts*), and one
flooding source: a plain UDP socket that sends `flood` valid signed PINGs at
`rate` per second from one address, each from one of a few keys, while every
contact keeps PINGing the victim. The flooder counts PONGs until none has
come for `QUIET` seconds (at most `LINGER_MAX` after its last PING). It
reports the share of the contacts' PINGs answered
(`known_contacts_answered_under_flood`, the goal of ABUSE-1.3), the share of
the flood answered (`flood_answered`: the flooder is rate-limited by
design, so this is about the limit, not the driver), the datagrams the victim
dropped (`dropped_datagrams`: its limits, its send backlog, and the kernel's
drops at its socket), and the same flood against a victim with the limits off
(`flood_answered_unlimited`: what the driver itself can take).

The named peer is the victim itself without limits, in the same run.
"""

import json
import random
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import anyio

from railgun_ref.core.ids import Address
from railgun_ref.drivers.udp import DEPLOYED_CONFIG, NodeHost
from railgun_ref.events import PongReceived
from railgun_ref.identity.keys import Identity
from railgun_ref.node import NodeConfig, NodeCounter
from railgun_ref.wire.envelope import decode_envelope, encode_envelope
from railgun_ref.wire.messages import MessageType

#: The flooder stops counting PONGs when none came for this long, seconds ...
QUIET: Final = 2.0
#: ... or this long after its last PING.
LINGER_MAX: Final = 30.0


def signed_pings(count: int, *, keys: int, seed: int, now: float) -> list[bytes]:
    """`count` valid PING datagrams from `keys` identities, distinct request ids."""
    rng = random.Random(seed)
    identities = [Identity.from_seed(rng.randbytes(32)) for _ in range(keys)]
    return [
        encode_envelope(
            identities[i % keys],
            type=MessageType.PING,
            request_id=rng.getrandbits(64),
            timestamp_ms=round(now * 1000),
            body={0: b""},
        )
        for i in range(count)
    ]


@dataclass(slots=True)
class FloodOutcome:
    sent: int
    answered: int
    seconds: float


async def flood(
    target: Address, datagrams: list[bytes], *, rate: float, linger: float
) -> FloodOutcome:
    """Send `datagrams` to `target` at `rate` per second from one socket; count PONGs back."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
    sock.setblocking(False)
    sock.bind(("127.0.0.1", 0))
    answered = 0

    def drain() -> None:
        nonlocal answered
        while True:
            try:
                data = sock.recv(65535)
            except BlockingIOError:
                return
            try:
                answered += decode_envelope(data).type == MessageType.PONG
            except Exception:
                continue

    start = time.monotonic()
    with sock:
        for i, data in enumerate(datagrams):
            due = start + i / rate
            if (wait := due - time.monotonic()) > 0:
                await anyio.sleep(wait)
            try:
                sock.sendto(data, target)
            except BlockingIOError:
                await anyio.wait_writable(sock)
                sock.sendto(data, target)
            drain()
        seconds = time.monotonic() - start
        end = time.monotonic() + linger
        while time.monotonic() < end:
            with anyio.move_on_after(min(QUIET, end - time.monotonic())) as quiet:
                await anyio.wait_readable(sock)
            if quiet.cancelled_caught:
                break  # nothing for QUIET seconds: the victim has answered what it will
            drain()
    return FloodOutcome(sent=len(datagrams), answered=answered, seconds=seconds)


async def _contact_pings(contact: NodeHost, victim: Address, until: float) -> tuple[int, int]:
    sent = answered = 0
    while time.monotonic() < until:
        sent += 1
        answered += isinstance(await contact.ping(victim), PongReceived)
        await anyio.sleep(0.05)
    return sent, answered


def _dropped(victim: NodeHost) -> dict[str, Any]:
    limited = victim.node.counters.total(NodeCounter.LIMITED)
    return {
        "by_limits": limited,
        "by_kernel": victim.kernel_drops(),
        "send_backlog_full": victim.driver_counters.snapshot().get("driver.udp_queue_full", 0),
    }


async def _victim(limits: bool) -> None:
    """The victim's process: print its address, serve until stdin ends, print its drops."""
    config = DEPLOYED_CONFIG if limits else NodeConfig(dht=DEPLOYED_CONFIG.dht)
    victim = NodeHost(Identity.from_seed(random.Random(7).randbytes(32)), config=config)
    async with anyio.create_task_group() as tg:
        await tg.start(victim.run)
        host, port = victim.address
        print(json.dumps({"address": [host, port]}), flush=True)
        await anyio.to_thread.run_sync(sys.stdin.read)
        report = {"dropped": _dropped(victim), "receive_buffer": victim.udp_receive_buffer}
        print(json.dumps(report), flush=True)
        tg.cancel_scope.cancel()


def victim_main(argv: list[str]) -> int:
    """``python -m railgun_ref.bench.flood --victim limited|unlimited``."""
    if argv[:1] != ["--victim"] or argv[1:] not in (["limited"], ["unlimited"]):
        print("usage: python -m railgun_ref.bench.flood --victim limited|unlimited")
        return 2
    anyio.run(_victim, argv[1] == "limited")
    return 0


def _start_victim(limits: bool) -> tuple["subprocess.Popen[str]", Address]:
    kind = "limited" if limits else "unlimited"
    process = subprocess.Popen(
        [sys.executable, "-m", "railgun_ref.bench.flood", "--victim", kind],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.kill()
        raise RuntimeError("the flood victim's process did not start")
    host, port = json.loads(line)["address"]
    return process, (host, port)


def _stop_victim(process: "subprocess.Popen[str]") -> dict[str, Any]:
    out, _ = process.communicate(input="", timeout=30)
    report: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return report


async def run_flood(
    *, flood_size: int, rate: float, contacts: int, keys: int, limits: bool
) -> dict[str, Any]:
    """One victim (its own process) under one flood; the contacts PING it throughout."""
    rng = random.Random(8)
    friends = [NodeHost(Identity.from_seed(rng.randbytes(32))) for _ in range(contacts)]
    process, victim = _start_victim(limits)
    results: list[tuple[int, int]] = []
    try:
        async with anyio.create_task_group() as tg:
            for host in friends:
                await tg.start(host.run)
            for friend in friends:  # known contacts: in the victim's table at their address
                await friend.ping(victim)
            datagrams = signed_pings(flood_size, keys=keys, seed=11, now=time.time())
            until = time.monotonic() + flood_size / rate + 1.0

            async def contact(friend: NodeHost) -> None:
                results.append(await _contact_pings(friend, victim, until))

            for friend in friends:
                tg.start_soon(contact, friend)
            outcome = await flood(victim, datagrams, rate=rate, linger=LINGER_MAX)
            while len(results) < len(friends):
                await anyio.sleep(0.05)
            tg.cancel_scope.cancel()
    finally:
        report = _stop_victim(process)
    return {
        "flood_sent": outcome.sent,
        "flood_seconds": round(outcome.seconds, 3),
        "flood_rate": round(outcome.sent / outcome.seconds, 1),
        "flood_answered": outcome.answered / outcome.sent,
        "contact_pings": sum(s for s, _ in results),
        "known_contacts_answered_under_flood": sum(a for _, a in results)
        / max(1, sum(s for s, _ in results)),
        "dropped_datagrams": report["dropped"],
        "udp_receive_buffer": report["receive_buffer"],
    }


async def bench_flood(
    *, flood_size: int = 10_000, rate: float = 3500.0, contacts: int = 20, keys: int = 4
) -> dict[str, Any]:
    """The flood against the deployed configuration and against the same node without limits."""
    limited = await run_flood(
        flood_size=flood_size, rate=rate, contacts=contacts, keys=keys, limits=True
    )
    unlimited = await run_flood(
        flood_size=flood_size, rate=rate, contacts=contacts, keys=keys, limits=False
    )
    return {
        "benchmark": "flood",
        "network": "127.0.0.1 only; the victim in a process of its own",
        "flood_size": flood_size,
        "flood_rate_asked": rate,
        "known_contacts": contacts,
        "flooder_keys": keys,
        "known_contacts_answered_under_flood": limited["known_contacts_answered_under_flood"],
        "flood_answered": limited["flood_answered"],
        "dropped_datagrams": limited["dropped_datagrams"],
        "flood_answered_unlimited": unlimited["flood_answered"],
        "known_contacts_answered_under_flood_unlimited": unlimited[
            "known_contacts_answered_under_flood"
        ],
        "limited": limited,
        "peer_unlimited": unlimited,
    }


def main(*, json_output: bool, flood: int, rate: float, contacts: int, output: str | None) -> int:
    """Run the benchmark, print it (JSON or a summary), optionally save it."""
    result = anyio.run(lambda: bench_flood(flood_size=flood, rate=rate, contacts=contacts))
    text = json.dumps(result, indent=2)
    if output:
        Path(output).write_text(text + "\n")
    if json_output:
        print(text)
    else:
        print(
            f"flood of {flood} PINGs at {rate:.0f}/s: known contacts answered "
            f"{result['known_contacts_answered_under_flood']:.1%}, flood answered "
            f"{result['flood_answered']:.1%} (limits on) / "
            f"{result['flood_answered_unlimited']:.1%} (limits off)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(victim_main(sys.argv[1:]))
