"""Drive parent orders into the routers from the client container (on the lab network, so the
load does not go through Docker's userland proxy) and read back the load generator's accounting.
Where the load generator runs is the lab's to say (`Lab.client_exec`): the client container, or
for a fleet reached through an inventory, its load host over ssh.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from toolkit.errors import LabError

from .lab import Lab

__all__ = [
    "LOADS_DIR",
    "LoadResult",
    "LoadSpec",
    "account_path",
    "clear_loads",
    "during_load",
    "read_accounts",
    "run_echo",
    "run_load",
    "running_loads",
    "stop_load",
    "stop_loads",
]


#: A load's parent-order id prefix: what `stop_load` finds its load generator by.
_PREFIX = re.compile(r"[a-z][a-z0-9_]{0,31}")
#: Where, in the client container, each load generator writes its account when it ends
#: (`<prefix>.json`): a process other than the one that started it (a `chaos run`, a later
#: command) finds every load of the venue's run there.
LOADS_DIR = "/var/lib/smars/loads"


def account_path(prefix: str) -> str:
    """The client-container path of the account of the load with `prefix`."""
    if not _PREFIX.fullmatch(prefix):
        raise LabError(f"not a load prefix: {prefix!r}")
    return f"{LOADS_DIR}/{prefix}.json"


@dataclass(frozen=True)
class LoadSpec:
    """What to send: rate in parent orders/s over all targets (0 = as fast as the window allows)."""

    nodes: tuple[str, ...] = ()
    rate: float = 200.0
    duration_s: float | None = 5.0
    count: int | None = None
    rlp_share: float = 0.0
    qty: int = 100
    window: int = 256
    drain_s: float = 5.0
    seed: int = 1
    prefix: str | None = None
    #: Also write the account into LOADS_DIR (needs a prefix): readable by `read_accounts`.
    keep_account: bool = False

    def argv(self, targets: list[str]) -> list[str]:
        args = ["loadgen", "--rate", str(self.rate), "--rlp-share", str(self.rlp_share)]
        args += ["--qty", str(self.qty), "--window", str(self.window), "--drain", str(self.drain_s)]
        args += ["--seed", str(self.seed), "--progress"]
        if self.count is not None:
            args += ["--count", str(self.count)]
        elif self.duration_s is not None:
            args += ["--duration", str(self.duration_s)]
        if self.prefix:
            args += ["--prefix", self.prefix]
            if self.keep_account:
                args += ["--account", account_path(self.prefix)]
        for t in targets:
            args += ["--target", t]
        return args


@dataclass
class LoadResult:
    """The load generator's account of every parent order it sent."""

    sent: int
    acked: int
    filled: int
    overfilled: int
    cancelled: int
    rejected: int
    working: int
    unanswered: int
    retries: int
    excess_shares: int
    orders_per_s: float
    elapsed_s: float
    per_target: dict[str, dict[str, int]] = field(default_factory=dict)
    #: The first few parents left unanswered, each with its target, the connection it was last
    #: sent on and that connection's `closing` and drop times (docs/protocol.md, the result).
    unanswered_sample: list[dict[str, Any]] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> LoadResult:
        keys = (
            "sent",
            "acked",
            "filled",
            "overfilled",
            "cancelled",
            "rejected",
            "working",
            "unanswered",
        )
        return cls(
            **{k: int(doc[k]) for k in keys},
            retries=int(doc.get("retries", 0)),
            excess_shares=int(doc.get("excess_shares", 0)),
            orders_per_s=float(doc.get("orders_per_s", 0.0)),
            elapsed_s=float(doc.get("elapsed_s", 0.0)),
            per_target=doc.get("per_target", {}),
            unanswered_sample=list(doc.get("unanswered_sample") or []),
            raw=doc,
        )

    def open_orders(self) -> str:
        """One line on the parents not finished: how many are working and unanswered, and which
        unanswered ones (the sample), for an assertion message that explains itself."""
        sample = "; ".join(
            " ".join(f"{k}={v}" for k, v in order.items()) for order in self.unanswered_sample
        )
        return f"working={self.working} unanswered={self.unanswered}: {sample or '-'}"

    @property
    def accounted(self) -> bool:
        """Every parent order ended in exactly one state."""
        return (
            self.sent
            == self.filled + self.cancelled + self.rejected + self.working + self.unanswered
        )


def _exec_json(
    lab: Lab, argv: list[str], on_progress: Callable[[dict], None] | None
) -> dict[str, Any]:
    def stderr(line: str) -> None:
        try:
            doc = json.loads(line)
        except ValueError:
            doc = {"message": line}
        if on_progress:
            on_progress(doc)

    code, out = lab.client_exec_stream(["knight-node", *argv], stderr)
    if code != 0:
        raise LabError(
            f"{argv[0]} where the load generator runs exited {code}: {out.decode(errors='replace')[-500:]}"
        )
    try:
        return json.loads(out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise LabError(
            f"{argv[0]} printed no result: {out.decode(errors='replace')[-500:]}"
        ) from None


def run_load(
    lab: Lab, spec: LoadSpec, on_progress: Callable[[dict], None] | None = None
) -> LoadResult:
    """Run the load generator against `spec.nodes` (all nodes when empty) and return its account."""
    nodes = list(spec.nodes) or lab.settings.node_names
    for n in nodes:
        lab.check_node(n)
    targets = [lab.order_address(n) for n in nodes]
    return LoadResult.from_json(_exec_json(lab, spec.argv(targets), on_progress))


T = TypeVar("T")


def during_load(
    lab: Lab, spec: LoadSpec, work: Callable[[], T], after: int = 300, timeout: float = 120.0
) -> tuple[T, LoadResult]:
    """Do `work` while orders flow: the load (`spec`, whose prefix stops it; its duration only
    bounds it) runs from its first filled order until `after` more have filled once `work` has
    returned, however long `work` takes on this machine. Its end is asked for, not timed.
    Returns what `work` returned and the load's account."""
    if spec.prefix is None:
        raise LabError("a load done during work needs a prefix (to stop it by)")
    lock = threading.Condition()
    seen: dict[str, Any] = {"filled": 0}

    def progress(doc: dict) -> None:
        with lock:
            seen["filled"] = doc.get("progress", {}).get("filled", seen["filled"])
            lock.notify_all()

    def send() -> None:
        try:
            seen["load"] = run_load(lab, spec, progress)
        finally:
            with lock:
                seen.setdefault("load", None)
                lock.notify_all()

    def filled_past(n: int) -> None:
        with lock:
            lock.wait_for(lambda: seen["filled"] > n or "load" in seen, timeout=timeout)
            if "load" in seen or seen["filled"] <= n:
                raise LabError(f"load {spec.prefix}: {n} orders never filled while it ran")

    sender = threading.Thread(target=send, name=f"load-{spec.prefix}", daemon=True)
    sender.start()
    try:
        filled_past(0)
        done = work()
        filled_past(seen["filled"] + after)
    finally:
        stop_load(lab, spec.prefix)
        sender.join()
    if seen.get("load") is None:
        raise LabError(f"load {spec.prefix} gave no account")
    return done, seen["load"]


def stop_load(lab: Lab, prefix: str) -> bool:
    """Ask the load generator that runs with `prefix` to end its send phase (SIGTERM): it then
    drains and reports as if its time were up. True when one was running."""
    if not _PREFIX.fullmatch(prefix):
        raise LabError(f"not a load prefix: {prefix!r}")
    pattern = f"market[.]loadgen .*--prefix {prefix}( |$)"
    code, _ = lab.client_exec(["pkill", "-TERM", "-f", pattern])
    return code == 0


def running_loads(lab: Lab) -> list[str]:
    """The prefixes of the load generators running in the client container now."""
    code, out = lab.client_exec(["pgrep", "-af", "market[.]loadgen"])
    if code not in (0, 1):  # 1: none runs
        raise LabError(f"cannot list the load generators: {out.strip()[-300:]}")
    found = re.findall(r"--prefix ([a-z][a-z0-9_]{0,31})(?: |$)", out, flags=re.MULTILINE)
    return sorted(set(found))


def read_accounts(lab: Lab) -> dict[str, LoadResult]:
    """prefix -> account of every load that ended and kept its account (LOADS_DIR)."""
    script = f'for f in {LOADS_DIR}/*.json; do [ -f "$f" ] && cat "$f"; done; true'
    code, out = lab.client_exec(["sh", "-c", script])
    if code != 0:
        raise LabError(f"cannot read the load accounts: {out.strip()[-300:]}")
    accounts: dict[str, LoadResult] = {}
    for line in out.splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue  # a half-written file cannot be: the load generator renames it whole
        if isinstance(doc, dict) and isinstance(doc.get("prefix"), str):
            accounts[doc["prefix"]] = LoadResult.from_json(doc)
    return accounts


def stop_loads(lab: Lab, timeout: float = 30.0) -> list[str]:
    """End every load generator of the client container (each drains and keeps its account, as
    when its time is up); the prefixes that were still sending."""
    running = pending = running_loads(lab)
    deadline = time.monotonic() + timeout
    while pending:
        if time.monotonic() > deadline:
            raise LabError(f"load generators still sending: {', '.join(pending)}")
        lab.client_exec(["pkill", "-TERM", "-f", "market[.]loadgen"])
        time.sleep(0.2)
        pending = running_loads(lab)
    return running


def clear_loads(lab: Lab) -> list[str]:
    """End every load generator and forget every kept account: a new venue run starts with no
    load. The prefixes that were still sending."""
    running = stop_loads(lab)
    lab.client_exec(["rm", "-rf", LOADS_DIR])
    return running


def run_echo(lab: Lab, count: int = 200_000, window: int = 256) -> dict[str, Any]:
    """The newline-JSON echo floor, measured in the client container (same Python as the load)."""
    return _exec_json(lab, ["echo", "--count", str(count), "--window", str(window)], None)
