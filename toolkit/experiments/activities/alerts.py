"""alerts: the pre-open alert e-mails of 2012 ("Power Peg disabled"), which nobody acted on.

The routers log the errors and send the messages to the mailbox; with the monitor guard they
are alerts with an owner instead.
"""

from __future__ import annotations

from typing import Any

from toolkit.experiments.context import context

from .call import activity, done
from .schema import REQUIRED, Arg, Spec, integer, node, text

SPEC = Spec(
    name="alerts",
    summary="Make the routers raise the pre-open alert messages.",
    args={
        "count": Arg(integer(1, 10_000), REQUIRED, "how many messages (97 in 2012)"),
        "text": Arg(text, "Power Peg disabled", "what they say"),
        "node": Arg(node, None, "the node that raises them (default: every node)"),
    },
)


@activity(SPEC)
def alerts(
    count: int,
    text: str = "Power Peg disabled",
    node: str | None = None,
    configuration: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The pre-open messages. In 2012 they came from SMARS before the open, about Power Peg,
    because the launch configuration met the old code. Here: the fleet's flags file is pushed
    with flag_7 declared as RLP (still off), and each node re-reads it `count` times; a node
    whose code gives flag_7 another meaning logs an error each time (smars_errors_total), which
    the monitor sees as an error burst. Nodes whose code agrees say nothing."""
    lab = context(configuration).lab
    targets = [node] if node else lab.settings.node_names
    flags = lab.baseline_flags()
    flags["flag_7"] = {"value": False, "meaning": "rlp"}
    loud = []
    for name in targets:
        lab.set_flags(name, flags)
        if count > 1:
            lab.reload(name, count - 1)
        version = lab.node_admin(name).get("/version")
        code = (version.get("flags", {}).get("flag_7") or {}).get("code_meaning")
        if code not in (None, "rlp"):
            loud.append(name)
    return done(
        SPEC.name,
        f"{text!r} x{count} from {', '.join(loud) or 'no node'} (flag_7 declared rlp, off)",
    )
