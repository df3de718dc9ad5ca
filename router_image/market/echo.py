"""The benchmark's baseline: the load generator's own client against a minimal newline-JSON server
that parses each order and answers it with one line, both in one Python process over loopback.
Router throughput is compared with this figure. `python3 -m market.echo [--count N] [--window W]`."""

from __future__ import annotations

import asyncio
import json
import sys

from market.cli import Parser, positive_int
from market.loadgen import Config, LoadGen
from market.wire import LineSplitter, loads

__all__ = ["EchoServer", "main", "measure"]


class EchoServer(asyncio.Protocol):
    """Answers each order line with a fill for all of it: the least a router could do per order
    (parse it, answer it), batched one write per read like the venue."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._lines = LineSplitter()

    def data_received(self, data: bytes) -> None:
        out = []
        for line in self._lines.feed(data):
            if line is None:
                continue
            m = loads(line)
            q = m["qty"]
            out.append(
                f'{{"type":"fill","id":"{m["id"]}","qty":{q},"price":10.00,"cum":{q},"leaves":0}}\n'
            )
        if out:
            self.transport.write("".join(out).encode())  # type: ignore[attr-defined]


async def measure(count: int = 200_000, window: int = 64) -> dict:
    """Pipeline `count` orders through the echo server; answers/s from first send to last answer."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(EchoServer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        gen = LoadGen(Config(targets=[f"127.0.0.1:{port}"], count=count, window=window, seed=1))
        result = await gen.run()
    finally:
        server.close()
        await server.wait_closed()
    if gen.first_send is None or gen.last_fill is None:
        raise RuntimeError("the echo run got no answers")
    elapsed = gen.last_fill - gen.first_send
    return {
        "echo_msgs_per_s": round(result["filled"] / elapsed, 1) if elapsed > 0 else 0.0,
        "count": result["filled"],
        "elapsed_s": round(elapsed, 3),
        "window": window,
    }


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="echo", description=__doc__)
    parser.add_argument("--count", type=positive_int, default=200_000, help="messages to send")
    parser.add_argument("--window", type=positive_int, default=64, help="messages in flight")
    args = parser.parse_args(argv)
    result = asyncio.run(measure(args.count, args.window))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
