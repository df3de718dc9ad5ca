"""Identity of the code this process runs: the release tree it was started from, its
release.json, and its tree hash, computed from the files themselves at startup.

A release tree holds only what its hash covers: regular files and folders. Python would also
run what the hash cannot see (a sourceless `x.pyc`, a `__pycache__/` entry standing in for its
source, a symlinked module), so a tree holding any of those is refused, never hashed."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import ReleaseError

__all__ = [
    "RELEASE_FILE",
    "VERSION",
    "Release",
    "check_tree",
    "load_release",
    "tree_dir",
    "tree_files",
    "tree_hash",
]

RELEASE_FILE = "release.json"
#: A release's version, and so the name of its folder: MAJOR.MINOR.PATCH, ASCII digits only.
VERSION = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+")

# Bytecode: what the interpreter would load in place of (or without) a source file.
_BYTECODE_DIR = "__pycache__"
_BYTECODE_SUFFIX = ".pyc"
_COVERS = "a release tree holds only the files its hash covers"


@dataclass(frozen=True)
class Release:
    """What release.json says about the tree, and the tree hash of its files."""

    path: Path
    version: str
    strategies: tuple[str, ...]
    flags: Mapping[str, str]  # flag name -> the meaning this code gives it
    tree: str


def tree_dir() -> Path:
    """The release tree this code was imported from: the directory that holds `smars/`."""
    import smars  # the package itself, wherever PYTHONPATH found it

    return Path(smars.__file__).resolve().parent.parent


def _refusal(path: Path, mode: int) -> str | None:
    """Why the entry at `path` (its lstat mode) may not be in a release tree, or None."""
    if stat.S_ISLNK(mode):
        return "a symlink"
    if path.name == _BYTECODE_DIR or path.name.endswith(_BYTECODE_SUFFIX):
        return "bytecode"
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        return "neither a file nor a folder"
    return None


def _unreadable(error: OSError) -> None:
    raise ReleaseError(f"{error.filename}: unreadable: {error.strerror}") from None


def tree_files(root: str | os.PathLike[str]) -> list[str]:
    """Relative posix paths of the files under `root`, sorted bytewise; ReleaseError naming
    the first (bytewise) entry that a release tree may not hold."""
    root = Path(root)
    found: list[str] = []
    refused: list[tuple[bytes, str]] = []
    for directory, subdirs, names in os.walk(root, onerror=_unreadable):
        base = Path(directory)
        descend = []
        for name in subdirs + names:
            path = base / name
            rel = path.relative_to(root).as_posix()
            try:
                mode = path.lstat().st_mode
            except OSError as e:
                _unreadable(e)
            why = _refusal(path, mode)
            if why:
                refused.append((_path_bytes(rel), f"{root}/{rel}: {why}"))
            elif stat.S_ISDIR(mode):
                descend.append(name)
            else:
                found.append(rel)
        subdirs[:] = descend  # never into a refused folder, nor through a link
    if refused:
        refused.sort()
        more = f" ({len(refused) - 1} more)" if len(refused) > 1 else ""
        raise ReleaseError(f"{refused[0][1]}: {_COVERS}{more}")
    return sorted(found, key=_path_bytes)


def _path_bytes(path: str) -> bytes:
    """A path's bytes on disk: a name that is not UTF-8 keeps its raw bytes."""
    return path.encode("utf-8", "surrogateescape")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def tree_hash(path: str | os.PathLike[str]) -> str:
    """SHA-256 of `<sha256 of file>  <relative path>\\n` for every file, sorted by path bytes.

    The same text `find . -type f -printf '%P\\n' | LC_ALL=C sort | xargs sha256sum` prints;
    a tree holding bytecode, a symlink or anything but files and folders is a ReleaseError.
    """
    root = Path(path)
    listing = "".join(f"{_sha256(root / p)}  {p}\n" for p in tree_files(root))
    return hashlib.sha256(_path_bytes(listing)).hexdigest()


def _string_map(doc: object, field: str) -> dict[str, str]:
    if not isinstance(doc, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in doc.items()
    ):
        raise ReleaseError(f"{RELEASE_FILE}: {field}: expected an object of flag -> meaning")
    return dict(doc)


def load_release(root: str | os.PathLike[str]) -> Release:
    """Read `root/release.json` and hash the tree; a missing or invalid file is a ReleaseError."""
    root = Path(root)
    path = root / RELEASE_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReleaseError(f"{path}: not found (is PYTHONPATH a release tree?)") from None
    except (OSError, ValueError) as e:
        raise ReleaseError(f"{path}: unreadable: {e}") from None
    if not isinstance(doc, dict):
        raise ReleaseError(f"{path}: expected a JSON object")
    version = doc.get("version")
    strategies = doc.get("strategies")
    if not isinstance(version, str) or not version:
        raise ReleaseError(f"{path}: version: expected a non-empty string")
    if not isinstance(strategies, list) or not all(isinstance(s, str) for s in strategies):
        raise ReleaseError(f"{path}: strategies: expected a list of names")
    flags = _string_map(doc.get("flags", {}), "flags")
    try:
        tree = tree_hash(root)
    except ReleaseError as e:
        if sys.dont_write_bytecode or _BYTECODE_DIR not in str(e):
            raise
        # Most likely written by this very interpreter, as it imported the tree.
        raise ReleaseError(
            f"{e}; run python3 with -B (or PYTHONDONTWRITEBYTECODE=1), else it writes bytecode there"
        ) from None
    return Release(root, version, tuple(strategies), flags, tree)


def check_tree(root: str | os.PathLike[str]) -> str | None:
    """Why `root` cannot be run as a release tree, or None when it can (before a re-exec)."""
    root = Path(root)
    if not (root / "smars" / "__main__.py").is_file():
        return f"{root}: no smars/__main__.py"
    if not (root / RELEASE_FILE).is_file():
        return f"{root}: no {RELEASE_FILE}"
    return None
