"""The privacy experiment in the simulator: chat traffic, cover designs, what a relay sees.

`simulate` runs, in `Simulator`'s virtual time (one seed), `users` members
for `hours`: even-numbered users chat (`ChatModel`: Poisson sessions,
exponential gaps inside, short text with a share of media; every message
sealed with a filled wrap table and padded, spec PRIV-2, PRIV-3), the others
are idle. For one design it records, per user, the time and padded size of
each frame a relay receives:

* ``slot``: slot-taking cover (PRIV-4, the default profile, no burst slots);
* ``slot_burst``: the same with the burst rule (PRIV-4.5);
* ``addon``: cover at the same gap law *plus* each real message at once;
* ``none``: real messages only.

`samples` turns traces into one feature row per (user, hour) labelled active
when the user sent a real message in it; `auc_of` scores a logistic
regression on them (scikit-learn, imported on use); `sender_entropy_bits`
measures a relay's anonymity set. `railgun-ref bench privacy` and the lab's
notebook 08 both use this module.
"""

import bisect
import functools
import itertools
import math
import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from railgun_ref.drivers.sim import Simulator
from railgun_ref.identity.e2ee import seal_room_message
from railgun_ref.identity.keys import Identity
from railgun_ref.privacy import cover
from railgun_ref.privacy.padding import frame_bucket, wrap_slots
from railgun_ref.transport.p2p import MAX_FRAME_SIZE, RoomFrame, encode_frame, split_frame

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
class Trace:
    """What the relay saw of one user, and what the user sent."""

    frames: list[Frame]
    sent: list[float]  #: real messages' send times (offsets from the start)
    waits: dict[bytes, float]  #: message id -> latency added by slot taking


class _User:
    """Pumps one user's `CoverScheduler` on the simulator's clock (CORE-1.4)."""

    def __init__(self, sim: Simulator, scheduler: cover.CoverScheduler, trace: Trace) -> None:
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


def simulate(design: str, users: int, hours: float, model: ChatModel, seed: int) -> list[Trace]:
    """One design: every user's frames as a relay sees them, in virtual time."""
    sim = Simulator(seed=seed, keep_trace=False)
    rng = random.Random(seed)  # the same traffic for every design: same seed
    mix = _population_mix(model, random.Random(seed + 1))
    profile = _no_burst(cover.DEFAULT) if design == "slot" else cover.DEFAULT
    traces = []
    for index in range(users):
        trace = Trace(frames=[], sent=[], waits={})
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
    design: str, user: _User | None, trace: Trace, mid: bytes, sizes: tuple[int, ...], at: float
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


def samples(traces: list[Trace], hours: float) -> tuple[list[list[float]], list[int]]:
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


def sender_entropy_bits(traces: list[Trace], window_s: float) -> float:
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
