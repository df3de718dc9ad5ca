"""knight: deploy, break and guard an eight-node order-router lab from the host.

The toolkit drives Docker, Ansible and the routers' admin API; it never imports the router code.
"""

import logging

__version__ = "0.1.0"


def discover(discover_system: bool = True) -> dict:
    """The Chaos Toolkit's way into an extension (`chaos discover knight --no-install`): knight's
    activities and probes (toolkit/chaostoolkit). Needs the `chaostoolkit` extra."""
    from .chaostoolkit import discover as discover_knight

    return discover_knight(discover_system)


# The library logs what it does (Docker calls, Ansible runs) at debug level; the CLI decides what
# to show (`knight -v`), and nothing is printed for a caller that configured no logging.
logging.getLogger("knight").addHandler(logging.NullHandler())
