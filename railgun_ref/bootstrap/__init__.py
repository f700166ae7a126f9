"""Bootstrap: signed manifests of bootstrap nodes and the staggered discovery race (sans-IO).

Rail Gun's bootstrap resilience and its requirement that bootstrap lists be signed
(paper/spec.md, section BOOT): `manifest` verifies roots and manifests the
way TUF verifies its root role (thresholds, rotation, no rollback, no
freeze); `race` races the six discovery methods and counts a peer only once
its PONG is signed by the listed key; `script` plays a race against a
scripted network (the vectors and the sequential baseline use it). Fetching,
PINGing and the peer cache are the drivers' (railgun_ref.drivers.bootstrap).
"""

__all__ = ["manifest", "race", "script"]
