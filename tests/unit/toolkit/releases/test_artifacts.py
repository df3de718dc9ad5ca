"""Release artifacts: reproducible bytes, the right files per release, a manifest that checks out."""

import hashlib
import io
import json
import subprocess
import tarfile

import pytest

from toolkit.errors import ReleaseError
from toolkit.releases.artifacts import build, list_artifacts, load_artifact, tree_hash
from toolkit.releases.catalog import load_catalog
from toolkit.settings import Settings

S = Settings()
CATALOG = load_catalog(S.catalog_path, S.router_source)


def members(artifact):
    with tarfile.open(artifact.tarball, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def test_same_version_builds_to_the_same_bytes_and_tree(tmp_path):
    first = build(CATALOG, "7.1.0", S.router_source, tmp_path / "a")
    second = build(CATALOG, "7.1.0", S.router_source, tmp_path / "b")
    assert first.tree == second.tree
    assert first.tarball.read_bytes() == second.tarball.read_bytes()
    assert first.manifest == second.manifest


def test_each_release_contains_only_its_strategies(tmp_path):
    old = members(build(CATALOG, "7.1.0", S.router_source, tmp_path))
    new = members(build(CATALOG, "8.0.0", S.router_source, tmp_path))
    assert "smars/strategies/power_peg.py" in old and "smars/strategies/rlp.py" not in old
    assert "smars/strategies/rlp.py" in new and "smars/strategies/power_peg.py" not in new
    assert "smars/strategies/sor.py" in old and "smars/strategies/sor.py" in new
    assert not [n for n in old if "__pycache__" in n or n.endswith(".pyc")]


def test_release_json_carries_the_flag_meanings_of_the_code(tmp_path):
    old = json.loads(members(build(CATALOG, "7.1.0", S.router_source, tmp_path))["release.json"])
    new = json.loads(members(build(CATALOG, "8.0.0", S.router_source, tmp_path))["release.json"])
    fixed = json.loads(members(build(CATALOG, "8.0.1", S.router_source, tmp_path))["release.json"])
    assert old == {
        "version": "7.1.0",
        "strategies": ["sor", "power_peg"],
        "flags": {"flag_7": "power_peg"},
        "retired": [],
    }
    assert new["flags"] == {"flag_7": "rlp"}
    assert fixed["flags"] == {"rlp_enable": "rlp"} and fixed["retired"] == ["flag_7"]


def test_versions_differ_in_tree_hash(tmp_path):
    trees = {v: build(CATALOG, v, S.router_source, tmp_path).tree for v in CATALOG.versions}
    assert len(set(trees.values())) == 3


def test_manifest_lists_every_file_with_its_sha256(tmp_path):
    artifact = build(CATALOG, "8.0.0", S.router_source, tmp_path)
    files = members(artifact)
    assert artifact.manifest["files"] == {
        n: hashlib.sha256(b).hexdigest() for n, b in files.items()
    }
    assert (
        artifact.manifest["artifact_sha256"]
        == hashlib.sha256(artifact.tarball.read_bytes()).hexdigest()
    )
    assert artifact.tree == tree_hash(artifact.manifest["files"])


def test_tree_hash_is_what_sha256sum_gives_by_hand(tmp_path):
    artifact = build(CATALOG, "7.1.0", S.router_source, tmp_path)
    tree = tmp_path / "tree"
    with tarfile.open(artifact.tarball, "r:gz") as tar:
        tar.extractall(tree, filter="data")
    cmd = "find . -type f -printf '%P\\n' | LC_ALL=C sort | xargs sha256sum | sha256sum"
    by_hand = subprocess.run(
        ["sh", "-c", cmd], cwd=tree, capture_output=True, text=True, check=True
    )
    assert by_hand.stdout.split()[0] == artifact.tree


def test_tree_hash_agrees_with_the_router_own_computation(tmp_path):
    from smars.release import tree_hash as router_tree_hash

    artifact = build(CATALOG, "8.0.1", S.router_source, tmp_path)
    tree = tmp_path / "tree"
    with tarfile.open(artifact.tarball, "r:gz") as tar:
        tar.extractall(tree, filter="data")
    assert router_tree_hash(tree) == artifact.tree


def test_load_artifact_refuses_a_tampered_tarball(tmp_path):
    artifact = build(CATALOG, "7.1.0", S.router_source, tmp_path)
    assert load_artifact(tmp_path, "7.1.0").tree == artifact.tree
    artifact.tarball.write_bytes(artifact.tarball.read_bytes() + b"\0")
    with pytest.raises(ReleaseError, match="checksum does not match"):
        load_artifact(tmp_path, "7.1.0")


def test_unbuilt_release_says_how_to_build_it(tmp_path):
    with pytest.raises(ReleaseError, match=r"knight release build 8.0.0"):
        load_artifact(tmp_path, "8.0.0")


def test_list_orders_versions_numerically(tmp_path):
    for v in ("8.0.1", "7.1.0", "8.0.0"):
        build(CATALOG, v, S.router_source, tmp_path)
    assert [a.version for a in list_artifacts(tmp_path)] == ["7.1.0", "8.0.0", "8.0.1"]


def test_tarball_owner_and_times_are_fixed(tmp_path):
    artifact = build(CATALOG, "7.1.0", S.router_source, tmp_path)
    with tarfile.open(fileobj=io.BytesIO(artifact.tarball.read_bytes()), mode="r:gz") as tar:
        for m in tar.getmembers():
            assert (m.uid, m.gid, m.mtime) == (0, 0, 0)
            assert m.mode == (0o755 if m.isdir() else 0o644)
