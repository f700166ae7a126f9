"""Relays, sans-IO: the peer-hosted TURN server core (`turn`, spec section 17).

The driver that gives it sockets is `railgun_ref.drivers.turn_server`.
"""

#: The submodules, imported on use only.
__all__ = ["turn"]
