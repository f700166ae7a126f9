"""privacy.json: frame padding (PRIV-2), Padmé and wrap classes (PRIV-3), cover slots
(PRIV-4), transport keys and relay tags (PRIV-5)."""

import random
from typing import Any, Final

from railgun_ref.conformance.builders.base import Vectors, pseudo_random, refusal, seed_for
from railgun_ref.conformance.common import JsonObject
from railgun_ref.identity.keys import Identity
from railgun_ref.privacy import cover
from railgun_ref.privacy.padding import pad_frame, padme_length, unpad_frame, wrap_slots
from railgun_ref.privacy.unlink import relay_tag, transport_key

NOTES: Final = {
    "Bucket": "A frame padded to the smallest bucket with room for the 0x80 marker.",
    "BadMarker": "The padding marker is missing or followed by a non-zero byte.",
    "NotBucket": "A length that is not one of the frame buckets.",
    "Burst": "More than one real message waits: the burst rule shortens the gap.",
    "QueueBound": "A real message over the queue bound is refused.",
}

HEADER: Final = [
    "Metadata privacy (PRIV-2..PRIV-5). FramePaddingTest: 'frame' pads to 'padded' (valid)",
    "or 'padded' is refused with 'expectedError' (invalid). PadmeTest: a length and its",
    "Padmé length. WrapSlotsTest: a member count and its wrap-table size. CoverGapTest:",
    "a unit draw in [0, 1) and the slot gap it gives. CoverSlotTest: every unit draw is",
    "0.5, so slots come every intervalS seconds (burst slots every intervalS /",
    "burstSpeedup); real messages are submitted at the given offsets; 'emitted' lists",
    "each slot's offset, kind and the real message's index and wait. TransportKeyTest:",
    "an identity seed and an epoch give the transport public key. RelayTagTest: the",
    "blinded name of a member in a relay request.",
]


class _Half(random.Random):
    """A draw source whose every unit draw is 0.5 (what CoverSlotTest states)."""

    def random(self) -> float:
        return 0.5


def _padding(v: Vectors) -> None:
    tests = v.group("FramePaddingTest")
    for size, comment in ((0, "an empty frame"), (40, "an ACK-sized frame"), (255, "255 bytes")):
        frame = pseudo_random(f"privacy/frame/{size}", size)
        v.test(
            tests,
            comment=comment,
            result="valid",
            clause="PRIV-2.1",
            flags=("Bucket",),
            frame=frame.hex(),
            padded=pad_frame(frame).hex(),
        )
    frame = pseudo_random("privacy/frame/300", 300)
    v.test(
        tests,
        comment="300 bytes go to 4096",
        result="valid",
        clause="PRIV-2.1",
        flags=("Bucket",),
        frame=frame.hex(),
        padded=pad_frame(frame).hex(),
    )
    bad: list[tuple[bytes, str, str]] = [
        (bytes(256), "all zeros: no marker", "BadMarker"),
        (b"\x41" * 256, "no marker and no zeros", "BadMarker"),
        (b"a\x80" + bytes(253) + b"\x01", "a non-zero byte after the marker", "BadMarker"),
        (b"a\x80" + bytes(255), "257 bytes", "NotBucket"),
        (b"a\x80" + bytes(1022), "1024 bytes: an unknown bucket", "NotBucket"),
        (b"", "nothing", "NotBucket"),
    ]
    for padded, comment, flag in bad:
        code = refusal(lambda p=padded: unpad_frame(p))  # type: ignore[misc]
        assert code is not None, comment
        v.test(
            tests,
            comment=comment,
            result="invalid",
            clause="PRIV-2.2",
            flags=(flag,),
            padded=padded.hex(),
            expectedError=code.name,
        )


def _sizes(v: Vectors) -> None:
    tests = v.group("PadmeTest")
    for size in (1, 9, 100, 257, 1000, 4097, 50_000, 65_537):
        v.test(
            tests,
            comment=f"{size} bytes",
            result="valid",
            clause="PRIV-2.3",
            size=size,
            padded=padme_length(size),
        )
    slots = v.group("WrapSlotsTest")
    for members in (1, 8, 9, 32, 33, 128, 129, 512):
        v.test(
            slots,
            comment=f"{members} members",
            result="valid",
            clause="PRIV-3.1",
            members=members,
            slots=wrap_slots(members),
        )


def _gaps(v: Vectors) -> None:
    tests = v.group("CoverGapTest")
    for law in cover.GapLaw:
        profile = cover.CoverProfile(name="v", enabled=True, law=law)
        for unit in (0.0, 0.25, 0.5, 0.999):
            v.test(
                tests,
                comment=f"{law.value}, u = {unit}",
                result="valid",
                clause="PRIV-4.1",
                law=law.value,
                intervalS=30.0,
                jitterS=10.0,
                unit=unit,
                gap=round(cover.gap_from_unit(profile, unit), 9),
            )


def slot_outcome(submissions: list[float], profile: cover.CoverProfile) -> dict[str, Any]:
    t0 = 1_700_000_000.0
    scheduler = cover.CoverScheduler(profile, rng=_Half(), now=t0)
    scheduler.add_destination(b"member")
    refused, emitted = [], []
    times = sorted({*submissions, 200.0})
    for at in times:
        while (deadline := scheduler.next_deadline()) is not None and deadline <= t0 + at:
            scheduler.on_timer(now=deadline)
        for i, when in enumerate(submissions):
            if when == at:
                m = cover.Outgoing(
                    message_id=bytes([i]) * 16,
                    bucket=256,
                    destination=b"member",
                    submitted_at=t0 + at,
                )
                if not scheduler.submit(m, now=t0 + at):
                    refused.append(i)
        while (action := scheduler.next_action()) is not None:
            row: dict[str, Any] = {"at": round(action.slot_at - t0, 9)}
            if isinstance(action, cover.EmitReal):
                row |= {
                    "kind": "real",
                    "index": action.message.message_id[0],
                    "waited": round(action.waited_s, 9),
                }
            else:
                row |= {"kind": "cover"}
            emitted.append(row)
    return {"refused": refused, "emitted": emitted}


def _slot_tests(v: Vectors) -> None:
    profile = cover.CoverProfile(name="v", enabled=True, queue_bound=2, burst_slots=1)
    tests = v.group(
        "CoverSlotTest",
        intervalS=30.0,
        jitterS=10.0,
        queueBound=2,
        burstSpeedup=4.0,
        burstSlots=1,
        burstWindowS=3600.0,
    )
    cases = [
        ([], "no real message: a cover message every slot", "PRIV-4.3", ()),
        ([10.0], "one real message takes the slot at 30 s", "PRIV-4.2", ()),
        ([31.0, 32.0], "two waiting: one burst slot 7.5 s later", "PRIV-4.5", ("Burst",)),
        ([1.0, 2.0, 3.0], "a third waiting message is refused", "PRIV-4.5", ("QueueBound",)),
    ]
    for submissions, comment, clause, flags in cases:
        v.test(
            tests,
            comment=comment,
            result="valid",
            clause=clause,
            flags=flags,
            submissions=submissions,
            **slot_outcome(submissions, profile),
        )


def _keys(v: Vectors) -> None:
    tests = v.group("TransportKeyTest")
    for label, epoch in (("alice", 0), ("alice", 1), ("alice", 472_222), ("bob", 472_222)):
        seed = seed_for(f"privacy/{label}")
        key = transport_key(Identity.from_seed(seed), epoch)
        v.test(
            tests,
            comment=f"{label}, epoch {epoch}",
            result="valid",
            clause="PRIV-5.1",
            seed=seed.hex(),
            epoch=epoch,
            publicKey=key.public_key.hex(),
        )
    tags = v.group("RelayTagTest")
    member = Identity.from_seed(seed_for("privacy/bob")).public_key
    for i in range(2):
        secret, mid = pseudo_random("privacy/secret", 32), bytes([i]) * 16
        v.test(
            tags,
            comment=f"message {i}",
            result="valid",
            clause="PRIV-5.3",
            roomSecret=secret.hex(),
            messageId=mid.hex(),
            memberKey=member.hex(),
            tag=relay_tag(secret, mid, member).hex(),
        )


def build() -> JsonObject:
    v = Vectors("privacy", "railgun-privacy", HEADER, NOTES)
    _padding(v)
    _sizes(v)
    _gaps(v)
    _slot_tests(v)
    _keys(v)
    return v.document()
