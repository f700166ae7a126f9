"""`railgun-ref bench voice`: our encoded-packet SFU vs aiortc's stock `MediaRelay` SFU.

For each participant count N and each implementation, in one run on one
machine, one after the other:

* **Processes.** The SFU host runs alone in its own process (so its CPU time
  is its own: `time.process_time`, all threads, over the measurement window);
  the N participants share `--workers` other processes (default 2). Every
  process runs real `NodeHost` nodes on 127.0.0.1 and signals over their
  application channel (`drivers/voice_signalling`); media is real WebRTC
  (ICE, DTLS-SRTP, Opus) between them (`drivers/voice_media`).
* **The call.** An SFU plan over N speaking participants plus the host node,
  which forwards and does not speak, so it forwards N(N-1) streams. The
  participants are identical for both implementations: they send real,
  pre-encoded Opus packets (capture costs no encoding) and count what they
  receive without decoding it. Only the host differs: `ours` forwards the
  encoded packets (`Forwarding.OURS`); `stock` receives with aiortc's decoding
  receivers and sends `MediaRelay.subscribe(track)` to each listener, which
  aiortc re-encodes per listener (`Forwarding.STOCK`).
* **Measurement window.** The plan is applied at T; frames *captured* in
  [T + warmup, T + warmup + duration) count; processes keep running `drain`
  seconds more so late frames can arrive. A frame captured in the window but
  arriving after that is lost.

Reported per implementation and N:

* `frames_per_s`: per (source, listener) stream, distinct frames captured in
  the window that arrived, per second (50 is all): min / median / mean, and
  how many streams reached 49.5.
  `arrivals_per_s_median` is throughput instead: packets that arrived during
  the window per second, whenever captured (an overloaded SFU's queues make
  the two differ).
* `delay_ms`: one-way, arrival at the listener (after SRTP) minus the frame's
  capture time, both CLOCK_MONOTONIC on this machine: median over streams of
  the per-stream median, worst per-stream p95, worst max. Our frames are named
  by their payload bytes; the stock SFU's re-encoded frames by RTP sequence
  number and the RFC 6465 audio level it attaches, matched against the clip's
  level pattern (`alignment` is the fraction of matching levels).
* `host_cpu`: host process CPU seconds in the window, as cores, per forwarded
  stream (cores / N(N-1)), and per frame delivered in the window (us).
* `setup_ms`: from applying the plan to a participant's first frame from every
  other participant (call setup), median and max over participants; plus link
  connect time (ICE + DTLS) median and max.

Goals (from the issue): G1 at N=8 every stream of ours >= 49.5 frames/s;
G2 at N=12 our host's CPU per forwarded stream <= 1/10 of the stock host's.

**With ``--video``** every participant also sends one 320x240 VP8 stream at
30 frames/s (`drivers/video_media`: a real libvpx encoder per participant,
keyframes only on request). `ours` forwards the encoded frames (VOICE-7.1);
`stock` decodes each with aiortc's receivers and re-encodes it per listener
from `MediaRelay.subscribe`. Participants re-assemble and count frames that
would decode (the keyframe chain is followed) without decoding them: N(N-1)
decoders would measure the participants' machine, not the SFU. Per row:

* `fps_min` (and `video.fps`): per (source, listener) video stream, decodable
  frames that *arrived* in the window per second (30 is all); a stream that
  never arrived counts 0.
* `first_frame_ms`: from applying the plan (every participant joins a call
  whose host is up) to the first decodable frame of each stream, median over
  streams (`video.first_frame_ms` has the quantiles). It includes ICE + DTLS
  and, for `ours`, the keyframe request the host sends upstream once the
  listener's link is up (VOICE-7.3); `video.keyframe_delay_ms` is the part after
  the listener's link came up.
* `video.host_us_per_forwarded_frame`: the host's CPU time (audio and video)
  per video frame delivered in the window.

**With ``--turn-only``** (the issue's "calls through peer TURN only"; ours
alone by default) participant 1 runs as a client of its own: one process with
its node, its call and the call's peer TURN server (`drivers/turn_server`,
sharing what a client's TURN server shares unless ``--turn-bandwidth``). That
server issues every node its own TURN-2.1 credential; every link gathers
relayed candidates only (ICE transport policy "relay"), so media goes through
TURN or not at all. Frames are named by a digest of their encoded bytes (the
host forwards them unchanged). Per row:

* `turn_only_frames_lost`: over the (source, listener) video streams, frames
  the source captured and sent in the window minus those of them that arrived
  decodable at the listener (`turn_only_streams` per stream). The warm-up
  before the window (ICE with TURN allocations, DTLS, the first keyframe) and
  frames captured after it are left out; the window's frames get `drain`
  seconds to arrive. `turn_only_audio_frames_lost`: the same for Opus, against
  the 50 frames/s the clock says were captured.
* `turn_only_relayed`: every end of every link nominated a pair whose local
  candidate is a relay candidate, when the window opened and after the drain
  (read from aioice; `turn_only_pairs` counts them by type). Goal T1 needs it,
  0 frames lost and 60 s.
* `turn_server`: the TURN server's own counters (allocations, datagrams and
  bytes relayed each way, drops such as ``turn.dropped_bandwidth``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from importlib import metadata
from typing import IO, TYPE_CHECKING, Any, Final

from railgun_ref.core.ids import NodeId

if TYPE_CHECKING:  # the worker imports these lazily: the orchestrator never needs aiortc
    from anyio.abc import TaskGroup

    from railgun_ref.drivers.turn_server import TurnUdpServer
    from railgun_ref.drivers.udp import NodeHost
    from railgun_ref.drivers.voice_media import CallRunner, MediaClock, OpusClip

#: Frames per second of the video streams (`--video`).
VIDEO_RATE: Final = 30.0
#: Frames per second a 20 ms stream carries.
FULL_RATE: Final = 50.0
G1_RATE: Final = 49.5


def _identity_seed(run_seed: int, index: int) -> bytes:
    return (run_seed * 1000 + index).to_bytes(4, "big") * 8


# ------------------------------------------------------------------- worker


def _flat_counters(*sources: Mapping[str, int]) -> dict[str, int]:
    """Flat counter names and values, zeros left out (what the report has always shown)."""
    return {name: value for source in sources for name, value in source.items() if value > 0}


async def _worker(
    role: str,
    impl: str,
    indices: list[int],
    seed: int,
    video: bool,
    turn_only: bool = False,
    turn_bandwidth: int | None = None,
) -> None:
    """One worker process: its nodes join the call, then report what they measured."""
    import anyio  # noqa: PLC0415

    from railgun_ref.drivers.udp import NodeHost  # noqa: PLC0415
    from railgun_ref.drivers.voice_media import MediaClock, opus_clip, sfu_plan  # noqa: PLC0415
    from railgun_ref.identity.keys import Identity  # noqa: PLC0415

    clip = opus_clip()
    hosts = [NodeHost(Identity.from_seed(_identity_seed(seed, i))) for i in indices]
    async with anyio.create_task_group() as tg:
        for host in hosts:
            await tg.start(host.run)
        print(json.dumps({"nodes": [[h.node_id.hex(), h.address[1]] for h in hosts]}), flush=True)
        is_host = role == "host"
        turn = await _start_turn(tg, turn_bandwidth) if role == "turn" else None
        config = _WorkerConfig.parse(await anyio.to_thread.run_sync(sys.stdin.readline))
        clock = MediaClock(config.origin)
        runners = await _start_runners(
            tg, hosts, config, clock, clip, is_host=is_host, impl=impl, video=video
        )
        plan = sfu_plan(sorted(config.directory), config.host_id)
        await anyio.sleep(max(0.0, config.applied - time.monotonic()))
        for runner in runners:
            tg.start_soon(runner.apply, plan)
        await anyio.sleep(max(0.0, config.window[0] - time.monotonic()))
        cpu0 = time.process_time()
        at_start = {r.node_id: _pairs(r) for r in runners}
        await anyio.sleep(max(0.0, config.window[1] - time.monotonic()))
        cpu1 = time.process_time()
        await anyio.sleep(max(0.0, config.end - time.monotonic()))
        expected = 0 if is_host else len(config.directory) - 2
        result: dict[str, Any] = {
            "cpu_s": cpu1 - cpu0,
            "nodes": [_node_report(r, config, clock, clip, expected) for r in runners],
        }
        if config.turn is not None:
            for runner, node in zip(runners, result["nodes"], strict=True):
                node["turn_only"]["pairs_at_window_start"] = at_start[runner.node_id]
        if turn is not None:
            result["turn_server"] = _flat_counters(turn.counters)
        print(json.dumps({"result": result}), flush=True)
        tg.cancel_scope.cancel()


async def _start_turn(tg: TaskGroup, bandwidth: int | None) -> TurnUdpServer:
    """TURN only: this node runs the call's peer TURN server (TURN-2.3), with a fresh
    credential secret, and issues each node of the directory it is sent a credential
    of its own (TURN-2.1), which the orchestrator hands on. It shares what a client's
    TURN server shares (`DEFAULT_TURN_CAPABILITIES`) unless given `bandwidth` (bytes/s)."""
    import anyio  # noqa: PLC0415

    from railgun_ref.drivers.turn_server import (  # noqa: PLC0415
        DEFAULT_TURN_CAPABILITIES,
        TurnUdpServer,
    )
    from railgun_ref.relay.credentials import CREDENTIAL_SECRET_SIZE  # noqa: PLC0415

    capabilities = DEFAULT_TURN_CAPABILITIES
    if bandwidth is not None:  # CAP-5.1: the rate is min(upload x share, maxRelayBandwidth)
        capabilities = replace(
            capabilities, upload_bandwidth=4 * bandwidth, max_relay_bandwidth=bandwidth
        )
    server = TurnUdpServer(
        users={},
        credential_secret=os.urandom(CREDENTIAL_SECRET_SIZE),
        capabilities=capabilities,
    )
    await tg.start(server.run)
    wanted = json.loads(await anyio.to_thread.run_sync(sys.stdin.readline))["credentials_for"]
    credentials = {}
    for member in wanted:
        credential = server.issue_credential(NodeId(bytes.fromhex(member)))
        credentials[member] = [credential.username, credential.password]
    address = list(server.address)
    print(json.dumps({"turn": {"address": address, "credentials": credentials}}), flush=True)
    return server


@dataclass(frozen=True, slots=True, kw_only=True)
class _WorkerConfig:
    """What the orchestrator tells every worker once all nodes are up (times: monotonic)."""

    directory: dict[NodeId, tuple[str, int]]
    host_id: NodeId
    origin: float
    applied: float
    window: tuple[float, float]
    end: float
    #: TURN only: the peer TURN server's address and each node's (username, password).
    turn: tuple[str, int] | None = None
    credentials: dict[NodeId, tuple[str, str]] | None = None

    @classmethod
    def parse(cls, line: str) -> _WorkerConfig:
        config = json.loads(line)
        turn = config.get("turn")
        return cls(
            directory={
                NodeId(bytes.fromhex(i)): ("127.0.0.1", port) for i, port in config["directory"]
            },
            host_id=NodeId(bytes.fromhex(config["host"])),
            origin=config["origin"],
            applied=config["applied"],
            window=(config["window"][0], config["window"][1]),
            end=config["end"],
            turn=None if turn is None else (turn["address"][0], turn["address"][1]),
            credentials=None
            if turn is None
            else {NodeId(bytes.fromhex(i)): (u, p) for i, (u, p) in turn["credentials"].items()},
        )


async def _start_runners(
    tg: TaskGroup,
    hosts: Sequence[NodeHost],
    config: _WorkerConfig,
    clock: MediaClock,
    clip: OpusClip,
    *,
    is_host: bool,
    impl: str,
    video: bool = False,
) -> list[CallRunner]:
    """A running `CallRunner` per node: the host forwards by `impl`, participants speak."""
    from railgun_ref.drivers.voice_media import CallRunner, Forwarding  # noqa: PLC0415
    from railgun_ref.drivers.voice_signalling import NodeSignalling  # noqa: PLC0415

    forwarding = Forwarding(impl) if is_host else Forwarding.OURS
    runners = []
    for host in hosts:
        runner = CallRunner(
            NodeSignalling(host, config.directory),
            call_id=bytes(16),
            clock=clock,
            clip=clip,
            capture=not is_host,
            forwarding=forwarding,
            loss_timeout=None,  # an overloaded stock SFU is slow, not gone
            connect_timeout=20.0,
            video=video,
            decode_video=False,  # count decodable frames: N(N-1) decoders would measure us
        )
        if config.turn is not None and config.credentials is not None:
            _relay_only(runner, config.turn, config.credentials[host.node_id])
        await tg.start(runner.run)
        runners.append(runner)
    return runners


def _relay_only(runner: CallRunner, turn: tuple[str, int], credential: tuple[str, str]) -> None:
    """TURN only: relayed candidates from the peer TURN server, nothing else; frames
    named by digest so the orchestrator can match what arrived to what was sent."""
    from aiortc import RTCIceServer  # noqa: PLC0415

    username, password = credential
    runner.ice_servers = [RTCIceServer(f"turn:{turn[0]}:{turn[1]}", username, password)]
    runner.relay_only = True
    runner.video_router.digests = True


def _node_report(
    runner: CallRunner, config: _WorkerConfig, clock: MediaClock, clip: OpusClip, expected: int
) -> dict[str, Any]:
    """What one node measured: its streams, call set-up, link set-up and counters."""
    from railgun_ref.drivers.voice_media import summarize_stream  # noqa: PLC0415

    streams = {}
    first_arrivals = []
    for source, log in runner.router.logs.items():
        if source == config.host_id:
            continue
        summary = summarize_stream(log, clock=clock, clip=clip, window=config.window)
        streams[source.hex()] = asdict(summary)
        arrivals = log.arrivals or log.raw_arrivals
        if arrivals:
            first_arrivals.append(min(arrivals))
    complete = len(first_arrivals) == expected and expected
    return {
        "id": runner.node_id.hex(),
        "streams": streams,
        "call_setup_ms": (max(first_arrivals) - config.applied) * 1000 if complete else None,
        "link_connect_ms": [(s.connected - s.created) * 1000 for s in runner.setups if s.connected],
        "counters": _flat_counters(
            runner.counters, runner.router.counters, runner.video_router.counters
        ),
        "forward_dropped": runner.forward_drops(),
        "video": _video_report(runner, config),
        **({"turn_only": _turn_only_report(runner, config)} if config.turn else {}),
    }


def _pairs(runner: CallRunner) -> list[list[str | None]]:
    """[peer, local type, remote type] of the candidate pair each open link uses now."""
    return [[p.peer.hex(), p.local, p.remote] for p in runner.selected_pairs()]


def _turn_only_report(runner: CallRunner, config: _WorkerConfig) -> dict[str, Any]:
    """TURN only: the ICE pair of every link, the digests of the video frames this node
    captured in the window and of the decodable frames it received from each source."""
    start, end = config.window
    origin = runner.clock.origin
    return {
        "pairs": _pairs(runner),
        "captured_in_window": [
            digest
            for digest, frame in runner.video_router.captured_digests.items()
            if start <= origin + frame / VIDEO_RATE < end
        ],
        "received": {
            source.hex(): log.digests or []
            for source, log in runner.video_router.logs.items()
            if source != config.host_id
        },
        "audio_expected_frames": round((end - start) * FULL_RATE),
    }


def _video_report(runner: CallRunner, config: _WorkerConfig) -> dict[str, Any]:
    """Per video source: decodable frames/s in the window, first-frame and keyframe delay."""
    connected = min((s.connected for s in runner.setups if s.connected), default=None)
    start, end = config.window
    out = {}
    for source, log in runner.video_router.logs.items():
        first = log.first_frame_at
        out[source.hex()] = {
            "fps": sum(start <= a < end for a in log.complete) / (end - start),
            "first_frame_ms": None if first is None else (first - config.applied) * 1000,
            "keyframe_delay_ms": None
            if first is None or connected is None
            else (first - connected) * 1000,
            "frames_in_window": sum(start <= a < end for a in log.complete),
        }
    return out


def worker_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="railgun_ref.bench.voice --worker")
    parser.add_argument("--worker", choices=("host", "participants", "turn"), required=True)
    parser.add_argument("--impl", choices=("ours", "stock"), default="ours")
    parser.add_argument("--indices", required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--video", action="store_true")
    parser.add_argument("--turn-only", action="store_true")
    parser.add_argument("--turn-bandwidth", type=int, default=None)
    args = parser.parse_args(argv)
    import anyio  # noqa: PLC0415

    indices = [int(i) for i in args.indices.split(",")]
    anyio.run(
        _worker,
        args.worker,
        args.impl,
        indices,
        args.seed,
        args.video,
        args.turn_only,
        args.turn_bandwidth,
    )
    return 0


# ------------------------------------------------------------- orchestrator


def _spawn(
    role: str,
    impl: str,
    indices: list[int],
    seed: int,
    video: bool = False,
    turn: bool = False,
    turn_bandwidth: int | None = None,
) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "railgun_ref.bench.voice", "--worker", role]
    command += ["--impl", impl, "--indices", ",".join(map(str, indices)), "--seed", str(seed)]
    command += ["--video"] if video else []
    command += ["--turn-only"] if turn else []
    command += [] if turn_bandwidth is None else ["--turn-bandwidth", str(turn_bandwidth)]
    log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (read back on failure)
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True
    )
    _logs[process.pid] = log
    return process


#: Each worker's stderr, read back when it fails.
_logs: dict[int, IO[str]] = {}


def _stderr_tail(process: subprocess.Popen[str]) -> str:
    log = _logs.get(process.pid)
    if log is None:
        return ""
    log.seek(0)
    return log.read()[-3000:]


def _read_json(process: subprocess.Popen[str], key: str, timeout: float) -> Any:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(
                f"worker exited with {process.wait()} before sending {key!r}:\n"
                + _stderr_tail(process)
            )
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(message, dict) and key in message:
            return message[key]
    raise RuntimeError(f"worker sent no {key!r} in {timeout} s")


def _quantiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"min": None, "median": None, "mean": None, "max": None}
    return {
        "min": round(min(values), 3),
        "median": round(statistics.median(values), 3),
        "mean": round(statistics.fmean(values), 3),
        "max": round(max(values), 3),
    }


def run_one(
    impl: str,
    participants: int,
    *,
    duration: float,
    warmup: float,
    drain: float,
    workers: int,
    seed: int,
    video: bool = False,
    turn_only: bool = False,
    turn_bandwidth: int | None = None,
) -> dict[str, Any]:
    """One call of `participants` speakers through one SFU host of `impl`."""
    host_result, participant_results = _run_call(
        impl,
        participants,
        duration=duration,
        warmup=warmup,
        drain=drain,
        workers=workers,
        seed=seed,
        video=video,
        turn_only=turn_only,
        turn_bandwidth=turn_bandwidth,
    )
    listeners = [node for r in participant_results for node in r["nodes"]]
    streams = [s for node in listeners for s in node["streams"].values()]
    expected_streams = participants * (participants - 1)
    setups = [n["call_setup_ms"] for n in listeners if n["call_setup_ms"] is not None]
    connects = [ms for n in listeners for ms in n["link_connect_ms"]]
    row: dict[str, Any] = {
        "impl": impl,
        "participants": participants,
        "forwarded_streams": expected_streams,
        "streams_reported": len(streams),
        "frames_per_s": _frames_report(streams, expected_streams),
        "delay_ms": _delay_report(streams),
        "host_cpu": _host_cpu_report(host_result["cpu_s"], streams, duration, expected_streams),
        "setup_ms": {
            "call_setup": _quantiles(setups),
            "calls_complete": len(setups),
            "link_connect": _quantiles(connects),
        },
        "participant_cpu_cores": round(sum(r["cpu_s"] for r in participant_results) / duration, 3),
        "host_counters": host_result["nodes"][0]["counters"],
        "host_forward_queue_drops": host_result["nodes"][0]["forward_dropped"],
        "participant_capture_skipped": sum(
            n["counters"].get("capture.skipped", 0) for n in listeners
        ),
    }
    if video:
        report = _video_row(listeners, expected_streams, host_result["cpu_s"])
        row["fps_min"] = report["fps"]["min"]
        row["first_frame_ms"] = report["first_frame_ms"]["median"]
        row["video"] = report
    if turn_only:
        row.update(_turn_only_row([host_result, *participant_results], duration))
    return row


def _video_row(
    listeners: list[dict[str, Any]], expected_streams: int, host_cpu_s: float
) -> dict[str, Any]:
    """`--video`: frames/s, first-frame and keyframe delays over every video stream."""
    streams = [s for node in listeners for s in node["video"].values()]
    rates = [s["fps"] for s in streams] + [0.0] * (expected_streams - len(streams))
    firsts = [s["first_frame_ms"] for s in streams if s["first_frame_ms"] is not None]
    keyframes = [s["keyframe_delay_ms"] for s in streams if s["keyframe_delay_ms"] is not None]
    frames = sum(s["frames_in_window"] for s in streams)
    return {
        "fps": {**_quantiles(rates), "streams_at_or_above_29": sum(r >= 29 for r in rates)},
        "first_frame_ms": _quantiles(firsts),
        "streams_with_a_frame": len(firsts),
        "keyframe_delay_ms": _quantiles(keyframes),
        "host_us_per_forwarded_frame": round(host_cpu_s / frames * 1e6, 1) if frames else None,
    }


def _run_call(
    impl: str,
    participants: int,
    *,
    duration: float,
    warmup: float,
    drain: float,
    workers: int,
    seed: int,
    video: bool = False,
    turn_only: bool = False,
    turn_bandwidth: int | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Spawn the host and participant workers, start the call, collect their results."""
    procs = [_spawn("host", impl, [0], seed, video, turn_only)]
    if turn_only:  # participant 1 is a client of its own: one process, its node, its TURN
        procs.append(_spawn("turn", impl, [1], seed, video, turn_only, turn_bandwidth))
    speakers = list(range(len(procs), participants + 1))
    groups = [speakers[w::workers] for w in range(min(workers, len(speakers)))]
    procs += [_spawn("participants", impl, g, seed, video, turn_only) for g in groups]
    try:
        nodes: list[list[Any]] = []
        for proc in procs:
            nodes.extend(_read_json(proc, "nodes", 120.0))
        turn = _turn_credentials(procs[1], [n for n, _ in nodes]) if turn_only else None
        origin = time.monotonic()
        applied = origin + 0.5
        w0 = applied + warmup
        w1 = w0 + duration
        config = {
            "directory": nodes,
            "host": nodes[0][0],
            "origin": origin,
            "applied": applied,
            "window": [w0, w1],
            "end": w1 + drain,
            **({"turn": turn} if turn is not None else {}),
        }
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(json.dumps(config) + "\n")
            proc.stdin.flush()
        results = [_read_json(proc, "result", duration + warmup + drain + 120.0) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            log = _logs.pop(proc.pid, None)
            if log is not None:
                log.close()
    return results[0], results[1:]


def _turn_credentials(host: subprocess.Popen[str], members: list[str]) -> Any:
    """TURN only: the host's TURN server issues every node its credential (TURN-2.1)."""
    assert host.stdin is not None
    host.stdin.write(json.dumps({"credentials_for": members}) + "\n")
    host.stdin.flush()
    return _read_json(host, "turn", 60.0)


def _turn_only_row(results: list[dict[str, Any]], duration: float) -> dict[str, Any]:
    """TURN only: per (source, listener) video stream, frames sent in the window against
    frames of them that arrived decodable; whether every link end used a relay candidate."""
    host, *listeners = [node for result in results for node in result["nodes"]]
    captured = {n["id"]: set(n["turn_only"]["captured_in_window"]) for n in listeners}
    streams = []
    for node in listeners:
        received = node["turn_only"]["received"]
        for source, sent in captured.items():
            if source == node["id"]:
                continue
            got = len(sent & set(received.get(source, ())))
            streams.append(
                {
                    "source": source[:16],
                    "listener": node["id"][:16],
                    "sent": len(sent),
                    "received": got,
                    "lost": len(sent) - got,
                }
            )
    ends = [n["turn_only"] for n in [host, *listeners]]
    pairs = [pair for end in ends for pair in end["pairs"]]
    at_start = [pair for end in ends for pair in end["pairs_at_window_start"]]
    audio_lost = sum(
        max(0, n["turn_only"]["audio_expected_frames"] - s["frames"])
        for n in listeners
        for s in n["streams"].values()
    )
    return {
        "turn_only_duration_s": duration,
        "turn_only_frames_lost": sum(s["lost"] for s in streams),
        "turn_only_frames_sent": sum(s["sent"] for s in streams),
        "turn_only_frames_received": sum(s["received"] for s in streams),
        "turn_only_relayed": all(
            len(sample) >= 2 * len(listeners) and all(local == "relay" for _, local, _ in sample)
            for sample in (at_start, pairs)
        ),
        "turn_only_audio_frames_lost": audio_lost,
        "turn_only_streams": streams,
        "turn_only_pairs": {
            "expected_link_ends": 2 * len(listeners),
            "at_window_start": _pair_types(at_start),
            "at_end": _pair_types(pairs),
        },
        "turn_server": next(r["turn_server"] for r in results if "turn_server" in r),
    }


def _pair_types(pairs: list[list[Any]]) -> dict[str, int]:
    """How many link ends used each (local, remote) candidate-type pair."""
    counts: dict[str, int] = {}
    for _, local, remote in pairs:
        key = f"{local}->{remote}"
        counts[key] = counts.get(key, 0) + 1
    return counts


def _frames_report(streams: list[dict[str, Any]], expected_streams: int) -> dict[str, Any]:
    """`frames_per_s`: a stream that never arrived counts 0."""
    rates = [s["frames_per_s"] for s in streams] + [0.0] * (expected_streams - len(streams))
    return {
        **_quantiles(rates),
        "streams_at_or_above_49_5": sum(r >= G1_RATE for r in rates),
        "arrivals_per_s_median": round(statistics.median([s["arrivals_per_s"] for s in streams]), 2)
        if streams
        else None,
    }


def _delay_report(streams: list[dict[str, Any]]) -> dict[str, Any]:
    medians = [s["delay_ms_median"] for s in streams if s["delay_ms_median"] is not None]
    p95s = [s["delay_ms_p95"] for s in streams if s["delay_ms_p95"] is not None]
    maxima = [s["delay_ms_max"] for s in streams if s["delay_ms_max"] is not None]
    alignments = [s["alignment"] for s in streams if s["alignment"] is not None]
    return {
        "median_of_stream_medians": round(statistics.median(medians), 2) if medians else None,
        "worst_stream_p95": round(max(p95s), 2) if p95s else None,
        "worst_max": round(max(maxima), 2) if maxima else None,
        "streams_measured": len(medians),
        "method": sorted({s["method"] for s in streams}),
        "alignment_min": round(min(alignments), 3) if alignments else None,
    }


def _host_cpu_report(
    cpu: float, streams: list[dict[str, Any]], duration: float, expected_streams: int
) -> dict[str, Any]:
    delivered = sum(s["frames"] for s in streams)
    arrived = sum(s["arrivals_per_s"] for s in streams) * duration
    cores = cpu / duration
    return {
        "cpu_s": round(cpu, 3),
        "cores": round(cores, 4),
        "cores_per_forwarded_stream": round(cores / expected_streams, 6),
        "us_per_delivered_frame": round(cpu / delivered * 1e6, 1) if delivered else None,
        "us_per_arrived_packet": round(cpu / arrived * 1e6, 1) if arrived else None,
    }


def _environment() -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for package in ("aiortc", "aioice", "av", "pylibsrtp"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "packages": versions,
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def _goals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def row(impl: str, n: int) -> dict[str, Any] | None:
        return next((r for r in rows if r["impl"] == impl and r["participants"] == n), None)

    goals: dict[str, Any] = {}
    ours8 = row("ours", 8)
    goals["G1_every_stream_at_8_ge_49_5_fps"] = (
        {
            "min_frames_per_s": ours8["frames_per_s"]["min"],
            "met": ours8["frames_per_s"]["min"] >= G1_RATE,
        }
        if ours8
        else {"met": None, "why": "no run at 8 participants"}
    )
    ours12, stock12 = row("ours", 12), row("stock", 12)
    if ours12 and stock12:
        ours_cpu = ours12["host_cpu"]["cores_per_forwarded_stream"]
        stock_cpu = stock12["host_cpu"]["cores_per_forwarded_stream"]
        ratio = ours_cpu / stock_cpu if stock_cpu else None
        per_frame = (
            ours12["host_cpu"]["us_per_delivered_frame"]
            / stock12["host_cpu"]["us_per_delivered_frame"]
            if ours12["host_cpu"]["us_per_delivered_frame"]
            and stock12["host_cpu"]["us_per_delivered_frame"]
            else None
        )
        ours_packet = ours12["host_cpu"]["us_per_arrived_packet"]
        stock_packet = stock12["host_cpu"]["us_per_arrived_packet"]
        goals["G2_host_cpu_per_stream_at_12_le_tenth_of_stock"] = {
            "ours_over_stock_per_stream": round(ratio, 4) if ratio is not None else None,
            "ours_over_stock_per_arrived_packet": round(ours_packet / stock_packet, 4)
            if ours_packet and stock_packet
            else None,
            "ours_over_stock_per_delivered_frame": round(per_frame, 4) if per_frame else None,
            "met": ratio is not None and ratio <= 0.1,
        }
    else:
        goals["G2_host_cpu_per_stream_at_12_le_tenth_of_stock"] = {
            "met": None,
            "why": "needs ours and stock at 12 participants",
        }
    return goals


_VIDEO_COUNTING: Final = {
    "video": "every participant also sends one 320x240 VP8 stream at 30 frames/s "
    "(libvpx, realtime, keyframes on request); ours forwards encoded frames, stock "
    "decodes and re-encodes per listener",
    "fps_min": "lowest over (source, listener) video streams of decodable frames that "
    "arrived in the window per second (30 is all); participants count, not decode",
    "first_frame_ms": "median over streams of plan applied -> first decodable frame "
    "(link set-up + keyframe request + keyframe)",
}


def _video_goals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The issue's video goals: 29 fps at 8, first frame <= 1 s, host CPU <= 1/10 of stock."""

    def row(impl: str, n: int) -> dict[str, Any] | None:
        return next((r for r in rows if r["impl"] == impl and r["participants"] == n), None)

    ours8 = row("ours", 8)
    goals: dict[str, Any] = {
        "V1_every_video_stream_at_8_ge_29_fps": {"met": None, "why": "no run at 8"}
        if ours8 is None
        else {"fps_min": ours8["fps_min"], "met": (ours8["fps_min"] or 0) >= 29},
    }
    ours = [r for r in rows if r["impl"] == "ours"]
    worst = max((r["video"]["first_frame_ms"]["max"] or math.inf for r in ours), default=None)
    goals["V2_first_frame_le_1000_ms"] = {
        "worst_first_frame_ms": worst,
        "met": None if worst is None else worst <= 1000,
    }
    ratios = {}
    for mine in ours:
        stock = row("stock", mine["participants"])
        a = mine["video"]["host_us_per_forwarded_frame"]
        b = stock["video"]["host_us_per_forwarded_frame"] if stock else None
        if a and b:
            ratios[str(mine["participants"])] = round(a / b, 4)
    goals["V3_host_cpu_per_forwarded_frame_le_tenth_of_stock"] = {
        "ours_over_stock_by_participants": ratios,
        "met": bool(ratios) and all(r <= 0.1 for r in ratios.values()),
    }
    return goals


_TURN_ONLY_COUNTING: Final = {
    "turn_only": "participant 1 runs as a client of its own (one process: its node, its "
    "call, and the call's peer TURN server, drivers/turn_server with the product's "
    "defaults) and its TURN server issues every node its own TURN-2.1 credential; every "
    "link gathers relayed candidates only (ICE policy relay), so media goes through TURN "
    "or not at all",
    "turn_only_relayed": "every end of every link had nominated a pair whose local "
    "candidate is a relay candidate, both when the window opened and after the drain "
    "(read from aioice); turn_only_pairs counts link ends by local->remote type",
    "turn_only_frames_lost": "sum over (source, listener) video streams of frames the source "
    "captured and sent in the window minus those of them that arrived decodable at the "
    "listener; frames are named by a digest of their encoded bytes, which the host forwards "
    "unchanged. Excluded: the warm-up (warmup_s after the plan is applied: ICE with TURN "
    "allocations, DTLS, first keyframe) and frames captured after the window; frames of the "
    "window still in flight get drain_s to arrive, and count as lost if they do not",
    "turn_only_audio_frames_lost": "the same for the Opus streams, against the frames the "
    "clock says were captured in the window (50/s); a frame the sender skipped counts as lost",
    "turn_server": "the TURN server's own counters at the end (allocations, relayed "
    "datagrams and bytes each way, drops)",
}


def _turn_only_goals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The issue's: calls through peer TURN only lose no frame over 60 s."""
    ours = [r for r in rows if r["impl"] == "ours"]
    return {
        "T1_turn_only_no_frames_lost_over_60_s": {
            "by_participants": {
                str(r["participants"]): {
                    "frames_lost": r["turn_only_frames_lost"],
                    "relayed": r["turn_only_relayed"],
                    "duration_s": r["turn_only_duration_s"],
                }
                for r in ours
            },
            "met": bool(ours)
            and all(
                r["turn_only_relayed"]
                and r["turn_only_frames_lost"] == 0
                and r["turn_only_duration_s"] >= 60
                for r in ours
            ),
        }
    }


def run(
    participants: Sequence[int],
    *,
    duration: float = 10.0,
    warmup: float = 3.0,
    drain: float = 2.0,
    workers: int = 2,
    impls: Sequence[str] = ("ours", "stock"),
    seed: int = 1,
    progress: bool = True,
    video: bool = False,
    turn_only: bool = False,
    turn_bandwidth: int | None = None,
) -> dict[str, Any]:
    env = _environment()
    rows = []
    for n in participants:
        for impl in impls:
            if progress:
                print(f"bench voice: {impl} SFU, {n} participants", file=sys.stderr, flush=True)
            rows.append(
                run_one(
                    impl,
                    n,
                    duration=duration,
                    warmup=warmup,
                    drain=drain,
                    workers=workers,
                    seed=seed,
                    video=video,
                    turn_only=turn_only,
                    turn_bandwidth=turn_bandwidth,
                )
            )
    env["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return {
        "benchmark": "voice",
        "parameters": {
            "participants": list(participants),
            "duration_s": duration,
            "warmup_s": warmup,
            "drain_s": drain,
            "participant_workers": workers,
            "impls": list(impls),
            "seed": seed,
            "video": video,
            "turn_only": turn_only,
            **({"turn_bandwidth_bytes_per_s": turn_bandwidth} if turn_only else {}),
        },
        "how_counted": {
            "call": "SFU plan: N speaking participants + 1 non-speaking host node in its own "
            "process; the host forwards N(N-1) streams",
            "ours": "host forwards the encoded Opus packets (no decode, no encode)",
            "stock": "host: aiortc decoding receivers + MediaRelay.subscribe per listener "
            "(one Opus encode per listener per frame)",
            "participants": "same for both: send pre-encoded real Opus packets every 20 ms, "
            "count received packets without decoding",
            "frames_per_s": "distinct frames captured in the window that arrived, per second, "
            "per (source, listener) stream; a stream that never arrived counts 0",
            "delay": "arrival at the listener minus capture time, CLOCK_MONOTONIC",
            "host_cpu": "time.process_time of the host process (all threads) over the window",
            **(_VIDEO_COUNTING if video else {}),
            **(_TURN_ONLY_COUNTING if turn_only else {}),
        },
        "results": rows,
        "goals": {
            **_goals(rows),
            **(_video_goals(rows) if video else {}),
            **(_turn_only_goals(rows) if turn_only else {}),
        },
        "environment": env,
    }


def main(
    *,
    participants: Sequence[int] = (4, 8, 12),
    duration: float = 10.0,
    warmup: float = 3.0,
    drain: float = 2.0,
    workers: int = 2,
    impls: Sequence[str] | None = None,
    json_output: bool = True,
    output: str | None = None,
    video: bool = False,
    turn_only: bool = False,
    turn_bandwidth: int | None = None,
) -> int:
    """`impls` default: both SFUs; with `turn_only` ours alone (the issue's figure)."""
    report = run(
        participants,
        duration=duration,
        warmup=warmup,
        drain=drain,
        workers=workers,
        impls=impls or (("ours",) if turn_only else ("ours", "stock")),
        video=video,
        turn_only=turn_only,
        turn_bandwidth=turn_bandwidth,
    )
    text = json.dumps(report, indent=2)
    if output:
        with open(output, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
    if json_output:
        print(text)
    else:
        for row in report["results"]:
            print(
                f"{row['impl']:5} N={row['participants']:2}  "
                f"fps min {row['frames_per_s']['min']}  "
                f"delay med {row['delay_ms']['median_of_stream_medians']} ms  "
                f"host {row['host_cpu']['cores']} cores"
            )
    return 0


if __name__ == "__main__":
    if "--worker" in sys.argv:
        sys.exit(worker_main(sys.argv[1:]))
    parser = argparse.ArgumentParser(prog="python -m railgun_ref.bench.voice")
    parser.add_argument("--participants", default="4,8,12")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--json", action="store_true")
    cli = parser.parse_args()
    sys.exit(
        main(
            participants=[int(x) for x in cli.participants.split(",")],
            duration=cli.duration,
            json_output=cli.json,
        )
    )
