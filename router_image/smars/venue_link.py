"""The router's one persistent connection to the venue: hello first, child orders out,
executions and refusals in; reconnects with backoff, tells the node when it is up or lost, and
says whether the venue answers (VenueHealth: connected, disconnected, or silent while children
wait for it)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import asdict, dataclass
from time import monotonic
from typing import Any

from . import wire
from .book import Book
from .log import Log

__all__ = ["VenueHealth", "VenueLink"]

CONNECTED, DISCONNECTED, SILENT = "connected", "disconnected", "silent"


@dataclass(frozen=True)
class VenueHealth:
    """What /health and /version say of the venue."""

    state: str  # CONNECTED, DISCONNECTED or SILENT
    address: str
    reason: str | None  # why the venue is not answering; None while it is
    unanswered: int  # child orders sent and not answered yet
    quiet_s: float | None  # how long they have waited with nothing heard from the venue

    @property
    def ok(self) -> bool:
        return self.state == CONNECTED

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


_BACKOFF_MIN_S = 0.05
_BACKOFF_MAX_S = 2.0


class _VenueProtocol(asyncio.Protocol):
    def __init__(self, link: VenueLink) -> None:
        self._link = link
        self._lines = wire.LineBuffer()
        self._outbox: wire.Outbox | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        wire.no_delay(transport)
        self._outbox = wire.Outbox(self._link.loop, transport)
        self._link.connected(self._outbox)

    def data_received(self, data: bytes) -> None:
        outbox = self._outbox
        if outbox is None:
            return
        self._link.last_heard = monotonic()
        outbox.hold()  # children sent while handling these answers leave in one write
        try:
            self._link.dispatch(self._lines.feed(data))
        finally:
            outbox.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._outbox is not None:
            self._outbox.close()
        self._link.lost(exc)


class VenueLink:
    def __init__(
        self,
        *,
        loop: asyncio.AbstractEventLoop,
        address: tuple[str, int],
        hello: bytes,
        book: Book,
        on_up: Callable[[wire.Outbox], None],
        on_down: Callable[[bool], None],
        log: Log,
    ) -> None:
        self.loop = loop
        self._address = address
        self._hello = hello
        self._book = book
        self._on_up = on_up
        self._on_down = on_down
        self._log = log
        self._backoff = _BACKOFF_MIN_S
        self._transport: asyncio.BaseTransport | None = None
        self._retry: asyncio.TimerHandle | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._stopped = False
        self.is_up = False
        self.last_heard = 0.0  # time.monotonic() of the venue's last bytes

    @property
    def address(self) -> str:
        return f"{self._address[0]}:{self._address[1]}"

    def health(self, unanswered: int, busy_since: float, silence_s: float) -> VenueHealth:
        """The venue is silent when `unanswered` children (the egress's, in flight since
        `busy_since`) have waited `silence_s` with nothing at all heard from it meanwhile."""
        if not self.is_up:
            reason = f"no connection to the venue at {self.address}"
            return VenueHealth(DISCONNECTED, self.address, reason, 0, None)
        quiet = round(monotonic() - max(self.last_heard, busy_since), 3) if unanswered else None
        if quiet is None or quiet < silence_s:
            return VenueHealth(CONNECTED, self.address, None, unanswered, quiet)
        children = "child order" if unanswered == 1 else "child orders"
        reason = f"the venue has answered nothing for {quiet:.1f} s with {unanswered} {children} unanswered"
        return VenueHealth(SILENT, self.address, reason, unanswered, quiet)

    def start(self) -> None:
        """Connect (again); a no-op while connected or connecting."""
        self._stopped = False
        if self._transport is not None or (self._connecting and not self._connecting.done()):
            return
        self._connecting = self.loop.create_task(self._connect())

    def stop(self) -> None:
        """Close the connection and stop reconnecting."""
        self._stopped = True
        if self._retry is not None:
            self._retry.cancel()
        if self._connecting is not None:
            self._connecting.cancel()
        if self._transport is not None:
            self._transport.close()

    async def _connect(self) -> None:
        host, port = self._address
        try:
            transport, _ = await self.loop.create_connection(
                lambda: _VenueProtocol(self), host, port
            )
        except (TimeoutError, OSError) as e:
            self._log.throttled("warning", "venue_connect_failed", error=str(e), venue=host)
            self._schedule_retry()
            return
        self._transport = transport

    def _schedule_retry(self) -> None:
        if self._stopped:
            return
        self._retry = self.loop.call_later(self._backoff, self.start)
        self._backoff = min(self._backoff * 2, _BACKOFF_MAX_S)

    # Called by the protocol.

    def connected(self, outbox: wire.Outbox) -> None:
        self.is_up = True
        self._backoff = _BACKOFF_MIN_S
        outbox.add(self._hello)  # the first line on the connection
        self._on_up(outbox)
        self._log.info("venue_connected", venue=self.address)

    def lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self.is_up:
            self.is_up = False
            self._on_down(self._stopped)
        self._schedule_retry()

    def dispatch(self, lines: list[bytes | None]) -> None:
        book = self._book
        for line in lines:
            try:
                if line is None:
                    raise wire.VenueMessageError("line too long")
                match wire.parse_venue(line):
                    case (wire.EXEC, child_id, qty, price):
                        book.on_execution(child_id, qty, price)
                    case (wire.REJECT, child_id, reason):
                        book.on_child_rejected(child_id, reason)
            except wire.VenueMessageError as e:
                book.counts.errors["venue_message"] += 1
                self._log.throttled("error", "venue_message_invalid", error=str(e))
            except Exception as e:  # a bug must not cost the venue connection
                book.counts.errors["internal"] += 1
                self._log.throttled("error", "internal_error", where="venue", error=repr(e))
