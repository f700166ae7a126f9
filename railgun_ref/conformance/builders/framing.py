"""framing.json: the stream frame decoder (STR-1.1..STR-1.3) fed in chunks."""

from typing import Final

from railgun_ref.conformance.builders.base import Vectors, pseudo_random
from railgun_ref.conformance.common import JsonObject
from railgun_ref.core.constants import MAX_STREAM_MESSAGE_SIZE, STREAM_LENGTH_PREFIX_SIZE
from railgun_ref.core.errors import ErrorCode, RemoteProtocolError
from railgun_ref.wire.framing import FrameDecoder, encode_frame

NOTES: Final = {
    "Whole": "Frames arrive in one read.",
    "Split": "Frames are split across reads.",
    "Limit": "A length at or over the limit of 69632 bytes.",
    "ZeroLength": "A length of zero.",
}

HEADER: Final = [
    "Stream framing (STR-1.x): a frame is a 4-byte big-endian length N and N bytes.",
    "The receiver feeds 'chunks' (what successive reads returned) in order and takes",
    "out every complete frame after each chunk. 'frames' are the payloads it must take",
    "out, 'buffered' the bytes left waiting, and 'expectedError' the code on which it",
    "must close the connection (after taking out the frames listed).",
]


def decode_chunks(chunks: list[bytes]) -> tuple[list[bytes], int, ErrorCode | None]:
    """Feed `chunks` to a fresh decoder: (frames taken out, bytes buffered, error code)."""
    decoder = FrameDecoder()
    frames: list[bytes] = []
    for chunk in chunks:
        decoder.feed(chunk)
        try:
            while (frame := decoder.next_frame()) is not None:
                frames.append(frame)
        except RemoteProtocolError as exc:
            return frames, decoder.buffered, exc.code
    return frames, decoder.buffered, None


def build() -> JsonObject:
    v = Vectors("framing", "railgun-stream-framing", HEADER, NOTES)
    tests = v.group("FrameDecodeTest", maxFrameSize=MAX_STREAM_MESSAGE_SIZE)
    one = encode_frame(b"\x01\x02\x03")
    two = encode_frame(pseudo_random("framing/two", 40))
    limit = MAX_STREAM_MESSAGE_SIZE.to_bytes(STREAM_LENGTH_PREFIX_SIZE, "big")
    over = (MAX_STREAM_MESSAGE_SIZE + 1).to_bytes(STREAM_LENGTH_PREFIX_SIZE, "big")
    zero = bytes(STREAM_LENGTH_PREFIX_SIZE)
    cases: list[tuple[list[bytes], str, str, str]] = [
        ([one], "one frame of 3 bytes in one read", "STR-1.1", "Whole"),
        ([one + two], "two frames in one read", "STR-1.1", "Whole"),
        ([one[:2], one[2:5], one[5:]], "one frame over three reads", "STR-1.1", "Split"),
        ([bytes([b]) for b in one + two], "two frames, one byte per read", "STR-1.1", "Split"),
        ([one + two[:10]], "a frame and the start of another", "STR-1.1", "Split"),
        ([one[:3]], "a length prefix cut short", "STR-1.1", "Split"),
        ([limit + bytes(16)], "length 69632, the limit: wait for the rest", "STR-1.2", "Limit"),
        ([over], "length 69633: close the connection", "STR-1.3", "Limit"),
        ([b"\xff\xff\xff\xff"], "length 2^32-1: close the connection", "STR-1.3", "Limit"),
        ([zero], "length 0: close the connection", "STR-1.3", "ZeroLength"),
        ([one + zero + two], "a frame, then length 0: the frame is kept", "STR-1.3", "ZeroLength"),
    ]
    for chunks, comment, clause, flag in cases:
        frames, buffered, error = decode_chunks(chunks)
        outcome: JsonObject = (
            {"buffered": buffered} if error is None else {"expectedError": error.name}
        )
        v.test(
            tests,
            comment=comment,
            result="valid" if error is None else "invalid",
            clause=clause,
            flags=(flag,),
            chunks=[chunk.hex() for chunk in chunks],
            frames=[frame.hex() for frame in frames],
            **outcome,
        )
    return v.document()
