"""Set-up of the testinfra verification suite: its options, the per-node answers the tests read,
and the whole fleet for the fleet-wide test.

The nodes are the testinfra hosts given with `--hosts` (docker://…, ssh://…, ansible://GROUP
with `--ansible-inventory`); this suite never starts, stops or deploys anything.
"""

from __future__ import annotations

import os
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import probes
import pytest
import testinfra
from fleet import Fleet, NodeIdentity, node_sort_key
from testinfra.host import Host


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("knight infra", "knight fleet verification (tests/infra)")
    group.addoption(
        "--expect-release",
        metavar="VERSION",
        default=None,
        help="the release every node must run (default: only check that the fleet is uniform)",
    )
    group.addoption(
        "--min-orders-per-s",
        type=float,
        default=200.0,
        metavar="RATE",
        help="throughput floor: parent orders per second each node must fill (default 200)",
    )


def pytest_configure(config: pytest.Config) -> None:
    # testinfra's ansible backend shells out to `ansible-inventory`; when pytest runs from a venv
    # that is not activated, the venv's bin is not on PATH yet.
    venv_bin = os.path.dirname(sys.executable)
    if shutil.which("ansible-inventory") is None and os.path.exists(
        os.path.join(venv_bin, "ansible-inventory")
    ):
        os.environ["PATH"] = venv_bin + os.pathsep + os.environ.get("PATH", "")


@pytest.fixture(autouse=True)
def _hosts_given(request: pytest.FixtureRequest) -> None:
    if request.config.option.hosts is None:
        pytest.fail(
            "tests/infra verifies a fleet: give its nodes with --hosts "
            "(docker://knight-smars-1,… or ansible://routers --ansible-inventory=FILE)",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def expect_release(request: pytest.FixtureRequest) -> str | None:
    return request.config.getoption("expect_release")


@pytest.fixture(scope="session")
def min_orders_per_s(request: pytest.FixtureRequest) -> float:
    return request.config.getoption("min_orders_per_s")


def node_name(host: Host, hostname: str | None = None) -> str:
    """The node's name: its inventory_hostname under Ansible, else the host name it reports."""
    if host.backend.NAME == "ansible":
        return host.backend.host
    return hostname or host.check_output("hostname").strip()


# -- one node (the testinfra `host` fixture, parametrized over --hosts) ------------------------
@pytest.fixture(scope="module")
def answer(host: Host) -> dict[str, Any]:
    """The node's host name and its admin API's `GET /version`, asked on the node itself."""
    return probes.decode(host.run(probes.version()))


@pytest.fixture(scope="module")
def version(answer: dict[str, Any]) -> dict[str, Any]:
    assert answer["status"] == 200, f"GET /version answered {answer['status']}"
    return answer["version"]


@pytest.fixture(scope="module")
def name(host: Host, answer: dict[str, Any]) -> str:
    return node_name(host, answer.get("hostname"))


@pytest.fixture(scope="module")
def expected_release(expect_release: str | None, version: dict[str, Any]) -> str:
    """--expect-release when given; otherwise the release the node says it runs, so the other
    checks (symlink, tree hash) still hold it to what it claims."""
    return expect_release or version["release"]


# -- the whole fleet ---------------------------------------------------------------------------
def fleet_hosts(config: pytest.Config) -> list[Host]:
    """The hosts of --hosts, resolved exactly as testinfra's plugin does for the `host` fixture."""
    opt = config.option
    return testinfra.get_hosts(
        opt.hosts.split(","),
        connection=opt.connection,
        ssh_config=opt.ssh_config,
        ssh_identity_file=opt.ssh_identity_file,
        sudo=opt.sudo,
        sudo_user=opt.sudo_user,
        ansible_inventory=opt.ansible_inventory,
        force_ansible=opt.force_ansible,
    )


def _identify(host: Host) -> tuple[str, NodeIdentity | str]:
    try:
        answer = probes.decode(host.run(probes.version()))
    except Exception as e:  # a node that cannot be reached is a finding, not a crash
        fallback = host.backend.host if host.backend.NAME == "ansible" else host.backend.hostname
        return fallback, f"{type(e).__name__}: {e}"
    name = node_name(host, answer.get("hostname"))
    if answer["status"] != 200:
        return name, f"GET /version answered {answer['status']}"
    return name, NodeIdentity.from_version(name, answer["version"])


@pytest.fixture(scope="session")
def fleet(request: pytest.FixtureRequest) -> Fleet:
    """Ask every node at once (over its own transport) what it runs."""
    hosts = fleet_hosts(request.config)
    with ThreadPoolExecutor(max_workers=min(len(hosts), 16) or 1) as pool:
        answers = list(pool.map(_identify, hosts))
    identities = [found for _, found in answers if isinstance(found, NodeIdentity)]
    silent = {name: found for name, found in answers if isinstance(found, str)}
    return Fleet(
        size=len(hosts),
        identities=sorted(identities, key=lambda i: node_sort_key(i.node)),
        silent=silent,
    )
