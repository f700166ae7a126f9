"""Interop with coturn, an independent STUN/TURN implementation, from the OS packages.

Both directions, on 127.0.0.0/8 only:

* coturn's test clients against our servers: ``turnutils_stunclient`` (RFC 5780
  Binding with CHANGE-REQUEST) and ``turnutils_natdiscovery`` (mapping and
  filtering discovery, with 1500-byte PADDING) against `StunServer`;
  ``turnutils_uclient`` (several clients, channels or Send indications, and its own
  random EVEN-PORT requests with RTCP reservations) against `TurnUdpServer`, with
  ``turnutils_peer`` as the echoing peer.
* our clients against coturn's ``turnserver``: the RFC 5780 NAT classifier
  (CAP-6) and an aiortc call relayed only through coturn.

`.ci/run` installs the ``coturn`` package; where it is missing these tests skip.
Every process a test starts is terminated before the test ends.
"""

import asyncio
import re
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import partial

import anyio
import pytest

from railgun_ref.capacity.nat import NatBehaviour, NatType
from railgun_ref.conformance import runner_stun
from railgun_ref.core.ids import Address
from railgun_ref.drivers.stun_server import StunServer, detect_nat_type, serve_stun
from railgun_ref.drivers.turn_server import TurnUdpServer

from .test_turn_aiortc import TONE_HZ, ToneTrack, candidates

TOOLS = ("turnutils_stunclient", "turnutils_natdiscovery", "turnutils_uclient", "turnserver")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        any(shutil.which(tool) is None for tool in TOOLS),
        reason="coturn is not installed (apt-get install coturn; .ci/run does it)",
    ),
]

#: Bounds every coturn client run.
TIMEOUT = 60.0
USERS = {f"user{i}": f"password-{i}" for i in range(1, 5)}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # aiortc runs on asyncio


def free_port_pair(host: str = "127.0.0.1") -> int:
    """An even UDP port p with p and p + 1 free on `host` (coturn's alternate port is p + 1)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as first:
            first.bind((host, 0))
            port = first.getsockname()[1]
            if port % 2 or port >= 65000:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as second:
                try:
                    second.bind((host, port + 1))
                except OSError:
                    continue
            return int(port)
    raise RuntimeError("no free pair of UDP ports")


async def run_tool(*argv: str) -> str:
    """Run a coturn tool to completion; its stdout and stderr together."""
    with anyio.fail_after(TIMEOUT):
        done = await anyio.run_process(list(argv), check=False, stderr=subprocess.STDOUT)
    output = done.stdout.decode(errors="replace")
    assert done.returncode == 0, output[-3000:]
    return output


@contextmanager
def process(*argv: str) -> Iterator[subprocess.Popen[bytes]]:
    """A background process (turnserver, turnutils_peer), terminated and reaped on exit."""
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield child
    finally:
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


@asynccontextmanager
async def our_stun_server() -> AsyncIterator[StunServer]:
    async with anyio.create_task_group() as tg:
        server: StunServer = await tg.start(partial(serve_stun))
        yield server
        tg.cancel_scope.cancel()


@asynccontextmanager
async def our_turn_server() -> AsyncIterator[TurnUdpServer]:
    async with anyio.create_task_group() as tg:
        server = await tg.start(TurnUdpServer(users=USERS, realm="railgun-test").run)
        yield server
        tg.cancel_scope.cancel()


# ------------------------------------------------- coturn's clients, our servers


@pytest.mark.anyio
async def test_turnutils_stunclient_sees_rfc5780_answers_from_every_address() -> None:
    """CAP-6.4, RFC 5780 §6.1: coturn's STUN client gets the answers to its CHANGE-REQUESTs
    from the changed addresses our server reports as OTHER-ADDRESS."""
    async with our_stun_server() as server:
        host, port = server.primary
        output = await run_tool("turnutils_stunclient", "-f", "-p", str(port), host)
        alternate = server.alternate
    assert alternate is not None
    origins = set(re.findall(r"Response origin: : ([\d.]+:\d+)", output))
    assert origins == {f"{host}:{port}", f"{alternate[0]}:{alternate[1]}"}
    assert f"Other addr: : {alternate[0]}:{alternate[1]}" in output
    assert "UDP reflexive addr: 127.0.0.1:" in output


@pytest.mark.anyio
async def test_turnutils_natdiscovery_with_padding_classifies_loopback() -> None:
    """CAP-6.4: coturn's behaviour discovery, with 1500-byte PADDING on every request,
    finds endpoint-independent mapping and filtering on loopback."""
    async with our_stun_server() as server:
        host, port = server.primary
        output = await run_tool("turnutils_natdiscovery", "-m", "-f", "-P", "-p", str(port), host)
        answered = server.core.counters.snapshot()
    assert "NAT with Endpoint Independent Mapping!" in output
    assert "NAT with Endpoint Independent Filtering!" in output
    assert answered.get("stun.binding_answered", 0) >= 4
    assert not any(name.startswith("stun.error") for name in answered)


@pytest.mark.anyio
@pytest.mark.parametrize("send_indications", [False, True], ids=["channels", "send"])
async def test_turnutils_uclient_relays_through_our_turn_server(send_indications: bool) -> None:
    """TURN-1.1, TURN-1.11, TURN-1.12: coturn's load client -- 2 clients, each with an RTP
    and an RTCP allocation (random EVEN-PORT, with R and RESERVATION-TOKEN), one run per
    user, four users -- loses no packet through our server, over channels or Send/Data
    indications. uclient never deletes its allocations, so the fourth user's 4 fit only
    within the fair shares of TURN-1.11 (10, 6, 5, 4 of 20 slots)."""
    peer_port = free_port_pair()
    with process("turnutils_peer", "-L", "127.0.0.1", "-p", str(peer_port)):
        async with our_turn_server() as server:
            host, port = server.address
            for run, (user, password) in enumerate(USERS.items()):
                argv = ["turnutils_uclient", "-p", str(port), "-e", "127.0.0.1"]
                argv += ["-r", str(peer_port), "-u", user, "-w", password, "-n", "20", "-m", "2"]
                argv += ["-s"] if send_indications else []
                output = await run_tool(*argv, host)
                lost = re.search(r"Total lost packets (\d+)", output)
                assert lost is not None and lost.group(1) == "0", (run, output[-2000:])
            counters = server.counters
    assert counters.get("turn.allocations_created", 0) >= 4 * 2  # RTCP ones are uclient's whim
    assert counters.get("turn.reservations_made", 0) >= 1  # EVEN-PORT with R (TURN-1.12)
    errors = {name for name in counters if name.startswith("turn.error")}
    assert errors == {"turn.error.UNAUTHENTICATED"}, counters  # only the 401 challenges
    relayed = "turn.channel_data_to_client" if not send_indications else "turn.data_indications"
    assert counters.get(relayed, 0) > 0


# ------------------------------------------------- our clients, coturn's server


@contextmanager
def coturn_server() -> Iterator[Address]:
    """coturn's turnserver on 127.0.0.1 and 127.0.0.2 (RFC 5780 needs two IPs), no TLS."""
    port = free_port_pair()
    relay_low = free_port_pair()
    argv = ["turnserver", "-n", "--no-tls", "--no-dtls", "--no-cli", "--no-tcp"]
    argv += ["--listening-ip=127.0.0.1", "--listening-ip=127.0.0.2", "--relay-ip=127.0.0.1"]
    argv += [f"--listening-port={port}", f"--alt-listening-port={port + 1}"]
    argv += [f"--min-port={relay_low}", f"--max-port={min(relay_low + 99, 65535)}"]
    argv += ["--realm=railgun-test", "--lt-cred-mech", "--allow-loopback-peers"]
    argv += [f"--user={name}:{secret}" for name, secret in USERS.items()]
    argv += ["--pidfile=/dev/null", "--log-file=stdout"]
    with process(*argv):
        yield ("127.0.0.1", port)


async def wait_for_stun(address: Address) -> None:
    """Until coturn answers a Binding request (it takes a moment to open its sockets)."""
    with anyio.fail_after(20):
        while (await detect_nat_type(address)).nat_type is NatType.UDP_BLOCKED:
            await anyio.sleep(0.1)


@pytest.mark.anyio
async def test_our_nat_classifier_against_coturn() -> None:
    """CAP-6.1..CAP-6.3: our RFC 5780 classifier, run against coturn, says loopback is open,
    with the alternate address learned from coturn's OTHER-ADDRESS."""
    with coturn_server() as address:
        await wait_for_stun(address)
        outcome = await detect_nat_type(address)
    assert outcome.nat_type is NatType.OPEN
    assert outcome.mapping is outcome.filtering is NatBehaviour.ENDPOINT_INDEPENDENT
    assert outcome.alternate_address == ("127.0.0.2", address[1] + 1)


@pytest.mark.anyio
async def test_aiortc_call_relayed_only_through_coturn() -> None:
    """Our relay path (aiortc/aioice, as the voice stack uses it) through coturn: an audio
    call with relay-only candidates, all of them on coturn's relay ports."""
    aiortc = pytest.importorskip("aiortc")
    with coturn_server() as (host, port):
        await wait_for_stun((host, port))
        user, password = next(iter(USERS.items()))
        config = aiortc.RTCConfiguration(
            iceServers=[
                aiortc.RTCIceServer(urls=f"turn:{host}:{port}", username=user, credential=password)
            ],
            iceTransportPolicy=aiortc.RTCIceTransportPolicy.RELAY,
        )
        caller, callee = aiortc.RTCPeerConnection(config), aiortc.RTCPeerConnection(config)
        frames: list[object] = []
        enough = asyncio.Event()

        async def listen(track: aiortc.MediaStreamTrack) -> None:
            while len(frames) < 50:  # 1 s of 20 ms frames
                frames.append(await track.recv())
            enough.set()

        tasks: list[asyncio.Task[None]] = []
        callee.on("track", lambda track: tasks.append(asyncio.ensure_future(listen(track))))
        caller.addTrack(ToneTrack(TONE_HZ))
        try:
            await caller.setLocalDescription(await caller.createOffer())
            await callee.setRemoteDescription(caller.localDescription)
            await callee.setLocalDescription(await callee.createAnswer())
            await caller.setRemoteDescription(callee.localDescription)
            with anyio.fail_after(30):
                await enough.wait()
        finally:
            await caller.close()
            await callee.close()
            for task in tasks:
                task.cancel()
    offered = candidates(caller.localDescription.sdp) | candidates(callee.localDescription.sdp)
    assert {kind for kind, _, _ in offered} == {"relay"}
    assert all(h == "127.0.0.1" for _, h, _ in offered)
    assert len(frames) == 50


@pytest.mark.anyio
async def test_our_runners_against_coturn() -> None:
    """The STUN and TURN runners are fair to an independent server: coturn passes every
    check but one, the 437 that TURN-1.5 (after RFC 8656 §7.3) wants for a Refresh on a
    5-tuple whose allocation was just deleted -- coturn stays silent there."""
    with coturn_server() as (host, port):
        await wait_for_stun((host, port))
        user, password = next(iter(USERS.items()))
        stun = await runner_stun.run(f"stun://{host}:{port}", timeout=1.0)
        turn = await runner_stun.run(f"turn://{user}:{password}@{host}:{port}", timeout=1.0)
    assert stun.passed, [c for c in stun.checks if not c.passed]
    assert {c.check for c in turn.checks if not c.passed} == {"Refresh LIFETIME 0 deletes"}
