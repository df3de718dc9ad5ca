"""Layer 7, chaostoolkit: knight as a Chaos Toolkit extension. `actions` and `probes` are
knight's own activities and probes (the functions its runner calls), `tolerances` checks a
probe's value the way knight does, `controls/` set the guards before an experiment, stop the
method when a deploy is refused and clean up after it, `export` writes an experiment file as a
Chaos Toolkit experiment, and `journal` reads a Chaos Toolkit journal for the report.

`discover` follows the Chaos Toolkit's convention (chaoslib.discovery): `chaos discover knight
--no-install` lists every activity with its arguments. The contract is docs/chaostoolkit.md.
"""

from __future__ import annotations

from typing import Any

from toolkit import __version__

__all__ = ["EXTENSION", "__version__", "discover"]

#: The extension's name, as `chaos discover` and the journals say it.
EXTENSION = "knight"


def discover(discover_system: bool = True) -> dict[str, Any]:
    """knight's actions and probes, with their arguments; with `discover_system`, the lab's
    nodes as the lab named by KNIGHT_LAB reports them (null when it does not answer)."""
    from chaoslib.discovery.discover import (
        discover_actions,
        discover_probes,
        initialize_discovery_result,
    )

    result = initialize_discovery_result(EXTENSION, __version__, "knight")
    result["activities"].extend(discover_actions(f"{__name__}.actions"))
    result["activities"].extend(discover_probes(f"{__name__}.probes"))
    if discover_system:
        result["system"] = _system()
    return result


def _system() -> dict[str, Any] | None:
    from toolkit.lab.lab import Lab

    try:
        status = Lab().status()
    except Exception:  # no Docker, no lab: discovery still lists the activities
        return None
    return {"lab": status.lab, "nodes": [n.name for n in status.nodes]}
