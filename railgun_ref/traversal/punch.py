"""NAT-5: the per-node traversal core: register with a relay, then connect to peers.

A node REGISTERs with its relay (NAT-4) and learns the address the relay
observed; that is its candidate address, never the address it bound. To
connect to a peer (DCUtR's shape, over our own wire):

1. the initiator sends CONNECT (nonce, its candidates, its NAT type) through
   the relay, retransmitting every `connect_retransmit` seconds; the
   responder answers with its own CONNECT. The initiator measures the round
   trip ``rtt`` from its last CONNECT to the answer;
2. the initiator picks the plan (`plan.choose_plan`) and sends SYNC (attempt,
   plan) through the relay. The responder starts its part when SYNC arrives;
   the initiator starts ``rtt / 2`` later (DIRECT: at once), so both sides'
   first PUNCHes leave at about the same moment;
3. each side that sends (DIRECT: the initiator; REVERSE: the responder;
   PUNCH: both) sends PUNCH to each candidate of the other every
   `punch_interval` seconds for the attempt's window. Whoever receives an
   authentic PUNCH answers PUNCH_ACK to where it came from, and adds that
   address to the peer's candidates (a peer-reflexive candidate: the sender
   is authenticated, the address is where its datagram came from). A
   PUNCH_ACK proves the path both ways: the attempt succeeded;
4. a window without success starts the next attempt (always PUNCH) up to
   `max_attempts`; then, or at once for an unpunchable pair, the pair stays
   on the relay (RELAYED). When the relay itself does not answer: FAILED.

Safety: a datagram is only ever sent to the relay, to a candidate the peer
sent in an authenticated CONNECT, or back to the source of an authenticated
PUNCH from the peer. Every message is checked against the session's peer and
nonce; a session answers at most `max_messages` coordination messages; what
does not fit is dropped and counted.
"""

from collections import deque
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Final

from railgun_ref.capacity.nat import NatType
from railgun_ref.core.counters import Counters
from railgun_ref.core.errors import LocalProtocolError, RemoteProtocolError
from railgun_ref.core.ids import Address, NodeId
from railgun_ref.identity.keys import Identity, RandomBytes
from railgun_ref.traversal import messages
from railgun_ref.traversal.envelopes import open_envelope, seal
from railgun_ref.traversal.messages import Plan
from railgun_ref.traversal.plan import choose_plan

MAX_CANDIDATES: Final = 12  #: advertised (8) plus peer-reflexive ones learned while punching


@dataclass(frozen=True, slots=True, kw_only=True)
class TraversalConfig:
    """Timers and limits (seconds)."""

    connect_retransmit: float = 0.5
    coordination_timeout: float = 3.0  #: no answer over the relay: FAILED
    punch_interval: float = 0.01
    punch_window: float = 0.4  #: at least; an attempt lasts max(window, 4 rtt)
    max_attempts: int = 3
    keepalive: float = 15.0  #: re-REGISTER this often (keeps the NAT mapping)
    linger: float = 2.0  #: a finished session still answers PUNCHes this long
    max_messages: int = 32  #: coordination messages one session accepts
    max_sessions: int = 64

    def __post_init__(self) -> None:
        if not 1 <= self.max_attempts <= messages.MAX_ATTEMPTS:
            raise LocalProtocolError(f"max_attempts must be 1..{messages.MAX_ATTEMPTS}")


class Outcome(StrEnum):
    DIRECT = "direct"  #: the responder was reachable
    REVERSED = "reversed"  #: the initiator was reachable: the responder's datagram opened it
    PUNCHED = "punched"  #: simultaneous sends through both filters
    RELAYED = "relayed"  #: no direct path: the pair stays on the relay
    FAILED = "failed"  #: not even the relay answered


class FailureReason(StrEnum):
    UNPUNCHABLE = "unpunchable"  #: the NAT pair cannot be punched (NAT-3.1)
    PUNCH_TIMEOUT = "punch_timeout"  #: every attempt's window passed without a PUNCH_ACK
    COORDINATION_TIMEOUT = "coordination_timeout"  #: the relay path did not answer
    NOT_REGISTERED = "not_registered"  #: no observed address yet: register first
    TOO_MANY_SESSIONS = "too_many_sessions"


_SUCCESS: Final = {Plan.DIRECT: Outcome.DIRECT, Plan.REVERSE: Outcome.REVERSED}


@dataclass(frozen=True, slots=True, kw_only=True)
class SendDatagram:
    data: bytes
    destination: Address


@dataclass(frozen=True, slots=True, kw_only=True)
class Registered:
    """The relay observed this node at `observed`."""

    observed: Address


@dataclass(frozen=True, slots=True, kw_only=True)
class TraversalFinished:
    """One connection attempt to `peer` ended (both sides report one)."""

    peer: NodeId
    initiator: bool
    outcome: Outcome
    reason: FailureReason | None
    direct: Address | None  #: the peer's address on the direct path
    attempts: int  #: punch attempts made (0: none)
    started: float
    finished: float


TraversalAction = SendDatagram | Registered | TraversalFinished


class TraversalCounter(StrEnum):
    SESSIONS = "traversal.sessions"  #: label: initiator / responder
    OUTCOME = "traversal.outcome"  #: label: `Outcome`
    PUNCHES_SENT = "traversal.punches_sent"
    REJECTED_MALFORMED = "traversal.rejected_malformed"
    REJECTED_NO_SESSION = "traversal.rejected_no_session"  #: unknown peer or nonce
    REJECTED_FLOOD = "traversal.rejected_flood"
    REJECTED_NOT_RELAY = "traversal.rejected_not_relay"  #: OBSERVED not from the relay
    GLARE_YIELDED = "traversal.glare_yielded"  #: both sides initiated; ours gave way (NAT-5.6)
    IGNORED = "traversal.ignored"


class Role(StrEnum):
    INITIATOR = "initiator"
    RESPONDER = "responder"


class SessionState(Enum):
    CONNECTING = "connecting"  #: initiator: CONNECT sent, waiting for the answer
    WAIT_SYNC = "wait-sync"  #: responder: waiting for SYNC (also between attempts)
    WAIT_START = "wait-start"  #: initiator: SYNC sent, waiting rtt/2 to start
    PUNCHING = "punching"
    DONE = "done"  #: finished; lingers to answer late PUNCHes


class SessionEvent(Enum):
    ANSWERED = "answered"  #: the responder's CONNECT arrived
    SYNCED = "synced"  #: SYNC (responder) or its send (initiator)
    START = "start"  #: the initiator's rtt/2 wait ended
    WINDOW_OVER = "window-over"
    ACKED = "acked"
    RETRY = "retry"  #: the initiator starts its next attempt
    GIVE_UP = "give-up"


TRANSITIONS: Final[dict[tuple[SessionState, SessionEvent], SessionState]] = {
    (SessionState.CONNECTING, SessionEvent.ANSWERED): SessionState.WAIT_START,
    (SessionState.CONNECTING, SessionEvent.GIVE_UP): SessionState.DONE,
    (SessionState.WAIT_START, SessionEvent.START): SessionState.PUNCHING,
    (SessionState.WAIT_START, SessionEvent.ACKED): SessionState.DONE,
    (SessionState.WAIT_START, SessionEvent.GIVE_UP): SessionState.DONE,
    (SessionState.WAIT_SYNC, SessionEvent.SYNCED): SessionState.PUNCHING,
    (SessionState.WAIT_SYNC, SessionEvent.RETRY): SessionState.WAIT_START,
    (SessionState.WAIT_SYNC, SessionEvent.ACKED): SessionState.DONE,
    (SessionState.WAIT_SYNC, SessionEvent.GIVE_UP): SessionState.DONE,
    (SessionState.PUNCHING, SessionEvent.SYNCED): SessionState.PUNCHING,
    (SessionState.PUNCHING, SessionEvent.ACKED): SessionState.DONE,
    (SessionState.PUNCHING, SessionEvent.WINDOW_OVER): SessionState.WAIT_SYNC,
    (SessionState.PUNCHING, SessionEvent.GIVE_UP): SessionState.DONE,
}


@dataclass(slots=True, kw_only=True)
class _Session:
    peer: NodeId
    role: Role
    nonce: bytes
    started: float
    state: SessionState
    deadline: float
    peer_nat: NatType = NatType.UNKNOWN
    candidates: list[Address] = field(default_factory=list)
    plan: Plan = Plan.PUNCH
    attempt: int = 0
    rtt: float = 0.0
    sent_at: float = 0.0
    window_end: float = 0.0
    messages: int = 0


def _sends(plan: Plan, role: Role) -> bool:
    """Does `role` send PUNCHes unprompted under `plan`? (NAT-5.3)"""
    if plan is Plan.DIRECT:
        return role is Role.INITIATOR
    if plan is Plan.REVERSE:
        return role is Role.RESPONDER
    return plan is Plan.PUNCH


class TraversalCore:
    """The sans-IO traversal core of one node (`ProtocolCore[TraversalAction]`)."""

    def __init__(
        self,
        identity: Identity,
        *,
        relay: Address,
        random_bytes: RandomBytes,
        nat: NatType = NatType.UNKNOWN,
        config: TraversalConfig | None = None,
        seq_start: int = 0,
    ) -> None:
        """`seq_start`: the first envelope request id less one. A node whose other
        components share its identity (the client's node, NAT-6.3) starts it at a
        random value so that a restart never repeats a (key, type, id) its peers'
        replay guards still hold (ENV-2.4)."""
        self.identity = identity
        self.relay = relay
        self.nat = nat  #: this node's NAT type (from RFC 5780 detection)
        self.config = config or TraversalConfig()
        self.counters: Counters[TraversalCounter] = Counters()
        self.observed: Address | None = None
        self._random_bytes = random_bytes
        self._sessions: dict[NodeId, _Session] = {}
        self._actions: deque[TraversalAction] = deque()
        self._seq = seq_start
        self._next_register: float | None = None

    # ------------------------------------------------------------ inputs

    def register(self, *, now: float) -> None:
        """Send REGISTER to the relay now and every `keepalive` seconds after."""
        self._send(messages.Register(), self.relay, now=now)
        self._next_register = now + self.config.keepalive

    def connect(self, peer: NodeId, *, now: float) -> None:
        """Start connecting to `peer` (registered with the same relay); nothing new while
        an attempt with `peer` (either side's) is still running."""
        running = self._sessions.get(peer)
        if running is not None and running.state is not SessionState.DONE:
            self.counters.inc(TraversalCounter.IGNORED)
            return
        if self.observed is None or len(self._sessions) >= self.config.max_sessions:
            reason = (
                FailureReason.NOT_REGISTERED
                if self.observed is None
                else FailureReason.TOO_MANY_SESSIONS
            )
            self._report(peer, Role.INITIATOR, Outcome.FAILED, reason, None, 0, now, now)
            return
        nonce = self._random_bytes(messages.NONCE_SIZE)
        if len(nonce) != messages.NONCE_SIZE:
            raise LocalProtocolError("the byte source returned the wrong number of bytes")
        session = _Session(
            peer=peer,
            role=Role.INITIATOR,
            nonce=nonce,
            started=now,
            state=SessionState.CONNECTING,
            deadline=now + self.config.connect_retransmit,
        )
        self._sessions[peer] = session
        self.counters.inc(TraversalCounter.SESSIONS, label=Role.INITIATOR)
        self._send_connect(session, now=now)

    def receive_datagram(self, data: bytes, src: Address, *, now: float) -> None:
        """A datagram from `src`: a signed envelope carrying a traversal message (NAT-1)."""
        try:
            received = open_envelope(data)
        except RemoteProtocolError:
            self.counters.inc(TraversalCounter.REJECTED_MALFORMED)
            return
        self.receive(received.sender, received.message, src, now=now)

    def receive_payload(self, sender: NodeId, payload: bytes, src: Address, *, now: float) -> None:
        """An APP payload on the traversal topic whose envelope a node already
        authenticated as `sender`'s (the client's node, NAT-6.3)."""
        try:
            message = messages.decode(payload)
        except RemoteProtocolError:
            self.counters.inc(TraversalCounter.REJECTED_MALFORMED)
            return
        self.receive(sender, message, src, now=now)

    def receive(
        self, sender: NodeId, message: messages.TraversalMessage, src: Address, *, now: float
    ) -> None:
        """An authenticated traversal message from `sender`, arrived from `src`."""
        match message:
            case messages.Observed(address=address):
                self._on_observed(address, src)
            case messages.Connect():
                self._on_connect(sender, message, src, now=now)
            case messages.Sync():
                self._on_sync(sender, message, src, now=now)
            case messages.Punch(nonce=nonce):
                self._on_punch(sender, nonce, src, now=now)
            case messages.PunchAck(nonce=nonce):
                self._on_ack(sender, nonce, src, now=now)
            case messages.Register() | messages.Relay():
                self.counters.inc(TraversalCounter.IGNORED)

    # ------------------------------------------------------------ messages

    def _on_observed(self, address: Address, src: Address) -> None:
        if src != self.relay:
            self.counters.inc(TraversalCounter.REJECTED_NOT_RELAY)
            return
        self.observed = address
        self._actions.append(Registered(observed=address))

    def _session_for(self, sender: NodeId, nonce: bytes, src: Address | None) -> _Session | None:
        """The live session with `sender` and `nonce` (src: must be the relay, if given)."""
        session = self._sessions.get(sender)
        if session is None or session.nonce != nonce or (src is not None and src != self.relay):
            self.counters.inc(TraversalCounter.REJECTED_NO_SESSION)
            return None
        session.messages += 1
        if session.messages > self.config.max_messages:
            self.counters.inc(TraversalCounter.REJECTED_FLOOD)
            return None
        return session

    def _on_connect(
        self, sender: NodeId, message: messages.Connect, src: Address, *, now: float
    ) -> None:
        if src != self.relay:
            self.counters.inc(TraversalCounter.REJECTED_NOT_RELAY)
            return
        session = self._sessions.get(sender)
        if session is not None and session.role is Role.INITIATOR:
            if session.state is SessionState.CONNECTING and session.nonce == message.nonce:
                self._on_answer(session, message, now=now)
                return
            if not self._yields(session, sender):
                self.counters.inc(TraversalCounter.REJECTED_NO_SESSION)
                return
            del self._sessions[sender]  # glare (NAT-5.6): answer the peer's attempt instead
            self.counters.inc(TraversalCounter.GLARE_YIELDED)
            session = None
        if session is None or session.nonce != message.nonce:
            if self.observed is None or (
                session is None and len(self._sessions) >= self.config.max_sessions
            ):
                self.counters.inc(TraversalCounter.IGNORED)
                return
            session = self._new_responder(sender, message, now=now)
        elif self._session_for(sender, message.nonce, src) is None:
            return
        self._send_connect(session, now=now)  # a retransmitted CONNECT gets the answer again

    def _yields(self, session: _Session, sender: NodeId) -> bool:
        """NAT-5.6: both sides initiated at once; the lower NodeId's attempt goes on."""
        return session.state is SessionState.CONNECTING and sender < self.identity.node_id

    def _new_responder(self, sender: NodeId, message: messages.Connect, *, now: float) -> _Session:
        session = _Session(
            peer=sender,
            role=Role.RESPONDER,
            nonce=message.nonce,
            started=now,
            state=SessionState.WAIT_SYNC,
            deadline=now + self.config.coordination_timeout,
            peer_nat=message.nat,
            candidates=list(message.addresses),
        )
        session.plan = choose_plan(message.nat, self.nat)
        self._sessions[sender] = session
        self.counters.inc(TraversalCounter.SESSIONS, label=Role.RESPONDER)
        return session

    def _on_answer(self, session: _Session, message: messages.Connect, *, now: float) -> None:
        session.rtt = max(0.0, now - session.sent_at)
        session.peer_nat = message.nat
        session.candidates = list(message.addresses)
        session.plan = choose_plan(self.nat, message.nat)
        if session.plan is Plan.RELAY:
            sync = messages.Sync(nonce=session.nonce, attempt=1, plan=Plan.RELAY)
            self._send_relayed(session, sync, now=now)
            self._finish(session, Outcome.RELAYED, FailureReason.UNPUNCHABLE, None, now=now)
            return
        self._start_attempt(session, SessionEvent.ANSWERED, now=now)

    def _start_attempt(self, session: _Session, event: SessionEvent, *, now: float) -> None:
        """Initiator: the next attempt's SYNC, then start (DIRECT: now; else after rtt/2)."""
        session.attempt += 1
        if session.attempt > 1:
            session.plan = Plan.PUNCH
        sync = messages.Sync(nonce=session.nonce, attempt=session.attempt, plan=session.plan)
        self._send_relayed(session, sync, now=now)
        session.state = TRANSITIONS[(session.state, event)]
        delay = 0.0 if session.plan is Plan.DIRECT else session.rtt / 2
        session.deadline = now + delay

    def _on_sync(self, sender: NodeId, message: messages.Sync, src: Address, *, now: float) -> None:
        session = self._session_for(sender, message.nonce, src)
        if session is None or session.role is not Role.RESPONDER:
            return
        if session.state is SessionState.DONE or message.attempt <= session.attempt:
            return  # a duplicate, or late
        if message.plan is Plan.RELAY:
            self._finish(session, Outcome.RELAYED, FailureReason.UNPUNCHABLE, None, now=now)
            return
        session.attempt = message.attempt
        if message.attempt > 1:
            session.plan = Plan.PUNCH
        self._begin_window(session, SessionEvent.SYNCED, now=now)

    def _begin_window(self, session: _Session, event: SessionEvent, *, now: float) -> None:
        session.state = TRANSITIONS[(session.state, event)]
        window = max(self.config.punch_window, 4 * session.rtt)
        session.window_end = now + window
        session.deadline = now
        self._punch(session, now=now)

    def _on_punch(self, sender: NodeId, nonce: bytes, src: Address, *, now: float) -> None:
        session = self._sessions.get(sender)
        if session is None or session.nonce != nonce:
            self.counters.inc(TraversalCounter.REJECTED_NO_SESSION)
            return
        if session.state is SessionState.CONNECTING:
            self.counters.inc(TraversalCounter.IGNORED)
            return
        if src not in session.candidates and len(session.candidates) < MAX_CANDIDATES:
            session.candidates.append(src)  # peer-reflexive: authenticated sender, its source
        attempt = max(1, session.attempt)
        self._send(messages.PunchAck(nonce=nonce, attempt=attempt), src, now=now)
        if session.state is not SessionState.DONE:  # so the peer gets an ACK of its own
            self._send(messages.Punch(nonce=nonce, attempt=attempt), src, now=now)

    def _on_ack(self, sender: NodeId, nonce: bytes, src: Address, *, now: float) -> None:
        session = self._sessions.get(sender)
        if session is None or session.nonce != nonce or src not in session.candidates:
            self.counters.inc(TraversalCounter.REJECTED_NO_SESSION)
            return
        if session.state in (SessionState.CONNECTING, SessionState.DONE):
            return
        first = session.attempt <= 1
        outcome = _SUCCESS.get(session.plan, Outcome.PUNCHED) if first else Outcome.PUNCHED
        self._finish(session, outcome, None, src, now=now)

    # ------------------------------------------------------------ timers

    def on_timer(self, *, now: float) -> None:
        if self._next_register is not None and now >= self._next_register:
            self.register(now=now)
        for session in list(self._sessions.values()):
            if now >= session.deadline:
                self._due(session, now=now)

    def _due(self, session: _Session, *, now: float) -> None:
        match session.state:
            case SessionState.CONNECTING:
                if now - session.started >= self.config.coordination_timeout:
                    reason = FailureReason.COORDINATION_TIMEOUT
                    self._finish(session, Outcome.FAILED, reason, None, now=now)
                else:
                    self._send_connect(session, now=now)
            case SessionState.WAIT_START:
                self._begin_window(session, SessionEvent.START, now=now)
            case SessionState.PUNCHING:
                self._punch(session, now=now)
            case SessionState.WAIT_SYNC:
                self._wait_over(session, now=now)
            case SessionState.DONE:
                del self._sessions[session.peer]

    def _punch(self, session: _Session, *, now: float) -> None:
        """One round of PUNCHes (if this side sends in this plan), or the window's end."""
        if now >= session.window_end:
            session.state = TRANSITIONS[(session.state, SessionEvent.WINDOW_OVER)]
            if session.role is Role.INITIATOR:
                self._next_attempt(session, now=now)
            else:
                session.deadline = now + self.config.coordination_timeout
            return
        if _sends(session.plan, session.role):
            punch = messages.Punch(nonce=session.nonce, attempt=session.attempt)
            for candidate in session.candidates:
                self._send(punch, candidate, now=now)
                self.counters.inc(TraversalCounter.PUNCHES_SENT)
        session.deadline = min(session.window_end, now + self.config.punch_interval)

    def _next_attempt(self, session: _Session, *, now: float) -> None:
        if session.attempt >= self.config.max_attempts:
            self._finish(session, Outcome.RELAYED, FailureReason.PUNCH_TIMEOUT, None, now=now)
            return
        self._start_attempt(session, SessionEvent.RETRY, now=now)

    def _wait_over(self, session: _Session, *, now: float) -> None:
        """Responder: no (further) SYNC came in time."""
        if session.attempt >= self.config.max_attempts:
            self._finish(session, Outcome.RELAYED, FailureReason.PUNCH_TIMEOUT, None, now=now)
        elif session.attempt == 0:
            reason = FailureReason.COORDINATION_TIMEOUT
            self._finish(session, Outcome.FAILED, reason, None, now=now)
        else:  # the initiator gave up early (or its SYNC was lost): stay relayed
            self._finish(session, Outcome.RELAYED, FailureReason.PUNCH_TIMEOUT, None, now=now)

    def next_deadline(self) -> float | None:
        deadlines = [s.deadline for s in self._sessions.values()]
        if self._next_register is not None:
            deadlines.append(self._next_register)
        return min(deadlines, default=None)

    def next_action(self) -> TraversalAction | None:
        return self._actions.popleft() if self._actions else None

    # ------------------------------------------------------------ outputs

    def _send(
        self, message: messages.TraversalMessage, destination: Address, *, now: float
    ) -> None:
        self._seq += 1
        data = seal(self.identity, message, now=now, seq=self._seq)
        self._actions.append(SendDatagram(data=data, destination=destination))

    def _send_relayed(
        self, session: _Session, message: messages.TraversalMessage, *, now: float
    ) -> None:
        self._seq += 1
        inner = seal(self.identity, message, now=now, seq=self._seq)
        self._send(messages.Relay(to=session.peer, inner=inner), self.relay, now=now)

    def _send_connect(self, session: _Session, *, now: float) -> None:
        assert self.observed is not None  # sessions exist only once registered
        connect = messages.Connect(nonce=session.nonce, addresses=(self.observed,), nat=self.nat)
        self._send_relayed(session, connect, now=now)
        if session.role is Role.INITIATOR:
            session.sent_at = now
            session.deadline = now + self.config.connect_retransmit

    def _finish(
        self,
        session: _Session,
        outcome: Outcome,
        reason: FailureReason | None,
        direct: Address | None,
        *,
        now: float,
    ) -> None:
        session.state = SessionState.DONE
        session.deadline = now + self.config.linger
        attempts, started = session.attempt, session.started
        self._report(session.peer, session.role, outcome, reason, direct, attempts, started, now)

    def _report(
        self,
        peer: NodeId,
        role: Role,
        outcome: Outcome,
        reason: FailureReason | None,
        direct: Address | None,
        attempts: int,
        started: float,
        now: float,
    ) -> None:
        self.counters.inc(TraversalCounter.OUTCOME, label=outcome)
        self._actions.append(
            TraversalFinished(
                peer=peer,
                initiator=role is Role.INITIATOR,
                outcome=outcome,
                reason=reason,
                direct=direct,
                attempts=attempts,
                started=started,
                finished=now,
            )
        )
