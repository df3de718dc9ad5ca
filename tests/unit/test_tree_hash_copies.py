"""The tree hash has four homes on purpose (docs/protocol.md, "Copies kept on purpose"): the
toolkit's builder, the router's own, the node agent's (smarsctl ships inline and stands alone)
and the testinfra probe's (a checker does not import what it checks). routerd keeps a fifth copy
of the refusal alone: it checks the tree before it starts a router from it, and imports nothing
from a release. This test holds them to one answer, or one refusal, over the trees a node's disk
can hold.

The rule (docs/protocol.md, "Tree hash"): a release tree holds only regular files and folders,
and every one of its files is covered: each is named by its path bytes, sorted bytewise. Python
runs what the hash would not see, so whatever it would not see is refused, naming the path:
bytecode (`*.pyc`, `__pycache__/`), symlinks, and anything that is neither a file nor a folder.
The builder reads a source checkout, where the developer's interpreter writes `__pycache__/`:
that cache it leaves out (it never ships); a `*.pyc` outside it, or a link, it refuses as well.
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
import routerd
from smars.release import tree_hash as router_tree_hash

from toolkit.releases.artifacts import _release_json, build
from toolkit.releases.catalog import Catalog, Release

REPO = Path(__file__).resolve().parents[2]
VERSION = "9.9.9"
RELEASE = Release(VERSION, "an awkward tree", ("sor",), {}, ())

#: What the hash covers in the clean tree: the files that run, by their bytes on disk.
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
def clean_tree(tmp_path: Path) -> Path:
    """A release tree (release.json beside smars/) with a nested package, a name that is not
    UTF-8, an empty file and an empty folder: awkward, and clean."""
    root = tmp_path / "release"
    smars = root / "smars"
    (smars / "sub").mkdir(parents=True)
    (root / "release.json").write_bytes(_release_json(RELEASE))  # what the toolkit generates
    (smars / "__init__.py").write_text('"""smars"""\n')
    (smars / "__main__.py").write_text("print('running')\n")
    (smars / "sub" / "__init__.py").write_text("X = 1\n")
    try:
        (smars / os.fsdecode(b"caf\xe9.py")).write_text("CAFE = 1\n")
    except (OSError, UnicodeError):
        pytest.skip("this file system refuses a file name that is not UTF-8")
    (smars / "empty.py").write_bytes(b"")
    (smars / "nothing").mkdir()
    return root


def expected(root: Path) -> str:
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
#: The copies that read a release tree as a node holds it (the builder reads a source checkout).
ON_THE_NODE = ("router", "node agent", "testinfra probe")


def outcome(implementation: Callable[[Path], str], root: Path) -> str | Refused:
    try:
        return implementation(root)
    except Exception as exc:  # a refusal, in whatever form this copy refuses
        return Refused(f"{type(exc).__name__}: {exc}")


def routerd_check(root: Path) -> Refused | None:
    """routerd's copy of the refusal, before it starts a router from `root`."""
    problem = routerd.tree_problem(os.fspath(root))
    return None if problem is None else Refused(problem)


# -- what Python would run and the hash would not see: each one refused ----------------------
def _sourceless_pyc(smars: Path) -> str:
    (smars / "stray.pyc").write_bytes(b"\x00stray")  # `import smars.stray` runs it
    return "stray.pyc"


def _bare_pyc(smars: Path) -> str:
    (smars / ".pyc").write_bytes(b"\x00a bare .pyc")
    return ".pyc"


def _link_to_a_file(smars: Path) -> str:
    os.symlink("__main__.py", smars / "link.py")
    return "link.py"


def _link_to_a_folder(smars: Path) -> str:
    os.symlink("sub", smars / "linked_dir")
    return "linked_dir"


def _link_out_of_the_tree(smars: Path) -> str:
    os.symlink("/etc/hostname", smars / "outside.py")
    return "outside.py"


def _dangling_link(smars: Path) -> str:
    os.symlink("nowhere.py", smars / "dangling.py")
    return "dangling.py"


def _fifo(smars: Path) -> str:
    os.mkfifo(smars / "pipe")  # neither file nor folder; reading it would block the builder
    return "pipe"


STRAYS: dict[str, Callable[[Path], str]] = {
    "a sourceless .pyc": _sourceless_pyc,
    "a bare .pyc": _bare_pyc,
    "a symlink to a file": _link_to_a_file,
    "a symlink to a folder": _link_to_a_folder,
    "a symlink out of the tree": _link_out_of_the_tree,
    "a dangling symlink": _dangling_link,
    "a fifo": _fifo,
}


@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_every_copy_of_the_tree_hash_gives_the_same_answer_for_a_clean_tree(
    name: str, clean_tree: Path
):
    assert outcome(IMPLEMENTATIONS[name], clean_tree) == expected(clean_tree)
    assert routerd_check(clean_tree) is None


@pytest.mark.parametrize("stray", STRAYS)
@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_every_copy_refuses_what_the_hash_would_not_cover_naming_it(
    name: str, stray: str, clean_tree: Path
):
    found = STRAYS[stray](clean_tree / "smars")
    answer = outcome(IMPLEMENTATIONS[name], clean_tree)
    assert answer == Refused("")
    assert f"smars/{found}" in answer.why  # type: ignore[union-attr]


@pytest.mark.parametrize("stray", STRAYS)
def test_routerd_refuses_the_same_trees_naming_the_path(stray: str, clean_tree: Path):
    found = STRAYS[stray](clean_tree / "smars")
    answer = routerd_check(clean_tree)
    assert answer == Refused("")
    assert f"smars/{found}" in answer.why  # type: ignore[union-attr]


def _bytecode_cache(root: Path) -> Path:
    cache = root / "smars" / "sub" / "__pycache__"
    cache.mkdir()
    (cache / "__init__.cpython-311.pyc").write_bytes(b"\x00bytecode")
    return cache


@pytest.mark.parametrize("name", ON_THE_NODE)
def test_a_bytecode_cache_in_a_release_tree_is_refused_on_the_node(name: str, clean_tree: Path):
    """Python loads `__pycache__/X.cpython-3NN.pyc` in place of X.py when its header names X.py's
    size and time (even with -B, which only stops it writing): a planted one runs unseen."""
    _bytecode_cache(clean_tree)
    answer = outcome(IMPLEMENTATIONS[name], clean_tree)
    assert answer == Refused("")
    assert "smars/sub/__pycache__" in answer.why  # type: ignore[union-attr]
    assert "smars/sub/__pycache__" in str(routerd_check(clean_tree))


def test_the_builder_leaves_the_checkouts_bytecode_cache_out_of_the_release(clean_tree: Path):
    """The developer's interpreter writes __pycache__/ into the source checkout; the artifact
    never carries it, so the release hashes as the clean tree does."""
    _bytecode_cache(clean_tree)
    assert toolkit(clean_tree) == expected(clean_tree)


# -- the release version: a release folder's name, and what a pending marker may hold ----------
VERSIONS = (
    "7.1.0",
    "10.20.300",
    "0.0.0",
    "1.2",
    "1.2.3.4",
    "../../etc",
    "8.0.1/../../etc",
    "1.2.3\n",
    "v1.2.3",
    "1.2.x",
    "",
    ".1.2",
    "1..2",
    "1.2.3 ",
)


def test_every_copy_of_the_release_version_pattern_accepts_the_same_names():
    """The toolkit builds versions its catalog accepts; the router (the switch's target), routerd
    (the tree it starts) and the node agent (a folder name, the pending marker) must accept
    exactly those, or a deploy is refused on the nodes, or a marker leads out of the releases."""
    from smars.release import VERSION as router_version

    from toolkit.releases.catalog import VERSION as toolkit_version

    copies = {
        "toolkit": toolkit_version,
        "router": router_version,
        "routerd": routerd._VERSION,
        "node agent": SMARSCTL.VERSION,
    }
    accepted = {name: [v for v in VERSIONS if p.fullmatch(v)] for name, p in copies.items()}
    assert accepted == {name: ["7.1.0", "10.20.300", "0.0.0"] for name in copies}
