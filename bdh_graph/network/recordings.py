"""The recording of a monitored run (``bdh-graph step``), as one tagged file of the package's format.

A :class:`RunRecording` gathers what the monitors of a run saw (:meth:`RunRecording.from_monitors`); ``save``
writes it with ``bdh_graph.files.write_tagged`` and :func:`load_recording` reads it back. Spikes of a spiking
run are not part of it: ``SpikeMonitor.save`` writes them to their own file.

File layout (format ``"run_recording"``, version 1; an ``.npz`` archive, ``numpy.load`` reads every array).
T tokens, L layers, P traced synapses:

==============================  ==============  =====================================================
array                           shape, dtype    content
==============================  ==============  =====================================================
``tokens``                      (T,) int64      the byte of each token
``sparsity_x``, ``sparsity_y``  (T, L) float64  fraction of the n x- (y-) neurons active per token and layer
``events``                      (T,) int64      synaptic events per token (messages along edges + synapse updates)
``synapses``                    (P, 3) int64    the traced synapses' addresses: layer, pre, post (neuron level,
                                                ``bdh_graph.network.address``)
``synapse_values``              (T, P) float64  their state ``sigma`` after each token
``{w}_layer{l}_steps``          (F,) int64      raster of population w (``x`` or ``y``) in layer l: the token
``{w}_layer{l}_neurons``        (F,) int32      index, neuron id and rate of every firing (F firings)
``{w}_layer{l}_rates``          (F,) float
==============================  ==============  =====================================================

The header's meta holds ``config`` (the model's ``BDHConfig`` as a dict), ``layers`` and ``which`` (the rasters
present) and ``run`` (what the caller says about the run: wiring, backend, mode, ..., and ``token_ms``, the clock
of ``bdh_graph.interop.clock``, on which ``plots.network.plot_run`` redraws it).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import FileFormatError
from ..files import read_tagged, write_tagged
from ..model.config import BDHConfig
from .address import Synapse, monitored_synapses

KIND, VERSION = "run_recording", 1
WHAT = "run recording"
RASTER_FIELDS = ("steps", "neurons", "rates")


@dataclass
class RunRecording:
    """What the monitors of one run saw; the arrays of the file layout in the module doc, by the same names."""

    config: BDHConfig
    tokens: np.ndarray
    sparsity_x: np.ndarray
    sparsity_y: np.ndarray
    events: np.ndarray
    synapses: list[Synapse]
    synapse_values: np.ndarray
    rasters: dict[tuple[int, str], tuple[np.ndarray, np.ndarray, np.ndarray]]
    run: dict = field(default_factory=dict)

    @classmethod
    def from_monitors(cls, config: BDHConfig, tokens, activity, sparsity, events, synapses=(),
                      run: dict | None = None) -> "RunRecording":
        """The recording of a run watched by an ``ActivityMonitor``, a ``SparsityMonitor``, an ``EventMonitor``
        and any ``SynapseMonitor``s; ``run`` describes the run (stored in the file's meta)."""
        traced = [s for monitor in synapses for s in monitored_synapses(monitor, config)]
        values = (np.concatenate([m.values for m in synapses], axis=1) if synapses
                  else np.zeros((len(tokens), 0)))
        rasters = {(layer, which): activity.raster(layer, which)
                   for layer in activity.layers for which in activity.which}
        return cls(config, np.asarray(tokens, np.int64), sparsity.x, sparsity.y, events.events, traced, values,
                   rasters, dict(run or {}))

    @property
    def layers(self) -> list[int]:
        """The layers with a raster."""
        return sorted({layer for layer, _ in self.rasters})

    def raster(self, layer: int, which: str = "y") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(steps, neurons, rates)`` of every firing of population ``which`` in ``layer``."""
        if (layer, which) not in self.rasters:
            raise KeyError(f"the recording has no raster of layer {layer} {which!r}; it has {sorted(self.rasters)}")
        return self.rasters[(layer, which)]

    def save(self, path: str | os.PathLike) -> Path:
        """Write the recording to ``path`` (the module doc's layout, atomically, compressed)."""
        arrays = {"tokens": self.tokens, "sparsity_x": self.sparsity_x, "sparsity_y": self.sparsity_y,
                  "events": self.events, "synapse_values": self.synapse_values,
                  "synapses": np.array([(s.layer, s.pre, s.post) for s in self.synapses], np.int64).reshape(-1, 3)}
        for (layer, which), raster in self.rasters.items():
            for name, a in zip(RASTER_FIELDS, raster):
                arrays[f"{which}_layer{layer}_{name}"] = a
        which = sorted({w for _, w in self.rasters})
        meta = {"config": self.config.to_dict(), "layers": self.layers, "which": which, "run": self.run}
        return write_tagged(path, KIND, VERSION, arrays, meta, compress=True)


def load_recording(path: str | os.PathLike) -> RunRecording:
    """A recording written by :meth:`RunRecording.save`; a file of another format or version is refused
    (``FileFormatError``)."""
    f = read_tagged(path, KIND, VERSION, WHAT)
    a, meta = f.arrays, f.meta
    expected = ["tokens", "sparsity_x", "sparsity_y", "events", "synapses", "synapse_values"] + [
        f"{which}_layer{layer}_{name}" for layer in meta.get("layers", []) for which in meta.get("which", [])
        for name in RASTER_FIELDS]
    missing = [k for k in expected if k not in a] + [k for k in ("config", "layers", "which") if k not in meta]
    if missing:
        raise FileFormatError(f"{WHAT} '{path}' is incomplete: it lacks {missing}")
    rasters = {(layer, which): tuple(a[f"{which}_layer{layer}_{name}"] for name in RASTER_FIELDS)
               for layer in meta["layers"] for which in meta["which"]}
    synapses = [Synapse(int(layer), int(pre), int(post)) for layer, pre, post in a["synapses"]]
    return RunRecording(BDHConfig.from_dict(meta["config"]), a["tokens"], a["sparsity_x"], a["sparsity_y"],
                        a["events"], synapses, a["synapse_values"], rasters, meta.get("run", {}))


__all__ = ["RunRecording", "load_recording"]
