"""Experiments: read an experiment file, check it against one schema, hand the runner plain data.

An experiment (`experiments/<id>.yml`) says what a healthy fleet looks like (`steady_state`), what
is done to it (`method`), when to stop early (`abort`), what always runs at the end (`rollbacks`)
and what each mode should show (`expect`). `parameters` are substituted wherever a value is written
`"{name}"`; `--set name=value` overrides a default. Any mistake is a ConfigError naming the file
and the line; a loaded Experiment is valid, with every default filled in.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from toolkit import yamlfile
from toolkit.errors import ConfigError
from toolkit.settings import node_key

from .activities import ACTIVITIES, Arg, ArgError, Context, Spec
from .activities.schema import REQUIRED, boolean, choice, integer, nodes, number, release
from .journal import STATUSES

__all__ = [
    "ABORTS",
    "EXPECTATIONS",
    "MODES",
    "PROBES",
    "AbortCondition",
    "Activity",
    "Expectation",
    "ExpectationResult",
    "Expectations",
    "Experiment",
    "ExperimentInfo",
    "Probe",
    "deploy_targets",
    "experiments_dir",
    "list_experiments",
    "load_experiment",
    "parse_sets",
    "rollout_order",
]

#: `--mode unsafe` runs with no guard, `--mode guarded` with all of them.
MODES = ("unsafe", "guarded")

_TOP_KEYS = (
    "title",
    "description",
    "parameters",
    "steady_state",
    "method",
    "abort",
    "rollbacks",
    "expect",
)
_STEP_KEYS = ("label", "on_refused")
_PARAM_NAME = re.compile(r"[a-z_][a-z0-9_]*")
_REF = re.compile(r"\{([^{}]*)\}")


# -- the schema of probes, abort conditions and expectations ---------------------------------------
def _release_or_any(value: Any, ctx: Context) -> str:
    return "any" if value == "any" else release(value, ctx)


#: Steady-state probes: name -> the rule of its tolerance. Checked before and after the method.
PROBES: dict[str, Arg] = {
    "fleet_uniform": Arg(
        _release_or_any, "any", "every node runs one release: this one, or any one"
    ),
    "excess_shares": Arg(
        integer(minimum=0), 0, "child shares executed beyond their parents: at most this many"
    ),
    "nodes_healthy": Arg(integer(minimum=0), 0, "nodes not answering their health check: at most"),
    "orders_lost": Arg(
        integer(minimum=0), 0, "parent orders neither acked, rejected nor filled: at most"
    ),
}


@dataclass(frozen=True)
class _Abort:
    rule: Arg
    observes: str  # key of the observation the runner passes to AbortCondition.tripped


#: Abort conditions: name -> its limit and the observation it is compared with (strictly over).
ABORTS: dict[str, _Abort] = {
    "excess_shares_over": _Abort(Arg(integer(minimum=0), REQUIRED), "excess_shares"),
    "child_orders_over": _Abort(Arg(integer(minimum=0), REQUIRED), "child_orders"),
    "duration_over_s": _Abort(Arg(number(minimum=0), REQUIRED), "elapsed_s"),
}


def _outcome(doc: Mapping[str, Any], key: str) -> Any:
    return (doc.get("outcome") or {}).get(key)


def _runaway_actual(doc: Mapping[str, Any]) -> list[str]:
    return sorted(_outcome(doc, "runaway_nodes") or [], key=node_key)


def _fleet_end_met(expected: str, doc: Mapping[str, Any]) -> tuple[bool, Any]:
    fleet_end = _outcome(doc, "fleet_end") or {}
    return bool(fleet_end) and all(r == expected for r in fleet_end.values()), fleet_end


@dataclass(frozen=True)
class _Expect:
    rule: Arg
    check: Callable[
        [Any, Mapping[str, Any]], tuple[bool, Any]
    ]  # (expected, journal) -> met, actual
    doc: str


def _runaway_rule(value: Any, ctx: Context) -> Any:
    # Resolved to node names by the loader, which knows the fleet and the method's plan.
    if value in ("all", "none", "not_deployed"):
        return value
    return nodes(value, ctx)


#: Expectations per mode: name -> its rule and how a journal meets it.
EXPECTATIONS: dict[str, _Expect] = {
    "deviated": _Expect(
        Arg(boolean, REQUIRED),
        lambda want, doc: (doc.get("deviated") == want, doc.get("deviated")),
        "the steady state did (true) or did not (false) hold after the method",
    ),
    "status": _Expect(
        Arg(choice(*STATUSES), REQUIRED),
        lambda want, doc: (doc.get("status") == want, doc.get("status")),
        "the run ends with this status",
    ),
    "runaway_nodes": _Expect(
        Arg(_runaway_rule, REQUIRED),
        lambda want, doc: (_runaway_actual(doc) == list(want), _runaway_actual(doc)),
        "exactly these nodes ran away: a list, all, none, or not_deployed (the nodes no deploy "
        "step of the method reached)",
    ),
    "excess_shares": _Expect(
        Arg(integer(minimum=0), REQUIRED),
        lambda want, doc: (
            (_outcome(doc, "excess_shares") or 0) <= want,
            _outcome(doc, "excess_shares"),
        ),
        "at most this many excess shares",
    ),
    "excess_shares_over": _Expect(
        Arg(integer(minimum=0), REQUIRED),
        lambda want, doc: (
            (_outcome(doc, "excess_shares") or 0) > want,
            _outcome(doc, "excess_shares"),
        ),
        "more than this many excess shares (the damage is reproduced)",
    ),
    "fleet_end": _Expect(Arg(release, REQUIRED), _fleet_end_met, "every node ends on this release"),
    "detected": _Expect(
        Arg(boolean, REQUIRED),
        lambda want, doc: (
            (_outcome(doc, "detected_at_s") is not None) == want,
            _outcome(doc, "detected_at_s"),
        ),
        "the runaway was (or was not) detected",
    ),
    "killed": _Expect(
        Arg(boolean, REQUIRED),
        lambda want, doc: (
            (_outcome(doc, "killed_at_s") is not None) == want,
            _outcome(doc, "killed_at_s"),
        ),
        "the kill switch was (or was not) pulled",
    ),
}


# -- the loaded experiment --------------------------------------------------------------------------
@dataclass(frozen=True)
class Activity:
    """One step of the method or the rollbacks: a known activity with checked arguments."""

    name: str
    args: dict[str, Any]
    label: str
    on_refused: str = "stop"  # stop: later steps of the method do not run; continue: they do
    line: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "activity": self.name,
            "args": {k: list(v) if isinstance(v, tuple) else v for k, v in self.args.items()},
            "label": self.label,
            "on_refused": self.on_refused,
        }


@dataclass(frozen=True)
class Probe:
    """A steady-state probe and its tolerance."""

    name: str
    tolerance: Any
    line: int | None = None

    def holds(self, observed: Any) -> bool:
        """Whether an observed value is within tolerance (fleet_uniform: node -> release)."""
        if self.name == "fleet_uniform":
            releases = set((observed or {}).values())
            return len(releases) == 1 and self.tolerance in ("any", *releases)
        return observed is not None and observed <= self.tolerance

    def to_json(self) -> dict[str, Any]:
        return {"probe": self.name, "tolerance": self.tolerance}


@dataclass(frozen=True)
class AbortCondition:
    """Stop the method early when an observation goes over a limit (rollbacks still run)."""

    name: str
    limit: float
    line: int | None = None

    @property
    def observes(self) -> str:
        return ABORTS[self.name].observes

    def tripped(self, observation: Mapping[str, float]) -> bool:
        """`observation` has `excess_shares`, `child_orders`, `elapsed_s` (any may be missing)."""
        value = observation.get(self.observes)
        return value is not None and value > self.limit

    def to_json(self) -> dict[str, Any]:
        return {self.name: self.limit}


@dataclass(frozen=True)
class Expectation:
    name: str
    value: Any
    line: int | None = None


@dataclass(frozen=True)
class ExpectationResult:
    name: str
    expected: Any
    actual: Any
    met: bool

    def to_json(self) -> dict[str, Any]:
        expected = list(self.expected) if isinstance(self.expected, tuple) else self.expected
        return {"name": self.name, "expected": expected, "actual": self.actual, "met": self.met}


@dataclass(frozen=True)
class Expectations:
    """What a run in one mode should show; `check` compares a journal (its JSON) with it."""

    mode: str
    items: tuple[Expectation, ...] = ()

    def get(self, name: str, default: Any = None) -> Any:
        return next((e.value for e in self.items if e.name == name), default)

    def check(self, journal: Mapping[str, Any]) -> list[ExpectationResult]:
        results = []
        for item in self.items:
            met, actual = EXPECTATIONS[item.name].check(item.value, journal)
            results.append(ExpectationResult(item.name, item.value, actual, bool(met)))
        return results

    def to_json(self) -> dict[str, Any]:
        return {
            e.name: list(e.value) if isinstance(e.value, tuple) else e.value for e in self.items
        }


@dataclass(frozen=True)
class Experiment:
    """A validated experiment, parameters substituted, every default filled in."""

    id: str
    path: Path
    title: str
    description: str
    parameters: dict[str, Any]
    fleet: tuple[str, ...]
    steady_state: tuple[Probe, ...]
    method: tuple[Activity, ...]
    abort: tuple[AbortCondition, ...] = ()
    rollbacks: tuple[Activity, ...] = ()
    expect: dict[str, Expectations] = field(default_factory=dict)

    def expectations(self, mode: str) -> Expectations:
        """What a run in `mode` (unsafe or guarded) should show; empty when the file says nothing."""
        if mode not in MODES:
            raise ConfigError(f"unknown mode {mode!r} (modes: {', '.join(MODES)})")
        return self.expect.get(mode, Expectations(mode))

    def plan(self) -> dict[str, str | None]:
        """Each node's release after the method's deploys and rollbacks run as written (no guard);
        None is the release the node started on. A rollback without `to` returns to None."""
        running: dict[str, str | None] = dict.fromkeys(self.fleet)
        for step in self.method:
            if step.name == "deploy":
                for node in deploy_targets(step, self.fleet, running):
                    running[node] = step.args["release"]
            elif step.name == "rollback":
                for node in _rollback_targets(step, self.fleet):
                    running[node] = step.args["to"]
        return running

    def not_deployed(self) -> tuple[str, ...]:
        """The nodes no deploy step of the method reaches (a skipped node, a half-done rollout)."""
        reached: set[str] = set()
        running: dict[str, str | None] = dict.fromkeys(self.fleet)
        for step in self.method:
            if step.name == "deploy":
                targets = deploy_targets(step, self.fleet, running)
                reached.update(targets)
                running.update(dict.fromkeys(targets, step.args["release"]))
        if not any(step.name == "deploy" for step in self.method):
            return ()
        return tuple(n for n in self.fleet if n not in reached)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "path": str(self.path),
            "title": self.title,
            "description": self.description,
            "parameters": dict(self.parameters),
            "steady_state": [p.to_json() for p in self.steady_state],
            "method": [a.to_json() for a in self.method],
            "abort": [a.to_json() for a in self.abort],
            "rollbacks": [a.to_json() for a in self.rollbacks],
            "expect": {mode: e.to_json() for mode, e in self.expect.items()},
        }


@dataclass(frozen=True)
class ExperimentInfo:
    """One line of `knight experiment list`; `error` says why a file does not load."""

    id: str
    path: Path
    title: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "path": str(self.path),
            "title": self.title,
            "description": self.description,
            "parameters": dict(self.parameters),
            "error": self.error,
        }


# -- rollout order --------------------------------------------------------------------------------
def rollout_order(
    fleet: Sequence[str],
    targets: Iterable[str] | None = None,
    start_at: str | None = None,
    end_at: str | None = None,
) -> list[str]:
    """The fleet in order, turned to start at `start_at` or end at `end_at`, kept to `targets`."""
    order = list(fleet)
    if start_at is not None:
        i = order.index(start_at)
        order = order[i:] + order[:i]
    elif end_at is not None:
        i = order.index(end_at)
        order = order[i + 1 :] + order[: i + 1]
    if targets is not None:
        wanted = set(targets)
        order = [n for n in order if n in wanted]
    return order


def deploy_targets(
    step: Activity, fleet: Sequence[str], running: Mapping[str, str | None]
) -> list[str]:
    """The nodes a deploy step switches, in order, when it runs as written (without the atomic
    guard): the rollout order without the skipped nodes and those already on the release, cut
    after `stop_after`. `running` is each node's release now."""
    args = step.args
    order = rollout_order(fleet, args["nodes"], args["start_at"], args["end_at"])
    order = [n for n in order if n not in args["skip"] and running.get(n) != args["release"]]
    if args["stop_after"] is not None:
        order = order[: args["stop_after"]]
    return order


def _rollback_targets(step: Activity, fleet: Sequence[str]) -> list[str]:
    targets = step.args["nodes"] or fleet
    return [n for n in fleet if n in targets and n not in step.args["skip"]]


# -- loading ------------------------------------------------------------------------------------
def experiments_dir() -> Path:
    """Where experiment files live: `experiments/` at the project root (KNIGHT_HOME)."""
    from toolkit.settings import load_settings

    return load_settings().root / "experiments"


def parse_sets(pairs: Iterable[str]) -> dict[str, str]:
    """`--set KEY=VALUE` options as a dict; a malformed one is a ConfigError."""
    sets: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE, got {pair!r}")
        sets[key.strip()] = value
    return sets


def list_experiments(
    directory: Path | None = None,
    *,
    fleet: Sequence[str] | None = None,
    releases: Sequence[str] | None = None,
) -> list[ExperimentInfo]:
    """Every experiment file (`*.yml`) in `directory`; id = file stem. A file that does not load
    is listed with its error instead of hiding the others."""
    directory = directory or experiments_dir()
    fleet, releases = _context(fleet, releases)
    infos = []
    for path in sorted([*directory.glob("*.yml"), *directory.glob("*.yaml")]):
        try:
            exp = load_experiment(path, {}, fleet=fleet, releases=releases)
        except ConfigError as exc:
            infos.append(ExperimentInfo(path.stem, path, "", error=str(exc)))
            continue
        infos.append(ExperimentInfo(exp.id, path, exp.title, exp.description, dict(exp.parameters)))
    return infos


def load_experiment(
    path_or_id: str | Path,
    sets: Mapping[str, str] | None = None,
    *,
    fleet: Sequence[str] | None = None,
    releases: Sequence[str] | None = None,
    directory: Path | None = None,
) -> Experiment:
    """Load an experiment by id (a file stem under `experiments/`) or path, apply `--set` values,
    and validate it. `fleet` and `releases` default to the lab's nodes and the catalog."""
    path = _resolve(path_or_id, directory)
    fleet, releases = _context(fleet, releases)
    return _Loader(path, Context(tuple(fleet), tuple(releases))).load(dict(sets or {}))


def _context(
    fleet: Sequence[str] | None, releases: Sequence[str] | None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if fleet is not None and releases is not None:
        return tuple(fleet), tuple(releases)
    from toolkit.releases.catalog import load_catalog
    from toolkit.settings import load_settings

    settings = load_settings()
    if fleet is None:
        fleet = settings.node_names
    if releases is None:
        releases = load_catalog(settings.catalog_path, settings.router_source).versions
    return tuple(fleet), tuple(releases)


def _resolve(path_or_id: str | Path, directory: Path | None) -> Path:
    text = str(path_or_id)
    if isinstance(path_or_id, Path) or text.endswith((".yml", ".yaml")) or "/" in text:
        return Path(path_or_id)
    directory = directory or experiments_dir()
    for suffix in (".yml", ".yaml"):
        candidate = directory / f"{text}{suffix}"
        if candidate.is_file():
            return candidate
    known = sorted({p.stem for p in [*directory.glob("*.yml"), *directory.glob("*.yaml")]})
    raise ConfigError(
        f"unknown experiment {text!r} (known: {', '.join(known) or 'none'}; or give a file path)"
    )


def _suggest(word: Any, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(word), list(options), n=1)
    return f"did you mean {close[0]!r}? " if close else ""


class _Loader:
    """Validates one file; every error carries its path and the line of the offending key."""

    def __init__(self, path: Path, ctx: Context) -> None:
        self.path = path
        self.spath = str(path)
        self.ctx = ctx
        self.params: dict[str, Any] = {}

    def fail(self, message: str, line: int | None) -> ConfigError:
        return ConfigError(message, self.spath, line)

    def load(self, sets: dict[str, str]) -> Experiment:
        doc = yamlfile.load_yaml(self.path)
        if not isinstance(doc, yamlfile.Mapping):
            raise self.fail("expected a mapping with title, method, ...", 1)
        for key in doc:
            if key not in _TOP_KEYS:
                raise self.fail(
                    f"unknown key {key!r} ({_suggest(key, _TOP_KEYS)}keys: {', '.join(_TOP_KEYS)})",
                    doc.line_of(key),
                )
        self.params = self._parameters(doc, sets)
        doc = self._substitute(doc, None, skip_keys=("parameters",))

        title = doc.get("title")
        if not isinstance(title, str) or not title.strip():
            raise self.fail("title: required, as text", doc.line_of("title"))
        description = doc.get("description", "") or ""
        if not isinstance(description, str):
            raise self.fail("description: expected text", doc.line_of("description"))

        method = self._steps(doc, "method", required=True)
        exp = Experiment(
            id=self.path.stem,
            path=self.path,
            title=" ".join(title.split()),
            description=description.strip(),
            parameters=dict(self.params),
            fleet=self.ctx.fleet,
            steady_state=self._probes(doc),
            method=method,
            abort=self._aborts(doc),
            rollbacks=self._steps(doc, "rollbacks", required=False),
        )
        return replace(exp, expect=self._expect(doc, exp))

    # parameters -----------------------------------------------------------------------------
    def _parameters(self, doc: yamlfile.Mapping, sets: dict[str, str]) -> dict[str, Any]:
        raw = doc.get("parameters") or {}
        line = doc.line_of("parameters") if "parameters" in doc else None
        if not isinstance(raw, dict):
            raise self.fail("parameters: expected a mapping of name to default value", line)
        params: dict[str, Any] = {}
        for name, default in raw.items():
            pline = yamlfile.where(raw, name)
            if not isinstance(name, str) or not _PARAM_NAME.fullmatch(name):
                raise self.fail(f"parameters: {name!r} is not a name (a-z, 0-9, _)", pline)
            if default is not None and not isinstance(default, str | int | float | bool):
                raise self.fail(f"parameters: {name}: a default is one plain value", pline)
            params[name] = default
        for key, value in sets.items():
            if key not in params:
                known = ", ".join(params) or "none"
                raise self.fail(
                    f"--set {key}: no such parameter ({_suggest(key, params)}parameters: {known})",
                    line or 1,
                )
            params[key] = self._coerce(key, value, raw.get(key), yamlfile.where(raw, key))
        for name, value in params.items():
            if value is None:
                raise self.fail(
                    f"parameters: {name} has no default: give --set {name}=VALUE",
                    yamlfile.where(raw, name),
                )
        return params

    def _coerce(self, name: str, value: str, default: Any, line: int | None) -> Any:
        """A --set value takes the type of the parameter's default."""
        try:
            if isinstance(default, bool):
                lowered = value.lower()
                if lowered not in ("on", "off", "true", "false", "yes", "no"):
                    raise ValueError
                return lowered in ("on", "true", "yes")
            if isinstance(default, int):
                return int(value)
            if isinstance(default, float):
                return float(value)
        except ValueError:
            kind = {bool: "on or off", int: "a whole number"}.get(type(default), "a number")
            raise self.fail(
                f"--set {name}={value!r}: expected {kind} like the default {default!r}", line
            ) from None
        return value

    def _substitute(self, value: Any, line: int | None, skip_keys: tuple[str, ...] = ()) -> Any:
        if isinstance(value, yamlfile.Mapping):
            if len(value) == 1:
                (key,) = value
                if value[key] is None and key in self.params:
                    raise self.fail(
                        f'write "{{{key}}}" in quotes: unquoted, YAML reads {{{key}}} as a mapping',
                        value.line_of(key),
                    )
            out = yamlfile.Mapping()
            out.line, out.key_lines = value.line, dict(value.key_lines)
            for key, item in value.items():
                out[key] = item if key in skip_keys else self._substitute(item, value.line_of(key))
            return out
        if isinstance(value, list):
            return [self._substitute(item, line) for item in value]
        if isinstance(value, str):
            whole = _REF.fullmatch(value)
            if whole:
                return self.params[self._param(whole.group(1), line)]
            return _REF.sub(lambda m: _text(self.params[self._param(m.group(1), line)]), value)
        return value

    def _param(self, name: str, line: int | None) -> str:
        if name not in self.params:
            known = ", ".join(self.params) or "none"
            raise self.fail(
                f"unknown parameter {{{name}}} ({_suggest(name, self.params)}parameters: {known})",
                line,
            )
        return name

    # sections -------------------------------------------------------------------------------
    def _list(self, doc: yamlfile.Mapping, key: str, required: bool) -> list[Any]:
        if key not in doc or doc[key] is None:
            if required:
                raise self.fail(f"{key}: required, a list of steps", doc.line_of(key) or 1)
            return []
        items = doc[key]
        if not isinstance(items, list):
            raise self.fail(f"{key}: expected a list", doc.line_of(key))
        if required and not items:
            raise self.fail(f"{key}: needs at least one step", doc.line_of(key))
        return items

    def _steps(self, doc: yamlfile.Mapping, section: str, required: bool) -> tuple[Activity, ...]:
        items = self._list(doc, section, required)
        return tuple(self._step(item, section, doc.line_of(section)) for item in items)

    def _step(self, item: Any, section: str, section_line: int | None) -> Activity:
        if not isinstance(item, yamlfile.Mapping):
            raise self.fail(
                f"{section}: each step is a mapping like {{deploy: {{release: ...}}}}",
                section_line,
            )
        names = [k for k in item if k not in _STEP_KEYS]
        if not names:
            raise self.fail(
                f"{section}: a step names an activity ({', '.join(ACTIVITIES)})", item.line
            )
        if len(names) > 1:
            raise self.fail(
                f"{section}: one activity per step, found {names[0]} and {names[1]}",
                item.line_of(names[1]),
            )
        name = names[0]
        spec = ACTIVITIES.get(name)
        if spec is None:
            raise self.fail(
                f"unknown activity {name!r} ({_suggest(name, ACTIVITIES)}activities: "
                f"{', '.join(ACTIVITIES)})",
                item.line_of(name),
            )
        args = self._args(spec, item, name)
        on_refused = item.get("on_refused", "stop")
        if "on_refused" in item:
            if section == "rollbacks":
                raise self.fail(
                    "on_refused: rollbacks always all run, so it does not apply here",
                    item.line_of("on_refused"),
                )
            if on_refused not in ("stop", "continue"):
                raise self.fail(
                    f"on_refused: {on_refused!r} is not one of stop, continue",
                    item.line_of("on_refused"),
                )
        label = item.get("label")
        if label is None:
            label = _default_label(spec, args)
        elif not isinstance(label, str) or not label.strip():
            raise self.fail("label: expected text", item.line_of("label"))
        return Activity(name, args, " ".join(label.split()), on_refused, item.line_of(name))

    def _args(self, spec: Spec, item: yamlfile.Mapping, name: str) -> dict[str, Any]:
        raw = item[name]
        if raw is None:
            raw = yamlfile.Mapping()
            raw.line, raw.key_lines = item.line_of(name), {}
        if not isinstance(raw, yamlfile.Mapping):
            raise self.fail(
                f"{name}: arguments are a mapping ({_arg_list(spec)})", item.line_of(name)
            )
        for key in raw:
            if key not in spec.args:
                raise self.fail(
                    f"{name}: unknown argument {key!r} ({_suggest(key, spec.args)}"
                    f"arguments: {_arg_list(spec)})",
                    raw.line_of(key),
                )
        args: dict[str, Any] = {}
        for key, rule in spec.args.items():
            if key in raw:
                args[key] = self._check(rule, raw[key], f"{name}: {key}", raw.line_of(key))
            elif rule.required:
                raise self.fail(
                    f"{name}: missing required argument {key!r} ({rule.doc})", item.line_of(name)
                )
            else:
                args[key] = rule.default
        if spec.check is not None:
            try:
                spec.check(args, self.ctx)
            except ArgError as exc:
                culprit = str(exc).split(":", 1)[0]
                line = raw.line_of(culprit) if culprit in raw else item.line_of(name)
                raise self.fail(f"{name}: {exc}", line) from None
        return args

    def _check(self, rule: Arg, value: Any, what: str, line: int | None) -> Any:
        try:
            return rule.kind(value, self.ctx)
        except ArgError as exc:
            raise self.fail(f"{what}: {exc}", line) from None

    def _one_key(self, item: Any, section: str, known: Iterable[str], line: int | None) -> str:
        known = list(known)
        if not isinstance(item, yamlfile.Mapping) or len(item) != 1:
            raise self.fail(
                f"{section}: each entry is a one-key mapping like {{{known[0]}: ...}}",
                item.line if isinstance(item, yamlfile.Mapping) else line,
            )
        (name,) = item
        if name not in known:
            raise self.fail(
                f"{section}: unknown {name!r} ({_suggest(name, known)}known: {', '.join(known)})",
                item.line_of(name),
            )
        return name

    def _probes(self, doc: yamlfile.Mapping) -> tuple[Probe, ...]:
        probes = []
        for item in self._list(doc, "steady_state", required=False):
            if not isinstance(item, yamlfile.Mapping) or "probe" not in item:
                raise self.fail(
                    "steady_state: each probe is {probe: NAME, tolerance: ...}",
                    item.line
                    if isinstance(item, yamlfile.Mapping)
                    else doc.line_of("steady_state"),
                )
            for key in item:
                if key not in ("probe", "tolerance"):
                    raise self.fail(
                        f"steady_state: unknown key {key!r} (keys: probe, tolerance)",
                        item.line_of(key),
                    )
            name = item["probe"]
            if name not in PROBES:
                raise self.fail(
                    f"steady_state: unknown probe {name!r} ({_suggest(name, PROBES)}"
                    f"probes: {', '.join(PROBES)})",
                    item.line_of("probe"),
                )
            rule = PROBES[name]
            tolerance = rule.default
            if "tolerance" in item:
                tolerance = self._check(
                    rule, item["tolerance"], f"{name}: tolerance", item.line_of("tolerance")
                )
            probes.append(Probe(name, tolerance, item.line_of("probe")))
        return tuple(probes)

    def _aborts(self, doc: yamlfile.Mapping) -> tuple[AbortCondition, ...]:
        conditions = []
        for item in self._list(doc, "abort", required=False):
            name = self._one_key(item, "abort", ABORTS, doc.line_of("abort"))
            limit = self._check(ABORTS[name].rule, item[name], name, item.line_of(name))
            conditions.append(AbortCondition(name, limit, item.line_of(name)))
        return tuple(conditions)

    def _expect(self, doc: yamlfile.Mapping, exp: Experiment) -> dict[str, Expectations]:
        raw = doc.get("expect")
        if raw is None:
            return {}
        if not isinstance(raw, yamlfile.Mapping):
            raise self.fail("expect: a mapping of mode to expectations", doc.line_of("expect"))
        result = {}
        for mode, items in raw.items():
            if mode not in MODES:
                raise self.fail(
                    f"expect: unknown mode {mode!r} (modes: {', '.join(MODES)})", raw.line_of(mode)
                )
            if not isinstance(items, yamlfile.Mapping):
                raise self.fail(f"expect: {mode}: a mapping of expectations", raw.line_of(mode))
            parsed = []
            for name, value in items.items():
                if name not in EXPECTATIONS:
                    raise self.fail(
                        f"expect: {mode}: unknown expectation {name!r} ({_suggest(name, EXPECTATIONS)}"
                        f"expectations: {', '.join(EXPECTATIONS)})",
                        items.line_of(name),
                    )
                line = items.line_of(name)
                value = self._check(EXPECTATIONS[name].rule, value, f"{mode}: {name}", line)
                if name == "runaway_nodes":
                    value = _resolve_runaway(value, exp, self.ctx.fleet)
                parsed.append(Expectation(name, value, line))
            result[mode] = Expectations(mode, tuple(parsed))
        return result


def _resolve_runaway(value: Any, exp: Experiment, fleet: tuple[str, ...]) -> tuple[str, ...]:
    if value == "all":
        return fleet
    if value == "none":
        return ()
    if value == "not_deployed":
        return exp.not_deployed()
    return tuple(sorted(value, key=fleet.index))


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def _arg_list(spec: Spec) -> str:
    return ", ".join(spec.args) or "none"


def _default_label(spec: Spec, args: dict[str, Any]) -> str:
    if len(spec.args) == 1:  # wait 2.0, day Fri 27 Jul 2012
        return f"{spec.name} {_text(next(iter(args.values())))}"
    parts = []
    for key, value in args.items():
        if value == spec.args[key].default or value in (None, ()):
            continue
        if isinstance(value, tuple):
            value = ",".join(value)
        elif isinstance(value, bool):
            value = _text(value)
        parts.append(f"{key}={value}")
    return spec.name + (" " + " ".join(parts) if parts else "")
