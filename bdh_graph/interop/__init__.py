"""Interoperability: BDH's circuits and runs in the formats neuroscientists' tools read.

- :mod:`.clock`: the physical time of a run (each token a fixed duration, micro-steps subdividing it);
- :mod:`.sonata`: SONATA circuits (nodes and edges in HDF5, CSV type tables, the JSON configs that NEST's
  ``SonataNetwork``, BMTK and libsonata read) and SONATA spike files;
- :mod:`.nwb`: NWB recordings of a run (pynwb): spikes as a Units table, activity and synapse traces as time
  series, the text as one interval per byte.

The formats need the optional extra ``interop`` (h5py, pynwb): ``pip install "bdh-graph[interop]"`` (in a clone:
``pip install -e ".[interop]"``). The modules import them when a file is written, through :func:`require`, which
names the extra when a package is missing; the clock needs nothing.
"""
from __future__ import annotations

import importlib

from ..errors import MissingExtraError

EXTRA = "interop"
INSTALL = f'pip install "bdh-graph[{EXTRA}]"'


def require(*modules: str, purpose: str):
    """Import ``modules`` and return them (one module, or a tuple); refuse with :class:`MissingExtraError` naming
    the missing ones, what needs them (``purpose``) and the extra to install."""
    loaded, missing = [], []
    for name in modules:
        try:
            loaded.append(importlib.import_module(name))
        except ImportError:
            missing.append(name)
    if missing:
        raise MissingExtraError(f"{purpose} needs {', '.join(missing)} (not installed here): {INSTALL} "
                                f"(in a clone of bdh_graph: pip install -e \".[{EXTRA}]\")")
    return loaded[0] if len(loaded) == 1 else tuple(loaded)


__all__ = ["EXTRA", "INSTALL", "MissingExtraError", "require"]
