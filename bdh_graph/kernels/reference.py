"""Plain numpy/scipy twins of the message-passing kernels, and the ``numpy`` backend built on them.

Each function states the operation once, in the plainest vectorised form, so that the Numba kernels
(``numba_kernels.py``) can be tested against it. Conventions shared by every kernel:

- A graph is CSR ``(indptr, indices, data)``; row ``r`` lists the out-edges (``push``) or the in-edges
  (``pull``) of neuron ``r``, column indices sorted.
- ``idx``/``val`` hold the active (non-zero) entries of a vector: neuron ids and their values.
- Outputs are written in place; every kernel returns its number of synaptic events (messages sent along
  edges, or synapse updates), defined in its docstring.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .backend import Backend


def _csr(indptr, indices, data, n_cols: int) -> sp.csr_array:
    return sp.csr_array((data, indices, indptr), shape=(len(indptr) - 1, n_cols))


def push(indptr, indices, data, idx, val, out) -> int:
    """``out[j] += sum_q val[q] * G[idx[q], j]``: active presynaptic neurons send along their out-edges.

    Events: the out-degrees of the active neurons, summed.
    """
    rows = _csr(indptr, indices, data, len(out))[idx]
    out += rows.T @ val
    return int(rows.nnz)


def pull(indptr, indices, data, idx, signal, out) -> int:
    """``out[q] = sum_i G[idx[q], i] * signal[i]``: neurons ``idx`` gather over their in-edges.

    Events: in-edges of those neurons whose source is non-zero.
    """
    rows = _csr(indptr, indices, data, len(signal))[idx]
    out[:] = rows @ signal
    return int(np.count_nonzero(signal[rows.indices]))


def rows_combine(M, idx, val, out) -> int:
    """``out += sum_q val[q] * M[idx[q], :]``: active rows send to all columns. Events: ``len(idx) * M.shape[1]``."""
    out += val @ M[idx]
    return len(idx) * M.shape[1]


def rows_dot(M, idx, vec, out) -> int:
    """``out[q] = M[idx[q], :] @ vec``. Events: ``len(idx) * len(vec)``."""
    out[:] = M[idx] @ vec
    return len(idx) * len(vec)


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
