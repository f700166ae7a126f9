"""What long commands and a verbose node say on stderr (progress, traffic summaries).

`ProgressReport` is driven directly with its terminal detection fixed; the node's
log is fed the tap and trace events a running host would give it; `sim` is run
through `main` with stderr captured (not a terminal), as a log file would see it.
"""

import json
import logging
import os

import pytest

from railgun_ref.cli import main
from railgun_ref.drivers.console import ProgressReport
from railgun_ref.drivers.node_main import NodeLog, message_type
from railgun_ref.drivers.udp import Direction, NodeHost, StreamClosed, StreamOpened, Traffic
from railgun_ref.identity.keys import Identity
from railgun_ref.rpc.requests import Channel
from railgun_ref.wire.envelope import encode_envelope
from railgun_ref.wire.messages import MessageType

PEER = ("127.0.0.2", 4000)


def test_plain_progress_prints_lines_then_done(capsys: pytest.CaptureFixture[str]) -> None:
    with ProgressReport("joining", total=3, unit="nodes", terminal=False, interval=0.0) as p:
        for _ in range(3):
            p.advance()
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert [line.split("] ", 1)[1] for line in lines] == [
        "joining: 1/3 nodes",
        "joining: 2/3 nodes",
        "joining: 3/3 nodes done",
    ]


def test_plain_progress_is_rate_limited_and_can_be_silenced(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with ProgressReport("slow", total=None, terminal=False, interval=3600.0) as p:
        for _ in range(100):
            p.advance()
    assert capsys.readouterr().err.splitlines()[-1].endswith("slow: 100 done")
    with ProgressReport("quiet", total=5, terminal=False, interval=0.0, enabled=False) as p:
        p.update(5)
    with ProgressReport("own summary", total=5, terminal=False, final_line=False) as p:
        p.update(5)
    assert capsys.readouterr().err == ""


def test_sim_json_stays_clean_and_progress_goes_to_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["sim", "--nodes", "5", "--duration", "3", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["nodes"] == 5
    assert captured.err.splitlines()[-1].endswith("sim: 5 nodes, 3 virtual s: 8/8 virtual s done")
    assert "\x1b[" not in captured.err  # not a terminal: no bar, no escape codes


def _envelope(kind: MessageType) -> bytes:
    identity = Identity.from_seed(bytes(32))
    return encode_envelope(identity, type=kind, request_id=7, timestamp_ms=0, body={})


def test_message_type_names_envelopes_and_tolerates_garbage() -> None:
    assert message_type(_envelope(MessageType.FIND_NODE)) == "FIND_NODE"
    assert message_type(_envelope(MessageType.APP)) == "APP"
    assert message_type(b"") == "?"
    assert message_type(b"\x82\x41\x00\x40") == "?"  # [h"00", h""]: the signed part is no map


def test_node_log_summarises_traffic_and_reports_streams(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = NodeLog(NodeHost(Identity.generate(os.urandom)), verbosity=1)
    caplog.set_level(logging.INFO, logger="railgun_ref.node")
    for direction, kind in [
        (Direction.IN, MessageType.PING),
        (Direction.IN, MessageType.PING),
        (Direction.OUT, MessageType.PONG),
    ]:
        data = _envelope(kind)
        log.on_traffic(Traffic(direction=direction, channel=Channel.DATAGRAM, peer=PEER, data=data))
    log.on_traffic(StreamOpened(peer=PEER, outbound=True))
    log.on_traffic(StreamClosed(peer=PEER, outbound=False))
    log.summary()
    log.summary()  # nothing new: no second summary
    assert caplog.messages == [
        "stream connection opened to 127.0.0.2:4000",
        "stream connection closed from 127.0.0.2:4000",
        "traffic in the last 10 s; in: PING 2; out: PONG 1",
    ]
