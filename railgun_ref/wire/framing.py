"""Stream framing (STR-1.x): length-prefixed envelopes on a byte stream.

Each frame is a 4-byte big-endian length followed by that many bytes holding
one envelope. `FrameDecoder` is push/pull like aioquic's buffers: feed it
whatever the socket returned, then pull complete frames. A length of zero or
above the limit is a protocol error: the connection cannot be resynchronised,
so the driver closes it (STR-1.3).
"""

from typing import Final

from railgun_ref.core.constants import MAX_STREAM_MESSAGE_SIZE, STREAM_LENGTH_PREFIX_SIZE
from railgun_ref.core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError

_PREFIX: Final = STREAM_LENGTH_PREFIX_SIZE


def encode_frame(message: bytes, *, max_size: int = MAX_STREAM_MESSAGE_SIZE) -> bytes:
    if not 0 < len(message) <= max_size:
        raise LocalProtocolError(f"frame payload must be 1..{max_size} bytes")
    return len(message).to_bytes(_PREFIX, "big") + message


class FrameDecoder:
    """Reassembles frames from arbitrary chunks of a byte stream."""

    def __init__(self, *, max_size: int = MAX_STREAM_MESSAGE_SIZE) -> None:
        self._buffer = bytearray()
        self._max_size = max_size

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def next_frame(self) -> bytes | None:
        """Return the next complete frame, or None if more bytes are needed."""
        if len(self._buffer) < _PREFIX:
            return None
        length = int.from_bytes(self._buffer[:_PREFIX], "big")
        if length == 0 or length > self._max_size:
            raise RemoteProtocolError(
                ErrorCode.TOO_LARGE if length else ErrorCode.MALFORMED,
                f"frame length {length} outside 1..{self._max_size}",
            )
        if len(self._buffer) < _PREFIX + length:
            return None
        frame = bytes(self._buffer[_PREFIX : _PREFIX + length])
        del self._buffer[: _PREFIX + length]
        return frame

    @property
    def buffered(self) -> int:
        return len(self._buffer)
