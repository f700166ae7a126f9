"""Protocol constants. Each names the spec clause that fixes it (paper/spec.md)."""

from typing import Final

#: ENC-1.1: the only protocol version this implementation speaks.
PROTOCOL_VERSION: Final = 1

#: ID-1.1: a NodeId is SHA-256 of the Ed25519 public key, 32 bytes.
NODE_ID_SIZE: Final = 32
#: ID-1.1: Ed25519 public key size in bytes.
PUBLIC_KEY_SIZE: Final = 32
#: ID-1.2: Ed25519 signature size in bytes.
SIGNATURE_SIZE: Final = 64
#: ID-1.1: Ed25519 private seed size in bytes.
SEED_SIZE: Final = 32

#: ENV-1.4: an envelope sent as one UDP datagram is at most this many bytes.
MAX_DATAGRAM_SIZE: Final = 1200
#: STR-1.2: an envelope carried on a stream is at most this many bytes
#: (the 64 KiB padding bucket plus room for the envelope around it).
MAX_STREAM_MESSAGE_SIZE: Final = 65536 + 4096
#: STR-1.1: stream frames carry a big-endian unsigned length prefix of this size.
STREAM_LENGTH_PREFIX_SIZE: Final = 4

#: ENV-2.3: envelopes whose timestamp differs from the receiver's clock by more
#: than this many seconds are refused as stale.
MAX_CLOCK_SKEW: Final = 300.0
#: ENV-2.4: (sender, type, request id) triples are remembered this long to refuse replays.
REPLAY_WINDOW: Final = 2 * MAX_CLOCK_SKEW

#: ENC-1.4: nesting depth limit for decoded CBOR items.
MAX_CBOR_DEPTH: Final = 8

#: APP-1.4: application-message topics used by this implementation.
APP_TOPIC_ROOM: Final = 1  #: room envelopes and their acknowledgements (HT P2P path)
APP_TOPIC_VOICE: Final = 2  #: voice call signalling (offers, answers, call control)
APP_TOPIC_TRAVERSAL: Final = 3  #: NAT traversal: relay registration, coordination, punches (NAT-1)
APP_TOPIC_RELAY: Final = 4  #: requests to committee relays (RLY-2)
APP_TOPIC_SF: Final = 5  #: store-and-forward: stores, pickups, receipts, mailbox keys (SF-8)

#: RPC-1.2: seconds a request waits for its response before it times out (default).
REQUEST_TIMEOUT: Final = 5.0

#: DHT-5.2: k, the bucket size and replication factor (default; DHT-9.1).
DHT_K: Final = 20
#: DHT-6.1: alpha, the FIND_NODE/FIND_VALUE queries a lookup keeps in flight (default; DHT-9.1).
DHT_ALPHA: Final = 3
#: DHT-5.3: consecutive failed requests after which a contact is dropped (default; DHT-9.1).
DHT_MAX_FAILURES: Final = 2
