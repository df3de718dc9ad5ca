"""delay: the node's router answers late. Its process is stopped for `ms` milliseconds out of
every `period_ms` (SIGSTOP/SIGCONT from a small loop inside the container), so whatever it sends
or answers waits up to `ms`: to the venue, its peers and its clients it looks slow, not dead.
The rest of the container runs on, so the deploy tool can still reach the node.

(Kernel packet delay, tc netem, would be the classic way; the lab's kernels do not always have
it. Freezing the whole container instead would also stall Docker's own exec into it.)"""

from __future__ import annotations

from toolkit.chaos.fault import Fault, repair
from toolkit.errors import KnightError
from toolkit.lab.lab import Lab
from toolkit.lab.paths import PID_FILE

# The loop marks itself with its own name so that undo and halt find it and nothing else.
_LOOP = (
    "exec -a knight-delay sh -c 'while :; do p=$(cat {pid}); kill -STOP $p; sleep {stop}; "
    "kill -CONT $p; sleep {run}; done'"
)
# `dela[y]`: a pattern that does not match the shell that runs it.
_FIND = "pgrep -f '^knight-dela[y]' >/dev/null"
_CLEAR = "pkill -f '^knight-dela[y]'; p=$(cat {pid}) && kill -CONT $p; true"


class Delay(Fault):
    NAME = "delay"
    SUMMARY = "router answers late (stopped ms out of every period_ms)"

    def inject(self) -> None:
        ms = int(self.options.get("ms", 200))
        period = int(self.options.get("period_ms", 2 * ms))
        if not 1 <= ms < period <= 60_000:
            raise KnightError(f"delay: need 1 <= ms < period_ms <= 60000, not {self.options}")
        loop = _LOOP.format(pid=PID_FILE, stop=ms / 1000, run=(period - ms) / 1000)
        self.lab.engine.exec_detached(self.container, ["bash", "-c", loop])

    def undo(self) -> None:
        _clear(self.lab, self.container)

    @classmethod
    def halt(cls, lab: Lab) -> list[str]:
        return repair(lab, lambda c: _clear(lab, c))


def _clear(lab: Lab, container) -> bool:
    """Stop the loop and let the router run; True when a loop was found."""
    code, _ = lab.engine.exec(container, ["sh", "-c", _FIND])
    lab.engine.exec(container, ["sh", "-c", _CLEAR.format(pid=PID_FILE)])
    return code == 0
