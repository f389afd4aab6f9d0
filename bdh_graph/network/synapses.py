"""Hebbian synapses between presynaptic neurons (or hubs) and the x-neurons of each head, one set per layer.

Per layer and head, with ``k = R_t x_head`` the rotated activity of the head's x-neurons (the postsynaptic side)
and ``p`` the presynaptic activity (the trace ``w`` in the neuron wiring, the hub vector ``u`` in the hub
wiring)::

    read : A = S @ k          # before the write: active x-neurons send along their synapses
    write: S += outer(p, k)   # local Hebbian rule: only active pre x active post synapses change

Both are driven by the active x-neurons ``k``; the presynaptic side is ``pre``, both ``neurons.Active``. In
spike mode the write is the sum over the K micro-steps of a round, ``S += sum_m outer(p(m), k(m))``, one matrix
product per head (``write_steps``). Experiments act on the state between reads: ``scale`` (forgetting, erasing a
layer or head) and ``zero`` (chosen synapses held at zero, a lesion).

``S`` is ``sigma`` (n+V, N) in the neuron wiring and ``rho`` (d, N) in the hub wiring (docs/model.md 4.3, 4.5).
:class:`DenseSynapses` holds every pair; :class:`GraphSynapses` only the pairs of a synapse graph (docs/model.md 4.6).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..errors import StateMismatchError
from .neurons import Active


class DenseSynapses:
    """Every (presynaptic, x-neuron) pair. Stored post-major, ``values[layer, head, j, i] = S[i, j]``."""

    def __init__(self, n_layer: int, n_head: int, N: int, n_pre: int, backend, dtype):
        self.backend, self.N, self.n_pre = backend, N, n_pre
        self.values = backend.zeros((n_layer, n_head, N, n_pre), dtype)

    @property
    def n_synapses(self) -> int:
        return int(np.prod(self.values.shape))

    def reset(self) -> None:
        self.values[...] = 0

    def scale(self, factor: float, layer: int | None = None, head: int | None = None) -> None:
        """``S *= factor`` for every synapse, or those of one ``layer`` and/or one ``head`` (None: all)."""
        self.values[_block(layer), _block(head)] *= factor

    def locate(self, head: int, pre, post):
        """The pairs ``(pre[p], post[p])`` of ``head`` as the index arrays that :meth:`zero` takes."""
        return self.backend.index_array(post), self.backend.index_array(pre)

    def zero(self, layer: int, head: int, where) -> None:
        """``S[i, j] = 0`` for the pairs located by :meth:`locate`."""
        post, pre = where
        self.values[layer, head, post, pre] = 0

    def read(self, layer, head, k: Active, out) -> int:
        """``out += S @ k``."""
        return self.backend.rows_combine(self.values[layer, head], k.ids, k.values, out)

    def write(self, layer, head, pre: Active, k: Active) -> int:
        """``S += outer(pre, k)``."""
        return self.backend.outer_add(self.values[layer, head], k.ids, k.values, pre.ids, pre.values)

    def write_steps(self, layer, head, pre: Active, k: Active) -> int:
        """``S += sum_m outer(pre(m), k(m))`` over the K steps of ``pre`` and ``k`` (values (K, ids))."""
        return self.backend.product_add(self.values[layer, head], k.ids, k.values, pre.ids, pre.values)

    def matrix(self, layer: int, head: int) -> np.ndarray:
        """``S`` of one layer and head, (n_pre, N), as a numpy array."""
        return self.backend.to_numpy(self.values[layer, head]).T

    def project(self, layer: int, head: int, M: np.ndarray) -> np.ndarray:
        """``(M^T S)^T``, (N, d), for ``M`` (n_pre, d): sigma seen through the hubs, ``rho = E_ext sigma``."""
        return self.backend.to_numpy(self.values[layer, head]) @ M

    def arrays(self) -> dict[str, np.ndarray]:
        return {"synapses": self.backend.to_numpy(self.values)}

    def load(self, arrays: dict[str, np.ndarray], where: str) -> None:
        _check_array(arrays, "synapses", tuple(self.values.shape), where)
        self.values[...] = self.backend.asarray(arrays["synapses"], self.values.dtype)


class GraphSynapses:
    """The synapses of a synapse graph ``pattern`` ((n_pre, n) sparse: pre row, x-neuron column), per layer.

    Per head the pattern's columns of that head form a CSR graph, x-neuron-major (row j lists the presynaptic
    neurons of x-neuron j); the values of all layers sit in one array per head, ``values[head][layer, p]`` for
    the p-th synapse of the graph.
    """

    def __init__(self, pattern, n_layer: int, n_head: int, N: int, backend, dtype):
        pattern = sp.csr_array(pattern)
        self.backend, self.N, self.n_pre = backend, N, pattern.shape[0]
        self.graphs, self.values = [], []
        for head in range(n_head):
            block = sp.csr_array(pattern[:, head * N:(head + 1) * N].T)
            block.data = np.ones_like(block.data)
            graph = backend.graph(block, dtype)
            self.graphs.append(graph)
            self.values.append(backend.zeros((n_layer, graph.nnz), dtype))

    @property
    def n_synapses(self) -> int:
        return sum(int(np.prod(v.shape)) for v in self.values)

    def reset(self) -> None:
        for v in self.values:
            v[...] = 0

    def scale(self, factor: float, layer: int | None = None, head: int | None = None) -> None:
        """``S *= factor`` for every synapse, or those of one ``layer`` and/or one ``head`` (None: all)."""
        for v in self.values if head is None else [self.values[head]]:
            v[_block(layer)] *= factor

    def locate(self, head: int, pre, post):
        """The positions in ``head``'s graph of the pairs ``(pre[p], post[p])`` that are synapses (the others do
        not exist, so they are zero already), as the index array that :meth:`zero` takes."""
        g = self.graphs[head]
        b = self.backend
        rows = sp.csr_array((np.arange(1, g.nnz + 1), b.to_numpy(g.indices), b.to_numpy(g.indptr)), shape=g.shape)
        found = np.asarray(rows[np.asarray(post), np.asarray(pre)]).ravel()  # position + 1, 0 where absent
        return b.index_array(found[found > 0] - 1)

    def zero(self, layer: int, head: int, where) -> None:
        """``S[i, j] = 0`` for the pairs located by :meth:`locate`."""
        self.values[head][layer, where] = 0

    def read(self, layer, head, k: Active, out) -> int:
        """``out += S @ k``."""
        g = self.graphs[head]
        return self.backend.push(g.indptr, g.indices, self.values[head][layer], k.ids, k.values, out)

    def write(self, layer, head, pre: Active, k: Active) -> int:
        """``S += outer(pre, k)`` on the synapses of the graph."""
        g = self.graphs[head]
        return self.backend.graph_outer_add(g.indptr, g.indices, self.values[head][layer], k.ids, k.values,
                                            pre.dense)

    def write_steps(self, layer, head, pre: Active, k: Active) -> int:
        """``S += sum_m outer(pre(m), k(m))`` on the synapses of the graph, over the K steps of ``pre`` and ``k``."""
        g = self.graphs[head]
        return self.backend.graph_product_add(g.indptr, g.indices, self.values[head][layer], k.ids, k.values,
                                              pre.dense)

    def matrix(self, layer: int, head: int) -> sp.csr_array:
        """``S`` of one layer and head, (n_pre, N), as a scipy CSR array."""
        g, b = self.graphs[head], self.backend
        data = b.to_numpy(self.values[head][layer])
        return sp.csr_array(sp.csr_array((data, b.to_numpy(g.indices), b.to_numpy(g.indptr)), shape=g.shape).T)

    def project(self, layer: int, head: int, M: np.ndarray) -> np.ndarray:
        return self.matrix(layer, head).T @ M

    def arrays(self) -> dict[str, np.ndarray]:
        return {f"synapses_head{h}": self.backend.to_numpy(v) for h, v in enumerate(self.values)}

    def load(self, arrays: dict[str, np.ndarray], where: str) -> None:
        for h, v in enumerate(self.values):  # every array checked before any changes
            _check_array(arrays, f"synapses_head{h}", tuple(v.shape), where)
        for h, v in enumerate(self.values):
            v[...] = self.backend.asarray(arrays[f"synapses_head{h}"], v.dtype)


def _block(index: int | None):
    """An index of the synapse arrays: one layer or head, or all of them (None)."""
    return slice(None) if index is None else index


def _check_array(arrays: dict, key: str, shape: tuple, where: str) -> None:
    if key not in arrays:
        raise StateMismatchError(f"state file '{where}': missing array '{key}'")
    if tuple(arrays[key].shape) != shape:
        raise StateMismatchError(f"state file '{where}': '{key}' has shape {tuple(arrays[key].shape)}, "
                                 f"expected {shape}")
