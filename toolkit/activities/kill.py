"""kill: the kill switch. Every node stops trading and cancels its working orders."""

from __future__ import annotations

from .schema import Spec

SPEC = Spec(name="kill", summary="Pull the kill switch on every node.")
