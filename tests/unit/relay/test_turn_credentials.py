"""Ephemeral TURN credentials for room members (TURN-2): issued, checked, refused."""

import random

import pytest

from railgun_ref.capacity.sharing import CapacitySharing, CapacitySharingConfig
from railgun_ref.core.errors import LocalProtocolError
from railgun_ref.core.ids import NodeId
from railgun_ref.relay.credentials import (
    CredentialRefusal,
    check_credential,
    credential_member,
    issue_credential,
)
from railgun_ref.relay.turn import TurnConfig, TurnCounter, TurnServer
from unit.capacity.helpers import caps

from .turn_client import REALM, USERS, Client, error_code

SECRET = bytes(range(32))
OTHER_SECRET = bytes(range(1, 33))
ALICE = NodeId(bytes([0xA1]) * 32)
BOB = NodeId(bytes([0xB0]) * 32)
T0 = 1_700_000_000.0


def _server() -> TurnServer:
    sharing = CapacitySharing(caps(), CapacitySharingConfig(), now=T0)
    return TurnServer(
        TurnConfig(realm=REALM),
        users=USERS,
        sharing=sharing,
        random_bytes=random.Random(3).randbytes,
        credential_secret=SECRET,
    )


def test_issued_credential_names_member_and_expiry() -> None:
    """TURN-2.1: username "<expiry>:<node id>", password the HMAC of it."""
    credential = issue_credential(SECRET, ALICE, now=T0 + 0.7, ttl=600)
    assert credential.username == f"{int(T0) + 600}:{bytes(ALICE).hex()}"
    assert credential.expires_at == int(T0) + 600
    assert credential_member(credential.username) == ALICE
    assert check_credential(SECRET, credential.username, now=T0) == credential.password
    assert check_credential(OTHER_SECRET, credential.username, now=T0) != credential.password
    with pytest.raises(LocalProtocolError):
        issue_credential(SECRET[:16], ALICE, now=T0)
    with pytest.raises(LocalProtocolError):
        issue_credential(SECRET, ALICE, now=T0, ttl=0)


@pytest.mark.parametrize(
    ("username", "refusal"),
    [
        ("alice", CredentialRefusal.NOT_EPHEMERAL),
        (f"x:{bytes(ALICE).hex()}", CredentialRefusal.NOT_EPHEMERAL),
        (f"{int(T0) + 60}:{bytes(ALICE).hex()[:-2]}", CredentialRefusal.NOT_EPHEMERAL),
        (f"{int(T0)}:{bytes(ALICE).hex()}", CredentialRefusal.EXPIRED),
        (f"{int(T0) + 10**6}:{bytes(ALICE).hex()}", CredentialRefusal.TOO_FAR),
    ],
)
def test_check_refuses_what_was_never_issued_or_has_expired(
    username: str, refusal: CredentialRefusal
) -> None:
    """TURN-2.2: malformed, expired, or an expiry longer than ever issued."""
    assert check_credential(SECRET, username, now=T0) is refusal


def test_turn_server_allocates_for_a_member_credential() -> None:
    """TURN-2.2: the server recomputes the password and authenticates the Allocate."""
    server = _server()
    credential = issue_credential(SECRET, ALICE, now=T0)
    client = Client(server, user=credential.username, password=credential.password)
    response = client.allocate(now=T0 + 1)
    assert error_code(response) is None
    assert len(server.allocations()) == 1


def test_expired_credential_is_refused_and_counted() -> None:
    """TURN-2.2: after its expiry a credential no longer authenticates anything."""
    server = _server()
    credential = issue_credential(SECRET, ALICE, now=T0, ttl=60)
    client = Client(server, user=credential.username, password=credential.password)
    assert error_code(client.allocate(now=T0 + 61)) == 401
    assert server.counters.get_count(TurnCounter.EXPIRED_CREDENTIALS) >= 1
    assert not server.allocations()


@pytest.mark.parametrize("forge", ["other-member", "other-expiry", "other-server"])
def test_credential_of_another_member_or_server_is_refused(forge: str) -> None:
    """TURN-2.2: a username edited to another member or a later expiry, or a credential
    another server issued, does not match its password."""
    server = _server()
    credential = issue_credential(SECRET, ALICE, now=T0)
    username, password = credential.username, credential.password
    if forge == "other-member":
        username = f"{credential.expires_at}:{bytes(BOB).hex()}"
    elif forge == "other-expiry":
        username = f"{credential.expires_at + 300}:{bytes(ALICE).hex()}"
    else:
        password = issue_credential(OTHER_SECRET, ALICE, now=T0).password
    client = Client(server, user=username, password=password)
    assert error_code(client.allocate(now=T0 + 1)) == 401
    assert server.counters.get_count(TurnCounter.BAD_CREDENTIALS) >= 1
    assert not server.allocations()
