"""The network: neurons, synapses and a wiring, stepped token by token over text (docs/model.md 4).

``build_network`` turns a tensor model into a :class:`Network`; ``Network.step`` runs one token through all
layers as message passing and returns the logits, ``Network.run`` steps over a text with monitors watching.
Per layer the four rounds of the paper's "equations of reasoning" (its Table 1) run on the x-neurons that the
presynaptic trace drives: the synapses are read into A (all heads); A reaches the y-neurons through G_y, gated
by x; the Hebbian write (any time after the read: the gate reads A, not the synapses); y joins the trace that
drives the next layer's x. How messages travel, as rates or as spikes, is the network's channel
(``channels``). In rate mode the hub wiring and a neuron wiring on a synapse graph (a pruned network) run a
layer's rounds as one call where the backend has one (Numba; ``HubWiring.layer``, ``NeuronWiring.layer``).
A damped model's synapses decay by its factor ``gamma_h`` before every token's reads (docs/model.md 4.7), lazily
(``synapses``: one scale per layer and head, not a pass over every synapse).

State files are tagged ``.npz`` files (``files.write_tagged``, kind ``network_state``, version 1): one array per
synapse block (``synapses``, or ``synapses_head<h>`` on a synapse graph) and a header whose meta holds the
network's description (config, wiring, pruning, synapses, dtype, weight digest, mode), ``position``,
``events``, ``spikes`` and in spike mode the random stream's state.
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

from ..display import html_summary
from ..errors import FileFormatError, NonFiniteError, StateMismatchError
from ..files import read_tagged, write_tagged
from ..graphs import check_prune
from ..kernels import get_backend
from .channels import RateChannel, SpikeChannel
from .hub_wiring import HubWiring
from .neuron_wiring import NeuronWiring
from .neurons import Phases, Trace, active, as_token, as_tokens
from .spikes import Spiker, check_spike_options

WIRINGS = ("neuron", "hub")
STATE_KIND, STATE_VERSION = "network_state", 1
STATE_META = ("description", "position", "events", "spikes")
# What a step can record (see Network.step): per layer the vectors x, y, k, w (L, n or n+V), u (L+1, d) and the
# active counts x_active, y_active (L,); per token logits, events and, in spike mode, the spikes.
RECORD = frozenset({"x", "y", "k", "w", "u", "x_active", "y_active", "logits", "events", "spikes"})
WEIGHT_NAMES = ("encoder", "encoder_v", "decoder", "embed.weight", "lm_head", "attn.freqs")
DAMPING_NAME = "attn.damping"  # in the digest of a damped model only, so that undamped digests stay as they were


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
    for name in WEIGHT_NAMES + ((DAMPING_NAME,) if DAMPING_NAME in params else ()):
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
        wiring: ``"neuron"`` (docs/model.md 4.3: n+V neurons, graphs G_x and G_y, synapses sigma) or ``"hub"``
            (docs/model.md 4.5: neurons and d hubs, synapses rho; exact at any size).
        prune: neuron wiring only: ``None`` (dense, exact), ``Threshold(beta)``, ``TopK(k)`` or ``Strongest(m)``
            (docs/model.md 4.6; an approximation).
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
    c = model.config
    if spiking is None:
        channel = RateChannel(backend)
    else:
        description.update(spike_steps=spiking["spike_steps"], rate_scale=spiking["rate_scale"])
        channel = SpikeChannel(Spiker(**spiking), wired, backend, dtype, c.N, c.n_head)
    # gamma_h = sigmoid(p_h) from the parameter in float64, as the weights (a float32 model's float32 gamma would
    # differ from what its float64 copy computes at 1e-8)
    decay = torch.sigmoid(model.attn.damping.detach().cpu().double()).numpy() if c.damping else None
    return Network(c, wired, Phases(model.attn.freqs, backend, dtype), description, channel, decay)


class Network:
    """BDH as message passing: ``reset``, ``step``, ``run``, ``save_state``/``load_state``; experiments on the
    synaptic state: ``scale_synapses`` (forgetting, erasing) and ``lesion``, and on neurons: ``silence``; built by
    :func:`build_network`.

    Attributes: ``config``, ``wiring`` (``"neuron"``/``"hub"``), ``mode`` (``"rate"``/``"spike"``),
    ``channel`` (how messages travel: ``channels.RateChannel`` or ``SpikeChannel``), ``synapses`` (the Hebbian
    state), ``position`` (tokens stepped since the last reset, the RoPE position of the next one), ``events``
    (synaptic events so far: messages sent along edges plus synapse updates; in spike mode a message is one spike
    along one edge), ``spikes`` (spikes so far, spike mode) and ``silenced`` (the neurons held silent).
    """

    def __init__(self, config, wiring, phases: Phases, description: dict, channel, decay: np.ndarray | None = None):
        self.config, self._wiring, self._phases, self.channel = config, wiring, phases, channel
        self.backend = wiring.backend
        self.description = description
        self.dtype = np.dtype(description["dtype"])
        self.trace = Trace(wiring.E_ext, config.n_neurons, config.layer_norm, self.backend, self.dtype)
        self._reads = self.backend.zeros((config.n_head, wiring.synapses.n_pre), self.dtype)  # A, reused by every layer
        self._fused = channel.mode == "rate" and wiring.fuses
        self.position = 0
        self.events = 0
        self.spikes = 0
        self._lesions: dict[int, list] = {}  # layer -> [(head, located pairs, or None for the whole head)]
        self._decay = decay  # gamma_h (h,), float64; None: no damping
        self.silenced = np.zeros(0, np.int64)  # the neurons held silent (``silence``)

    def _repr_html_(self) -> str:
        c, spiking = self.config, self.spike_options
        wiring = (f"hub: n + V neurons, d = {c.n_embd} hubs" if self.wiring == "hub" else
                  f"neuron: n + V neurons, pruned by {self.description['prune']}" if self.description["prune"] != "None"
                  else "neuron: n + V neurons, dense (exact)")
        return html_summary("BDH network", [
            ("wiring", wiring), ("neurons n + V inputs", f"{c.n_neurons} + {c.vocab_size}"),
            ("layers, heads", f"{c.n_layer}, {c.n_head}"),
            ("edges", ", ".join(f"{name} {m:,}" for name, m in self.n_edges.items())),
            ("mode", "rate" if spiking is None else f"spike, K = {spiking['spike_steps']} micro-steps"),
            ("backend, dtype", f"{self.backend.name} on {self.backend.device}, {self.dtype}"),
            ("tokens stepped", self.position), ("synaptic events so far", f"{self.events:,}"),
            *([] if spiking is None else [("spikes so far", f"{self.spikes:,}")])])

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
        s = self.channel.spiker
        if s is None:
            return None
        return {"spike_steps": s.steps, "seed": s.seed, "rate_scale": dict(s.rate_scale)}

    @property
    def synapses(self):
        return self._wiring.synapses

    def decay(self) -> np.ndarray:
        """The damping factor ``gamma_h`` of each head, (h,) float64 (ones without damping): the synapses of head h
        are multiplied by it before every token's reads, as the tensor model's ``decay()``."""
        return np.ones(self.config.n_head) if self._decay is None else self._decay.copy()

    def time_constants(self) -> np.ndarray:
        """``tau_h = -1 / ln gamma_h`` in tokens, (h,) (inf without damping)."""
        with np.errstate(divide="ignore"):
            return -1.0 / np.log(self.decay())

    @property
    def n_edges(self) -> dict:
        """Edges of each graph (both circuits)."""
        return dict(self._wiring.n_edges)

    @property
    def synapse_graph(self) -> sp.csr_array | None:
        """The synapse graph (n+V, n) of a neuron wiring with restricted synapses; None when all exist."""
        return self._wiring.synapse_graph

    def sigma(self, layer: int, head: int) -> sp.csr_array:
        """``sigma[layer, head]`` (n+V, N) as a scipy CSR array, whatever the synapses (neuron wiring only).

        Sparse for every wiring: a synapse graph holds only its own synapses, and where every pair exists only
        those of active pre x active post neurons have ever grown, while the dense matrix at the released size
        would take (n+V) N = 2.7e8 entries a head. The hub wiring never stores sigma (only ``rho = E_ext sigma``);
        track entries with ``SynapseMonitor``.
        """
        if self.wiring != "neuron":
            raise ValueError("the hub wiring stores rho = E_ext sigma, not sigma; "
                             "track chosen entries with SynapseMonitor")
        self._check_layer_head(layer, head)
        return sp.csr_array(self.synapses.matrix(layer, head))

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
            if self.channel.spiker is None:
                raise ValueError("reset(seed=...) applies to mode='spike'; this network runs in rate mode")
            self.channel.spiker.reseed(seed)
        self.synapses.reset()
        self.position = 0

    def scale_synapses(self, factor: float, layer: int | None = None, head: int | None = None) -> None:
        """Multiply the synaptic state by ``factor`` >= 0: every synapse, or those of one ``layer`` and/or one
        ``head`` (None: all). Forgetting with time constant tau is ``scale_synapses(exp(-1/tau))`` before each
        token; 0 erases. Scaling sigma scales ``rho = E_ext sigma`` alike, so it means the same in both wirings. On a
        damped model the factors multiply: a write keeps ``(gamma_h * factor) ** s`` of itself s tokens later. Lazy:
        one number per layer and head changes (``synapses``), not every synapse."""
        if isinstance(factor, bool) or not isinstance(factor, (int, float, np.number)) or not 0 <= factor < np.inf:
            raise ValueError(f"factor must be a finite number >= 0, got {factor!r}")
        self._check_layer_head(0 if layer is None else layer, 0 if head is None else head)
        self.synapses.scale(float(factor), layer, head)

    def lesion(self, synapses: dict | None) -> None:
        """Hold synapses at zero from the next token on, until ``lesion(None)`` (``reset`` keeps a lesion).

        ``synapses`` maps ``(layer, head)`` to ``"all"`` (every synapse of that head in that layer: its whole
        sigma, and so its rho) or to pairs ``(i, j)`` (P, 2) of ``sigma[layer, head]``: presynaptic neuron ``i``
        (0..n-1 model neurons, n + byte the input neurons), x-neuron ``j`` of the head (0..N-1). After every
        Hebbian write the named synapses are set back to zero, so every read finds them at zero. The hub wiring
        stores ``rho = E_ext sigma``, not sigma: there it takes back exactly what each write added through the
        named synapses (``HubWiring.hold_at_zero``). A lesion is set on a network at rest (position 0: after
        ``build_network`` or ``reset()``), whose synapses are all zero; a spiking hub network takes whole heads
        only (its writes count coincidences, not ``w_i k_j``). State files do not keep lesions, and
        ``SynapseMonitor``, which sums the writes, does not see them.
        """
        if synapses and self.position != 0:
            raise ValueError(f"lesion: the network has stepped {self.position} tokens; set a lesion at rest "
                             "(after reset())")
        c = self.config
        lesions: dict[int, list] = {}
        for (layer, head), pairs in (synapses or {}).items():
            self._check_layer_head(layer, head)
            if isinstance(pairs, str) and pairs == "all":
                where = None
            else:
                if self.mode == "spike" and self.wiring == "hub":
                    raise ValueError("lesion: a spiking hub network cannot hold single synapses at zero (its "
                                     "writes count spike coincidences); lesion whole heads ('all') or use the "
                                     "neuron wiring")
                pairs, n_pre = np.asarray(pairs), c.n_neurons + c.vocab_size
                if (pairs.dtype.kind not in "iu" or pairs.ndim != 2 or pairs.shape[1] != 2 or len(pairs) == 0
                        or pairs[:, 0].min() < 0 or pairs[:, 0].max() >= n_pre
                        or pairs[:, 1].min() < 0 or pairs[:, 1].max() >= c.N):
                    raise ValueError(f"lesion of layer {layer}, head {head}: expected 'all' or integer pairs (i, j), "
                                     f"shape (P, 2), with i in [0, {n_pre}) and j in [0, {c.N}); got an array of "
                                     f"shape {pairs.shape}, dtype {pairs.dtype}"
                                     + (f", values in [{pairs.min()}, {pairs.max()}]"
                                        if pairs.size and pairs.dtype.kind in "iuf" else ""))
                where = self._wiring.locate(head, pairs[:, 0], pairs[:, 1])
            lesions.setdefault(int(layer), []).append((int(head), where))
        self._lesions = lesions

    def silence(self, neurons) -> None:
        """Hold the model ``neurons`` (global ids ``head*N + k``, 0..n-1) silent from the next token on, until
        ``silence(None)`` or ``silence([])`` (``reset`` keeps them silent): a neuron lesion, beside the synapse
        lesions of :meth:`lesion`.

        Every edge onto a silenced neuron (G_x in the neuron wiring, D_x from the hubs in the hub wiring) is held at
        zero, so its potential is 0, its rate ``x = relu(0)`` is 0 and its ``y``, gated by ``x``, is 0: it never
        fires, its synapses are never written (the write needs ``R_t x``), and it sends nothing. Every other
        neuron's input changes only through the silenced neurons' missing output. The same as zeroing the
        neurons' columns of the tensor model's encoder D_x. State files do not keep it.
        """
        ids = np.unique(np.asarray([] if neurons is None else neurons).ravel())
        n = self.config.n_neurons
        if ids.size and (ids.dtype.kind not in "iu" or ids.min() < 0 or ids.max() >= n):
            raise ValueError(f"silence: expected model neuron ids, integers in [0, {n}) (head*N + k, N = "
                             f"{self.config.N}), got {ids.size} values of dtype {ids.dtype} in "
                             f"[{ids.min()}, {ids.max()}]")
        self._wiring.silence(ids.astype(np.int64))
        self.silenced = ids.astype(np.int64)

    def _hold_lesions(self, layer: int, k) -> None:
        """After a layer's write: its lesioned synapses back to zero (:meth:`lesion`); ``k`` the rotated x of every
        head."""
        N = self.config.N
        for head, where in self._lesions.get(layer, ()):
            if where is None:
                self.synapses.scale(0.0, layer, head)
            else:
                self._wiring.hold_at_zero(layer, head, where, self.trace.w, k.dense[head * N:(head + 1) * N])

    def step(self, token: int, record: dict | None = None) -> np.ndarray:
        """One token through all layers; returns the logits (V,) as numpy.

        If ``record`` is a dict it receives numpy arrays of this token: ``x``, ``y``, ``k`` (the rotated x that
        read the synapses) (L, n), the presynaptic trace ``w`` each layer wrote with (L, n+V), the hub vectors
        ``u`` (L+1, d) (each layer's input, then the last output: the tensor model's ``v``), the active counts
        ``x_active``, ``y_active`` (L,), ``logits``, ``position``, ``token`` and ``events``. In spike mode ``x``
        and ``y`` are the neurons' rates, ``k`` is read from the x spikes, ``spikes`` maps ``(layer, "x" | "y")``
        to the (micro-step, neuron) of every spike, ``n_spikes`` counts all spikes of the token and ``clipped``
        the rates clipped by a fixed scale (summed up in one ``RateClipWarning``).
        """
        logits = self._step(token, record, RECORD if record is not None else frozenset())
        self.channel.warn_clipped(stacklevel=2)
        return logits

    def _step(self, token: int, record: dict | None, wanted: frozenset) -> np.ndarray:
        """:meth:`step`, recording only the ``wanted`` entries of :data:`RECORD` (and the per-token scalars)."""
        token = as_token(token, self.config.vocab_size)
        c, b, wired, trace, channel = self.config, self.backend, self._wiring, self.trace, self.channel
        H, N = c.n_head, c.N
        cos, sin = self._phases.at(self.position)
        trace.start(token)
        channel.start(self.position, cos, sin, record_spikes="spikes" in wanted)
        if self._decay is not None:  # damping: every layer's state decays before this token's reads; not an event
            self.synapses.scale(self._decay)
        rows = {name: [] for name in ("x", "y", "k", "w", "u", "x_active", "y_active") if name in wanted}
        A = self._reads
        for layer in range(c.n_layer):
            if self._fused:  # the rounds below in one compiled call (the wiring's layer)
                x, k, y, events = wired.layer(trace, layer, A, cos, sin)
                channel.messages(events)
            else:
                # the presynaptic trace (the input neuron, earlier layers' y) drives the x-neurons
                pre = wired.presynaptic(trace)
                x, events = wired.potential(channel.send(wired.pre_population, pre, "drive", layer))
                channel.messages(events)
                x = active(b, b.relu(x))
                x_sent = channel.send("x", x, "read", layer)
                k = active(b, b.rope(x_sent.dense.reshape(H, N), cos, sin).reshape(-1))  # R_t x of every head
                # read the synapse state into A (every head before any write), A -> y through G_y gated by x, and
                # the Hebbian write (spike mode: the coincidences of the round), in the channel's order
                A[...] = 0
                y, events = channel.synapse_rounds(self.synapses, layer, pre, x, k, A,
                                                   gate=lambda reads: wired.gate(reads, x, trace))
                channel.messages(events)
                y = active(b, y)
            self._hold_lesions(layer, k)
            self._check_finite(x.dense, "x", layer, token)
            self._check_finite(y.dense, "y", layer, token)
            self._record_layer(rows, x, y, k)
            # y joins the trace that drives the next layer
            channel.messages(trace.add(channel.send("y", y, "output", layer)))
        logits, events = wired.readout(channel.send(wired.pre_population, wired.presynaptic(trace), "readout",
                                                    c.n_layer))
        channel.messages(events)
        self._check_finite(logits, "logits", c.n_layer - 1, token)
        logits = b.to_numpy(logits)
        if record is not None:
            if "u" in rows:
                rows["u"].append(b.to_numpy(trace.u).copy())
            record.update({name: np.array(v) if name.endswith("_active") else np.stack(v)
                           for name, v in rows.items()})
            record.update(logits=logits.copy(), position=self.position, token=token, events=channel.events,
                          **channel.record())
        self.position += 1
        self.events += channel.events
        self.spikes += channel.spikes
        return logits

    def _record_layer(self, rows: dict, x, y, k) -> None:
        """Host copies of a layer's entries, only those in ``rows`` (what the monitors asked for)."""
        b, trace = self.backend, self.trace
        for name, value in (("x", x.dense), ("y", y.dense), ("w", trace.w), ("u", trace.u)):
            if name in rows:
                rows[name].append(b.to_numpy(value).copy())
        if "k" in rows:
            rows["k"].append(b.to_numpy(k.dense).copy())
        for name, value in (("x_active", x), ("y_active", y)):
            if name in rows:
                rows[name].append(len(value.ids))

    def _check_finite(self, v, what: str, layer: int, token: int) -> None:
        if not self.backend.all_finite(v):
            raise NonFiniteError(
                f"non-finite {what} in layer {layer} (of 0..{self.config.n_layer - 1}) at token position "
                f"{self.position} (token id {token}); the network state is now invalid: reset() or load_state()"
            )

    def run(self, text_or_tokens, monitors=(), progress: bool = True) -> np.ndarray:
        """Step over a text (str, its UTF-8 bytes) or token ids, continuing from the current state.

        Each monitor is attached (``monitor.attach(network)``) and then sees every token's record
        (``monitor.record(record)``), which holds what the monitors declared (their ``variables``) and nothing
        else. Rates clipped in spike mode are summed up in one ``RateClipWarning`` at the end. Returns the
        logits (T, V).
        """
        tokens = as_tokens(text_or_tokens, self.config.vocab_size)
        for monitor in monitors:
            monitor.attach(self)
        wanted = frozenset().union(*(monitor.variables for monitor in monitors))
        out = np.empty((len(tokens), self.config.vocab_size), dtype=self.dtype)
        try:
            for t, token in enumerate(tqdm(tokens, desc=f"{self.wiring} network", unit="tok",
                                           disable=not progress)):
                record = {} if monitors else None
                out[t] = self._step(int(token), record, wanted)
                for monitor in monitors:
                    monitor.record(record)
        finally:
            self.channel.warn_clipped(stacklevel=2)
        return out

    # -- state files ----------------------------------------------------------------------------------------
    def save_state(self, path: str | os.PathLike) -> Path:
        """Write the synapses, position, event and spike counts (and in spike mode the state of the random
        stream) to ``path`` (a tagged ``.npz``, atomically) with the network's description."""
        meta = {"description": self.description, "position": self.position, "events": self.events,
                "spikes": self.spikes, **self.channel.state()}
        return write_tagged(path, STATE_KIND, STATE_VERSION, self.synapses.arrays(), meta)

    def load_state(self, path: str | os.PathLike) -> None:
        """Resume from a state file of this very network (same model weights, config, wiring, pruning,
        synapses, dtype, mode); anything else is refused before the state changes: another kind of file or
        version with ``FileFormatError``, another network's state with ``StateMismatchError``."""
        path = Path(path)
        saved = read_tagged(path, STATE_KIND, STATE_VERSION, "network state file")
        missing = [key for key in STATE_META if key not in saved.meta]
        if missing:
            raise FileFormatError(f"network state file '{path}' lacks {missing} in its header")
        description = saved.meta["description"]
        differ = [key for key in self.description if description.get(key) != self.description[key]]
        if differ:
            details = "; ".join(f"{k}: file {_short(description.get(k))}, network {_short(self.description[k])}"
                                for k in differ)
            raise StateMismatchError(f"state file '{path}' was saved by another network ({details})")
        restore_channel = self.channel.restore(saved.meta, str(path))
        self.synapses.load(saved.arrays, str(path))
        self.position, self.events = int(saved.meta["position"]), int(saved.meta["events"])
        self.spikes = int(saved.meta["spikes"])
        restore_channel()


def _short(value) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= 80 else text[:77] + "..."
