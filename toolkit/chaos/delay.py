"""delay: the node answers late. It is frozen for `ms` milliseconds out of every `period_ms`
(the cgroup freezer, from a background thread), so whatever it sends or answers waits up to
`ms`: to the venue, its peers and the deploy tool it looks slow, not dead.

(Kernel packet delay, tc netem, would be the classic way; the lab's kernels do not always have
it, and the freezer gives the same view from outside.)"""

from __future__ import annotations

import threading

from ..errors import KnightError
from ..lab import Lab
from . import Fault
from .pause import Pause


class Delay(Fault):
    NAME = "delay"
    SUMMARY = "answers late (frozen ms out of every period_ms)"

    def inject(self) -> None:
        self.ms = int(self.options.get("ms", 200))
        self.period_ms = int(self.options.get("period_ms", 2 * self.ms))
        if not 1 <= self.ms < self.period_ms <= 60_000:
            raise KnightError(f"delay: need 1 <= ms < period_ms <= 60000, not {self.options}")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._cycle, name=f"delay-{self.node}", daemon=True)
        self._thread.start()

    def _cycle(self) -> None:
        frozen, running = self.ms / 1000, (self.period_ms - self.ms) / 1000
        while not self._stop.is_set():
            self.container.pause()
            self._stop.wait(frozen)
            self.container.unpause()
            self._stop.wait(running)

    def undo(self) -> None:
        stop = getattr(self, "_stop", None)
        if stop is not None:
            stop.set()
            self._thread.join(timeout=5)
        self.container.reload()
        if self.container.status == "paused":
            self.container.unpause()

    @classmethod
    def halt(cls, lab: Lab) -> list[str]:
        # A cycle whose process died leaves at most a paused container behind.
        return Pause.halt(lab)
