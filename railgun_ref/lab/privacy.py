"""Notebook 08: what each observer sees, with and without each privacy defence (spec §24).

Tables and charts over `railgun_ref.privacy` (padding, cover, unlinkability)
and the simulator experiment of `railgun_ref.drivers.privacy_sim` (the one
`railgun-ref bench privacy` runs), for `notebooks/08_privacy.ipynb`.
"""

import itertools
import random
from collections.abc import Iterable
from typing import Any, Final

import altair as alt
import pandas as pd

from railgun_ref.drivers import privacy_sim
from railgun_ref.identity.e2ee import seal_room_message
from railgun_ref.identity.keys import Identity
from railgun_ref.privacy import cover
from railgun_ref.privacy.padding import frame_bucket, overhead_table, pad_frame, wrap_slots
from railgun_ref.privacy.unlink import epoch_of, transport_key
from railgun_ref.transport.p2p import (
    AckFrame,
    Frame,
    ProbeFrame,
    Receipt,
    RoomFrame,
    encode_frame,
)

#: PRIV-1: (observer, what it sees without the defences, with them, the defence).
OBSERVERS: Final = (
    (
        "central service",
        "routing id, connection, blob length (grows with members), every send and receipt time",
        "same ids; every frame a bucket; one frame per slot; receipts batched",
        "PRIV-2, PRIV-3, PRIV-4, PRIV-5.4",
    ),
    (
        "committee relay",
        "requester and member addresses, blob length, timing",
        "a bucket per frame; slots whether or not the user is active",
        "PRIV-2, PRIV-4",
    ),
    (
        "bridge",
        "sender node id = E2EE identity, relay_to node ids, timing",
        "per-epoch transport id, blinded relay tags (a member bridge still reads the seal)",
        "PRIV-5.1, PRIV-5.3",
    ),
    (
        "storage peer",
        "rendezvous id, blob length, store and pickup times",
        "blob bucket; cover stores look like real ones",
        "PRIV-2, PRIV-4.3",
    ),
    (
        "network observer",
        "packet sizes and times per address",
        "bucket sizes at slot times, typing or not",
        "PRIV-2, PRIV-4",
    ),
)


def observers_frame() -> pd.DataFrame:
    """PRIV-1 as a table."""
    return pd.DataFrame(OBSERVERS, columns=["observer", "without", "with", "defence"])


def _identity(i: int) -> Identity:
    return Identity.from_seed(bytes([i]) * 32)


def blob_sizes_frame(room_sizes: Iterable[int] = (2, 5, 8, 20, 32, 100)) -> pd.DataFrame:
    """PRIV-3.1: a 20-byte message's blob, without and with the wrap table filled."""
    rows = []
    for members in room_sizes:
        keys = [_identity(i + 2).public_key for i in range(members)]
        sizes = []
        for slots in (None, wrap_slots(members)):
            blob, _ = seal_room_message(
                _identity(1),
                room_id=bytes(16),
                members=keys,
                body=bytes(20),
                sent_ms=1,
                random_bytes=random.Random(members).randbytes,
                wrap_slots=slots,
            )
            sizes.append(len(blob))
        rows.append(
            {
                "members": members,
                "blob_bytes": sizes[0],
                "blob_bytes_wraps_filled": sizes[1],
                "frame_bucket": frame_bucket(sizes[1] + 64),
            }
        )
    return pd.DataFrame(rows)


def control_frames_frame() -> pd.DataFrame:
    """PRIV-2.1: control frames before and after padding."""
    frames: dict[str, Frame] = {
        "PROBE": ProbeFrame(nonce=7),
        "ACK": AckFrame(
            room_id=bytes(16),
            message_id=bytes(16),
            receipts=(Receipt(member=_identity(2).node_id, signature=bytes(64)),),
        ),
        "ROOM (20-byte body, 8 wraps)": RoomFrame(
            room_id=bytes(16),
            message_id=bytes(16),
            expires_ms=2**41,
            blob=bytes(818),
            hops=0,
            relay_to=(),
        ),
    }
    return pd.DataFrame(
        [
            {
                "frame": name,
                "bytes": len(encode_frame(f)),
                "padded": len(pad_frame(encode_frame(f))),
            }
            for name, f in frames.items()
        ]
    )


def overhead_frame(
    sizes: Iterable[int] = (60, 200, 300, 1000, 3000, 5000, 20000, 60000),
) -> pd.DataFrame:
    """PRIV-2.3: three buckets against Padmé."""
    return pd.DataFrame(
        [
            {
                "frame_bytes": r.size,
                "bucket": r.bucket,
                "bucket_overhead_pct": round(100 * r.bucket_overhead, 1),
                "padme": r.padme,
                "padme_overhead_pct": round(100 * r.padme_overhead, 1),
            }
            for r in overhead_table(sizes)
        ]
    )


def overhead_chart(frame: pd.DataFrame) -> Any:
    long = frame.melt(
        id_vars="frame_bytes",
        value_vars=["bucket_overhead_pct", "padme_overhead_pct"],
        var_name="scheme",
        value_name="overhead_pct",
    )
    return (
        alt.Chart(long, title="padding overhead: three buckets vs Padmé")
        .mark_line(point=True)
        .encode(
            x=alt.X("frame_bytes:Q", scale=alt.Scale(type="log"), title="frame bytes"),
            y=alt.Y("overhead_pct:Q", scale=alt.Scale(type="symlog"), title="overhead (%)"),
            color="scheme:N",
        )
        .properties(width=420, height=220)
    )


def transport_ids_frame(hours: int = 3) -> pd.DataFrame:
    """PRIV-5.1: the id a relay sees for one node, hour by hour, and its identity."""
    me = _identity(1)
    start = 1_800_000_000.0
    return pd.DataFrame(
        [
            {
                "hour": h,
                "transport_id": bytes(transport_key(me, epoch_of(start + 3600 * h)).node_id)[
                    :6
                ].hex(),
                "identity_id": bytes(me.node_id)[:6].hex(),
            }
            for h in range(hours)
        ]
    )


def experiment(
    *, users: int = 40, hours: int = 4, seed: int = 1
) -> dict[str, list[privacy_sim.Trace]]:
    """Every design of `privacy_sim` on the same chat traffic (virtual time)."""
    model = privacy_sim.ChatModel()
    return {d: privacy_sim.simulate(d, users, hours, model, seed) for d in privacy_sim.DESIGNS}


def detection_frame(
    traces: dict[str, list[privacy_sim.Trace]], *, hours: int, seed: int = 1
) -> pd.DataFrame:
    """Per design: the classifier's AUC, the anonymity set, bytes a day, added latency."""
    rows = []
    for design, runs in traces.items():
        x, y = privacy_sim.samples(runs, hours)
        waits = sorted(w for t in runs for w in t.waits.values())
        total = sum(f.size for t in runs for f in t.frames)
        rows.append(
            {
                "design": design,
                "auc": round(privacy_sim.auc_of(x, y, seed), 3),
                "sender_entropy_bits": round(privacy_sim.sender_entropy_bits(runs, 1.0), 2),
                "MB_per_user_day": round(total / len(runs) / (hours / 24) / 1e6, 1),
                "latency_p50_s": round(waits[len(waits) // 2], 1) if waits else 0.0,
            }
        )
    return pd.DataFrame(rows)


def gaps_frame(traces: dict[str, list[privacy_sim.Trace]], bin_s: float = 2.0) -> pd.DataFrame:
    """Share of the gaps between a user's frames at a relay, per 2 s bin (capped at 60 s)."""
    counts: dict[tuple[str, str, float], int] = {}
    totals: dict[tuple[str, str], int] = {}
    for design, runs in traces.items():
        for index, trace in enumerate(runs):
            user = "active" if index % 2 == 0 else "idle"
            for a, b in itertools.pairwise(f.at for f in trace.frames):
                gap_bin = min(b - a, 60.0) // bin_s * bin_s
                counts[design, user, gap_bin] = counts.get((design, user, gap_bin), 0) + 1
                totals[design, user] = totals.get((design, user), 0) + 1
    return pd.DataFrame(
        [
            {"design": d, "user": u, "gap_s": g, "share": round(n / totals[d, u], 4)}
            for (d, u, g), n in sorted(counts.items())
        ]
    )


def gaps_chart(frame: pd.DataFrame) -> Any:
    return (
        alt.Chart(frame, title="gaps between a user's frames at a relay (capped at 60 s)")
        .mark_line(interpolate="step-after")
        .encode(
            x=alt.X("gap_s:Q", title="gap (s)"),
            y=alt.Y("share:Q", title="share of gaps"),
            color="user:N",
            column=alt.Column("design:N", sort=list(privacy_sim.DESIGNS)),
        )
        .properties(width=150, height=140)
    )


def cost_frame() -> pd.DataFrame:
    """PRIV-4.2, PRIV-4.6: what each profile costs a node, per day and per message."""
    return pd.DataFrame(
        [
            {
                "profile": p.name,
                "slot_s": f"{p.interval_s:g} ± {p.jitter_s:g}" if p.enabled else "-",
                "MB_day_256B": round(p.bytes_per_day(256) / 1e6, 2),
                "MB_day_4KiB": round(p.bytes_per_day(4096) / 1e6, 1),
                "MB_day_64KiB": round(p.bytes_per_day(65536) / 1e6),
                "budget_MiB_day": p.budget_bytes_per_day // 2**20 if p.enabled else 0,
                "mean_wait_idle_s": round(p.mean_wait_s(), 1),
            }
            for p in cover.PROFILES.values()
        ]
    )
