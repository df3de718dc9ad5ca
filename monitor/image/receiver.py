"""The webhook receiver Alertmanager posts to, on the lab network (`receiver:9095`).

Alertmanager cannot reach the host (the lab publishes ports on 127.0.0.1 only, and only from
containers to the host), and the toolkit keeps the nodes' admin tokens on the host: so this
receiver only keeps each notification, stamped with when it arrived, and knight on the host
long-polls it through the port published for it, and throws the kill switch itself.

    POST /alerts/<receiver>            Alertmanager's webhook body (version 4); bearer token
    GET  /notifications?since=N&wait=S what arrived after number N, waiting up to S s for one
    GET  /health                       200

Standard library only: it runs on the lab's Debian base. Both calls but /health need the
lab's receiver token (RECEIVER_TOKEN), so nothing else on the lab network can post an alert.
"""

from __future__ import annotations

import hmac
import json
import os
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

PORT = 9095
#: The most notifications kept (the oldest go first); a run sends a handful.
KEEP = 10_000
#: The longest a poll waits, and the largest body accepted.
MAX_WAIT_S = 30.0
MAX_BODY = 4 * 2**20
_RECEIVER = re.compile(r"/alerts/([a-z][a-z0-9_-]{0,31})")


class Inbox:
    """Numbered notifications, oldest first; a poll waits for one newer than it has seen."""

    def __init__(self, keep: int = KEEP) -> None:
        self.keep = keep
        self.items: list[dict] = []
        self.last = 0
        self.changed = threading.Condition()

    def add(self, receiver: str, payload: object) -> int:
        with self.changed:
            self.last += 1
            self.items.append(
                {
                    "seq": self.last,
                    "received": time.time(),
                    "receiver": receiver,
                    "payload": payload,
                }
            )
            del self.items[: -self.keep]
            self.changed.notify_all()
            return self.last

    def since(self, seq: int, wait_s: float) -> dict:
        deadline = time.monotonic() + wait_s
        with self.changed:
            while self.last <= seq and (left := deadline - time.monotonic()) > 0:
                self.changed.wait(left)
            return {"next": self.last, "notifications": [i for i in self.items if i["seq"] > seq]}


def handler(inbox: Inbox, token: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_args: object) -> None:  # one JSON line per call instead
            pass

        def _send(self, status: int, doc: object) -> None:
            body = (json.dumps(doc) + "\n").encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _authorized(self) -> bool:
            given = self.headers.get("Authorization", "")
            if hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return True
            self._send(401, {"error": "a bearer token is required"})
            return False

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/health":
                self._send(200, {"ok": True, "notifications": inbox.last})
                return
            if url.path != "/notifications":
                self._send(404, {"error": f"no {url.path}"})
                return
            if not self._authorized():
                return
            query = parse_qs(url.query)
            try:
                seq = int(query.get("since", ["0"])[0])
                wait_s = min(max(float(query.get("wait", ["0"])[0]), 0.0), MAX_WAIT_S)
            except ValueError:
                self._send(400, {"error": "since is an integer, wait a number of seconds"})
                return
            self._send(200, inbox.since(seq, wait_s))

        def do_POST(self) -> None:
            found = _RECEIVER.fullmatch(urlsplit(self.path).path)
            if found is None:
                self._send(404, {"error": f"no {self.path}"})
                return
            if not self._authorized():
                return
            size = int(self.headers.get("Content-Length") or 0)
            if not 0 < size <= MAX_BODY:
                self._send(413, {"error": f"a body of 1 to {MAX_BODY} bytes is expected"})
                return
            try:
                payload = json.loads(self.rfile.read(size))
            except ValueError:
                self._send(400, {"error": "the body is not JSON"})
                return
            seq = inbox.add(found.group(1), payload)
            alerts = payload.get("alerts", []) if isinstance(payload, dict) else []
            print(json.dumps({"event": "notification", "seq": seq, "receiver": found.group(1),
                              "alerts": len(alerts)}))  # fmt: skip
            self._send(200, {"seq": seq})

    return Handler


def main(argv: list[str]) -> int:
    token = os.environ.get("RECEIVER_TOKEN", "")
    if not token:
        print("receiver: RECEIVER_TOKEN is not set", file=sys.stderr)
        return 2
    port = int(argv[0]) if argv else PORT
    server = ThreadingHTTPServer(("0.0.0.0", port), handler(Inbox(), token))
    server.daemon_threads = True
    print(json.dumps({"event": "listening", "port": port}))
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
