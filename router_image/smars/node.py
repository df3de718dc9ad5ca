"""One router node: wires the parts together, answers the admin API, and handles the signals
(SIGHUP reloads the flags, SIGUSR2 switches release by re-executing from /opt/smars/current
with the listening sockets kept, SIGTERM/SIGINT stop)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import switch, wire
from .admin import AdminServer, Reply, Route, query_number
from .book import Book
from .config import Config
from .egress import Egress
from .errors import ReleaseError, SmarsError
from .flags import FlagStore
from .fleet import FleetManifest
from .guards import GuardStore
from .log import Log
from .metrics import Metrics, Snapshot, render
from .orders import Intake, OrderPort
from .release import VERSION, Release, load_release, tree_dir
from .risk import Limits, RiskGate
from .state import ACTIVE, KILLED, OPEN, PAUSED, State
from .strategies import discover
from .venue_link import VenueHealth, VenueLink

__all__ = ["Node"]

TOKEN_ENV = "SMARS_ADMIN_TOKEN"
#: The token the router's hello gives the venue (absent or empty: the hello has none).
VENUE_TOKEN_ENV = "SMARS_VENUE_TOKEN"

_SUMMARY_INTERVAL_S = 5.0
_CLOSE_CLIENTS_S = 0.5
_ADMIN_IDLE_S = 1.0
_ARMED_WAIT_MAX_S = 10.0  # the longest wait a /switch/armed long poll may ask
_STANDBY_SPAWN_S = 2.0  # on top of standby_ready_s: starting the standby's process
_TREE = re.compile(r"[0-9a-f]{64}")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Node:
    def __init__(
        self,
        config: Config,
        argv: list[str],
        log: Log | None = None,
        release: Release | None = None,
    ) -> None:
        self.config = config
        self._argv = list(argv)  # given again to the re-executed process
        self.log = log or Log(config.node)
        # A standby hashed its tree when it imported it: that is the code running.
        self.release: Release = release or load_release(tree_dir())
        self._strategy_classes = discover()
        if "sor" not in self._strategy_classes:
            raise ReleaseError(f"{self.release.path}: no sor strategy in smars/strategies")
        self.metrics = Metrics()
        self.state = State(config.state_path)
        self.flags = FlagStore(config.flags_path, self.release.flags)
        self.fleet = FleetManifest(config.fleet_path)
        self.guards = GuardStore(config.guards_path)
        self.config_hash = config.config_hash()
        self.started_at = _now()
        self._stop: asyncio.Future[str] | None = None
        self._switch: asyncio.Task[None] | None = None
        self._summary_total = 0
        self._armed_for: str | None = None
        self._armed_waiters: set[asyncio.Future[None]] = set()  # long polls, on the loop
        self._standby: switch.Standby | None = None
        self._standby_lock = threading.Lock()

    # Startup and shutdown.

    async def run(self) -> int:
        """Serve until SIGTERM/SIGINT (or until a release switch replaces this process)."""
        self.loop = loop = asyncio.get_running_loop()
        self._stop = loop.create_future()
        self._build(loop)
        self._check_release()
        self._load_state()
        # Closed to orders from the first instant if this is an unconfirmed flip: the new
        # release trades only once the whole fleet runs it.
        self.state.unconfirmed = self._pending() is not None
        self.reload()
        order_sock, admin_sock = self._listening_sockets()
        self.orders = OrderPort(
            loop,
            order_sock,
            self.intake,
            self._internal_error,
            max_connections=self.config.max_order_connections,
            idle_s=self.config.order_idle_s,
            log=self.log,
        )
        await self.orders.start()
        self.admin = AdminServer(
            sock=admin_sock,
            loop=loop,
            routes=self._routes(),
            token=os.environ.get(TOKEN_ENV),
            log=self.log,
        )
        self.admin.start()
        self.venue.start()
        self._install_signals()
        self._write_pid()
        self.log.info(
            "listening",
            bind=self.config.bind,
            order_port=self.orders.port,
            admin_port=self.admin.port,
        )
        self.log.info("started", **self._identity(), pid=os.getpid(), **self._switches())
        if not os.environ.get(TOKEN_ENV):
            self.log.warning("admin_token_missing", detail="every POST will be refused")
        loop.call_later(_SUMMARY_INTERVAL_S, self._summarise_rejects)
        self._arm_confirm()
        why = await self._stop
        await self._shutdown(why)
        return 0

    def _build(self, loop: asyncio.AbstractEventLoop) -> None:
        config = self.config
        self.risk = RiskGate(
            Limits(
                max_child_per_s=config.risk_max_child_per_s,
                max_notional=config.risk_max_notional,
                reference_price=config.risk_reference_price,
            ),
            state=self.state,
            # Read at each refusal, so a reload switches the gate on or off at once.
            enabled=lambda: self.guards.guards.risk,
            log=self.log,
        )
        self.egress = Egress(self.state, self.risk)
        self.book = Book(
            loop=loop,
            egress=self.egress,
            strategies=self._strategy_classes,
            slice_qty=config.slice_qty,
            peg_interval_s=config.peg_interval_ms / 1000,
            peg_max_children_per_s=config.peg_max_children_per_s,
        )
        self.intake = Intake(
            book=self.book,
            egress=self.egress,
            state=self.state,
            metrics=self.metrics,
            max_working=config.max_working,
            max_per_connection=config.working_per_connection,
        )
        self.venue = VenueLink(
            loop=loop,
            address=config.venue_address,
            hello=wire.hello(
                config.node,
                self.release.version,
                self.release.tree,
                token=os.environ.get(VENUE_TOKEN_ENV),
            ),
            book=self.book,
            on_up=self.egress.attach,
            on_down=self._venue_lost,
            log=self.log,
        )

    def _check_release(self) -> None:
        present = set(self._strategy_classes)
        declared = set(self.release.strategies)
        if present != declared:
            self._error(
                "release",
                "release_strategies_mismatch",
                declared=sorted(declared),
                present=sorted(present),
            )
        for flag, meaning in self.release.flags.items():
            if meaning not in present:
                self._error("release", "flag_without_strategy", flag=flag, code_meaning=meaning)

    def _load_state(self) -> None:
        self.state.load()
        if self.state.error:
            self._error("state", "state_unreadable", error=self.state.error, trading=KILLED)

    def _listening_sockets(self) -> tuple[socket.socket, socket.socket]:
        inherited = switch.inherited_fds()
        return (
            self._listen("order", inherited.get("order"), self.config.order_port),
            self._listen("admin", inherited.get("admin"), self.config.admin_port),
        )

    def _listen(self, name: str, fd: int | None, port: int) -> socket.socket:
        if fd is not None:
            try:
                sock = socket.socket(fileno=fd)
                os.set_inheritable(fd, False)
                self.log.info("socket_inherited", socket=name, fd=fd)
                return sock
            except OSError as e:
                self._error("inherit", "socket_inherit_failed", socket=name, fd=fd, error=str(e))
        bind = self.config.bind
        family = socket.AF_INET6 if ":" in bind else socket.AF_INET
        try:
            return socket.create_server((bind, port), family=family, backlog=1024)
        except OSError as e:
            raise SmarsError(f"cannot listen on {bind}:{port} ({name} port): {e}") from None

    def _install_signals(self) -> None:
        loop = self.loop
        loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
        loop.add_signal_handler(signal.SIGUSR2, self._on_sigusr2)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop, sig.name)
        # A previous process blocks these before its re-exec so that none lands on us before
        # we can handle it; pending ones are delivered now.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, switch.SIGNALS)

    def _write_pid(self) -> None:
        path = Path(self.config.pid_path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(f"{os.getpid()}\n")
            os.replace(tmp, path)
        except OSError as e:
            self._error("pidfile", "pidfile_failed", path=str(path), error=str(e))

    def stop(self, why: str = "stop") -> None:
        if self._stop is not None and not self._stop.done():
            self._stop.set_result(why)

    async def _shutdown(self, why: str) -> None:
        self.log.info("stopping", reason=why)
        with self._standby_lock:
            standby, self._standby = self._standby, None
        if standby is not None:
            standby.discard()
        cancelled = self.book.cancel_all("shutdown")
        await self.orders.close_sessions(_CLOSE_CLIENTS_S)
        self.orders.close()
        self.venue.stop()
        self.admin.stop_serving()
        # A few turns of the loop: the venue link finishes closing (even a connection still being
        # made when the stop came), and admin answers being written go out (bounded).
        await asyncio.sleep(0.01)
        await self._admin_idle(_ADMIN_IDLE_S)
        path = Path(self.config.pid_path)
        try:
            if path.read_text().strip() == str(os.getpid()):
                path.unlink()
        except OSError:
            pass
        self.log.info("stopped", cancelled=cancelled)

    # Flags, venue, errors.

    def reload(self) -> dict[str, Any]:
        """Re-read the guard switches, the flags (keeping the last good ones on error) and the
        fleet manifest."""
        if self.guards.load():
            self.log.info("guards_loaded", guards=self.guards.guards.to_json())
        else:
            self._error("guards", "guards_error", error=self.guards.error)
        if self.flags.load():
            self.log.info("flags_loaded", flags=self.flags.snapshot())
        else:
            self.metrics.flag_errors += 1
            self.log.error("flags_error", error=self.flags.error)
        enforce = self.guards.guards.flags
        refused = {f.name for f in self.flags.refused(enforce)} if enforce else set()
        for flag in self.flags.mismatches():
            # Always reported (the pre-open messages of 2012); refused only with the flags guard.
            self._error(
                "flag_meaning",
                "flag_refused" if flag.name in refused else "flag_meaning_mismatch",
                flag=flag.name,
                value=flag.value,
                meaning=flag.meaning,
                code_meaning=self.flags.code_meaning(flag.name),
            )
        route = self.flags.strategy_for_rlp(self.book.strategies, enforce=enforce)
        routed_to = route or "sor"
        if routed_to != self.intake.rlp.NAME:
            self.log.info("rlp_route", strategy=routed_to)
        self.intake.route_rlp_to(route)
        if not self.fleet.load():
            self._error("fleet_manifest", "fleet_manifest_unreadable", error=self.fleet.error)
        self._fence()
        return {"flags": self._flags_snapshot(), "flags_error": self.flags.error}

    def _fleet_status(self) -> dict[str, Any]:
        return {
            **self.fleet.status(self.release.tree),
            "fencing": self.guards.guards.fencing,
            "fenced": self.state.fenced,
        }

    def _flags_snapshot(self) -> dict[str, Any]:
        return self.flags.snapshot(enforce=self.guards.guards.flags)

    def _fence(self) -> None:
        """Fencing: with the guard on, a node whose running tree is not the one the fleet
        manifest names may not trade (fail closed: an unreadable manifest fences too). Becoming
        fenced cancels every working parent; new ones are refused `fenced`."""
        reason = None
        if self.guards.guards.fencing:
            manifest = self.fleet.manifest
            if self.fleet.error:
                reason = f"fleet manifest unreadable: {self.fleet.error}"
            elif manifest is not None and manifest.get("tree") != self.release.tree:
                reason = (
                    f"runs {self.release.version} (tree {self.release.tree[:12]}) but the fleet "
                    f"runs {manifest.get('release')} (tree {str(manifest.get('tree'))[:12]}, "
                    f"epoch {manifest.get('epoch')})"
                )
        was, self.state.fenced = self.state.fenced, reason
        if reason and not was:
            cancelled = self.book.cancel_all("fenced")
            self._error("fencing", "fenced", reason=reason, cancelled=cancelled)
        elif was and not reason:
            self.log.info("unfenced", fleet=self.fleet.manifest)

    def _venue_lost(self, closed_by_us: bool) -> None:
        cancelled = self.book.on_venue_lost(self.egress.detach())
        if closed_by_us:
            self.log.info("venue_closed", cancelled=cancelled)
        else:
            self.log.error("venue_lost", cancelled=cancelled)

    def _error(self, kind: str, event: str, **fields: Any) -> None:
        self.metrics.errors[kind] += 1
        self.log.error(event, **fields)

    def _internal_error(self, e: Exception) -> None:
        self.metrics.errors["internal"] += 1
        self.log.throttled("error", "internal_error", where="orders", error=repr(e))

    def _summarise_rejects(self) -> None:
        """One log line for all the rejects of the last interval, never one per order."""
        rejects = self.metrics.rejects
        total = sum(rejects.values())
        if total != self._summary_total:
            self._summary_total = total
            self.log.info("rejects", totals={k: n for k, n in rejects.items() if n})
        self.loop.call_later(_SUMMARY_INTERVAL_S, self._summarise_rejects)

    # Signals.

    def _on_sighup(self) -> None:
        self.log.info("reload", trigger="SIGHUP")
        self.reload()

    def _on_sigusr2(self) -> None:
        if self._switch is not None and not self._switch.done():
            self.log.warning("switch_ignored", reason="a switch is in progress")
            return
        self._switch = self.loop.create_task(self.switch_release())

    # Release switch.

    def _pending(self) -> tuple[str, float] | None:
        """The release an unconfirmed flip left and when the marker was made, if this process
        runs such a flip."""
        path = Path(self.config.pending_path)
        try:
            made = path.stat().st_mtime
            previous = path.read_text().strip()
        except OSError:
            return None
        if not VERSION.fullmatch(previous):
            # The marker names a folder to switch back into: anything but a release version
            # (`../outside`) is never followed.
            self._error("switch", "switch_pending_invalid", marker=previous[:70])
            return None
        return None if previous == self.release.version else (previous, made)

    def _arm_confirm(self) -> None:
        """A guarded deploy flips a node with a marker naming the release it left, and removes
        it once the whole fleet runs the new one. If the marker outlives the confirm window (the
        deploy failed and could not reach this node to put it back), undo the switch here."""
        pending = self._pending()
        if pending is None:
            return
        previous, made = pending
        delay = max(0.0, self.config.switch_confirm_s - (time.time() - made))
        self.log.info("switch_unconfirmed", previous=previous, revert_in_s=round(delay, 3))
        self.loop.call_later(delay, self._revert_unconfirmed, previous, made)

    def _revert_unconfirmed(self, previous: str, made: float) -> None:
        path = Path(self.config.pending_path)
        try:
            if path.stat().st_mtime != made:
                return  # a newer switch owns the marker now
        except OSError:
            # Confirmed in time: the deploy removed the marker once the fleet ran this release.
            self.log.info("switch_confirmed", previous=previous)
            return
        current = Path(self.config.current_path)
        # Releases sit side by side: the one to go back to is a sibling of the running tree.
        target = Path(os.path.realpath(current)).parent / previous
        if not (target / "release.json").is_file():
            self._error("switch", "switch_revert_impossible", previous=previous)
            return
        link = current.with_name(current.name + ".revert")
        link.unlink(missing_ok=True)
        os.symlink(os.path.relpath(target, current.parent), link)
        os.replace(link, current)
        path.unlink(missing_ok=True)
        self._persist(intake=OPEN)  # the failed deploy paused it; its undo opens it again
        self._error("switch", "switch_reverted", previous=previous, reason="never confirmed")
        self._on_sigusr2()

    async def switch_release(self) -> None:
        """Pause intake for the moment, let sor/rlp parents settle (bounded), cancel the rest,
        hand client connections over (`closing`) and close them cleanly, and re-execute from the
        current release link."""
        target = os.path.realpath(self.config.current_path)
        problem = switch.unrunnable(target)
        if problem:
            self._error("switch", "switch_refused", target=target, error=problem)
            return
        self.state.switching = True
        self.log.info("switch_begin", target=target, working=len(self.book.working))
        try:
            settled = await self._drain(self.config.drain_timeout_s)
            cancelled = self.book.cancel_all("restart")
            # Every client is told `closing`: what it still sends is answered (intake is paused),
            # and it reconnects into the kept backlog; so no order is lost in the switch.
            await self.orders.hand_over(_CLOSE_CLIENTS_S, "restart")
            self.venue.stop()
            self.admin.stop_serving()
            await self._admin_idle(_ADMIN_IDLE_S)
            standby = await self._take_standby(target)  # may wait for it to be ready
            if self._stop is not None and self._stop.done():
                if standby is not None:
                    standby.discard()
                return  # asked to stop meanwhile: shut down instead of switching
            if standby is not None:
                self.log.info(
                    "switch_handover",
                    target=target,
                    standby=standby.pid,
                    settled=settled,
                    cancelled=cancelled,
                )
                if standby.go():
                    sys.stdout.flush()
                    os._exit(0)  # the standby runs on our sockets now; routerd reaps us
                self._error("switch", "standby_lost", target=target, standby=standby.pid)
            self.log.info("switch_exec", target=target, settled=settled, cancelled=cancelled)
            switch.reexec(target, self._argv, self._fds())
        except Exception as e:
            self._error("switch", "switch_failed", target=target, error=repr(e))
            self.state.switching = False
            if self._stop is None or not self._stop.done():
                await self.orders.start()
                self.admin.start()
                self.venue.start()

    async def _drain(self, timeout_s: float) -> bool:
        deadline = self.loop.time() + timeout_s
        while self.book.settling():
            if self.loop.time() >= deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    async def _admin_idle(self, timeout_s: float) -> None:
        """Let the admin answers being written go out (bounded), and what was just closed (the
        venue link) finish closing."""
        deadline = self.loop.time() + timeout_s
        await asyncio.sleep(0)
        while self.admin.active and self.loop.time() < deadline:
            await asyncio.sleep(0.01)

    # Admin API (every action runs on the event loop).

    def _routes(self) -> dict[str, Route]:
        # prepare and arm wait for a standby to be ready: their bound is the standby's.
        standby_s = self.config.standby_ready_s + _STANDBY_SPAWN_S
        return {
            "/health": Route("GET", self.health),
            "/version": Route("GET", self.version),
            "/metrics": Route("GET", self.metrics_text),
            "/kill": Route("POST", self.kill),
            "/resume": Route("POST", self.resume),
            "/intake/pause": Route("POST", lambda: self._set_intake(PAUSED)),
            "/intake/resume": Route("POST", lambda: self._set_intake(OPEN)),
            "/reload": Route("POST", lambda: Reply(200, self._reload_from_admin())),
            "/switch": Route("POST", self.switch_now),
            "/switch/prepare": Route(
                "POST", self.prepare, query=True, blocking=True, timeout_s=standby_s
            ),
            "/switch/arm": Route("POST", self.arm, query=True, blocking=True, timeout_s=standby_s),
            "/switch/armed": Route(
                "GET", self.armed, query=True, poll=True, timeout_s=_ARMED_WAIT_MAX_S + 0.5
            ),
        }

    def switch_now(self) -> Reply:
        """What SIGUSR2 does, asked over the admin API: a deploy user that is not the router's
        own may not signal it (no container has CAP_KILL). `switching` is false when a switch
        already runs (it is not started twice)."""
        busy = self._switch is not None and not self._switch.done()
        self._on_sigusr2()
        return Reply(200, {"switching": not busy, "pid": os.getpid()})

    # The flip's rendezvous: each node of a guarded deploy arms itself for the new tree, then
    # waits until every peer is armed (or already runs it) before pausing and switching, so the
    # fleet flips together however far apart the deploy tool started the nodes' tasks.

    def arm(self, query: dict[str, str]) -> Reply:
        """Arm for `tree`. With `release` (its folder beside the running one) and routerd
        keeping this process, first have a standby of it ready (the one `prepare` started, or
        a new one), so the switch is a hand-over instead of an interpreter start: the node
        counts as armed only then. A standby that cannot be had is no refusal: the switch
        re-executes instead."""
        asked = self._standby_request(query)
        if isinstance(asked, Reply):
            return asked
        tree, release = asked
        standby = self._standby_if_any(tree, release, wait=True)
        self._armed_for = tree
        self.loop.call_soon_threadsafe(self._wake_armed)  # this runs in a thread
        self.log.info("switch_armed", tree=tree, standby=standby)
        return Reply(200, {"armed": tree, "standby": standby})

    def prepare(self, query: dict[str, str]) -> Reply:
        """Start a standby of `release` (holding `tree`) now: staged releases warm up while
        the deploy is still checking the rest of the fleet. With `wait=1`, answer once it is
        ready (the flip does, before it arms: unseen by the peers until then)."""
        asked = self._standby_request(query)
        if isinstance(asked, Reply):
            return asked
        wait = query.get("wait", "0")
        if wait not in ("0", "1"):
            return Reply(400, {"error": "wait: expected 0 or 1"})
        tree, release = asked
        standby = self._standby_if_any(tree, release, wait=wait == "1")
        return Reply(200, {"tree": tree, "standby": standby})

    @staticmethod
    def _standby_request(query: dict[str, str]) -> tuple[str, str | None] | Reply:
        tree = query.get("tree", "")
        if not _TREE.fullmatch(tree):
            return Reply(400, {"error": "tree: expected 64 lowercase hex digits"})
        release = query.get("release")
        if release is not None and not VERSION.fullmatch(release):
            return Reply(400, {"error": "release: expected a release name"})
        return tree, release

    def _fds(self) -> dict[str, int]:
        return {"order": self.orders.sock.fileno(), "admin": self.admin.sock.fileno()}

    def _standby_if_any(self, tree: str, release: str | None, wait: bool) -> dict[str, Any] | None:
        """None when no standby applies: none asked for (no release), no routerd to adopt it,
        or the tree already runs here."""
        if release is None or not switch.supervised() or tree == self.release.tree:
            return None
        return self._standby_for(tree, release, wait)

    def _standby_for(self, tree: str, release: str, wait: bool) -> dict[str, Any]:
        """The standby for `tree` from the release folder `release`: the one kept if it is
        that one and alive, else a new one (the old one discarded). With `wait`, only once it
        is ready. Started outside the lock: the event loop takes it too, and must not wait
        behind a fork."""
        path = os.path.realpath(Path(os.path.realpath(self.config.current_path)).parent / release)
        with self._standby_lock:
            standby = self._standby
        if standby is None or standby.tree != tree or standby.proc.poll() is not None:
            try:
                standby = switch.Standby.spawn(path, tree, self._argv, self._fds())
            except ReleaseError as e:
                self._error("switch", "standby_failed", target=path, error=str(e))
                return {"pid": None, "error": str(e)}
            with self._standby_lock:
                old, self._standby = self._standby, standby
            if old is not None:
                old.discard()
            self.log.info("standby_started", target=path, standby=standby.pid)
            # Not kept for ever: a deploy that never flips leaves nothing running behind.
            self.loop.call_soon_threadsafe(
                self.loop.call_later, self.config.standby_keep_s, self._expire_standby, standby
            )
        if not wait:
            return {"pid": standby.pid}
        known = standby.prepared_s is not None
        try:
            standby.wait_ready(self.config.standby_ready_s)
        except ReleaseError as e:
            with self._standby_lock:
                if self._standby is standby:
                    self._standby = None
            self._error("switch", "standby_failed", target=path, error=str(e))
            return {"pid": None, "error": str(e)}
        if not known:
            self.log.info("standby_ready", standby=standby.pid, s=standby.prepared_s)
        return {"pid": standby.pid, "prepared_s": standby.prepared_s}

    async def _take_standby(self, target: str) -> switch.Standby | None:
        """The standby for `target`, taken out of keeping once ready (one that `prepare` started
        and nobody has asked yet is waited for: it is further on than a re-exec would be); any
        other one is discarded."""
        with self._standby_lock:
            standby, self._standby = self._standby, None
        if standby is None:
            return None
        if standby.path != target:  # both resolved
            standby.discard()
            self.log.info("standby_discarded", standby=standby.pid, reason="another target")
            return None
        try:
            await asyncio.to_thread(standby.wait_ready, self.config.standby_ready_s)
        except ReleaseError as e:
            self._error("switch", "standby_failed", target=target, error=str(e))
            return None
        if not standby.ready:  # ready once, gone since
            standby.discard()
            self._error("switch", "standby_failed", target=target, error="the standby exited")
            return None
        return standby

    def _expire_standby(self, standby: switch.Standby) -> None:
        with self._standby_lock:
            if self._standby is not standby:
                return
            self._standby = None
        standby.discard()
        self.log.info("standby_discarded", standby=standby.pid, reason="no switch came")

    async def armed(self, query: dict[str, str], cut: asyncio.Future[str]) -> Reply:
        """Long poll, on the loop: answers once this node is armed for `tree` or runs it (with
        `running=1`: once it runs it; a flip waiting for its fleet to switch asks that), or
        after `wait` seconds (0 to 10, else 400), or when the server cuts it short (a switch
        does: the poll is asked again of the new process)."""
        tree = query.get("tree", "")
        wait = query_number(query, "wait", 0.0, _ARMED_WAIT_MAX_S)
        if wait is None:
            return Reply(400, {"error": f"wait: expected 0 to {_ARMED_WAIT_MAX_S:g} seconds"})
        running = query.get("running", "0")
        if running not in ("0", "1"):
            return Reply(400, {"error": "running: expected 0 or 1"})

        def ready() -> bool:
            if running == "1":
                return tree == self.release.tree
            return tree in (self._armed_for, self.release.tree)

        loop = self.loop
        deadline = loop.time() + wait
        while not (ready() or cut.done()) and (left := deadline - loop.time()) > 0:
            changed: asyncio.Future[None] = loop.create_future()
            self._armed_waiters.add(changed)
            try:
                await asyncio.wait(
                    [changed, cut], timeout=left, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                self._armed_waiters.discard(changed)
        return Reply(200, {"ready": ready(), "armed": self._armed_for, "tree": self.release.tree})

    def _wake_armed(self) -> None:
        for waiter in self._armed_waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _identity(self) -> dict[str, Any]:
        return {
            "node": self.config.node,
            "release": self.release.version,
            "tree": self.release.tree,
            "config_hash": self.config_hash,
            "strategies": sorted(self.book.strategies),
        }

    def _switches(self) -> dict[str, str]:
        return {"trading": self.state.trading, "intake": self.state.effective_intake}

    def _venue_health(self) -> VenueHealth:
        egress = self.egress
        return self.venue.health(
            len(egress.in_flight), egress.busy_since, self.config.venue_silence_s
        )

    def health(self) -> Reply:
        """200 while the venue answers; 503 with the reason when it is down or silent."""
        venue = self._venue_health()
        body: dict[str, Any] = {
            "status": "ok" if venue.ok else "unavailable",
            "venue": venue.state,
            **self._switches(),
        }
        if not venue.ok:
            body["reason"] = venue.reason
        return Reply(200 if venue.ok else 503, body)

    def version(self) -> Reply:
        return Reply(
            200,
            {
                **self._identity(),
                "flags": self._flags_snapshot(),
                "flags_error": self.flags.error,
                "fleet": self._fleet_status(),
                "guards": self.guards.snapshot(),
                "risk": self.risk.snapshot(),
                "venue": self._venue_health().to_json(),
                **self._switches(),
                "pid": os.getpid(),
                "started_at": self.started_at,
            },
        )

    def metrics_text(self) -> Reply:
        counts = self.book.counts
        flags = self._flags_snapshot()
        snapshot = Snapshot(
            node=self.config.node,
            release=self.release.version,
            tree=self.release.tree,
            acked=self.metrics.acked,
            rejects=dict(self.metrics.rejects),
            children={
                **dict.fromkeys(self.book.strategies, 0),
                **self.egress.children_sent,
            },
            executions=counts.executions,
            shares=counts.shares,
            overfill_shares=counts.overfill_shares,
            working=len(self.book.working),
            trading_active=not self.state.killed,
            intake_open=self.state.accepting,
            venue_connected=self.egress.connected,
            flags=flags,
            flag_errors=self.metrics.flag_errors,
            errors=dict(Counter(self.metrics.errors) + counts.errors),
            risk_enabled=self.risk.enabled,
            risk_refused=self.risk.refused,
            risk_would_refuse=self.risk.would_refuse,
            fencing=self.guards.guards.fencing,
            fenced=self.state.fenced is not None,
            flags_refused=sum(bool(f.get("refused")) for f in flags.values()),
            risk_exposure=round(self.risk.exposure, 2),
            venue_silent=self._venue_health().state == "silent",
            order_connections=len(self.orders.sessions),
            admin_connections=self.admin.connections,
            admin_polls=self.admin.polls,
            admin_evicted=self.admin.evicted,
        )
        return Reply(200, render(snapshot))

    def kill(self) -> Reply:
        """Kill switch on: the egress refuses from now on, every working parent is cancelled."""
        persisted = self._persist(trading=KILLED)
        cancelled = self.book.cancel_all("killed")
        self.log.warning("kill_switch", trading=KILLED, cancelled=cancelled, persisted=persisted)
        return Reply(200, {"trading": KILLED, "cancelled": cancelled, "persisted": persisted})

    def resume(self) -> Reply:
        persisted = self._persist(trading=ACTIVE)
        self.log.warning("kill_switch", trading=ACTIVE, persisted=persisted)
        return Reply(200, {"trading": ACTIVE, "persisted": persisted})

    def _set_intake(self, intake: str) -> Reply:
        if intake == OPEN:
            self.state.unconfirmed = False  # the deploy confirmed the flip
        persisted = self._persist(intake=intake)
        self.log.info("intake", intake=intake, persisted=persisted)
        return Reply(200, {"intake": intake, "persisted": persisted})

    def _reload_from_admin(self) -> dict[str, Any]:
        self.log.info("reload", trigger="admin")
        return {
            **self.reload(),
            "fleet": {**self.fleet.status(self.release.tree), "fenced": self.state.fenced},
        }

    def _persist(self, **change: str) -> bool:
        try:
            self.state.set(**change)
        except OSError as e:
            self._error("state", "state_write_failed", path=str(self.state.path), error=str(e))
            return False
        return True
