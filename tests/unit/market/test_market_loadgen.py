"""The load generator against fake routers over loopback: every parent order is accounted for."""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import pytest
from market.loadgen import Config, LoadGen, invariant_holds, main, parse_args
from market.loadgen import run as run_loadgen
from market_fixtures import (
    ROUTER_IMAGE,
    Behaviour,
    RouterState,
    ack_and_fill,
    fake_router,
    loadgen_env,
)

FINAL = ("filled", "cancelled", "rejected", "working", "unanswered")


def run_against(behaviours: list[Behaviour], **config: object) -> tuple[dict, list[RouterState]]:
    """Run one load generator against one fake router per behaviour."""

    async def go() -> tuple[dict, list[RouterState]]:
        states = []
        managers = [fake_router(b) for b in behaviours]
        for m in managers:
            states.append(await m.__aenter__())
        try:
            cfg = Config(targets=[s.target for s in states], seed=7, **config)  # type: ignore[arg-type]
            return await LoadGen(cfg).run(), states
        finally:
            for m in managers:
                await m.__aexit__(None, None, None)

    return asyncio.run(go())


def run_against_server(
    protocol: Callable[[], asyncio.Protocol], log: dict, **config: object
) -> dict:
    """One load generator run against one router served by `protocol` on loopback (drain 5 s);
    the transports it kept in `log["transports"]` are closed after."""

    async def go() -> dict:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(protocol, "127.0.0.1", 0)
        target = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
        try:
            cfg = Config(targets=[target], drain=5, seed=3, **config)  # type: ignore[arg-type]
            return await LoadGen(cfg).run()
        finally:
            server.close()
            for t in log["transports"]:
                t.close()

    return asyncio.run(go())


def finals(result: dict) -> dict:
    return {k: result[k] for k in FINAL}


def test_every_order_is_filled_and_the_accounts_balance() -> None:
    result, (a, b) = run_against([ack_and_fill, ack_and_fill], count=200, window=16, qty=300)
    assert invariant_holds(result)
    assert result["sent"] == result["attempts"] == 200
    assert finals(result) == {
        "filled": 200,
        "cancelled": 0,
        "rejected": 0,
        "working": 0,
        "unanswered": 0,
    }
    assert (result["acked"], result["fills"], result["shares_filled"]) == (200, 200, 60_000)
    assert (result["retries"], result["overfilled"], result["excess_shares"]) == (0, 0, 0)
    # Round-robin-ish over both routers; each router saw exactly what the client counts.
    per = result["per_target"]
    assert per[a.target]["sent"] == len(a.orders) > 0
    assert per[b.target]["sent"] == len(b.orders) > 0
    assert per[a.target]["filled"] + per[b.target]["filled"] == 200
    assert result["orders_per_s"] > 0
    assert result["latency_ms"]["p50"] is not None
    assert result["latency_ms"]["p50"] <= result["latency_ms"]["p99"]


def test_orders_follow_the_protocol_with_unique_ids_and_the_rlp_share() -> None:
    result, (router,) = run_against(
        [ack_and_fill], count=400, rlp_share=0.25, qty=700, symbols=["KCG", "IBM"], prefix="T1"
    )
    ids = [o["id"] for o in router.orders]
    assert len(set(ids)) == 400 and all(i.startswith("T1-") for i in ids)
    assert {tuple(sorted(o)) for o in router.orders} == {
        ("id", "qty", "rlp", "side", "symbol", "type")
    }
    assert {o["symbol"] for o in router.orders} == {"KCG", "IBM"}
    assert {o["side"] for o in router.orders} == {"buy", "sell"}
    assert {o["qty"] for o in router.orders} == {700}
    rlp = sum(o["rlp"] for o in router.orders)
    assert 60 < rlp < 140  # 25 % of 400, seeded
    assert result["filled"] == 400


def test_the_default_prefix_differs_between_runs() -> None:
    assert Config(targets=["h:1"]).prefix != Config(targets=["h:1"]).prefix


def test_an_order_the_router_asks_to_retry_is_retried_until_accepted() -> None:
    def paused_twice(order: dict, attempt: int) -> list[dict]:
        if order["id"].endswith(("-1", "-2")) and attempt <= 2:
            return [{"type": "reject", "id": order["id"], "reason": "intake_paused", "retry": True}]
        return ack_and_fill(order, attempt)

    result, (router,) = run_against([paused_twice], count=10, drain=3, prefix="R")
    assert invariant_holds(result)
    assert result["filled"] == 10
    assert result["retries"] == 4
    assert result["attempts"] == 14 == len(router.orders)
    assert router.attempts["R-1"] == router.attempts["R-2"] == 3
    assert result["rejected"] == 0


def test_retries_stop_after_the_attempts_and_the_last_reason_stands() -> None:
    def always_overloaded(order: dict, attempt: int) -> list[dict]:
        return [{"type": "reject", "id": order["id"], "reason": "overloaded", "retry": True}]

    result, (router,) = run_against([always_overloaded], count=3, attempts=3, drain=3)
    assert invariant_holds(result)
    assert result["rejected"] == 3
    assert result["rejected_by_reason"] == {"overloaded": 3}
    assert result["retries"] == 6
    assert set(router.attempts.values()) == {3}


def test_a_refusal_that_is_not_retryable_is_never_retried() -> None:
    def killed(order: dict, attempt: int) -> list[dict]:
        return [{"type": "reject", "id": order["id"], "reason": "killed", "retry": False}]

    result, (router,) = run_against([killed], count=20, drain=1)
    assert invariant_holds(result)
    assert (result["rejected"], result["retries"], result["attempts"]) == (20, 0, 20)
    assert result["rejected_by_reason"] == {"killed": 20}
    assert max(router.attempts.values()) == 1


def test_orders_never_answered_are_counted_unanswered_and_acked_ones_working() -> None:
    def partial(order: dict, attempt: int) -> list[dict]:
        n = int(order["id"].rsplit("-", 1)[1])
        if n % 3 == 0:
            return []  # never answered
        if n % 3 == 1:
            return [{"type": "ack", "id": order["id"]}]  # accepted, never filled
        return ack_and_fill(order, attempt)

    result, _ = run_against([partial], count=30, drain=0.3)
    assert invariant_holds(result)
    assert finals(result) == {
        "filled": 10,
        "cancelled": 0,
        "rejected": 0,
        "working": 10,
        "unanswered": 10,
    }
    assert result["acked"] == 20


def test_cancelled_parents_are_final() -> None:
    def cancel(order: dict, attempt: int) -> list[dict]:
        return [
            {"type": "ack", "id": order["id"]},
            {"type": "cancelled", "id": order["id"], "cum": 0, "reason": "killed"},
        ]

    result, _ = run_against([cancel], count=12)
    assert finals(result)["cancelled"] == 12 and invariant_holds(result)


def test_overfills_are_counted_even_after_the_parent_was_filled() -> None:
    def power_peg(order: dict, attempt: int) -> list[dict]:
        q = order["qty"]
        out = [{"type": "ack", "id": order["id"]}]
        for k in range(1, 4):  # three full fills: 2 x qty excess
            out.append(
                {
                    "type": "fill",
                    "id": order["id"],
                    "qty": q,
                    "price": 10.0,
                    "cum": k * q,
                    "leaves": max(q - k * q, 0),
                }
            )
        return out

    result, _ = run_against([power_peg], count=25, qty=100)
    assert invariant_holds(result)
    assert result["filled"] == 25
    assert result["overfilled"] == 25
    assert result["fills"] == 75
    assert result["shares_filled"] == 7500
    assert result["excess_shares"] == 5000
    assert sum(t["excess_shares"] for t in result["per_target"].values()) == 5000


def test_partial_fills_finish_the_parent_when_leaves_reach_zero() -> None:
    def in_slices(order: dict, attempt: int) -> list[dict]:
        q = order["qty"]
        return [{"type": "ack", "id": order["id"]}] + [
            {
                "type": "fill",
                "id": order["id"],
                "qty": q // 4,
                "price": 10.0,
                "cum": (k + 1) * q // 4,
                "leaves": q - (k + 1) * q // 4,
            }
            for k in range(4)
        ]

    result, _ = run_against([in_slices], count=10, qty=400)
    assert (result["filled"], result["fills"], result["overfilled"]) == (10, 40, 0)


def test_a_paced_run_sends_at_the_rate() -> None:
    result, (a, b) = run_against([ack_and_fill, ack_and_fill], rate=200, duration=0.5)
    assert invariant_holds(result)
    assert 80 <= result["sent"] <= 110
    assert result["filled"] == result["sent"]
    assert abs(len(a.orders) - len(b.orders)) <= 2  # round-robin


def test_a_dropped_connection_is_remade_and_its_unanswered_orders_stay_unanswered() -> None:
    state: dict = {"n": 0}

    def drop_once(order: dict, attempt: int) -> list[dict]:
        state["n"] += 1
        if state["n"] == 5:
            state["router"].transports[-1].close()  # drop the client mid-run
            return []
        if state["n"] < 5:
            return [{"type": "ack", "id": order["id"]}]  # working when the link drops
        return ack_and_fill(order, attempt)

    async def go() -> tuple[dict, RouterState]:
        async with fake_router(drop_once) as router:
            state["router"] = router
            # A count, not a duration: on a busy machine fewer orders would leave in 0.8 s.
            cfg = Config(targets=[router.target], rate=100, count=80, drain=3.0)
            return await LoadGen(cfg).run(), router

    result, router = asyncio.run(go())
    assert invariant_holds(result)
    assert router.connections == 2
    assert result["per_target"][router.target]["connects"] == 2
    assert result["working"] == 4
    assert result["unanswered"] >= 1
    assert result["filled"] == result["sent"] - result["working"] - result["unanswered"] > 20


def test_a_target_that_never_listens_leaves_nothing_sent() -> None:
    cfg = Config(targets=["127.0.0.1:1"], rate=100, duration=0.3, drain=0.1, connect_timeout=0.2)
    result = asyncio.run(LoadGen(cfg).run())
    assert result["sent"] == 0 and invariant_holds(result)
    assert result["per_target"]["127.0.0.1:1"]["connects"] == 0


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        ([], "--target"),
        (["--target", "nohost"], "HOST:PORT"),
        (["--target", "h:1", "--rate", "-1"], "--rate"),
        (["--target", "h:1", "--rlp-share", "1.5"], "--rlp-share"),
        (["--target", "h:1", "--duration", "1", "--count", "5"], "not allowed with"),
        (["--target", "h:1", "--symbols", "kcg"], "--symbols"),
        (["--target", "h:1", "--qty", "0"], "--qty"),
        (["--target", "h:1", "--prefix", "a b"], "--prefix"),
        (["--target", "h:1", "--bogus"], "unrecognized"),
    ],
)
def test_bad_arguments_end_in_one_line_and_exit_2(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err


def test_defaults() -> None:
    cfg = parse_args(["--target", "smars-1:7001"])
    assert (cfg.rate, cfg.duration, cfg.count, cfg.qty, cfg.window, cfg.drain) == (
        0.0,
        10.0,
        None,
        100,
        64,
        5.0,
    )
    assert parse_args(["--target", "h:1", "--count", "5"]).duration is None


def test_the_command_prints_one_json_object() -> None:
    """`python3 -m market.loadgen` end to end, against a fake router in a thread."""
    ready = threading.Event()
    stop: dict = {}

    def serve() -> None:
        async def main_() -> None:
            async with fake_router(ack_and_fill) as router:
                stop["target"] = router.target
                stop["event"] = asyncio.Event()
                stop["loop"] = asyncio.get_running_loop()
                ready.set()
                await stop["event"].wait()

        asyncio.run(main_())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(5)
    try:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "market.loadgen",
                "--target",
                stop["target"],
                "--count",
                "50",
                "--window",
                "8",
                "--progress",
            ],
            capture_output=True,
            text=True,
            env=loadgen_env(),
            cwd=ROUTER_IMAGE,
            timeout=30,
        )
    finally:
        stop["loop"].call_soon_threadsafe(stop["event"].set)
        thread.join(5)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert set(result) >= {
        "targets",
        "rate",
        "duration_s",
        "elapsed_s",
        "sent",
        "attempts",
        "retries",
        "acked",
        "filled",
        "overfilled",
        "cancelled",
        "rejected",
        "rejected_by_reason",
        "working",
        "unanswered",
        "fills",
        "shares_filled",
        "excess_shares",
        "orders_per_s",
        "latency_ms",
        "per_target",
    }
    assert (result["sent"], result["filled"]) == (50, 50)
    assert set(result["per_target"][stop["target"]]) >= {
        "sent",
        "acked",
        "filled",
        "rejected",
        "cancelled",
        "working",
        "unanswered",
        "excess_shares",
    }


def test_echo_measures_the_floor() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "market.echo", "--count", "3000", "--window", "32"],
        capture_output=True,
        text=True,
        env=loadgen_env(),
        cwd=ROUTER_IMAGE,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["count"] == 3000
    assert result["echo_msgs_per_s"] > 1000
    assert result["elapsed_s"] > 0


def test_a_run_by_count_ends_when_nothing_can_be_sent() -> None:
    def silent(order: dict, attempt: int) -> list[dict]:
        return []

    result, _ = run_against([silent], count=100, window=5, stall=0.3, drain=0.1)
    assert result["sent"] == 5
    assert result["unanswered"] == 5 and invariant_holds(result)


def test_retries_end_with_the_run_and_the_drain() -> None:
    def always_paused(order: dict, attempt: int) -> list[dict]:
        return [{"type": "reject", "id": order["id"], "reason": "intake_paused", "retry": True}]

    result, _ = run_against([always_paused], rate=50, duration=0.3, drain=0.4, attempts=1000)
    assert invariant_holds(result)
    assert result["sent"] > 5
    # A resend still on the wire when the run ends is unanswered; every other one was refused.
    assert result["rejected"] + result["unanswered"] == result["sent"]
    assert result["rejected_by_reason"] == {"intake_paused": result["rejected"]}
    assert result["retries"] > 0
    assert result["elapsed_s"] < 1.5


class HandoverRouter(asyncio.Protocol):
    """A router that switches release on each of its first `switches` connections: at the
    `at`-th order line it pauses intake, 50 ms later sends `closing`, and answers the lines that
    arrived meanwhile (retry rejects) only after the client's half-close, then closes."""

    def __init__(self, log: dict, at: int = 20, switches: int = 2) -> None:
        self.log = log
        self.at = at
        self.switches = switches
        self.buf = b""
        self.seen = 0
        self.paused = False
        self.held: list[str] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.log["connections"] += 1
        self.switching = self.log["connections"] <= self.switches
        self.log["transports"].append(transport)

    def data_received(self, data: bytes) -> None:
        assert not self.log["eof"].get(id(self)), "a line after the client's half-close"
        self.buf += data
        *lines, self.buf = self.buf.split(b"\n")
        out = []
        for line in lines:
            order = json.loads(line)
            self.log["lines"] += 1
            self.seen += 1
            if self.switching and self.seen == self.at:
                self.paused = True
                asyncio.get_running_loop().call_later(0.05, self._closing)
            if self.paused:
                self.held.append(order["id"])
            else:
                out.extend(json.dumps(m) + "\n" for m in ack_and_fill(order, 1))
        if out:
            self.transport.write("".join(out).encode())  # type: ignore[attr-defined]

    def _closing(self) -> None:
        self.log["closings"] += 1
        self.transport.write(b'{"type":"closing","reason":"restart"}\n')  # type: ignore[attr-defined]

    def eof_received(self) -> bool:
        if not self.paused:
            return False  # the run's end
        self.log["eof"][id(self)] = True
        self.log["late"] += len(self.held)
        reject = {"type": "reject", "reason": "intake_paused", "retry": True}
        self.transport.write(  # type: ignore[attr-defined]
            "".join(json.dumps({**reject, "id": i}) + "\n" for i in self.held).encode()
        )
        return False  # close, after writing the answers


def test_on_closing_the_loadgen_half_closes_reads_to_the_end_and_reconnects() -> None:
    log: dict = {"connections": 0, "lines": 0, "closings": 0, "late": 0, "eof": {}}
    log["transports"] = []

    result = run_against_server(lambda: HandoverRouter(log), log, rate=400, duration=0.8)
    assert invariant_holds(result)
    assert log["closings"] == 2 == len(log["eof"])  # each handover ended in a half-close
    assert log["late"] >= 2  # lines that arrived after the pause were answered after the EOF
    assert result["unanswered"] == 0
    assert result["filled"] == result["sent"] > 100
    assert result["retries"] >= log["late"]
    assert result["attempts"] == log["lines"]
    (row,) = result["per_target"].values()
    assert row["connects"] == 3


class LateHandoverRouter(asyncio.Protocol):
    """A router whose handover bound passed before the client half-closed (docs/protocol.md,
    "Handover"): on its first connection it answers `answered` order lines, then sends
    `closing` and reads nothing more, so the lines the client sent meanwhile (at least the
    next one, already on its way) stay unanswered; it closes at the client's half-close. Every
    later connection is a healthy router's."""

    def __init__(self, log: dict, answered: int = 10) -> None:
        self.log = log
        self.answered = answered
        self.buf = b""
        self.reading = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.log["connections"] += 1
        self.first = self.log["connections"] == 1
        self.log["transports"].append(transport)

    def data_received(self, data: bytes) -> None:
        if not self.reading:
            self.log["unread"] += data.count(b"\n")
            return
        self.buf += data
        *lines, self.buf = self.buf.split(b"\n")
        out = []
        for line in lines:
            order = json.loads(line)
            if self.first and len(self.log["read"]) == self.answered:
                # The bound passed: `closing`, and this line and the rest are never read.
                self.reading = False
                self.log["unread"] += 1 + len(lines) - lines.index(line) - 1
                self.log["unread_ids"].append(order["id"])
                out.append('{"type":"closing","reason":"restart"}\n')
                break
            self.log["read"].append(order["id"])
            out.extend(json.dumps(m) + "\n" for m in ack_and_fill(order, 1))
        if out:
            self.transport.write("".join(out).encode())  # type: ignore[attr-defined]

    def eof_received(self) -> bool:
        return False  # close


def test_lines_a_router_never_read_before_closing_are_sent_again_not_lost() -> None:
    """The lines a client sent before it read `closing` but after the router stopped reading
    (a client late on a loaded machine) get no answer on that connection: the load generator
    sends them again on its next one, and loses none."""
    log: dict = {"connections": 0, "read": [], "unread": 0, "unread_ids": [], "transports": []}

    result = run_against_server(lambda: LateHandoverRouter(log), log, rate=200, count=40)
    assert invariant_holds(result)
    assert log["connections"] == 2 and log["unread"] >= 1
    assert result["unanswered"] == 0, result["unanswered_sample"]
    assert result["filled"] == result["sent"] == 40
    assert result["unanswered_sample"] == []
    # Each unread line was sent once more, on the second connection.
    assert result["attempts"] == 40 + log["unread"]


def test_an_order_left_unanswered_is_described_in_the_result() -> None:
    """A connection cut without `closing`: its orders in flight stay unanswered (they may have
    been read), and the result names them, with the connection they went on and its drop."""

    def drop_at_5(order: dict, attempt: int) -> list[dict]:
        if order["id"].endswith("-5"):
            state["router"].transports[-1].close()
            return []
        return ack_and_fill(order, attempt)

    state: dict = {}

    async def go() -> dict:
        async with fake_router(drop_at_5) as router:
            state["router"] = router
            cfg = Config(targets=[router.target], rate=100, count=10, drain=1.0, prefix="T")
            return await LoadGen(cfg).run()

    result = asyncio.run(go())
    assert result["unanswered"] >= 1
    first = result["unanswered_sample"][0]
    assert first["id"] == "T-5"
    assert (first["target"], first["epoch"], first["resends"]) == (state["router"].target, 1, 0)
    assert first["closing_s"] is None  # no `closing` came: a drop
    assert first["sent_s"] <= first["lost_s"]
    assert len(result["unanswered_sample"]) == result["unanswered"]


def test_a_router_at_its_connection_cap_is_not_hammered_with_reconnects() -> None:
    """`closing` with reason too_many_connections: the load generator comes back after a
    growing pause, then trades once there is room."""
    seen: list[float] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(time.monotonic())
        if len(seen) <= 3:
            writer.write(b'{"type":"closing","reason":"too_many_connections"}\n')
            await writer.drain()
            writer.close()
            return
        while line := await reader.readline():
            for answer in ack_and_fill(json.loads(line), 1):
                writer.write((json.dumps(answer) + "\n").encode())
        writer.close()

    async def go() -> dict:
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            cfg = Config(targets=[f"127.0.0.1:{port}"], rate=100, count=20, drain=10.0)
            cfg.connect_timeout = 5.0
            return await LoadGen(cfg).run()

    result = asyncio.run(go())
    assert result["filled"] == result["sent"] == 20
    assert len(seen) == 4
    gaps = [b - a for a, b in itertools.pairwise(seen)]
    assert all(gap >= 0.04 for gap in gaps), gaps  # never at once


def test_the_account_file_holds_the_printed_result_and_the_prefix(tmp_path) -> None:
    """`--account PATH`: another process reads the same result from a file, whole."""
    from market.loadgen import write_account

    path = tmp_path / "loads" / "open_ab12.json"
    write_account(str(path), {"prefix": "open_ab12", "sent": 3, "unanswered": 0})
    assert json.loads(path.read_text()) == {"prefix": "open_ab12", "sent": 3, "unanswered": 0}
    assert [p.name for p in path.parent.iterdir()] == ["open_ab12.json"]  # no temporary left
    assert parse_args(["--target", "h:1", "--account", str(path)]).account == str(path)


def test_a_stop_asked_again_after_the_run_ended_cannot_kill_it_while_it_reports() -> None:
    """The toolkit asks a load to stop until its account is there: a SIGTERM (or SIGINT) that
    lands once the run is over, while the account and the result are being written, is
    ignored rather than fatal (exit 143 with the result half told)."""
    stops = (signal.SIGTERM, signal.SIGINT)
    before = {sig: signal.getsignal(sig) for sig in stops}

    async def go() -> dict:
        async with fake_router(ack_and_fill) as router:
            return await run_loadgen(
                Config(targets=[router.target], rate=200, count=20, drain=1.0, seed=7)
            )

    try:
        result = asyncio.run(go())
        assert result["filled"] == 20
        assert {sig: signal.getsignal(sig) for sig in stops} == dict.fromkeys(stops, signal.SIG_IGN)
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
