"""`railgun-ref bench privacy`: can a relay tell active from idle users? (spec PRIV-7)

In the simulator (`drivers/sim.Simulator`, virtual time, one seed), `users`
members are observed for `hours`. Half of them chat (sessions arrive as a
Poisson process; inside a session, messages come at exponential gaps; bodies
are short text with a share of media), half are idle. A relay records, for
every user, the time and padded size (PRIV-2.1) of each frame the user sends.
Four designs are compared in the same run:

* ``slot``: slot-taking cover (PRIV-4, the default profile, no burst slots);
* ``slot_burst``: the same with the burst rule (PRIV-4.5), the stated leak;
* ``addon``: cover at the same gap law *plus* each real message at once (the
  negative control);
* ``none``: real messages only.

Each (user, hour) is a sample, labelled active when the user sent a real
message in it. Features: frame count, mean, standard deviation and minimum
of the gaps, the share of gaps under the slot law's minimum, the share of
frames per bucket. A logistic regression (scikit-learn, standardised
features, 5-fold stratified cross-validation) gives out-of-fold scores, and
the AUC of those is the figure: 0.5 is a coin, 1.0 certainty.

The sender's anonymity set at a relay: for each real message, the users
that sent any frame within `window_s` before it reached the relay (all look
alike to it, PRIV-4.4); the entropy is log2 of their number.
"""

import bisect
import dataclasses
import functools
import itertools
import json
import math
import os
import platform
import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from railgun_ref.drivers.sim import Simulator
from railgun_ref.identity.e2ee import seal_room_message
from railgun_ref.identity.keys import Identity
from railgun_ref.privacy import cover
from railgun_ref.privacy.padding import frame_bucket, wrap_slots
from railgun_ref.transport.p2p import MAX_FRAME_SIZE, RoomFrame, encode_frame, split_frame

GOAL_AUC_SLOT: Final = 0.55
DESIGNS: Final = ("slot", "slot_burst", "addon", "none")
_HOUR: Final = 3600.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatModel:
    """Realistic chat traffic for an active user (seconds, bytes)."""

    sessions_per_hour: float = 0.6
    session_mean_s: float = 600.0
    message_gap_mean_s: float = 45.0
    text_median_bytes: float = 40.0
    text_sigma: float = 1.0
    media_share: float = 0.03
    media_bytes: int = 30_000
    room_members: int = 6


@dataclass(frozen=True, slots=True)
class Frame:
    at: float
    size: int
    real: bool


@functools.cache
def _frame_sizes(body_len: int, members: int) -> tuple[int, ...]:
    """PRIV-2.1, PRIV-3.1: the padded frames a room message of `body_len` bytes becomes."""
    rng = random.Random(body_len)
    sender = Identity.from_seed(bytes([1]) * 32)
    keys = [Identity.from_seed(bytes([i + 2]) * 32).public_key for i in range(members)]
    blob, mid = seal_room_message(
        sender,
        room_id=bytes(16),
        members=keys,
        body=bytes(body_len),
        sent_ms=1,
        random_bytes=rng.randbytes,
        wrap_slots=wrap_slots(members),
    )
    frame = RoomFrame(
        room_id=bytes(16), message_id=mid, expires_ms=2**41, blob=blob, hops=0, relay_to=()
    )
    parts = split_frame(frame)
    sizes = tuple(frame_bucket(len(encode_frame(p))) for p in parts)
    assert all(s <= MAX_FRAME_SIZE for s in sizes)
    return sizes


def _body_len(rng: random.Random, model: ChatModel) -> int:
    if rng.random() < model.media_share:
        return model.media_bytes
    return max(1, int(rng.lognormvariate(math.log(model.text_median_bytes), model.text_sigma)))


def _real_messages(rng: random.Random, model: ChatModel, hours: float) -> list[float]:
    """Send times of one active user: Poisson sessions, exponential gaps inside."""
    times: list[float] = []
    t = rng.expovariate(model.sessions_per_hour / _HOUR)
    while t < hours * _HOUR:
        end = t + rng.expovariate(1 / model.session_mean_s)
        at = t
        while at < min(end, hours * _HOUR):
            times.append(at)
            at += rng.expovariate(1 / model.message_gap_mean_s)
        t = end + rng.expovariate(model.sessions_per_hour / _HOUR)
    return times


@dataclass
class _Trace:
    """What the relay saw of one user, and what the user sent."""

    frames: list[Frame]
    sent: list[float]  #: real messages' send times (offsets from the start)
    waits: dict[bytes, float]  #: message id -> latency added by slot taking


class _User:
    """Pumps one user's `CoverScheduler` on the simulator's clock (CORE-1.4)."""

    def __init__(self, sim: Simulator, scheduler: cover.CoverScheduler, trace: _Trace) -> None:
        self.sim, self.scheduler, self.trace = sim, scheduler, trace
        self.start = sim.now
        self._schedule()

    def _schedule(self) -> None:
        deadline = self.scheduler.next_deadline()
        if deadline is not None:
            self.sim.at(deadline, self._tick)

    def _tick(self, sim: Simulator) -> None:
        self.scheduler.on_timer(now=sim.now)
        self._drain()
        self._schedule()

    def submit(self, message_id: bytes, sizes: tuple[int, ...]) -> None:
        now = self.sim.now
        for index, size in enumerate(sizes):
            part = cover.Outgoing(
                message_id=message_id + bytes([index]),
                bucket=size,
                destination=b"room",
                submitted_at=now,
            )
            self.scheduler.submit(part, now=now)
        self._drain()

    def _drain(self) -> None:
        while (action := self.scheduler.next_action()) is not None:
            at = action.slot_at - self.start
            match action:
                case cover.EmitReal(message=message, waited_s=waited):
                    self.trace.frames.append(Frame(at=at, size=message.bucket, real=True))
                    key = message.message_id[:-1]
                    self.trace.waits[key] = max(waited, self.trace.waits.get(key, 0.0))
                case cover.EmitCover(bucket=bucket):
                    self.trace.frames.append(Frame(at=at, size=bucket, real=False))


def _population_mix(model: ChatModel, rng: random.Random, draws: int = 2000) -> dict[int, int]:
    """PRIV-4.3: the frame-bucket mix of the chat model (the prior cover draws from)."""
    mix: dict[int, int] = {}
    for _ in range(draws):
        for size in _frame_sizes(_body_len(rng, model), model.room_members):
            mix[size] = mix.get(size, 0) + 1
    return mix


def _simulate(design: str, users: int, hours: float, model: ChatModel, seed: int) -> list[_Trace]:
    """One design: every user's frames as a relay sees them, in virtual time."""
    sim = Simulator(seed=seed, keep_trace=False)
    rng = random.Random(seed)  # the same traffic for every design: same seed
    mix = _population_mix(model, random.Random(seed + 1))
    profile = _no_burst(cover.DEFAULT) if design == "slot" else cover.DEFAULT
    traces = []
    for index in range(users):
        trace = _Trace(frames=[], sent=[], waits={})
        traces.append(trace)
        active = index % 2 == 0
        times = _real_messages(rng, model, hours) if active else []
        bodies = [_body_len(rng, model) for _ in times]
        user_rng = random.Random(rng.randrange(2**32))
        user = None
        if design != "none":
            scheduler = cover.CoverScheduler(profile, rng=user_rng, now=sim.now, prior_mix=mix)
            scheduler.add_destination(b"room", weight=1000)
            user = _User(sim, scheduler, trace)
        for n, (at, body) in enumerate(zip(times, bodies, strict=True)):
            sizes = _frame_sizes(body, model.room_members)
            trace.sent.append(at)
            mid = index.to_bytes(4, "big") + n.to_bytes(4, "big")
            sim.at(sim.now + at, _sender(design, user, trace, mid, sizes, at))
    sim.run(until=sim.now + hours * _HOUR)
    for trace in traces:
        trace.frames.sort(key=lambda f: f.at)
    return traces


def _no_burst(profile: cover.CoverProfile) -> cover.CoverProfile:
    return cover.CoverProfile(
        name=profile.name + "-no-burst",
        enabled=True,
        interval_s=profile.interval_s,
        jitter_s=profile.jitter_s,
        law=profile.law,
        queue_bound=profile.queue_bound,
        burst_slots=0,
    )


def _sender(
    design: str, user: _User | None, trace: _Trace, mid: bytes, sizes: tuple[int, ...], at: float
) -> Callable[[Simulator], None]:
    def send(sim: Simulator) -> None:
        if design in ("slot", "slot_burst"):
            assert user is not None
            user.submit(mid, sizes)
        else:  # addon and none: the real message goes at once
            trace.frames.extend(Frame(at=at, size=size, real=True) for size in sizes)

    return send


_BUCKETS: Final = (256, 4096, 65536)


def _features(frames: list[Frame], start: float) -> list[float]:
    """What a relay can compute from one user's frames in one hour."""
    inside = [f for f in frames if start <= f.at < start + _HOUR]
    times = [f.at for f in inside]
    gaps = [b - a for a, b in itertools.pairwise(times)] or [_HOUR]
    low = cover.DEFAULT.interval_s - cover.DEFAULT.jitter_s
    count = max(len(inside), 1)
    return [
        float(len(inside)),
        statistics.fmean(gaps),
        statistics.pstdev(gaps),
        min(gaps),
        sum(g < low for g in gaps) / len(gaps),
        *(sum(f.size == b for f in inside) / count for b in _BUCKETS),
    ]


def _samples(traces: list[_Trace], hours: float) -> tuple[list[list[float]], list[int]]:
    x, y = [], []
    for trace in traces:
        for hour in range(int(hours)):
            start = hour * _HOUR
            x.append(_features(trace.frames, start))
            y.append(int(any(start <= t < start + _HOUR for t in trace.sent)))
    return x, y


def auc_of(x: list[list[float]], y: list[int], seed: int) -> float:
    """Out-of-fold AUC of a standardised logistic regression (5-fold, stratified)."""
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415
    from sklearn.metrics import roc_auc_score  # noqa: PLC0415
    from sklearn.model_selection import StratifiedKFold, cross_val_predict  # noqa: PLC0415
    from sklearn.pipeline import make_pipeline  # noqa: PLC0415
    from sklearn.preprocessing import StandardScaler  # noqa: PLC0415

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    scores = cross_val_predict(model, x, y, cv=folds, method="predict_proba")[:, 1]
    return float(roc_auc_score(y, scores))


def sender_entropy_bits(traces: list[_Trace], window_s: float) -> float:
    """Mean log2 of the users that sent a frame within `window_s` before each real frame."""
    events = sorted((f.at, user, f.real) for user, t in enumerate(traces) for f in t.frames)
    times = [e[0] for e in events]
    bits = []
    for at, _, real in events:
        if real:
            low = bisect.bisect_left(times, at - window_s)
            high = bisect.bisect_right(times, at)
            bits.append(math.log2(len({events[i][1] for i in range(low, high)})))
    return statistics.fmean(bits) if bits else 0.0


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def run(
    *, users: int = 120, hours: float = 8.0, seed: int = 1, window_s: float = 1.0
) -> dict[str, Any]:
    model = ChatModel()
    result: dict[str, Any] = {"auc": {}, "bytes_per_user_day_by_design": {}, "entropy": {}}
    slot_waits: dict[str, list[float]] = {}
    for design in DESIGNS:
        traces = _simulate(design, users, hours, model, seed)
        x, y = _samples(traces, hours)
        result["auc"][design] = round(auc_of(x, y, seed), 3)
        total = sum(f.size for t in traces for f in t.frames)
        result["bytes_per_user_day_by_design"][design] = round(total / users / (hours / 24))
        result["entropy"][design] = round(sender_entropy_bits(traces, window_s), 2)
        slot_waits[design] = [w for t in traces for w in t.waits.values()]
        result.setdefault("active_share", round(sum(y) / len(y), 3))
        result.setdefault("real_messages", sum(len(t.sent) for t in traces))
    return _report(result, slot_waits, users=users, hours=hours, seed=seed, window_s=window_s)


def _report(
    r: dict[str, Any],
    waits: dict[str, list[float]],
    *,
    users: int,
    hours: float,
    seed: int,
    window_s: float,
) -> dict[str, Any]:
    slot = waits["slot"]
    return {
        "benchmark": "privacy",
        "peer": "the add-on-cover design (negative control) and no cover, same traffic, same run",
        "auc_slot_cover": r["auc"]["slot"],
        "auc_slot_cover_with_burst_rule": r["auc"]["slot_burst"],
        "auc_addon_cover": r["auc"]["addon"],
        "auc_no_cover": r["auc"]["none"],
        "sender_entropy_bits": {
            **r["entropy"],
            "max": round(math.log2(users), 2),
            "window_s": window_s,
        },
        "bytes_per_user_day": r["bytes_per_user_day_by_design"]["slot"],
        "bytes_per_user_day_by_design": r["bytes_per_user_day_by_design"],
        "added_latency_s": {
            "p50": round(_percentile(slot, 0.5), 2),
            "p95": round(_percentile(slot, 0.95), 2),
            "mean": round(statistics.fmean(slot), 2) if slot else 0.0,
            "with_burst_rule_p50": round(_percentile(waits["slot_burst"], 0.5), 2),
            "stated_mean_idle_s": round(cover.DEFAULT.mean_wait_s(), 2),
        },
        "goal_auc_slot_cover": GOAL_AUC_SLOT,
        "goal_met": r["auc"]["slot"] <= GOAL_AUC_SLOT,
        "parameters": {
            "users": users,
            "active_users": (users + 1) // 2,
            "hours": hours,
            "seed": seed,
            "profile": "default (30 s ± 10 s uniform)",
            "chat_model": dataclasses.asdict(ChatModel()),
            "real_messages": r["real_messages"],
            "active_hour_share": r["active_share"],
        },
        "environment": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "loadavg": list(os.getloadavg()),
        },
    }


def main(
    *, json_output: bool, users: int = 120, hours: int = 8, seed: int = 1, output: str | None
) -> int:
    result = run(users=users, hours=hours, seed=seed)
    text = json.dumps(result, indent=2)
    if output is not None:
        with open(output, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
    if json_output:
        print(text)
    else:
        for key, value in result.items():
            print(f"{key:32} {value}")
    return 0
