"""`railgun-ref bench voice --video --turn-only`: media through a participant's peer TURN.

A short call of 2 participants (and the SFU host node) whose every link may use
relayed candidates only, from the TURN server participant 1's process runs. The
test checks what the run reports, never its timings: every link end nominated a
relay pair, the TURN server relayed datagrams both ways, frames were sent and
received, and the lost count is what sent minus received says.
"""

import json

import pytest

from railgun_ref.bench.voice import run
from railgun_ref.cli import main as cli_main

pytestmark = pytest.mark.integration


def test_turn_only_run_is_relayed_and_counts_frames() -> None:
    report = run(
        [2],
        duration=2.0,
        warmup=3.0,
        drain=1.5,
        workers=1,
        impls=("ours",),
        progress=False,
        video=True,
        turn_only=True,
    )
    json.dumps(report)
    assert report["parameters"]["turn_only"] is True
    (row,) = report["results"]
    assert row["turn_only_relayed"] is True
    for sample in ("at_window_start", "at_end"):  # 2 links, 2 ends each
        assert row["turn_only_pairs"][sample] == {"relay->relay": 4}
    assert row["turn_only_duration_s"] == 2.0
    lost = row["turn_only_frames_lost"]
    assert isinstance(lost, int) and lost >= 0
    assert row["turn_only_frames_received"] > 0
    assert lost == row["turn_only_frames_sent"] - row["turn_only_frames_received"]
    streams = row["turn_only_streams"]
    assert len(streams) == 2  # (source, listener) pairs of 2 participants
    assert sum(s["lost"] for s in streams) == lost
    assert all(0 <= s["received"] <= s["sent"] for s in streams)
    server = row["turn_server"]
    assert server["turn.allocations_created"] == 4
    assert server["turn.relayed_to_peer_datagrams"] > 0
    assert server["turn.relayed_to_client_bytes"] > 0
    assert row["fps_min"] is not None and row["first_frame_ms"] is not None
    goal = report["goals"]["T1_turn_only_no_frames_lost_over_60_s"]
    assert goal["met"] is False  # 2 s is not the 60 s, whatever was lost


def test_turn_only_flags_on_the_command_line() -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["bench", "voice", "--turn-only", "--turn-bandwidth", "0"])
    assert exit_info.value.code == 2
