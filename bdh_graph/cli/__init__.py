"""The ``bdh-graph`` command line. Each command group lives in its own module with a ``register`` function."""
from __future__ import annotations

import argparse
import sys

from . import model_commands, network_commands, structure_commands, synapse_commands

# Command groups, in the order of the data flow (weights -> graphs -> network -> analysis).
COMMAND_MODULES = [model_commands, structure_commands, network_commands, synapse_commands]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bdh-graph",
        description="BDH (Dragon Hatchling) as a graph of neurons and Hebbian synapses.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, TypeError, RuntimeError) as err:
        print(f"bdh-graph {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
