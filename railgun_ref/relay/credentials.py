"""Short-lived TURN credentials for room members (TURN-2), sans-IO.

A node that runs a peer TURN server hands each room member that asks a
credential it can check without remembering it, the "TURN REST API"
pattern (draft-uberti-behave-turn-rest-00; the ephemeral credentials that
RFC 7635 §1 cites as the common practice):

    username = "<expiry>:<member node id, 64 hex digits>"
    password = base64(HMAC-SHA-256(secret, username))

`expiry` is a Unix time in whole seconds; `secret` is per TURN server,
drawn once from the injected byte source and never sent. The TURN server
recomputes the password from the username it receives, so it keeps no table
of issued credentials, a credential dies by itself at its expiry, and a
username edited to name another member (or a later expiry) no longer
matches its password. The password then becomes the RFC 8489 §9.2
long-term password, so any TURN client (aioice, browsers) can use it.

Why this and not a signed token (an Ed25519 signature by the server's node
key over the same fields): TURN clients only know username/password
credentials; a token would need the RFC 7635 third-party authorization
attributes, which aioice and most WebRTC stacks do not implement. The HMAC
also costs the server one hash per request, not a signature check. SHA-256
instead of the draft's SHA-1: nothing else in the system uses SHA-1.
"""

import base64
import hashlib
import hmac
import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from railgun_ref.core.errors import LocalProtocolError
from railgun_ref.core.ids import NodeId

#: Bytes of a TURN server's credential secret.
CREDENTIAL_SECRET_SIZE: Final = 32
#: How long an issued credential lives by default (s): a call's set-up and a margin.
DEFAULT_CREDENTIAL_TTL: Final = 600
#: The longest lifetime a server issues (s).
MAX_CREDENTIAL_TTL: Final = 86_400


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnCredential:
    """What a member is given: long-term credentials valid until `expires_at`."""

    username: str
    password: str
    expires_at: int


class CredentialRefusal(StrEnum):
    """Why `check_credential` refused a username (TURN-2.2)."""

    NOT_EPHEMERAL = "not-ephemeral"  #: not "<expiry>:<node id>"
    EXPIRED = "expired"
    TOO_FAR = "too-far"  #: an expiry beyond what the server ever issues


def _password(secret: bytes, username: str) -> str:
    digest = hmac.new(secret, username.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def issue_credential(
    secret: bytes, member: NodeId, *, now: float, ttl: int = DEFAULT_CREDENTIAL_TTL
) -> TurnCredential:
    """TURN-2.1: the credential of `member`, valid for `ttl` seconds from `now`."""
    if len(secret) != CREDENTIAL_SECRET_SIZE:
        raise LocalProtocolError(f"a credential secret is {CREDENTIAL_SECRET_SIZE} bytes")
    if not 0 < ttl <= MAX_CREDENTIAL_TTL:
        raise LocalProtocolError(f"ttl must be within (0, {MAX_CREDENTIAL_TTL}] seconds")
    expires_at = math.floor(now) + ttl
    username = f"{expires_at}:{bytes(member).hex()}"
    return TurnCredential(
        username=username, password=_password(secret, username), expires_at=expires_at
    )


def check_credential(secret: bytes, username: str, *, now: float) -> str | CredentialRefusal:
    """TURN-2.2: the password `username` must have been issued with, or why it is refused.

    The caller (the TURN server) then checks MESSAGE-INTEGRITY with it: a
    username edited to another member or expiry yields a different password.
    """
    expiry_text, _, member = username.partition(":")
    if not (
        expiry_text.isdigit()
        and len(expiry_text) <= 12
        and len(member) == 64
        and all(c in "0123456789abcdef" for c in member)
    ):
        return CredentialRefusal.NOT_EPHEMERAL
    expires_at = int(expiry_text)
    if expires_at <= now:
        return CredentialRefusal.EXPIRED
    if expires_at > now + MAX_CREDENTIAL_TTL:
        return CredentialRefusal.TOO_FAR
    return _password(secret, username)


def credential_member(username: str) -> NodeId | None:
    """The member an ephemeral username names (None if it is not one)."""
    _, _, member = username.partition(":")
    try:
        return NodeId(bytes.fromhex(member)) if len(member) == 64 else None
    except ValueError:
        return None
