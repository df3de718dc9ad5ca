"""The lab's admin tokens: one lab secret, and derived from it each node's own admin token, the
venue's, and the hello token the routers present to the venue.

A token is HMAC-SHA256(lab secret, purpose): a node holds its own token only, so a node (or
anyone who reads its environment) opens no other node nor the venue, while the toolkit, which
keeps the secret, derives any token it needs, for a node not created yet too. The secret is kept
by the lab itself (a label on its venue container, never in a container's environment).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["LabTokens"]


def _derive(secret: str, purpose: str) -> str:
    return hmac.new(secret.encode(), purpose.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class LabTokens:
    """Every token of one lab, from its secret (never shown: not in repr, logs nor tracebacks)."""

    secret: str = field(repr=False)

    @classmethod
    def new(cls) -> LabTokens:
        return cls(secrets.token_hex(32))

    def node(self, name: str) -> str:
        """A router node's admin token (SMARS_ADMIN_TOKEN in that node's environment)."""
        return _derive(self.secret, f"node-admin:{name}")

    @property
    def venue(self) -> str:
        """The venue's admin token (VENUE_ADMIN_TOKEN)."""
        return _derive(self.secret, "venue-admin")

    @property
    def hello(self) -> str:
        """What a router presents in its hello to the venue (SMARS_VENUE_TOKEN on every router,
        VENUE_HELLO_TOKEN on the venue): one per lab, so no outsider can pose as a node."""
        return _derive(self.secret, "venue-hello")

    @property
    def receiver(self) -> str:
        """What Alertmanager presents to the lab's webhook receiver, and knight to read it
        (RECEIVER_TOKEN on the receiver; a file beside Alertmanager's configuration)."""
        return _derive(self.secret, "alert-receiver")

    def every(self, nodes: Iterable[str]) -> list[str]:
        """The secret and every token derived from it for these nodes: what a journal scrubs."""
        return [
            self.secret,
            self.venue,
            self.hello,
            self.receiver,
            *(self.node(n) for n in nodes),
        ]
