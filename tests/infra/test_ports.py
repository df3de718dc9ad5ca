"""Each node listens on its order port and its admin port."""

from __future__ import annotations

import pytest
from probes import ADMIN_PORT, ORDER_PORT
from testinfra.host import Host


@pytest.mark.parametrize("port", [ORDER_PORT, ADMIN_PORT], ids=["order", "admin"])
def test_port_listens(host: Host, port: int):
    assert host.socket(f"tcp://0.0.0.0:{port}").is_listening
