"""Neuron wiring (docs/model.md 4.3): n model neurons and V input neurons talking along the graphs G_x and G_y.

Per layer, with ``w`` the presynaptic trace (``neurons.Trace``) and ``sigma`` the synapses of each head::

    x = relu(G_x^e.w - G_x^i.w)                    # active presynaptic neurons send along their out-edges
    per head: k = R_t x_head
              A = sigma @ k                        # read, before the write
              y_head = relu((G_y^e.A - G_y^i.A) / gain(E_ext A)) * x_head   # only x-active neurons compute
              sigma += outer(w, k)                 # Hebbian write, active pre x active post
    logits = W^T w,   W = E_ext^T lm_head          # readout

The circuits are the exact graphs of ``graphs.neuron_graph(form="exact")``, dense (``prune=None``) or pruned
(docs/model.md 4.6: an approximation whose fidelity ``validate`` measures). ``sigma`` holds every
(presynaptic, x-neuron) pair, or only those of a synapse graph.
"""
from __future__ import annotations

import warnings
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from ..graphs import check_keeps_edges, graph_factors, neuron_graph
from ..graphs.scale import SCALE_HINT, graph_name
from ..model.tensor import LN_EPS
from .neurons import Active, active
from .synapses import DenseSynapses, GraphSynapses


class NeuronWiring:
    name = "neuron"

    def __init__(self, model, prune, synapses, backend, dtype, progress: bool | None = None):
        c = model.config
        self.backend, self.n, self.N, self.n_head = backend, c.n_neurons, c.N, c.n_head
        self.layer_norm = c.layer_norm
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="no edge has")  # refused below, naming the graph
            G_x = neuron_graph(model, "x", "exact", prune=prune, progress=progress)
            G_y = neuron_graph(model, "y", "exact", prune=prune, progress=progress)
        for which, G in (("x", G_x), ("y", G_y)):  # a threshold above every |G| would leave a silent network
            if "largest_abs_weight" in G.meta:
                check_keeps_edges(prune, G.meta["largest_abs_weight"],
                                  f"{graph_name(which, 'exact', None)}, the network's wiring", hint=SCALE_HINT)
        self.n_edges = {"x": G_x.n_edges, "y": G_y.n_edges}
        self.n_pre = G_x.shape[0]
        self.n_tokens = c.vocab_size
        self.drive_fanout = np.diff(G_x.excitatory.indptr) + np.diff(G_x.inhibitory.indptr)  # spike messages
        # Both circuits of a graph in one signed CSR (they share no edge), so that a round walks each edge once:
        # G_x pre-major (out-edges, for push); G_y post-major (in-edges, for pull)
        self.x_graph = self.x_graph_intact = backend.graph(G_x.signed(), dtype)
        self.y_graph = backend.graph(G_y.signed().T, dtype)
        self.E_ext_host = graph_factors(model, "x", "exact").pre  # (n+V, d), float64
        self.E_ext = backend.asarray(self.E_ext_host, dtype)
        self.all_pre = backend.index_array(np.arange(self.n_pre))
        lm_head = model.lm_head.detach().cpu().double().numpy()
        self.W = backend.asarray(self.E_ext_host @ lm_head, dtype)  # readout graph, (n+V, V)
        if isinstance(synapses, str) and synapses == "all":
            self.synapses = DenseSynapses(c.n_layer, c.n_head, c.N, self.n_pre, backend, dtype)
            self.synapse_graph = None
        else:
            if isinstance(synapses, str) and synapses == "wiring":
                synapses = G_x.excitatory + G_x.inhibitory  # a synapse where G_x has an edge
            self.synapse_graph = check_synapse_graph(synapses, (self.n_pre, self.n))
            self.synapses = GraphSynapses(self.synapse_graph, c.n_layer, c.n_head, c.N, backend, dtype)
        per_x = (np.full(self.n, self.n_pre) if self.synapse_graph is None
                 else np.diff(sp.csc_array(self.synapse_graph).indptr))
        self.read_fanout = per_x + per_x.reshape(-1, 2)[:, ::-1].reshape(-1)  # the synapses of the RoPE pair
        # a rate-mode layer runs as one call where the backend has one (``Backend.fuses_layer``)
        self.fuses = self.synapse_graph is not None and backend.fuses_layer(
            indexed=max(G_x.n_edges, G_y.n_edges, self.synapse_graph.nnz),
            dense=self.n_head * np.prod(self.E_ext.shape))  # the gain control: every head's A through E_ext

    pre_population, read_population = "w", "A"

    def presynaptic(self, trace) -> Active:
        """The presynaptic side of this layer: the trace's active neurons."""
        return active(self.backend, trace.w)

    def potential(self, pre: Active):
        """x-neuron potentials ``G_x^e.w - G_x^i.w`` from what the presynaptic neurons send; and the events."""
        b = self.backend
        x = b.zeros(self.n, pre.dense.dtype)
        return x, b.push(*self.x_graph[:3], pre.ids, pre.values, x)

    def gate(self, S, x: Active, trace):
        """``y`` of all heads from the synapse reads ``S`` (h, n+V) and the x-neurons that fire, every head at once:
        the x-neuron ``h*N + j`` gathers from ``S[h]``."""
        b = self.backend
        events = 0
        potential = b.zeros(len(x.ids), S.dtype)
        events += b.pull(*self.y_graph[:3], x.ids, S, potential)
        if trace.layer_norm:  # gain control: each head's A seen through the hubs, all heads in one pass over E_ext
            u = b.zeros((self.n_head, self.E_ext.shape[1]), S.dtype)
            events += b.rows_combine(self.E_ext, self.all_pre, S, u)
            potential = potential / trace.gain(u)[x.ids // self.N]
        y = b.zeros(self.n, S.dtype)
        y[x.ids] = b.relu(potential) * x.values
        return y, events

    def layer(self, trace, layer: int, A, cos, sin):
        """A rate-mode layer in one call of the backend's ``neuron_layer`` (where it ``fuses``): the rounds of
        :meth:`presynaptic`, :meth:`potential`, the synapses' ``read_write`` and :meth:`gate`, as ``Network.step``
        runs them one by one otherwise. Returns x, k (the rotated x that read the synapses) and y, all
        ``Active``, and the events."""
        b, dtype = self.backend, trace.w.dtype
        x, k, y = b.zeros(self.n, dtype), b.zeros(self.n, dtype), b.zeros(self.n, dtype)
        events, *found = b.neuron_layer(trace.w, self.x_graph, self.synapses.graph, self.synapses.values[layer],
                                        self.synapses.scales_of(layer), self.y_graph, self.E_ext, self.all_pre, cos,
                                        sin, self.N, trace.layer_norm, LN_EPS, x, k, A, y)
        x_ids, x_values, k_ids, k_values, y_ids, y_values = found
        return Active(x_ids, x_values, x), Active(k_ids, k_values, k), Active(y_ids, y_values, y), int(events)

    def silence(self, neurons: np.ndarray) -> None:
        """Cut every in-edge of G_x onto ``neurons`` (global ids; none: restore them all): their weights held at
        zero, so each of them has potential 0 and never fires (``Network.silence``). The edges stay, so spike mode
        still counts the messages sent along them."""
        b, g = self.backend, self.x_graph_intact
        data = b.to_numpy(g.data).copy()
        data[np.isin(b.to_numpy(g.indices), neurons)] = 0
        self.x_graph = g._replace(data=b.asarray(data, data.dtype))

    def readout(self, pre: Active):
        logits = self.backend.zeros(self.W.shape[1], pre.dense.dtype)
        return logits, self.backend.rows_combine(self.W, pre.ids, pre.values, logits)

    def deliveries(self, round_: str, volley, posts=None) -> int:
        """Spike messages of a volley (spike mode): every spike times the edges it travels along.

        drive: a presynaptic neuron along its out-edges in G_x; read: an x-neuron through the synapses of its RoPE
        pair; gate: a synapse read ``A_i`` along its G_y edges to the gated y-neurons ``posts`` (and, with
        LayerNorm, to the d hubs of the gain control); output: a y-neuron to the d hubs; readout: a presynaptic
        neuron to every token.
        """
        spikes, d = volley.counts, self.E_ext.shape[1]
        if round_ == "drive":
            return int(spikes @ self.drive_fanout[volley.ids])
        if round_ == "read":
            return int(spikes @ self.read_fanout[volley.ids])
        if round_ == "gate":
            counts = np.zeros(self.n_pre, np.int64)
            counts[volley.ids] = spikes
            gain_control = d * int(spikes.sum()) if self.layer_norm else 0
            return int((self._y_edges[self.backend.to_numpy(posts)] @ counts).sum()) + gain_control
        fanout = {"output": d, "readout": self.n_tokens}[round_]
        return int(spikes.sum()) * fanout

    @cached_property
    def _y_edges(self) -> sp.csr_array:
        """The edges of G_y (both circuits), post-major, as a host int64 0/1 matrix: built on first use from the
        backend's graph, so only spike mode (counting the gate's spike messages) pays for it."""
        b, g = self.backend, self.y_graph
        return sp.csr_array((np.ones(g.nnz, np.int64), b.to_numpy(g.indices), b.to_numpy(g.indptr)), shape=g.shape)

    def rho(self, layer: int) -> np.ndarray:
        """The synaptic state in tensor coordinates, ``rho = E_ext sigma``, (h, d, N)."""
        return np.stack([self.synapses.project(layer, h, self.E_ext_host).T for h in range(self.n_head)])

    def locate(self, head: int, pre: np.ndarray, post: np.ndarray):
        """The sigma synapses ``(pre[p], post[p])`` of ``head`` as :meth:`hold_at_zero` takes them."""
        return self.synapses.locate(head, pre, post)

    def hold_at_zero(self, layer: int, head: int, where, w, k) -> None:
        """Set the located sigma synapses back to zero after a write (``w``, ``k``: unused, sigma is stored)."""
        self.synapses.zero(layer, head, where)


def check_synapse_graph(graph, shape: tuple[int, int]) -> sp.csr_array:
    """A synapse graph as a CSR pattern of shape (n+V, n): ``graph[i, j] != 0`` if synapse i -> j exists."""
    if not sp.issparse(graph):
        raise TypeError(f"synapses must be 'all', 'wiring' or a scipy.sparse graph of shape {shape}, "
                        f"got {type(graph).__name__}")
    if tuple(graph.shape) != shape:
        raise ValueError(f"synapse graph has shape {tuple(graph.shape)}, expected {shape} "
                         "(presynaptic neurons incl. input neurons x x-neurons)")
    pattern = sp.csr_array(graph, dtype=np.float64)
    pattern.data[:] = 1.0
    pattern.sum_duplicates()
    pattern.eliminate_zeros()
    return pattern
