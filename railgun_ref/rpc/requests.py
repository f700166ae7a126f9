"""Requests in flight and their timeouts (RPC-1.x).

Invariants:
* every request in flight has a unique 64-bit request id, drawn from the
  node's injected RNG;
* a response is matched by (request id, sender): it must come from the node
  the request was addressed to if that node's id was known (RPC-1.3), and it
  completes the request exactly once;
* every request ends in exactly one of "answered" or "timed out" (RPC-1.2).

Deadlines live in a heap with lazy deletion: answering a request removes it
from the table but leaves its heap entry, which `expire` skips. An entry is
live only while the table holds a request with that id *and* that deadline,
so a stale entry never expires a later request that reuses the id.
"""

import heapq
from dataclasses import dataclass
from enum import Enum

from railgun_ref.core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from railgun_ref.core.ids import Address, NodeId


class Channel(Enum):
    """Which transport a message travelled on."""

    DATAGRAM = "datagram"
    STREAM = "stream"


@dataclass(frozen=True, slots=True, kw_only=True)
class PendingRequest:
    request_id: int
    kind: int  #: the request's MessageType
    address: Address
    expected_sender: NodeId | None
    channel: Channel
    sent_at: float
    deadline: float


class PendingRequests:
    def __init__(self) -> None:
        self._by_id: dict[int, PendingRequest] = {}
        self._deadlines: list[tuple[float, int]] = []

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, request_id: object) -> bool:
        return request_id in self._by_id

    def add(self, request: PendingRequest) -> None:
        if request.request_id in self._by_id:
            raise LocalProtocolError(f"request id {request.request_id} already in flight")
        self._by_id[request.request_id] = request
        heapq.heappush(self._deadlines, (request.deadline, request.request_id))

    def complete(
        self, request_id: int, sender: NodeId, *, kind: int | None = None
    ) -> PendingRequest:
        """Match a response; raises `RemoteProtocolError` if it matches nothing.

        `kind` is the request type the response answers (None for ERROR, which
        answers any). Every check comes before removal: a refused response
        leaves the request in flight, so it still ends in exactly one outcome.
        """
        request = self._by_id.get(request_id)
        if request is None:
            raise RemoteProtocolError(
                ErrorCode.UNEXPECTED_RESPONSE, f"no request {request_id} in flight"
            )
        if request.expected_sender is not None and request.expected_sender != sender:
            # RPC-1.3: the request stays in flight; the right node may still answer.
            raise RemoteProtocolError(ErrorCode.WRONG_SENDER, "response from another node")
        if kind is not None and request.kind != kind:
            # RPC-1.4: a response of the wrong type does not end the request either.
            raise RemoteProtocolError(
                ErrorCode.UNEXPECTED_RESPONSE,
                f"request {request_id} is of type {request.kind}, not {kind}",
            )
        del self._by_id[request_id]
        return request

    def cancel(self, request_id: int) -> PendingRequest | None:
        return self._by_id.pop(request_id, None)

    def expire(self, now: float) -> list[PendingRequest]:
        """Remove and return every request whose deadline is at or before `now`."""
        expired: list[PendingRequest] = []
        while self._deadlines and self._deadlines[0][0] <= now:
            deadline, request_id = heapq.heappop(self._deadlines)
            if self._is_live(deadline, request_id):
                expired.append(self._by_id.pop(request_id))
        return expired

    def next_deadline(self) -> float | None:
        while self._deadlines and not self._is_live(*self._deadlines[0]):
            heapq.heappop(self._deadlines)  # answered or cancelled
        return self._deadlines[0][0] if self._deadlines else None

    def _is_live(self, deadline: float, request_id: int) -> bool:
        request = self._by_id.get(request_id)
        return request is not None and request.deadline == deadline
