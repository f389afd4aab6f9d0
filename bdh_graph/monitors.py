"""Monitors in the style of Brian2: objects that watch a network while it steps over text.

A monitor is passed to ``Network.run(tokens, monitors=[...])`` (or ``validate``); it is attached to the network
(``attach``, which checks its arguments against the network) and then receives the record of every token
(``record``, see ``Network.step``). Recordings continue over several runs of one network.

- :class:`ActivityMonitor`: which x- and y-neurons of which layer fired, and how strongly (sparse, for rasters).
- :class:`SparsityMonitor`: fraction of x- and y-neurons active per layer and token.
- :class:`SynapseMonitor`: traces of chosen synapses ``sigma[layer, head][i, j]``.
- :class:`EventMonitor`: synaptic events (messages along edges plus synapse updates) per token.
"""
from __future__ import annotations

import numpy as np

WHICH = ("x", "y")


class Monitor:
    """Base class: ``attach(network)`` before a run, ``record(record)`` after every token."""

    def __init__(self) -> None:
        self.positions: list[int] = []
        self.tokens: list[int] = []

    def attach(self, network) -> None:
        self.config = network.config

    def record(self, record: dict) -> None:
        self.positions.append(int(record["position"]))
        self.tokens.append(int(record["token"]))


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

    def __init__(self):
        super().__init__()
        self._x: list[np.ndarray] = []
        self._y: list[np.ndarray] = []

    def record(self, record: dict) -> None:
        super().record(record)
        self._x.append(np.count_nonzero(record["x"], axis=1) / record["x"].shape[1])
        self._y.append(np.count_nonzero(record["y"], axis=1) / record["y"].shape[1])

    @property
    def x(self) -> np.ndarray:
        return np.array(self._x).reshape(len(self._x), -1)

    @property
    def y(self) -> np.ndarray:
        return np.array(self._y).reshape(len(self._y), -1)


class SynapseMonitor(Monitor):
    """Traces of synapses ``sigma[layer, head][i, j]``: presynaptic neuron ``i`` (0..n-1 model neurons,
    n + token for input neurons) onto x-neuron ``j`` (0..N-1 within the head).

    The Hebbian rule is local, so an entry is the sum over the tokens of its own pre and post activity::

        sigma[i, j] = sum_tau w_tau[i] * (R_tau x_tau)[j]

    and the monitor tracks it from the trace ``w`` and ``k = R x`` alone. This works in both wirings: the hub
    wiring never stores sigma (it stores ``rho = E_ext sigma``: at the released size the full sigma would be
    about 1 GB per layer and head), yet each of its synapses is well defined and followed here. On a synapse
    graph the entries that exist hold exactly these values. ``values`` is (T, P): the state after each token.
    """

    def __init__(self, layer: int, head: int, pairs):
        super().__init__()
        self.layer, self.head = int(layer), int(head)
        self.pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        self._values: list[np.ndarray] = []
        self._network, self._running = None, None

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
        if self._network is network:
            return  # continuing a recording of this network
        self._network = network
        if network.position == 0:
            self._running = np.zeros(len(self.pairs))
        elif network.wiring == "neuron" and network.synapse_graph is None:
            self._running = np.asarray(network.sigma(self.layer, self.head)[i, j], dtype=np.float64)
        else:
            raise ValueError(f"SynapseMonitor: a {network.wiring} network that has already stepped "
                             f"{network.position} tokens does not store these sigma entries; attach the monitor "
                             "before the first token (or after reset())")

    def record(self, record: dict) -> None:
        super().record(record)
        if record["position"] == 0:
            self._running = np.zeros(len(self.pairs))  # the network was reset
        w = record["w"][self.layer]
        k = record["k"][self.layer, self.head * self.config.N:(self.head + 1) * self.config.N]
        self._running = self._running + w[self.pairs[:, 0]] * k[self.pairs[:, 1]]
        self._values.append(self._running.copy())

    @property
    def values(self) -> np.ndarray:
        return np.array(self._values).reshape(len(self._values), len(self.pairs))


class EventMonitor(Monitor):
    """Synaptic events per token, ``events`` (T,): messages sent along edges plus synapse updates."""

    def __init__(self):
        super().__init__()
        self._events: list[int] = []

    def record(self, record: dict) -> None:
        super().record(record)
        self._events.append(int(record["events"]))

    @property
    def events(self) -> np.ndarray:
        return np.array(self._events, dtype=np.int64)
