"""The simulator's fast-crypto mode: what it replaces, that it is undone after a run, that
reports say so, and that it changes the cost of a run but not what happens in it."""

import pytest

from railgun_ref.bench.crypto_check import crosscheck
from railgun_ref.bench.dht import BenchParams, run
from railgun_ref.bench.dht import main as bench_main
from railgun_ref.cli import build_parser
from railgun_ref.drivers.console import UsageError
from railgun_ref.drivers.sim import crypto_mode
from railgun_ref.identity.keys import CryptoMode, Identity, verify
from railgun_ref.identity.keys import crypto_mode as current_mode
from railgun_ref.wire.envelope import decode_envelope, encode_envelope

pytestmark = pytest.mark.timeout(300)

ALICE = Identity.from_seed(bytes(range(32)))
BOB = Identity.from_seed(bytes(range(1, 33)))


def test_fast_signatures_check_the_message_and_the_key_and_never_pass_as_real() -> None:
    real = ALICE.sign(b"message")
    with crypto_mode(CryptoMode.FAST):
        fast = ALICE.sign(b"message")
        assert len(fast) == len(real) == 64 and fast != real
        assert verify(ALICE.public_key, b"message", fast)
        assert not verify(ALICE.public_key, b"messagf", fast)
        assert not verify(BOB.public_key, b"message", fast)
        assert not verify(ALICE.public_key, b"message", real)
    assert current_mode() is CryptoMode.REAL
    assert verify(ALICE.public_key, b"message", real)
    assert not verify(ALICE.public_key, b"message", fast)


def test_the_mode_is_restored_when_a_run_raises() -> None:
    with pytest.raises(RuntimeError), crypto_mode(CryptoMode.FAST):
        assert current_mode() is CryptoMode.FAST
        raise RuntimeError("the simulation failed")
    assert current_mode() is CryptoMode.REAL


def test_envelopes_round_trip_in_fast_mode_and_keep_their_size() -> None:
    def make() -> bytes:
        return encode_envelope(ALICE, type=1, request_id=7, timestamp_ms=1, body={0: b"x"})

    real = make()
    with crypto_mode(CryptoMode.FAST):
        fast = make()
        assert decode_envelope(fast).sender_id == ALICE.node_id
    assert len(fast) == len(real) and fast[:-64] == real[:-64]


def test_fast_and_real_crypto_give_the_same_lookups() -> None:
    """The cross-check at a size a test affords: every get the same, so KS and Fisher p = 1."""
    report = crosscheck(BenchParams(nodes=40, keys=20, seed=3, rtt_ms=50.0, settle_s=0.1))
    comparison = report["comparison"]
    assert comparison["identical_per_get"] and comparison["same_event_count"]
    assert report["runs"]["real"]["success_rate"] == report["runs"]["fast"]["success_rate"] == 1.0
    for name in ("hops", "latency_ms"):
        assert comparison[name]["statistic"] == 0.0 and comparison[name]["p_value"] == 1.0
    assert comparison["success"]["p_value"] == 1.0


def test_bench_reports_label_the_crypto() -> None:
    params = BenchParams(nodes=10, keys=3, seed=7, settle_s=0.1, crypto="fast")
    result = run(params, impls=["ours"], driver="sim", in_process=True, quiet=True)
    assert result["parameters"]["crypto"] == "fast"
    assert result["impls"]["ours"]["crypto"].startswith("fast:")
    assert result["impls"]["ours"]["gets"]["success_rate"] == 1.0
    assert current_mode() is CryptoMode.REAL


def test_fast_crypto_is_a_simulator_option() -> None:
    args = build_parser().parse_args(["bench", "dht", "--driver", "sim", "--crypto", "fast"])
    assert args.crypto == "fast"
    assert build_parser().parse_args(["sim", "--crypto", "fast"]).crypto == "fast"
    with pytest.raises(UsageError):
        bench_main(json_output=True, nodes=10, keys=1, churn=0.0, rtt_ms=None, seed=1,
                   impl="ours", driver="udp", crypto="fast")  # fmt: skip
    with pytest.raises(ValueError, match="crypto"):
        BenchParams(crypto="none")
