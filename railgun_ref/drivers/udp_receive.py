"""One receive loop for every UDP server of the drivers (STUN, TURN, DNS).

A UDP socket on loopback reports transient errors on receive — an ICMP
port-unreachable from a client that went away surfaces as `OSError` on the
next `receive()` on Linux. A server must count those and keep serving, yet
not spin forever on a socket that is really broken: `MAX_RECEIVE_ERRORS` in
a row end the loop by re-raising.
"""

from collections.abc import AsyncIterator, Callable
from typing import Final

import anyio
import anyio.abc

from railgun_ref.core.ids import Address

#: Receive errors in a row after which the socket is considered broken.
MAX_RECEIVE_ERRORS: Final = 100


async def udp_datagrams(
    sock: anyio.abc.UDPSocket,
    *,
    on_error: Callable[[], None],
    max_errors: int = MAX_RECEIVE_ERRORS,
) -> AsyncIterator[tuple[bytes, Address]]:
    """Yield ``(data, (host, port))`` until `sock` closes.

    Each receive error calls `on_error` (the caller's counter) and is
    skipped; `max_errors` of them in a row re-raise the last one.
    """
    errors_in_a_row = 0
    while True:
        try:
            data, (host, port) = await sock.receive()
        except (anyio.ClosedResourceError, anyio.EndOfStream):
            return
        except (anyio.BrokenResourceError, OSError):
            on_error()
            errors_in_a_row += 1
            if errors_in_a_row >= max_errors:
                raise
            await anyio.sleep(0)
            continue
        errors_in_a_row = 0
        yield data, (str(host), int(port))
