"""`railgun-ref bench privacy`: can a relay tell active from idle users? (spec PRIV-7)

In the simulator (`drivers/privacy_sim`, virtual time, one seed), `users`
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

import dataclasses
import json
import math
import os
import platform
import statistics
from typing import Any, Final

from railgun_ref.drivers.privacy_sim import (
    DESIGNS,
    ChatModel,
    auc_of,
    samples,
    sender_entropy_bits,
    simulate,
)
from railgun_ref.privacy import cover

GOAL_AUC_SLOT: Final = 0.55


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
        traces = simulate(design, users, hours, model, seed)
        x, y = samples(traces, hours)
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
