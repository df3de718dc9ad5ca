"""The client container's main process: it only waits, so the load generator can be run inside the
container with `docker exec`; SIGTERM or SIGINT end it at once with status 0."""

from __future__ import annotations

import signal
import sys
import threading

from market.wire import log_event

__all__ = ["main"]


def main() -> int:
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    # As PID 1 in a container the default dispositions would ignore SIGTERM: handle it.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    log_event("client", "ready")
    # Event.wait with a timeout wakes for the signal handler; the timeout only bounds each sleep.
    while not stop.wait(60.0):
        pass
    log_event("client", "stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
