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
import signal
import sys
import time
from dataclasses import dataclass, field
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
_RETRY_WAIT_MAX_S = 2.0
_now = time.monotonic


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
    connect_timeout: float = 3.0
    stall: float = 10.0  # --count: end the send phase when no order could leave for this long

    def __post_init__(self) -> None:
        if self.duration is None and self.count is None:
            self.duration = 10.0
        if not self.prefix:
            # Unique per run, so ids never collide with a previous run's parents on the routers.
            self.prefix = f"L{os.getpid() % 4096:03x}{os.urandom(3).hex()}"


class Parent:
    """One parent order as the client sees it."""

    __slots__ = (
        "attempts",
        "cum",
        "epoch",
        "id",
        "reason",
        "state",
        "t_sent",
        "tail",
        "target",
        "waiter",
    )

    def __init__(self, pid: str, target: int, tail: int, t_sent: float, epoch: int) -> None:
        self.id = pid
        self.target = target
        self.tail = tail  # which pre-encoded line ending (symbol, side, rlp) the order uses
        self.t_sent = t_sent
        self.epoch = epoch  # the target's connection the order occupies a window slot on
        self.state = SENT
        self.cum = 0
        self.attempts = 1
        self.reason: str | None = None
        self.waiter: asyncio.Future | None = None


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
        self.epoch = 0
        self.inflight = 0
        self.connects = 0
        self.acked = 0
        self.lost: asyncio.Future | None = None
        self._lines = LineSplitter()

    # -- connection ----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.writable = True
        self.epoch += 1
        # Orders left on a previous connection get no answer on this one: free their slots.
        self.inflight = 0
        self.connects += 1
        self._lines = LineSplitter()
        self.gen.target_ready(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.writable = False
        self.inflight = 0
        if self.lost is not None and not self.lost.done():
            self.lost.set_result(exc)

    def pause_writing(self) -> None:
        self.writable = False

    def resume_writing(self) -> None:
        self.writable = True
        self.gen.target_ready(self)

    # -- answers -----------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        lines = self._lines.feed(data)
        if not lines:
            return
        gen = self.gen
        parents = gen.parents
        qty = gen.qty
        now = _now()
        for line in lines:
            try:
                m = loads(line)  # type: ignore[arg-type]
                kind = m["type"]
                p = parents[m["id"]]
            except (ValueError, TypeError, KeyError, RecursionError):
                # Not ours (or not readable): nothing to account it to.
                gen.stray += 1
                continue
            state = p.state
            if kind == "fill":
                try:
                    q = int(m["qty"])
                except (KeyError, TypeError, ValueError):
                    gen.stray += 1
                    continue
                gen.fills += 1
                gen.shares_filled += q
                before = p.cum
                after = p.cum = before + q
                if after > qty:
                    # Fills after the parent was filled keep counting: that is the overfill.
                    gen.excess_shares += q if before >= qty else after - qty
                    if before <= qty:
                        gen.overfilled += 1
                if state < FILLED and (after >= qty or m.get("leaves") == 0):
                    gen.last_fill = now
                    gen.finish(p, FILLED)
                    if state == RETRYING:
                        gen.wake(p, m)
            elif kind == "ack":
                if state == SENT:
                    p.state = ACKED
                    gen.acked += 1
                    gen.working += 1
                    self.acked += 1
                    gen.sample_latency(now - p.t_sent)
                elif state == RETRYING:
                    gen.wake(p, m)
            elif kind == "reject":
                if state == SENT:
                    p.reason = str(m.get("reason"))
                    if m.get("retry") is True:
                        gen.start_retry(p)
                    else:
                        gen.finish(p, REJECTED)
                elif state == RETRYING:
                    gen.wake(p, m)
            elif kind == "cancelled":
                if state < FILLED:
                    p.reason = str(m.get("reason"))
                    gen.finish(p, CANCELLED)
                    if state == RETRYING:
                        gen.wake(p, m)
            else:
                gen.stray += 1
        if gen.refill and self.writable:
            free = gen.window - self.inflight
            if free > 0:
                gen.send_batch(self, free, now)


class LoadGen:
    """One run of the load generator: `await LoadGen(config).run()` returns the result dict."""

    def __init__(self, config: Config) -> None:
        self.cfg = config
        self.qty = config.qty
        self.window = config.window
        self.rng = random.Random(config.seed)
        self.targets = [Target(self, i, name) for i, name in enumerate(config.targets)]
        self.parents: dict[str, Parent] = {}
        # Pre-encoded order lines: head + id + one of the tails (symbol x side x rlp).
        self._head = '{"type":"order","id":"'
        self._id_prefix = config.prefix + "-"
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
        self._retry_tasks: dict[asyncio.Task, Parent] = {}
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
        if k <= 0 or target.transport is None:
            return 0
        if self.first_send is None:
            self.first_send = now
        parents = self.parents
        head = self._head
        id_prefix = self._id_prefix
        tails = self._tails
        choices = self._plain
        share = self.cfg.rlp_share
        rnd = self.rng.random
        idx, epoch = target.index, target.epoch
        n = self.sent
        out = []
        for _ in range(k):
            n += 1
            tail = int(rnd() * choices)
            if share and (share >= 1 or rnd() < share):
                tail += choices
            pid = f"{id_prefix}{n}"
            parents[pid] = Parent(pid, idx, tail, now, epoch)
            out.append(head)
            out.append(pid)
            out.append(tails[tail])
        target.transport.write("".join(out).encode())
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

    def _line(self, p: Parent) -> bytes:
        return (self._head + p.id + self._tails[p.tail]).encode()

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

    def finish(self, p: Parent, state: int) -> None:
        if p.state == ACKED:
            self.working -= 1
        p.state = state
        self.final[state] += 1
        target = self.targets[p.target]
        if p.epoch == target.epoch:
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

    def _check_settled(self) -> None:
        if self._settled is not None and not self.sending and self.open_orders() == 0:
            self._settled.set()

    def open_orders(self) -> int:
        """Parents not yet in a final state (working, unanswered or being retried)."""
        return self.sent - self.finished

    # -- retries -----------------------------------------------------------------------------

    def start_retry(self, p: Parent) -> None:
        """The router asked for this order again later: only such an order gets a coroutine."""
        p.state = RETRYING
        task = asyncio.get_running_loop().create_task(self._retry(p))
        self._retry_tasks[task] = p
        task.add_done_callback(self._retry_done)

    def _retry_done(self, task: asyncio.Task) -> None:
        p = self._retry_tasks.pop(task)
        if p.state == RETRYING:
            # Cancelled before it ever ran: the refusal stands.
            self.finish(p, REJECTED)

    def wake(self, p: Parent, m: dict) -> None:
        w = p.waiter
        if w is not None and not w.done():
            w.set_result(m)

    def _retry_stop(self, retry_state: Any) -> bool:
        return (
            self._closing
            or retry_state.attempt_number >= self.cfg.attempts
            or _now() >= self._deadline
        )

    async def _retry(self, p: Parent) -> None:
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
                        raise _RetryAsked(p.reason or "")
                    await self._resend(p)
        except _RetryAsked as exc:
            # Attempts or time exhausted: the last refusal stands.
            p.reason = exc.reason
            self.finish(p, REJECTED)
        except _RunOver:
            self.finish(p, REJECTED)
        except asyncio.CancelledError:
            # The run ended while the order waited to be resent: its last refusal stands.
            # (Cancelled while waiting for an answer, _resend has made it unanswered.)
            if p.state == RETRYING:
                self.finish(p, REJECTED)
            raise

    async def _resend(self, p: Parent) -> None:
        now = _now()
        if now >= self._deadline or self._closing:
            raise _RunOver
        target = self.targets[p.target]
        if target.transport is None:
            raise _RetryAsked(p.reason or "disconnected")
        if p.epoch != target.epoch:
            p.epoch = target.epoch
            target.inflight += 1
        loop = asyncio.get_running_loop()
        p.waiter = loop.create_future()
        p.t_sent = now
        p.attempts += 1
        self.attempts += 1
        self.retries += 1
        target.transport.write(self._line(p))
        try:
            left = None if math.isinf(self._deadline) else max(0.0, self._deadline - now)
            m = await asyncio.wait_for(p.waiter, left)
        except TimeoutError:
            if p.state == RETRYING:
                p.state = SENT  # sent again and never answered: unanswered
            return
        except asyncio.CancelledError:
            if p.state == RETRYING:
                p.state = SENT
            raise
        finally:
            p.waiter = None
        if p.state != RETRYING:
            return  # a fill or a cancel already finished it
        kind = m.get("type")
        if kind == "ack":
            p.state = ACKED
            self.acked += 1
            self.working += 1
            target.acked += 1
            self.sample_latency(_now() - p.t_sent)
        elif kind == "reject":
            p.reason = str(m.get("reason"))
            if m.get("retry") is True:
                raise _RetryAsked(p.reason)
            self.finish(p, REJECTED)

    # -- connections -------------------------------------------------------------------------

    def _connect_stop(self, retry_state: Any) -> bool:
        return self._closing or _now() >= self._deadline

    async def _keep_connected(self, target: Target) -> None:
        """Connect, and reconnect after a drop, until the run ends (tenacity, connection errors)."""
        loop = asyncio.get_running_loop()
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
        reasons: dict[str, int] = {}
        qty = self.qty
        for p in self.parents.values():
            row = per[p.target]
            key = keys[p.state]
            row["sent"] += 1
            row[key] += 1
            totals[key] += 1
            if p.cum > qty:
                row["excess_shares"] += p.cum - qty
            if p.state == REJECTED:
                reason = p.reason or "unknown"
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
        }


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
    )


async def run(config: Config) -> dict:
    """Run the load generator once; SIGINT/SIGTERM end the send phase early."""
    gen = LoadGen(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, gen.stop)
    return await gen.run()


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    result = asyncio.run(run(config))
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
