"""Abuse resistance: per-peer limits, address validation and connection slots (spec §20, ABUSE).

Sans-IO policy that the node and the drivers consult:

* `groups`: which addresses count as one source (a /24, one loopback endpoint, ...);
* `buckets`: token buckets per source group and per identity (ABUSE-1);
* `cookies`: address validation with stateless cookies, so a node is no
  amplifier (ABUSE-2);
* `slots`: the stream connection slots of a host, with idle timeouts and a
  fair share per source (ABUSE-3), a core of its own (CORE-1).
"""
