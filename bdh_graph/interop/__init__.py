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

from ..errors import MissingExtraError, install_command
from ..errors import require as _require

EXTRA = "interop"
INSTALL = install_command(EXTRA)


def require(*modules: str, purpose: str):
    """Import ``modules`` of the interop extra (one module, or a tuple), or :class:`MissingExtraError` saying what to
    install."""
    return _require(*modules, purpose=purpose, extra=EXTRA)


__all__ = ["EXTRA", "INSTALL", "MissingExtraError", "require"]
