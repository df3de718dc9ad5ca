"""Makes the testinfra suite's support modules (tests/infra: fleet, flagsfile, probes) importable
by name, so their pure logic is unit-tested here without a fleet."""

import sys
from pathlib import Path

INFRA = Path(__file__).resolve().parents[2] / "infra"
if str(INFRA) not in sys.path:
    sys.path.insert(0, str(INFRA))
