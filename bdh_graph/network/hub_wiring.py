"""Hub wiring (docs/model.md 4.5): n+V neurons and d hubs; exact at any size, O(n d) per token.

Edges ``E_ext`` (neurons -> hubs), ``D_x`` and ``D_y`` (hubs -> neurons); the Hebbian state ``rho`` (d, N per
layer and head) lives on the hub -> x-neuron synapses. The hubs hold ``u = E_ext w`` (``neurons.Trace``),
which is centred, so LayerNorm across the hubs is the division by ``gain(u)``. Per layer::

    x = relu(D_x u)                      # every hub sends to every neuron
    per head: k = R_t x_head
              a = rho @ k                # read, before the write: active x-neurons send back to the hubs
              y_head = relu(D_y a / gain(a)) * x_head      # only x-active neurons compute
              rho += outer(u, k)         # Hebbian write on hub -> active x-neuron synapses
    logits = lm_head^T u

It stores ``rho``, not ``sigma``; a lesion of chosen sigma synapses (``Network.lesion``) is exact all the same
(``hold_at_zero``).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..graphs import graph_factors
from ..model.tensor import LN_EPS
from .neurons import Active
from .synapses import DenseSynapses


class HubWiring:
    name = "hub"

    def __init__(self, model, backend, dtype):
        c = model.config
        self.backend, self.n, self.N, self.n_head = backend, c.n_neurons, c.N, c.n_head
        fx, fy = graph_factors(model, "x", "exact"), graph_factors(model, "y", "exact")
        self.E_ext_host = fx.pre  # (n+V, d), float64
        self.E_ext = backend.asarray(fx.pre, dtype)
        self.D_x_host = fx.post.T  # (n, d): row j = the edges hubs -> neuron j
        self.D_x = backend.asarray(self.D_x_host, dtype)
        self.D_y = backend.asarray(fy.post.T, dtype)
        self.lm_head = backend.asarray(model.lm_head.detach().cpu().double().numpy().T, dtype)  # (V, d)
        self.n_edges = {"E_ext": int(np.prod(fx.pre.shape)), "D_x": self.n * c.n_embd, "D_y": self.n * c.n_embd}
        self.all_neurons = backend.index_array(np.arange(self.n))
        self.all_hubs = backend.index_array(np.arange(c.n_embd))
        self.all_tokens = backend.index_array(np.arange(c.vocab_size))
        self.synapses = DenseSynapses(c.n_layer, c.n_head, c.N, c.n_embd, backend, dtype)
        self.synapse_graph = None
        # a rate-mode layer runs as one call where the backend has one (``Backend.fuses_layer``): its largest
        # kernel reads and writes rho of every x-neuron
        self.fuses = backend.fuses_layer(indexed=0, dense=2 * self.n * c.n_embd)

    pre_population, read_population = "u", "a"

    def presynaptic(self, trace) -> Active:
        """The presynaptic side of this layer: every hub."""
        return Active(self.all_hubs, trace.u, trace.u)

    def potential(self, pre: Active):
        """x-neuron potentials ``D_x u`` from what the hubs send; and the events."""
        x = self.backend.zeros(self.n, pre.dense.dtype)
        return x, self.backend.rows_dot(self.D_x, self.all_neurons, pre.dense, x)

    def gate(self, S, x: Active, trace):
        """``y`` of all heads from the synapse reads ``S`` (h, d) and the x-neurons that fire, every head at once:
        the x-neuron ``h*N + j`` meets its head's hub values ``a[h]``."""
        b = self.backend
        a = S / trace.gain(S)[:, None] if trace.layer_norm else S
        potential = b.zeros(len(x.ids), S.dtype)
        events = b.rows_dot(self.D_y, x.ids, a, potential)
        y = b.zeros(self.n, S.dtype)
        y[x.ids] = b.relu(potential) * x.values
        return y, events

    def layer(self, trace, layer: int, A, cos, sin):
        """A rate-mode layer in one call of the backend's ``hub_layer`` (where it ``fuses``): the rounds of
        :meth:`potential`, the synapses' ``read_write`` and :meth:`gate`, as ``Network.step`` runs them one by one
        otherwise. Returns x, k (the rotated x that read rho) and y, all ``Active``, and the events."""
        b, dtype = self.backend, trace.u.dtype
        x, k, y = b.zeros(self.n, dtype), b.zeros(self.n, dtype), b.zeros(self.n, dtype)
        rho = self.synapses.values[layer].reshape(-1, self.synapses.n_pre)  # x-neuron h*N + j is row h*N + j;
        # stored up to the lazy scale of each head (``synapses``), which the call takes
        events, *found = b.hub_layer(trace.u, self.D_x, self.all_neurons, rho, self.synapses.scales_of(layer),
                                     self.all_hubs, self.D_y, cos, sin, self.N, trace.layer_norm, LN_EPS, x, k, A, y)
        x_ids, x_values, k_ids, k_values, y_ids, y_values = found
        return Active(x_ids, x_values, x), Active(k_ids, k_values, k), Active(y_ids, y_values, y), int(events)

    def silence(self, neurons: np.ndarray) -> None:
        """Cut every edge hubs -> neuron onto ``neurons`` (global ids; none: restore them all): their rows of D_x
        at zero, so each of them has potential 0 and never fires (``Network.silence``)."""
        D_x = self.D_x_host.copy()
        D_x[neurons] = 0
        self.D_x = self.backend.asarray(D_x, self.D_x.dtype)

    def readout(self, pre: Active):
        logits = self.backend.zeros(self.lm_head.shape[0], pre.dense.dtype)
        return logits, self.backend.rows_dot(self.lm_head, self.all_tokens, pre.dense, logits)

    def deliveries(self, round_: str, volley, posts=None) -> int:
        """Spike messages of a volley (spike mode): every spike times the edges it travels along.

        drive: a hub to every neuron (D_x); read: an x-neuron through the synapses of its RoPE pair on every hub;
        gate: a hub to the gated y-neurons (D_y); output: a y-neuron to every hub (E_ext); readout: a hub to
        every token.
        """
        fanout = {"drive": self.n, "read": 2 * len(self.all_hubs), "gate": 0 if posts is None else len(posts),
                  "output": len(self.all_hubs), "readout": len(self.all_tokens)}[round_]
        return volley.n_spikes * fanout

    def rho(self, layer: int) -> np.ndarray:
        """The synaptic state ``rho`` (h, d, N)."""
        return np.stack([self.synapses.matrix(layer, h) for h in range(self.n_head)])

    def locate(self, head: int, pre: np.ndarray, post: np.ndarray):
        """The sigma synapses ``(pre[p], post[p])`` of ``head`` as :meth:`hold_at_zero` takes them: the x-neurons
        they reach and, row by row, their presynaptic neurons (a 0/1 matrix, x-neurons x (n+V))."""
        posts, row = np.unique(post, return_inverse=True)
        M = sp.csr_array((np.ones(len(pre)), (row, pre)), shape=(len(posts), self.E_ext_host.shape[0]))
        return self.backend.index_array(posts), posts, M

    def hold_at_zero(self, layer: int, head: int, where, w, k) -> None:
        """Take back this token's Hebbian write to the sigma synapses located by :meth:`locate`.

        The write adds ``w_i k_j`` to ``sigma[i, j]`` and so ``E_ext[:, i] w_i k_j`` to column ``j`` of
        ``rho = E_ext sigma``; subtracting exactly that after every write keeps ``rho = E_ext sigma'``, where
        ``sigma'`` is the network's sigma with those entries held at zero. ``w`` is the trace the layer wrote
        with, ``k`` the head's rotated x (N,).
        """
        posts_ids, posts, M = where
        b = self.backend
        k = b.to_numpy(k)[posts]
        if not k.any():
            return
        M = M.copy()
        M.data *= b.to_numpy(w)[M.indices]
        taken = (M @ self.E_ext_host) * k[:, None]  # (x-neurons, d): E_ext[:, i] w_i k_j summed per j
        self.synapses.add(layer, head, posts_ids, -b.asarray(taken, self.synapses.values.dtype))
