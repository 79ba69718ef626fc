"""The ``kqueue`` command (``kqueue.cli:main``); see ``kqueue.cli.main``."""

from kqueue.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
