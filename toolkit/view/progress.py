"""Done/total and the time left for work made of items (the matrix's runs, the fault campaign's
schedules), the estimate taken from the items done so far."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from rich.text import Text

__all__ = ["Countdown", "duration", "time_left"]


def time_left(done: int, total: int, elapsed_s: float) -> float | None:
    """Seconds left at the pace of the items done so far; None before the first is done."""
    if done <= 0:
        return None
    return max(0, total - done) * elapsed_s / done


def duration(seconds: float) -> str:
    """`42s`, `3m05s`, `1h02m`."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


@dataclass
class Countdown:
    """`what` items, `total` of them: `done` counts those finished; renders as
    `matrix: 5/24 runs · 2m10s · about 6m30s left`."""

    what: str
    total: int
    unit: str
    clock: Callable[[], float] = time.monotonic
    done: int = 0
    began: float = field(init=False)

    def __post_init__(self) -> None:
        self.began = self.clock()

    def elapsed(self) -> float:
        return self.clock() - self.began

    def left(self) -> float | None:
        return time_left(self.done, self.total, self.elapsed())

    def __rich__(self) -> Text:
        left = self.left()
        estimate = "estimating the time left" if left is None else f"about {duration(left)} left"
        if self.done >= self.total:
            estimate = "done"
        line = Text(f"{self.what}: ", style="bold")
        line.append(f"{self.done}/{self.total} {self.unit}", style="bold cyan")
        line.append(f" · {duration(self.elapsed())} · {estimate}")
        return line
