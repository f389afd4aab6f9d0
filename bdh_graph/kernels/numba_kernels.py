"""Event-driven Numba kernels (the ``numba`` backend); ``reference.py`` defines each operation and its events.

Only active neurons do work: ``push`` walks the out-edges of the active presynaptic neurons, ``pull`` the
in-edges of the gated postsynaptic ones, and the Hebbian writes touch active rows x active columns only (the sums
over K steps, ``product_add`` and ``graph_product_add``, those active at the same step).

Each kernel is a block function (``_*_block``) over a range ``[lo, hi)`` and a driver that runs it once
(small work: a parallel launch costs more than it saves) or on one block per thread. The blocks never share
an output entry (``push`` and ``rows_combine`` split the output range, the others the items), so results do
not depend on the threads. Compiled code is cached on disk; floats are the arrays' own dtype.
"""
from __future__ import annotations

import os

import numba
import numpy as np
from numba import njit, prange

from .backend import Backend

# Numba's default OpenMP threading layer and torch's own OpenMP runtime in one process (validate steps the tensor
# model beside the network) leave threads spinning against each other: on a loaded 2-core machine torch ran tens of
# times slower once a Numba kernel had run, and the released-size hub step 1.6x slower. The work-queue layer has no
# such threads. A layer chosen with NUMBA_THREADING_LAYER is kept.
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"

# Reassociation lets the inner loops vectorise; nnan/ninf are left out so non-finite values propagate.
FASTMATH = {"reassoc", "contract"}
JIT = dict(cache=True, fastmath=FASTMATH, nogil=True)
# Below this many multiply-adds (about a millisecond on one core) a kernel runs on one thread: waking the
# thread pool costs tens of microseconds on an idle machine and milliseconds on a loaded one.
PARALLEL_MIN_WORK = 1 << 21


@njit(**JIT)
def _push_block(indptr, indices, data, idx, val, out, lo, hi):
    for q in range(idx.shape[0]):
        start, end = indptr[idx[q]], indptr[idx[q] + 1]
        p = start + np.searchsorted(indices[start:end], lo)
        v = val[q]
        while p < end and indices[p] < hi:
            out[indices[p]] += v * data[p]
            p += 1


@njit(parallel=True, **JIT)
def _push(indptr, indices, data, idx, val, out, n_blocks):
    n = out.shape[0]
    if n_blocks == 1:
        _push_block(indptr, indices, data, idx, val, out, 0, n)
    else:
        for b in prange(n_blocks):
            _push_block(indptr, indices, data, idx, val, out, b * n // n_blocks, (b + 1) * n // n_blocks)
    events = 0
    for q in range(idx.shape[0]):
        events += indptr[idx[q] + 1] - indptr[idx[q]]
    return events


@njit(**JIT)
def _pull_block(indptr, indices, data, idx, signal, out, lo, hi):
    events = 0
    for q in range(lo, hi):
        s = 0.0
        for p in range(indptr[idx[q]], indptr[idx[q] + 1]):
            x = signal[indices[p]]
            if x != 0:
                s += data[p] * x
                events += 1
        out[q] = s
    return events


@njit(parallel=True, **JIT)
def _pull(indptr, indices, data, idx, signal, out, n_blocks):
    n = idx.shape[0]
    if n_blocks == 1:
        return _pull_block(indptr, indices, data, idx, signal, out, 0, n)
    events = 0
    for b in prange(n_blocks):
        events += _pull_block(indptr, indices, data, idx, signal, out, b * n // n_blocks, (b + 1) * n // n_blocks)
    return events


@njit(**JIT)
def _rows_combine_block(M, idx, val, out, lo, hi):
    for q in range(idx.shape[0]):
        row = M[idx[q]]
        v = val[q]
        for c in range(lo, hi):
            out[c] += v * row[c]


@njit(parallel=True, **JIT)
def _rows_combine(M, idx, val, out, n_blocks):
    n = M.shape[1]
    if n_blocks == 1:
        _rows_combine_block(M, idx, val, out, 0, n)
    else:
        for b in prange(n_blocks):
            _rows_combine_block(M, idx, val, out, b * n // n_blocks, (b + 1) * n // n_blocks)
    return idx.shape[0] * n


@njit(**JIT)
def _rows_dot_block(M, idx, vec, out, lo, hi):
    for q in range(lo, hi):
        row = M[idx[q]]
        s = 0.0
        for c in range(vec.shape[0]):
            s += row[c] * vec[c]
        out[q] = s


@njit(parallel=True, **JIT)
def _rows_dot(M, idx, vec, out, n_blocks):
    n = idx.shape[0]
    if n_blocks == 1:
        _rows_dot_block(M, idx, vec, out, 0, n)
    else:
        for b in prange(n_blocks):
            _rows_dot_block(M, idx, vec, out, b * n // n_blocks, (b + 1) * n // n_blocks)
    return n * vec.shape[0]


@njit(**JIT)
def _outer_add_block(M, row_idx, row_val, col_idx, col_val, lo, hi):
    for q in range(lo, hi):
        row = M[row_idx[q]]
        v = row_val[q]
        for c in range(col_idx.shape[0]):
            row[col_idx[c]] += v * col_val[c]


@njit(parallel=True, **JIT)
def _outer_add(M, row_idx, row_val, col_idx, col_val, n_blocks):
    n = row_idx.shape[0]
    if n_blocks == 1:
        _outer_add_block(M, row_idx, row_val, col_idx, col_val, 0, n)
    else:
        for b in prange(n_blocks):
            _outer_add_block(M, row_idx, row_val, col_idx, col_val, b * n // n_blocks, (b + 1) * n // n_blocks)
    return n * col_idx.shape[0]


@njit(**JIT)
def _graph_outer_add_block(indptr, indices, data, idx, val, col, lo, hi):
    events = 0
    for q in range(lo, hi):
        v = val[q]
        for p in range(indptr[idx[q]], indptr[idx[q] + 1]):
            c = col[indices[p]]
            if c != 0:
                data[p] += v * c
                events += 1
    return events


@njit(parallel=True, **JIT)
def _graph_outer_add(indptr, indices, data, idx, val, col, n_blocks):
    n = idx.shape[0]
    if n_blocks == 1:
        return _graph_outer_add_block(indptr, indices, data, idx, val, col, 0, n)
    events = 0
    for b in prange(n_blocks):
        events += _graph_outer_add_block(indptr, indices, data, idx, val, col,
                                         b * n // n_blocks, (b + 1) * n // n_blocks)
    return events


@njit(**JIT)
def _product_add_block(M, row_idx, R, col_ids, col_vals, col_counts, lo, hi):
    for q in range(lo, hi):
        row = M[row_idx[q]]
        for m in range(R.shape[0]):
            r = R[m, q]
            if r != 0:
                for e in range(col_counts[m]):
                    row[col_ids[m, e]] += r * col_vals[m, e]


@njit(**JIT)
def _columns_per_step(col_idx, C):
    """The columns active at each step (ids, values, how many), so that the work is the updates themselves."""
    K, n_cols = C.shape
    col_ids = np.empty((K, n_cols), np.int64)
    col_vals = np.empty((K, n_cols), C.dtype)
    col_counts = np.zeros(K, np.int64)
    for m in range(K):
        for c in range(n_cols):
            if C[m, c] != 0:
                col_ids[m, col_counts[m]] = col_idx[c]
                col_vals[m, col_counts[m]] = C[m, c]
                col_counts[m] += 1
    return col_ids, col_vals, col_counts


@njit(**JIT)
def _step_updates(R, col_counts):
    events = 0
    for m in range(R.shape[0]):
        rows = 0
        for q in range(R.shape[1]):
            if R[m, q] != 0:
                rows += 1
        events += rows * col_counts[m]
    return events


# Array allocations stay out of the parallel drivers: there Numba would run them on the thread pool at every call.
@njit(parallel=True, **JIT)
def _product_add(M, row_idx, R, col_ids, col_vals, col_counts, n_blocks):
    n = row_idx.shape[0]
    if n_blocks == 1:
        _product_add_block(M, row_idx, R, col_ids, col_vals, col_counts, 0, n)
    else:
        for b in prange(n_blocks):
            _product_add_block(M, row_idx, R, col_ids, col_vals, col_counts, b * n // n_blocks,
                               (b + 1) * n // n_blocks)


@njit(**JIT)
def _graph_product_add_block(indptr, indices, data, idx, R, C, lo, hi):
    events = 0
    for q in range(lo, hi):
        start, end = indptr[idx[q]], indptr[idx[q] + 1]
        for m in range(R.shape[0]):
            r = R[m, q]
            if r != 0:
                col = C[m]
                for p in range(start, end):
                    c = col[indices[p]]
                    if c != 0:
                        data[p] += r * c
                        events += 1
    return events


@njit(parallel=True, **JIT)
def _graph_product_add(indptr, indices, data, idx, R, C, n_blocks):
    n = idx.shape[0]
    if n_blocks == 1:
        return _graph_product_add_block(indptr, indices, data, idx, R, C, 0, n)
    events = 0
    for b in prange(n_blocks):
        events += _graph_product_add_block(indptr, indices, data, idx, R, C, b * n // n_blocks,
                                           (b + 1) * n // n_blocks)
    return events


def _blocks(work: float, size: int) -> int:
    """One block per thread for large work, else one block (no parallel launch)."""
    if work < PARALLEL_MIN_WORK:
        return 1
    return max(1, min(size, numba.get_num_threads()))


def _mean_degree(indptr) -> float:
    return (indptr[-1] - indptr[0]) / max(1, len(indptr) - 1)


class NumbaBackend(Backend):
    """Host numpy arrays, kernels compiled by Numba, run on Numba's threads (``numba.set_num_threads``)."""

    name = "numba"

    def push(self, indptr, indices, data, idx, val, out) -> int:
        n_blocks = _blocks(len(idx) * _mean_degree(indptr), len(out))
        return int(_push(indptr, indices, data, idx, val, out, n_blocks))

    def pull(self, indptr, indices, data, idx, signal, out) -> int:
        n_blocks = _blocks(len(idx) * _mean_degree(indptr), len(idx))
        return int(_pull(indptr, indices, data, idx, signal, out, n_blocks))

    def rows_combine(self, M, idx, val, out) -> int:
        return int(_rows_combine(M, idx, val, out, _blocks(len(idx) * M.shape[1], M.shape[1])))

    def rows_dot(self, M, idx, vec, out) -> int:
        return int(_rows_dot(M, idx, vec, out, _blocks(len(idx) * len(vec), len(idx))))

    def outer_add(self, M, row_idx, row_val, col_idx, col_val) -> int:
        n_blocks = _blocks(len(row_idx) * len(col_idx), len(row_idx))
        return int(_outer_add(M, row_idx, row_val, col_idx, col_val, n_blocks))

    def graph_outer_add(self, indptr, indices, data, idx, val, col) -> int:
        n_blocks = _blocks(len(idx) * _mean_degree(indptr), len(idx))
        return int(_graph_outer_add(indptr, indices, data, idx, val, col, n_blocks))

    # The K steps of a sum are sparse (a spike volley fires a fraction of its neurons per step): their updates
    # cost about one dense outer product, which sets the work estimate.
    def product_add(self, M, row_idx, R, col_idx, C) -> int:
        n_blocks = _blocks(len(row_idx) * len(col_idx), len(row_idx))
        col_ids, col_vals, col_counts = _columns_per_step(col_idx, C)
        _product_add(M, row_idx, R, col_ids, col_vals, col_counts, n_blocks)
        return int(_step_updates(R, col_counts))

    def graph_product_add(self, indptr, indices, data, idx, R, C) -> int:
        n_blocks = _blocks(len(idx) * _mean_degree(indptr), len(idx))
        return int(_graph_product_add(indptr, indices, data, idx, R, C, n_blocks))
