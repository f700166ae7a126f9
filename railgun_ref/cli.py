"""`railgun-ref`: run nodes, the demo, simulations, conformance and benchmarks.

Subcommands import what they need lazily, so `--help` is instant and the base
install (no notebook extras) runs everything but the lab.
"""

import argparse
import errno
import math
import sqlite3
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, NoReturn, TypeAlias


def _ip_host(text: str) -> str:
    """An IPv4 or IPv6 literal to bind (loopback unless ``--allow-public-bind``)."""
    from railgun_ref.drivers.addresses import parse_ip  # noqa: PLC0415

    try:
        parse_ip(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _peer_target(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[V6]:PORT`` or ``udp://HOST:PORT`` (what ``--bootstrap`` takes)."""
    from railgun_ref.drivers.addresses import parse_target  # noqa: PLC0415

    try:
        return parse_target(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _central_url(text: str) -> str:
    """``http://HOST:PORT`` of a central service (what ``railgun-ref central`` prints)."""
    from urllib.parse import urlsplit  # noqa: PLC0415

    from railgun_ref.drivers.addresses import check_destination_host, url_host  # noqa: PLC0415

    expected = f"expected http://HOST:PORT (what railgun-ref central prints), got {text!r}"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise argparse.ArgumentTypeError(expected) from None
    if parts.scheme != "http" or parts.hostname is None or not port or parts.path not in ("", "/"):
        raise argparse.ArgumentTypeError(expected)
    try:
        check_destination_host(parts.hostname)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return f"http://{url_host(parts.hostname)}:{port}"


def _checked_bind(args: argparse.Namespace) -> None:
    """``--host`` off loopback needs ``--allow-public-bind``: a usage error otherwise."""
    from railgun_ref.drivers.addresses import check_bind_host  # noqa: PLC0415

    try:
        check_bind_host(args.host, allow_public=args.allow_public_bind)
    except ValueError as exc:
        raise _usage(str(exc)) from None


def _add_bind_options(parser: argparse.ArgumentParser, *, what: str) -> None:
    parser.add_argument(
        "--host",
        type=_ip_host,
        default="127.0.0.1",
        help=f"IPv4 or IPv6 address {what} binds (default 127.0.0.1; loopback unless "
        "--allow-public-bind)",
    )
    parser.add_argument(
        "--allow-public-bind",
        action="store_true",
        help="allow --host off loopback (another interface, 0.0.0.0 or ::)",
    )


def _wire_target(text: str) -> str:
    """``udp://HOST:PORT`` of a node, ``stun://HOST:PORT`` or ``turn://USER:PASS@HOST:PORT``
    of a STUN or TURN server, ``ws://HOST:PORT`` of a central service, on loopback
    (`conformance run --target`)."""
    from railgun_ref.conformance.runner_central import parse_central_target  # noqa: PLC0415
    from railgun_ref.conformance.runner_stun import parse_stun_target  # noqa: PLC0415
    from railgun_ref.conformance.wire_runner import TargetError, parse_target  # noqa: PLC0415

    try:
        if text.startswith(("stun://", "turn://")):
            parse_stun_target(text)
        elif text.startswith("ws://"):
            parse_central_target(text)
        else:
            parse_target(text)
    except TargetError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _number(text: str, kind: type[int] | type[float]) -> float:
    try:
        value = kind(text)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _port(text: str) -> int:
    """A UDP/TCP port; 0 asks the OS for any free one."""
    port = int(_number(text, int))
    if not 0 <= port <= 0xFFFF:
        raise argparse.ArgumentTypeError(f"a port is 0..65535 (0: any free port), got {port}")
    return port


def _int_at_least(low: int) -> Callable[[str], int]:
    def check(text: str) -> int:
        value = int(_number(text, int))
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    check.__name__ = f"integer >= {low}"  # argparse names the type in some messages
    return check


def _float_in(low: float, high: float | None, *, open_low: bool = False) -> Callable[[str], float]:
    def check(text: str) -> float:
        value = _number(text, float)
        too_low = value <= low if open_low else value < low
        if too_low or (high is not None and value > high):
            bound = f"> {low:g}" if open_low else f">= {low:g}"
            span = f"in [{low:g}, {high:g}]" if high is not None else bound
            raise argparse.ArgumentTypeError(f"must be {span}, got {text}")
        return value

    check.__name__ = "number"
    return check


_positive_int = _int_at_least(1)
_non_negative_int = _int_at_least(0)
_positive_float = _float_in(0.0, None, open_low=True)
_non_negative_float = _float_in(0.0, None)
_probability = _float_in(0.0, 1.0)


def _participant_counts(text: str) -> list[int]:
    """Comma-separated call sizes (``4,8,12``); a call has at least 2 participants."""
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        counts = []
    if not counts or min(counts) < 2:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, each at least 2, got {text!r}"
        )
    return counts


def _directory(text: str) -> str:
    """A directory that exists or can be created (not an existing file)."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} exists and is not a directory")
    return text


def _new_file(text: str) -> str:
    """A file to write: its directory must exist, and it must not be a directory."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a directory, not a file")
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"directory {path.parent} does not exist")
    return text


def _file(text: str) -> str:
    """A file that may not exist yet (created on first use), but not a directory."""
    if Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a directory, not a file")
    return text


def _cmd_node(args: argparse.Namespace) -> int:
    from railgun_ref.drivers.node_main import run_node  # noqa: PLC0415

    _checked_bind(args)
    return run_node(
        allow_public=args.allow_public_bind,
        host=args.host,
        port=args.port,
        identity_path=args.identity,
        bootstrap=args.bootstrap,
        data_dir=args.data_dir,
        verbosity=args.verbose,
        lookups=tuple(args.lookup),
        # A --lookup run is a probe (the conformance control surface, REQ-1.1): it sends
        # the join and the lookups it was asked for and nothing else.
        advertise=args.advertise and not args.lookup,
        admission_rate=args.admission_rate,
    )


def _cmd_central(args: argparse.Namespace) -> int:
    from railgun_ref.drivers.central import run_central  # noqa: PLC0415

    _checked_bind(args)
    return run_central(
        allow_public=args.allow_public_bind,
        host=args.host,
        port=args.port,
        db_path=args.db,
        sweep_interval=args.sweep_interval,
        origin=args.origin,
    )


def _turn_user(text: str) -> tuple[str, str]:
    name, sep, password = text.partition(":")
    if not sep or not name or not password:
        raise argparse.ArgumentTypeError(f"expected NAME:PASSWORD, got {text!r}")
    return name, password


def _cmd_turn(args: argparse.Namespace) -> int:
    from railgun_ref.drivers.turn_server import run_turn  # noqa: PLC0415

    _checked_bind(args)
    return run_turn(
        host=args.host,
        port=args.port,
        realm=args.realm,
        users=dict(args.user),
        allow_public=args.allow_public_bind,
    )


def _cmd_demo(args: argparse.Namespace) -> int:
    from railgun_ref.apps.demo import run_demo  # noqa: PLC0415

    return run_demo(
        peers=args.peers, report_dir=args.report, scenarios=args.scenarios, quick=args.quick
    )


def _cmd_chat(args: argparse.Namespace) -> int:
    from railgun_ref.apps.chat import ChatOptions, run_chat  # noqa: PLC0415

    return run_chat(
        ChatOptions(
            data_dir=Path(args.data_dir),
            central_url=args.central,
            bootstrap=tuple(args.bootstrap),
            port=args.port,
            profile=args.profile,
            mode=args.mode,
            linger=args.linger,
            verbose=bool(args.verbose),
        )
    )


def _scenario_list(text: str) -> list[str]:
    from railgun_ref.apps.demo import SCENARIOS  # noqa: PLC0415

    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in SCENARIOS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated list of {', '.join(SCENARIOS)}, got {text!r}"
        )
    return names


def _cmd_sim(args: argparse.Namespace) -> int:
    from railgun_ref.apps.sim_demo import run_ping_scenario  # noqa: PLC0415

    return run_ping_scenario(
        nodes=args.nodes,
        seed=args.seed,
        loss=args.loss,
        latency_ms=args.latency_ms,
        duration=args.duration,
        json_output=args.json,
        crypto=args.crypto,
    )


def _cmd_vectors(args: argparse.Namespace) -> int:
    from railgun_ref.conformance.generate import main as generate_main  # noqa: PLC0415

    return generate_main(check=args.check)


def _cmd_conformance_run(args: argparse.Namespace) -> int:
    from railgun_ref.conformance.wire_runner import main as runner_main  # noqa: PLC0415

    if args.target.startswith(("stun://", "turn://")):
        from railgun_ref.conformance.runner_stun import main as stun_main  # noqa: PLC0415

        return stun_main(args.target, json_output=args.json)
    if args.target.startswith("ws://"):
        from railgun_ref.conformance.runner_central import main as central_main  # noqa: PLC0415

        return central_main(args.target, json_output=args.json)

    return runner_main(args.target, json_output=args.json)


def _cmd_bench_wire(args: argparse.Namespace) -> int:
    from railgun_ref.bench.wire import main as bench_main  # noqa: PLC0415

    return bench_main(json_output=args.json, payload_size=args.payload_size)


def _cmd_bench_privacy(args: argparse.Namespace) -> int:
    from railgun_ref.bench.privacy import main as bench_main  # noqa: PLC0415

    return bench_main(
        json_output=args.json,
        users=args.users,
        hours=args.hours,
        seed=args.seed,
        output=args.output,
    )


def _cmd_bench_dht(args: argparse.Namespace) -> int:
    from railgun_ref.bench.dht import main as bench_main  # noqa: PLC0415

    return bench_main(
        json_output=args.json,
        nodes=args.nodes,
        keys=args.keys,
        churn=args.churn,
        rtt_ms=args.rtt_ms,
        seed=args.seed,
        impl=args.impl,
        driver=args.driver,
        timeout=args.timeout,
        join_concurrency=args.join_concurrency,
        op_concurrency=args.op_concurrency,
        output=args.output,
        quiet=args.quiet,
        room_members=args.room_members,
        crypto=args.crypto,
    )


def _cmd_bench_voice(args: argparse.Namespace) -> int:
    from railgun_ref.bench.voice import main as voice_main  # noqa: PLC0415

    return voice_main(
        participants=args.participants,
        duration=args.duration,
        workers=args.workers,
        json_output=args.json,
        output=args.output,
        video=args.video,
        warmup=args.warmup,
        turn_only=args.turn_only,
        turn_bandwidth=args.turn_bandwidth,
    )


def _cmd_bench_storeforward(args: argparse.Namespace) -> int:
    from railgun_ref.bench.storeforward import main as storeforward_main  # noqa: PLC0415

    return storeforward_main(
        json_output=args.json,
        tiny=args.tiny,
        nodes=args.nodes,
        messages=args.messages,
        days=args.days,
        seed=args.seed,
        output=args.output,
    )


def _cmd_bench_detectors(args: argparse.Namespace) -> int:
    from railgun_ref.bench.detectors import main as detectors_main  # noqa: PLC0415

    return detectors_main(
        json_output=args.json,
        seed=args.seed,
        client_hours=args.client_hours,
        phi_threshold=args.phi,
    )


def _cmd_bench_bootstrap(args: argparse.Namespace) -> int:
    from railgun_ref.bench.bootstrap import main as bootstrap_main  # noqa: PLC0415

    return bootstrap_main(
        json_output=args.json,
        runs=args.runs,
        rtt=args.rtt,
        seed=args.seed,
        dead_ahead=args.dead_ahead,
        driver=args.driver,
    )


def _cmd_bench_nat(args: argparse.Namespace) -> int:
    from railgun_ref.bench.nat import main as nat_main  # noqa: PLC0415

    return nat_main(
        json_output=args.json, driver=args.driver, attempts=args.attempts, seed=args.seed
    )


def _cmd_bench_failover(args: argparse.Namespace) -> int:
    from railgun_ref.bench.failover import main as failover_main  # noqa: PLC0415

    return failover_main(
        json_output=args.json,
        seed=args.seed,
        clients=args.clients,
        scenarios=args.scenario,
        output=args.output,
        driver=args.driver,
    )


def _cmd_manifest_keygen(args: argparse.Namespace) -> int:
    from railgun_ref.drivers import manifest_tool  # noqa: PLC0415

    identity = manifest_tool.keygen(Path(args.key_file))
    print(identity.public_key.hex())
    return 0


def _root_spec(args: argparse.Namespace) -> Any:
    from railgun_ref.drivers import manifest_tool as tool  # noqa: PLC0415

    return tool.RootSpec(
        root_keys=[tool.public_key(k) for k in args.root_key],
        root_threshold=args.root_threshold,
        manifest_keys=[tool.public_key(k) for k in args.manifest_key],
        manifest_threshold=args.manifest_threshold,
        expires_in_days=args.expires_in_days,
    )


def _cmd_manifest_create(args: argparse.Namespace) -> int:
    from railgun_ref.drivers import manifest_tool as tool  # noqa: PLC0415

    if args.kind == "root":
        if not args.root_key or not args.manifest_key:
            raise _usage("create root needs --root-key and --manifest-key")
        data = tool.create_root(_root_spec(args), version=args.version)
    else:
        if args.root is None:
            raise _usage("create manifest needs --root (the root it is signed under)")
        data = tool.create_manifest(
            tool.read_document(Path(args.root)),
            version=args.version,
            expires_in_days=args.expires_in_days,
            nodes=[tool.parse_node(n) for n in args.node],
            sources=[tool.parse_source(s) for s in args.source],
        )
    tool.write_document(Path(args.out), data)
    return 0


def _cmd_manifest_rotate(args: argparse.Namespace) -> int:
    from railgun_ref.drivers import manifest_tool as tool  # noqa: PLC0415

    data = tool.rotate(tool.read_document(Path(args.root)), _root_spec(args))
    tool.write_document(Path(args.out), data)
    return 0


def _cmd_manifest_sign(args: argparse.Namespace) -> int:
    from railgun_ref.drivers import manifest_tool as tool  # noqa: PLC0415

    path = Path(args.document)
    keys = [tool.load_key(Path(k)) for k in args.key]
    tool.write_document(path, tool.sign(tool.read_document(path), keys))
    return 0


def _cmd_manifest_verify(args: argparse.Namespace) -> int:
    import time  # noqa: PLC0415

    from railgun_ref.bootstrap.manifest import ManifestError  # noqa: PLC0415
    from railgun_ref.drivers import manifest_tool as tool  # noqa: PLC0415

    try:
        line = tool.verify(
            tool.read_document(Path(args.document)),
            tool.read_document(Path(args.root)),
            [tool.read_document(Path(c)) for c in args.chain],
            last_version=args.last_version,
            now=time.time() if args.now is None else args.now,
        )
    except ManifestError as exc:
        sys.stderr.write(f"railgun-ref: rejected: {exc.message}\n")
        return 1
    print(line)
    return 0


def _usage(message: str) -> Exception:
    from railgun_ref.drivers.console import UsageError  # noqa: PLC0415

    return UsageError(message)


class _Parser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line: ``PROG: error: MESSAGE (see --help)``.

    argparse prints the usage block first; a user who typed a wrong value needs the
    one line that says which, and ``--help`` gives the rest. Subparsers inherit the class.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see --help)\n")


#: What `add_subparsers` returns (argparse does not name the type publicly).
_Subparsers: TypeAlias = "argparse._SubParsersAction[_Parser]"


class _VersionAction(argparse.Action):
    """``--version``: the version is looked up only when asked (module docstring: fast start)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        kwargs.setdefault("help", "print the version and exit")
        super().__init__(option_strings, dest=argparse.SUPPRESS, nargs=0, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        from railgun_ref import __version__  # noqa: PLC0415

        print(f"{parser.prog} {__version__}")
        parser.exit()


def _node_key(text: str) -> bytes:
    """A 256-bit DHT key or node id in 64 hex digits (`node --lookup`)."""
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise argparse.ArgumentTypeError(f"expected 64 hex digits, got {text!r}")
    return key


def _add_node(sub: _Subparsers) -> None:
    """`railgun-ref node`."""
    node = sub.add_parser("node", help="run one node on real UDP + TCP sockets until interrupted")
    _add_bind_options(node, what="the node")
    node.add_argument("--port", type=_port, default=0, help="UDP and TCP port (0: any free port)")
    node.add_argument(
        "--identity",
        type=_file,
        default=None,
        help="identity file (created 0600 if missing); default: fresh",
    )
    node.add_argument(
        "--data-dir",
        type=_directory,
        default=None,
        help="keep identity, held records and cached peers here (SQLite); survives restarts",
    )
    node.add_argument(
        "--bootstrap",
        action="append",
        default=[],
        type=_peer_target,
        metavar="HOST:PORT",
        help="join the DHT through this node, HOST:PORT or udp://HOST:PORT (repeatable)",
    )
    node.add_argument(
        "--lookup",
        action="append",
        default=[],
        type=_node_key,
        metavar="KEY",
        help="after joining, look up this 64-hex-digit key and print the closest (repeatable)",
    )
    node.add_argument(
        "--no-advertise",
        dest="advertise",
        action="store_false",
        help="do not advertise this node's capabilities in the DHT (CAP-3.7; default: advertise,"
        " except in a --lookup probe)",
    )
    node.add_argument(
        "--admission-rate",
        type=_positive_float,
        default=None,
        metavar="PER_SECOND",
        help="serve at most this many STOREs and RELAY requests per second, asking for proof"
        " of work beyond (SF-9.3, RLY-9.3; default: serve all)",
    )
    node.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log joins, lookups and traffic on stderr (-vv: every datagram)",
    )
    node.set_defaults(func=_cmd_node)


def _add_central(sub: _Subparsers) -> None:
    """`railgun-ref central`."""
    central = sub.add_parser(
        "central",
        help="the central service (the `aws` path): HTTP + WebSocket relay with a mailbox",
    )
    _add_bind_options(central, what="the service")
    central.add_argument("--port", type=_port, default=0, help="TCP port (0: any free port)")
    central.add_argument(
        "--db",
        type=_file,
        default=None,
        metavar="PATH",
        help="SQLite mailbox (survives restarts); default: in memory",
    )
    central.add_argument(
        "--sweep-interval",
        type=_positive_float,
        default=60.0,
        metavar="SECONDS",
        help="how often expired mailbox entries are deleted (default 60)",
    )
    central.add_argument(
        "--origin",
        default=None,
        help="origin clients sign at AUTH (default: ws://HOST:PORT of the listening socket)",
    )
    central.set_defaults(func=_cmd_central)


def _add_turn(sub: _Subparsers) -> None:
    """`railgun-ref turn`."""
    turn = sub.add_parser(
        "turn", help="a peer-hosted TURN server (RFC 8656 subset, UDP) until interrupted"
    )
    _add_bind_options(turn, what="the server (and its relayed sockets)")
    turn.add_argument("--port", type=_port, default=3478, help="UDP port (0: any free port)")
    turn.add_argument("--realm", default="railgun", help="long-term credential realm")
    turn.add_argument(
        "--user",
        action="append",
        required=True,
        type=_turn_user,
        metavar="NAME:PASSWORD",
        help="a TURN user (repeatable)",
    )
    turn.set_defaults(func=_cmd_turn)


def _add_demo(sub: _Subparsers) -> None:
    """`railgun-ref demo`."""
    demo = sub.add_parser(
        "demo",
        help="the main job: a messenger surviving DNS blocking, IP blocking and a takedown",
    )
    demo.add_argument(
        "--peers",
        type=_int_at_least(2),
        default=None,
        help="chatting clients, one process each, at least 2 (default 12; 4 with --quick)",
    )
    demo.add_argument(
        "--report",
        type=_directory,
        default="railgun-demo-report",
        metavar="DIR",
        help="write events.json (and report.html with the lab extra) here",
    )
    demo.add_argument(
        "--scenarios",
        type=_scenario_list,
        default=None,
        metavar="LIST",
        help="comma-separated, run in order (default dns,ip,takedown; takedown with --quick)",
    )
    demo.add_argument(
        "--quick", action="store_true", help="4 peers, the takedown only, short holds (tests)"
    )
    demo.set_defaults(func=_cmd_demo)


_CHAT_EPILOG = """\
Type a line to send it to the current room; /help lists the commands:
/create NAME, /invite KEY [NICK], /accept INVITATION|FILE [NAME], /rooms,
/room NAME, /members, /nick WHO NAME, /remove WHO, /leave, /status, /whoami,
/quit. Messages arrive as "[ROOM] SENDER via central|p2p: TEXT", status
lines start with "* ", errors with "! ". Works on a pipe too; end of input
waits up to --linger seconds for queued messages, then exits."""


def _add_chat(sub: _Subparsers) -> None:
    """`railgun-ref chat`."""
    chat = sub.add_parser(
        "chat",
        help="chat in closed rooms from the terminal, over the central service and P2P",
        description="One member of the chat: its identity, rooms and outbox live in\n"
        "--data-dir, so the same directory resumes the same member.",
        epilog=_CHAT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    chat.add_argument(
        "--data-dir",
        required=True,
        type=_directory,
        metavar="DIR",
        help="identity (0600), rooms, outbox and nicknames (created 0700); reuse it to resume",
    )
    chat.add_argument(
        "--central",
        type=_central_url,
        default=None,
        metavar="URL",
        help="the central service, http://127.0.0.1:PORT; without it: peer to peer only",
    )
    chat.add_argument(
        "--bootstrap",
        action="append",
        default=[],
        type=_peer_target,
        metavar="HOST:PORT",
        help="join the P2P network through this node: another chat's p2p address (repeatable)",
    )
    chat.add_argument(
        "--port", type=_port, default=0, help="UDP and TCP port of this member's node (0: any)"
    )
    chat.add_argument(
        "--profile",
        choices=("fast", "seed"),
        default="fast",
        help="fast: check the central service every second (failover in ~3 s, the default);"
        " seed: every 30 s (failover after ~90 s)",
    )
    chat.add_argument(
        "--mode",
        choices=("aws", "hybrid", "p2p-only"),
        default=None,
        help="aws: central first, P2P on failure (default); hybrid: both at once",
    )
    chat.add_argument(
        "--linger",
        type=_non_negative_float,
        default=10.0,
        metavar="SECONDS",
        help="at end of input, wait this long for queued messages to go out (default 10)",
    )
    chat.add_argument(
        "-v", "--verbose", action="count", default=0, help="also acks, queueing and failures"
    )
    chat.set_defaults(func=_cmd_chat)


def _add_sim(sub: _Subparsers) -> None:
    """`railgun-ref sim`."""
    sim = sub.add_parser("sim", help="the same nodes in the discrete-event simulator")
    sim.add_argument("--nodes", type=_int_at_least(2), default=50, help="at least 2 (default 50)")
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument(
        "--loss", type=_probability, default=0.01, help="datagram loss probability, 0..1"
    )
    sim.add_argument(
        "--latency-ms", type=_non_negative_float, default=25.0, help="one-way link latency"
    )
    sim.add_argument(
        "--duration", type=_positive_float, default=60.0, help="virtual seconds to run"
    )
    sim.add_argument(
        "--crypto",
        choices=("real", "fast"),
        default="real",
        help="fast replaces Ed25519 with a keyed hash, for scale (default real)",
    )
    sim.add_argument("--json", action="store_true", help="print the summary as JSON")
    sim.set_defaults(func=_cmd_sim)


def _add_conformance(sub: _Subparsers) -> None:
    """`railgun-ref conformance vectors|run`."""
    conf = sub.add_parser("conformance", help="test vectors and the wire runner")
    conf_sub = conf.add_subparsers(dest="conformance_command", required=True, metavar="ACTION")
    vectors = conf_sub.add_parser("vectors", help="regenerate the JSON vectors (or --check them)")
    vectors.add_argument(
        "--check", action="store_true", help="fail if committed vectors differ from generated"
    )
    vectors.set_defaults(func=_cmd_vectors)
    run = conf_sub.add_parser("run", help="check a running node over the wire")
    run.add_argument(
        "--target",
        required=True,
        type=_wire_target,
        help="udp://HOST:PORT of a node, stun://HOST:PORT, turn://USER:PASS@HOST:PORT or"
        " ws://HOST:PORT of a central service (127.0.0.0/8)",
    )
    run.add_argument("--json", action="store_true", help="print the report as JSON")
    run.set_defaults(func=_cmd_conformance_run)
    _add_conformance_requester(conf_sub)


def _add_conformance_requester(conf_sub: _Subparsers) -> None:
    """`railgun-ref conformance requester --command "..."` (REQ-1.1, REQ-1.2)."""
    req = conf_sub.add_parser("requester", help="play a network and check a node's requests")
    req.add_argument(
        "--command",
        default="railgun-ref node --bootstrap {bootstrap} --lookup {key}",
        help="how to start the target; {bootstrap} and {key} are substituted (REQ-1.1)",
    )
    req.add_argument("--timeout", type=float, default=30.0, help="seconds for the whole run")
    req.add_argument("--json", action="store_true", help="print the report as JSON")
    req.set_defaults(func=_cmd_conformance_requester)


def _cmd_conformance_requester(args: argparse.Namespace) -> int:
    import shlex  # noqa: PLC0415

    import anyio  # noqa: PLC0415
    from rich.console import Console  # noqa: PLC0415

    from railgun_ref.conformance import requester_runner  # noqa: PLC0415

    command = shlex.split(args.command)
    report = anyio.run(lambda: requester_runner.run(command, timeout=args.timeout))
    if args.json:
        print(report.to_json())
    else:
        Console().print(report.to_table())
    return 0 if report.passed else 1


def _add_root_keys(parser: argparse.ArgumentParser, *, required: bool) -> None:
    keys = "64 hex digits or a key file"
    parser.add_argument("--root-key", action="append", default=[], required=required, help=keys)
    parser.add_argument("--root-threshold", type=_positive_int, default=1)
    parser.add_argument("--manifest-key", action="append", default=[], required=required, help=keys)
    parser.add_argument("--manifest-threshold", type=_positive_int, default=1)


def _cmd_identity_rotate(args: argparse.Namespace) -> int:
    import time  # noqa: PLC0415

    from railgun_ref.drivers import keystore  # noqa: PLC0415

    path = Path(args.identity)
    if args.handover_days > 30:
        raise _usage("--handover-days is at most 30 (ROT-1.3)")
    old = keystore.load_keyring(path).current
    now = time.time()
    new, handover = keystore.rotate_identity(
        path, now=now, handover_seconds=args.handover_days * 86_400.0
    )
    removed = keystore.prune_retired(path, now=now)
    print(f"generation {handover.generation}")
    print(f"old node id {old.node_id.hex()}")
    print(f"new node id {new.node_id.hex()}")
    print(f"handover until {handover.expires_ms // 1000} (unix s); pruned {len(removed)} file(s)")
    return 0


def _cmd_identity_show(args: argparse.Namespace) -> int:
    from railgun_ref.drivers import keystore  # noqa: PLC0415

    ring = keystore.load_keyring(Path(args.identity))
    for generation in ring.generations:
        handover = generation.handover
        until = "-" if handover is None else str(handover.expires_ms // 1000)
        print(f"{generation.generation} {generation.identity.node_id.hex()} {until}")
    return 0


def _add_identity(sub: _Subparsers) -> None:
    """`railgun-ref identity show|rotate` (ID-3.3, ROT-5)."""
    ident = sub.add_parser("identity", help="a node's identity file: show it, rotate its key")
    ident_sub = ident.add_subparsers(dest="identity_command", required=True, metavar="ACTION")
    show = ident_sub.add_parser("show", help="every generation on disk: number, node id, until")
    show.add_argument("--identity", required=True, help="the identity file a node runs with")
    show.set_defaults(func=_cmd_identity_show)
    rotate = ident_sub.add_parser(
        "rotate", help="a new signing key with a handover signed by the old and the new key"
    )
    rotate.add_argument("--identity", required=True, help="the identity file a node runs with")
    rotate.add_argument(
        "--handover-days",
        type=_positive_float,
        default=7.0,
        help="how long the old id forwards to the new one (days, at most 30; default 7)",
    )
    rotate.set_defaults(func=_cmd_identity_rotate)


def _add_manifest(sub: _Subparsers) -> None:
    """`railgun-ref manifest keygen|create|rotate|sign|verify` (BOOT-1..3)."""
    man = sub.add_parser("manifest", help="signed bootstrap manifests: keys, roots, rotation")
    man_sub = man.add_subparsers(dest="manifest_command", required=True, metavar="ACTION")
    keygen = man_sub.add_parser("keygen", help="a new signing key file (prints its public key)")
    keygen.add_argument("key_file", type=_new_file)
    keygen.set_defaults(func=_cmd_manifest_keygen)
    create = man_sub.add_parser("create", help="an unsigned root or manifest document")
    create.add_argument("kind", choices=("root", "manifest"))
    create.add_argument("--out", required=True, type=_new_file)
    create.add_argument("--version", type=_positive_int, default=1)
    create.add_argument("--expires-in-days", type=_positive_float, default=30.0)
    _add_root_keys(create, required=False)
    create.add_argument("--root", type=_file, help="manifest: the root it is signed under")
    create.add_argument("--node", action="append", default=[], help="KEY=udp:HOST:PORT[,...]")
    create.add_argument("--source", action="append", default=[], help="dns:NAME or ipfs:CID")
    create.set_defaults(func=_cmd_manifest_create)
    rotate = man_sub.add_parser("rotate", help="an unsigned root N+1 (sign with old and new keys)")
    rotate.add_argument("--root", required=True, type=_file, help="root N")
    rotate.add_argument("--out", required=True, type=_new_file)
    rotate.add_argument("--expires-in-days", type=_positive_float, default=365.0)
    _add_root_keys(rotate, required=True)
    rotate.set_defaults(func=_cmd_manifest_rotate)
    sign = man_sub.add_parser("sign", help="add signatures to a document, in place")
    sign.add_argument("document", type=_file)
    sign.add_argument("--key", action="append", required=True, type=_file, help="a key file")
    sign.set_defaults(func=_cmd_manifest_sign)
    verify = man_sub.add_parser("verify", help="check a root or manifest as a client would")
    verify.add_argument("document", type=_file)
    verify.add_argument("--root", required=True, type=_file, help="the trusted (shipped) root")
    verify.add_argument("--chain", action="append", default=[], type=_file, help="root N+1...")
    verify.add_argument("--last-version", type=_non_negative_int, default=0)
    verify.add_argument("--now", type=_non_negative_float, help="Unix seconds (default: now)")
    verify.set_defaults(func=_cmd_manifest_verify)


def _cmd_bench_flood(args: argparse.Namespace) -> int:
    from railgun_ref.bench.flood import main as flood_main  # noqa: PLC0415

    return flood_main(
        json_output=args.json,
        flood=args.flood,
        rate=args.rate,
        contacts=args.contacts,
        output=args.output,
    )


def _add_bench_flood(bench_sub: _Subparsers) -> None:
    """`railgun-ref bench flood`."""
    fl = bench_sub.add_parser(
        "flood", help="a PING flood at one real node on 127.0.0.1: its known contacts answered?"
    )
    fl.add_argument("--json", action="store_true", help="print JSON")
    fl.add_argument("--flood", type=_positive_int, default=10_000, help="PINGs in the flood")
    fl.add_argument("--rate", type=_positive_float, default=3500.0, help="flood PINGs per second")
    fl.add_argument("--contacts", type=_positive_int, default=20, help="known contacts")
    fl.add_argument("--output", default=None, help="also write the JSON to this file")
    fl.set_defaults(func=_cmd_bench_flood)


def _cmd_bench_attacks(args: argparse.Namespace) -> int:
    from railgun_ref.bench.attacks import Params  # noqa: PLC0415
    from railgun_ref.bench.attacks import main as attacks_main  # noqa: PLC0415

    params = Params(
        nodes=args.nodes,
        keys=args.keys,
        sybils=args.sybils,
        pingers=args.pingers,
        seed=args.seed,
        crypto=args.crypto,
    )
    return attacks_main(json_output=args.json, params=params, output=args.output)


def _add_bench_attacks(bench_sub: _Subparsers) -> None:
    """`railgun-ref bench attacks`."""
    at = bench_sub.add_parser(
        "attacks",
        help="lying nodes, a 2-IP eclipse and a 10x flood in the simulator, with/without defences",
    )
    at.add_argument("--json", action="store_true", help="print JSON")
    at.add_argument("--nodes", type=_positive_int, default=1000, help="simulated nodes")
    at.add_argument("--keys", type=_positive_int, default=100, help="records stored and got")
    at.add_argument("--sybils", type=_positive_int, default=300, help="eclipse identities")
    at.add_argument("--pingers", type=_positive_int, default=200, help="honest PINGs per second")
    at.add_argument("--seed", type=_non_negative_int, default=1)
    at.add_argument("--output", default=None, help="also write the JSON to this file")
    at.add_argument(
        "--crypto",
        choices=("real", "fast"),
        default="real",
        help="fast replaces Ed25519 with a keyed hash, for 1,000+ nodes (default real)",
    )
    at.set_defaults(func=_cmd_bench_attacks)


def _add_bench_wire(bench_sub: _Subparsers) -> None:
    """`railgun-ref bench wire`."""
    wire = bench_sub.add_parser("wire", help="envelope encode/decode+verify vs raw PyNaCl")
    wire.add_argument("--json", action="store_true", help="print JSON")
    wire.add_argument(
        "--payload-size", type=_non_negative_int, default=64, help="PING payload bytes"
    )
    wire.set_defaults(func=_cmd_bench_wire)


def _add_bench_privacy(bench_sub: _Subparsers) -> None:
    """`railgun-ref bench privacy`."""
    privacy = bench_sub.add_parser(
        "privacy", help="can a relay tell active from idle users? slot cover vs add-on cover"
    )
    privacy.add_argument("--json", action="store_true", help="print JSON")
    privacy.add_argument("--users", type=_positive_int, default=120, help="(default 120)")
    privacy.add_argument("--hours", type=_positive_int, default=8, help="observed (default 8)")
    privacy.add_argument("--seed", type=int, default=1)
    privacy.add_argument("--output", default=None, help="also write the JSON to this file")
    privacy.set_defaults(func=_cmd_bench_privacy)


def _add_bench_detectors(bench_sub: _Subparsers) -> None:
    """`railgun-ref bench detectors`."""
    det = bench_sub.add_parser(
        "detectors", help="baseline failover rule vs phi-accrual: detection time, false failovers"
    )
    det.add_argument("--json", action="store_true", help="print JSON")
    det.add_argument("--seed", type=int, default=1)
    det.add_argument("--client-hours", type=_positive_float, default=1000.0)
    det.add_argument("--phi", type=_positive_float, default=8.0, help="phi-accrual threshold")
    det.set_defaults(func=_cmd_bench_detectors)


def _add_bench_bootstrap(bench_sub: _Subparsers) -> None:
    """`railgun-ref bench bootstrap`."""
    boot = bench_sub.add_parser(
        "bootstrap", help="the staggered bootstrap race vs the sequential order, 5 of 6 blocked"
    )
    boot.add_argument("--json", action="store_true", help="print JSON")
    boot.add_argument(
        "--runs",
        type=_positive_int,
        default=None,
        help="runs per combination (default 30; 5 with --driver localhost)",
    )
    boot.add_argument(
        "--driver",
        choices=("sim", "localhost"),
        default="sim",
        help="sim: the race core in virtual time, 3 candidates per method; localhost: the "
        "race driver on real sockets against lab.bootstrap's nodes and services",
    )
    boot.add_argument(
        "--rtt", type=_positive_float, default=0.15, help="seconds added per exchange"
    )
    boot.add_argument("--seed", type=int, default=1)
    boot.add_argument(
        "--dead-ahead",
        type=int,
        choices=range(3),
        default=1,
        help="dead peers ahead of the survivor's working one (0..2)",
    )
    boot.set_defaults(func=_cmd_bench_bootstrap)


def _add_bench_failover(bench_sub: _Subparsers) -> None:
    """`railgun-ref bench failover`."""
    fo = bench_sub.add_parser(
        "failover",
        help="the takedown scenarios: detection, P2P delivery, loss, duplicates, failback",
    )
    fo.add_argument(
        "--driver",
        choices=("sim", "localhost", "netlab"),
        default="sim",
        help="sim: virtual time, 6 scenarios x 2 detectors; localhost: real central "
        "process, proxy, DNS and clients (fast profile), dns_block/ip_block/takedown; "
        "netlab (root): the same clients behind kernel NATs in network namespaces, faults "
        "as nftables rules, dns_block/ip_block/ip_reject/takedown/partition",
    )
    fo.add_argument("--seed", type=int, default=None, help="sim only (default 1)")
    fo.add_argument(
        "--clients",
        type=_int_at_least(2),
        default=None,
        help="clients in the room, at least 2 (sim 12, localhost 8, netlab 6)",
    )
    fo.add_argument(
        "--scenario",
        action="append",
        default=None,
        help="run only this scenario (repeatable or comma-separated; default: all)",
    )
    fo.add_argument(
        "--output", type=_new_file, default=None, metavar="PATH", help="also write the JSON here"
    )
    fo.add_argument("--json", action="store_true", help="print JSON")
    fo.set_defaults(func=_cmd_bench_failover)


def _add_bench_dht(bench_sub: _Subparsers) -> None:
    """`railgun-ref bench dht`."""
    dht = bench_sub.add_parser(
        "dht", help="our DHT vs the PyPI kademlia package: gets, latency, RPCs, setup, RSS"
    )
    dht.add_argument("--nodes", type=_int_at_least(2), default=100, help="nodes (default 100)")
    dht.add_argument(
        "--keys", type=_positive_int, default=50, help="keys stored, then got (default 50)"
    )
    dht.add_argument(
        "--churn",
        type=_float_in(0.0, 1.0),
        default=0.0,
        help="fraction of nodes stopped before the gets, 0..1",
    )
    dht.add_argument(
        "--rtt-ms",
        type=_non_negative_float,
        default=None,
        help="emulated round-trip time (default: 0 on UDP, 50 in the simulator)",
    )
    dht.add_argument("--seed", type=int, default=1)
    dht.add_argument(
        "--impl",
        choices=("ours", "kademlia", "both"),
        default=None,
        help="default: both when kademlia is installed, else ours",
    )
    dht.add_argument(
        "--driver", choices=("udp", "sim"), default="udp", help="sim: ours in virtual time"
    )
    dht.add_argument(
        "--timeout", type=_positive_float, default=5.0, help="RPC timeout, both (default 5 s)"
    )
    dht.add_argument("--join-concurrency", type=_positive_int, default=8, help="joins in flight")
    dht.add_argument(
        "--op-concurrency", type=_positive_int, default=4, help="stores/gets in flight"
    )
    dht.add_argument(
        "--output", type=_new_file, default=None, metavar="PATH", help="also write the JSON here"
    )
    dht.add_argument(
        "--room-members",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="simulator: N members announce one room, non-holders look them up (default 0: off)",
    )
    dht.add_argument(
        "--crypto",
        choices=("real", "fast"),
        default="real",
        help="simulator: fast replaces Ed25519 with a keyed hash, for scale (default real)",
    )
    dht.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    dht.add_argument("--json", action="store_true", help="print JSON")
    dht.set_defaults(func=_cmd_bench_dht)


def _add_bench_voice(bench_sub: _Subparsers) -> None:
    """`railgun-ref bench voice`."""
    voice = bench_sub.add_parser(
        "voice", help="WebRTC voice SFU: our encoded-packet forwarder vs aiortc MediaRelay"
    )
    voice.add_argument(
        "--participants",
        type=_participant_counts,
        default=[4, 8, 12],
        help="comma-separated call sizes, each >= 2 (default 4,8,12)",
    )
    voice.add_argument(
        "--duration", type=_positive_float, default=10.0, help="measured seconds per call"
    )
    voice.add_argument("--workers", type=_positive_int, default=2, help="participant processes")
    voice.add_argument(
        "--video", action="store_true", help="each participant also sends 320x240 VP8 (VOICE-7)"
    )
    voice.add_argument(
        "--turn-only",
        action="store_true",
        help="all media through a participant's peer TURN server, relayed candidates only; "
        "reports frames lost (ours only)",
    )
    voice.add_argument(
        "--turn-bandwidth",
        type=_positive_int,
        default=None,
        metavar="BYTES_PER_S",
        help="relay bandwidth the TURN server shares (default: what a client's TURN shares)",
    )
    voice.add_argument(
        "--warmup", type=_positive_float, default=3.0, help="seconds before the window opens"
    )
    voice.add_argument(
        "--output", type=_new_file, default=None, metavar="PATH", help="also write the JSON here"
    )
    voice.add_argument("--json", action="store_true", help="print JSON")
    voice.set_defaults(func=_cmd_bench_voice)


def _add_bench_storeforward(bench_sub: _Subparsers) -> None:
    """`railgun-ref bench storeforward`."""
    sf = bench_sub.add_parser(
        "storeforward",
        help="store-and-forward in the simulator: delivery with and without repair, deletions",
    )
    sf.add_argument("--nodes", type=int, default=None, help="nodes (default 1000)")
    sf.add_argument("--messages", type=int, default=None, help="messages (default 2000)")
    sf.add_argument("--days", type=float, default=None, help="simulated days (default 7)")
    sf.add_argument("--seed", type=int, default=1)
    sf.add_argument("--tiny", action="store_true", help="a run of seconds (80 nodes, 2 days)")
    sf.add_argument("--output", default=None, metavar="PATH", help="also write the JSON here")
    sf.add_argument("--json", action="store_true", help="print JSON")
    sf.set_defaults(func=_cmd_bench_storeforward)


def _cmd_sweep(args: argparse.Namespace) -> int:
    from railgun_ref.sweep.command import main as sweep_main  # noqa: PLC0415

    return sweep_main(
        args.experiment,
        args.param,
        seeds=args.seeds,
        first_seed=args.first_seed,
        scheduler=args.scheduler,
        workers=args.workers,
        out=args.out,
        json_output=args.json,
        quiet=args.quiet,
    )


def _add_sweep(sub: _Subparsers) -> None:
    """`railgun-ref sweep`."""
    sweep = sub.add_parser(
        "sweep",
        help="run an experiment over a parameter grid and seeds; rows to Parquet, CIs",
    )
    sweep.add_argument("experiment", metavar="EXPERIMENT", help="dht or storeforward")
    sweep.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=V1,V2",
        help="a parameter and the values to sweep (repeat for a grid)",
    )
    sweep.add_argument("--seeds", type=int, default=3, help="sampled networks per point")
    sweep.add_argument("--first-seed", type=int, default=1)
    sweep.add_argument(
        "--scheduler",
        default=None,
        metavar="tcp://HOST:PORT",
        help="run on this Dask distributed scheduler (default: a local process pool)",
    )
    sweep.add_argument(
        "--workers", type=int, default=None, help="local pool size (default: CPUs; 0: in-process)"
    )
    sweep.add_argument("--out", default=None, metavar="PATH", help="rows as Parquet")
    sweep.add_argument("--json", action="store_true", help="print the summary as JSON")
    sweep.add_argument("--quiet", action="store_true", help="no progress on stderr")
    sweep.set_defaults(func=_cmd_sweep)


def _add_bench_nat(bench_sub: _Subparsers) -> None:
    """`railgun-ref bench nat`."""
    nat = bench_sub.add_parser(
        "nat", help="NAT traversal for every pair of NAT behaviours (vs libp2p DCUtR's record)"
    )
    nat.add_argument("--json", action="store_true", help="print JSON")
    nat.add_argument(
        "--driver",
        choices=("netlab", "sim"),
        default="netlab",
        help="netlab: processes behind kernel NATs in namespaces (root); sim: NatBoxes, "
        "virtual time",
    )
    nat.add_argument("--attempts", type=_positive_int, default=20, help="per pair (default 20)")
    nat.add_argument("--seed", type=int, default=1, help="sim driver only")
    nat.set_defaults(func=_cmd_bench_nat)


def _add_bench(sub: _Subparsers) -> None:
    """`railgun-ref bench ...`, in the order `--help` lists them."""
    bench = sub.add_parser("bench", help="benchmarks (JSON, side by side with a named peer)")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True, metavar="BENCH")
    for add in (
        _add_bench_wire,
        _add_bench_detectors,
        _add_bench_failover,
        _add_bench_dht,
        _add_bench_voice,
        _add_bench_bootstrap,
        _add_bench_storeforward,
        _add_bench_nat,
        _add_bench_flood,
        _add_bench_privacy,
        _add_bench_attacks,
    ):
        add(bench_sub)


def _cmd_netlab(args: argparse.Namespace) -> int:
    from railgun_ref.netlab import cli as netlab_cli  # noqa: PLC0415

    match args.netlab_command:
        case "up":
            return netlab_cli.netlab_up(args.hosts, ipv6=args.ipv6)
        case "run":
            command = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
            return netlab_cli.netlab_run(args.role, command)
        case _:
            return netlab_cli.netlab_down()


def _add_netlab(sub: _Subparsers) -> None:
    """`railgun-ref netlab`."""
    netlab = sub.add_parser(
        "netlab", help="hosts, kernel NATs and firewalls in network namespaces (needs root)"
    )
    netlab_sub = netlab.add_subparsers(dest="netlab_command", required=True, metavar="ACTION")
    up = netlab_sub.add_parser("up", help="build a lab that stays until `netlab down`")
    up.add_argument(
        "--hosts",
        default="open:open,full:full-cone,restr:restricted,port:port-restricted,sym:symmetric",
        metavar="NAME:NAT,...",
        help="client hosts and the NAT in front of each "
        "(open, full-cone, restricted, port-restricted, symmetric)",
    )
    up.add_argument(
        "--ipv6",
        action="store_true",
        help="dual-stack: ULA IPv6 addresses too, routed through stateful firewalls",
    )
    run = netlab_sub.add_parser("run", help="run a command in a namespace of the kept lab")
    run.add_argument("role", help="inet, central, a host's name, or r<host> (its router)")
    run.add_argument("argv", nargs=argparse.REMAINDER, help="-- COMMAND ARGS...")
    netlab_sub.add_parser("down", help="remove the kept lab and leftovers of crashed labs")
    netlab.set_defaults(func=_cmd_netlab)


def _fuzz_target(text: str) -> str:
    from railgun_ref.fuzz import ALL, TARGET_NAMES  # noqa: PLC0415

    if text not in (*TARGET_NAMES, ALL):
        raise argparse.ArgumentTypeError(
            f"unknown target {text!r}; one of: {', '.join((*TARGET_NAMES, ALL))}"
        )
    return text


def _cmd_fuzz(args: argparse.Namespace) -> int:
    import importlib.util  # noqa: PLC0415
    import subprocess  # noqa: PLC0415

    if importlib.util.find_spec("atheris") is None:
        raise _usage("fuzzing needs atheris: pip install 'railgun-ref[fuzz]'")
    command = [sys.executable, "-m", "railgun_ref.fuzz", args.target]
    command += ["--seconds", str(args.seconds), "--artifacts", args.artifacts]
    if args.runs is not None:
        command += ["--runs", str(args.runs)]
    if args.corpus is not None:
        command += ["--corpus", args.corpus]
    return subprocess.run(command, check=False).returncode


def _add_fuzz(sub: _Subparsers) -> None:
    """`railgun-ref fuzz`."""
    fuzz = sub.add_parser(
        "fuzz", help="coverage-guided fuzzing of a network decoder with atheris (ABUSE-5)"
    )
    fuzz.add_argument("target", type=_fuzz_target, help="a decoder's name, or 'all'")
    fuzz.add_argument(
        "--seconds", type=_positive_float, default=60.0, help="how long to fuzz (default 60)"
    )
    fuzz.add_argument("--runs", type=_int_at_least(1), default=None, help="stop after N inputs")
    fuzz.add_argument(
        "--corpus", type=_directory, default=None, help="keep new inputs here (default: temporary)"
    )
    fuzz.add_argument("--artifacts", default="fuzz-crashes", help="where a crashing input is saved")
    fuzz.set_defaults(func=_cmd_fuzz)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="railgun-ref",
        description="Rail Gun hybrid transport: node, simulator, conformance, benchmarks.",
    )
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (
        _add_node,
        _add_central,
        _add_turn,
        _add_demo,
        _add_chat,
        _add_sim,
        _add_conformance,
        _add_manifest,
        _add_identity,
        _add_bench,
        _add_sweep,
        _add_netlab,
        _add_fuzz,
    ):
        add(sub)
    return parser


#: OSError numbers that mean the user asked for something this machine refuses.
_USER_ERRNOS: Final = frozenset(
    {errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES, errno.EPERM, errno.ENOENT, errno.EROFS}
    | {errno.EEXIST, errno.EISDIR, errno.ENOTDIR, errno.ENOSPC}
)


def _leaves(error: BaseException) -> list[BaseException]:
    """`error`, or the exceptions inside it and its nested groups."""
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


def _one_line(error: BaseException) -> tuple[str, int] | None:
    """The message and exit status for an error a user can act on; None for a bug."""
    from railgun_ref.drivers.console import UsageError  # noqa: PLC0415
    from railgun_ref.identity.keyfile import KeyFileError  # noqa: PLC0415

    if isinstance(error, UsageError | KeyFileError):
        return str(error), 2
    if isinstance(error, sqlite3.DatabaseError):
        return f"cannot use the database: {error}", 2
    if isinstance(error, OSError):
        reason = error.strerror or str(error)
        where = f"{error.filename}: " if error.filename else ""
        return f"{where}{reason}", 2 if error.errno in _USER_ERRNOS else 1
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand. A user's mistake ends in one line on stderr and exit status 2
    (argparse's own convention), a failure that is not the user's in one line and 1;
    anything else is a bug and keeps its traceback."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # sorted below: a bug is re-raised with its traceback
        known = [_one_line(leaf) for leaf in _leaves(exc)]
        if None in known:
            raise
        message, status = next(k for k in known if k is not None)
        sys.stderr.write(f"{parser.prog}: error: {' '.join(message.split())}\n")
        return status
    return result


if __name__ == "__main__":
    sys.exit(main())
