"""The checks of bootstrap.json (BOOT-x), registered in `railgun_ref.conformance.runner`."""

from collections.abc import Callable
from typing import Final

from railgun_ref.bootstrap import manifest as m
from railgun_ref.conformance.builders import bootstrap_race
from railgun_ref.conformance.common import JsonObject


class BootstrapMismatchError(AssertionError):
    """What the reference concluded differs from what the vector says."""


def _conclusion(call: Callable[[], m.Manifest | m.Root]) -> JsonObject:
    try:
        accepted = call()
    except m.ManifestError as exc:
        return {"result": "invalid", "reason": exc.reason.value, "error": exc.code.name}
    return {"result": "valid", "version": accepted.version}


def _expected(test: JsonObject) -> JsonObject:
    if test["result"] == "valid":
        return {"result": "valid", "version": test["version"]}
    return {
        "result": test["result"],
        "reason": test.get("expectedReason"),
        "error": test.get("expectedError"),
    }


def _compare(got: JsonObject, test: JsonObject) -> None:
    want = _expected(test)
    if got != want:
        raise BootstrapMismatchError(f"reference concluded {got}, vector says {want}")


def check_manifest(group: JsonObject, test: JsonObject) -> None:
    trusted = m.root_from_document(bytes.fromhex(group["trustedRoot"]))
    document = bytes.fromhex(test["document"])
    got = _conclusion(
        lambda: m.verify_manifest(
            trusted, document, now=float(group["now"]), last_version=int(test["lastVersion"])
        )
    )
    _compare(got, test)


def check_root_update(group: JsonObject, test: JsonObject) -> None:
    trusted = m.root_from_document(bytes.fromhex(group["trustedRoot"]))
    chain = [bytes.fromhex(d) for d in test["chain"]]
    _compare(_conclusion(lambda: m.update_root_chain(trusted, chain)), test)


def check_race(group: JsonObject, test: JsonObject) -> None:
    """BOOT-4: the race emits the recorded timeline against the scripted network, and ends so."""
    result = bootstrap_race.play(test["scenario"], bootstrap_race.config_from_json(group["config"]))
    if result.timeline != test["steps"]:
        raise BootstrapMismatchError(f"timeline differs: got {result.timeline}")
    got = bootstrap_race.result_json(result)
    if got != test["outcome"]:
        raise BootstrapMismatchError(f"outcome {got}, vector says {test['outcome']}")


CHECKS: Final[dict[str, Callable[[JsonObject, JsonObject], None]]] = {
    "BootstrapManifestTest": check_manifest,
    "BootstrapRootUpdateTest": check_root_update,
    "BootstrapRaceTest": check_race,
}
