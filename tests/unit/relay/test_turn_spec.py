"""Section 17's parameter table states the same numbers as `railgun_ref.relay.turn`."""

from railgun_ref.conformance.traceability import SPEC_PATH
from railgun_ref.relay import turn
from railgun_ref.stun.codec import CHANNEL_NUMBER_MAX, CHANNEL_NUMBER_MIN


def parameter_table() -> dict[str, str]:
    spec = SPEC_PATH.read_text(encoding="utf-8")
    section = spec[spec.index("## 17. Peer-hosted TURN (TURN)") :]
    rows: dict[str, str] = {}
    for line in section.splitlines()[1:]:
        if line.startswith("| ") and not line.startswith("| parameter"):
            name, value, _clause = (cell.strip() for cell in line.strip("|").split("|"))
            rows[name] = value
        elif rows:
            break
    return rows


def test_turn_parameter_table_matches_the_code() -> None:
    """TURN-1.3, TURN-1.5, TURN-1.6, TURN-1.7, TURN-1.8: the numbers of section 17."""
    rows = parameter_table()
    config = turn.TurnConfig(realm="r")
    assert rows["default allocation lifetime"] == f"{config.default_lifetime} s"
    assert rows["maximum allocation lifetime"] == f"{config.max_lifetime} s"
    assert rows["permission lifetime"] == f"{config.permission_lifetime} s"
    assert rows["channel binding lifetime"] == f"{config.channel_lifetime} s"
    assert rows["nonce lifetime"] == f"{config.nonce_lifetime} s"
    assert rows["allocations per user"] == str(config.max_allocations_per_user)
    channels = f"0x{CHANNEL_NUMBER_MIN:04X}..0x{CHANNEL_NUMBER_MAX:04X}"
    assert rows["channel numbers"] == channels
    assert (config.default_lifetime, config.max_lifetime) == (600, 3600)
    assert (config.permission_lifetime, config.channel_lifetime) == (300, 600)
