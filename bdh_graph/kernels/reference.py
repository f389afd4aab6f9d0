"""Plain numpy/scipy twins of the message-passing kernels, and the ``numpy`` backend built on them.

Each function states the operation once, in the plainest vectorised form, so that the Numba kernels
(``numba_kernels.py``) can be tested against it. Conventions shared by every kernel:

- A graph is CSR ``(indptr, indices, data)``; row ``r`` lists the out-edges (``push``) or the in-edges
  (``pull``) of neuron ``r``, column indices sorted.
- ``idx``/``val`` hold the active (non-zero) entries of a vector: neuron ids and their values, ids sorted.
- Heads: where an output or a signal has one row per block of a graph's rows, shape (G, columns), the rows fall
  into G equal blocks (``backend.row_blocks``), so that one call serves every head of a layer.
- Outputs are written in place; every kernel returns its number of synaptic events (messages sent along
  edges, or synapse updates), defined in its docstring.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .backend import Backend, row_blocks


def _csr(indptr, indices, data, n_cols: int) -> sp.csr_array:
    return sp.csr_array((data, indices, indptr), shape=(len(indptr) - 1, n_cols))


def push(indptr, indices, data, idx, val, out) -> int:
    """``out[j] += sum_q val[q] * G[idx[q], j]``: active presynaptic neurons send along their out-edges.

    With ``out`` of shape (G, columns) the graph's rows fall into G equal blocks (:func:`row_blocks`), and a row
    of block ``b`` sends to ``out[b]``. Events: the out-degrees of the active neurons, summed.
    """
    blocks, size = row_blocks(len(indptr) - 1, out, "push: out")
    rows = _csr(indptr, indices, data, out.shape[-1])[idx]
    block = np.asarray(idx) // size
    for b, out_b in enumerate(out.reshape(blocks, -1)):
        out_b += rows[block == b].T @ val[block == b]
    return int(rows.nnz)


def pull(indptr, indices, data, idx, signal, out) -> int:
    """``out[q] = sum_i G[idx[q], i] * signal[i]``: neurons ``idx`` gather over their in-edges.

    With ``signal`` of shape (G, columns) the graph's rows fall into G equal blocks (:func:`row_blocks`), and a
    row of block ``b`` gathers from ``signal[b]``. Events: in-edges of those neurons whose source is non-zero.
    """
    blocks, size = row_blocks(len(indptr) - 1, signal, "pull: signal")
    rows = _csr(indptr, indices, data, signal.shape[-1])[idx]
    block = np.asarray(idx) // size
    events = 0
    for b, signal_b in enumerate(signal.reshape(blocks, -1)):
        rows_b = rows[block == b]
        out[block == b] = rows_b @ signal_b
        events += np.count_nonzero(signal_b[rows_b.indices])
    return int(events)


def rows_combine(M, idx, val, out) -> int:
    """``out += sum_q val[q] * M[idx[q], :]``: active rows send to all columns; ``val`` (G, len(idx)) and ``out``
    (G, columns) combine G vectors at once. Events: the non-zero values times ``M.shape[1]``."""
    out += val @ M[idx]
    return int(np.count_nonzero(val)) * M.shape[1]


def rows_dot(M, idx, vec, out) -> int:
    """``out[q] = M[idx[q], :] @ vec``. With ``vec`` of shape (G, columns) the rows of ``M`` fall into G equal
    blocks (:func:`row_blocks`) and a row of block ``b`` meets ``vec[b]``. Events: ``len(idx) * M.shape[1]``."""
    blocks, size = row_blocks(M.shape[0], vec, "rows_dot: vec")
    out[:] = np.einsum("qc,qc->q", M[idx], vec.reshape(blocks, -1)[np.asarray(idx) // size])
    return len(idx) * M.shape[1]


def outer_add(M, row_idx, row_val, col_idx, col_val) -> int:
    """Hebbian write on a dense synapse matrix: ``M[r, c] += row_val * col_val`` for active rows x columns.

    Events: ``len(row_idx) * len(col_idx)`` synapse updates.
    """
    M[np.ix_(row_idx, col_idx)] += np.outer(row_val, col_val)
    return len(row_idx) * len(col_idx)


def graph_outer_add(indptr, indices, data, idx, val, col) -> int:
    """Hebbian write on the synapses of a graph: ``data[p] += val[q] * col[indices[p]]`` for the rows ``idx[q]``.

    Only synapses whose column is active (``col != 0``) change. Events: those updates.
    """
    starts, ends = indptr[idx], indptr[np.asarray(idx) + 1]
    positions = np.concatenate([np.arange(s, e) for s, e in zip(starts, ends)] + [np.zeros(0, np.int64)])
    pre = np.repeat(val, ends - starts)
    post = col[indices[positions]]
    data[positions] += pre * post
    return int(np.count_nonzero(post))


def product_add(M, row_idx, R, col_idx, C) -> int:
    """Sum of K outer products on a dense synapse matrix: ``M[row_idx[q], col_idx[c]] += sum_m R[m, q] * C[m, c]``,
    i.e. ``M[rows, cols] += R^T C`` for ``R`` (K, rows) and ``C`` (K, cols); ``outer_add`` is the case K = 1.

    Events: the updates of the K outer products, ``sum_m nnz(R[m]) * nnz(C[m])``.
    """
    M[np.ix_(row_idx, col_idx)] += R.T @ C
    return int(np.count_nonzero(R, axis=1) @ np.count_nonzero(C, axis=1))


def graph_product_add(indptr, indices, data, idx, R, C) -> int:
    """Sum of K outer products on the synapses of a graph: ``data[p] += sum_m R[m, q] * C[m, indices[p]]`` for
    the rows ``idx[q]``, with ``R`` (K, len(idx)) and ``C`` (K, columns); ``graph_outer_add`` is the case K = 1.

    Events: the updates of the K outer products, pairs (synapse, m) with ``R[m, q] != 0`` and ``C[m, column] != 0``.
    """
    starts, ends = indptr[idx], indptr[np.asarray(idx) + 1]
    positions = np.concatenate([np.arange(s, e) for s, e in zip(starts, ends)] + [np.zeros(0, np.int64)])
    post = np.repeat(R, ends - starts, axis=1)  # K, synapses
    pre = C[:, indices[positions]]
    data[positions] += (post * pre).sum(0)
    return int(np.count_nonzero((post != 0) & (pre != 0)))


def graph_read_write(indptr, indices, data, idx, val, pre, out) -> int:
    """The read and the Hebbian write of the synapses of a graph in one pass: each synapse is read, then written.

    The graph is post-major (row ``r``: the synapses of postsynaptic neuron ``r``, columns presynaptic), ``idx``/
    ``val`` the active postsynaptic neurons, ``pre`` the presynaptic activity (dense). Read (``push``):
    ``out[i] += sum_q val[q] * S[idx[q], i]``, with ``out`` (G, presynaptic) for G blocks of rows (the heads);
    then write (``graph_outer_add``): ``S[idx[q], i] += val[q] * pre[i]``. Events: those of both.
    """
    row_blocks(len(indptr) - 1, out, "graph_read_write: out")
    events = push(indptr, indices, data, idx, val, out)
    return events + graph_outer_add(indptr, indices, data, idx, val, pre)


def rows_read_write(M, idx, val, pre_idx, pre_val, out) -> int:
    """The read and the Hebbian write of dense synapses in one pass over the active rows: each row is read, then
    written.

    ``M`` is post-major (row ``r``: the synapses of postsynaptic neuron ``r``), its rows in G equal blocks (the
    heads) for ``out`` (G, presynaptic). Read: ``out[b(r)] += val[q] * M[r]`` for ``r = idx[q]``; then write
    (``outer_add``): ``M[idx[q], pre_idx[e]] += val[q] * pre_val[e]``. Events: ``len(idx) * M.shape[1]`` reads
    plus ``len(idx) * len(pre_idx)`` updates.
    """
    blocks, size = row_blocks(M.shape[0], out, "rows_read_write: out")
    block = np.asarray(idx) // size
    for b in range(blocks):
        out[b] += val[block == b] @ M[idx[block == b]]
    return len(idx) * M.shape[1] + outer_add(M, idx, val, pre_idx, pre_val)


class NumpyBackend(Backend):
    """Runs the network with the plain numpy twins: slow, simple, the reference for every other backend."""

    name = "numpy"
    push = staticmethod(push)
    pull = staticmethod(pull)
    rows_combine = staticmethod(rows_combine)
    rows_dot = staticmethod(rows_dot)
    outer_add = staticmethod(outer_add)
    graph_outer_add = staticmethod(graph_outer_add)
    product_add = staticmethod(product_add)
    graph_product_add = staticmethod(graph_product_add)
    graph_read_write = staticmethod(graph_read_write)
    rows_read_write = staticmethod(rows_read_write)
