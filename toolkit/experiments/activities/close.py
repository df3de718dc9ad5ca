"""close: the market closes. Every load an `open` started stops sending; their accounts come in.

Without a close step the market closes when the method ends (after an abort or Ctrl-C too).
"""

from __future__ import annotations

from typing import Any

from toolkit.experiments.context import context

from .call import activity, done
from .load import close_loads
from .schema import Spec

SPEC = Spec(name="close", summary="Close the market: the open's parent orders stop.")


@activity(SPEC)
def close_market(
    configuration: dict[str, Any] | None = None, secrets: dict[str, Any] | None = None
) -> dict[str, Any]:
    """End every load an `open` started (in this process or another) and collect its account."""
    closed = close_loads(context(configuration))
    if closed is None:
        return done(SPEC.name, "the market was not open", closed=[])
    return done(SPEC.name, "no more parent orders", closed=closed)
