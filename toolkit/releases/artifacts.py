"""Release artifacts: a reproducible tarball of one router build plus its manifest.

The tree hash covers every file of the release tree (code and `release.json`), computed the way
`sha256sum` lists files, so the same version always builds to the same hash and anyone can check
a node by hand. A release holds nothing else (docs/protocol.md, "Tree hash"): the build refuses
a source package that holds a `*.pyc`, a symlink or anything but files and folders, as Python
would run them in the checkout and the release would not carry them; the `__pycache__/`
folders the developer's interpreter writes into the checkout are left out, never shipped.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path

from toolkit.errors import ReleaseError

from .catalog import Catalog, Release

__all__ = ["Artifact", "build", "build_all", "list_artifacts", "load_artifact", "tree_hash"]

ARTIFACT_PREFIX = "smars-"
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Artifact:
    """A built release: where its files are and what its manifest says."""

    version: str
    tree: str
    tarball: Path
    manifest_path: Path
    manifest: dict

    def to_json(self) -> dict:
        return {
            "version": self.version,
            "tree": self.tree,
            "tarball": str(self.tarball),
            "artifact_sha256": self.manifest["artifact_sha256"],
            "files": len(self.manifest["files"]),
            "flags": self.manifest["flags"],
            "strategies": self.manifest["strategies"],
        }


def _path_bytes(path: str) -> bytes:
    """A path's bytes as on disk: a name that is not UTF-8 keeps its raw bytes (os.fsdecode
    turned them into surrogates), as the router and `sha256sum` see it."""
    return path.encode("utf-8", "surrogateescape")


def tree_hash(files: dict[str, str]) -> str:
    """SHA-256 over `<sha256>  <path>\\n` lines sorted by path (bytewise)."""
    listing = "".join(f"{files[p]}  {p}\n" for p in sorted(files, key=_path_bytes))
    return hashlib.sha256(_path_bytes(listing)).hexdigest()


def _release_json(release: Release) -> bytes:
    doc = {
        "version": release.version,
        "strategies": list(release.strategies),
        "flags": dict(sorted(release.flags.items())),
        "retired": list(release.retired),
    }
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


def _refusal(name: str, mode: int) -> str | None:
    """Why an entry of the source package may not go into a release, or None."""
    if stat.S_ISLNK(mode):
        return "a symlink"
    if name.endswith(".pyc"):
        return "bytecode"
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        return "neither a file nor a folder"
    return None


def _source_files(source: Path) -> list[Path]:
    """Every file of the source package (its __pycache__/ folders left out), sorted;
    ReleaseError naming the first entry a release may not hold."""
    found: list[Path] = []
    refused: list[tuple[bytes, str]] = []
    for directory, subdirs, names in os.walk(source):
        base = Path(directory)
        descend = []
        for name in subdirs + names:
            path = base / name
            mode = path.lstat().st_mode
            why = _refusal(name, mode)
            if why:
                refused.append((os.fsencode(path), f"{path}: {why}"))
            elif stat.S_ISDIR(mode):
                if name != "__pycache__":  # the checkout's own cache, never shipped
                    descend.append(name)
            else:
                found.append(path)
        subdirs[:] = descend
    if refused:
        refused.sort()
        more = f" ({len(refused) - 1} more)" if len(refused) > 1 else ""
        raise ReleaseError(
            f"{refused[0][1]}: a release tree holds only the files its hash covers{more}"
        )
    return sorted(found)


def _tree_files(source: Path, release: Release) -> dict[str, bytes]:
    """Relative path under the release dir → content, for the files this release contains."""
    files: dict[str, bytes] = {"release.json": _release_json(release)}
    for path in _source_files(source):
        rel = path.relative_to(source)
        is_strategy = (
            rel.parts[0] == "strategies" and len(rel.parts) == 2 and rel.stem != "__init__"
        )
        if is_strategy and rel.stem not in release.strategies:
            continue
        files[f"smars/{rel.as_posix()}"] = path.read_bytes()
    return files


def _tarball(files: dict[str, bytes]) -> bytes:
    """A gzip'd tar whose bytes depend only on the files: fixed order, owner, mode and times."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = sorted({str(Path(p).parent) for p in files} - {"."})
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
        for name in sorted(files, key=_path_bytes):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(files[name]), 0o644, 0
            tar.addfile(info, io.BytesIO(files[name]))
    out = io.BytesIO()
    with gzip.GzipFile(filename="", fileobj=out, mode="wb", mtime=0) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def build(catalog: Catalog, version: str, source: Path, dist: Path) -> Artifact:
    """Build one release into `dist/<version>/` (idempotent: same input, same bytes)."""
    release = catalog.get(version)
    files = _tree_files(source, release)
    digests = {p: hashlib.sha256(b).hexdigest() for p, b in files.items()}
    blob = _tarball(files)
    folder = dist / version
    folder.mkdir(parents=True, exist_ok=True)
    tarball = folder / f"{ARTIFACT_PREFIX}{version}.tar.gz"
    manifest = {
        "version": version,
        "tree": tree_hash(digests),
        "files": dict(sorted(digests.items())),
        "flags": dict(release.flags),
        "strategies": list(release.strategies),
        "retired": list(release.retired),
        "artifact": tarball.name,
        "artifact_sha256": hashlib.sha256(blob).hexdigest(),
    }
    _write_if_changed(tarball, blob)
    manifest_path = folder / MANIFEST
    _write_if_changed(manifest_path, (json.dumps(manifest, indent=2) + "\n").encode())
    return Artifact(version, manifest["tree"], tarball, manifest_path, manifest)


def build_all(catalog: Catalog, source: Path, dist: Path) -> list[Artifact]:
    return [build(catalog, v, source, dist) for v in catalog.versions]


def _write_if_changed(path: Path, data: bytes) -> None:
    if path.exists() and path.read_bytes() == data:
        return
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def load_artifact(dist: Path, version: str) -> Artifact:
    """A previously built artifact, checked against its manifest."""
    folder = dist / version
    manifest_path = folder / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
    except FileNotFoundError:
        raise ReleaseError(
            f"release {version} is not built (knight release build {version})"
        ) from None
    except (OSError, ValueError) as exc:
        raise ReleaseError(f"{manifest_path}: unreadable manifest: {exc}") from None
    tarball = folder / manifest["artifact"]
    try:
        digest = hashlib.sha256(tarball.read_bytes()).hexdigest()
    except FileNotFoundError:
        raise ReleaseError(f"{tarball}: missing (knight release build {version})") from None
    if digest != manifest["artifact_sha256"]:
        raise ReleaseError(f"{tarball}: checksum does not match its manifest")
    return Artifact(version, manifest["tree"], tarball, manifest_path, manifest)


def list_artifacts(dist: Path) -> list[Artifact]:
    """Every built artifact under `dist`, oldest version first."""
    if not dist.is_dir():
        return []
    found = []
    for folder in sorted(
        dist.iterdir(), key=lambda p: [int(x) if x.isdigit() else x for x in p.name.split(".")]
    ):
        if (folder / MANIFEST).is_file():
            found.append(load_artifact(dist, folder.name))
    return found
