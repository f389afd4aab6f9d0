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
erasing a layer or head) and ``zero`` (chosen synapses held at zero, a lesion); a damped model's state decays by
``gamma_h`` before every token's reads, through ``scale`` too (docs/model.md 4.7).

**Lazy scale.** A scale multiplies the whole state of a layer and head, which would touch every synapse every token.
Instead each (layer, head) keeps one number ``c`` and the stored values ``s`` with ``S = c * s``: ``scale``
multiplies ``c`` only; a read is ``c * (s @ k)``, a write ``s += outer(p, k / c)`` (the kernels are called with
``k / c``, which writes that and reads ``s @ k / c``, so the read is multiplied by ``c**2``). When ``c`` falls below
``fold_below`` (:func:`fold_threshold`) it is folded into its block (``s *= c``, ``c = 1``), before the stored values
and reads, which grow like ``1 / c`` and ``1 / c**2``, could overflow. So a token costs what its active synapses
cost (a fold every ``log(fold_below) / log(gamma)`` tokens aside), and everything that leaves the store (``matrix``,
``project``, ``arrays``) is the true ``S``.

``S`` is ``sigma`` (n+V, N) in the neuron wiring and ``rho`` (d, N) in the hub wiring (docs/model.md 4.3, 4.5).
:class:`DenseSynapses` holds every pair; :class:`GraphSynapses` only the pairs of a synapse graph (docs/model.md 4.6).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..errors import StateMismatchError
from .neurons import Active


def fold_threshold(dtype) -> float:
    """The scale below which the lazy scale of a block is folded into its stored values: the fourth root of the
    dtype's smallest normal number (float64 1.2e-77, float32 3.3e-10), so that the reads of ``k / c``, up to
    ``1 / c**2`` times the true ones, stay below the square root of the largest number."""
    return float(np.finfo(dtype).tiny) ** 0.25


class _LazyScale:
    """What both stores share: the true state is ``scales[layer, head]`` times the stored ``values`` (module doc)."""

    def __init__(self, n_layer: int, n_head: int, dtype):
        self.scales = np.ones((n_layer, n_head))  # float64 on the host whatever the values' dtype
        self.fold_below = fold_threshold(dtype)

    @property
    def n_synapses(self) -> int:
        return int(np.prod(self.values.shape))

    def reset(self) -> None:
        self.values[...] = 0
        self.scales[...] = 1

    def scale(self, factor, layer: int | None = None, head: int | None = None) -> None:
        """``S *= factor`` for every synapse, or those of one ``layer`` and/or one ``head`` (None: all); ``factor`` a
        number, or one per head (damping). Lazy: the blocks' scales change, their values only when one is folded."""
        self.scales[_block(layer), _block(head)] *= factor
        for low_layer, low_head in zip(*np.nonzero(self.scales < self.fold_below)):
            self._multiply(float(self.scales[low_layer, low_head]), int(low_layer), int(low_head))
            self.scales[low_layer, low_head] = 1

    def scales_of(self, layer: int):
        """The scale of each head of ``layer``, (heads,), as the backend's array in the values' dtype (the fused
        layers take it)."""
        return self.backend.asarray(self.scales[layer], self.values.dtype)

    def _scale(self, layer: int, head: int) -> float:
        return float(self.scales[layer, head])  # a Python float keeps the values' dtype

    def _unit(self, layer: int) -> bool:
        return bool((self.scales[layer] == 1).all())

    def _stored(self, layer: int, k: Active, head: int | None = None) -> Active:
        """``k / c``: what the stored values are read and written with, ``k`` over one ``head`` or (None) over the
        x-neurons of every head (ids ``h*N + j``)."""
        if head is not None:
            c = self._scale(layer, head)
            return k if c == 1 else Active(k.ids, k.values / c, None)
        if self._unit(layer):
            return k
        return Active(k.ids, k.values / self.scales_of(layer)[k.ids // self.N], None)

    def _true_reads(self, layer: int, out) -> None:
        """The reads ``out`` (heads, n_pre) of ``k / c`` from the stored values, times ``c**2``: the true reads."""
        if not self._unit(layer):
            out *= (self.scales_of(layer) ** 2)[:, None]

    def _loaded(self) -> None:
        self.scales[...] = 1  # a state file holds the true values


class DenseSynapses(_LazyScale):
    """Every (presynaptic, x-neuron) pair. Stored post-major, ``values[layer, head, j, i] = S[i, j]`` (up to the
    block's scale): the rows of the active x-neurons are what a layer reads and writes."""

    def __init__(self, n_layer: int, n_head: int, N: int, n_pre: int, backend, dtype):
        self.backend, self.N, self.n_pre = backend, N, n_pre
        self.values = backend.zeros((n_layer, n_head, N, n_pre), dtype)
        super().__init__(n_layer, n_head, dtype)

    def _multiply(self, factor: float, layer: int, head: int) -> None:
        self.values[layer, head] *= factor

    def locate(self, head: int, pre, post):
        """The pairs ``(pre[p], post[p])`` of ``head`` as the index arrays that :meth:`zero` takes."""
        return self.backend.index_array(post), self.backend.index_array(pre)

    def zero(self, layer: int, head: int, where) -> None:
        """``S[i, j] = 0`` for the pairs located by :meth:`locate`."""
        post, pre = where
        self.values[layer, head, post, pre] = 0

    def add(self, layer: int, head: int, post, delta) -> None:
        """``S[:, post] += delta^T`` for the x-neurons ``post`` of ``head``, ``delta`` (len(post), n_pre)."""
        self.values[layer, head, post] += delta / self._scale(layer, head)

    def read(self, layer, head, k: Active, out) -> int:
        """``out += S @ k``."""
        return self.backend.rows_combine(self.values[layer, head], k.ids, k.values * self._scale(layer, head), out)

    def read_write(self, layer, pre: Active, k: Active, out) -> int:
        """Every head: ``out[h] = S_h @ k_h``, then ``S_h += outer(pre, k_h)``, in one pass over the rows of the
        active x-neurons; ``k`` over the x-neurons of all heads (ids ``h*N + j``), ``out`` (heads, n_pre), zero."""
        rows = self.values[layer].reshape(-1, self.n_pre)  # (heads * N, n_pre), x-neuron h*N + j is row h*N + j
        k = self._stored(layer, k)
        events = self.backend.rows_read_write(rows, k.ids, k.values, pre.ids, pre.values, out)
        self._true_reads(layer, out)
        return events

    def write(self, layer, head, pre: Active, k: Active) -> int:
        """``S += outer(pre, k)``."""
        k = self._stored(layer, k, head)
        return self.backend.outer_add(self.values[layer, head], k.ids, k.values, pre.ids, pre.values)

    def write_steps(self, layer, pre: Active, k: Active) -> int:
        """Every head: ``S_h += sum_m outer(pre(m), k_h(m))`` over the K steps of ``pre`` and ``k`` (values (K, ids));
        ``k`` over the x-neurons of all heads (ids ``h*N + j``)."""
        k = self._stored(layer, k)
        rows = self.values[layer].reshape(-1, self.n_pre)  # (heads * N, n_pre), x-neuron h*N + j is row h*N + j
        return self.backend.product_add(rows, k.ids, k.values, pre.ids, pre.values)

    def matrix(self, layer: int, head: int) -> np.ndarray:
        """``S`` of one layer and head, (n_pre, N), as a numpy array."""
        S, c = self.backend.to_numpy(self.values[layer, head]).T, self._scale(layer, head)
        return S if c == 1 else S * c

    def project(self, layer: int, head: int, M: np.ndarray) -> np.ndarray:
        """``(M^T S)^T``, (N, d), for ``M`` (n_pre, d): sigma seen through the hubs, ``rho = E_ext sigma``."""
        return (self.backend.to_numpy(self.values[layer, head]) @ M) * self._scale(layer, head)

    def arrays(self) -> dict[str, np.ndarray]:
        values = self.backend.to_numpy(self.values)
        return {"synapses": values * self.scales[:, :, None, None].astype(values.dtype)}

    def load(self, arrays: dict[str, np.ndarray], where: str) -> None:
        _check_array(arrays, "synapses", tuple(self.values.shape), where)
        self.values[...] = self.backend.asarray(arrays["synapses"], self.values.dtype)
        self._loaded()


class GraphSynapses(_LazyScale):
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
        super().__init__(n_layer, n_head, dtype)

    def _head(self, head: int | None):
        """The synapses of one head (None: all) as a slice of the graph's."""
        return slice(None) if head is None else slice(self.heads[head], self.heads[head + 1])

    def _multiply(self, factor: float, layer: int, head: int) -> None:
        self.values[layer, self._head(head)] *= factor

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
        return self.backend.push(g.indptr, g.indices, self.values[layer], k.ids + head * self.N,
                                 k.values * self._scale(layer, head), out)

    def read_write(self, layer, pre: Active, k: Active, out) -> int:
        """Every head: ``out[h] = S_h @ k_h``, then ``S_h += outer(pre, k_h)``, in one pass over the synapses of
        the active x-neurons; ``k`` over the x-neurons of all heads (ids ``h*N + j``), ``out`` (heads, n_pre), zero."""
        g, k = self.graph, self._stored(layer, k)
        events = self.backend.graph_read_write(g.indptr, g.indices, self.values[layer], k.ids, k.values, pre.dense,
                                               out)
        self._true_reads(layer, out)
        return events

    def write(self, layer, head, pre: Active, k: Active) -> int:
        """``S += outer(pre, k)`` on the synapses of the graph."""
        g, k = self.graph, self._stored(layer, k, head)
        return self.backend.graph_outer_add(g.indptr, g.indices, self.values[layer], k.ids + head * self.N,
                                            k.values, pre.dense)

    def write_steps(self, layer, pre: Active, k: Active) -> int:
        """Every head: ``S_h += sum_m outer(pre(m), k_h(m))`` on the synapses of the graph, over the K steps of
        ``pre`` and ``k``; ``k`` over the x-neurons of all heads (ids ``h*N + j``)."""
        g, k = self.graph, self._stored(layer, k)
        return self.backend.graph_product_add(g.indptr, g.indices, self.values[layer], k.ids, k.values, pre.dense)

    def matrix(self, layer: int, head: int) -> sp.csr_array:
        """``S`` of one layer and head, (n_pre, N), as a scipy CSR array."""
        g, b, part = self.graph, self.backend, self._head(head)
        indptr = b.to_numpy(g.indptr)[head * self.N:(head + 1) * self.N + 1] - self.heads[head]
        values = b.to_numpy(self.values[layer, part]) * self._scale(layer, head)
        block = sp.csr_array((values, b.to_numpy(g.indices[part]), indptr),
                             shape=(self.N, self.n_pre))
        return sp.csr_array(block.T)

    def project(self, layer: int, head: int, M: np.ndarray) -> np.ndarray:
        return self.matrix(layer, head).T @ M

    def arrays(self) -> dict[str, np.ndarray]:
        """One array per head, ``synapses_head<h>`` (layers, the head's synapses in the graph's order)."""
        n_head = len(self.heads) - 1
        values = self.backend.to_numpy(self.values)
        scales = self.scales.astype(values.dtype)
        return {f"synapses_head{h}": values[:, self._head(h)] * scales[:, h, None] for h in range(n_head)}

    def load(self, arrays: dict[str, np.ndarray], where: str) -> None:
        n_head = len(self.heads) - 1
        for h in range(n_head):  # every array checked before any changes
            _check_array(arrays, f"synapses_head{h}", (self.values.shape[0], self.heads[h + 1] - self.heads[h]), where)
        for h in range(n_head):
            self.values[:, self._head(h)] = self.backend.asarray(arrays[f"synapses_head{h}"], self.values.dtype)
        self._loaded()


def _block(index: int | None):
    """An index of the synapse arrays: one layer or head, or all of them (None)."""
    return slice(None) if index is None else index


def _check_array(arrays: dict, key: str, shape: tuple, where: str) -> None:
    if key not in arrays:
        raise StateMismatchError(f"state file '{where}': missing array '{key}'")
    if tuple(arrays[key].shape) != shape:
        raise StateMismatchError(f"state file '{where}': '{key}' has shape {tuple(arrays[key].shape)}, "
                                 f"expected {shape}")
