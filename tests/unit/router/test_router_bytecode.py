"""A router process runs only the source its tree hash covers: bytecode slipped into its tree
after the tree was checked (a forged `__pycache__/*.pyc` that claims to be a module's compile)
is never read, and its own bytecode goes to its user's cache folder, never into the tree.
routerd and the router's own switch build that environment, each its own copy."""

from __future__ import annotations

import importlib.util
import marshal
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import routerd
from smars import switch

ENVIRONS = {"routerd": routerd.router_environ, "switch": switch._environ}


def _forged_tree(tree: Path) -> None:
    """pkg/mod.py says X = 'source'; its cached bytecode, with a matching header, says 'EVIL'."""
    (tree / "pkg").mkdir()
    (tree / "pkg" / "__init__.py").write_text("")
    source = tree / "pkg" / "mod.py"
    source.write_text("X = 'source'\n")
    st = source.stat()
    code = compile("X = 'EVIL'\n", str(source), "exec")
    header = struct.pack("<III", 0, int(st.st_mtime) & 0xFFFFFFFF, st.st_size & 0xFFFFFFFF)
    cache = Path(importlib.util.cache_from_source(str(source)))
    cache.parent.mkdir()
    cache.write_bytes(importlib.util.MAGIC_NUMBER + header + marshal.dumps(code))


def _x(env: dict[str, str], tree: Path) -> str:
    argv = [sys.executable, "-S", "-c", "import pkg.mod; print(pkg.mod.X)"]
    return subprocess.run(argv, env=env, cwd=tree, capture_output=True, text=True).stdout.strip()


def test_forged_cached_bytecode_would_run_under_a_plain_environment(tmp_path):
    _forged_tree(tmp_path)
    plain = {k: v for k, v in os.environ.items() if not k.startswith("PYTHONPYCACHE")}
    assert _x(plain | {"PYTHONPATH": str(tmp_path)}, tmp_path) == "EVIL"


@pytest.mark.parametrize("who", list(ENVIRONS))
def test_a_router_process_never_reads_bytecode_from_its_tree(tmp_path, monkeypatch, who):
    tree, cache = tmp_path / "tree", tmp_path / "cache"
    tree.mkdir()
    _forged_tree(tree)
    monkeypatch.setenv("SMARS_PYCACHE", str(cache))
    env = ENVIRONS[who](str(tree))
    assert env["PYTHONPATH"] == str(tree)
    assert env["PYTHONPYCACHEPREFIX"] == str(cache)
    assert _x(env, tree) == "source"


@pytest.mark.parametrize("who", list(ENVIRONS))
def test_a_router_process_keeps_its_bytecode_in_its_own_cache_not_the_tree(
    tmp_path, monkeypatch, who
):
    tree, cache = tmp_path / "tree", tmp_path / "cache"
    (tree / "pkg").mkdir(parents=True)
    (tree / "pkg" / "__init__.py").write_text("")
    (tree / "pkg" / "mod.py").write_text("X = 'source'\n")
    monkeypatch.setenv("SMARS_PYCACHE", str(cache))
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")  # as the image sets it for every role
    env = ENVIRONS[who](str(tree))
    assert _x(env, tree) == "source"
    assert not list(tree.rglob("__pycache__"))
    assert list(cache.rglob("mod.*.pyc"))  # cached, where only the router's user writes
