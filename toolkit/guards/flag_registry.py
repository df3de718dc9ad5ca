"""The flag registry (`flags.yaml`, guard 3 on the host): load it against one schema and lint it
with the release catalog and the router source, so a flag name that ever meant something else,
an expired flag or an unregistered one never reaches a deploy.

Lint rules, each a `Problem.rule`:

- `reused`: a flag is given a meaning other than one the registry records for its name (a
  release reading it differently, or the registry's own history changing the meaning);
- `expired`: an active flag past its expiry date (it expires at the end of that day);
- `unregistered`: a flag the registry does not know, read by a release (its `flags:` in
  releases.yaml, which the built release.json hands the router) or written as a string
  literal in the router source;
- `retired`: a release reads a retired flag, unless it is older than the release that retired
  the name (older builds, such as the 7.1.0 baseline, legitimately read it and must stay
  deployable for a rollback; the rollback planner decides whether that is safe).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from toolkit.errors import ConfigError, KnightError
from toolkit.releases.catalog import FLAG_NAME, Catalog, Release
from toolkit.yamlfile import load_yaml, where

__all__ = [
    "Change",
    "FlagEntry",
    "FlagLintError",
    "LintReport",
    "Problem",
    "Reference",
    "Registry",
    "check_release",
    "lint",
    "load_registry",
    "meaning_of",
    "newest_release",
    "scan_source",
]

STATUSES = ("active", "retired")

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# What counts as a flag name in the router source; see scan_source.
_FLAG_REFERENCE = re.compile(r"\bflag_[0-9]+\b|\b[a-z]+_enable\b")
_ENTRY_KEYS = {"meaning", "owner", "created", "expires", "status", "history"}
_REQUIRED = ("meaning", "owner", "created", "expires", "status")
_CHANGE_KEYS = {"date", "meaning", "status", "note"}


class FlagLintError(KnightError):
    """A release fails the flag registry's lint, so the guarded deploy refuses it."""


@dataclass(frozen=True)
class Change:
    """One dated change of a flag's meaning or status, with the reason."""

    date: date
    note: str
    meaning: str | None = None
    status: str | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"date": self.date.isoformat()}
        if self.meaning is not None:
            doc["meaning"] = self.meaning
        if self.status is not None:
            doc["status"] = self.status
        doc["note"] = self.note
        return doc


@dataclass(frozen=True)
class FlagEntry:
    """A flag name as the registry knows it."""

    name: str
    meaning: str
    owner: str
    created: date
    expires: date | None
    status: str
    history: tuple[Change, ...] = ()
    line: int | None = None

    @property
    def meanings(self) -> list[str]:
        """Every meaning the name has had, oldest first, each once."""
        seen = [c.meaning for c in self.history if c.meaning is not None] + [self.meaning]
        return list(dict.fromkeys(seen))

    def since(self, meaning: str) -> date:
        """When the name first took `meaning` (its creation when the history does not say)."""
        dates = [c.date for c in self.history if c.meaning == meaning]
        return min(dates) if dates else self.created

    def expired(self, today: date) -> bool:
        return self.status == "active" and self.expires is not None and today > self.expires

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "meaning": self.meaning,
            "owner": self.owner,
            "created": self.created.isoformat(),
            "expires": self.expires.isoformat() if self.expires else None,
            "status": self.status,
            "history": [c.to_json() for c in self.history],
        }


@dataclass(frozen=True)
class Registry:
    """Every flag name ever used, from one registry file."""

    path: Path
    flags: dict[str, FlagEntry] = field(default_factory=dict)

    def get(self, name: str) -> FlagEntry | None:
        return self.flags.get(name)


@dataclass(frozen=True)
class Problem:
    """One lint finding; `release` is None for the registry itself and the router source."""

    flag: str
    release: str | None
    rule: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {
            "flag": self.flag,
            "release": self.release,
            "rule": self.rule,
            "message": self.message,
        }


@dataclass(frozen=True)
class LintReport:
    """What `lint` found for one release (and, by default, the registry itself)."""

    registry: str
    release: str
    flags: int
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "registry": self.registry,
            "release": self.release,
            "flags": self.flags,
            "ok": self.ok,
            "problems": [p.to_json() for p in self.problems],
        }


@dataclass(frozen=True)
class Reference:
    """A flag name written as a string literal in the router source."""

    name: str
    path: Path
    line: int


# -- loading -----------------------------------------------------------------------------------
def _date(value: object, what: str, path: str, line: int | None) -> date:
    # YAML reads an unquoted 2012-07-02 as a date and a quoted one as text; accept both, but
    # not a timestamp or a partial date such as 2012-07.
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and _DATE.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ConfigError(f"{what}: {value!r} is not a date (YYYY-MM-DD)", path, line)


def _text(value: object, what: str, path: str, line: int | None) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{what}: expected text", path, line)
    return value.strip()


def _meaning(value: object, what: str, path: str, line: int | None) -> str:
    if not isinstance(value, str) or not FLAG_NAME.fullmatch(value):
        raise ConfigError(
            f"{what}: {value!r} is not a meaning ([a-z][a-z0-9_]{{0,63}})", path, line
        )
    return value


def _status(value: object, what: str, path: str, line: int | None) -> str:
    if value not in STATUSES:
        raise ConfigError(f"{what}: {value!r} is not one of {', '.join(STATUSES)}", path, line)
    return str(value)


def _unknown_key(doc: dict, allowed: set[str], what: str, path: str) -> None:
    unknown = [k for k in doc if k not in allowed]
    if unknown:
        raise ConfigError(f"{what}: unknown key {unknown[0]!r}", path, where(doc, unknown[0]))


def _change(name: str, item: object, path: str, line: int | None) -> Change:
    what = f"flag {name}: history"
    if not isinstance(item, dict):
        raise ConfigError(f"{what}: each change is a mapping with date and note", path, line)
    _unknown_key(item, _CHANGE_KEYS, what, path)
    line = where(item) or line
    if "date" not in item or "note" not in item:
        missing = "date" if "date" not in item else "note"
        raise ConfigError(f"{what}: a change needs {missing!r}", path, line)
    if "meaning" not in item and "status" not in item:
        raise ConfigError(f"{what}: a change sets a meaning or a status", path, line)
    meaning = item.get("meaning")
    status = item.get("status")
    return Change(
        date=_date(item["date"], f"{what}: date", path, where(item, "date")),
        note=_text(item["note"], f"{what}: note", path, where(item, "note")),
        meaning=None
        if meaning is None
        else _meaning(meaning, f"{what}: meaning", path, where(item, "meaning")),
        status=None
        if status is None
        else _status(status, f"{what}: status", path, where(item, "status")),
    )


def _entry(name: object, spec: object, path: str, line: int | None) -> FlagEntry:
    if not isinstance(name, str) or not FLAG_NAME.fullmatch(name):
        raise ConfigError(f"{name!r} is not a valid flag name ([a-z][a-z0-9_]{{0,63}})", path, line)
    if not isinstance(spec, dict):
        raise ConfigError(f"flag {name}: expected a mapping", path, line)
    what = f"flag {name}"
    _unknown_key(spec, _ENTRY_KEYS, what, path)
    for key in _REQUIRED:
        if key not in spec:
            raise ConfigError(f"{what}: missing {key!r}", path, line)
    created = _date(spec["created"], f"{what}: created", path, where(spec, "created"))
    expires = None
    if spec["expires"] is not None:
        expires = _date(spec["expires"], f"{what}: expires", path, where(spec, "expires"))
        if expires < created:
            raise ConfigError(
                f"{what}: expires before it was created", path, where(spec, "expires")
            )
    history_doc = spec.get("history", [])
    if not isinstance(history_doc, list):
        raise ConfigError(
            f"{what}: history must be a list of changes", path, where(spec, "history")
        )
    history = tuple(_change(name, c, path, where(spec, "history")) for c in history_doc)
    entry = FlagEntry(
        name=name,
        meaning=_meaning(spec["meaning"], f"{what}: meaning", path, where(spec, "meaning")),
        owner=_text(spec["owner"], f"{what}: owner", path, where(spec, "owner")),
        created=created,
        expires=expires,
        status=_status(spec["status"], f"{what}: status", path, where(spec, "status")),
        history=history,
        line=line,
    )
    _check_history(entry, spec, history_doc, path)
    return entry


def _check_history(entry: FlagEntry, spec: dict, history_doc: list, path: str) -> None:
    """The history must be dated in order from the creation and end where the entry stands."""
    what = f"flag {entry.name}: history"
    previous = entry.created
    for change, item in zip(entry.history, history_doc, strict=True):
        if change.date < previous:
            raise ConfigError(
                f"{what}: {change.date} is before {previous} (changes are listed oldest first)",
                path,
                where(item, "date"),
            )
        previous = change.date
    meanings = [c.meaning for c in entry.history if c.meaning is not None]
    if meanings and meanings[-1] != entry.meaning:
        raise ConfigError(
            f"flag {entry.name}: meaning is {entry.meaning}, but its history ends on {meanings[-1]}",
            path,
            where(spec, "meaning"),
        )
    statuses = [c.status for c in entry.history if c.status is not None]
    if statuses and statuses[-1] != entry.status:
        raise ConfigError(
            f"flag {entry.name}: status is {entry.status}, but its history ends on {statuses[-1]}",
            path,
            where(spec, "status"),
        )


def load_registry(path: Path | str) -> Registry:
    """Read and validate a flag registry; any mistake raises ConfigError with file and line."""
    path = Path(path)
    spath = str(path)
    doc = load_yaml(path)
    if not isinstance(doc, dict):
        raise ConfigError("expected a mapping with 'flags'", spath, where(doc) or 1)
    _unknown_key(doc, {"flags"}, "registry", spath)
    flags_doc = doc.get("flags")
    if not isinstance(flags_doc, dict):
        raise ConfigError(
            "'flags' must map each flag name to its entry", spath, where(doc, "flags") or 1
        )
    flags = {}
    for name, spec in flags_doc.items():
        entry = _entry(name, spec, spath, where(flags_doc, name))
        flags[entry.name] = entry
    return Registry(path, flags)


def meaning_of(registry: Registry, name: str) -> str | None:
    """What the flag `name` means according to the registry, or None when it is not registered."""
    entry = registry.get(name)
    return entry.meaning if entry else None


# -- the router source -------------------------------------------------------------------------
def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def scan_source(source: Path) -> list[Reference]:
    """Flag names the router code writes down, found in string literals of `source/**/*.py`.

    The router reads its flags by name from release.json, so its source should name none; a
    literal such as `"flag_9"` or `"turbo_enable"` is a flag the code reads behind the
    catalog's back. Deliberately simple: string literals only (docstrings, comments and
    identifiers are prose, not references), names of the shape `flag_<n>` or `<word>_enable`.
    """
    references = []
    for file in sorted(source.rglob("*.py")):
        try:
            tree = ast.parse(file.read_text(encoding="utf-8"), filename=str(file))
        except (OSError, UnicodeDecodeError, SyntaxError):
            continue  # not our finding to report: the release build refuses such a tree
        prose = _docstrings(tree)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in prose
            ):
                for match in _FLAG_REFERENCE.finditer(node.value):
                    references.append(Reference(match.group(), file, node.lineno))
    return references


# -- lint --------------------------------------------------------------------------------------
def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def newest_release(catalog: Catalog) -> str:
    """The highest version of the catalog: the target of the next deploy."""
    return max(catalog.versions, key=_version_key)


def _retired_by(catalog: Catalog, name: str) -> str | None:
    """The oldest release that lists `name` as retired."""
    retiring = [v for v, r in catalog.releases.items() if name in r.retired]
    return min(retiring, key=_version_key) if retiring else None


def _lint_registry(registry: Registry, today: date) -> list[Problem]:
    problems = []
    for entry in registry.flags.values():
        meanings = entry.meanings
        if len(meanings) > 1:
            story = ", then ".join(f"{m} since {entry.since(m).year}" for m in meanings)
            problems.append(
                Problem(
                    entry.name,
                    None,
                    "reused",
                    f"{entry.name} meant {story} (a name is never reused)",
                )
            )
        if entry.expired(today):
            problems.append(
                Problem(
                    entry.name,
                    None,
                    "expired",
                    f"{entry.name} is active but expired on {entry.expires} (owner {entry.owner})",
                )
            )
    return problems


def _lint_release(
    registry: Registry, catalog: Catalog, release: Release, today: date, expiry: bool
) -> list[Problem]:
    problems = []
    version = release.version
    for name, meaning in release.flags.items():
        entry = registry.get(name)
        if entry is None:
            problems.append(
                Problem(
                    name,
                    version,
                    "unregistered",
                    f"{name} in {version} is not in {registry.path.name} "
                    "(register it with a meaning, an owner and an expiry)",
                )
            )
            continue
        other = next((m for m in entry.meanings if m != meaning), None)
        if other is not None:
            tense = "means" if other == entry.meaning else "meant"
            problems.append(
                Problem(
                    name,
                    version,
                    "reused",
                    f"{name} in {version} means {meaning}, but {name} {tense} {other} "
                    f"since {entry.since(other).year} (a name is never reused)",
                )
            )
        if entry.status == "retired":
            retiring = _retired_by(catalog, name)
            if retiring is None or _version_key(version) >= _version_key(retiring):
                when = f"retired in {retiring}" if retiring else "which the registry retired"
                problems.append(
                    Problem(
                        name,
                        version,
                        "retired",
                        f"{version} reads {name}, {when} (use a new name)",
                    )
                )
        if expiry and entry.expired(today):
            problems.append(
                Problem(
                    name,
                    version,
                    "expired",
                    f"{version} reads {name}, which expired on {entry.expires} "
                    f"(owner {entry.owner})",
                )
            )
    return problems


def _lint_source(registry: Registry, source: Path) -> list[Problem]:
    problems = []
    seen = set()
    for ref in scan_source(source) if source.is_dir() else []:
        if registry.get(ref.name) is not None or (ref.name, ref.path, ref.line) in seen:
            continue
        seen.add((ref.name, ref.path, ref.line))
        try:
            shown = ref.path.relative_to(source.parent.parent)
        except ValueError:
            shown = ref.path
        problems.append(
            Problem(
                ref.name,
                None,
                "unregistered",
                f"{ref.name} is named at {shown}:{ref.line} but is not in {registry.path.name}",
            )
        )
    return problems


def lint(
    registry: Registry,
    catalog: Catalog,
    release: str | None = None,
    today: date | None = None,
    *,
    source: Path | None = None,
) -> LintReport:
    """Lint one release against the registry (default: the registry itself and the newest
    release). `source` is the router source tree to scan (default: `smars/` beside the
    catalog); it is scanned in both cases, since every release is built from it."""
    today = today or date.today()
    version = release or newest_release(catalog)
    target = catalog.get(version)
    problems = []
    if release is None:
        problems += _lint_registry(registry, today)
    problems += _lint_release(registry, catalog, target, today, expiry=release is not None)
    problems += _lint_source(registry, source or catalog.path.parent / "smars")
    return LintReport(str(registry.path), version, len(registry.flags), problems)


def check_release(
    registry: Registry, catalog: Catalog, version: str, today: date | None = None
) -> None:
    """Raise FlagLintError, naming every problem on one line, when `version` fails lint."""
    report = lint(registry, catalog, release=version, today=today)
    if not report.ok:
        listed = "; ".join(p.message for p in report.problems)
        raise FlagLintError(f"release {version} fails the flag registry: {listed}")
