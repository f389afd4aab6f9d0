"""NWB recordings of a network run (Neurodata Without Borders, Rübel et al. 2022, eLife 11: e78362), via pynwb.

:func:`write_nwb` writes what the monitors of one run saw (a ``RunRecording``, and in spike mode the
``SpikeMonitor``), on the :class:`~bdh_graph.interop.clock.Clock` of the run; NWB counts time in seconds:

- ``intervals/text``: one interval per byte of the text, ``[t, t + 1)`` tokens on the clock, with columns
  ``byte`` (0..255) and ``label`` (the byte as a quoted bytes literal, ``'e'``, as synapse addresses write it);
- ``units`` (spike mode): one unit per neuron that spiked, a neuron being a (population, layer, neuron) triple:
  columns ``population`` (``x`` or ``y``), ``layer``, ``head``, ``neuron`` (global id ``head * N + k``) and
  ``spike_times``, each spike at the start of its micro-step (``Clock.spike_ms``);
- ``processing/network``: time series sampled once per token (rate ``1000 / token_ms`` Hz, starting at 0 s):
  ``<x|y>_active_fraction_layer<l>`` (fraction of the n neurons active), ``synaptic_events`` (per token) and
  one ``synapse_<layer>_<pre>_<post>`` per traced synapse (its state ``sigma`` after each token; the
  description gives its address ``LAYER:PRE:POST``); and the tables ``<x|y>_activity``, one row per firing
  (``token``, ``layer``, ``neuron``, ``rate``), the run's raster; for a damped model (``run["time_constants"]``,
  tokens per head) the table ``synaptic_time_constants``: ``head``, ``tokens`` and ``seconds`` on the clock, the
  time constant with which the head's synapses decay (docs/model.md 4.7), also named in the file's notes. Activity
  is a table, not a (tokens x neurons) time series, because NWB puts time on the first axis and a run has fewer
  tokens than neurons.

The subject is the model itself (NWB requires one): species NCBI taxon 32630, "synthetic construct"; age
``P0D`` and sex ``O`` stand where NWB demands a value. ``nwbinspector`` finds no critical issue and no
best-practice violation in these files (the tests check it).
Needs the ``interop`` extra (pynwb, h5py).
"""
from __future__ import annotations

import uuid
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..files import atomic_path
from ..network.address import byte_name
from . import require
from .clock import Clock


SYNTHETIC = "http://purl.obolibrary.org/obo/NCBITaxon_32630"  # NCBI Taxonomy: "synthetic construct"


def _pynwb():
    return require("pynwb", "hdmf", purpose="an NWB recording")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("bdh_graph")
    except PackageNotFoundError:
        return "unknown"


def _text_intervals(pynwb, tokens: np.ndarray, clock: Clock, labels: list[str] | None = None):
    from hdmf.common import VectorData
    from pynwb.epoch import TimeIntervals

    onsets = np.asarray(clock.onset_ms(np.arange(tokens.size)), np.float64).reshape(-1) / 1000.0
    bytes_only = tokens.max(initial=0) < 256
    columns = [
        VectorData(name="start_time", description="onset of the token, s", data=onsets),
        VectorData(name="stop_time", description="end of the token, s", data=onsets + clock.token_ms / 1000.0),
        VectorData(name="byte", description="the byte read during this interval (0..255); the bytes in order are "
                                             "the UTF-8 text" if bytes_only else
                                             "the token read during this interval (0..255 bytes, above: the task's "
                                             "stimuli)", data=tokens.astype(np.uint8 if bytes_only else np.int64)),
        VectorData(name="label", description="the byte as a quoted bytes literal, as synapse addresses write it"
                                             if labels is None else "the token's name",
                   data=[byte_name(b) for b in tokens] if labels is None else list(labels)),
    ]
    return TimeIntervals(name="text", description="the text the network read, one interval per byte (token)",
                         columns=columns)


def _units(pynwb, spikes, clock: Clock, N: int):
    from hdmf.common import VectorData, VectorIndex
    from pynwb.misc import Units

    populations, layers, neurons, trains = [], [], [], []
    for layer in spikes.layers:
        for population in spikes.populations:
            token, step, neuron = spikes.spikes(layer, population)
            times = np.asarray(clock.spike_ms(token, step, spikes.spike_steps), np.float64).reshape(-1) / 1000.0
            order = np.lexsort((times, neuron))
            neuron, times = neuron[order], times[order]
            ids, starts = np.unique(neuron, return_index=True)
            for i, train in zip(ids, np.split(times, starts[1:])):
                populations.append(population)
                layers.append(layer)
                neurons.append(int(i))
                trains.append(train)
    flat = np.concatenate(trains) if trains else np.zeros(0)
    spike_times = VectorData(name="spike_times", description="times of the unit's spikes, s: the start of the "
                                                             "micro-step in which it fired", data=flat)
    index = VectorIndex(name="spike_times_index", data=np.cumsum([t.size for t in trains], dtype=np.int64),
                        target=spike_times)
    neurons = np.asarray(neurons, np.int64)
    columns = [
        spike_times, index,
        VectorData(name="population", description="x (the neurons of the read round) or y (the output round)",
                   data=populations),
        VectorData(name="layer", description="the layer of the network, 0..L-1", data=np.asarray(layers, np.int64)),
        VectorData(name="head", description="the head of the neuron, neuron // N", data=neurons // N),
        VectorData(name="neuron", description="global neuron id, head * N + index within the head", data=neurons),
    ]
    return Units(name="units", description="every neuron of the spiking network that fired at least once; a "
                                           "neuron of one layer and population is one unit", columns=columns,
                 resolution=clock.step_ms(spikes.spike_steps) / 1000.0)


def _series(pynwb, name: str, data, unit: str, description: str, clock: Clock):
    return pynwb.TimeSeries(name=name, data=np.asarray(data), unit=unit, description=description,
                            starting_time=0.0, rate=1000.0 / clock.token_ms)


def _activity_table(which: str, recording):
    from hdmf.common import DynamicTable, VectorData

    parts = [(layer, *recording.raster(layer, which)) for layer in recording.layers
             if (layer, which) in recording.rasters]
    token = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int64)
    columns = [
        VectorData(name="token", description="index of the token (the interval of intervals/text) at which the "
                                             "neuron fired", data=token.astype(np.int64)),
        VectorData(name="layer", description="the layer, 0..L-1",
                   data=np.concatenate([np.full(p[1].size, p[0], np.int64) for p in parts]) if parts else token),
        VectorData(name="neuron", description="global neuron id, head * N + index within the head",
                   data=np.concatenate([p[2] for p in parts]).astype(np.int64) if parts else token),
        VectorData(name="rate", description=f"the {which}-neuron's activation (its rate; dimensionless)",
                   data=np.concatenate([p[3] for p in parts]) if parts else np.zeros(0)),
    ]
    return DynamicTable(name=f"{which}_activity", description=f"every firing of a {which}-neuron: one row per "
                                                              "token, layer and active neuron", columns=columns)


def _time_constants(taus, clock: Clock):
    from hdmf.common import DynamicTable, VectorData

    taus = np.asarray(taus, np.float64)
    columns = [
        VectorData(name="head", description="the head, 0..h-1", data=np.arange(taus.size, dtype=np.int64)),
        VectorData(name="tokens", description="tau_h = -1 / ln gamma_h in tokens: a write keeps exp(-s / tau_h) of "
                                              "itself s tokens later", data=taus),
        VectorData(name="seconds", description="tau_h on the clock of the run, s",
                   data=np.array([clock.duration_ms(t) for t in taus]) / 1000.0),
    ]
    return DynamicTable(name="synaptic_time_constants", description="the time constant with which the Hebbian "
                                                                    "synapses of each head decay (damping)",
                        columns=columns)


def write_nwb(path, recording, spikes=None, clock: Clock = Clock(), session_start_time: datetime | None = None,
              identifier: str | None = None) -> Path:
    """Write the NWB recording of a run to ``path`` (module doc) and return it.

    ``recording``: the run's ``RunRecording`` (``RunRecording.from_monitors``); ``spikes``: its ``SpikeMonitor``
    in spike mode (its recording must cover the same tokens). ``session_start_time`` defaults to now (UTC),
    ``identifier`` to a new UUID. The write is atomic: a failed write leaves no file.
    """
    pynwb, _ = _pynwb()
    tokens = np.asarray(recording.tokens, np.int64)
    config, run = recording.config, recording.run
    if spikes is not None and len(spikes.tokens) != tokens.size:
        raise ValueError(f"spikes: the SpikeMonitor recorded {len(spikes.tokens)} tokens, the recording "
                         f"{tokens.size}; give the monitors of one run")
    mode = run.get("mode", "rate")
    nwbfile = _nwb_file(pynwb, config, session_start_time, identifier,
                        session_description=(f"the BDH language model run as a {run.get('wiring', '')} network of "
                                             f"neurons and Hebbian synapses ({mode} mode) over a text of "
                                             f"{tokens.size} bytes"),
                        notes=(f"clock: each token lasts {clock.token_ms:g} ms" +
                               (f", split into K = {spikes.spike_steps} micro-steps of "
                                f"{clock.step_ms(spikes.spike_steps):g} ms" if spikes is not None else "") +
                               f"; run: {', '.join(f'{k} {v}' for k, v in run.items() if v is not None)}"))
    nwbfile.add_time_intervals(_text_intervals(pynwb, tokens, clock))
    module = nwbfile.create_processing_module(name="network", description="what the monitors of the run recorded, "
                                                                          "once per token")
    for which, fractions in (("x", recording.sparsity_x), ("y", recording.sparsity_y)):
        for layer in range(fractions.shape[1]):
            module.add(_series(pynwb, f"{which}_active_fraction_layer{layer}", fractions[:, layer],
                               "fraction of neurons", f"fraction of the n {which}-neurons of layer {layer} active "
                               "at each token", clock))
    module.add(_series(pynwb, "synaptic_events", recording.events, "events", "synaptic events per token (messages "
                                                                            "along edges plus synapse updates)",
                       clock))
    for p, synapse in enumerate(recording.synapses):
        module.add(_series(pynwb, f"synapse_{synapse.layer}_{synapse.pre}_{synapse.post}",
                           recording.synapse_values[:, p], "a.u.",
                           f"state sigma of the synapse {synapse.address(config)} ({synapse.describe(config)}) "
                           "after each token", clock))
    for which in sorted({w for _, w in recording.rasters}):
        module.add(_activity_table(which, recording))
    if run.get("time_constants") is not None:
        module.add(_time_constants(run["time_constants"], clock))
    if spikes is not None:
        nwbfile.units = _units(pynwb, spikes, clock, config.N)
    with atomic_path(path) as tmp, pynwb.NWBHDF5IO(str(tmp), "w") as io:
        io.write(nwbfile)
    return Path(path)


def _nwb_file(pynwb, config, session_start_time, identifier, session_description: str, notes: str):
    """A new NWB file of a simulation of the model of ``config``, its subject the model itself (module doc)."""
    nwbfile = pynwb.NWBFile(
        session_description=session_description,
        identifier=identifier or str(uuid.uuid4()), session_start_time=session_start_time or datetime.now(timezone.utc),
        experiment_description=("a simulation: BDH (Kosowski et al. 2025, arXiv 2509.26507) with L = "
                                f"{config.n_layer} layers, {config.n_head} heads of N = {config.N} neurons "
                                f"(n = {config.n_neurons}), d = {config.n_embd}, stepped once per token"),
        notes=notes, source_script=f"bdh_graph {_version()}", source_script_file_name="bdh_graph",
        keywords=["BDH", "Dragon Hatchling", "Hebbian synapses", "simulation", "language model"],
    )
    nwbfile.subject = pynwb.file.Subject(
        subject_id=f"bdh-L{config.n_layer}-h{config.n_head}-N{config.N}-d{config.n_embd}", species=SYNTHETIC,
        sex="O", age="P0D",
        description=("not an animal: the BDH language model simulated by bdh_graph. NWB requires a subject; its "
                     "species is the NCBI taxon 'synthetic construct', and age (P0D) and sex (O, other) do not "
                     "apply"))
    return nwbfile


def write_trials_nwb(path, tokens: np.ndarray, labels: list[str], trials: dict[str, np.ndarray], descriptions:
                     dict[str, str], config, session_description: str, clock: Clock = Clock(),
                     session_start_time: datetime | None = None, identifier: str | None = None) -> Path:
    """Write a task's run as NWB trials (an experiment of ``bdh_graph.experiments``) to ``path`` and return it.

    ``tokens`` (the trials' tokens end to end on the clock, each trial read from a zero state) go to
    ``intervals/text`` with their ``labels``; ``trials`` holds the trials table's columns, ``start`` and ``stop``
    in tokens of that stream (converted to s), the others as given, each described by ``descriptions``.
    """
    pynwb, _ = _pynwb()
    tokens = np.asarray(tokens, np.int64)
    nwbfile = _nwb_file(pynwb, config, session_start_time, identifier, session_description,
                        notes=f"clock: each token lasts {clock.token_ms:g} ms; trials end to end, each from a zero "
                              "synaptic state")
    nwbfile.add_time_intervals(_text_intervals(pynwb, tokens, clock, labels))
    to_s = clock.token_ms / 1000.0
    for name, values in trials.items():
        if name not in ("start", "stop"):
            nwbfile.add_trial_column(name=name, description=descriptions[name])
    for row in range(len(trials["start"])):
        nwbfile.add_trial(start_time=float(trials["start"][row]) * to_s, stop_time=float(trials["stop"][row]) * to_s,
                          **{k: v[row] for k, v in trials.items() if k not in ("start", "stop")})
    with atomic_path(path) as tmp, pynwb.NWBHDF5IO(str(tmp), "w") as io:
        io.write(nwbfile)
    return Path(path)


__all__ = ["write_nwb", "write_trials_nwb"]
