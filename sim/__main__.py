"""``python -m sim``: the simulator's commands without the rest of the kqueue CLI."""

from __future__ import annotations

import argparse
import sys

from sim.cli import register


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen command; returns its exit code."""
    parser = argparse.ArgumentParser(prog="python -m sim", description="kqueue's simulator")
    register(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
