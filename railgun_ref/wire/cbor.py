"""Deterministic CBOR (ENC-1.x) under its wire name.

The codec itself is `railgun_ref.core.cbor`: identity (E2EE room messages) and
wire (envelopes, messages) both encode with it, so it sits below both, and
neither package imports the other's encoder. This module keeps
``railgun_ref.wire.cbor`` importable with the same names.
"""

from railgun_ref.core.cbor import CborValue, decode, encode

__all__ = ["CborValue", "decode", "encode"]
