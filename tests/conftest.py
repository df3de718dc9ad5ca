"""Shared test set-up: integration tests run against their own lab, never the user's."""

import os

# Set before any toolkit import reads it: `make test` passes it too, a bare `pytest` gets it here.
os.environ.setdefault("KNIGHT_LAB", "knight-test")
# Journals, reports and Ansible run artifacts of the tests stay out of the user's reports/.
os.environ.setdefault(
    "KNIGHT_REPORTS", os.path.join(os.path.dirname(os.path.dirname(__file__)), ".test-reports")
)
