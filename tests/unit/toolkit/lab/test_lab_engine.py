"""The engine finds the lab's containers by the lab's label, never by name alone, and creates every
container without privileges and within limits."""

from __future__ import annotations

import pytest
from lab_fakes import FakeContainer, engine_with, lab_container, tiny_artifact

from toolkit.chaos.kinds.kill import Kill
from toolkit.errors import LabError
from toolkit.lab.engine import ContainerSpec, Foreign, Resources
from toolkit.lab.lab import Lab
from toolkit.settings import LABEL, Settings

LAB = "t"


@pytest.fixture(autouse=True)
def _locks(tmp_path, monkeypatch):
    monkeypatch.setenv("KNIGHT_LOCKS", str(tmp_path / "locks"))


def test_a_container_of_the_lab_is_found_by_its_name():
    mine = lab_container(LAB, "smars-1", **{"knight.node": "smars-1"})
    assert engine_with(LAB, mine).get("t-smars-1") is mine


@pytest.mark.parametrize("labels", [{}, {LABEL: "other"}], ids=["unlabelled", "another lab's"])
def test_a_container_that_only_bears_a_lab_name_is_foreign(labels):
    impostor = FakeContainer("t-smars-3", labels)
    with pytest.raises(Foreign) as info:
        engine_with(LAB, impostor).get("t-smars-3")
    assert str(info.value) == (
        "container t-smars-3 is not lab 't''s (it lacks the label knight.lab=t): "
        "knight leaves it alone; remove or rename it"
    )
    assert isinstance(info.value, LabError)  # one line, exit 1, from the CLI


def test_no_container_and_an_id_prefix_are_not_a_container_of_that_name():
    other = FakeContainer("elsewhere", {LABEL: LAB}, id="abc123")
    engine = engine_with(LAB, other)
    assert engine.get("t-smars-1") is None
    assert engine.get("abc") is None  # Docker would hand out `elsewhere` by its id


def test_nothing_is_written_exec_d_into_or_faulted_in_a_foreign_container(tmp_path):
    impostor = FakeContainer("t-smars-3", {})
    lab = Lab(Settings(lab=LAB, nodes=3), engine=engine_with(LAB, impostor))
    with pytest.raises(Foreign):
        lab.write_flags_file("smars-3", b"{}")
    with pytest.raises(Foreign):
        lab.set_flags("smars-3", {})
    with pytest.raises(Foreign):
        Kill(lab, "smars-3")
    with pytest.raises(Foreign):
        lab.node_admin("smars-3")
    assert impostor.calls == []


def test_lab_up_refuses_a_foreign_container_before_it_creates_anything(tmp_path, monkeypatch):
    impostor = FakeContainer("t-smars-3", {})
    engine = engine_with(LAB, impostor)
    lab = Lab(Settings(lab=LAB, nodes=3), engine=engine)
    monkeypatch.setattr(Lab, "artifact", lambda self, version: tiny_artifact(tmp_path, version))
    with pytest.raises(Foreign, match=r"^container t-smars-3 is not lab 't''s"):
        lab.up()
    assert engine.client.api.created == []
    assert engine.client.networks.created == []
    assert impostor.calls == []


def test_a_network_that_only_bears_the_lab_network_name_is_foreign():
    engine = engine_with(LAB, networks={"t-net": {}})
    with pytest.raises(Foreign, match=r"^network t-net is not lab 't''s"):
        engine.ensure_network("t-net")
    assert engine.client.networks.created == []


def test_a_network_whose_name_only_contains_the_lab_network_name_is_another_one():
    engine = engine_with(LAB, networks={"t-net-2": {}})
    engine.ensure_network("t-net")
    assert engine.client.networks.created == ["t-net"]


def test_every_container_is_created_without_privileges_and_within_limits():
    engine = engine_with(LAB, networks={"t-net": {LABEL: LAB}})
    spec = ContainerSpec(
        name="t-smars-1",
        hostname="smars-1",
        command=["router"],
        labels={"knight.role": "router", LABEL: "forged"},
        user="10001:10001",
        resources=Resources(memory=384 * 2**20, pids=256),
        volumes=("/opt/smars/releases",),
    )
    engine.create(spec, "knight-lab:t", "t-net", uid=10002)
    (made,) = engine.client.api.created
    host = made["host_config"]
    assert made["user"] == "10001:10001"
    assert made["labels"] == {"knight.role": "router", LABEL: LAB}  # a spec cannot move it
    assert host["CapDrop"] == ["ALL"]
    assert host.get("CapAdd") is None
    assert host["SecurityOpt"] == ["no-new-privileges:true"]
    assert host.get("Privileged") in (None, False)
    assert (host["Memory"], host["MemorySwap"], host["PidsLimit"]) == (384 * 2**20,) * 2 + (256,)
    assert host["Mounts"] == [
        {
            "Target": "/opt/smars/releases",
            "Source": None,
            "Type": "volume",
            "ReadOnly": False,
            "VolumeOptions": {"Labels": {LABEL: LAB}},
        }
    ]
