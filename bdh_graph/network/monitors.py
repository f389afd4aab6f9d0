"""Monitors in the style of Brian2: objects that watch a network while it steps over text.

A monitor is passed to ``Network.run(tokens, monitors=[...])`` (or ``validate``); it is attached to the network
(``attach``, which checks its arguments against the network) and then receives the record of every token
(``record``, see ``Network.step``). Each monitor declares the record entries it reads, ``variables``, and a step
builds and copies to the host only the union of what its monitors declared. Recordings continue over several
runs of one network; reading a monitor that has not been attached raises ``MonitorError``.

- :class:`ActivityMonitor`: which x- and y-neurons of which layer fired, and how strongly (sparse, for rasters);
  reads ``x``, ``y``.
- :class:`SparsityMonitor`: fraction of x- and y-neurons active per layer and token; reads ``x_active``,
  ``y_active`` (counts made on the backend).
- :class:`SynapseMonitor`: traces of chosen synapses ``sigma[layer, head][i, j]``; reads ``w``, ``k`` (in spike
  mode nothing: it reads the stored sigma).
- :class:`EventMonitor`: synaptic events (messages along edges plus synapse updates) per token; reads
  ``events``.
- :class:`SpikeMonitor`: spike mode: every spike of the x- and y-neurons (layer, token, micro-step, neuron);
  reads ``spikes``.

Spike recordings are tagged ``.npz`` files (``files.write_tagged``, kind ``spike_recording``, version 1): arrays
``tokens``, ``positions`` and ``<population>_layer<l>_{token,step,neuron}``; the header's meta holds
``spike_steps``, ``n_neurons``, ``layers`` and ``populations``.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import FileFormatError, MonitorError
from ..files import read_tagged, write_tagged
from .network import RECORD

WHICH = ("x", "y")


class Monitor:
    """Base class: ``attach(network)`` before a run, ``record(record)`` after every token.

    ``variables``: the entries of the step record (``Network.step``) the monitor reads; ``position`` and
    ``token`` are always there. A subclass that does not narrow it receives every entry.
    """

    variables: frozenset = RECORD

    def __init__(self) -> None:
        self.positions: list[int] = []
        self.tokens: list[int] = []
        self.config = None

    def attach(self, network) -> None:
        self.config = network.config

    def record(self, record: dict) -> None:
        self._attached("record")
        self.positions.append(int(record["position"]))
        self.tokens.append(int(record["token"]))

    def _attached(self, what: str) -> None:
        """Refuse to record or be read before the monitor was attached to a network."""
        if self.config is None:
            raise MonitorError(f"{type(self).__name__}.{what}: this monitor has not watched a network yet; pass it "
                               "to Network.run(text, monitors=[...]) or validate(..., monitors=[...]) first (or "
                               "call its attach(network))")


def _check_layers(layers, n_layer: int) -> list[int]:
    layers = list(range(n_layer)) if layers is None else [int(layer) for layer in layers]
    bad = [layer for layer in layers if not 0 <= layer < n_layer]
    if bad:
        raise ValueError(f"monitor layers {bad} out of range: the network has layers 0..{n_layer - 1}")
    return layers


class ActivityMonitor(Monitor):
    """The active neurons of each token: for layer l and ``which`` in x, y, their ids and rates.

    ``raster(layer, which)`` returns ``(steps, neurons, rates)``: step index (0.. of the recording), neuron id,
    and rate of every firing, ready for a raster plot.
    """

    def __init__(self, layers=None, which=WHICH):
        super().__init__()
        bad = [w for w in which if w not in WHICH]
        if bad:
            raise ValueError(f"ActivityMonitor which must be a subset of {WHICH}, got {list(which)}")
        self.which, self._layers = tuple(which), layers
        self.variables = frozenset(self.which)
        self._events: dict = {}

    def attach(self, network) -> None:
        super().attach(network)
        self.layers = _check_layers(self._layers, network.config.n_layer)
        for key in ((layer, w) for layer in self.layers for w in self.which):
            self._events.setdefault(key, [])

    def record(self, record: dict) -> None:
        super().record(record)
        for (layer, which), events in self._events.items():
            rates = record[which][layer]
            ids = np.flatnonzero(rates)
            events.append((ids.astype(np.int32), rates[ids]))

    def raster(self, layer: int, which: str = "y") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self._attached("raster")
        if (layer, which) not in self._events:
            raise ValueError(f"ActivityMonitor did not record layer {layer} {which!r}; "
                             f"it records layers {self.layers} of {list(self.which)}")
        events = self._events[(layer, which)]
        steps = np.repeat(np.arange(len(events)), [len(ids) for ids, _ in events])
        neurons = np.concatenate([ids for ids, _ in events]) if events else np.zeros(0, np.int32)
        rates = np.concatenate([r for _, r in events]) if events else np.zeros(0)
        return steps, neurons, rates


class SparsityMonitor(Monitor):
    """Fraction of active x- and y-neurons per token and layer: ``x`` and ``y``, arrays (T, L)."""

    variables = frozenset({"x_active", "y_active"})

    def __init__(self):
        super().__init__()
        self._x: list[np.ndarray] = []
        self._y: list[np.ndarray] = []

    def record(self, record: dict) -> None:
        super().record(record)
        self._x.append(record["x_active"] / self.config.n_neurons)
        self._y.append(record["y_active"] / self.config.n_neurons)

    @property
    def x(self) -> np.ndarray:
        self._attached("x")
        return np.array(self._x).reshape(len(self._x), self.config.n_layer)

    @property
    def y(self) -> np.ndarray:
        self._attached("y")
        return np.array(self._y).reshape(len(self._y), self.config.n_layer)


class SynapseMonitor(Monitor):
    """Traces of synapses ``sigma[layer, head][i, j]``: presynaptic neuron ``i`` (0..n-1 model neurons,
    n + token for input neurons) onto x-neuron ``j`` (0..N-1 within the head).

    The Hebbian rule is local, so an entry is the sum over the tokens of its own pre and post activity::

        sigma[i, j] = sum_tau gamma ** (t - tau) * w_tau[i] * (R_tau x_tau)[j]      (after token t)

    with ``gamma`` the head's damping factor (1 without damping: ``Network.decay``).

    and the monitor tracks it from the trace ``w`` and ``k = R x`` alone. This works in both wirings: the hub
    wiring never stores sigma (it stores ``rho = E_ext sigma``: at the released size the full sigma would be
    about 1 GB per layer and head), yet each of its synapses is well defined and followed here. On a synapse
    graph the entries that exist hold exactly these values. ``values`` is (T, P): the state after each token.

    In spike mode the monitor reads the entries from the stored sigma (neuron wiring only), which grows by
    coincident spikes rather than by ``w_i k_j``.
    """

    variables = frozenset({"w", "k"})

    def __init__(self, layer: int, head: int, pairs):
        super().__init__()
        self.layer, self.head = int(layer), int(head)
        self.pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        self._values: list[np.ndarray] = []
        self._network, self._running, self._gamma = None, None, 1.0

    def attach(self, network) -> None:
        super().attach(network)
        c = network.config
        if not (0 <= self.layer < c.n_layer and 0 <= self.head < c.n_head):
            raise ValueError(f"SynapseMonitor layer {self.layer}, head {self.head} out of range: expected layer "
                             f"in [0, {c.n_layer}) and head in [0, {c.n_head})")
        n_pre = c.n_neurons + c.vocab_size
        i, j = self.pairs[:, 0], self.pairs[:, 1]
        if len(self.pairs) == 0 or i.min() < 0 or i.max() >= n_pre or j.min() < 0 or j.max() >= c.N:
            raise ValueError(f"SynapseMonitor pairs must be (i, j) with i in [0, {n_pre}) (neurons, then input "
                             f"neurons) and j in [0, {c.N}) (x-neuron of the head), got {self.pairs.tolist()}")
        if network.mode == "spike" and network.wiring == "hub":
            raise ValueError("SynapseMonitor: in spike mode sigma grows by spike coincidences, which a hub network "
                             "does not store (it keeps rho = E_ext sigma only); use the neuron wiring")
        if self._network is network:
            return  # continuing a recording of this network
        self._network = network
        self._gamma = float(network.decay()[self.head])
        if network.mode == "spike":
            self.variables = frozenset()  # nothing from the record: sigma is read after every token
            self._running = None
        elif network.position == 0:
            self._running = np.zeros(len(self.pairs))
        elif network.wiring == "neuron" and network.synapse_graph is None:
            self._running = np.asarray(network.sigma(self.layer, self.head)[i, j], dtype=np.float64)
        else:
            raise ValueError(f"SynapseMonitor: a {network.wiring} network that has already stepped "
                             f"{network.position} tokens does not store these sigma entries; attach the monitor "
                             "before the first token (or after reset())")

    def record(self, record: dict) -> None:
        super().record(record)
        if self._network.mode == "spike":
            sigma = self._network.sigma(self.layer, self.head)
            self._values.append(np.asarray(sigma[self.pairs[:, 0], self.pairs[:, 1]], dtype=np.float64).ravel())
            return
        if record["position"] == 0:
            self._running = np.zeros(len(self.pairs))  # the network was reset
        w = record["w"][self.layer]
        k = record["k"][self.layer, self.head * self.config.N:(self.head + 1) * self.config.N]
        self._running = self._gamma * self._running + w[self.pairs[:, 0]] * k[self.pairs[:, 1]]
        self._values.append(self._running.copy())

    @property
    def values(self) -> np.ndarray:
        self._attached("values")
        return np.array(self._values).reshape(len(self._values), len(self.pairs))


class EventMonitor(Monitor):
    """Synaptic events per token, ``events`` (T,): messages sent along edges plus synapse updates."""

    variables = frozenset({"events"})

    def __init__(self):
        super().__init__()
        self._events: list[int] = []

    def record(self, record: dict) -> None:
        super().record(record)
        self._events.append(int(record["events"]))

    @property
    def events(self) -> np.ndarray:
        self._attached("events")
        return np.array(self._events, dtype=np.int64)


SPIKE_POPULATIONS = ("x", "y")
SPIKE_KIND, SPIKE_VERSION = "spike_recording", 1


class SpikeMonitor(Monitor):
    """Every spike of the x- and y-neurons of a spike-mode network (``build_network(..., mode="spike")``).

    ``spikes(layer, population)`` returns ``(token, step, neuron)``: the index of the token in the recording
    (0..T-1), the micro-step (0..K-1) of the round in which the population fires (x: the read round, y: the
    output round) and the neuron id (0..n-1), one entry per spike. ``counts`` gives spikes per token and neuron,
    ``population_rate`` the fraction of the population firing at each micro-step; ``save`` writes it all to a
    tagged ``.npz`` file that :func:`load_spikes` reads back.
    """

    variables = frozenset({"spikes"})

    def __init__(self, layers=None, populations=SPIKE_POPULATIONS):
        super().__init__()
        bad = [p for p in populations if p not in SPIKE_POPULATIONS]
        if bad or not populations:
            raise ValueError(f"SpikeMonitor populations must be a non-empty subset of {SPIKE_POPULATIONS}, "
                             f"got {list(populations)}")
        self.populations, self._layers = tuple(populations), layers
        self._spikes: dict = {}
        self.spike_steps = None

    def attach(self, network) -> None:
        if network.mode != "spike":
            raise ValueError("SpikeMonitor watches spikes: build the network with mode='spike' "
                             f"(this one runs in {network.mode!r} mode)")
        K = network.spike_options["spike_steps"]
        if self.spike_steps not in (None, K):
            raise ValueError(f"SpikeMonitor recorded K = {self.spike_steps} micro-steps per round; "
                             f"this network has K = {K}")
        super().attach(network)
        self.spike_steps = K
        self.layers = _check_layers(self._layers, network.config.n_layer)
        for key in ((layer, p) for layer in self.layers for p in self.populations):
            self._spikes.setdefault(key, [])

    def record(self, record: dict) -> None:
        super().record(record)
        for key, spikes in self._spikes.items():
            spikes.append(record["spikes"][key])

    def _check(self, layer: int, population: str, what: str) -> list:
        self._attached(what)
        if (layer, population) not in self._spikes:
            raise ValueError(f"SpikeMonitor did not record layer {layer} {population!r}; it records layers "
                             f"{getattr(self, 'layers', [])} of {list(self.populations)}")
        return self._spikes[(layer, population)]

    def spikes(self, layer: int, population: str = "y") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        volleys = self._check(layer, population, "spikes")
        token = np.repeat(np.arange(len(volleys)), [len(n) for _, n in volleys]).astype(np.int32)
        step = np.concatenate([s for s, _ in volleys] + [np.zeros(0, np.int32)])
        neuron = np.concatenate([n for _, n in volleys] + [np.zeros(0, np.int32)])
        return token, step, neuron

    def counts(self, layer: int, population: str = "y") -> np.ndarray:
        """Spikes per token and neuron, (T, n)."""
        self._check(layer, population, "counts")
        token, _, neuron = self.spikes(layer, population)
        n, T = self.config.n_neurons, len(self.tokens)
        return np.bincount(token.astype(np.int64) * n + neuron, minlength=T * n).reshape(T, n)

    def population_rate(self, layer: int, population: str = "y") -> np.ndarray:
        """Fraction of the population's n neurons firing at each micro-step, (T, K)."""
        self._check(layer, population, "population_rate")
        token, step, _ = self.spikes(layer, population)
        K, T = self.spike_steps, len(self.tokens)
        return np.bincount(token.astype(np.int64) * K + step, minlength=T * K).reshape(T, K) / self.config.n_neurons

    def save(self, path: str | os.PathLike) -> Path:
        """Write the recording to ``path`` (a tagged, compressed ``.npz``, atomically, no pickles); read it with
        :func:`load_spikes`."""
        self._attached("save")
        arrays = {"tokens": np.array(self.tokens, np.int64), "positions": np.array(self.positions, np.int64)}
        for layer, population in self._spikes:
            for name, a in zip(("token", "step", "neuron"), self.spikes(layer, population)):
                arrays[f"{population}_layer{layer}_{name}"] = a
        meta = {"spike_steps": self.spike_steps, "n_neurons": self.config.n_neurons, "layers": self.layers,
                "populations": list(self.populations)}
        return write_tagged(path, SPIKE_KIND, SPIKE_VERSION, arrays, meta, compress=True)


def load_spikes(path: str | os.PathLike) -> dict:
    """A recording written by :meth:`SpikeMonitor.save`: ``meta`` (spike_steps, n_neurons, layers,
    populations), ``tokens``, ``positions`` and ``spikes[(layer, population)] = (token, step, neuron)``.
    A file of another kind or version is refused with ``FileFormatError``."""
    saved = read_tagged(path, SPIKE_KIND, SPIKE_VERSION, "spike recording")
    meta, arrays = saved.meta, saved.arrays
    missing = [k for k in ("spike_steps", "n_neurons", "layers", "populations") if k not in meta]
    if missing:
        raise FileFormatError(f"spike recording '{path}' lacks {missing} in its header")
    spikes = {}
    for layer in meta["layers"]:
        for population in meta["populations"]:
            keys = [f"{population}_layer{layer}_{name}" for name in ("token", "step", "neuron")]
            missing = [k for k in keys + ["tokens", "positions"] if k not in arrays]
            if missing:
                raise FileFormatError(f"spike recording '{path}': missing arrays {missing}")
            spikes[(layer, population)] = tuple(arrays[k] for k in keys)
    return {"meta": meta, "tokens": arrays["tokens"], "positions": arrays["positions"], "spikes": spikes}
