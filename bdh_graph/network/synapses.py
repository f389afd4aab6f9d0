"""Hebbian synapses between presynaptic neurons (or hubs) and the x-neurons of each head, one set per layer.

Per layer and head, with ``k = R_t x_head`` the rotated activity of the head's x-neurons (the postsynaptic side)
and ``p`` the presynaptic activity (the trace ``w`` in the neuron wiring, the hub vector ``u`` in the hub
wiring)::

    read : A = S @ k          # before the write: active x-neurons send along their synapses
    write: S += outer(p, k)   # local Hebbian rule: only active pre x active post synapses change

Both are driven by the active x-neurons ``k``; the presynaptic side is ``pre``, both ``neurons.Active``. In rate
mode the read and the write of a layer are one pass over the synapses of every head (``read_write``: each synapse
is read, then written, so every read still finds the state before the write). In spike mode the read comes first
(``read``, per head) and the write is the sum over the K micro-steps of a round, ``S += sum_m outer(p(m), k(m))``,
one matrix product for every head (``write_steps``). Experiments act on the state between reads: ``scale`` (forgetting,
erasing a layer or head) and ``zero`` (chosen synapses held at zero, a lesion).

``S`` is ``sigma`` (n+V, N) in the neuron wiring and ``rho`` (d, N) in the hub wiring (docs/model.md 4.3, 4.5).
:class:`DenseSynapses` holds every pair; :class:`GraphSynapses` only the pairs of a synapse graph (docs/model.md 4.6).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..errors import StateMismatchError
from .neurons import Active


class DenseSynapses:
    """Every (presynaptic, x-neuron) pair. Stored post-major, ``values[layer, head, j, i] = S[i, j]``: the rows of
    the active x-neurons are what a layer reads and writes."""

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

    def read_write(self, layer, pre: Active, k: Active, out) -> int:
        """Every head: ``out[h] += S_h @ k_h``, then ``S_h += outer(pre, k_h)``, in one pass over the rows of the
        active x-neurons; ``k`` over the x-neurons of all heads (ids ``h*N + j``), ``out`` (heads, n_pre)."""
        rows = self.values[layer].reshape(-1, self.n_pre)  # (heads * N, n_pre), x-neuron h*N + j is row h*N + j
        return self.backend.rows_read_write(rows, k.ids, k.values, pre.ids, pre.values, out)

    def write(self, layer, head, pre: Active, k: Active) -> int:
        """``S += outer(pre, k)``."""
        return self.backend.outer_add(self.values[layer, head], k.ids, k.values, pre.ids, pre.values)

    def write_steps(self, layer, pre: Active, k: Active) -> int:
        """Every head: ``S_h += sum_m outer(pre(m), k_h(m))`` over the K steps of ``pre`` and ``k`` (values (K, ids));
        ``k`` over the x-neurons of all heads (ids ``h*N + j``)."""
        rows = self.values[layer].reshape(-1, self.n_pre)  # (heads * N, n_pre), x-neuron h*N + j is row h*N + j
        return self.backend.product_add(rows, k.ids, k.values, pre.ids, pre.values)

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

    One CSR graph, x-neuron-major, holds every head: row ``h*N + j`` lists the presynaptic neurons of x-neuron
    ``j`` of head ``h``, so the synapses of a head are one contiguous range of it (``heads[h]`` to
    ``heads[h + 1]``) and one kernel call reads and writes a whole layer. The values of all layers sit in one
    array, ``values[layer, p]`` for the p-th synapse of the graph.
    """

    def __init__(self, pattern, n_layer: int, n_head: int, N: int, backend, dtype):
        pattern = sp.csr_array(pattern)
        self.backend, self.N, self.n_pre = backend, N, pattern.shape[0]
        graph = sp.csr_array(pattern.T)
        graph.data = np.ones_like(graph.data)
        self.graph = backend.graph(graph, dtype)
        self.heads = [int(p) for p in backend.to_numpy(self.graph.indptr)[np.arange(n_head + 1) * N]]
        self.values = backend.zeros((n_layer, self.graph.nnz), dtype)

    @property
    def n_synapses(self) -> int:
        return int(np.prod(self.values.shape))

    def _head(self, head: int | None):
        """The synapses of one head (None: all) as a slice of the graph's."""
        return slice(None) if head is None else slice(self.heads[head], self.heads[head + 1])

    def reset(self) -> None:
        self.values[...] = 0

    def scale(self, factor: float, layer: int | None = None, head: int | None = None) -> None:
        """``S *= factor`` for every synapse, or those of one ``layer`` and/or one ``head`` (None: all)."""
        self.values[_block(layer), self._head(head)] *= factor

    def locate(self, head: int, pre, post):
        """The positions in the graph of the pairs ``(pre[p], post[p])`` of ``head`` that are synapses (the others do
        not exist, so they are zero already), as the index array that :meth:`zero` takes."""
        g, b = self.graph, self.backend
        rows = sp.csr_array((np.arange(1, g.nnz + 1), b.to_numpy(g.indices), b.to_numpy(g.indptr)), shape=g.shape)
        found = np.asarray(rows[head * self.N + np.asarray(post), np.asarray(pre)]).ravel()  # position + 1, or 0
        return b.index_array(found[found > 0] - 1)

    def zero(self, layer: int, head: int, where) -> None:
        """``S[i, j] = 0`` for the pairs located by :meth:`locate`."""
        self.values[layer, where] = 0

    def read(self, layer, head, k: Active, out) -> int:
        """``out += S @ k`` for one head (``k`` over its x-neurons)."""
        g = self.graph
        return self.backend.push(g.indptr, g.indices, self.values[layer], k.ids + head * self.N, k.values, out)

    def read_write(self, layer, pre: Active, k: Active, out) -> int:
        """Every head: ``out[h] += S_h @ k_h``, then ``S_h += outer(pre, k_h)``, in one pass over the synapses of
        the active x-neurons; ``k`` over the x-neurons of all heads (ids ``h*N + j``), ``out`` (heads, n_pre)."""
        g = self.graph
        return self.backend.graph_read_write(g.indptr, g.indices, self.values[layer], k.ids, k.values, pre.dense,
                                             out)

    def write(self, layer, head, pre: Active, k: Active) -> int:
        """``S += outer(pre, k)`` on the synapses of the graph."""
        g = self.graph
        return self.backend.graph_outer_add(g.indptr, g.indices, self.values[layer], k.ids + head * self.N,
                                            k.values, pre.dense)

    def write_steps(self, layer, pre: Active, k: Active) -> int:
        """Every head: ``S_h += sum_m outer(pre(m), k_h(m))`` on the synapses of the graph, over the K steps of
        ``pre`` and ``k``; ``k`` over the x-neurons of all heads (ids ``h*N + j``)."""
        g = self.graph
        return self.backend.graph_product_add(g.indptr, g.indices, self.values[layer], k.ids, k.values, pre.dense)

    def matrix(self, layer: int, head: int) -> sp.csr_array:
        """``S`` of one layer and head, (n_pre, N), as a scipy CSR array."""
        g, b, part = self.graph, self.backend, self._head(head)
        indptr = b.to_numpy(g.indptr)[head * self.N:(head + 1) * self.N + 1] - self.heads[head]
        block = sp.csr_array((b.to_numpy(self.values[layer, part]), b.to_numpy(g.indices[part]), indptr),
                             shape=(self.N, self.n_pre))
        return sp.csr_array(block.T)

    def project(self, layer: int, head: int, M: np.ndarray) -> np.ndarray:
        return self.matrix(layer, head).T @ M

    def arrays(self) -> dict[str, np.ndarray]:
        """One array per head, ``synapses_head<h>`` (layers, the head's synapses in the graph's order)."""
        n_head = len(self.heads) - 1
        return {f"synapses_head{h}": self.backend.to_numpy(self.values[:, self._head(h)]) for h in range(n_head)}

    def load(self, arrays: dict[str, np.ndarray], where: str) -> None:
        n_head = len(self.heads) - 1
        for h in range(n_head):  # every array checked before any changes
            _check_array(arrays, f"synapses_head{h}", (self.values.shape[0], self.heads[h + 1] - self.heads[h]), where)
        for h in range(n_head):
            self.values[:, self._head(h)] = self.backend.asarray(arrays[f"synapses_head{h}"], self.values.dtype)


def _block(index: int | None):
    """An index of the synapse arrays: one layer or head, or all of them (None)."""
    return slice(None) if index is None else index


def _check_array(arrays: dict, key: str, shape: tuple, where: str) -> None:
    if key not in arrays:
        raise StateMismatchError(f"state file '{where}': missing array '{key}'")
    if tuple(arrays[key].shape) != shape:
        raise StateMismatchError(f"state file '{where}': '{key}' has shape {tuple(arrays[key].shape)}, "
                                 f"expected {shape}")
