"""The tree hash has four homes on purpose (docs/protocol.md, "Copies kept on purpose"): the
toolkit's builder, the router's own, the node agent's (smarsctl ships inline and stands alone)
and the testinfra probe's (a checker does not import what it checks). This test holds the four
to one answer, or one refusal, over a tree with every awkward thing a node's disk can hold.

Today's rule (docs/protocol.md, "Tree hash"): every regular file, named by its path bytes, sorted
bytewise; `__pycache__/`, `*.pyc` and symlinks left out. When the rule changes (say, to refuse
stray bytecode and links), change `expected` below and all four implementations together.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
from smars.release import tree_hash as router_tree_hash

from toolkit.releases.artifacts import _release_json, build
from toolkit.releases.catalog import Catalog, Release

REPO = Path(__file__).resolve().parents[2]
VERSION = "9.9.9"
RELEASE = Release(VERSION, "an awkward tree", ("sor",), {}, ())

#: What the hash covers in the awkward tree: the files that run, by their bytes on disk.
COVERED = (
    b"release.json",
    b"smars/__init__.py",
    b"smars/__main__.py",
    b"smars/caf\xe9.py",  # not UTF-8
    b"smars/empty.py",
    b"smars/sub/__init__.py",
)


def _load(name: str, path: Path) -> ModuleType:
    """A standalone script, loaded by path as the node (or the probe's author) has it."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SMARSCTL = _load("smarsctl_tree_hash_copy", REPO / "playbooks" / "files" / "smarsctl.py")
PROBES = _load("probes_tree_hash_copy", REPO / "tests" / "infra" / "probes.py")


@dataclass(frozen=True)
class Refused:
    """An implementation would not hash the tree; every refusal is the same answer."""

    why: str = field(compare=False)


@pytest.fixture
def awkward_tree(tmp_path: Path) -> Path:
    """A release tree (release.json beside smars/) with bytecode, links, a non-UTF-8 name, an
    empty file and an empty folder."""
    root = tmp_path / "release"
    smars = root / "smars"
    (smars / "sub" / "__pycache__").mkdir(parents=True)
    (root / "release.json").write_bytes(_release_json(RELEASE))  # what the toolkit generates
    (smars / "__init__.py").write_text('"""smars"""\n')
    (smars / "__main__.py").write_text("print('running')\n")
    (smars / "sub" / "__init__.py").write_text("X = 1\n")
    (smars / "sub" / "__pycache__" / "__init__.cpython-311.pyc").write_bytes(b"\x00bytecode")
    (smars / "stray.pyc").write_bytes(b"\x00stray")
    (smars / ".pyc").write_bytes(b"\x00a bare .pyc")
    os.symlink("__main__.py", smars / "link.py")
    os.symlink("sub", smars / "linked_dir")
    try:
        (smars / os.fsdecode(b"caf\xe9.py")).write_text("CAFE = 1\n")
    except (OSError, UnicodeError):
        pytest.skip("this file system refuses a file name that is not UTF-8")
    (smars / "empty.py").write_bytes(b"")
    (smars / "nothing").mkdir()
    return root


def expected(root: Path) -> str | Refused:
    """The rule, computed by hand from the list of files that run."""
    lines = (
        hashlib.sha256((root / os.fsdecode(p)).read_bytes()).hexdigest().encode() + b"  " + p
        for p in sorted(COVERED)
    )
    return hashlib.sha256(b"".join(line + b"\n" for line in lines)).hexdigest()


# -- the four implementations, each run the way it runs for real ------------------------------
def toolkit(root: Path) -> str:
    """`knight release build`: the source package is hashed with the release.json it generates."""
    catalog = Catalog(root / "releases.yaml", VERSION, {VERSION: RELEASE})
    return build(catalog, VERSION, root / "smars", root.parent / "dist").tree


def router(root: Path) -> str:
    """The router hashing the tree it runs from (smars/release.py)."""
    return router_tree_hash(root)


def node_agent(root: Path) -> str:
    """smarsctl checking a staged release (playbooks/files/smarsctl.py)."""
    return SMARSCTL.tree_hash(root)


def infra_probe(root: Path) -> str:
    """The probe's very command line, run under the local python3 as a node runs it."""
    run = subprocess.run(
        ["sh", "-c", PROBES.tree_hash(os.fspath(root))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    result = SimpleNamespace(rc=run.returncode, stdout=run.stdout, stderr=run.stderr)
    return PROBES.decode(result)["tree"]


IMPLEMENTATIONS: dict[str, Callable[[Path], str]] = {
    "toolkit": toolkit,
    "router": router,
    "node agent": node_agent,
    "testinfra probe": infra_probe,
}


def outcome(implementation: Callable[[Path], str], root: Path) -> str | Refused:
    try:
        return implementation(root)
    except Exception as exc:  # a refusal, in whatever form this copy refuses
        return Refused(f"{type(exc).__name__}: {exc}")


@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_every_copy_of_the_tree_hash_gives_the_same_answer(name: str, awkward_tree: Path):
    assert outcome(IMPLEMENTATIONS[name], awkward_tree) == expected(awkward_tree)
