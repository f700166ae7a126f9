"""`railgun-ref bench wire`: envelope encode / decode+verify vs raw PyNaCl.

The envelope's cost should be the signature, not our code: the goal is that
`decode_envelope` (strict CBOR decode twice, re-encode check, key checks,
Ed25519 verify) reaches at least 80 % of PyNaCl's raw `VerifyKey.verify` rate
on the same bytes, in the same process and run.

Each rate is the best of `repeats` timed batches (min time per op), which is
the usual way to filter scheduler noise on a shared 2-core machine.
"""

import json
import platform
import random
import time
from collections.abc import Callable
from typing import Any

import nacl
import nacl.bindings
import nacl.signing

from railgun_ref.identity.keys import Identity
from railgun_ref.wire.envelope import ENVELOPE_DOMAIN, decode_envelope, encode_envelope
from railgun_ref.wire.messages import Ping

GOAL_DECODE_VS_RAW_VERIFY = 0.80


def _rate(fn: Callable[[], object], *, batch: int, repeats: int) -> float:
    """Operations per second: best of `repeats` batches of `batch` calls."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(batch):
            fn()
        best = min(best, time.perf_counter() - start)
    return batch / best


def run(
    *, payload_size: int = 64, batch: int = 2000, repeats: int = 5, seed: int = 1
) -> dict[str, Any]:
    rng = random.Random(seed)
    identity = Identity.from_seed(rng.randbytes(32))
    body = Ping(payload=rng.randbytes(payload_size)).to_body()
    envelope = encode_envelope(
        identity, type=1, request_id=42, timestamp_ms=1_767_225_600_000, body=body
    )
    signed_part_len = len(envelope) - 64 - 4  # what the signature covers, roughly
    message = ENVELOPE_DOMAIN + rng.randbytes(signed_part_len)
    signer = nacl.signing.SigningKey(identity.seed)
    verifier = signer.verify_key
    raw_signed = signer.sign(message)

    def ours_encode() -> object:
        return encode_envelope(
            identity, type=1, request_id=42, timestamp_ms=1_767_225_600_000, body=body
        )

    rates = {
        "ours_encode_sign_per_s": _rate(ours_encode, batch=batch, repeats=repeats),
        "ours_decode_verify_per_s": _rate(
            lambda: decode_envelope(envelope), batch=batch, repeats=repeats
        ),
        "pynacl_sign_per_s": _rate(lambda: signer.sign(message), batch=batch, repeats=repeats),
        "pynacl_verify_per_s": _rate(
            lambda: verifier.verify(raw_signed), batch=batch, repeats=repeats
        ),
    }
    ratio_decode = rates["ours_decode_verify_per_s"] / rates["pynacl_verify_per_s"]
    ratio_encode = rates["ours_encode_sign_per_s"] / rates["pynacl_sign_per_s"]
    return {
        "benchmark": "wire",
        "peer": "PyNaCl raw Ed25519 sign/verify on a message of the same size",
        "envelope_bytes": len(envelope),
        "payload_bytes": payload_size,
        "batch": batch,
        "repeats": repeats,
        **{k: round(v, 1) for k, v in rates.items()},
        "decode_verify_vs_raw_verify": round(ratio_decode, 3),
        "encode_sign_vs_raw_sign": round(ratio_encode, 3),
        "goal_decode_verify_vs_raw_verify": GOAL_DECODE_VS_RAW_VERIFY,
        "goal_met": ratio_decode >= GOAL_DECODE_VS_RAW_VERIFY,
        "environment": {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "pynacl": nacl.__version__,
            "libsodium": "bundled with PyNaCl",
        },
    }


def main(*, json_output: bool, payload_size: int = 64) -> int:
    result = run(payload_size=payload_size)
    if json_output:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:36} {value}")
    return 0
