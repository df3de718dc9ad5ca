"""Read an experiment file, check it against one schema, and hand the runner a loaded Experiment.

An experiment (`experiments/<id>.yml`) says what a healthy fleet looks like (`steady_state`), what
is done to it (`method`), when to stop early (`abort`), what always runs at the end (`rollbacks`)
and what each mode should show (`expect`). `parameters` are substituted wherever a value is written
`"{name}"`; `--set name=value` overrides a default. Any mistake is a ConfigError naming the file
and the line; a loaded Experiment is valid, with every default filled in.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from toolkit import yamlfile
from toolkit.errors import ConfigError
from toolkit.releases.catalog import load_catalog
from toolkit.settings import load_settings

from .activities import ACTIVITIES, Arg, ArgError, Context, Spec
from .model import (
    AbortCondition,
    Activity,
    Expectation,
    Expectations,
    Experiment,
    ExperimentInfo,
    Probe,
)
from .schema import ABORTS, EXPECTATIONS, MODES, PROBES

__all__ = ["experiments_dir", "list_experiments", "load_experiment", "parse_sets"]

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


def experiments_dir() -> Path:
    """Where experiment files live: `experiments/` at the project root (KNIGHT_HOME)."""
    return load_settings().checkout("experiments")


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
                number = float(value)
                if not math.isfinite(number):  # nan, inf: no rate, duration or limit
                    raise ValueError(value)
                return number
        except ValueError:
            kind = {bool: "on or off", int: "a whole number"}.get(type(default), "a finite number")
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
