"""The checks of privacy.json (PRIV-2..PRIV-5), registered in the runner."""

from collections.abc import Callable
from typing import Final

from railgun_ref.conformance.builders.privacy import slot_outcome
from railgun_ref.conformance.common import JsonObject
from railgun_ref.core.errors import RemoteProtocolError
from railgun_ref.identity.keys import Identity
from railgun_ref.privacy import cover
from railgun_ref.privacy.padding import pad_frame, padme_length, unpad_frame, wrap_slots
from railgun_ref.privacy.unlink import relay_tag, transport_key


class PrivacyMismatchError(AssertionError):
    """What the reference concluded differs from what the vector says."""


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise PrivacyMismatchError(message)


def check_padding(group: JsonObject, test: JsonObject) -> None:
    padded = bytes.fromhex(test["padded"])
    if test["result"] == "valid":
        frame = bytes.fromhex(test["frame"])
        _expect(pad_frame(frame) == padded, "padded frame differs")
        _expect(unpad_frame(padded) == frame, "unpadded frame differs")
        return
    try:
        unpad_frame(padded)
    except RemoteProtocolError as exc:
        _expect(exc.code.name == test["expectedError"], f"error {exc.code.name}")
        return
    _expect(False, "accepted but the vector is invalid")


def check_padme(group: JsonObject, test: JsonObject) -> None:
    _expect(padme_length(test["size"]) == test["padded"], "Padmé length differs")


def check_wrap_slots(group: JsonObject, test: JsonObject) -> None:
    _expect(wrap_slots(test["members"]) == test["slots"], "wrap slots differ")


def check_gap(group: JsonObject, test: JsonObject) -> None:
    profile = cover.CoverProfile(
        name="v",
        enabled=True,
        law=cover.GapLaw(test["law"]),
        interval_s=test["intervalS"],
        jitter_s=test["jitterS"],
    )
    got = round(cover.gap_from_unit(profile, test["unit"]), 9)
    _expect(got == test["gap"], f"gap {got}")


def check_slots(group: JsonObject, test: JsonObject) -> None:
    profile = cover.CoverProfile(
        name="v",
        enabled=True,
        interval_s=group["intervalS"],
        jitter_s=group["jitterS"],
        queue_bound=group["queueBound"],
        burst_speedup=group["burstSpeedup"],
        burst_slots=group["burstSlots"],
        burst_window_s=group["burstWindowS"],
    )
    got = slot_outcome(test["submissions"], profile)
    _expect(got == {"refused": test["refused"], "emitted": test["emitted"]}, f"slots {got}")


def check_transport_key(group: JsonObject, test: JsonObject) -> None:
    key = transport_key(Identity.from_seed(bytes.fromhex(test["seed"])), test["epoch"])
    _expect(key.public_key.hex() == test["publicKey"], "transport key differs")


def check_relay_tag(group: JsonObject, test: JsonObject) -> None:
    tag = relay_tag(
        bytes.fromhex(test["roomSecret"]),
        bytes.fromhex(test["messageId"]),
        bytes.fromhex(test["memberKey"]),
    )
    _expect(tag.hex() == test["tag"], "relay tag differs")


CHECKS: Final[dict[str, Callable[[JsonObject, JsonObject], None]]] = {
    "FramePaddingTest": check_padding,
    "PadmeTest": check_padme,
    "WrapSlotsTest": check_wrap_slots,
    "CoverGapTest": check_gap,
    "CoverSlotTest": check_slots,
    "TransportKeyTest": check_transport_key,
    "RelayTagTest": check_relay_tag,
}
