"""Churn for the simulator: nodes leave and come back on Weibull-distributed clocks.

Measured P2P session lengths are not exponential: most sessions are short
and a stable core stays for days (Stutzbach & Rejaie, IMC 2006; Steiner et
al., KAD, 2009). `WeibullChurn` draws each node's online and offline
periods from Weibull fits (`datasets/churn_weibull.json`; the defaults are
the KAD fits), crash-stops the node at the end of a session, and restarts
it — same identity, the records it had persisted, its cached peers — at the
end of the offline period, rejoining the DHT through those peers.

All draws come from the simulator's seeded RNG, so a churn trace is as
reproducible as everything else in the simulation.
"""

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from railgun_ref.core.ids import Address
from railgun_ref.drivers.sim import SimCounter, Simulator

#: KAD, later crawls: shape 0.61511, scale 169.5385 min (Steiner et al. 2009).
KAD_SESSION: Final = (0.61511, 169.5385 * 60)
#: KAD inter-session (offline) time: shape 0.47648, scale 413.6765 min.
KAD_OFFLINE: Final = (0.47648, 413.6765 * 60)


@dataclass(frozen=True, slots=True, kw_only=True)
class WeibullChurn:
    session_shape: float = KAD_SESSION[0]
    session_scale: float = KAD_SESSION[1]  #: seconds
    offline_shape: float = KAD_OFFLINE[0]
    offline_scale: float = KAD_OFFLINE[1]  #: seconds
    #: Multiply every duration (e.g. 1/60 to watch an hour of churn per virtual minute).
    time_scale: float = 1.0

    def __post_init__(self) -> None:
        for name in ("session_shape", "session_scale", "offline_shape", "offline_scale"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
        if not self.time_scale > 0:
            raise ValueError("time_scale must be positive")

    @classmethod
    def from_dataset(
        cls, path: Path, *, session: str = "kad_session", offline: str = "kad_offline"
    ) -> "WeibullChurn":
        fits = json.loads(path.read_text())["fits"]
        return cls(
            session_shape=fits[session]["shape"],
            session_scale=fits[session]["scale"],
            offline_shape=fits[offline]["shape"],
            offline_scale=fits[offline]["scale"],
        )

    def median_session(self) -> float:
        median: float = self.session_scale * math.log(2) ** (1 / self.session_shape)
        return median * self.time_scale

    def draw_session(self, sim: Simulator) -> float:
        return sim.rng.weibullvariate(self.session_scale, self.session_shape) * self.time_scale

    def draw_offline(self, sim: Simulator) -> float:
        return sim.rng.weibullvariate(self.offline_scale, self.offline_shape) * self.time_scale


def apply_churn(
    sim: Simulator,
    addresses: list[Address],
    model: WeibullChurn,
    *,
    until: float,
    rejoin: bool = True,
) -> None:
    """Schedule session ends and returns for `addresses` until virtual time `until`.

    A node's first session is drawn from the *residual* distribution of an
    already-running system, approximated by drawing a full session and
    starting at a uniform point inside it, so nodes do not all leave together.
    """

    def leave(s: Simulator, address: Address) -> None:
        if not s.is_running(address):
            return
        s.stop(address)
        s.counters.inc(SimCounter.CHURN_LEFT)
        back = s.now + model.draw_offline(s)
        if back < until:
            s.at(back, lambda s2: come_back(s2, address))

    def come_back(s: Simulator, address: Address) -> None:
        peers = s.restart(address)
        s.counters.inc(SimCounter.CHURN_RETURNED)
        if rejoin and peers:
            s.call(address, lambda n, now: n.dht.bootstrap(peers, now=now))
        end = s.now + model.draw_session(s)
        if end < until:
            s.at(end, lambda s2: leave(s2, address))

    def leave_later(address: Address) -> Callable[[Simulator], None]:
        return lambda s: leave(s, address)

    for address in addresses:
        first_end = sim.now + model.draw_session(sim) * sim.rng.random()
        if first_end < until:
            sim.at(first_end, leave_later(address))
