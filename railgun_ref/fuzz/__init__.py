"""Coverage-guided fuzzing of every decoder that takes bytes from the network (ABUSE-5).

`targets` names each decoder and the one exception family it may raise (a
`RemoteProtocolError`; the node and the DNS server raise nothing at all);
`runner` drives a target with atheris (libFuzzer for Python) for a bounded
time or number of runs; ``python -m railgun_ref.fuzz`` is that run in a
process of its own, with only railgun_ref (and dnslib) instrumented for
coverage. `railgun-ref fuzz TARGET --seconds N` starts it; tests/fuzz makes
the short bounded run CI does and replays the saved corpus.

This module imports nothing heavy: the fuzz process must import the decoders
*after* atheris has hooked the import system, or they run uninstrumented.
"""

from typing import Final

#: Every target's name (`targets.TARGETS` in this order), and "all" for every one at once.
TARGET_NAMES: Final = (
    "cbor",
    "frames",
    "envelope",
    "dht-message",
    "dht-record",
    "node",
    "node-signed",
    "central",
    "relay-frame",
    "p2p",
    "stun",
    "storeforward",
    "traversal",
    "voice",
    "room-change",
    "room-announce",
    "capacity",
    "manifest",
    "manifest-body",
    "pow",
    "rotation",
    "padding",
    "dns",
)
ALL: Final = "all"

__all__ = ["ALL", "TARGET_NAMES"]
