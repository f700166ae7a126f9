"""Address validation: stateless cookies so a node is no amplifier (ABUSE-2).

Theory of operation (the idea of DTLS's HelloVerifyRequest, RFC 6347 §4.2.1,
and QUIC's Retry, RFC 9000 §8.1):

1. An envelope's signature binds a key, not the address it came from, so a
   reply to a datagram may go to a spoofed victim. Until a source address is
   *validated*, a node's reply to it is no larger than the request
   (ABUSE-2.1); a request whose answer would be larger gets a COOKIE instead.
2. The cookie is ``HMAC-SHA-256(secret, domain || address || epoch)[:16]``
   with ``epoch = floor(now / cookie_epoch)``; it is valid in its epoch and the
   next one (ABUSE-2.2). The node keeps no state per cookie issued: only
   someone who receives datagrams at the address can echo it.
3. An address is validated by a request carrying a valid cookie, or by an
   authenticated response from that address to a request this node sent
   there (its random 64-bit id proves the peer saw our datagram); it stays
   validated for `validated_for` seconds after the last proof (ABUSE-2.3).
"""

import hashlib
import hmac
from collections import OrderedDict
from typing import Final

from railgun_ref.core.ids import Address
from railgun_ref.wire import cbor
from railgun_ref.wire.messages import encode_address

#: ABUSE-2.2: the HMAC input's domain separator.
COOKIE_DOMAIN: Final = b"railgun/v1/cookie\x00"
#: ABUSE-2.2: bytes of a cookie.
COOKIE_SIZE: Final = 16


def cookie_for(secret: bytes, address: Address, epoch: int) -> bytes:
    """ABUSE-2.2: the cookie of `address` in `epoch` under `secret`."""
    message = COOKIE_DOMAIN + cbor.encode(encode_address(address)) + epoch.to_bytes(8, "big")
    return hmac.new(secret, message, hashlib.sha256).digest()[:COOKIE_SIZE]


class AddressValidator:
    """Which source addresses are validated, and the cookies that validate them."""

    __slots__ = ("_capacity", "_epoch", "_lifetime", "_secret", "_validated")

    def __init__(self, secret: bytes, *, epoch: float, validated_for: float, capacity: int) -> None:
        self._secret = secret
        self._epoch = epoch
        self._lifetime = validated_for
        self._capacity = capacity
        self._validated: OrderedDict[Address, float] = OrderedDict()  # address -> until

    def is_validated(self, address: Address, *, now: float) -> bool:
        until = self._validated.get(address)
        return until is not None and now < until

    def validate(self, address: Address, *, now: float) -> None:
        """ABUSE-2.3: `address` proved it receives our datagrams at `now`."""
        self._validated[address] = now + self._lifetime
        self._validated.move_to_end(address)
        while len(self._validated) > self._capacity:
            self._validated.popitem(last=False)

    def issue(self, address: Address, *, now: float) -> bytes:
        return cookie_for(self._secret, address, int(now // self._epoch))

    def check(self, cookie: bytes, address: Address, *, now: float) -> bool:
        """ABUSE-2.2: a cookie of this epoch or the one before, for this address."""
        epoch = int(now // self._epoch)
        return any(
            hmac.compare_digest(cookie, cookie_for(self._secret, address, e))
            for e in (epoch, epoch - 1)
        )
