"""Metadata privacy (spec §24 PRIV): frame padding, slot-taking cover traffic, unlinkability.

* `padding`: every frame an intermediary sees is padded to a bucket (PRIV-2), the
  E2EE wrap table to a fixed size class (PRIV-3), Padmé as the compared option.
* `cover`: the Loopix-style slot scheduler (PRIV-4): one message per slot, a real
  message takes the next slot instead of being added.
* `unlink`: per-epoch transport keys apart from the E2EE identity, blinded relay
  targets, and batched, delayed delivery receipts (PRIV-5).
"""

__all__ = ["cover", "padding", "unlink"]
