"""The order port's handover (docs/protocol.md, "Handover"), in process with a recording intake:
a client late to half-close after `closing` has its connection closed at the bound, and what it
sent after that is never read, so it may send those lines again without making a duplicate."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import socket
from collections.abc import AsyncIterator

from smars.log import Log
from smars.orders import OrderPort


class RecordingIntake:
    """Every line the port hands it is read: it answers each with a retryable refusal, as the
    router's intake does while a switch pauses it."""

    def __init__(self) -> None:
        self.read: list[str] = []

    def submit(self, line: bytes | None, client) -> None:
        order_id = json.loads(line or b"{}")["id"]
        self.read.append(order_id)
        answer = {"type": "reject", "id": order_id, "reason": "intake_paused", "retry": True}
        client.add((json.dumps(answer) + "\n").encode())

    def working_of(self, client) -> int:
        return 0


def order_line(order_id: str) -> bytes:
    doc = {"type": "order", "id": order_id, "symbol": "KCG", "side": "buy", "qty": 100}
    return (json.dumps(doc) + "\n").encode()


def events(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@contextlib.asynccontextmanager
async def connected() -> AsyncIterator[tuple]:
    """An order port on loopback with a recording intake and a log kept in memory, and one
    client connected to it: (port, intake, log stream, reader, writer); both closed after."""
    stream = io.StringIO()
    intake = RecordingIntake()
    sock = socket.create_server(("127.0.0.1", 0))
    log = Log("smars-1", stream)
    port = OrderPort(asyncio.get_running_loop(), sock, intake, lambda e: None, log=log)  # type: ignore[arg-type]
    await port.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", port.port)
    try:
        yield port, intake, stream, reader, writer
    finally:
        writer.close()
        port.close()


async def logged(stream: io.StringIO, name: str, timeout: float = 10.0) -> dict:
    """The first log event called `name`, once the port has written it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        found = [e for e in events(stream) if e["event"] == name]
        if found:
            return found[0]
        await asyncio.sleep(0.01)
    raise AssertionError(f"the order port never logged {name!r}: {events(stream)}")


def test_lines_after_the_handover_bound_are_never_read_and_the_connection_ends_after_closing():
    async def go() -> tuple[list[dict], RecordingIntake, io.StringIO]:
        async with connected() as (port, intake, stream, reader, writer):
            writer.write(order_line("late-1"))
            first = json.loads(await reader.readline())
            # The client reads nothing more and does not half-close: the bound passes.
            await port.hand_over(0.05)
            # Sent before the client read `closing`, arriving after the router stopped reading.
            writer.write(order_line("late-2"))
            await writer.drain()
            rest = [json.loads(line) for line in (await reader.read()).splitlines()]
            await logged(stream, "order_lines_unread")
        return [first, *rest], intake, stream

    answers, intake, stream = asyncio.run(go())
    assert [(a["type"], a.get("id")) for a in answers] == [("reject", "late-1"), ("closing", None)]
    assert intake.read == ["late-1"]  # late-2 never reached the intake: no order was opened
    handover = next(e for e in events(stream) if e["event"] == "order_handover")
    assert (handover["told"], handover["late"]) == (1, 1)
    unread = next(e for e in events(stream) if e["event"] == "order_lines_unread")
    assert (unread["lines"], unread["first_ids"]) == (1, ["late-2"])


def test_a_client_that_half_closes_in_time_has_every_line_answered():
    async def go() -> tuple[list[dict], RecordingIntake, io.StringIO]:
        answers: list[dict] = []

        async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            # Sent before `closing` is read; then the protocol: half-close, read to the end.
            writer.write(order_line("ok-1") + order_line("ok-2"))
            while True:
                m = json.loads(await reader.readline())
                answers.append(m)
                if m["type"] == "closing":
                    break
            writer.write_eof()
            answers.extend(json.loads(line) for line in (await reader.read()).splitlines())

        async with connected() as (port, intake, stream, reader, writer):
            talk = asyncio.ensure_future(client(reader, writer))
            while len(intake.read) < 2:
                await asyncio.sleep(0.01)
            await port.hand_over(10.0)
            await talk
        return answers, intake, stream

    answers, intake, stream = asyncio.run(go())
    assert intake.read == ["ok-1", "ok-2"]
    assert [(a["type"], a.get("id")) for a in answers] == [
        ("reject", "ok-1"),
        ("reject", "ok-2"),
        ("closing", None),
    ]
    handover = next(e for e in events(stream) if e["event"] == "order_handover")
    assert (handover["told"], handover["late"]) == (1, 0)
    assert not [e for e in events(stream) if e["event"] == "order_lines_unread"]
