"""The requester-side runner: play a small network of fake peers and watch a node use it.

The wire runner (`wire_runner`) checks a node as a *responder*. A node is also
a requester — it joins, looks up, times out, refuses answers from the wrong
node, pings the oldest contact of a full bucket — and none of that shows when
only the node is asked. Here the runner *is* the network:

1. It opens a bootstrap peer, starts the target from a command line given
   with ``{bootstrap}`` and ``{key}`` placeholders (the control surface of
   REQ-1.1: ``railgun-ref node --bootstrap {bootstrap} --lookup {key}``), and
   reads the target's id from its first stdout line.
2. It then opens the rest of the network, all on 127.0.0.1, each peer with
   its own identity and socket: `_HONEST` peers that answer every query after
   `ANSWER_DELAY` and name every other peer; one *silent* peer; one
   *wrong-sender* peer, named under one id but answering signed by another and
   naming a *poison* peer that nobody else names. Every peer but the
   bootstrap has an id in the same half of the id space as the target, so the
   far bucket (255) stays for the eviction check.
3. When the target prints ``lookup KEY: ...`` the runner fills bucket 255
   with PINGs from fresh identities, one at a time, until the bucket holds k
   and one more arrives, and watches for the target's PING to the least
   recently seen contact (DHT-5.2).
4. Every datagram the target sent is logged with its arrival time, and
   `_judge` turns the log into checks (`CHECKS` in `catalog`).

No check depends on how fast the machine runs: times come from the
target's own stamps (ENV-1.5), set against the runner's clock by the least
stamp-to-arrival delay, and a query counts as waiting until its answer was
sent or for `SLOW_AFTER_FLOOR` (the least ``slow_after`` of DHT-6.2 the
runner grants a target, REQ-1.2), whichever is first. A slow runner can only
make a target look better, never worse. Everything is bounded by the run's
timeout.
"""

import os
import shlex
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import anyio
import anyio.abc
from anyio.streams.text import TextReceiveStream

from railgun_ref.conformance.wire_runner import CheckResult, Report
from railgun_ref.core.constants import MAX_CLOCK_SKEW, MAX_DATAGRAM_SIZE
from railgun_ref.core.errors import RemoteProtocolError
from railgun_ref.core.ids import Address, NodeId
from railgun_ref.dht.geometry import KEY_BITS, bucket_index, distance
from railgun_ref.identity.keys import Identity
from railgun_ref.wire.envelope import Envelope, decode_envelope, encode_envelope
from railgun_ref.wire.messages import MessageType, Nodes, Pong

#: Honest peers besides the bootstrap: more than k, so a lookup ends on answers alone.
_HONEST: Final = 24
#: Seconds an honest peer waits before answering a query (so queries overlap).
ANSWER_DELAY: Final = 0.1
#: k and alpha of the spec (DHT-5.2, DHT-6.1).
_K: Final = 20
_ALPHA: Final = 3
#: Quiet time after a lookup's result during which no query for its key may come.
_AFTERMATH: Final = 0.5
#: The least `slow_after` (DHT-6.2) the runner grants a target: a query counts as waiting
#: until its answer was sent or for this long after the target stamped it (REQ-1.2).
SLOW_AFTER_FLOOR: Final = 0.25
#: Seconds of slack on each comparison of a stamp (whole milliseconds, ENV-1.5) with a time.
_STAMP_SLACK: Final = 0.002
#: A query stamped this long after the runner read the lookup's result was sent after it.
_LATE_SLACK: Final = 0.05


@dataclass(slots=True)
class _Peer:
    name: str
    identity: Identity  #: the id other peers name it under
    role: str  #: bootstrap, honest, silent, wrong, poison or evict
    socket: anyio.abc.UDPSocket | None = None
    sending: anyio.Lock = field(default_factory=anyio.Lock)  #: one datagram at a time

    async def send(self, data: bytes, address: Address) -> None:
        assert self.socket is not None
        async with self.sending:
            await self.socket.sendto(data, *address)

    @property
    def address(self) -> Address:
        assert self.socket is not None
        local = self.socket.extra(anyio.abc.SocketAttribute.local_address)
        assert isinstance(local, tuple)
        return (str(local[0]), int(local[1]))


@dataclass(frozen=True, slots=True, kw_only=True)
class _Seen:
    """One datagram the target sent to a fake peer."""

    at: float
    peer: str
    envelope: Envelope | None
    size: int
    problem: str | None  #: why it does not authenticate, if it does not
    answered_at: float | None = None


@dataclass(slots=True)
class _Network:
    target_id: NodeId | None = None
    peers: dict[str, _Peer] = field(default_factory=dict)
    log: list[_Seen] = field(default_factory=list)
    ready: anyio.Event = field(default_factory=anyio.Event)
    answered: dict[int, float] = field(default_factory=dict)  #: log index -> answer time

    def named(self, role: str) -> list[_Peer]:
        return [peer for peer in self.peers.values() if peer.role == role]

    def contacts_for(self, asker: str, target: bytes) -> list[tuple[NodeId, Address]]:
        """What an honest peer names: the k peers closest to `target`, poison excluded."""
        named = [
            peer
            for peer in self.peers.values()
            if peer.role not in ("poison", "evict") and peer.name != asker
        ]
        named.sort(key=lambda peer: distance(peer.identity.node_id, target))
        return [(peer.identity.node_id, peer.address) for peer in named[:_K]]


def _reply(
    net: _Network, peer: _Peer, envelope: Envelope, msg_type: int, body: dict[int, Any]
) -> bytes:
    """An answer signed by `peer`, or, for the wrong-sender peer, by a fresh identity each
    time: never the one it is named under, nor one the target could have learned."""
    signer = peer.identity
    if peer.role == "wrong" and net.target_id is not None:
        signer = _identity_in(net.target_id, far=False)
    return encode_envelope(
        signer,
        type=msg_type,
        request_id=envelope.request_id,
        timestamp_ms=round(time.time() * 1000),
        body=body,
    )


async def _serve(net: _Network, peer: _Peer, tg: anyio.abc.TaskGroup) -> None:
    """Log what the target sends `peer` and answer as the peer's role says.

    The receive loop never waits: a delayed answer is its own task, so a peer asked
    many times at once logs each query when it arrives and answers each after
    `ANSWER_DELAY`, not one after another."""
    assert peer.socket is not None
    async for data, source in peer.socket:
        now = time.time()
        try:
            envelope: Envelope | None = decode_envelope(data, expected_sender=net.target_id)
            problem = None
        except RemoteProtocolError as exc:
            envelope, problem = None, f"{exc.code.name}: {exc.message}"
        net.log.append(
            _Seen(at=now, peer=peer.name, envelope=envelope, size=len(data), problem=problem)
        )
        if envelope is None or peer.role in ("silent", "poison"):
            continue
        address = (str(source[0]), int(source[1]))
        if envelope.type == MessageType.PING:
            pong = Pong(observed=address, payload=envelope.body.get(0, b"")).to_body()
            await peer.send(_reply(net, peer, envelope, MessageType.PONG, pong), address)
        elif envelope.type in (MessageType.FIND_NODE, MessageType.FIND_VALUE):
            tg.start_soon(_answer_later, net, peer, envelope, address, len(net.log) - 1)


async def _answer_later(
    net: _Network, peer: _Peer, envelope: Envelope, address: Address, index: int
) -> None:
    await net.ready.wait()
    await anyio.sleep(ANSWER_DELAY)
    answer = _answer(net, peer, envelope)
    net.answered[index] = time.time()
    await peer.send(answer, address)


def _answer(net: _Network, peer: _Peer, envelope: Envelope) -> bytes:
    if peer.role == "wrong":
        poison = net.named("poison")[0]
        contacts: list[tuple[NodeId, Address]] = [(poison.identity.node_id, poison.address)]
    else:
        contacts = net.contacts_for(peer.name, envelope.body[0])
    nodes = Nodes(contacts=tuple(contacts))
    if envelope.type == MessageType.FIND_NODE:
        return _reply(net, peer, envelope, MessageType.NODES, nodes.to_body())
    return _reply(net, peer, envelope, MessageType.VALUE, {0: [], 1: nodes.to_body()[0], 2: False})


def _identity_in(target: NodeId, *, far: bool) -> Identity:
    """A fresh identity in the target's bucket 255 (`far`) or in a nearer one."""
    while True:
        identity = Identity.generate(os.urandom)
        if (bucket_index(target, identity.node_id) == 255) == far:
            return identity


async def _open(net: _Network, tg: anyio.abc.TaskGroup, peer: _Peer) -> _Peer:
    peer.socket = await anyio.create_udp_socket(local_host="127.0.0.1")
    net.peers[peer.name] = peer
    tg.start_soon(_serve, net, peer, tg)
    return peer


async def _populate(net: _Network, tg: anyio.abc.TaskGroup, target: NodeId) -> None:
    for n in range(_HONEST):
        await _open(net, tg, _Peer(f"honest-{n}", _identity_in(target, far=False), "honest"))
    await _open(net, tg, _Peer("silent", _identity_in(target, far=False), "silent"))
    await _open(net, tg, _Peer("poison", _identity_in(target, far=False), "poison"))
    await _open(net, tg, _Peer("wrong", _identity_in(target, far=False), "wrong"))
    net.ready.set()


async def _lines(process: anyio.abc.Process) -> Any:
    assert process.stdout is not None
    buffer = ""
    async for chunk in TextReceiveStream(process.stdout):
        buffer += chunk
        while "\n" in buffer:
            line, buffer = buffer.split("\n", 1)
            yield line


@dataclass(slots=True)
class _Outcome:
    target_id: NodeId | None = None
    address: Address | None = None  #: where the target listens (its first line)
    key: bytes = b""
    result: list[bytes] | None = None
    result_at: float = 0.0
    eviction: tuple[str, float] | None = None  #: (expected oldest peer, when the bucket overflowed)
    problem: str | None = None


async def _fill_far_bucket(net: _Network, tg: anyio.abc.TaskGroup, out: _Outcome) -> None:
    """PING from fresh identities in bucket 255 until it holds k and one more came."""
    assert out.target_id is not None and out.address is not None
    bootstrap = net.peers["bootstrap"]
    there = (
        [bootstrap.name] if bucket_index(out.target_id, bootstrap.identity.node_id) == 255 else []
    )
    names = list(there)
    for n in range(_K + 1 - len(there)):
        peer = await _open(
            net, tg, _Peer(f"evict-{n}", _identity_in(out.target_id, far=True), "evict")
        )
        names.append(peer.name)
        assert peer.socket is not None
        sent = time.time()
        ping = encode_envelope(
            peer.identity,
            type=MessageType.PING,
            request_id=int.from_bytes(os.urandom(8), "big"),
            timestamp_ms=round(sent * 1000),
            body={0: b""},
        )
        await peer.send(ping, out.address)
        await anyio.sleep(0.02)
    out.eviction = (names[0], sent)


async def run(command: Sequence[str], *, timeout: float = 20.0) -> Report:
    """Start the target by `command` ({bootstrap}, {key} substituted), play the network,
    and report per clause."""
    net, out = _Network(), _Outcome(key=os.urandom(32))
    async with anyio.create_task_group() as tg:
        bootstrap = await _open(
            net, tg, _Peer("bootstrap", Identity.generate(os.urandom), "honest")
        )
        bootstrap.role = "bootstrap"
        where = f"{bootstrap.address[0]}:{bootstrap.address[1]}"
        argv = [part.format(bootstrap=where, key=out.key.hex()) for part in command]
        with anyio.move_on_after(timeout) as scope:
            await _drive(net, tg, out, argv)
        if scope.cancelled_caught and out.problem is None and out.result is None:
            out.problem = f"no lookup result within {timeout} s"
        tg.cancel_scope.cancel()
    checks = _judge(net, out)
    return Report(
        target=shlex.join(command),
        node_id=out.target_id.hex() if out.target_id else None,
        timeout=timeout,
        checks=tuple(checks),
    )


#: Seconds the runner waits at most for the eviction PING once the far bucket overflowed,
#: then for any further PING into that bucket after the first.
_EVICTION_WAIT: Final = 10.0
_EVICTION_AFTER: Final = 0.5


async def _drive(net: _Network, tg: anyio.abc.TaskGroup, out: _Outcome, argv: list[str]) -> None:
    """Start the target, build the network once its id is known, wait for its lookup."""
    async with await anyio.open_process(argv, stderr=None) as process:
        try:
            lines = _lines(process)
            first = (await anext(lines)).split()
            if first[:3] != ["railgun-ref", "node", "listening"] or len(first) < 5:
                out.problem = f"first line is not the REQ-1.1 listening line: {' '.join(first)!r}"
                return
            host, _, port = first[3].removeprefix("udp://").rpartition(":")
            out.address = (host.strip("[]"), int(port))
            out.target_id = NodeId(bytes.fromhex(first[4].removeprefix("id=")))
            net.target_id = out.target_id
            await _populate(net, tg, out.target_id)
            prefix = f"lookup {out.key.hex()}:"
            async for line in lines:
                if line.startswith(prefix):
                    ids = line.removeprefix(prefix).strip()
                    out.result = [bytes.fromhex(i) for i in ids.split(",") if i]
                    out.result_at = time.time()
                    break
            await _quiet(net)
            await _fill_far_bucket(net, tg, out)
            with anyio.move_on_after(_EVICTION_WAIT):
                while not _far_pings(net, out):
                    await anyio.sleep(0.05)
            await anyio.sleep(_EVICTION_AFTER)
        finally:
            process.terminate()
            with anyio.move_on_after(5):
                await process.wait()
            if process.returncode is None:
                process.kill()


async def _quiet(net: _Network) -> None:
    """Wait until the target has sent nothing for `_AFTERMATH` s (its joins' refreshes end)."""
    while True:
        last = net.log[-1].at if net.log else 0.0
        left = last + _AFTERMATH - time.time()
        if left <= 0:
            return
        await anyio.sleep(left)


def _queries(net: _Network, target: bytes) -> list[tuple[int, _Seen]]:
    """(log index, entry) of every FIND_NODE/FIND_VALUE for `target` the target sent."""
    return [
        (index, seen)
        for index, seen in enumerate(net.log)
        if seen.envelope is not None
        and seen.envelope.type in (MessageType.FIND_NODE, MessageType.FIND_VALUE)
        and seen.envelope.body.get(0) == target
    ]


def _clock_offset(net: _Network) -> float:
    """The runner's clock minus the target's, never overestimated by more than the stamps'
    rounding: every datagram arrives after it was stamped, so the least delay between a
    stamp and its arrival is the offset plus the quickest delivery."""
    lags = [s.at - s.envelope.timestamp_ms / 1000 for s in net.log if s.envelope is not None]
    return min(lags, default=0.0)


def _stamp(seen: _Seen) -> float:
    """When the target sent `seen`, on the target's clock (ENV-1.5)."""
    assert seen.envelope is not None
    return seen.envelope.timestamp_ms / 1000


def _most_in_flight(net: _Network, queries: list[tuple[int, _Seen]]) -> int:
    """The most queries waiting at once, judged from the target's own behaviour: each from
    the stamp the target put on it until we sent its answer (the target cannot have had it
    sooner), or for at most `SLOW_AFTER_FLOOR` (DHT-6.2: a query that long unanswered may
    rightly stop counting), whichever comes first. Neither end depends on how quickly this
    runner ran: a busy machine only makes the spans shorter than the target's own."""
    offset = _clock_offset(net)
    spans = []
    for index, seen in queries:
        start = _stamp(seen)
        end = start + SLOW_AFTER_FLOOR
        answered = net.answered.get(index)
        if answered is not None and seen.peer != "wrong":  # a wrong signer answers nothing
            end = min(end, answered - offset)
        spans.append((start, 1))
        spans.append((end - _STAMP_SLACK, -1))
    most = current = 0
    for _, step in sorted(spans):
        current += step
        most = max(most, current)
    return most


def _judge(net: _Network, out: _Outcome) -> list[CheckResult]:
    """The checks of a run, in `catalog.REQUESTER_CHECKS` order."""
    checks = [
        _check(
            "REQ-1.1",
            "the target prints its listening line and the lookup's result",
            out.problem is None and out.result is not None,
            out.problem or f"{len(out.result or [])} ids for key {out.key.hex()[:16]}...",
        )
    ]
    if out.target_id is None:
        return checks
    checks += _envelope_checks(net)
    checks += _lookup_checks(net, out)
    checks.append(_eviction_check(net, out))
    return checks


def _check(clause: str, name: str, passed: bool, detail: str) -> CheckResult:
    return CheckResult(check=name, clause=clause, passed=passed, detail=detail)


def _envelope_checks(net: _Network) -> list[CheckResult]:
    bad = [f"to {s.peer}: {s.problem}" for s in net.log if s.problem is not None]
    big = [f"{s.size} bytes to {s.peer}" for s in net.log if s.size > MAX_DATAGRAM_SIZE]
    skews = [abs(s.envelope.timestamp_ms / 1000 - s.at) for s in net.log if s.envelope]
    ids = [s.envelope.request_id for _, s in _all_queries(net) if s.envelope is not None]
    return [
        _check(
            "ENV-2.1",
            "every datagram the target sent authenticates as the target",
            not bad,
            "; ".join(bad[:3]) or f"{len(net.log)} datagrams",
        ),
        _check(
            "ENV-1.4",
            "every datagram the target sent is at most 1200 bytes",
            not big,
            "; ".join(big[:3]) or f"largest {max((s.size for s in net.log), default=0)}",
        ),
        _check(
            "ENV-1.5",
            "every datagram is stamped with the target's clock",
            all(skew <= MAX_CLOCK_SKEW for skew in skews),
            f"largest skew {max(skews, default=0.0):.3f} s",
        ),
        _check(
            "RPC-1.1",
            "the target's queries carry distinct request ids",
            len(ids) == len(set(ids)),
            f"{len(ids)} queries, {len(set(ids))} ids",
        ),
    ]


def _all_queries(net: _Network) -> list[tuple[int, _Seen]]:
    return [
        (index, seen)
        for index, seen in enumerate(net.log)
        if seen.envelope is not None
        and seen.envelope.type in (MessageType.FIND_NODE, MessageType.FIND_VALUE)
    ]


def _lookup_checks(net: _Network, out: _Outcome) -> list[CheckResult]:
    assert out.target_id is not None
    join, lookup = _queries(net, out.target_id), _queries(net, out.key)
    pinged = [
        s
        for s in net.log
        if s.peer == "bootstrap" and s.envelope is not None and s.envelope.type == MessageType.PING
    ]
    joined = bool(pinged) and any(s.peer == "bootstrap" for _, s in join)
    most = max(_most_in_flight(net, join), _most_in_flight(net, lookup))
    repeats = [
        f"{peer} asked {n} times"
        for queries in (join, lookup)
        for peer, n in _count(s.peer for _, s in queries).items()
        if n > 1 and peer != "wrong"  # its address answers under many ids, by design
    ]
    return [
        _check(
            "DHT-8.2",
            "the target PINGs the bootstrap, then looks up its own id there",
            joined,
            f"{len(pinged)} PING(s), {len(join)} join queries",
        ),
        _check(
            "DHT-6.1",
            f"at most {_ALPHA} queries of a lookup wait at once",
            bool(lookup) and most <= _ALPHA,
            f"at most {most} in flight over {len(join) + len(lookup)} queries",
        ),
        _check(
            "DHT-6.4",
            "no peer is queried twice in one lookup",
            not repeats,
            "; ".join(repeats[:3]) or "every query went to a different peer",
        ),
        _result_check(net, out, lookup),
        _silent_check(net, out, lookup),
        _wrong_sender_check(net, out),
    ]


#: Roles of the peers that answer every query honestly.
_HONEST_ROLES: Final = ("honest", "bootstrap")


def _count(items: Any) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for item in items:
        counts[item] += 1
    return counts


def _result_check(net: _Network, out: _Outcome, lookup: list[tuple[int, _Seen]]) -> CheckResult:
    """DHT-6.3: the k closest peers that answered, nearest first; then no more queries.

    Which answers came within the target's `slow_after` depends on the machine's speed,
    and a peer answering later may rightly be left out (DHT-6.2). So the check asks what
    holds however fast the machine: at most k ids, nearest first, each a peer that was
    asked and answered, and every honest peer an answer named that is nearer than the
    farthest of them (any, if there are fewer than k) either in the result or asked (and
    so possibly unresponsive or timed out); no query stamped
    after the result. A peer no answer named may rightly be unknown to the target: the
    network has more peers than an answer names, and joins' refreshes may still run."""
    honest: dict[bytes, str] = {
        p.identity.node_id: p.name for p in net.peers.values() if p.role in _HONEST_ROLES
    }
    answered = {s.peer for i, s in lookup if i in net.answered and s.peer != "wrong"}
    asked = {s.peer for _, s in lookup}
    result = out.result or []
    problems = []
    if len(result) > _K or result != sorted(result, key=lambda i: distance(i, out.key)):
        problems.append(f"{len(result)} ids, not at most k nearest first")
    if strangers := [i.hex()[:8] for i in result if honest.get(i) not in answered]:
        problems.append(f"ids of peers that never answered: {strangers[:3]}")
    if out.result is not None:
        # Short of k, every peer named to it must have been asked (those not in the
        # result timed out or were too late, DHT-6.3); at k, every one nearer than the last.
        farthest = distance(result[-1], out.key) if len(result) == _K else 1 << KEY_BITS
        named = {
            node_id
            for i, seen in lookup
            if i in net.answered and seen.peer != "wrong"
            for node_id, _ in net.contacts_for(seen.peer, out.key)
        }
        skipped = [
            name
            for node_id, name in honest.items()
            if node_id in named
            and distance(node_id, out.key) < farthest
            and node_id not in result
            and name not in asked
        ]
        if skipped:
            problems.append(
                f"nearer honest peers named to it but never asked: {sorted(skipped)[:3]}"
            )
    cutoff = out.result_at - _clock_offset(net) + _LATE_SLACK
    if late := [s.peer for _, s in lookup if out.result is not None and _stamp(s) > cutoff]:
        problems.append(f"queried {late[:3]} after its result")
    want = sorted(honest, key=lambda node_id: distance(node_id, out.key))[:_K]
    detail = (
        "the k closest honest peers, nearest first"
        if result == want
        else (
            f"k nearest first; {len(set(result) & set(want))} of the k closest honest peers, "
            "the others asked and late"
        )
    )
    return _check(
        "DHT-6.3",
        "the lookup ends with the k closest that answered, then stops",
        out.result is not None and not problems,
        "; ".join(problems) or detail,
    )


def _silent_check(net: _Network, out: _Outcome, lookup: list[tuple[int, _Seen]]) -> CheckResult:
    """DHT-6.2, DHT-6.6: a silent peer costs one query, never the lookup or the result."""
    silent = net.peers["silent"].identity.node_id
    asked = sum(1 for _, s in lookup if s.peer == "silent")
    ok = out.result is not None and silent not in out.result and asked <= 1
    return _check(
        "DHT-6.6",
        "a silent peer is asked at most once, is not in the result, and does not stall the lookup",
        ok,
        f"asked {asked} time(s)",
    )


def _wrong_sender_check(net: _Network, out: _Outcome) -> CheckResult:
    """RPC-1.3: an answer signed by another node than the one asked completes nothing."""
    named = net.peers["wrong"].identity.node_id
    poisoned = [s for s in net.log if s.peer == "poison"]
    asked = sum(1 for _, s in _all_queries(net) if s.peer == "wrong")
    problems = []
    if out.result is not None and named in out.result:
        problems.append("the peer whose answer was signed by another is in the result")
    if poisoned:
        problems.append(
            f"the contact only the wrong-sender answer named was sent {len(poisoned)} datagram(s)"
        )
    return _check(
        "RPC-1.3",
        "an answer signed by another node than the one asked is refused",
        not problems,
        "; ".join(problems) or f"asked {asked} time(s); its answer unused",
    )


def _far_pings(net: _Network, out: _Outcome) -> list[str]:
    """The peers of the far bucket the target PINGed once it overflowed (by its stamps)."""
    if out.eviction is None:
        return []
    oldest, since = out.eviction
    far = {p.name for p in net.peers.values() if p.role == "evict"} | {oldest}
    after = since - _clock_offset(net) - _STAMP_SLACK
    return [
        s.peer
        for s in net.log
        if s.envelope is not None
        and s.envelope.type == MessageType.PING
        and s.peer in far
        and _stamp(s) >= after
    ]


def _eviction_check(net: _Network, out: _Outcome) -> CheckResult:
    """DHT-5.2: a full bucket's newcomer makes the node PING the least recently seen."""
    name = "a newcomer to a full bucket makes the target PING its least recently seen contact"
    if out.eviction is None:
        return _check("DHT-5.2", name, False, "the far bucket was never filled")
    oldest = out.eviction[0]
    pings = _far_pings(net, out)
    ok = pings[:1] == [oldest] and set(pings) == {oldest}
    return _check(
        "DHT-5.2", name, ok, f"PINGs to {sorted(set(pings)) or 'nobody'}, expected {oldest}"
    )
