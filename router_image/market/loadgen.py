"""The load generator: sends parent orders to the routers (docs/protocol.md, "Client → router") at a
set rate, retries only what a router asked to retry, and accounts for every order it sent.
`python3 -m market.loadgen --target HOST:PORT [--target ...] [--rate R] [--duration S | --count N]`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import random
import re
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from math import floor
from typing import Any

from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential, wait_random

from market.cli import Parser, positive_int
from market.wire import ID_RE, SYMBOL_RE, LineSplitter, loads

__all__ = [
    "DEFAULT_SYMBOLS",
    "Config",
    "LoadGen",
    "Target",
    "invariant_holds",
    "main",
    "parse_args",
    "run",
]

DEFAULT_SYMBOLS = ("KCG", "AAPL", "MSFT", "IBM", "GE", "XOM", "BAC", "WMT")

# Parent order states. A parent ends in one of FILLED, CANCELLED, REJECTED; at the end of a run
# ACKED counts as working and SENT as unanswered.
SENT, ACKED, RETRYING, FILLED, CANCELLED, REJECTED = range(6)

_LATENCY_SAMPLES = 50_000
#: How many unanswered parents the result describes one by one (`unanswered_sample`).
_UNANSWERED_SAMPLE = 10
#: How many of a target's connections it remembers the times of (for that description).
_CONNECTIONS_KEPT = 64
_RETRY_WAIT_MAX_S = 2.0
_now = time.monotonic

# The ack and fill lines exactly as a router writes them (docs/protocol.md, "Router → client"; the
# router's wire.py: compact, in this key order), read without JSON by Target._read_plain. A line
# that fits reads the same as through JSON: ids of these characters need no escaping, and the
# numbers are JSON numbers (ASCII digits, no leading zero). Any other line goes through JSON.
_PLAIN_ID = re.compile(r"[A-Za-z0-9_.:-]*")
_ACK_HEAD = '{"type":"ack","id":"'
_ACK_ID = len(_ACK_HEAD)  # an ack line is _ACK_HEAD + id + '"}'
_FILL_HEAD = '{"type":"fill","id":"'
_FILL_ID = len(_FILL_HEAD)  # a fill line is _FILL_HEAD + id + a tail that _fill_tail reads
_INT = r"-?+(?:0|[1-9][0-9]*+)"
_NUMBER = _INT + r"(?:\.[0-9]++)?+(?:[eE][-+]?+[0-9]++)?+"
_fill_tail_match = re.compile(  # groups: qty, leaves
    rf'","qty":({_INT}),"price":{_NUMBER},"cum":{_INT},"leaves":({_INT})\}}'
).fullmatch
# Tails repeat (a few quantities and prices): each is matched once. A bounded cache.
_FILL_TAILS: dict[str, tuple[int, int] | tuple[()]] = {}
_FILL_TAILS_MAX = 4096


def _fill_tail(tail: str) -> tuple[int, int] | tuple[()]:
    """(qty, leaves) of a plain fill line's tail, or () when the tail is not plain."""
    m = _fill_tail_match(tail)
    got = () if m is None else (int(m[1]), int(m[2]))
    if len(_FILL_TAILS) < _FILL_TAILS_MAX:
        _FILL_TAILS[tail] = got
    return got


@dataclass
class Config:
    targets: list[str]
    rate: float = 0.0
    duration: float | None = None  # neither duration nor count: 10 s
    count: int | None = None
    rlp_share: float = 0.0
    qty: int = 100
    symbols: list[str] = field(default_factory=lambda: list(DEFAULT_SYMBOLS))
    window: int = 64
    prefix: str = ""
    seed: int | None = None
    drain: float = 5.0
    progress: bool = False
    attempts: int = 20
    #: Where the result is also written when the run ends (`--account`).
    account: str | None = None
    connect_timeout: float = 3.0
    stall: float = 10.0  # --count: end the send phase when no order could leave for this long

    def __post_init__(self) -> None:
        if self.duration is None and self.count is None:
            self.duration = 10.0
        if not self.prefix:
            # Unique per run, so ids never collide with a previous run's parents on the routers.
            self.prefix = f"L{os.getpid() % 4096:03x}{os.urandom(3).hex()}"


class Parents:
    """Every parent order of the run, as the client sees it: parallel arrays indexed by the order's
    number minus one, so an order costs a few list slots rather than an object (and the garbage
    collector has nothing per order to walk)."""

    __slots__ = (
        "by_id",
        "cum",
        "epoch",
        "reason",
        "resends",
        "sent_at",
        "state",
        "tail",
        "target",
        "waiter",
    )

    def __init__(self) -> None:
        self.by_id: dict[str, int] = {}  # parent id -> index
        self.state: list[int] = []  # SENT ... REJECTED
        self.cum: list[int] = []  # shares filled
        self.target: list[int] = []  # index of its target
        self.tail: list[int] = []  # which pre-encoded line ending (symbol, side, rlp) it uses
        self.sent_at: list[float] = []  # when it was last sent
        self.epoch: list[int] = []  # the target's connection it occupies a window slot on
        # Only for the few orders refused or cancelled, and those being retried.
        self.reason: dict[int, str] = {}
        self.resends: dict[int, int] = {}
        self.waiter: dict[int, asyncio.Future] = {}

    def add(self, k: int, target: int, epoch: int, now: float) -> None:
        """State of k new orders (their ids and tails are added by the caller), sent now."""
        self.state += [SENT] * k
        self.cum += [0] * k
        self.target += [target] * k
        self.sent_at += [now] * k
        self.epoch += [epoch] * k


class _RetryAsked(Exception):
    """A router answered `reject` with `retry: true` (or the resend could not leave)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _RunOver(Exception):
    """The run's end (send phase + drain) came before the order could be resent."""


class Target(asyncio.Protocol):
    """One router: its connection (re-made after a drop) and its window of orders in flight."""

    def __init__(self, gen: LoadGen, index: int, name: str) -> None:
        self.gen = gen
        self.index = index
        self.name = name
        host, _, port = name.rpartition(":")
        self.host = host.strip("[]")
        self.port = int(port)
        self.transport: asyncio.Transport | None = None
        self.writable = False
        # The router sent `closing`: nothing more is sent on this connection, which it closes.
        self.handed_over = False
        # The router's last `closing` said it has no room for this connection.
        self.turned_away = False
        self.epoch = 0
        self.epoch_start = 0  # the number of the first order sent on this connection
        self.inflight = 0
        self.connects = 0
        self.acked = 0
        self.lost: asyncio.Future | None = None
        # epoch -> [connected, `closing` read, lost] (monotonic times; None: not yet), for the
        # description of the orders left unanswered. The last _CONNECTIONS_KEPT connections.
        self.connections: dict[int, list[float | None]] = {}
        self._lines = LineSplitter()

    # -- connection ----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.writable = True
        self.handed_over = False
        self.epoch += 1
        self.epoch_start = self.gen.sent
        # Orders left on a previous connection get no answer on this one: free their slots.
        self.inflight = 0
        self.connects += 1
        self.connections[self.epoch] = [_now(), None, None]
        self.connections.pop(self.epoch - _CONNECTIONS_KEPT, None)
        self._lines = LineSplitter()
        self.gen.target_ready(self)

    def connection_lost(self, exc: Exception | None) -> None:
        times = self.connections.get(self.epoch)
        if times is not None:
            times[2] = _now()
        self.transport = None
        self.writable = False
        self.inflight = 0
        if self.handed_over:
            # The router closes a connection it said `closing` on only once it has answered
            # every line it read: a line with no answer was never read (docs/protocol.md).
            self.gen.send_again_unread(self)
        if self.lost is not None and not self.lost.done():
            self.lost.set_result(exc)

    def pause_writing(self) -> None:
        self.writable = False

    def resume_writing(self) -> None:
        if self.handed_over:
            return
        self.writable = True
        self.gen.target_ready(self)

    def _hand_over(self) -> None:
        """The router sent `closing` (docs/protocol.md): send nothing more here, half-close so it
        knows it has every line, and read its answers until it closes; then _keep_connected
        reconnects. Orders in flight here are answered on this connection."""
        if self.handed_over or self.transport is None:
            return
        self.handed_over = True
        self.writable = False  # the window is closed
        times = self.connections.get(self.epoch)
        if times is not None:
            times[1] = _now()
        if self.transport.can_write_eof():
            self.transport.write_eof()

    # -- answers -----------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        """Account for every answer line, in order: runs of plain router answers by _read_plain,
        each other line by _read; then, in benchmark mode, refill the window."""
        lines = self._lines.feed(data)
        if not lines:
            return
        gen = self.gen
        now = _now()
        k = 0
        while k < len(lines):
            if gen.fast_answers:
                k = self._read_plain(lines, k, now)
                if k == len(lines):
                    break
            self._read(lines[k], now)
            k += 1
        if gen.refill and self.writable:
            free = gen.window - self.inflight
            if free > 0:
                gen.send_batch(self, free, now)

    def _read(self, line: str | None, now: float) -> None:
        """Account for one answer line, read as JSON: any line."""
        gen = self.gen
        parents = gen.parents
        try:
            m = loads(line)  # type: ignore[arg-type]
            kind = m["type"]
            if kind == "closing":
                # Turned away (the router is at its connection cap): come back later, not at once.
                self.turned_away = m.get("reason") == "too_many_connections"
                self._hand_over()
                return
            i = parents.by_id[m["id"]]
        except (ValueError, TypeError, KeyError, RecursionError):
            # Not ours (or not readable): nothing to account it to.
            gen.stray += 1
            return
        state = parents.state[i]
        if kind == "fill":
            try:
                q = int(m["qty"])
            except (KeyError, TypeError, ValueError):
                gen.stray += 1
                return
            qty = gen.qty
            gen.fills += 1
            gen.shares_filled += q
            before = parents.cum[i]
            after = parents.cum[i] = before + q
            if after > qty:
                # Fills after the parent was filled keep counting: that is the overfill.
                gen.excess_shares += q if before >= qty else after - qty
                if before <= qty:
                    gen.overfilled += 1
            if state < FILLED and (after >= qty or m.get("leaves") == 0):
                gen.last_fill = now
                gen.finish(i, FILLED)
                if state == RETRYING:
                    gen.wake(i, m)
        elif kind == "ack":
            if state == SENT:
                parents.state[i] = ACKED
                gen.acked += 1
                gen.working += 1
                self.acked += 1
                gen.sample_latency(now - parents.sent_at[i])
            elif state == RETRYING:
                gen.wake(i, m)
        elif kind == "reject":
            if state == SENT:
                parents.reason[i] = str(m.get("reason"))
                if m.get("retry") is True:
                    gen.start_retry(i)
                else:
                    gen.finish(i, REJECTED)
            elif state == RETRYING:
                gen.wake(i, m)
        elif kind == "cancelled":
            if state < FILLED:
                parents.reason[i] = str(m.get("reason"))
                gen.finish(i, CANCELLED)
                if state == RETRYING:
                    gen.wake(i, m)
        else:
            gen.stray += 1

    def _read_plain(self, lines: list[str | None], start: int, now: float) -> int:
        """Account for lines[start:] up to the first that needs _read; returns its index.

        The fast path: the exact ack and fill lines a router writes (wire.py of the router), for
        an order of this run that is not being retried. What it reads from such a line is what
        JSON reads from it, and it does what _read does for it, with the counts kept in locals
        and added at the end.
        """
        gen = self.gen
        parents = gen.parents
        by_id = parents.by_id
        states = parents.state
        cums = parents.cum
        sent_at = parents.sent_at
        order_target = parents.target
        order_epoch = parents.epoch
        targets = gen.targets
        qty = gen.qty
        fill_tails = _FILL_TAILS
        latencies: list[float] = []
        working = fills = shares = excess = overfilled = filled = 0
        stop = len(lines)
        try:
            for k in range(start, stop):
                line = lines[k]
                if line is None:
                    stop = k
                    break
                if line.startswith(_ACK_HEAD):
                    i = by_id.get(line[_ACK_ID:-2]) if line.endswith('"}') else None
                    if i is None or (state := states[i]) == RETRYING:
                        stop = k
                        break
                    if state == SENT:
                        states[i] = ACKED
                        latencies.append(now - sent_at[i])
                    continue
                # A fill: the id ends at the first quote (ids of this run have none).
                end = line.find('"', _FILL_ID) if line.startswith(_FILL_HEAD) else -1
                if end < 0:
                    stop = k
                    break
                tail = line[end:]
                fill = fill_tails.get(tail)
                if fill is None:
                    fill = _fill_tail(tail)
                i = by_id.get(line[_FILL_ID:end]) if fill else None
                if i is None or (state := states[i]) == RETRYING:
                    stop = k
                    break
                q, leaves = fill
                fills += 1
                shares += q
                before = cums[i]
                after = cums[i] = before + q
                if after > qty:
                    excess += q if before >= qty else after - qty
                    if before <= qty:
                        overfilled += 1
                if state < FILLED and (after >= qty or leaves == 0):
                    # gen.finish(i, FILLED), its counts added below
                    if state == ACKED:
                        working -= 1
                    states[i] = FILLED
                    filled += 1
                    target = targets[order_target[i]]
                    if order_epoch[i] == target.epoch:
                        target.inflight -= 1
        finally:
            acked = len(latencies)
            if acked:
                gen.acked += acked
                self.acked += acked
                gen.sample_latencies(latencies)
            gen.working += acked + working
            gen.fills += fills
            gen.shares_filled += shares
            gen.excess_shares += excess
            gen.overfilled += overfilled
            if filled:
                gen.last_fill = now
                gen.final[FILLED] += filled
                gen.finished += filled
                if not gen.sending and gen.finished >= gen.sent:
                    gen._check_settled()
        return stop


class LoadGen:
    """One run of the load generator: `await LoadGen(config).run()` returns the result dict."""

    def __init__(self, config: Config) -> None:
        self.cfg = config
        self.qty = config.qty
        self.window = config.window
        self.rng = random.Random(config.seed)
        self.targets = [Target(self, i, name) for i, name in enumerate(config.targets)]
        self.parents = Parents()
        # Pre-encoded order lines: head + id + one of the tails (symbol x side x rlp).
        self._head = '{"type":"order","id":"'
        self._id_prefix = config.prefix + "-"
        # Ids are the prefix and a number: with a plain prefix, every id is plain (no escaping).
        self.fast_answers = _PLAIN_ID.fullmatch(self._id_prefix) is not None
        self._tails = [
            f'","symbol":"{sym}","side":"{side}","qty":{config.qty},"rlp":{rlp}}}\n'
            for rlp in ("false", "true")
            for sym in config.symbols
            for side in ("buy", "sell")
        ]
        self._plain = len(config.symbols) * 2  # tails [0, plain) are rlp false, the rest true
        self.sending = False
        self.refill = False  # benchmark mode, while sending: answers make room for new orders
        self.sent = 0
        self.attempts = 0
        self.retries = 0
        self.acked = 0
        self.fills = 0
        self.shares_filled = 0
        self.excess_shares = 0
        self.overfilled = 0
        self.finished = 0
        self.working = 0  # acked, not finished
        self.final = [0] * 6  # parents per final state
        self.stray = 0
        self.first_send: float | None = None
        self.last_fill: float | None = None
        self.latencies: list[float] = []
        self._lat_stride = 1
        self._lat_seen = 0
        self._retry_tasks: dict[asyncio.Task, int] = {}  # -> the parent it resends
        self._rr = 0
        self._deadline = math.inf  # end of the run: send phase + drain
        self._closing = False
        self._settled: asyncio.Event | None = None
        self._send_done: asyncio.Event | None = None
        self.send_started = 0.0
        self.send_ended: float | None = None

    # -- sending -----------------------------------------------------------------------------

    def send_batch(self, target: Target, k: int, now: float) -> int:
        """Send up to k new parent orders to target in one write; returns how many."""
        count = self.cfg.count
        if count is not None:
            k = min(k, count - self.sent)
        if k <= 0 or target.transport is None or target.handed_over:
            return 0
        if self.first_send is None:
            self.first_send = now
        parents = self.parents
        by_id = parents.by_id
        order_tails = parents.tail
        head = self._head
        id_prefix = self._id_prefix
        tails = self._tails
        choices = self._plain
        share = self.cfg.rlp_share
        rnd = self.rng.random
        n = self.sent
        out = []
        for i in range(n, n + k):
            tail = floor(rnd() * choices)  # int(), cheaper: the same for 0 <= x
            if share and (share >= 1 or rnd() < share):
                tail += choices
            pid = f"{id_prefix}{i + 1}"
            by_id[pid] = i
            order_tails.append(tail)
            out.append(head)
            out.append(pid)
            out.append(tails[tail])
        parents.add(k, target.index, target.epoch, now)
        target.transport.write("".join(out).encode())
        n += k
        self.sent = n
        self.attempts += k
        target.inflight += k
        if count is not None and n >= count:
            self.end_sending()
        return k

    def target_ready(self, target: Target) -> None:
        """A target connected or drained its send buffer: fill its window in benchmark mode."""
        if self.refill and target.writable:
            free = self.window - target.inflight
            if free > 0:
                self.send_batch(target, free, _now())

    def _line(self, i: int) -> bytes:
        """The order line of parent i, as first sent."""
        return f"{self._head}{self._id_prefix}{i + 1}{self._tails[self.parents.tail[i]]}".encode()

    async def _rate_loop(self) -> None:
        """Paced mode: one loop for the whole run, never a task per order."""
        rate = self.cfg.rate
        tick = min(0.05, max(0.002, 1.0 / rate))
        burst = max(1.0, rate * 0.1)  # never catch up more than 100 ms of orders at once
        credit = 1.0  # the first order leaves at once
        last = _now()
        while self.sending:
            now = _now()
            credit = min(credit + (now - last) * rate, burst)
            last = now
            due = int(credit)
            if due:
                credit -= self._spread(due, now)
                # Orders no target could take are not owed later: the rate is a ceiling.
                credit = min(credit, 1.0)
            await asyncio.sleep(tick)

    def _spread(self, due: int, now: float) -> int:
        """Deal `due` orders round-robin over the targets that can take one; returns sent."""
        n = len(self.targets)
        shares = [0] * n
        room = [
            (self.window - t.inflight) if t.writable and t.transport is not None else 0
            for t in self.targets
        ]
        placed = 0
        idle = 0
        while placed < due and idle < n:
            i = self._rr
            self._rr = (i + 1) % n
            if room[i] > shares[i]:
                shares[i] += 1
                placed += 1
                idle = 0
            else:
                idle += 1
        sent = 0
        for t, k in zip(self.targets, shares, strict=True):
            if k:
                sent += self.send_batch(t, k, now)
        return sent

    def end_sending(self) -> None:
        if self.sending:
            self.sending = False
            self.refill = False
            self.send_ended = _now()
            self._deadline = self.send_ended + self.cfg.drain
            if self._send_done is not None:
                self._send_done.set()
            self._check_settled()

    # -- answers -----------------------------------------------------------------------------

    def finish(self, i: int, state: int) -> None:
        """Parent i reached a final state."""
        parents = self.parents
        states = parents.state
        if states[i] == ACKED:
            self.working -= 1
        states[i] = state
        self.final[state] += 1
        target = self.targets[parents.target[i]]
        if parents.epoch[i] == target.epoch:
            target.inflight -= 1
        self.finished += 1
        if not self.sending and self.finished >= self.sent:
            self._check_settled()

    def sample_latency(self, seconds: float) -> None:
        # Keep every stride-th ack; halve the samples and double the stride when full, so a long
        # run keeps a uniform sample at a bounded cost.
        self._lat_seen += 1
        if self._lat_seen % self._lat_stride == 0:
            self.latencies.append(seconds)
            if len(self.latencies) >= 2 * _LATENCY_SAMPLES:
                self.latencies = self.latencies[::2]
                self._lat_stride *= 2

    def sample_latencies(self, values: list[float]) -> None:
        """sample_latency of each of values in turn, by slices."""
        start = 0
        while start < len(values):
            stride = self._lat_stride
            # values[j] is ack number seen + 1 + j - start: kept when that is a multiple of stride.
            first = start + (-self._lat_seen - 1) % stride
            room = 2 * _LATENCY_SAMPLES - len(self.latencies)
            kept = values[first::stride]
            if len(kept) < room:
                self.latencies += kept
                self._lat_seen += len(values) - start
                return
            # The samples fill up within values: keep up to that one, halve, go on after it.
            last = first + (room - 1) * stride
            self.latencies += kept[:room]
            self._lat_seen += last + 1 - start
            self.latencies = self.latencies[::2]
            self._lat_stride *= 2
            start = last + 1

    def _check_settled(self) -> None:
        if self._settled is not None and not self.sending and self.open_orders() == 0:
            self._settled.set()

    def open_orders(self) -> int:
        """Parents not yet in a final state (working, unanswered or being retried)."""
        return self.sent - self.finished

    # -- retries -----------------------------------------------------------------------------

    def send_again_unread(self, target: Target) -> None:
        """`target`'s connection, handed over (`closing`), is closed: the orders sent on it that
        got no answer were never read by the router (it answers every line it reads before it
        closes; a client late to read `closing` may have sent some after the router stopped
        reading). Each is sent again on the next connection, as a retry the router asked for:
        the order is not on the router, so this makes no duplicate."""
        if self._closing:
            return  # the run is over: what is open stays open (unanswered)
        parents = self.parents
        states = parents.state
        index, epoch = target.index, target.epoch
        order_target, order_epoch = parents.target, parents.epoch
        for i in range(target.epoch_start, len(states)):
            if states[i] == SENT and order_target[i] == index and order_epoch[i] == epoch:
                parents.reason[i] = "unread"
                self.start_retry(i)
        # Resends (of orders sent on earlier connections) waiting for an answer there.
        unread = {"type": "reject", "reason": "unread", "retry": True}
        for i in list(parents.waiter):
            if order_target[i] == index and order_epoch[i] == epoch:
                self.wake(i, unread)

    def start_retry(self, i: int) -> None:
        """The router asked for this order again later: only such an order gets a coroutine."""
        self.parents.state[i] = RETRYING
        task = asyncio.get_running_loop().create_task(self._retry(i))
        self._retry_tasks[task] = i
        task.add_done_callback(self._retry_done)

    def _retry_done(self, task: asyncio.Task) -> None:
        i = self._retry_tasks.pop(task)
        if self.parents.state[i] == RETRYING:
            # Cancelled before it ever ran: the refusal stands.
            self.finish(i, REJECTED)

    def wake(self, i: int, m: dict) -> None:
        w = self.parents.waiter.get(i)
        if w is not None and not w.done():
            w.set_result(m)

    def _retry_stop(self, retry_state: Any) -> bool:
        return (
            self._closing
            or retry_state.attempt_number >= self.cfg.attempts
            or _now() >= self._deadline
        )

    async def _retry(self, i: int) -> None:
        parents = self.parents
        first = True
        try:
            async for attempt in AsyncRetrying(
                stop=self._retry_stop,
                wait=wait_exponential(multiplier=0.05, max=_RETRY_WAIT_MAX_S)
                + wait_random(0, 0.05),
                retry=retry_if_exception_type(_RetryAsked),
                reraise=True,
            ):
                with attempt:
                    if first:
                        # Attempt 1 is the send that was just refused: tenacity waits, then resends.
                        first = False
                        raise _RetryAsked(parents.reason.get(i) or "")
                    await self._resend(i)
        except _RetryAsked as exc:
            # Attempts or time exhausted: the last refusal stands.
            parents.reason[i] = exc.reason
            self.finish(i, REJECTED)
        except _RunOver:
            self.finish(i, REJECTED)
        except asyncio.CancelledError:
            # The run ended while the order waited to be resent: its last refusal stands.
            # (Cancelled while waiting for an answer, _resend has made it unanswered.)
            if parents.state[i] == RETRYING:
                self.finish(i, REJECTED)
            raise

    async def _resend(self, i: int) -> None:
        parents = self.parents
        states = parents.state
        now = _now()
        if now >= self._deadline or self._closing:
            raise _RunOver
        target = self.targets[parents.target[i]]
        if target.transport is None or target.handed_over:
            raise _RetryAsked(parents.reason.get(i) or "disconnected")
        if parents.epoch[i] != target.epoch:
            parents.epoch[i] = target.epoch
            target.inflight += 1
        loop = asyncio.get_running_loop()
        waiter = parents.waiter[i] = loop.create_future()
        parents.sent_at[i] = now
        parents.resends[i] = parents.resends.get(i, 0) + 1
        self.attempts += 1
        self.retries += 1
        target.transport.write(self._line(i))
        try:
            left = None if math.isinf(self._deadline) else max(0.0, self._deadline - now)
            m = await asyncio.wait_for(waiter, left)
        except TimeoutError:
            if states[i] == RETRYING:
                states[i] = SENT  # sent again and never answered: unanswered
            return
        except asyncio.CancelledError:
            if states[i] == RETRYING:
                states[i] = SENT
            raise
        finally:
            del parents.waiter[i]
        if states[i] != RETRYING:
            return  # a fill or a cancel already finished it
        kind = m.get("type")
        if kind == "ack":
            states[i] = ACKED
            self.acked += 1
            self.working += 1
            target.acked += 1
            self.sample_latency(_now() - parents.sent_at[i])
        elif kind == "reject":
            reason = parents.reason[i] = str(m.get("reason"))
            if m.get("retry") is True:
                raise _RetryAsked(reason)
            self.finish(i, REJECTED)

    # -- connections -------------------------------------------------------------------------

    def _connect_stop(self, retry_state: Any) -> bool:
        return self._closing or _now() >= self._deadline

    async def _keep_connected(self, target: Target) -> None:
        """Connect, and reconnect after a drop, until the run ends (tenacity, connection errors)."""
        loop = asyncio.get_running_loop()
        backoff = 0.05
        while not self._closing:
            try:
                async for attempt in AsyncRetrying(
                    stop=self._connect_stop,
                    wait=wait_exponential(multiplier=0.05, max=1.0) + wait_random(0, 0.05),
                    retry=retry_if_exception_type(OSError),
                    reraise=True,
                ):
                    with attempt:
                        target.lost = loop.create_future()
                        await loop.create_connection(lambda: target, target.host, target.port)
            except OSError:
                return
            await target.lost
            if target.turned_away:
                # A router at its connection cap: back off (50 ms, doubling to 1 s) rather
                # than loop connect, closing, connect.
                target.turned_away = False
                await asyncio.sleep(backoff)
                backoff = min(1.0, backoff * 2)
            else:
                backoff = 0.05

    # -- the run -----------------------------------------------------------------------------

    async def run(self) -> dict:
        cfg = self.cfg
        loop = asyncio.get_running_loop()
        self._settled = asyncio.Event()
        self._send_done = asyncio.Event()
        conn_tasks = [loop.create_task(self._keep_connected(t)) for t in self.targets]
        # Give every target a chance to connect before the clock starts.
        deadline = _now() + cfg.connect_timeout
        while _now() < deadline and not all(t.transport for t in self.targets):
            await asyncio.sleep(0.01)
        self.send_started = _now()
        self.sending = True
        progress = loop.create_task(self._progress()) if cfg.progress else None
        if cfg.duration is not None:
            self._deadline = self.send_started + cfg.duration + cfg.drain
            loop.call_later(cfg.duration, self.end_sending)
        if cfg.rate > 0:
            pacer = loop.create_task(self._rate_loop())
        else:
            pacer = None
            self.refill = True
            for t in self.targets:
                self.target_ready(t)
        watchdog = loop.create_task(self._watch_stall()) if cfg.count is not None else None
        await self._send_done.wait()
        if watchdog is not None:
            watchdog.cancel()
        if pacer is not None:
            await pacer
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._settled.wait(), cfg.drain)
        self._closing = True
        retrying = list(self._retry_tasks)
        for task in retrying:
            task.cancel()
        await asyncio.gather(*retrying, return_exceptions=True)
        for task in conn_tasks:
            task.cancel()
        for t in self.targets:
            if t.transport is not None:
                t.transport.close()
        await asyncio.gather(*conn_tasks, return_exceptions=True)
        if progress is not None:
            progress.cancel()
        return self.result(_now())

    async def _watch_stall(self) -> None:
        """A run by count has no clock: end it if nothing can be sent (every target down, or
        every window full and unanswered) instead of waiting for ever."""
        last, since = self.sent, _now()
        while self.sending:
            await asyncio.sleep(min(0.5, self.cfg.stall / 4))
            if self.sent != last:
                last, since = self.sent, _now()
            elif _now() - since >= self.cfg.stall:
                sys.stderr.write(
                    f"loadgen: nothing could be sent for {self.cfg.stall:g} s: "
                    f"ending the send phase at {self.sent} of {self.cfg.count} orders\n"
                )
                self.end_sending()

    def stop(self) -> None:
        """End the send phase now (a signal): the run drains and reports as usual."""
        self.end_sending()

    async def _progress(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            line = {
                "progress": {
                    "t": round(_now() - self.send_started, 3),
                    "sent": self.sent,
                    "acked": self.acked,
                    "filled": self.final[FILLED],
                    "rejected": self.final[REJECTED],
                    "working": self.working,
                }
            }
            sys.stderr.write(json.dumps(line) + "\n")
            sys.stderr.flush()

    def _tally(self) -> dict:
        """Final states per target, counted once at the end of the run."""
        keys = {
            SENT: "unanswered",
            ACKED: "working",
            RETRYING: "working",
            FILLED: "filled",
            CANCELLED: "cancelled",
            REJECTED: "rejected",
        }
        per = [
            dict.fromkeys(("sent", "filled", "rejected", "cancelled", "working", "unanswered"), 0)
            | {"acked": t.acked, "excess_shares": 0, "connects": t.connects}
            for t in self.targets
        ]
        totals = dict.fromkeys(keys.values(), 0)
        parents = self.parents
        for (t, state), n in Counter(zip(parents.target, parents.state, strict=True)).items():
            row = per[t]
            key = keys[state]
            row["sent"] += n
            row[key] += n
            totals[key] += n
        qty = self.qty
        if max(parents.cum, default=0) > qty:  # any overfilled parent at all
            for t, cum in zip(parents.target, parents.cum, strict=True):
                if cum > qty:
                    per[t]["excess_shares"] += cum - qty
        reasons: dict[str, int] = {}
        if totals["rejected"]:
            for i, state in enumerate(parents.state):
                if state == REJECTED:
                    reason = parents.reason.get(i) or "unknown"
                    reasons[reason] = reasons.get(reason, 0) + 1
        return totals | {
            "per_target": {t.name: row for t, row in zip(self.targets, per, strict=True)},
            "rejected_by_reason": reasons,
        }

    def result(self, end: float) -> dict:
        counts = self._tally()
        lat = sorted(self.latencies)
        send_end = self.send_ended if self.send_ended is not None else end
        if self.first_send is not None and self.last_fill is not None:
            span = self.last_fill - self.first_send
            per_s = counts["filled"] / span if span > 0 else 0.0
        else:
            per_s = 0.0
        return {
            "targets": [t.name for t in self.targets],
            "prefix": self.cfg.prefix,
            "rate": self.cfg.rate,
            "duration_s": round(send_end - self.send_started, 3),
            "elapsed_s": round(end - self.send_started, 3),
            "sent": self.sent,
            "attempts": self.attempts,
            "retries": self.retries,
            "acked": self.acked,
            "filled": counts["filled"],
            "overfilled": self.overfilled,
            "cancelled": counts["cancelled"],
            "rejected": counts["rejected"],
            "rejected_by_reason": counts["rejected_by_reason"],
            "working": counts["working"],
            "unanswered": counts["unanswered"],
            "fills": self.fills,
            "shares_filled": self.shares_filled,
            "excess_shares": self.excess_shares,
            "stray": self.stray,
            "orders_per_s": round(per_s, 1),
            "latency_ms": {
                "p50": _percentile(lat, 0.50),
                "p99": _percentile(lat, 0.99),
            },
            "per_target": counts["per_target"],
            "unanswered_sample": self.unanswered_sample() if counts["unanswered"] else [],
        }

    def unanswered_sample(self, limit: int = _UNANSWERED_SAMPLE) -> list[dict]:
        """The first `limit` parents left unanswered, each with where and when it was last sent:
        its target, the connection (epoch) it went on, how often it was resent, and the times
        (s from the start of sending) of that connection's `closing` and drop, so a lost order
        says whether it left before or after the router's handover."""
        sample = []
        parents = self.parents
        start = self.send_started

        def rel(t: float | None) -> float | None:
            return None if t is None else round(t - start, 3)

        for i, state in enumerate(parents.state):
            if state != SENT:
                continue
            target = self.targets[parents.target[i]]
            epoch = parents.epoch[i]
            connected, closing, lost = target.connections.get(epoch) or (None, None, None)
            sent_at = parents.sent_at[i]
            sample.append(
                {
                    "id": f"{self._id_prefix}{i + 1}",
                    "target": target.name,
                    "epoch": epoch,
                    "resends": parents.resends.get(i, 0),
                    "last_refusal": parents.reason.get(i),
                    "sent_s": rel(sent_at),
                    "connected_s": rel(connected),
                    "closing_s": rel(closing),
                    "lost_s": rel(lost),
                    # > 0: sent after the client read `closing` on that connection
                    "after_closing_s": None if closing is None else round(sent_at - closing, 4),
                }
            )
            if len(sample) >= limit:
                break
        return sample


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return round(values[min(len(values) - 1, int(q * len(values)))] * 1000, 3)


def invariant_holds(result: dict) -> bool:
    """sent == filled + cancelled + rejected + working + unanswered."""
    parts = ("filled", "cancelled", "rejected", "working", "unanswered")
    return result["sent"] == sum(result[k] for k in parts)


# -- command line ------------------------------------------------------------------------------


def _target(text: str) -> str:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--target must be HOST:PORT, got {text!r}")
    return text


def parse_args(argv: list[str] | None = None) -> Config:
    parser = Parser(prog="loadgen", description=__doc__)
    parser.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="a router's order port; repeat for each router",
    )
    parser.add_argument("--rate", type=float, default=0.0, help="orders/s in total (0 = max)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--duration", type=float, help="seconds of sending (default 10)")
    group.add_argument("--count", type=positive_int, help="parent orders to send in total")
    parser.add_argument("--rlp-share", type=float, default=0.0, help="fraction with rlp: true")
    parser.add_argument("--qty", type=positive_int, default=100, help="shares per parent order")
    parser.add_argument(
        "--symbols", default=",".join(DEFAULT_SYMBOLS), help="comma-separated symbols to trade"
    )
    parser.add_argument("--window", type=positive_int, default=64, help="in-flight per target")
    parser.add_argument("--prefix", default="", help="parent id prefix (default unique per run)")
    parser.add_argument("--seed", type=int, default=None, help="seed of symbol, side and rlp")
    parser.add_argument("--drain", type=float, default=5.0, help="seconds to wait for answers")
    parser.add_argument("--attempts", type=positive_int, default=20, help="sends per order, max")
    parser.add_argument("--progress", action="store_true", help="one JSON line/s on stderr")
    parser.add_argument(
        "--account",
        metavar="PATH",
        help="also write the result to PATH (whole or not at all), for a reader in another process",
    )
    args = parser.parse_args(argv)

    if not args.target:
        parser.fail("at least one --target HOST:PORT is needed")
    try:
        targets = [_target(t) for t in args.target]
    except ValueError as exc:
        parser.fail(str(exc))
    if len(set(targets)) != len(targets):
        parser.fail("a --target is given twice")
    symbols = [s.strip() for s in args.symbols.split(",") if s.strip()]
    if not symbols or not all(SYMBOL_RE.fullmatch(s) for s in symbols):
        parser.fail(f"--symbols must be 1-8 letters A-Z each, got {args.symbols!r}")
    checks = [
        (math.isfinite(args.rate) and args.rate >= 0, "--rate must be 0 or more"),
        (
            args.duration is None or (math.isfinite(args.duration) and args.duration > 0),
            "--duration must be more than 0",
        ),
        (0.0 <= args.rlp_share <= 1.0, "--rlp-share must be between 0 and 1"),
        (args.qty <= 1_000_000, "--qty must be at most 1000000"),
        (math.isfinite(args.drain) and args.drain >= 0, "--drain must be 0 or more"),
        (
            not args.prefix or (ID_RE.fullmatch(args.prefix) and len(args.prefix) <= 40),
            "--prefix must be 1-40 characters of A-Z a-z 0-9 _ . : -",
        ),
    ]
    for ok, message in checks:
        if not ok:
            parser.fail(message)
    duration = args.duration if args.duration is not None or args.count else 10.0
    return Config(
        targets=targets,
        rate=args.rate,
        duration=duration,
        count=args.count,
        rlp_share=args.rlp_share,
        qty=args.qty,
        symbols=symbols,
        window=args.window,
        prefix=args.prefix,
        seed=args.seed,
        drain=args.drain,
        progress=args.progress,
        attempts=args.attempts,
        account=args.account,
    )


async def run(config: Config) -> dict:
    """Run the load generator once; SIGINT/SIGTERM end the send phase early. Once the run is
    over they are ignored: a stop is asked again until the account is written (the toolkit's
    close), and one that lands while the account and the result are being written must not
    kill the process (exit 143) with its account half told."""
    gen = LoadGen(config)
    loop = asyncio.get_running_loop()
    handled = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, gen.stop)
            handled.append(sig)
    try:
        return await gen.run()
    finally:
        # Blocked while the loop's handler gives way to SIG_IGN (removing it restores SIG_DFL):
        # one that arrives in between stays pending, then is discarded by SIG_IGN.
        signal.pthread_sigmask(signal.SIG_BLOCK, handled)
        try:
            for sig in handled:
                loop.remove_signal_handler(sig)
                signal.signal(sig, signal.SIG_IGN)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, handled)


def write_account(path: str, doc: dict) -> None:
    """Write the account to `path` through a temporary file and a rename: a reader in another
    process (the toolkit, after `docker exec` returned or from a later command) sees all of
    it or none of it."""
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        fh.write(json.dumps(doc) + "\n")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    result = asyncio.run(run(config))
    if config.account:
        write_account(config.account, {"prefix": config.prefix, **result})
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    if not invariant_holds(result):
        sys.stderr.write("loadgen: error: accounting invariant violated\n")
        return 1
    if not any(row["connects"] for row in result["per_target"].values()):
        sys.stderr.write("loadgen: error: no target could be reached\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
