"""The errors bdh_graph raises for bad input, under one base class.

Every error here derives from :class:`BDHGraphError` and from the built-in exception a caller would expect
(``ValueError`` for a bad value or file, ``RuntimeError`` for a state that cannot go on), so
``except bdh_graph.BDHGraphError`` catches them all and older ``except ValueError`` code keeps working.
Messages name the input (the argument, the file, the CLI flag) and what was expected.
"""
from __future__ import annotations

import importlib


class BDHGraphError(Exception):
    """Base class of every error bdh_graph raises on purpose."""


class CheckpointError(BDHGraphError, ValueError):
    """A model checkpoint cannot be used: not a file, unreadable, malformed, or not matching its config."""


class FileFormatError(BDHGraphError, ValueError):
    """A file is not of the format or version expected (network state, spike recording, circuits, ...)."""


class StateMismatchError(BDHGraphError, ValueError):
    """A saved state belongs to another network or run (other weights, wiring, pruning, dtype, mode, ...)."""


class GraphInputError(BDHGraphError, ValueError):
    """A graph, or an argument of a statistic on graphs, is not what the statistic needs: not square, negative
    weights, no edges, an edge count or threshold out of range, an unknown null model or backend."""


class NotAGraphError(GraphInputError, TypeError):
    """The input is not a 2-d ``scipy.sparse`` graph at all (a ``TypeError`` too, as before)."""


class RunError(BDHGraphError, ValueError):
    """A training run's folder lacks what a command needs (its snapshots) or mixes runs (snapshots of different
    configurations)."""


class MonitorError(BDHGraphError, RuntimeError):
    """A monitor was used out of order (read before it was attached to a network) or cannot watch this network."""


class NonFiniteError(BDHGraphError, RuntimeError):
    """A NaN or infinity arose while stepping; the message names the token and the layer."""


class TaskError(BDHGraphError, ValueError):
    """An experiment's task cannot be set up as asked: too many or too few pairs or trials for its encoding, or a
    model whose vocabulary cannot hold the task."""


class MissingExtraError(BDHGraphError, ImportError):
    """An optional package is not installed; the message names it and the extra that brings it."""


def install_command(extra: str) -> str:
    """How a user installs the optional ``extra``."""
    return f'pip install "bdh-graph[{extra}]"'


def require(*modules: str, purpose: str, extra: str):
    """Import ``modules`` and return them (one module, or a tuple); refuse with :class:`MissingExtraError` naming
    the missing ones, what needs them (``purpose``) and the optional ``extra`` that brings them."""
    loaded, missing = [], []
    for name in modules:
        try:
            loaded.append(importlib.import_module(name))
        except ImportError:
            missing.append(name)
    if missing:
        raise MissingExtraError(f"{purpose} needs {', '.join(missing)} (not installed here): "
                                f"{install_command(extra)} (in a clone of bdh_graph: pip install -e \".[{extra}]\")")
    return loaded[0] if len(loaded) == 1 else tuple(loaded)
