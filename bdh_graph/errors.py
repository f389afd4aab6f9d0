"""The errors bdh_graph raises for bad input, under one base class.

Every error here derives from :class:`BDHGraphError` and from the built-in exception a caller would expect
(``ValueError`` for a bad value or file, ``RuntimeError`` for a state that cannot go on), so
``except bdh_graph.BDHGraphError`` catches them all and older ``except ValueError`` code keeps working.
Messages name the input (the argument, the file, the CLI flag) and what was expected.
"""
from __future__ import annotations


class BDHGraphError(Exception):
    """Base class of every error bdh_graph raises on purpose."""


class CheckpointError(BDHGraphError, ValueError):
    """A model checkpoint cannot be used: not a file, unreadable, malformed, or not matching its config."""


class FileFormatError(BDHGraphError, ValueError):
    """A file is not of the format or version expected (network state, spike recording, circuits, ...)."""


class StateMismatchError(BDHGraphError, ValueError):
    """A saved state belongs to another network or run (other weights, wiring, pruning, dtype, mode, ...)."""


class MonitorError(BDHGraphError, RuntimeError):
    """A monitor was used out of order (read before it was attached to a network) or cannot watch this network."""


class NonFiniteError(BDHGraphError, RuntimeError):
    """A NaN or infinity arose while stepping; the message names the token and the layer."""


class MissingExtraError(BDHGraphError, ImportError):
    """An optional package is not installed; the message names it and the extra that brings it."""
