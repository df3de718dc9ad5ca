"""Registers the router test fixtures (they live in router_fixtures, importable by name)."""

from router_fixtures import releases, router_factory, venue

__all__ = ["releases", "router_factory", "venue"]
