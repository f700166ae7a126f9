"""Every check the two runners report, with its clause: the one list the spec's
table of runner checks (section 9.1) and ``paper/conformance_coverage.md`` are
built from, and that tests hold each full run against.
"""

from typing import Final

#: (clause, check) of the wire runner (`wire_runner`), in report order.
WIRE_CHECKS: Final[tuple[tuple[str, str], ...]] = (
    ("MSG-2.1", "PING is answered"),
    ("ENV-2.1", "reply envelope authenticates"),
    ("RPC-1.1", "reply carries the PING's request id"),
    ("ENV-1.5", "reply stamped with the node's clock"),
    ("MSG-2.2", "reply is a PONG echoing payload and our address"),
    ("NODE-1.2", "random bytes get no reply"),
    ("NODE-1.2", "a truncated envelope gets no reply"),
    ("NODE-1.2", "a bad signature gets no reply"),
    ("ENV-1.4", "a 1300-byte PING gets no reply"),
    ("ENV-2.1", "a version-2 envelope gets no reply"),
    ("ENV-2.3", "a PING stamped an hour ago gets no reply"),
    ("ENV-2.4", "a replayed PING gets no second PONG"),
    ("MSG-1.3", "unknown type 200 gets ERROR UNKNOWN_TYPE"),
    ("MSG-1.2", "malformed PING body gets ERROR MALFORMED"),
    ("DHT-7.1", "FIND_NODE is answered with NODES"),
    ("DHT-7.2", "NODES: at most 20, nearest the target first, without the asker"),
    ("DHT-5.1", "authenticated PING senders are returned at their source address"),
    ("DHT-7.6", "a valid record of ours is STORED"),
    ("DHT-7.4", "FIND_VALUE returns the stored record byte for byte"),
    ("DHT-7.4", "a datagram VALUE of 6 room records says it is truncated"),
    ("DHT-7.8", "the same FIND_VALUE on a stream carries every record"),
    ("DHT-3.3", "STORE of a forged record gets ERROR BAD_SIGNATURE"),
    ("DHT-3.4", "STORE of a peer record naming another node gets ERROR FORBIDDEN"),
    ("DHT-7.1", "FIND_NODE of a 31-byte target gets ERROR MALFORMED"),
    ("DHT-7.1", "an empty FIND_NODE body gets ERROR MALFORMED"),
    ("DHT-7.3", "FIND_VALUE with an extra key gets ERROR MALFORMED"),
    ("DHT-7.5", "STORE of random bytes gets ERROR MALFORMED"),
    ("DHT-3.3", "STORE of a record without its signature gets ERROR MALFORMED"),
    ("DHT-7.7", "an unsolicited NODES gets no reply"),
    ("DHT-7.7", "an unsolicited VALUE gets no reply"),
    ("NODE-1.2", "a STORE envelope cut short gets no reply"),
    ("APP-1.1", "a valid APP gets no reply"),
    ("APP-1.2", "an APP with topic 0 gets no reply"),
    ("NODE-1.4", "a 1200-byte PING, whose PONG cannot fit, gets ERROR TOO_LARGE"),
    ("ENV-2.4", "a re-signed copy of a PING (same id, new timestamp) gets no second PONG"),
    ("DHT-3.5", "re-STORE UNCHANGED, lower seq STALE_SEQUENCE, higher seq REPLACED"),
    ("ENC-1.5", "a validly signed PING with the version as a two-byte head (0x1801) gets no reply"),
    ("ENC-1.3", "a validly signed PING with signed map keys 5 before 4 gets no reply"),
    ("ENC-1.5", "a validly signed PING with a body key as a three-byte head gets no reply"),
    (
        "ENC-1.5",
        "a validly signed PING with the signature's length as a three-byte head gets no reply",
    ),
    ("ID-2.2", "a PING from a small-order key gets no reply"),
    ("ENV-2.3", "a PING stamped 400 s ahead gets no reply"),
    ("NODE-1.4", "an unsolicited PONG gets no reply"),
    ("NODE-1.4", "an unsolicited ERROR gets no reply"),
    ("DHT-3.3", "STORE of a record that expired a minute ago gets ERROR EXPIRED"),
    ("DHT-3.2", "STORE of a record expiring beyond the maximum TTL gets ERROR TTL_TOO_LONG"),
    ("DHT-3.2", "STORE of a record with a 257-byte value gets ERROR TOO_LARGE"),
)

#: (clause, check) of the requester-side runner (`requester_runner`), in report order.
REQUESTER_CHECKS: Final[tuple[tuple[str, str], ...]] = (
    ("REQ-1.1", "the target prints its listening line and the lookup's result"),
    ("ENV-2.1", "every datagram the target sent authenticates as the target"),
    ("ENV-1.4", "every datagram the target sent is at most 1200 bytes"),
    ("ENV-1.5", "every datagram is stamped with the target's clock"),
    ("RPC-1.1", "the target's queries carry distinct request ids"),
    ("DHT-8.2", "the target PINGs the bootstrap, then looks up its own id there"),
    ("DHT-6.1", "at most 3 queries of a lookup wait at once"),
    ("DHT-6.4", "no peer is queried twice in one lookup"),
    ("DHT-6.3", "the lookup ends with the k closest that answered, then stops"),
    (
        "DHT-6.6",
        "a silent peer is asked at most once, is not in the result, and does not stall the lookup",
    ),
    ("RPC-1.3", "an answer signed by another node than the one asked is refused"),
    (
        "DHT-5.2",
        "a newcomer to a full bucket makes the target PING its least recently seen contact",
    ),
)

#: (clause, check) of the STUN runner (`runner_stun`, ``stun://``), in report order.
STUN_RUNNER_CHECKS: Final[tuple[tuple[str, str], ...]] = (
    ("RFC8489-7.3", "Binding: XOR-MAPPED-ADDRESS, FINGERPRINT"),
    ("RFC8489-6.3.1", "unknown comprehension-required attribute"),
    ("CAP-6.4", "PADDING echoed"),
    ("CAP-6.4", "PADDING with RESPONSE-PORT refused"),
    ("CAP-6.2", "CHANGE-REQUEST answered from OTHER-ADDRESS"),
    ("RFC8489-6.3", "garbage and indications unanswered"),
)

#: (clause, check) of the TURN runner (`runner_stun`, ``turn://``), in report order.
TURN_RUNNER_CHECKS: Final[tuple[tuple[str, str], ...]] = (
    ("TURN-1.1", "Binding answered"),
    ("TURN-1.2", "unauthenticated Allocate challenged"),
    ("TURN-1.2", "wrong password refused"),
    ("TURN-1.4", "signed Allocate succeeds, signed answer"),
    ("TURN-1.3", "signed Allocate replayed from another port"),
    ("TURN-1.1", "DONT-FRAGMENT honoured or refused with 420"),
    ("TURN-1.12", "EVEN-PORT with reservation"),
    ("TURN-1.7", "Send and Data indications"),
    ("TURN-1.9", "ChannelBind and ChannelData"),
    ("TURN-1.7", "data without permission dropped"),
    ("TURN-1.5", "Refresh LIFETIME 0 deletes"),
)

#: (clause, check) of the central-service runner (`runner_central`, ``ws://``), in report order.
CENTRAL_RUNNER_CHECKS: Final[tuple[tuple[str, str], ...]] = (
    ("CEN-3.1", "a fresh 32-byte CHALLENGE nonce on every connection"),
    ("CEN-3.3", "a JOIN before AUTH gets ERROR UNAUTHENTICATED and close 4100"),
    ("CEN-3.2", "an AUTH signed for another origin gets BAD_SIGNATURE and close 4003"),
    ("CEN-3.3", "an AUTH with another connection's nonce gets REPLAY and close 4007"),
    ("CEN-3.2", "an AUTH from a small-order key gets BAD_KEY and close 4010"),
    ("CEN-3.4", "a valid AUTH gets WELCOME with our node id"),
    ("CEN-2.1", "text, version-2 and unknown-type frames get their ERRORs; the session stays"),
    ("CEN-4.3", "a SEND by a non-member gets NOT_MEMBER"),
    ("CEN-4.3", "a SEND with a TTL over 604800 s gets TTL_TOO_LONG"),
    ("CEN-4.5", "JOIN, SEND, DELIVER once; a resend gets the first SENT; ACK deletes"),
    ("CEN-4.5", "an entry written while a member is away is pushed after its WELCOME"),
)
