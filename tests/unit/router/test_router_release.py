"""The identity of the running code: tree hash and the strategy registry."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from router_fixtures import SOURCE, make_release, point, wait_for
from smars.errors import ReleaseError
from smars.release import check_tree, load_release, tree_hash
from smars.strategies import discover
from smars.switch import unrunnable


def by_hand(root: Path, files: dict[str, bytes]) -> str:
    """sha256sum's listing, sorted bytewise, hashed: what protocol.md defines."""
    lines = [
        f"{hashlib.sha256(files[p]).hexdigest()}  {p}\n"
        for p in sorted(files, key=lambda p: p.encode())
    ]
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def build(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


FILES = {
    "release.json": b'{"version": "1.0.0"}\n',
    "smars/__init__.py": b"",
    "smars/a.b.py": b"dots sort before slashes\n",
    "smars/a/b.py": b"x = 1\n",
    "smars/Z.py": b"capitals sort first\n",
    "smars/strategies/sor.py": b"NAME = 'sor'\n",
}


def test_tree_hash_matches_a_hand_computation(tmp_path):
    build(tmp_path, FILES)
    assert tree_hash(tmp_path) == by_hand(tmp_path, FILES)


@pytest.mark.parametrize(
    ("stray", "named"),
    [
        ({"smars/stray.pyc": b"\0"}, "smars/stray.pyc: bytecode:"),
        ({"smars/__pycache__/Z.cpython-311.pyc": b"\0"}, "smars/__pycache__: bytecode:"),
        ({"smars/a/b.pyc": b"\0"}, "smars/a/b.pyc: bytecode:"),
    ],
)
def test_tree_hash_refuses_bytecode_naming_it(tmp_path, stray, named):
    """Python imports a sourceless x.pyc, and a __pycache__ entry in place of its source: the
    hash would not see them, so a tree that holds any is refused, not hashed."""
    build(tmp_path, FILES | stray)
    with pytest.raises(ReleaseError, match="^" + re.escape(f"{tmp_path}/{named}")):
        tree_hash(tmp_path)


def test_tree_hash_refuses_a_symlink_naming_it(tmp_path):
    build(tmp_path, FILES)
    (tmp_path / "smars" / "link.py").symlink_to(tmp_path / "smars" / "Z.py")
    with pytest.raises(
        ReleaseError, match="^" + re.escape(f"{tmp_path}/smars/link.py: a symlink:")
    ):
        tree_hash(tmp_path)


def test_a_release_that_is_not_clean_does_not_load(tmp_path):
    tree = make_release(tmp_path, "8.0.1", ("sor", "rlp"), {"rlp_enable": "rlp"})
    (tree / "smars" / "strategies" / "evil.pyc").write_bytes(b"\0")
    with pytest.raises(ReleaseError, match=re.escape("smars/strategies/evil.pyc: bytecode:")):
        load_release(tree)
    assert "smars/strategies/evil.pyc: bytecode:" in unrunnable(str(tree), running=str(tree))


def test_a_switch_goes_only_to_a_release_folder_beside_the_running_one(tmp_path):
    """The target of a switch is `<releases>/<MAJOR.MINOR.PATCH>` beside the running tree: a
    marker or a link that names anything else (`../../etc`) is never run."""
    releases = tmp_path / "releases"
    running = make_release(releases, "7.1.0", ("sor", "power_peg"), {"flag_7": "power_peg"})
    beside = make_release(releases, "8.0.1", ("sor", "rlp"), {"rlp_enable": "rlp"})
    elsewhere = make_release(tmp_path / "elsewhere", "8.0.1", ("sor", "rlp"), {})
    oddly_named = make_release(releases, "etc", ("sor", "rlp"), {})
    assert unrunnable(str(beside), running=str(running)) is None
    assert "not beside the running release" in unrunnable(str(elsewhere), running=str(running))
    assert "not a release version" in unrunnable(str(oddly_named), running=str(running))


def test_tree_hash_changes_with_any_byte_or_name(tmp_path):
    build(tmp_path, FILES)
    before = tree_hash(tmp_path)
    (tmp_path / "smars" / "a" / "b.py").write_bytes(b"x = 2\n")
    changed = tree_hash(tmp_path)
    assert changed != before
    os.rename(tmp_path / "smars" / "Z.py", tmp_path / "smars" / "Y.py")
    assert tree_hash(tmp_path) != changed


def test_tree_hash_agrees_with_sha256sum(tmp_path):
    build(tmp_path, FILES)
    listing = subprocess.run(
        "find . -type f -printf '%P\\n' | LC_ALL=C sort | xargs sha256sum",
        shell=True,
        cwd=tmp_path,
        capture_output=True,
        check=True,
    ).stdout
    assert tree_hash(tmp_path) == hashlib.sha256(listing).hexdigest()


def test_load_release_reads_release_json_and_hashes_the_tree(tmp_path):
    tree = make_release(tmp_path, "8.0.1", ("sor", "rlp"), {"rlp_enable": "rlp"})
    release = load_release(tree)
    assert (release.version, release.strategies, dict(release.flags)) == (
        "8.0.1",
        ("sor", "rlp"),
        {"rlp_enable": "rlp"},
    )
    assert release.tree == tree_hash(tree)
    assert check_tree(tree) is None


@pytest.mark.parametrize(
    "content",
    [None, "not json", "[]", '{"strategies": []}', '{"version": "1", "strategies": "sor"}'],
)
def test_a_broken_release_json_is_a_release_error(tmp_path, content):
    if content is not None:
        (tmp_path / "release.json").write_text(content)
    with pytest.raises(ReleaseError):
        load_release(tmp_path)


def test_a_directory_without_the_package_cannot_be_switched_to(tmp_path):
    (tmp_path / "release.json").write_text(json.dumps({"version": "1", "strategies": []}))
    assert "smars/__main__.py" in check_tree(tmp_path)


def test_the_registry_finds_every_strategy_module_of_the_source():
    assert sorted(discover()) == ["power_peg", "rlp", "sor"]


@pytest.mark.parametrize(
    ("strategies", "expected"),
    [(("sor", "power_peg"), ["power_peg", "sor"]), (("sor", "rlp"), ["rlp", "sor"])],
)
def test_the_registry_works_with_strategy_modules_absent(tmp_path, strategies, expected):
    tree = make_release(tmp_path, "x", strategies, {})
    code = "import json, smars.strategies as s; print(json.dumps(sorted(s.discover())))"
    out = subprocess.run(
        [sys.executable, "-P", "-c", code],
        env=dict(os.environ, PYTHONPATH=str(tree)),
        capture_output=True,
        check=True,
    ).stdout
    assert json.loads(out) == expected


def test_the_source_tree_is_a_package_of_one_file_per_concern():
    assert (SOURCE / "__main__.py").is_file()
    assert (SOURCE / "egress.py").is_file()


def test_the_router_refuses_to_switch_into_a_tree_that_is_not_clean(router_factory, releases):
    router = router_factory("7.1.0")
    (releases["8.0.1"] / "smars" / "stray.pyc").write_bytes(b"\0")
    point(router.current, releases["8.0.1"])
    router.signal(signal.SIGUSR2)
    refused = router.wait_event("switch_refused")
    assert f"{releases['8.0.1']}/smars/stray.pyc: bytecode" in refused["error"]
    assert router.admin("GET", "/version")[1]["release"] == "7.1.0"


def test_a_pending_marker_that_names_no_release_folder_is_never_run(
    router_factory, releases, tmp_path
):
    """The marker names the release a flip left; it becomes a folder name, so `../outside`
    must never lead the node out of its releases folder."""
    router = router_factory("8.0.0", switch_confirm_s=0.3)
    outside = make_release(tmp_path, "outside", ("sor", "power_peg"), {"flag_7": "power_peg"})
    (router.home / "switch.pending").write_text("../outside\n")
    since = len(router.events)
    router.signal(signal.SIGUSR2)  # re-exec: the new process finds the marker
    # Whichever refuses it first: the marker's reader, or the switch it would lead to.
    refused = wait_for(
        lambda: [
            e
            for e in router.events[since:]
            if e.get("event") in ("switch_refused", "switch_pending_invalid")
        ],
        what="the marker refused",
    )[0]
    assert refused["event"] == "switch_pending_invalid" or refused["target"] == str(outside)
    assert not [e for e in router.events if e.get("release") == "outside"]
    assert router.admin("GET", "/version")[1]["release"] == "8.0.0"
