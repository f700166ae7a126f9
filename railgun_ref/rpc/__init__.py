"""Request/response bookkeeping shared by every RPC of the protocol (RPC-1.x)."""

from railgun_ref.rpc.labels import MessageName, UnknownCode, error_label
from railgun_ref.rpc.replay import ReplayGuard
from railgun_ref.rpc.requests import Channel, PendingRequest, PendingRequests

__all__ = [
    "Channel",
    "MessageName",
    "PendingRequest",
    "PendingRequests",
    "ReplayGuard",
    "UnknownCode",
    "error_label",
]
