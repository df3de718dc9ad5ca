"""Identity of the code this process runs: the release tree it was started from, its
release.json, and its tree hash, computed from the files themselves at startup."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import ReleaseError

__all__ = ["RELEASE_FILE", "Release", "check_tree", "load_release", "tree_dir", "tree_hash"]

RELEASE_FILE = "release.json"

# Byte-code the interpreter writes next to the sources is not part of a release.
_SKIPPED_DIRS = frozenset({"__pycache__"})
_SKIPPED_SUFFIX = ".pyc"


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


def _files(root: Path) -> list[str]:
    """Relative posix paths of the regular files under `root` (symlinks are not files, as
    for `find -type f`)."""
    found = []
    for directory, subdirs, names in os.walk(root):
        subdirs[:] = [d for d in subdirs if d not in _SKIPPED_DIRS]
        base = Path(directory)
        for name in names:
            path = base / name
            if name.endswith(_SKIPPED_SUFFIX) or path.is_symlink() or not path.is_file():
                continue
            found.append(path.relative_to(root).as_posix())
    return found


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def tree_hash(path: str | os.PathLike[str]) -> str:
    """SHA-256 of `<sha256 of file>  <relative path>\\n` for every file, sorted by path bytes.

    The same text `find . -type f -printf '%P\\n' | LC_ALL=C sort | xargs sha256sum` prints;
    `__pycache__` directories and `*.pyc` files are left out.
    """
    root = Path(path)
    paths = sorted(_files(root), key=lambda p: p.encode("utf-8", "surrogateescape"))
    listing = "".join(f"{_sha256(root / p)}  {p}\n" for p in paths)
    return hashlib.sha256(listing.encode("utf-8", "surrogateescape")).hexdigest()


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
    return Release(root, version, tuple(strategies), flags, tree_hash(root))


def check_tree(root: str | os.PathLike[str]) -> str | None:
    """Why `root` cannot be run as a release tree, or None when it can (before a re-exec)."""
    root = Path(root)
    if not (root / "smars" / "__main__.py").is_file():
        return f"{root}: no smars/__main__.py"
    if not (root / RELEASE_FILE).is_file():
        return f"{root}: no {RELEASE_FILE}"
    return None
