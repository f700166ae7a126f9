"""Request/response bookkeeping shared by every RPC of the protocol (RPC-1.x)."""

from railgun_ref.rpc.replay import ReplayGuard
from railgun_ref.rpc.requests import Channel, PendingRequest, PendingRequests

__all__ = ["Channel", "PendingRequest", "PendingRequests", "ReplayGuard"]
