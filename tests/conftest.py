"""Shared test set-up: integration tests run against their own lab, never the user's."""

import os

# Set before any toolkit import reads it: `make test` passes it too, a bare `pytest` gets it here.
os.environ.setdefault("KNIGHT_LAB", "knight-test")
