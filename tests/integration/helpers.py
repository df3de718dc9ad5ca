"""Small helpers for talking to lab nodes the way a client would."""

from __future__ import annotations

import json
import socket
import threading
import time

from prometheus_client.parser import text_string_to_metric_families

from toolkit.errors import LabError
from toolkit.lab.engine import Engine
from toolkit.lab.image import build_observe_image
from toolkit.settings import Settings

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


class EarlyBuild:
    """The observe image, built in a thread from the moment the tests are collected when a test
    of the Prometheus path will need it and it is missing: its minute of Debian packages (a
    download, mostly) goes by while the tests before that one run. `wait()` is the fixture's."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def start(self, settings: Settings) -> None:
        engine = Engine(settings.lab)
        if engine.image_exists(settings.observe_image):
            return

        def build() -> None:
            try:
                build_observe_image(settings, engine)
            except BaseException as exc:  # wait() reports it, in the test that needs the image
                self._error = exc

        self._thread = threading.Thread(target=build, name="observe-image", daemon=True)
        self._thread.start()

    def wait(self) -> None:
        """Wait for the build, if one was started; raise its error if it failed."""
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise LabError(f"the observe image could not be built: {self._error}")


OBSERVE_IMAGE = EarlyBuild()
