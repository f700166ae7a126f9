"""The privacy experiment (drivers/privacy_sim) and the notebook-08 helpers (spec §24)."""

import itertools

from railgun_ref.drivers import privacy_sim
from railgun_ref.lab import privacy as lab


def test_slot_taking_keeps_every_gap_in_the_slot_law_for_active_and_idle_users() -> None:
    """PRIV-4.1, PRIV-4.2: in the simulator, no user's frames come closer than 20 s."""
    traces = privacy_sim.simulate("slot", 6, 2, privacy_sim.ChatModel(), seed=3)
    assert sum(len(t.sent) for t in traces[0::2]) > 0
    assert all(not t.sent for t in traces[1::2])
    for trace in traces:
        times = [f.at for f in trace.frames]
        assert all(20.0 <= b - a <= 40.0 for a, b in itertools.pairwise(times))
        assert {f.size for f in trace.frames} <= {256, 4096, 65536}
    assert all(w > 0 for t in traces for w in t.waits.values())


def test_addon_cover_shows_real_messages_as_short_gaps() -> None:
    """PRIV-4.2: added on top, real messages break the slot law (what the control detects)."""
    traces = privacy_sim.simulate("addon", 4, 2, privacy_sim.ChatModel(), seed=3)
    active = [f.at for f in traces[0].frames]
    assert any(b - a < 20.0 for a, b in itertools.pairwise(active))


def test_notebook_tables_state_the_spec_figures() -> None:
    """PRIV-2.1, PRIV-3.1: control frames pad to 256 B; rooms of 2..8 give one blob length."""
    frames = lab.control_frames_frame()
    assert set(frames["padded"]) <= {256, 4096}
    blobs = lab.blob_sizes_frame((2, 5, 8))
    assert blobs["blob_bytes_wraps_filled"].nunique() == 1
    assert blobs["blob_bytes"].nunique() == 3
    assert len(lab.observers_frame()) == 5
