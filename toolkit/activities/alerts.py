"""alerts: the pre-open alert e-mails of 2012 ("Power Peg disabled"), which nobody acted on.

The routers log the errors and send the messages to the mailbox; with the monitor guard they
are alerts with an owner instead.
"""

from __future__ import annotations

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
