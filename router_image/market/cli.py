"""Command-line plumbing shared by the market commands: a bad argument ends in one clear line on
stderr and exit status 2, never a usage dump or a traceback."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

__all__ = ["Parser", "UsageError", "positive_int"]


class UsageError(Exception):
    """An argument that parsed but makes no sense (the message is the one line to print)."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.fail(message)

    def fail(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(2)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value
