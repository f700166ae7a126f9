"""storeforward.json: rendezvous keys, message codec and holder scripts (SF-x).

Three test types, each computed by the reference while it is built:

* ``SfRendezvousTest``: room secret, recipient and time -> epoch, rendezvous
  id, DHT key, and the mailbox key of an identity seed (SF-1.x);
* ``SfMessageDecodeTest``: bytes -> the decoded message, or the refusal code
  (SF-6.2);
* ``SfHolderScriptTest``: inputs to a storage holder with their times, and
  after each what it sends, what it persists, what it holds, and the
  refusal code if it refused (SF-2 .. SF-7). The holder's authoriser is
  `VectorAuthoriser` (SF-3.5).

Cases are tables; the helpers below turn a row into bytes.
"""

from typing import Any, Final, NamedTuple

from railgun_ref.conformance.builders.base import T0, Vectors, pseudo_random, seed_for
from railgun_ref.conformance.common import JsonObject, sf_observe, sf_run_script
from railgun_ref.core import cbor
from railgun_ref.core.errors import LocalProtocolError, RemoteProtocolError
from railgun_ref.core.ids import NodeId
from railgun_ref.identity.keys import Identity
from railgun_ref.storeforward import holder as sfh
from railgun_ref.storeforward import messages as m
from railgun_ref.storeforward import rendezvous as rv
from railgun_ref.storeforward.authorisers import vector_proof

NOTES: Final = {
    "Derivation": "A rendezvous id, DHT key or mailbox key derived from its inputs.",
    "CallerError": "Inputs a caller must not give (a short secret, a 31-byte id).",
    "Codec": "Bytes given to the store-and-forward decoder.",
    "Store": "A STORE request reaches the holder.",
    "Forged": "A signature that does not verify.",
    "Replay": "A request id seen before within the replay window.",
    "Expiry": "An expired message, or one expiring too far ahead.",
    "Size": "A ciphertext that is not exactly a size bucket.",
    "Authorisation": "A sender the injected authoriser refuses.",
    "Quota": "A sender, recipient or holder limit reached.",
    "Pickup": "A PICKUP by the recipient's mailbox key.",
    "Receipt": "A delivery receipt that deletes messages.",
    "NotOwner": "A receipt signed by a key that is not the message's mailbox key.",
    "Tombstone": "A deleted message offered again (store or replica): no resurrection.",
    "Repair": "Holder-to-holder SYNC and REPLICATE.",
    "Timer": "The holder's timer: expiries and tombstone purges.",
    "Admission": "SF-9: a STORE paying for admission, or a RESULT naming the price.",
}

HEADER: Final = [
    "Store-and-forward (SF-x). SfRendezvousTest pins SF-1 key derivation.",
    "SfMessageDecodeTest: 'encoded' must decode to 'decoded' (and re-encode to the same",
    "bytes) or be refused with 'expectedError'. SfHolderScriptTest: a holder with NodeId",
    "'holder', the group's 'config' and the SF-3.5 vector authoriser (proof = SHA-256(",
    "'railgun/v1/sf-vector-proof' 0x00 || sender NodeId || rendezvous key)) is created at",
    "the first step's 'now'; each step gives it 'input' (hex) from 'peer', or runs its",
    "timer, then drains its actions: 'sent' (peer, hex), 'persisted' (message ids put,",
    "deleted, tombstoned, purged), 'held' and 'tombstoned' ids, and 'refusal' (the",
    "ErrorCode of an input refused, or null). 'counters' is the holder's at the end.",
]

SECRET: Final = pseudo_random("storeforward/room-secret", 32)
SENDER: Final = Identity.from_seed(seed_for("storeforward/sender"))
OTHER: Final = Identity.from_seed(seed_for("storeforward/other-sender"))
RECIPIENT: Final = Identity.from_seed(seed_for("storeforward/recipient"))
STRANGER: Final = Identity.from_seed(seed_for("storeforward/stranger-mailbox"))
HOLDER: Final = NodeId(pseudo_random("storeforward/holder", 32))
PEER: Final = NodeId(pseudo_random("storeforward/peer", 32))
EPOCH: Final = rv.epoch_of(T0)
RID: Final = rv.rendezvous_id(SECRET, RECIPIENT.node_id, EPOCH)
KEY: Final = rv.rendezvous_key(SECRET, RECIPIENT.node_id, EPOCH)
MAILBOX: Final = rv.mailbox_identity(RECIPIENT.seed, RID)
DAY: Final = 86_400.0


# ---------------------------------------------------------------- SF-1 derivation

#: (room secret, recipient, now, what, valid)
_DERIVATIONS: Final[tuple[tuple[bytes, bytes, float, str, bool], ...]] = (
    (SECRET, RECIPIENT.node_id, T0, "the vectors' room and recipient at T0", True),
    (SECRET, RECIPIENT.node_id, T0 + DAY, "the same a day later: a new epoch", True),
    (SECRET, RECIPIENT.node_id, EPOCH * DAY, "the first second of the epoch", True),
    (SECRET, RECIPIENT.node_id, (EPOCH + 1) * DAY - 0.001, "the last millisecond of it", True),
    (SECRET, SENDER.node_id, T0, "another recipient in the same room", True),
    (bytes(16), RECIPIENT.node_id, T0, "a 16-byte room secret (the shortest)", True),
    (bytes(15), RECIPIENT.node_id, T0, "a 15-byte room secret", False),
    (SECRET, RECIPIENT.node_id[:31], T0, "a 31-byte recipient id", False),
)


def _derivation(v: Vectors, tests: list[JsonObject], row: tuple[Any, ...]) -> None:
    secret, recipient, now, what, valid = row
    fields: JsonObject = {"roomSecret": secret.hex(), "recipient": recipient.hex(), "now": now}
    try:
        epoch = rv.epoch_of(now)
        rid = rv.rendezvous_id(secret, NodeId(recipient), epoch)
    except LocalProtocolError:
        assert not valid, what
        v.test(
            tests, comment=what, result="invalid", clause="SF-1.2", flags=("CallerError",), **fields
        )
        return
    assert valid, what
    mailbox = rv.mailbox_identity(RECIPIENT.seed, rid)
    outputs = {
        "epoch": epoch,
        "rendezvousId": rid.hex(),
        "dhtKey": rv.rendezvous_key(secret, NodeId(recipient), epoch).hex(),
        "identitySeed": RECIPIENT.seed.hex(),
        "mailboxKey": mailbox.public_key.hex(),
    }
    v.test(
        tests,
        comment=what,
        result="valid",
        clause="SF-1.2",
        flags=("Derivation",),
        **fields,
        **outputs,
    )


# ---------------------------------------------------------------- SF-6 codec


def _store(
    n: int,
    *,
    sender: Identity = SENDER,
    now: float = T0,
    ttl: float = DAY,
    size: int = 256,
    proof: bytes | None = None,
    mailbox: bytes | None = None,
    ciphertext: bytes | None = None,
    timestamp: float | None = None,
) -> m.StoreRequest:
    """STORE number `n` (its request id) of `sender` for the vectors' recipient."""
    return m.sign_store(
        sender,
        request_id=n,
        timestamp_ms=int((now if timestamp is None else timestamp) * 1000),
        rendezvous_key=KEY,
        mailbox_key=MAILBOX.public_key if mailbox is None else mailbox,
        expires_ms=int((now + ttl) * 1000),
        ciphertext=pseudo_random(f"storeforward/ct-{n}", size)
        if ciphertext is None
        else ciphertext,
        proof=vector_proof(sender.node_id, KEY) if proof is None else proof,
    )


def _receipt(*stores: m.StoreRequest, mailbox: Identity = MAILBOX, now: float = T0) -> m.Receipt:
    ids = tuple(s.message_id for s in stores)
    return m.sign_receipt(
        mailbox, timestamp_ms=int(now * 1000), rendezvous_key=KEY, message_ids=ids
    )


def _pickup(n: int, *, mailbox: Identity = MAILBOX, now: float = T0) -> m.Pickup:
    return m.sign_pickup(mailbox, request_id=n, timestamp_ms=int(now * 1000), rendezvous_key=KEY)


def _replica(s: m.StoreRequest) -> m.Replicate:
    return m.Replicate(
        rendezvous_key=s.rendezvous_key,
        mailbox_key=s.mailbox_key,
        expires_ms=s.expires_ms,
        ciphertext=s.ciphertext,
    )


def _with(message: m.SfMessage, key: int, value: object = None, *, drop: bool = False) -> bytes:
    raw = message.to_map()
    if drop:
        del raw[key]
    else:
        raw[key] = value
    return cbor.encode(raw)


_S1: Final = _store(1)
_R1: Final = _receipt(_S1)
_MAILBOX: Final = m.MailboxKeys(
    room_id=pseudo_random("storeforward/room-id", 32),
    first_epoch=EPOCH,
    keys=tuple(
        rv.mailbox_identity(
            RECIPIENT.seed, rv.rendezvous_id(SECRET, RECIPIENT.node_id, e)
        ).public_key
        for e in range(EPOCH, EPOCH + 8)
    ),
)

#: (bytes, what, flags, clause)
_CODEC: Final[tuple[tuple[bytes, str, tuple[str, ...], str], ...]] = (
    (m.encode(_S1), "a STORE", (), "SF-6.2"),
    (
        m.encode(m.Result(request_id=1, status=0, message_id=_S1.message_id)),
        "RESULT 0",
        (),
        "SF-6.2",
    ),
    (
        m.encode(m.Result(request_id=1, status=15, message_id=_S1.message_id)),
        "RESULT QUOTA",
        (),
        "SF-6.2",
    ),
    (m.encode(_pickup(1)), "a PICKUP", (), "SF-6.2"),
    (
        m.encode(m.PickupReply(request_id=1, entries=(), more=False)),
        "an empty PICKUP_REPLY",
        (),
        "SF-6.2",
    ),
    (
        m.encode(
            m.PickupReply(request_id=1, entries=((_S1.expires_ms, _S1.ciphertext),), more=True)
        ),
        "a PICKUP_REPLY with one message",
        (),
        "SF-6.2",
    ),
    (m.encode(_R1), "a RECEIPT", (), "SF-6.2"),
    (
        m.encode(
            m.Sync(reply=False, rendezvous_key=KEY, message_ids=(_S1.message_id,), receipts=(_R1,))
        ),
        "a SYNC with a receipt",
        (),
        "SF-6.2",
    ),
    (
        m.encode(m.Sync(reply=True, rendezvous_key=KEY, message_ids=(), receipts=())),
        "an empty SYNC_REPLY",
        (),
        "SF-6.2",
    ),
    (m.encode(_replica(_S1)), "a REPLICATE", (), "SF-6.2"),
    (b"\xff", "not CBOR", (), "SF-6.2"),
    (cbor.encode([1, 1]), "an array, not a map", (), "SF-6.2"),
    (cbor.encode({0: 10, 1: 1}), "unknown type 10", (), "SF-6.1"),
    (m.encode(_MAILBOX), "a MAILBOX_KEYS with eight keys", (), "SF-8.1"),
    (_with(_MAILBOX, 2, b""), "a MAILBOX_KEYS with an empty room id", (), "SF-8.1"),
    (_with(_MAILBOX, 4, []), "a MAILBOX_KEYS naming no key", (), "SF-8.1"),
    (_with(_MAILBOX, 4, [bytes(32)] * 17), "a MAILBOX_KEYS naming 17 keys", (), "SF-8.1"),
    (_with(_MAILBOX, 4, [bytes(31)]), "a MAILBOX_KEYS with a 31-byte key", (), "SF-8.1"),
    (_with(_S1, 1, 2), "protocol version 2", (), "SF-6.2"),
    (_with(_S1, 11, 0), "a STORE with an extra key 11", (), "SF-6.2"),
    (_with(_S1, 9, drop=True), "a STORE without its proof", (), "SF-6.2"),
    (_with(_S1, 5, KEY[:31]), "a 31-byte rendezvous key", (), "SF-6.2"),
    (_with(_S1, 8, bytes(300)), "a 300-byte ciphertext: no bucket", ("Size",), "SF-2.4"),
    (_with(_S1, 9, bytes(513)), "a 513-byte proof", (), "SF-6.2"),
    (_with(_S1, 3, -1), "a negative request id", (), "SF-6.2"),
    (_with(_R1, 5, []), "a RECEIPT naming no message", (), "SF-6.2"),
    (_with(_R1, 5, [_S1.message_id] * 2), "a RECEIPT naming one id twice", (), "SF-6.2"),
    (_with(_R1, 5, [bytes([i]) * 32 for i in range(65)]), "a RECEIPT naming 65 ids", (), "SF-6.2"),
    (cbor.encode({0: 2, 1: 1, 2: 1, 3: 99, 4: bytes(32)}), "RESULT with status 99", (), "SF-6.2"),
    (cbor.encode({0: 4, 1: 1, 2: 1, 3: [], 4: 0}), "PICKUP_REPLY with more = 0", (), "SF-6.2"),
    (
        cbor.encode({0: 6, 1: 1, 2: bytes(32), 3: [], 4: [_R1.to_map()]}),
        "a SYNC carrying another key's receipt",
        (),
        "SF-6.2",
    ),
    (m.encode(_S1)[:-1], "a STORE cut short", (), "SF-6.2"),
    (b"\xa2\x01\x01\x00\x01", "a map with keys out of order", (), "SF-6.2"),
)


def _paid_store(solution: object) -> bytes:
    """SF-9.1: `_S1` re-signed with `solution` under key 11 (signature covers it)."""
    unsigned = {**_S1.signed_fields(), 11: solution}
    signature = SENDER.sign(m.STORE_DOMAIN + cbor.encode(unsigned))
    return cbor.encode({**unsigned, 10: signature})


_SOLUTION: Final = [1, pseudo_random("storeforward/pow-seed", 4), bytes(range(16)), 16]
_SEED: Final = pseudo_random("storeforward/pow-seed", 32)
_REFUSED: Final = m.Result(request_id=1, status=15, message_id=_S1.message_id)

#: SF-9: (bytes, what, flags, clause), a group of its own so earlier tcIds stay put.
_ADMISSION_CODEC: Final[tuple[tuple[bytes, str, tuple[str, ...], str], ...]] = (
    (_paid_store(_SOLUTION), "a STORE carrying a solution (key 11)", (), "SF-9.1"),
    (_paid_store([1, _SOLUTION[1], bytes(16), 0]), "a STORE paying effort 0", (), "SF-9.1"),
    (_paid_store([2, *_SOLUTION[1:]]), "a solution of version 2", (), "SF-9.1"),
    (_paid_store([1, b"abc", bytes(16), 16]), "a 3-byte seed head", (), "SF-9.1"),
    (_paid_store([1, b"abcd", bytes(15), 16]), "a 15-byte nonce", (), "SF-9.1"),
    (_paid_store([1, b"abcd", bytes(16), 2**32]), "an effort over uint32", (), "SF-9.1"),
    (_paid_store(cbor.encode(_SOLUTION)), "a solution wrapped in bytes", (), "SF-9.1"),
    (_with(_S1, 12, _SOLUTION), "a solution under key 12", (), "SF-9.1"),
    (_with(_REFUSED, 5, [_SEED, 16]), "RESULT QUOTA with a challenge (key 5)", (), "SF-9.2"),
    (_with(_REFUSED, 5, [_SEED, 1 << 19]), "a challenge of the highest effort", (), "SF-9.2"),
    (_with(_REFUSED, 5, [_SEED, (1 << 19) + 1]), "a challenge over 2^19", (), "SF-9.2"),
    (_with(_REFUSED, 5, [_SEED, 0]), "a challenge of effort 0", (), "SF-9.2"),
    (_with(_REFUSED, 5, [_SEED[:4], 16]), "a challenge naming only the seed head", (), "SF-9.2"),
    (_with(_REFUSED, 5, [_SEED]), "a challenge without an effort", (), "SF-9.2"),
    (
        _with(m.Result(request_id=1, status=0, message_id=_S1.message_id), 5, [_SEED, 16]),
        "RESULT 0 with a challenge",
        (),
        "SF-9.2",
    ),
    (_with(_REFUSED, 6, [_SEED, 16]), "a challenge under key 6", (), "SF-9.2"),
)


def _codec(v: Vectors, tests: list[JsonObject], row: tuple[Any, ...]) -> None:
    data, what, flags, clause = row
    try:
        decoded = m.decode(data)
    except RemoteProtocolError as exc:
        v.test(
            tests,
            comment=what,
            result="invalid",
            clause=clause,
            flags=("Codec", *flags),
            encoded=data.hex(),
            expectedError=exc.code.name,
        )
        return
    assert m.encode(decoded) == data, what
    v.test(
        tests,
        comment=what,
        result="valid",
        clause=clause,
        flags=("Codec", *flags),
        encoded=data.hex(),
        decoded=m.to_json(decoded),
    )


# ---------------------------------------------------------------- SF-2..SF-7 holder scripts

#: One input: (seconds after T0, peer, bytes; None runs the timer).
Step = tuple[float, NodeId, bytes | None]


class _Script(NamedTuple):
    what: str
    steps: tuple[Step, ...]
    flags: tuple[str, ...]
    clause: str
    config: JsonObject = {}  # noqa: RUF012  (NamedTuple default, never mutated)


def _at(dt: float, message: m.SfMessage | bytes, peer: NodeId = PEER) -> Step:
    return (dt, peer, message if isinstance(message, bytes) else m.encode(message))


def _timer(dt: float) -> Step:
    return (dt, PEER, None)


_S2: Final = _store(2)
_DUP: Final = _store(7, ciphertext=_S1.ciphertext)
_FOREIGN: Final = _store(3, mailbox=STRANGER.public_key)
_SHORT: Final = _store(4, ttl=60)
_LONG: Final = _store(8, ttl=7 * DAY)
_FORGED_STORE: Final = _with(_S1, 8, pseudo_random("storeforward/forged", 256))
_ZERO_KEY: Final = _with(_S1, 2, bytes(32))
_FORGED_RECEIPT: Final = _with(_R1, 3, _R1.timestamp_ms + 1)
_FORGED_PICKUP: Final = _with(_pickup(5), 3, 6)
_GRACE: Final = sfh.DEFAULT_CONFIG.tombstone_grace
_SYNC_R1: Final = m.Sync(reply=False, rendezvous_key=KEY, message_ids=(), receipts=(_R1,))

_SCRIPTS: Final[tuple[_Script, ...]] = (
    _Script("a STORE is kept, persisted, then answered 0", (_at(0, _S1),), ("Store",), "SF-2.6"),
    _Script(
        "one message stored twice is kept once, both answered 0",
        (_at(0, _S1), _at(1, _DUP)),
        ("Store",),
        "SF-3.6",
    ),
    _Script(
        "a 4 KiB ciphertext",
        (_at(0, _store(1, size=4096)),),
        ("Store", "Size"),
        "SF-2.4",
    ),
    _Script(
        "expiry exactly 7 days + 300 s ahead",
        (_at(0, _store(1, ttl=7 * DAY + 300)),),
        ("Store", "Expiry"),
        "SF-2.3",
    ),
    _Script("a forged STORE", (_at(0, _FORGED_STORE),), ("Store", "Forged"), "SF-3.1"),
    _Script(
        "a STORE signed by a small-order key", (_at(0, _ZERO_KEY),), ("Store", "Forged"), "SF-3.1"
    ),
    _Script("a replayed STORE", (_at(0, _S1), _at(10, _S1)), ("Store", "Replay"), "SF-3.1"),
    _Script(
        "a STORE 301 s old", (_at(0, _store(1, timestamp=T0 - 301)),), ("Store", "Replay"), "SF-3.1"
    ),
    _Script("an expired STORE", (_at(0, _store(1, ttl=0)),), ("Store", "Expiry"), "SF-2.3"),
    _Script(
        "a STORE expiring 7 days + 301 s ahead",
        (_at(0, _store(1, ttl=7 * DAY + 301)),),
        ("Store", "Expiry"),
        "SF-2.3",
    ),
    _Script(
        "an oversized STORE", (_at(0, _with(_S1, 8, bytes(65537))),), ("Store", "Size"), "SF-2.4"
    ),
    _Script(
        "a STORE of 64 KiB, over the largest bucket",
        (_at(0, _with(_S1, 8, bytes(65536))),),
        ("Store", "Size"),
        "SF-2.4",
    ),
    _Script(
        "a STORE of the largest bucket", (_at(0, _store(1, size=61440)),), ("Store",), "SF-2.4"
    ),
    _Script(
        "a STORE not padded to a bucket",
        (_at(0, _with(_S1, 8, bytes(1000))),),
        ("Store", "Size"),
        "SF-2.4",
    ),
    _Script(
        "a STORE the authoriser refuses",
        (_at(0, _store(1, proof=bytes(32))),),
        ("Store", "Authorisation"),
        "SF-3.5",
    ),
    _Script(
        "a sender over its message quota",
        tuple(_at(0, _store(n)) for n in (1, 2, 3)),
        ("Store", "Quota"),
        "SF-3.3",
        {"senderQuotaMessages": 2},
    ),
    _Script(
        "a recipient over its message quota",
        (_at(0, _S1), _at(0, _S2), _at(0, _store(3, sender=OTHER))),
        ("Store", "Quota"),
        "SF-3.3",
        {"recipientQuotaMessages": 2},
    ),
    _Script(
        "a holder over its storage",
        (_at(0, _store(1, size=4096)), _at(0, _S2)),
        ("Store", "Quota"),
        "SF-3.3",
        {"totalQuotaBytes": 4100},
    ),
    _Script(
        "store-and-forward disabled",
        (_at(0, _S1),),
        ("Store", "Quota"),
        "SF-2.1",
        {"enabled": False},
    ),
    _Script(
        "a PICKUP gets the mailbox's messages, oldest expiry first",
        (_at(0, _store(1, ttl=7200)), _at(0, _S2), _at(0, _FOREIGN), _at(5, _pickup(9))),
        ("Pickup",),
        "SF-5.2",
    ),
    _Script(
        "a PICKUP by another mailbox key gets nothing",
        (_at(0, _S1), _at(5, _pickup(9, mailbox=STRANGER))),
        ("Pickup",),
        "SF-5.2",
    ),
    _Script(
        "a forged PICKUP", (_at(0, _S1), _at(5, _FORGED_PICKUP)), ("Pickup", "Forged"), "SF-5.2"
    ),
    _Script(
        "a receipt deletes and leaves a tombstone",
        (_at(0, _S1), _at(5, _R1)),
        ("Receipt",),
        "SF-4.1",
    ),
    _Script(
        "a receipt signed by someone else's key",
        (_at(0, _S1), _at(5, _receipt(_S1, mailbox=STRANGER))),
        ("Receipt", "NotOwner"),
        "SF-4.2",
    ),
    _Script(
        "a forged receipt", (_at(0, _S1), _at(5, _FORGED_RECEIPT)), ("Receipt", "Forged"), "SF-4.2"
    ),
    _Script(
        "a receipt naming the recipient's message and another mailbox's",
        (_at(0, _S1), _at(0, _FOREIGN), _at(5, _receipt(_S1, _FOREIGN))),
        ("Receipt", "NotOwner"),
        "SF-4.2",
    ),
    _Script(
        "the deleted message stored again",
        (_at(0, _S1), _at(5, _R1), _at(6, _DUP)),
        ("Tombstone",),
        "SF-4.3",
    ),
    _Script(
        "a returning replica of the deleted message",
        (_at(0, _S1), _at(5, _R1), _at(6 * DAY, _replica(_S1))),
        ("Tombstone", "Repair"),
        "SF-4.3",
    ),
    _Script(
        "a receipt before the message, then its replica",
        (_at(0, _R1), _at(5, _replica(_S1))),
        ("Tombstone", "Repair"),
        "SF-4.3",
    ),
    _Script("a replica is kept", (_at(0, _replica(_S1)),), ("Repair",), "SF-7.3"),
    _Script("an expired replica", (_at(DAY, _replica(_S1)),), ("Repair", "Expiry"), "SF-7.3"),
    _Script(
        "a message is dropped at its expiry",
        (_at(0, _SHORT), _timer(59), _timer(60)),
        ("Timer",),
        "SF-2.3",
    ),
    _Script(
        "a tombstone goes after expiry + grace",
        (_at(0, _SHORT), _at(5, _receipt(_SHORT)), _timer(60 + _GRACE - 1), _timer(60 + _GRACE)),
        ("Timer", "Tombstone"),
        "SF-4.3",
    ),
    _Script(
        "a SYNC is answered with the ids wanted",
        (
            _at(0, _S1),
            _at(
                5,
                m.Sync(
                    reply=False,
                    rendezvous_key=KEY,
                    message_ids=(_S1.message_id, _S2.message_id),
                    receipts=(),
                ),
            ),
        ),
        ("Repair",),
        "SF-7.2",
    ),
    _Script(
        "a SYNC_REPLY is answered with replicas",
        (
            _at(0, _S1),
            _at(
                5,
                m.Sync(reply=True, rendezvous_key=KEY, message_ids=(_S1.message_id,), receipts=()),
            ),
        ),
        ("Repair",),
        "SF-7.2",
    ),
    _Script(
        "a SYNC carrying a receipt deletes the copy",
        (_at(0, _S1), _at(5, _SYNC_R1)),
        ("Repair", "Receipt"),
        "SF-7.2",
    ),
    _Script(
        "a RESULT nobody asked for",
        (_at(0, m.Result(request_id=1, status=0, message_id=_S1.message_id)),),
        ("Codec",),
        "SF-6.2",
    ),
    _Script("bytes that are not a message", (_at(0, b"\x00\x01"),), ("Codec",), "SF-6.2"),
)


def _script(v: Vectors, tests: list[JsonObject], script: _Script) -> None:
    steps: list[JsonObject] = [
        {"now": T0 + dt, "peer": peer.hex(), "input": None if data is None else data.hex()}
        for dt, peer, data in script.steps
    ]
    config = sfh.config_from_json(script.config)
    h = sf_run_script(
        config, HOLDER, steps, lambda holder, step: step.update(expect=sf_observe(holder))
    )
    refusal = steps[-1]["expect"]["refusal"]
    extra = {} if refusal is None else {"expectedError": refusal}
    v.test(
        tests,
        comment=script.what,
        result="valid" if refusal is None else "invalid",
        clause=script.clause,
        flags=script.flags,
        config=script.config,
        steps=steps,
        counters=h.counters.snapshot(),
        **extra,
    )


def build() -> JsonObject:
    v = Vectors("storeforward", "railgun-store-and-forward-v1", HEADER, NOTES)
    tests = v.group("SfRendezvousTest")
    for derivation in _DERIVATIONS:
        _derivation(v, tests, derivation)
    tests = v.group("SfMessageDecodeTest")
    for row in _CODEC:
        _codec(v, tests, row)
    tests = v.group("SfHolderScriptTest", holder=HOLDER.hex())
    for script in _SCRIPTS:
        _script(v, tests, script)
    tests = v.group("SfMessageDecodeTest")
    for data, what, flags, clause in _ADMISSION_CODEC:
        _codec(v, tests, (data, what, ("Admission", *flags), clause))
    return v.document()
