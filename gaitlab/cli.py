"""The ``gaitlab`` command: one entry point over the packages' own command groups.

Each package declares its commands in its ``cli`` module, which imports nothing heavy at import
time, so ``gaitlab --help`` and the data commands work on the base install without torch. The
service and training never import each other; only this dispatcher sees both.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gaitlab import __version__


def build_parser() -> argparse.ArgumentParser:
    from service import cli as service_cli
    from training import cli as training_cli

    parser = argparse.ArgumentParser(
        prog="gaitlab",
        description="Gait recognition from silhouettes: data, training, evaluation, serving.",
    )
    parser.add_argument("--version", action="version", version=f"gaitlab {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    training_cli.register(commands)
    service_cli.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
