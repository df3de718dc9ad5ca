"""What the rules see: each node's recent scrapes of `GET /metrics`, parsed, with the helpers a
rule needs (a value, a counter's increase or rate over a window, counter resets handled)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["FlagState", "Fleet", "NodeState", "NodeView", "Sample", "Series", "parse"]

Labels = Mapping[str, str]
Series = tuple[Labels, float]


@dataclass(frozen=True)
class Sample:
    """One scrape of one node: sample name (`smars_child_orders_total`) -> its series."""

    t: float
    series: Mapping[str, tuple[Series, ...]]
    # Rules re-read old samples every round (a 60 s window is 300 of them): sums are cached.
    _sums: dict[tuple[str, tuple[tuple[str, str], ...]], float] = field(
        default_factory=dict, compare=False, repr=False
    )

    def all(self, name: str, **match: str) -> Iterator[Series]:
        """The series of `name` whose labels include `match`."""
        for labels, value in self.series.get(name, ()):
            if all(labels.get(k) == v for k, v in match.items()):
                yield labels, value

    def sum(self, name: str, **match: str) -> float:
        key = (name, tuple(sorted(match.items())))
        cached = self._sums.get(key)
        if cached is None:
            cached = self._sums[key] = sum(value for _, value in self.all(name, **match))
        return cached

    def value(self, name: str, **match: str) -> float | None:
        """The value of the first matching series, None when there is none."""
        return next((value for _, value in self.all(name, **match)), None)

    def labels(self, name: str, **match: str) -> Labels | None:
        return next((labels for labels, _ in self.all(name, **match)), None)


def parse(text: str, t: float) -> Sample:
    """Prometheus text exposition -> Sample (ValueError on text that is not the format)."""
    series: dict[str, list[Series]] = {}
    try:
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                series.setdefault(s.name, []).append((dict(s.labels), float(s.value)))
    except ValueError as e:
        raise ValueError(f"/metrics is not Prometheus text: {e}") from None
    return Sample(t, {name: tuple(values) for name, values in series.items()})


Reading = Callable[[Sample], float]

#: The window of a node's order rates as `NodeView.state` gives them.
RATE_WINDOW_S = 1.0


@dataclass(frozen=True)
class FlagState:
    """One flag on one node: on or off, the meaning its file declares, the meaning its code
    gives it ("" where the code does not read it)."""

    on: bool
    meaning: str
    code_meaning: str


@dataclass(frozen=True)
class NodeState:
    """A node as its latest scrape shows it, with its order rates over the last second; only
    `node` and `up` when it never answered."""

    node: str
    up: bool
    release: str | None = None
    trading: bool | None = None
    flags: Mapping[str, FlagState] = field(default_factory=dict)
    parent_orders_per_s: float | None = None
    child_orders_per_s: float | None = None


@dataclass
class NodeView:
    """One node: its recent samples (oldest first) and whether its last scrape answered."""

    name: str
    history_s: float = 120.0
    samples: deque[Sample] = field(default_factory=deque)
    up: bool = False
    error: str | None = None
    failures: int = 0  # consecutive failed scrapes
    last_t: float | None = None  # time of the last scrape attempt

    @property
    def latest(self) -> Sample | None:
        return self.samples[-1] if self.samples else None

    def add(self, sample: Sample) -> None:
        self.samples.append(sample)
        self.up, self.error, self.failures, self.last_t = True, None, 0, sample.t
        horizon = sample.t - self.history_s
        while len(self.samples) > 2 and self.samples[1].t <= horizon:
            self.samples.popleft()

    def failed(self, error: str, t: float) -> None:
        self.up, self.error, self.last_t = False, error, t
        self.failures += 1

    def window(self, window_s: float) -> list[Sample]:
        """The samples of the last `window_s` seconds (up to the latest), plus the last one
        before them as the base, so an increase covers the whole window."""
        if not self.samples:
            return []
        start = self.samples[-1].t - window_s + 1e-6  # float sums of intervals run short
        chosen: list[Sample] = []
        for sample in reversed(self.samples):
            chosen.append(sample)
            if sample.t <= start:
                break
        chosen.reverse()
        return chosen

    def increase(self, reading: Reading, window_s: float) -> tuple[float, float]:
        """(increase, seconds covered) of a counter reading over the window. A drop is a counter
        reset (the router re-execs on a release switch): the value after it counts in full."""
        samples = self.window(window_s)
        total = 0.0
        previous = None
        for sample in samples:
            current = reading(sample)
            if previous is not None:
                total += current - previous if current >= previous else current
            previous = current
        span = samples[-1].t - samples[0].t if len(samples) > 1 else 0.0
        return total, span

    def rate(self, reading: Reading, window_s: float) -> float | None:
        """Per-second rate of a counter reading over the window; None before two samples."""
        total, span = self.increase(reading, window_s)
        return total / span if span > 0 else None

    def state(self, window_s: float = RATE_WINDOW_S) -> NodeState:
        """What the latest scrape says of the node: release, kill switch, flags, order rates."""
        latest = self.latest
        if latest is None:
            return NodeState(self.name, up=False)
        info = latest.labels("smars_info") or {}
        trading = latest.value("smars_trading_active")
        flags = {
            labels.get("flag", ""): FlagState(
                value == 1, labels.get("meaning", ""), labels.get("code_meaning", "")
            )
            for labels, value in latest.all("smars_flag_value")
        }
        return NodeState(
            self.name,
            up=self.up,
            release=info.get("release"),
            trading=None if trading is None else trading == 1,
            flags=flags,
            parent_orders_per_s=self.rate(lambda s: s.sum("smars_parent_orders_total"), window_s),
            child_orders_per_s=self.rate(lambda s: s.sum("smars_child_orders_total"), window_s),
        )


@dataclass
class Fleet:
    """Every node the monitor scrapes, by name, at the time `now` of the current round."""

    nodes: dict[str, NodeView]
    now: float = 0.0

    def up(self) -> list[NodeView]:
        """The nodes that answered this round and have at least one sample."""
        return [n for n in self.nodes.values() if n.up and n.latest is not None]

    def __iter__(self) -> Iterator[NodeView]:
        return iter(self.nodes.values())
