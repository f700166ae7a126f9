"""Request/response bookkeeping shared by every RPC of the protocol (RPC-1.x)."""

from railgun_ref.rpc.labels import ErrorLabel, error_label
from railgun_ref.rpc.replay import ReplayGuard
from railgun_ref.rpc.requests import Channel, PendingRequest, PendingRequests

__all__ = [
    "Channel",
    "ErrorLabel",
    "PendingRequest",
    "PendingRequests",
    "ReplayGuard",
    "error_label",
]
