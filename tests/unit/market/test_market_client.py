"""The client container's idle process."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
from market_fixtures import ROUTER_IMAGE, loadgen_env


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_the_client_idles_until_signalled_then_exits_0_promptly(signum: int) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "market.client"],
        stdout=subprocess.PIPE,
        text=True,
        env=loadgen_env(),
        cwd=ROUTER_IMAGE,
    )
    assert proc.stdout is not None
    assert json.loads(proc.stdout.readline())["event"] == "ready"
    time.sleep(0.1)
    assert proc.poll() is None
    started = time.monotonic()
    proc.send_signal(signum)
    assert proc.wait(timeout=5) == 0
    assert time.monotonic() - started < 2
