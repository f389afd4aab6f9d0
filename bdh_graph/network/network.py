"""The network: neurons, synapses and a wiring, stepped token by token over text (SPEC.md 3).

``build_network`` turns a tensor model into a :class:`Network`; ``Network.step`` runs one token through all
layers as message passing and returns the logits, ``Network.run`` steps over a text with monitors watching.
Per layer the four rounds of the paper's "equations of reasoning" run in order: the presynaptic neurons excite
the x-neurons; the synapses are read (all heads) and gate the y-neurons; the Hebbian write follows the read;
y joins the presynaptic trace.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from tqdm.auto import tqdm

from ..errors import NonFiniteError
from ..files import atomic_path, read_tagged_npz
from ..graphs import check_prune
from ..kernels import get_backend
from .hub_wiring import HubWiring
from .neuron_wiring import NeuronWiring
from .neurons import Phases, Trace, as_tokens
from .spikes import Spiker, check_spike_options

WIRINGS = ("neuron", "hub")
STATE_FORMAT = "bdh_graph.network_state/1"
WEIGHT_NAMES = ("encoder", "encoder_v", "decoder", "embed.weight", "lm_head", "attn.freqs")


def _float_dtype(dtype, model) -> np.dtype:
    if dtype is None:
        dtype = model.decoder.dtype
    if isinstance(dtype, torch.dtype):
        dtype = str(dtype).removeprefix("torch.")
    try:
        dtype = np.dtype(dtype)
    except TypeError as err:
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}") from err
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    return dtype


def _weights_digest(model) -> str:
    h = hashlib.sha256()
    params = dict(model.named_parameters()) | dict(model.named_buffers())
    for name in WEIGHT_NAMES:
        h.update(params[name].detach().cpu().double().contiguous().numpy().tobytes())
    return h.hexdigest()


def _pattern_digest(pattern: sp.csr_array | None) -> str:
    if pattern is None:
        return "all"
    h = hashlib.sha256(np.asarray(pattern.shape, np.int64).tobytes())
    h.update(pattern.indptr.astype(np.int64).tobytes())
    h.update(pattern.indices.astype(np.int64).tobytes())
    return h.hexdigest()


def build_network(model, wiring: str = "neuron", prune=None, synapses="all", backend=None, dtype=None,
                  progress: bool | None = None, device: str | None = None, mode: str = "rate",
                  spike_steps: int | None = None, seed: int | None = None, rate_scale=None) -> "Network":
    """The BDH ``model`` as a network of neurons and Hebbian synapses.

    Args:
        model: a tensor ``BDH``; its weights are copied (the network does not follow later changes).
        wiring: ``"neuron"`` (SPEC 3.1: n+V neurons, graphs G_x and G_y, synapses sigma) or ``"hub"``
            (SPEC 3.3: neurons and d hubs, synapses rho; exact at any size).
        prune: neuron wiring only: ``None`` (dense, exact), ``Threshold(beta)``, ``TopK(k)`` or ``Strongest(m)``
            (SPEC 3.2; an approximation).
        synapses: neuron wiring only: ``"all"`` (dense sigma, every presynaptic x x-neuron pair),
            ``"wiring"`` (a synapse where G_x has an edge) or a scipy.sparse synapse graph (n+V, n).
        backend: ``"numba"`` (default), ``"numpy"``, ``"torch"`` or a ``Backend``; see ``bdh_graph.kernels``.
        device: where the torch backend runs, ``"cpu"`` (default) or ``"cuda"``; the others run on the CPU.
        dtype: float32 or float64 (default: the model's).
        progress: progress bars while the graphs are extracted (None: only for large graphs).
        mode: ``"rate"`` (messages carry the rates: the exact graph form) or ``"spike"`` (every message sent as
            Bernoulli spikes over ``spike_steps`` micro-steps; see ``bdh_graph.network.spikes``).
        spike_steps: spike mode: K >= 1, the micro-steps of each round.
        seed: spike mode: seed of the spikes' random stream (None: drawn once, then in ``spike_options``).
        rate_scale: spike mode: ``"max"`` (default), a positive number, or a dict population -> either (missing
            populations: ``"max"``): the rate that fires at every micro-step (populations: w/u, x, A/a, y; see
            ``spikes.POPULATIONS``).
    """
    if wiring not in WIRINGS:
        raise ValueError(f"wiring must be one of {WIRINGS}, got {wiring!r}")
    spiking = check_spike_options(mode, spike_steps, seed, rate_scale, wiring)
    check_prune(prune)
    dtype = _float_dtype(dtype, model)
    backend = get_backend(backend, device)
    if wiring == "hub":
        if prune is not None or not (isinstance(synapses, str) and synapses == "all"):
            raise ValueError("the hub wiring is exact: prune must be None and synapses 'all' "
                             f"(got prune={prune!r}, synapses={synapses!r})")
        wired = HubWiring(model, backend, dtype)
    else:
        if isinstance(synapses, str) and synapses not in ("all", "wiring"):
            raise ValueError(f"synapses must be 'all', 'wiring' or a synapse graph, got {synapses!r}")
        wired = NeuronWiring(model, prune, synapses, backend, dtype, progress)
    description = {
        "config": model.config.to_dict(), "wiring": wiring, "prune": repr(prune),
        "synapses": _pattern_digest(wired.synapse_graph), "dtype": str(dtype), "weights": _weights_digest(model),
        "mode": mode,
    }
    if spiking is not None:
        description.update(spike_steps=spiking["spike_steps"], rate_scale=spiking["rate_scale"])
        spiking = Spiker(**spiking)
    return Network(model.config, wired, Phases(model.attn.freqs, backend, dtype), description, spiking)


class Network:
    """BDH as message passing: ``reset``, ``step``, ``run``, ``save_state``/``load_state``; built by
    :func:`build_network`.

    Attributes: ``config``, ``wiring`` (``"neuron"``/``"hub"``), ``mode`` (``"rate"``/``"spike"``),
    ``synapses`` (the Hebbian state), ``position`` (tokens stepped since the last reset, the RoPE position of the
    next one), ``events`` (synaptic events so far: messages sent along edges plus synapse updates; in spike mode
    a message is one spike along one edge) and ``spikes`` (spikes so far, spike mode).
    """

    def __init__(self, config, wiring, phases: Phases, description: dict, spiker: Spiker | None = None):
        self.config, self._wiring, self._phases, self.spiker = config, wiring, phases, spiker
        self.backend = wiring.backend
        self.description = description
        self.dtype = np.dtype(description["dtype"])
        self.trace = Trace(wiring.E_ext, config.n_neurons, config.layer_norm, self.backend, self.dtype)
        self.position = 0
        self.events = 0
        self.spikes = 0
        self._spike_tally = {"events": 0, "spikes": 0, "clipped": 0}  # of the token being stepped

    # -- what the network is made of ------------------------------------------------------------------------
    @property
    def wiring(self) -> str:
        return self._wiring.name

    @property
    def mode(self) -> str:
        return self.description["mode"]

    @property
    def spike_options(self) -> dict | None:
        """Spike mode: ``spike_steps``, ``seed`` (of the stream since the last reseed) and ``rate_scale``."""
        if self.spiker is None:
            return None
        s = self.spiker
        return {"spike_steps": s.steps, "seed": s.seed, "rate_scale": dict(s.rate_scale)}

    @property
    def synapses(self):
        return self._wiring.synapses

    @property
    def n_edges(self) -> dict:
        """Edges of each graph (both circuits)."""
        return dict(self._wiring.n_edges)

    @property
    def synapse_graph(self) -> sp.csr_array | None:
        """The synapse graph (n+V, n) of a neuron wiring with restricted synapses; None when all exist."""
        return self._wiring.synapse_graph

    def sigma(self, layer: int, head: int):
        """``sigma[layer, head]`` (n+V, N): numpy array, or scipy CSR on a synapse graph (neuron wiring only).

        The hub wiring never stores sigma (only ``rho = E_ext sigma``); track entries with ``SynapseMonitor``.
        """
        if self.wiring != "neuron":
            raise ValueError("the hub wiring stores rho = E_ext sigma, not sigma; "
                             "track chosen entries with SynapseMonitor")
        self._check_layer_head(layer, head)
        return self.synapses.matrix(layer, head)

    def rho(self, layer: int) -> np.ndarray:
        """Synaptic state of ``layer`` in the tensor model's coordinates, ``rho`` (h, d, N)."""
        self._check_layer_head(layer, 0)
        return self._wiring.rho(layer)

    def _check_layer_head(self, layer: int, head: int) -> None:
        c = self.config
        if not (0 <= layer < c.n_layer and 0 <= head < c.n_head):
            raise ValueError(f"layer {layer}, head {head} out of range: expected layer in [0, {c.n_layer}) "
                             f"and head in [0, {c.n_head})")

    # -- stepping -------------------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> None:
        """Forget: zero synapses, position 0 (the event and spike counts keep running). In spike mode ``seed``
        restarts the random stream (None: it runs on)."""
        if seed is not None:
            if self.spiker is None:
                raise ValueError("reset(seed=...) applies to mode='spike'; this network runs in rate mode")
            self.spiker.reseed(seed)
        self.synapses.reset()
        self.position = 0

    def step(self, token: int, record: dict | None = None) -> np.ndarray:
        """One token through all layers; returns the logits (V,) as numpy.

        If ``record`` is a dict it receives numpy arrays of this token: ``x``, ``y``, ``k`` (the rotated x that
        read the synapses) (L, n), the presynaptic trace ``w`` each layer wrote with (L, n+V), the hub vectors
        ``u`` (L+1, d) (each layer's input, then the last output: the tensor model's ``v``), ``logits``,
        ``position``, ``token`` and ``events``. In spike mode ``x`` and ``y`` are the neurons' rates, ``k`` is
        read from the x spikes, and ``spikes`` maps ``(layer, "x" | "y")`` to the (micro-step, neuron) of every
        spike, ``n_spikes`` counts all spikes of the token and ``clipped`` the rates clipped by a fixed scale.
        """
        token = int(as_tokens([token], self.config.vocab_size, "token")[0])
        c, b, wired, trace = self.config, self.backend, self._wiring, self.trace
        N = c.N
        cos, sin = self._phases.at(self.position)
        trace.start(token)
        events = 0
        self._spike_tally = {"events": 0, "spikes": 0, "clipped": 0}
        rows = {"x": [], "y": [], "k": [], "w": [], "u": []} if record is not None else None
        spikes = {} if record is not None and self.spiker is not None else None
        for layer in range(c.n_layer):
            pre = wired.presynaptic(trace)
            sent, _ = self._send(wired.pre_population, pre, "drive", layer)
            x_potential, e = wired.potential(sent)
            x = b.relu(x_potential)
            x_sent, x_volley = self._send("x", (*b.active(x), x), "read", layer)
            ks = [b.rope(x_sent[2][h * N:(h + 1) * N], cos, sin) for h in range(c.n_head)]
            active = [b.active(k) for k in ks]
            S = b.zeros((c.n_head, wired.synapses.n_pre), self.dtype)
            for h in range(c.n_head):  # read all heads before any write
                e += self.synapses.read(layer, h, *active[h], S[h])
            if self.spiker is not None:  # the reads travel as spikes to the gated y-neurons
                for h in range(c.n_head):
                    posts = b.active(x[h * N:(h + 1) * N])[0] + h * N
                    sent_read, _ = self._send(wired.read_population, (*b.active(S[h]), S[h]), "gate", layer, posts)
                    S[h] = sent_read[2]
            y, e_gate = wired.gate(S, x, trace)
            if self.spiker is None:
                for h in range(c.n_head):
                    e += self.synapses.write(layer, h, pre, *active[h])
            else:
                self._spike_tally["events"] += self._coincidence_write(layer, pre, x_volley, cos, sin)
            self._check_finite(x, "x", layer, token)
            self._check_finite(y, "y", layer, token)
            if rows is not None:
                for name, value in (("x", x), ("y", y), ("w", trace.w), ("u", trace.u)):
                    rows[name].append(b.to_numpy(value).copy())
                rows["k"].append(np.concatenate([b.to_numpy(k) for k in ks]))
            y_sent, y_volley = self._send("y", (*b.active(y), y), "output", layer)
            if spikes is not None:
                spikes[(layer, "x")], spikes[(layer, "y")] = x_volley.spike_times(), y_volley.spike_times()
            e += trace.add(y_sent[0], y_sent[1])
            events += e + e_gate
        sent, _ = self._send(wired.pre_population, wired.presynaptic(trace), "readout", c.n_layer)
        logits, e = wired.readout(sent)
        self._check_finite(logits, "logits", c.n_layer - 1, token)
        events += e
        tally = self._spike_tally
        if self.spiker is not None:
            events = tally["events"]  # spike messages and coincidence updates replace the rate messages
        if rows is not None:
            rows["u"].append(b.to_numpy(trace.u).copy())
            record.update({name: np.stack(v) for name, v in rows.items()})
            record.update(logits=b.to_numpy(logits).copy(), position=self.position, token=token, events=events)
            if spikes is not None:
                record.update(spikes=spikes, n_spikes=tally["spikes"], clipped=tally["clipped"])
        self.position += 1
        self.events += events
        self.spikes += tally["spikes"]
        return b.to_numpy(logits)

    def _send(self, population: str, rates, round_: str, layer: int, posts=None):
        """What the receivers of a round get from ``rates`` = (active ids, values, vector): the rates themselves
        in rate mode; in spike mode the estimates ``sign * s * count / K`` of a Bernoulli volley, whose spike
        messages are tallied. Returns (ids, values, vector) and the volley (None in rate mode)."""
        if self.spiker is None:
            return rates, None
        b = self.backend
        where = "readout" if round_ == "readout" else f"layer {layer}"
        volley = self.spiker.fire(population, b.to_numpy(rates[0]), b.to_numpy(rates[1]),
                                  f"{where}, position {self.position}")
        ids, values = volley.estimate()
        ids, values = b.index_array(ids), b.asarray(values, self.dtype)
        vector = b.zeros(rates[2].shape[0], self.dtype)
        vector[ids] = values
        tally = self._spike_tally
        tally["spikes"] += volley.n_spikes
        tally["clipped"] += volley.clipped
        tally["events"] += self._wiring.deliveries(round_, volley, posts)
        return (ids, values, vector), volley

    def _coincidence_write(self, layer: int, pre, x_volley, cos, sin) -> int:
        """Spike-mode Hebbian write: the presynaptic neurons fire a fresh volley beside the x volley; every
        micro-step in which pre ``i`` and x-neuron ``j`` both fire adds ``s_pre s_x / K`` (rotated by RoPE) to
        ``sigma[i, j]`` (``rho`` on the hubs). Returns the synapse updates."""
        b, c, wired = self.backend, self.config, self._wiring
        N, K = c.N, self.spiker.steps
        pre_volley = self.spiker.fire(wired.pre_population, b.to_numpy(pre[0]), b.to_numpy(pre[1]),
                                      f"layer {layer}, position {self.position}")
        self._spike_tally["spikes"] += pre_volley.n_spikes
        self._spike_tally["clipped"] += pre_volley.clipped
        updates = 0
        for m in range(K):
            pre_ids, pre_amp = pre_volley.at(m)
            x_ids, x_amp = x_volley.at(m)
            if len(pre_ids) == 0 or len(x_ids) == 0:
                continue
            pre_ids, pre_amp = b.index_array(pre_ids), b.asarray(pre_amp, self.dtype)
            pre_vector = b.zeros(pre[2].shape[0], self.dtype)
            pre_vector[pre_ids] = pre_amp
            post = b.zeros(c.n_neurons, self.dtype)
            post[b.index_array(x_ids)] = b.asarray(x_amp / K, self.dtype)
            for h in range(c.n_head):
                k_ids, k_val = b.active(b.rope(post[h * N:(h + 1) * N], cos, sin))
                if len(k_ids):
                    updates += self.synapses.write(layer, h, (pre_ids, pre_amp, pre_vector), k_ids, k_val)
        return updates

    def _check_finite(self, v, what: str, layer: int, token: int) -> None:
        if not self.backend.all_finite(v):
            raise NonFiniteError(
                f"non-finite {what} in layer {layer} (of 0..{self.config.n_layer - 1}) at token position "
                f"{self.position} (token id {token}); the network state is now invalid: reset() or load_state()"
            )

    def run(self, text_or_tokens, monitors=(), progress: bool = True) -> np.ndarray:
        """Step over a text (str, its UTF-8 bytes) or token ids, continuing from the current state.

        Each monitor is attached (``monitor.attach(network)``) and then sees every token's record
        (``monitor.record(record)``). Returns the logits (T, V).
        """
        tokens = as_tokens(text_or_tokens, self.config.vocab_size)
        for monitor in monitors:
            monitor.attach(self)
        out = np.empty((len(tokens), self.config.vocab_size), dtype=self.dtype)
        for t, token in enumerate(tqdm(tokens, desc=f"{self.wiring} network", unit="tok", disable=not progress)):
            record = {} if monitors else None
            out[t] = self.step(int(token), record)
            for monitor in monitors:
                monitor.record(record)
        return out

    # -- state files ----------------------------------------------------------------------------------------
    def save_state(self, path: str | os.PathLike) -> Path:
        """Write the synapses, position, event count (and in spike mode the spike count and the state of the
        random stream) to ``path`` (.npz, atomically) with a fingerprint."""
        arrays = self.synapses.arrays()
        if self.spiker is not None:
            arrays.update(spikes=np.array(self.spikes), random_state=np.array(self.spiker.state()))
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, format=np.array(STATE_FORMAT), description=np.array(json.dumps(self.description)),
                     position=np.array(self.position), events=np.array(self.events), **arrays)
        return Path(path)

    def load_state(self, path: str | os.PathLike) -> None:
        """Resume from a state file of this very network (same model weights, config, wiring, pruning,
        synapses, dtype); anything else is refused before the state changes."""
        path = Path(path)
        arrays = read_tagged_npz(path, STATE_FORMAT, "network state file")
        saved = json.loads(str(arrays["description"]))
        differ = [key for key in self.description if saved.get(key) != self.description[key]]
        if differ:
            details = "; ".join(f"{k}: file {_short(saved.get(k))}, network {_short(self.description[k])}"
                                for k in differ)
            raise ValueError(f"state file '{path}' was saved by another network ({details})")
        if self.spiker is not None:
            if not {"spikes", "random_state"} <= set(arrays):
                raise ValueError(f"state file '{path}': a spike-mode state needs 'spikes' and 'random_state'")
            try:
                seed, rng = Spiker.parse_state(str(arrays["random_state"]))
            except ValueError as err:
                raise ValueError(f"state file '{path}': 'random_state' is {err}") from err
        self.synapses.load(arrays, str(path))
        self.position, self.events = int(arrays["position"]), int(arrays["events"])
        if self.spiker is not None:
            self.spikes = int(arrays["spikes"])
            self.spiker.seed, self.spiker.rng = seed, rng


def _short(value) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= 80 else text[:77] + "..."
