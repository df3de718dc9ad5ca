"""Registers the market test fixtures (they live in market_fixtures, importable by name)."""

from market_fixtures import venue

__all__ = ["venue"]
