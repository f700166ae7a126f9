"""Smoke run of `railgun-ref bench voice`: the JSON's shape and that frames were counted.

Timings are never asserted: this only checks the benchmark runs end to end
(worker processes, real WebRTC media on 127.0.0.1) and reports what it says.
"""

import json

import pytest

from railgun_ref.bench.voice import run
from railgun_ref.cli import main as cli_main

pytestmark = pytest.mark.integration


def test_tiny_run_reports_both_sfus() -> None:
    report = run([3], duration=1.0, warmup=1.5, drain=1.0, workers=1, progress=False)
    json.dumps(report)  # serialisable
    assert report["benchmark"] == "voice"
    assert {row["impl"] for row in report["results"]} == {"ours", "stock"}
    for row in report["results"]:
        assert row["participants"] == 3 and row["forwarded_streams"] == 6
        assert row["streams_reported"] == 6
        assert row["frames_per_s"]["max"] > 0  # frames were counted
        assert set(row["delay_ms"]) >= {"median_of_stream_medians", "worst_stream_p95", "method"}
        assert set(row["host_cpu"]) == {
            "cpu_s",
            "cores",
            "cores_per_forwarded_stream",
            "us_per_delivered_frame",
            "us_per_arrived_packet",
        }
        assert row["setup_ms"]["link_connect"]["median"] is not None
    ours = next(r for r in report["results"] if r["impl"] == "ours")
    assert ours["delay_ms"]["method"] == ["payload"]
    assert ours["host_counters"]["media.forwarded"] > 0
    assert set(report["goals"]) == {
        "G1_every_stream_at_8_ge_49_5_fps",
        "G2_host_cpu_per_stream_at_12_le_tenth_of_stock",
    }
    assert report["goals"]["G1_every_stream_at_8_ge_49_5_fps"]["met"] is None  # not run at 8


def test_cli_has_the_voice_bench() -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["bench", "voice", "--help"])
    assert exit_info.value.code == 0


def test_tiny_video_run_reports_fps_and_first_frame_for_both_sfus() -> None:
    """`--video`: the issue's keys per row, the stock peer measured in the same run."""
    report = run([2], duration=1.0, warmup=2.0, drain=1.0, workers=1, progress=False, video=True)
    json.dumps(report)
    assert report["parameters"]["video"] is True
    assert {row["impl"] for row in report["results"]} == {"ours", "stock"}
    for row in report["results"]:
        assert {"fps_min", "first_frame_ms", "video"} <= set(row)
        assert row["video"]["fps"]["max"] > 0  # video frames were counted
    ours = next(r for r in report["results"] if r["impl"] == "ours")
    assert ours["host_counters"]["video.frames_forwarded"] > 0
    assert "V3_host_cpu_per_forwarded_frame_le_tenth_of_stock" in report["goals"]
