"""The order port: client connections, the checks every parent order passes (kill switch,
intake, venue, duplicates, load) and the routing to a strategy. Each read is processed whole
and answered with one write. Its limits: working parents per connection, connections at once,
and how long a connection without working parents may stay silent."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import wire
from .strategies import Strategy

if TYPE_CHECKING:
    from .book import Book
    from .egress import Egress
    from .log import Log
    from .metrics import Metrics
    from .state import State

__all__ = ["Intake", "OrderPort", "OrderSession"]

#: The ids of order lines that arrive once a connection is closing, for the log (never parsed).
_ORDER_ID = re.compile(rb'"id"\s*:\s*"([^"\\]{1,64})"')


class Intake:
    """Turns one order line into an ack (and a working parent) or a reject."""

    def __init__(
        self,
        *,
        book: Book,
        egress: Egress,
        state: State,
        metrics: Metrics,
        max_working: int,
        max_per_connection: int | None = None,
    ) -> None:
        self._book = book
        self._egress = egress
        self._state = state
        self._metrics = metrics
        self._max_working = max_working
        # No one connection may hold every working slot of the node.
        self._max_per_connection = max_per_connection or max_working
        self._by_client = book.working_by_client
        self.sor: Strategy = book.strategies["sor"]
        # Where RLP orders go: the strategy an enabled flag means in this code, else sor.
        self.rlp: Strategy = self.sor

    def route_rlp_to(self, name: str | None) -> None:
        self.rlp = self._book.strategies[name] if name else self.sor

    def working_of(self, client: wire.Outbox) -> int:
        """The working parents whose reports go to `client`."""
        return self._by_client.get(client, 0)

    def submit(self, line: bytes | None, client: wire.Outbox) -> None:
        if line is None:
            self._reject(client, None, "malformed", f"line longer than {wire.MAX_LINE} bytes")
            return
        try:
            order = wire.parse_order(line)
        except wire.Rejected as r:
            self._reject(client, r.order_id, r.reason, r.detail)
            return
        # The refusals, in this order of precedence.
        state = self._state
        book = self._book
        working = book.working
        if state.killed:
            refusal = "killed"
        elif state.fenced:
            refusal = "fenced"
        elif not state.accepting:
            refusal = "intake_paused"
        elif not self._egress.connected:
            refusal = "venue_down"
        elif order.id in working:
            refusal = "duplicate"
        elif (mine := self._by_client.get(client, 0)) >= self._max_per_connection:
            # Not retried: the client frees its own slots by letting its parents finish.
            self._reject(
                client, order.id, "connection_limit", f"{mine} working parents on this connection"
            )
            return
        elif len(working) >= self._max_working:
            refusal = "overloaded"
        else:
            self._metrics.acked += 1
            client.add(wire.ack(order.id))  # before any fill or cancel the strategy may cause
            book.open(order, self.rlp if order.rlp else self.sor, client)
            return
        self._reject(client, order.id, refusal)

    def _reject(
        self, client: wire.Outbox, order_id: str | None, reason: str, detail: str | None = None
    ) -> None:
        self._metrics.rejects[reason] += 1
        client.add(wire.reject(order_id, reason, detail))


class OrderSession(asyncio.Protocol):
    """One client connection."""

    def __init__(self, port: OrderPort) -> None:
        self._port = port
        self._lines = wire.LineBuffer()
        self._transport: asyncio.Transport | None = None
        self.outbox: wire.Outbox | None = None
        self.closing = False  # answers nothing more (EOF sent)
        self.handed_over = False  # `closing` sent: still answers, closes at the client's EOF
        self.last_read = port.loop.time()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        port = self._port
        if len(port.sessions) >= port.max_connections:
            self.closing = True
            port.refused_connection()
            transport.write(wire.closing("too_many_connections"))
            transport.close()  # after writing it
            return
        wire.no_delay(transport)
        self._transport = transport
        self.outbox = wire.Outbox(port.loop, transport)
        port.sessions.add(self)
        if port.handover is not None:
            self.hand_over(port.handover)  # accepted just before the port stopped

    def data_received(self, data: bytes) -> None:
        outbox = self.outbox
        if self.closing or outbox is None:
            # Closing (handed over and past the bound, idle, or refused): these lines are not
            # read, so no order is opened for them; a client resends them (docs/protocol.md).
            self._port.unread(self, data)
            return
        self.last_read = self._port.loop.time()
        submit = self._port.intake.submit
        outbox.hold()
        try:
            for line in self._lines.feed(data):
                try:
                    submit(line, outbox)
                except Exception as e:  # a bug must not cost the client its connection
                    self._port.internal_error(e)
        finally:
            outbox.flush()

    @property
    def peer(self) -> str:
        """The client's address, for the log."""
        peer = self._transport.get_extra_info("peername") if self._transport else None
        return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)

    def eof_received(self) -> bool:
        # The client hung up, or half-closed after a `closing` (it has sent its last line, and
        # every one was answered as it was read): write what is pending and close ours. A
        # half-close cannot be told from a close, and keeping every such connection open for
        # fills that may never come would leak them.
        if self.outbox is not None:
            self.outbox.flush()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.outbox is not None:
            self.outbox.close()
        self._port.sessions.discard(self)

    def pause_writing(self) -> None:
        # The client does not read its answers: stop reading its orders until it does.
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()

    def hand_over(self, reason: str) -> None:
        """Send `closing`: the client sends nothing more here and reconnects. Lines still on
        their way are read and answered as usual; the connection closes at the client's EOF
        (eof_received) or, for a client that ignores it, at close_gracefully."""
        outbox = self.outbox
        if self.closing or self.handed_over or outbox is None:
            return
        self.handed_over = True
        outbox.add(wire.closing(reason))
        outbox.flush()

    def close_idle(self) -> None:
        """Silent too long with nothing working: `closing` (reason `idle`), then close, so the
        slot is free at once even if the client never hangs up."""
        transport = self._transport
        self.closing = True
        if self.outbox is not None:
            self.outbox.add(wire.closing("idle"))
            self.outbox.flush()
            self.outbox.close()
        if transport is not None:
            transport.close()

    def close_gracefully(self) -> None:
        """Flush, send EOF, answer nothing more (before a re-exec)."""
        self.closing = True
        transport = self._transport
        if self.outbox is not None:
            self.outbox.flush()
            self.outbox.close()
        if transport is not None and not transport.is_closing():
            if transport.can_write_eof():
                transport.write_eof()  # the client reads to the end, then hangs up
            else:
                transport.close()  # after writing what is buffered


class OrderPort:
    """The listening socket of the order port and its sessions: at most `max_connections` at
    once (one more is told `closing` and closed), and a session silent for `idle_s` with no
    working parent is closed."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        intake: Intake,
        on_error: Callable[[Exception], None],
        *,
        max_connections: int = 256,
        idle_s: float = 60.0,
        log: Log | None = None,
    ) -> None:
        self.loop = loop
        self.sock = sock
        self.intake = intake
        self.internal_error = on_error
        self.max_connections = max_connections
        self.idle_s = idle_s
        self._log = log
        self.sessions: set[OrderSession] = set()
        self.handover: str | None = None  # the reason of a handover in progress
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.TimerHandle | None = None

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    async def start(self) -> None:
        """Accept connections (again, after a handover that did not end in a re-exec)."""
        self.handover = None
        if self._server is not None:
            return
        # The server gets a duplicate: closing it stops accepting while `sock` stays open and
        # listening, so connections made meanwhile wait in its backlog for the next process.
        self._server = await self.loop.create_server(
            lambda: OrderSession(self), sock=self.sock.dup(), backlog=1024
        )
        if self._sweeper is None:
            self._sweeper = self.loop.call_later(self.idle_s / 4, self._sweep)

    def _stop_accepting(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    def unread(self, session: OrderSession, data: bytes) -> None:
        """Lines that arrived after `session` stopped reading (they open no order): logged,
        at most once per few seconds, with the first ids, so a client's unanswered orders can
        be matched to them."""
        if self._log is not None:
            ids = [m.decode(errors="replace") for m in _ORDER_ID.findall(data)[:3]]
            self._log.throttled(
                "warning",
                "order_lines_unread",
                peer=session.peer,
                lines=data.count(b"\n"),
                first_ids=ids,
            )

    def refused_connection(self) -> None:
        if self._log is not None:
            self._log.throttled("warning", "order_connection_refused", max=self.max_connections)

    def _sweep(self) -> None:
        """Close the sessions silent for `idle_s` that have no working parent (a client that
        waits for fills sends nothing, and is not idle)."""
        self._sweeper = self.loop.call_later(self.idle_s / 4, self._sweep)
        quiet_since = self.loop.time() - self.idle_s
        working = self.intake.working_of
        idle = [
            s
            for s in self.sessions
            if s.last_read <= quiet_since
            and not (s.closing or s.handed_over or s.outbox is None)
            and not working(s.outbox)
        ]
        for session in idle:
            session.close_idle()
        if idle and self._log is not None:
            self._log.info("order_idle_closed", closed=len(idle), idle_s=self.idle_s)

    async def hand_over(self, timeout_s: float, reason: str = "restart") -> None:
        """Before a re-exec: stop accepting, send every client `closing`, keep answering what
        it still sends, and wait (at most `timeout_s`) for each to half-close, which closes the
        connection; the ones left then are closed as close_sessions does."""
        self._stop_accepting()
        self.handover = reason
        began = self.loop.time()
        told = len(self.sessions)
        for session in list(self.sessions):
            session.hand_over(reason)
        await self._wait_closed(timeout_s)
        late = list(self.sessions)
        if self._log is not None:
            # `late`: clients that had not half-closed at the bound; what they sent after it
            # is not read (order_lines_unread, if it arrives before the process ends).
            self._log.info(
                "order_handover",
                reason=reason,
                told=told,
                late=len(late),
                waited_s=round(self.loop.time() - began, 3),
                late_peers=[s.peer for s in late[:8]],
            )
        for session in late:
            session.close_gracefully()

    async def close_sessions(self, timeout_s: float) -> None:
        """Let every client read its last answers and close, within `timeout_s`."""
        for session in list(self.sessions):
            session.close_gracefully()
        await self._wait_closed(timeout_s)

    async def _wait_closed(self, timeout_s: float) -> None:
        deadline = self.loop.time() + timeout_s
        while self.sessions and self.loop.time() < deadline:
            await asyncio.sleep(0.01)

    def close(self) -> None:
        self._stop_accepting()
        for session in list(self.sessions):
            session.close_gracefully()
        self.sock.close()
