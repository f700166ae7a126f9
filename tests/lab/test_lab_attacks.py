"""Notebook 07's helpers (railgun_ref/lab/attacks.py), without the live simulator runs."""

from railgun_ref.abuse.reputation import Standing
from railgun_ref.lab import attacks as lab


def test_share_rule_keeps_two_hosts_under_a_tenth_from_40_honest_contacts() -> None:
    """DHT-5.5: the curve the notebook draws, against geth's fixed 10 per host."""
    frame = lab.share_bound_frame(range(10, 301, 10))
    rule = frame[frame["rule"] == "5 % of the others"].set_index("honest")["share"]
    fixed = frame[frame["rule"] == "10 per host"].set_index("honest")["share"]
    assert (rule[rule.index >= 40] < 0.1).all()
    assert rule.loc[10] > 0.1  # the floor of 2 per host dominates a tiny table
    assert (rule <= fixed + 1e-12).all()


def test_standing_falls_with_misbehaviour() -> None:
    """REP-4.1: good, then no-hosting, no-publish and graylisted as misbehaviour mounts."""
    frame = lab.standing_frame(8)
    assert list(frame["points"]) == sorted(frame["points"], reverse=True)
    assert frame["standing"].iloc[0] == Standing.GOOD
    assert frame["standing"].iloc[-1] == Standing.GRAYLISTED


def test_effort_rises_only_under_overload_and_decays_to_zero() -> None:
    """POW-5.1: the suggested effort follows the service's own load."""
    frame = lab.effort_frame(periods=16, overloaded=6)
    loaded = frame[frame["load"] == "overloaded"]["suggested_effort"].tolist()
    assert loaded == sorted(loaded) and loaded[-1] > 0
    assert frame["suggested_effort"].iloc[-1] == 0


def test_fuzz_replay_breaks_nothing() -> None:
    """ABUSE-5.1: the seeds of every target keep the decoder contract."""
    frame = lab.fuzz_frame()
    assert len(frame) == len(lab.TARGETS) and frame["broken"].sum() == 0
