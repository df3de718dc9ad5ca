"""The variables knight passes deploy.yml for a release (its tree, checksum and URL under the
inventory's artifact_base_url, the artifact built and published first, and a fence epoch), as
one JSON object:
what converge.yml deploys with. Usage: release_vars.py INVENTORY VERSION"""

from __future__ import annotations

import json
import sys
import time

from toolkit.deploy.fleet import Fleet
from toolkit.deploy.operations import playbook_vars
from toolkit.settings import load_settings


def main(inventory: str, version: str) -> None:
    fleet = Fleet.from_inventory(inventory, load_settings())
    fleet.catalog.get(version)
    # As knight's deploy with its fencing guard (on by default): the fleet manifest is written
    # under a new epoch, so fenced routers trade on the new release.
    epoch = time.time_ns() // 1_000_000
    print(json.dumps(playbook_vars(fleet, version) | {"knight_fence_epoch": epoch}))


if __name__ == "__main__":
    main(*sys.argv[1:])
