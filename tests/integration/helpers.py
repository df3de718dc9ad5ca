"""Small helpers for talking to lab nodes the way a client would."""

from __future__ import annotations

import json
import socket
import time

from prometheus_client.parser import text_string_to_metric_families

#: The faulty node of every experiment the tests run: not the files' default (smars-8), so that
#: nothing is tied to it.
NODE = "smars-3"


def exchange(port: int, lines: list[bytes], expect: int, timeout: float = 5.0) -> list[dict]:
    """Send raw lines to an order port and read `expect` answer lines."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(b"".join(lines))
        buf = b""
        deadline = time.monotonic() + timeout
        while buf.count(b"\n") < expect and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
    return [json.loads(line) for line in buf.splitlines() if line.strip()]


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of a Prometheus exposition (0 when absent)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0
