"""The ``bdh-graph`` command line. Each command group lives in its own module with a ``register`` function.

The commands parse their arguments and call library functions; what a script or notebook would want lives in
the library (``bdh_graph.model``, ``graphs``, ``network``, ``interpretability``, ``structure``, ``experiments``,
``plots``).
Errors a user can act on (``bdh_graph.BDHGraphError``, ``ValueError``, ``OSError``) are printed as
``bdh-graph COMMAND: error: ...`` with exit status 2, the same as argparse's own errors.
"""
from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version

from ..errors import BDHGraphError
from . import (demo, experiment_commands, memory_commands, model_commands, network_commands, recall_commands,
               structure_commands, synapse_commands)
from .common import DOCS, CommandParser

# Command groups: the demo, then in the order of the data flow (weights -> graphs -> network -> analysis).
COMMAND_MODULES = [demo, model_commands, structure_commands, network_commands, memory_commands, synapse_commands,
                   recall_commands, experiment_commands]


def package_version() -> str:
    try:
        return version("bdh_graph")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def build_parser() -> CommandParser:
    parser = CommandParser(
        prog="bdh-graph",
        description="BDH (Dragon Hatchling) as a graph of neurons and Hebbian synapses.",
        epilog=f"Each command has --help. The model, its three forms and how they correspond: {DOCS}; the "
               "commands and the files they write: its README.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=CommandParser)
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = " ".join(part for part in (args.command, getattr(args, "synapse_command", None)) if part)
    try:
        return int(args.func(args) or 0)
    except (BDHGraphError, ValueError, OSError) as err:
        print(f"bdh-graph {command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"bdh-graph {command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
