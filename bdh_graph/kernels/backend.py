"""The backend interface: the handful of operations a network step needs, and where they run.

A network (``bdh_graph.network``) keeps its vectors, graphs and synapses as arrays of one backend and steps
only through the methods below, so a new backend (torch sparse on CPU/GPU) is one module implementing them.

Array operations (defaults here work on host numpy arrays; a device backend overrides all of them):
``asarray``, ``index_array``, ``to_numpy``, ``zeros``, ``graph``, ``active``, ``relu``, ``rope``, ``gain``,
``all_finite``.

Message-passing kernels (each writes in place and returns its number of synaptic events; the numpy twins in
``reference.py`` define them): ``push``, ``pull``, ``rows_combine``, ``rows_dot``, ``outer_add``,
``graph_outer_add``, their sums over K steps ``product_add``, ``graph_product_add``, and the read of a layer's
synapses fused with its Hebbian write, ``graph_read_write`` and ``rows_read_write`` (one pass over the synapses),
and, where a backend has them, a whole layer in one call (``neuron_layer``, ``hub_layer``; ``fuses_layer``).
Where a graph's rows are the x-neurons of every head, one call serves all heads (:func:`row_blocks`).

Kernels know arrays only: constants of the model (LayerNorm's epsilon, RoPE's cos/sin) arrive as arguments.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp


class Graph(NamedTuple):
    """A CSR graph in a backend's arrays: row ``r`` holds the edges of neuron ``r``, columns sorted."""

    indptr: object  # int64, (rows + 1,)
    indices: object  # uint16 where the columns allow it (half the bytes per edge), else int32; (nnz,)
    data: object  # float, (nnz,)
    shape: tuple[int, int]

    @property
    def nnz(self) -> int:
        return len(self.indices)


def row_blocks(n_rows: int, parts, what: str) -> tuple[int, int]:
    """How many equal blocks of consecutive rows a graph or matrix of ``n_rows`` rows falls into, and their size.

    An output (or signal) with one row per block, shape (G, columns), serves G blocks (a network's heads: x-neuron
    ``j`` of head ``h`` is row ``h*N + j``); a 1-D one the whole graph. ``parts`` is that array, ``what`` its name.
    """
    blocks = 1 if parts.ndim == 1 else parts.shape[0]
    if blocks < 1 or n_rows % blocks:
        raise ValueError(f"{what} has {blocks} rows, which must divide the {n_rows} rows of the graph into equal "
                         "blocks")
    return blocks, n_rows // blocks


class Backend(ABC):
    """Base class of the backends; the array operations act on host numpy arrays."""

    name = "base"
    device = "cpu"  # where the arrays live

    def __init__(self, device: str = "cpu"):
        if str(device) != "cpu":
            raise ValueError(f"backend {self.name!r} runs on the CPU only, got device {str(device)!r}; "
                             "the 'torch' backend runs on CUDA")

    # -- arrays ----------------------------------------------------------------------------------------------
    def asarray(self, a, dtype) -> np.ndarray:
        """A C-contiguous array of ``a`` in ``dtype`` (a copy: the network owns it)."""
        return np.array(a, dtype=dtype, order="C", copy=True)

    def index_array(self, a) -> np.ndarray:
        """Neuron ids as this backend's int64 index array."""
        return np.ascontiguousarray(a, dtype=np.int64)

    def to_numpy(self, a) -> np.ndarray:
        return np.asarray(a)

    def zeros(self, shape, dtype) -> np.ndarray:
        return np.zeros(shape, dtype=dtype)

    def graph(self, csr: sp.csr_array, dtype) -> Graph:
        """``csr`` (sorted, duplicates summed) as a :class:`Graph` of this backend's arrays."""
        csr = sp.csr_array(csr)
        csr.sum_duplicates()
        csr.sort_indices()
        return Graph(self.asarray(csr.indptr, np.int64), self.asarray(csr.indices, self.column_dtype(csr.shape[1])),
                     self.asarray(csr.data, dtype), tuple(csr.shape))

    def column_dtype(self, n_cols: int):
        """The dtype of a graph's column indices: uint16 where ``n_cols`` allows it (a kernel streams half the
        bytes per edge), else int32."""
        return np.uint16 if n_cols <= 1 << 16 else np.int32

    def active(self, v) -> tuple[np.ndarray, np.ndarray]:
        """Ids and values of the non-zero entries of the vector ``v`` (the neurons that fire)."""
        idx = np.flatnonzero(v)
        return idx, v[idx]

    def relu(self, v) -> np.ndarray:
        return np.maximum(v, 0)

    def rope(self, v, cos, sin) -> np.ndarray:
        """``R_t v``: pairs ``(2m, 2m+1)`` of the last axis rotated by the phase whose cos/sin are given per
        neuron (a vector, or one vector per row of a matrix)."""
        rotated = np.empty_like(v)
        rotated[..., 0::2] = -v[..., 1::2]
        rotated[..., 1::2] = v[..., 0::2]
        return v * cos + rotated * sin

    def gain(self, u, eps: float):
        """``sqrt(var(u) + eps)``: the standard deviation LayerNorm (epsilon ``eps``) divides the d-vector ``u`` by;
        for a matrix, one per row."""
        return np.sqrt(np.var(u, axis=-1) + eps)

    def all_finite(self, v) -> bool:
        return bool(np.isfinite(v).all())

    def fuses_layer(self, indexed: int, dense: int) -> bool:
        """Whether a rate-mode layer runs as one call, where the largest of its kernels walks ``indexed`` edges or
        synapses through an index, or ``dense`` multiply-adds along rows: only on a backend that has the fused
        layers (Numba), and there where that call (on one thread) loses no parallel split.

        ``neuron_layer(w, x_graph, synapse_graph, sigma, scale, y_graph, E_ext, all_pre, cos, sin, N, layer_norm,
        eps, x, k, A, y)`` runs the rounds of ``NeuronWiring`` on a synapse graph (push, ReLU, RoPE,
        graph_read_write, pull, gain control, gate), ``hub_layer(u, D_x, all_neurons, rho, scale, all_hubs, D_y,
        cos, sin, N, layer_norm, eps, x, k, A, y)`` those of ``HubWiring`` (rows_dot, ReLU, RoPE, rows_read_write,
        LayerNorm, rows_dot, gate); the synapses are stored up to a lazy scale per head, ``scale`` (heads,), and
        read and written as the stores do (``network.synapses``: with ``k / scale``, the reads times
        ``scale**2``); both write the layer's vectors x, k, A and y in place and return (events, ids and values of the
        active x, k and y). The network's sequence of the kernels below is their twin, to which the tests compare
        them."""
        return False

    # -- message-passing kernels (see reference.py for the definitions) -------------------------------------
    @abstractmethod
    def push(self, indptr, indices, data, idx, val, out) -> int:
        ...

    @abstractmethod
    def pull(self, indptr, indices, data, idx, signal, out) -> int:
        ...

    @abstractmethod
    def rows_combine(self, M, idx, val, out) -> int:
        ...

    @abstractmethod
    def rows_dot(self, M, idx, vec, out) -> int:
        ...

    @abstractmethod
    def outer_add(self, M, row_idx, row_val, col_idx, col_val) -> int:
        ...

    @abstractmethod
    def graph_outer_add(self, indptr, indices, data, idx, val, col) -> int:
        ...

    @abstractmethod
    def product_add(self, M, row_idx, R, col_idx, C) -> int:
        ...

    @abstractmethod
    def graph_product_add(self, indptr, indices, data, idx, R, C) -> int:
        ...

    @abstractmethod
    def graph_read_write(self, indptr, indices, data, idx, val, pre, out) -> int:
        ...

    @abstractmethod
    def rows_read_write(self, M, idx, val, pre_idx, pre_val, out) -> int:
        ...
