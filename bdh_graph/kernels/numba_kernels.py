"""Event-driven Numba kernels (the ``numba`` backend); ``reference.py`` defines each operation and its events.

Only active neurons do work: ``push`` walks the out-edges of the active presynaptic neurons, ``pull`` the
in-edges of the gated postsynaptic ones, and the Hebbian writes touch active rows x active columns only (the sums
over K steps, ``product_add`` and ``graph_product_add``, those active at the same step). The fused read-writes
(``graph_read_write``, ``rows_read_write``) walk the synapses of the active x-neurons once: each synapse value is
loaded, sent to its read neuron, updated by the Hebbian rule and stored, where a read and a write apart would load
it twice. The inner loops over edges and synapses run without branches on the data (an event is counted by adding
a comparison, and a silent neuron adds zero), so that they stream.

A token's graphs and synapses do not stay in the caches from one layer's walk to the next, and the rows of the
active neurons lie far apart, so each row would begin with a cache miss that the hardware does not foresee: the
walks that gain from it (the gate's ``pull`` over G_y, the hub wiring's ``rows_read_write`` over rho) ask for the
rows ``AHEAD`` active neurons further on while they work on this one (``_prefetch``). In the other walks it did
not pay (BENCHMARKS.md, issue 16).

A rate-mode layer runs as one compiled call, ``_neuron_layer`` for the neuron wiring on a synapse graph (the pruned
network: the block functions of ``push``, ``graph_read_write``, ``pull`` and ``rows_combine``) and ``_hub_layer``
for the hub wiring (``rows_dot``, ``rows_read_write``, ``rows_dot``), with the active sets, ReLU, RoPE, gains and
the gate between them, so that no Python runs inside a layer. It runs on one thread, so it serves a layer only
where none of its kernels would split over threads (``fuses_layer``).

Each kernel is a block function (``_*_block``) over a range ``[lo, hi)`` and a parallel driver that runs it on one
block per thread; :func:`_split` cuts the range and :func:`_run` calls the block itself where there is one block
(small work: a parallel launch costs more than it saves). The blocks never share an output entry (``push`` and
``rows_combine`` split the output columns, the fused read-writes the heads, the others the items), so results do
not depend on the threads. Compiled code is cached on disk; floats are the arrays' own dtype. Outputs with one row
per head (``backend.row_blocks``) arrive here two-dimensional; a 1-D output is taken as one block.
"""
from __future__ import annotations

import os

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from .backend import Backend, row_blocks

# Numba's default OpenMP threading layer and torch's own OpenMP runtime in one process (validate steps the tensor
# model beside the network) leave threads spinning against each other (BENCHMARKS.md, issue 11); the work-queue
# layer has no such threads. A layer chosen with NUMBA_THREADING_LAYER is kept.
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"

# Reassociation lets the inner loops vectorise; nnan/ninf are left out so non-finite values propagate.
FASTMATH = {"reassoc", "contract"}
JIT = dict(cache=True, fastmath=FASTMATH, nogil=True)
# Below this many multiply-adds (about 13 ms on one core) a kernel runs on one thread: the kernels are bound by
# memory, not arithmetic, and a parallel launch of the work-queue layer is slow, so a split paid only far above the
# work of a token of the bundled model (BENCHMARKS.md, issue 16).
PARALLEL_MIN_WORK = 1 << 26
# An edge or synapse reached through an index (a gather or a scatter) costs about this many multiply-adds along
# a dense row (measured on one core, BENCHMARKS.md, issue 21).
INDEXED_COST = 6


CACHE_LINE = 64  # bytes
AHEAD = 2  # rows (the time did not depend on it, BENCHMARKS.md, issue 21)


@intrinsic
def _prefetch(typingctx, a, i):
    """Ask the CPU to bring the cache line of ``a[i]`` into the cache (LLVM's ``prefetch``: read, all levels)."""
    def codegen(context, builder, signature, args):
        array_type = signature.args[0]
        array = context.make_array(array_type)(context, builder, args[0])
        pointer = cgutils.get_item_pointer(context, builder, array_type, array, [args[1]], wraparound=False)
        byte_pointer = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        prefetch = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [byte_pointer, i32, i32, i32]), "llvm.prefetch.p0i8")
        builder.call(prefetch, [builder.bitcast(pointer, byte_pointer), ir.Constant(i32, 0), ir.Constant(i32, 3),
                                ir.Constant(i32, 1)])
        return context.get_dummy_value()
    return types.void(a, i), codegen


@njit(**JIT)
def _prefetch_range(a, start, end):
    """The cache lines of ``a[start:end]``."""
    for p in range(start, end, CACHE_LINE // a.itemsize):
        _prefetch(a, p)
    if end > start:
        _prefetch(a, end - 1)


@njit(**JIT)
def _prefetch_row(indptr, indices, data, idx, q):
    """The cache lines of CSR row ``idx[q]``, if there is one."""
    if q < idx.shape[0]:
        r = idx[q]
        _prefetch_range(indices, indptr[r], indptr[r + 1])
        _prefetch_range(data, indptr[r], indptr[r + 1])


# -- the kernels: a block function each, and its driver over the blocks of _split ---------------------------------
@njit(**JIT)
def _push_block(indptr, indices, data, idx, val, out, rows_per, lo, hi):
    whole = lo == 0 and hi == out.shape[1]
    for q in range(idx.shape[0]):
        r = idx[q]
        o = out[r // rows_per]
        start, end = indptr[r], indptr[r + 1]
        v = val[q]
        if whole:
            for p in range(start, end):
                o[indices[p]] += v * data[p]
        else:
            p = start + np.searchsorted(indices[start:end], lo)
            while p < end and indices[p] < hi:
                o[indices[p]] += v * data[p]
                p += 1


@njit(parallel=True, **JIT)
def _push(indptr, indices, data, idx, val, out, rows_per, bounds):
    for b in prange(bounds.shape[0] - 1):
        _push_block(indptr, indices, data, idx, val, out, rows_per, bounds[b], bounds[b + 1])


@njit(**JIT)
def _out_degrees(indptr, idx):
    """The edges of the rows ``idx``, summed: the events of a ``push``."""
    events = 0
    for q in range(idx.shape[0]):
        events += indptr[idx[q] + 1] - indptr[idx[q]]
    return events


@njit(**JIT)
def _pull_block(indptr, indices, data, idx, signal, out, rows_per, lo, hi):
    events = 0
    for q in range(lo, hi):
        _prefetch_row(indptr, indices, data, idx, q + AHEAD)
        r = idx[q]
        source = signal[r // rows_per]
        s = 0.0
        for p in range(indptr[r], indptr[r + 1]):
            x = source[indices[p]]
            s += data[p] * x
            events += x != 0
        out[q] = s
    return events


@njit(parallel=True, **JIT)
def _pull(indptr, indices, data, idx, signal, out, rows_per, bounds):
    events = 0
    for b in prange(bounds.shape[0] - 1):
        events += _pull_block(indptr, indices, data, idx, signal, out, rows_per, bounds[b], bounds[b + 1])
    return events


@njit(**JIT)
def _rows_combine_block(M, idx, val, out, lo, hi):
    for q in range(idx.shape[0]):
        row = M[idx[q], lo:hi]  # views from 0: a loop over [lo, hi) itself did not vectorise (3x slower)
        for g in range(val.shape[0]):
            v = val[g, q]
            if v != 0:  # a head whose read is silent here (the branch is per row, not per entry)
                o = out[g, lo:hi]
                for c in range(row.shape[0]):
                    o[c] += v * row[c]


@njit(parallel=True, **JIT)
def _rows_combine(M, idx, val, out, bounds):
    for b in prange(bounds.shape[0] - 1):
        _rows_combine_block(M, idx, val, out, bounds[b], bounds[b + 1])


@njit(**JIT)
def _nonzero(a):
    """The non-zero entries of the matrix ``a``."""
    count = 0
    for g in range(a.shape[0]):
        for q in range(a.shape[1]):
            count += a[g, q] != 0
    return count


@njit(**JIT)
def _rows_dot_block(M, idx, vec, out, rows_per, lo, hi):
    for q in range(lo, hi):
        row = M[idx[q]]
        v = vec[idx[q] // rows_per]
        s = 0.0
        for c in range(v.shape[0]):
            s += row[c] * v[c]
        out[q] = s


@njit(parallel=True, **JIT)
def _rows_dot(M, idx, vec, out, rows_per, bounds):
    for b in prange(bounds.shape[0] - 1):
        _rows_dot_block(M, idx, vec, out, rows_per, bounds[b], bounds[b + 1])


@njit(**JIT)
def _outer_add_block(M, row_idx, row_val, col_idx, col_val, lo, hi):
    for q in range(lo, hi):
        row = M[row_idx[q]]
        v = row_val[q]
        for c in range(col_idx.shape[0]):
            row[col_idx[c]] += v * col_val[c]


@njit(parallel=True, **JIT)
def _outer_add(M, row_idx, row_val, col_idx, col_val, bounds):
    for b in prange(bounds.shape[0] - 1):
        _outer_add_block(M, row_idx, row_val, col_idx, col_val, bounds[b], bounds[b + 1])


@njit(**JIT)
def _graph_outer_add_block(indptr, indices, data, idx, val, col, lo, hi):
    events = 0
    for q in range(lo, hi):
        v = val[q]
        for p in range(indptr[idx[q]], indptr[idx[q] + 1]):
            c = col[indices[p]]
            data[p] += v * c
            events += c != 0
    return events


@njit(parallel=True, **JIT)
def _graph_outer_add(indptr, indices, data, idx, val, col, bounds):
    events = 0
    for b in prange(bounds.shape[0] - 1):
        events += _graph_outer_add_block(indptr, indices, data, idx, val, col, bounds[b], bounds[b + 1])
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


# Array allocations stay out of the parallel drivers: there Numba would run them on the thread pool at every call.
@njit(parallel=True, **JIT)
def _product_add(M, row_idx, R, col_ids, col_vals, col_counts, bounds):
    for b in prange(bounds.shape[0] - 1):
        _product_add_block(M, row_idx, R, col_ids, col_vals, col_counts, bounds[b], bounds[b + 1])


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
                    data[p] += r * c
                    events += c != 0
    return events


@njit(parallel=True, **JIT)
def _graph_product_add(indptr, indices, data, idx, R, C, bounds):
    events = 0
    for b in prange(bounds.shape[0] - 1):
        events += _graph_product_add_block(indptr, indices, data, idx, R, C, bounds[b], bounds[b + 1])
    return events


@njit(**JIT)
def _graph_read_write_block(indptr, indices, data, idx, val, pre, out, rows_per, lo, hi):
    events = 0
    for q in range(lo, hi):
        r = idx[q]
        o = out[r // rows_per]
        v = val[q]
        start, end = indptr[r], indptr[r + 1]
        events += end - start
        for p in range(start, end):
            i = indices[p]
            s = data[p]
            o[i] += s * v  # the read, before the write
            c = pre[i]
            data[p] = s + v * c  # unchanged where the presynaptic neuron is silent
            events += c != 0
    return events


@njit(parallel=True, **JIT)
def _graph_read_write(indptr, indices, data, idx, val, pre, out, rows_per, bounds):
    events = 0
    for b in prange(bounds.shape[0] - 1):
        events += _graph_read_write_block(indptr, indices, data, idx, val, pre, out, rows_per, bounds[b],
                                          bounds[b + 1])
    return events


@njit(**JIT)
def _rows_read_write_block(M, idx, val, pre_idx, pre_val, out, rows_per, lo, hi):
    for q in range(lo, hi):
        if q + AHEAD < hi:
            _prefetch_range(M[idx[q + AHEAD]], 0, M.shape[1])
        row = M[idx[q]]
        o = out[idx[q] // rows_per]
        v = val[q]
        for c in range(row.shape[0]):  # the read, before the write; the row stays in the cache between them
            o[c] += v * row[c]
        for e in range(pre_idx.shape[0]):
            row[pre_idx[e]] += v * pre_val[e]


@njit(parallel=True, **JIT)
def _rows_read_write(M, idx, val, pre_idx, pre_val, out, rows_per, bounds):
    for b in prange(bounds.shape[0] - 1):
        _rows_read_write_block(M, idx, val, pre_idx, pre_val, out, rows_per, bounds[b], bounds[b + 1])


def _blocks(work: float, parts: int) -> int:
    """One block per thread for ``work`` multiply-adds from ``PARALLEL_MIN_WORK`` on, at most ``parts``; else one
    block."""
    if work < PARALLEL_MIN_WORK:
        return 1
    return max(1, min(parts, numba.get_num_threads()))


def _split(work: float, n: int, heads=None):
    """Where the blocks of the range ``[0, n)`` of a kernel's loop begin, and its end: one block, ``(0, n)``, or
    even parts, one per thread (:func:`_blocks`); with ``heads`` = (the sorted ids ``idx``, heads, rows per head)
    one block per head, the run of ``idx`` in it (a head writes to its own row of the output only)."""
    if heads is not None:
        idx, n_heads, rows_per = heads
        if _blocks(work, n_heads) == 1:
            return (0, n)
        return np.searchsorted(idx, np.arange(n_heads + 1) * rows_per)
    blocks = _blocks(work, n)
    return (0, n) if blocks == 1 else np.arange(blocks + 1) * n // blocks


def _run(block, driver, bounds, *args):
    """``block(*args, lo, hi)`` over the blocks of ``bounds`` (:func:`_split`): called here where there is one (no
    parallel launch), else by ``driver``, one block per thread. Returns the events they counted, if they count."""
    if len(bounds) == 2:
        return block(*args, bounds[0], bounds[1])
    return driver(*args, bounds)


# -- a rate-mode layer in one call ---------------------------------------------------------------------------
@njit(**JIT)
def _active(v):
    ids = np.empty(v.shape[0] + 1, np.int64)
    values = np.empty(v.shape[0] + 1, v.dtype)
    n = 0
    for i in range(v.shape[0]):  # written always, kept where non-zero: no branch on the data
        ids[n] = i
        values[n] = v[i]
        n += v[i] != 0
    return ids[:n], values[:n]


@njit(**JIT)
def _rope(v, cos, sin, N, out):
    """``out = R_t v`` for ``v`` over the neurons of every head (head ``h`` is ``v[h*N:(h+1)*N]``), as
    ``Backend.rope``: pairs ``(2m, 2m+1)`` of a head rotated by the phase whose cos/sin are given per neuron."""
    for base in range(0, v.shape[0], N):
        for m in range(0, N, 2):
            a, b = v[base + m], v[base + m + 1]
            out[base + m] = a * cos[m] + (-b) * sin[m]
            out[base + m + 1] = b * cos[m + 1] + a * sin[m + 1]


@njit(**JIT)
def _fire(x, cos, sin, N, k):
    """The x-neurons fire at ``relu(x)`` (in place; NaN kept) and read the synapses with ``k = R_t x``: the active
    ids and values of both."""
    for j in range(x.shape[0]):
        if x[j] < 0:
            x[j] = 0
    x_ids, x_vals = _active(x)
    _rope(x, cos, sin, N, k)
    k_ids, k_vals = _active(k)
    return x_ids, x_vals, k_ids, k_vals


@njit(**JIT)
def _gate(potential, x_ids, x_vals, y):
    """``y = relu(potential) * x`` on the firing x-neurons, zero elsewhere; its active ids and values."""
    y[:] = 0
    for q in range(x_ids.shape[0]):
        p = potential[q]
        if p < 0:
            p = 0
        y[x_ids[q]] = p * x_vals[q]
    return _active(y)


@njit(**JIT)
def _gains(u, eps, out):
    for r in range(u.shape[0]):
        row = u[r]
        mean = 0.0
        for c in range(row.shape[0]):
            mean += row[c]
        mean /= row.shape[0]
        var = 0.0
        for c in range(row.shape[0]):
            var += (row[c] - mean) ** 2
        out[r] = np.sqrt(var / row.shape[0] + eps)


@njit(**JIT)
def _stored_k(k_ids, k_vals, scale, N):
    """``k / scale`` of each head: what synapses stored up to a lazy scale per head are read and written with."""
    out = np.empty_like(k_vals)
    for q in range(k_ids.shape[0]):
        out[q] = k_vals[q] / scale[k_ids[q] // N]
    return out


@njit(**JIT)
def _true_reads(A, scale):
    """The reads of ``k / scale`` times ``scale**2``: those of ``k`` from the true synapses."""
    for h in range(A.shape[0]):
        A[h] *= scale[h] * scale[h]


@njit(**JIT)
def _neuron_layer(w, x_graph, synapses, scale, y_graph, E_ext, all_pre, cos, sin, N, layer_norm, eps, vectors):
    """One rate-mode layer of the neuron wiring on a synapse graph, the kernels above run in turn on one thread
    (``NumbaBackend.neuron_layer``). The graphs are ``backend.Graph``s (``synapses`` with the layer's sigma as its
    data), ``vectors`` the layer's (x, k, A, y), written in place."""
    x, k, A, y = vectors
    n = x.shape[0]
    pre_ids, pre_vals = _active(w)
    x[:] = 0
    _push_block(x_graph.indptr, x_graph.indices, x_graph.data, pre_ids, pre_vals, x.reshape((1, n)),
                x_graph.indptr.shape[0] - 1, 0, n)
    events = _out_degrees(x_graph.indptr, pre_ids)
    x_ids, x_vals, k_ids, k_vals = _fire(x, cos, sin, N, k)
    A[:, :] = 0
    events += _graph_read_write_block(synapses.indptr, synapses.indices, synapses.data, k_ids,
                                      _stored_k(k_ids, k_vals, scale, N), w, A, N, 0, k_ids.shape[0])
    _true_reads(A, scale)
    potential = np.zeros(x_ids.shape[0], A.dtype)
    events += _pull_block(y_graph.indptr, y_graph.indices, y_graph.data, x_ids, A, potential, N, 0,
                          x_ids.shape[0])
    if layer_norm:  # gain control: each head's A seen through the hubs
        u = np.zeros((A.shape[0], E_ext.shape[1]), A.dtype)
        _rows_combine_block(E_ext, all_pre, A, u, 0, E_ext.shape[1])
        events += _nonzero(A) * E_ext.shape[1]
        gains = np.empty(A.shape[0], A.dtype)
        _gains(u, eps, gains)
        for q in range(x_ids.shape[0]):
            potential[q] = potential[q] / gains[x_ids[q] // N]
    y_ids, y_vals = _gate(potential, x_ids, x_vals, y)
    return events, x_ids, x_vals, k_ids, k_vals, y_ids, y_vals


@njit(**JIT)
def _hub_layer(u, D_x, all_neurons, rho, scale, all_hubs, D_y, cos, sin, N, layer_norm, eps, vectors):
    """One rate-mode layer of the hub wiring (``rho`` of the layer as rows ``h*N + j``, (heads * N, d)), the kernels
    above run in turn on one thread (``NumbaBackend.hub_layer``); ``vectors`` the layer's (x, k, A, y), written in
    place."""
    x, k, A, y = vectors
    n, d = x.shape[0], u.shape[0]
    _rows_dot_block(D_x, all_neurons, u.reshape((1, d)), x, n, 0, n)
    events = n * d
    x_ids, x_vals, k_ids, k_vals = _fire(x, cos, sin, N, k)
    A[:, :] = 0
    _rows_read_write_block(rho, k_ids, _stored_k(k_ids, k_vals, scale, N), all_hubs, u, A, N, 0, k_ids.shape[0])
    _true_reads(A, scale)
    events += k_ids.shape[0] * (d + d)
    if layer_norm:  # LayerNorm of each head's read across the hubs
        gains = np.empty(A.shape[0], A.dtype)
        _gains(A, eps, gains)
        for h in range(A.shape[0]):
            for c in range(d):
                A[h, c] = A[h, c] / gains[h]
    potential = np.zeros(x_ids.shape[0], A.dtype)
    _rows_dot_block(D_y, x_ids, A, potential, N, 0, x_ids.shape[0])
    events += x_ids.shape[0] * d
    y_ids, y_vals = _gate(potential, x_ids, x_vals, y)
    return events, x_ids, x_vals, k_ids, k_vals, y_ids, y_vals


@njit(**JIT)
def _all_finite(v):
    for i in range(v.shape[0]):
        if not np.isfinite(v[i]):
            return False
    return True


def _mean_degree(indptr) -> float:
    return (indptr[-1] - indptr[0]) / max(1, len(indptr) - 1)


def _as_blocks(a):
    """A 1-D output or signal as one block: a (1, n) view."""
    return a.reshape(1, -1) if a.ndim == 1 else a


class NumbaBackend(Backend):
    """Host numpy arrays, kernels compiled by Numba, run on Numba's threads (``numba.set_num_threads``)."""

    name = "numba"

    # Compiled array operations: a layer takes a few of them on short vectors, where numpy costs more in calls than
    # in work.
    def active(self, v) -> tuple[np.ndarray, np.ndarray]:
        return _active(v)

    def all_finite(self, v) -> bool:
        return bool(_all_finite(v.reshape(-1)))

    def gain(self, u, eps: float):
        out = np.empty(u.shape[:-1] or (1,), u.dtype)
        _gains(_as_blocks(u), eps, out)
        return out if u.ndim > 1 else out[0]

    def push(self, indptr, indices, data, idx, val, out) -> int:
        blocks, rows_per = row_blocks(len(indptr) - 1, out, "push: out")
        bounds = _split(INDEXED_COST * len(idx) * _mean_degree(indptr), out.shape[-1])
        _run(_push_block, _push, bounds, indptr, indices, data, idx, val, _as_blocks(out), rows_per)
        return int(_out_degrees(indptr, idx))

    def pull(self, indptr, indices, data, idx, signal, out) -> int:
        blocks, rows_per = row_blocks(len(indptr) - 1, signal, "pull: signal")
        bounds = _split(INDEXED_COST * len(idx) * _mean_degree(indptr), len(idx))
        return int(_run(_pull_block, _pull, bounds, indptr, indices, data, idx, _as_blocks(signal), out, rows_per))

    def rows_combine(self, M, idx, val, out) -> int:
        val = _as_blocks(val)
        _run(_rows_combine_block, _rows_combine, _split(val.size * M.shape[1], M.shape[1]), M, idx, val,
             _as_blocks(out))
        return int(_nonzero(val)) * M.shape[1]

    def rows_dot(self, M, idx, vec, out) -> int:
        blocks, rows_per = row_blocks(M.shape[0], vec, "rows_dot: vec")
        _run(_rows_dot_block, _rows_dot, _split(len(idx) * M.shape[1], len(idx)), M, idx, _as_blocks(vec), out,
             rows_per)
        return len(idx) * M.shape[1]

    def graph_read_write(self, indptr, indices, data, idx, val, pre, out) -> int:
        blocks, rows_per = row_blocks(len(indptr) - 1, out, "graph_read_write: out")
        bounds = _split(2 * INDEXED_COST * len(idx) * _mean_degree(indptr), len(idx), (idx, blocks, rows_per))
        return int(_run(_graph_read_write_block, _graph_read_write, bounds, indptr, indices, data, idx, val, pre,
                        _as_blocks(out), rows_per))

    def rows_read_write(self, M, idx, val, pre_idx, pre_val, out) -> int:
        blocks, rows_per = row_blocks(M.shape[0], out, "rows_read_write: out")
        bounds = _split(len(idx) * (M.shape[1] + len(pre_idx)), len(idx), (idx, blocks, rows_per))
        _run(_rows_read_write_block, _rows_read_write, bounds, M, idx, val, pre_idx, pre_val, _as_blocks(out),
             rows_per)
        return len(idx) * (M.shape[1] + len(pre_idx))

    def outer_add(self, M, row_idx, row_val, col_idx, col_val) -> int:
        bounds = _split(len(row_idx) * len(col_idx), len(row_idx))
        _run(_outer_add_block, _outer_add, bounds, M, row_idx, row_val, col_idx, col_val)
        return len(row_idx) * len(col_idx)

    def graph_outer_add(self, indptr, indices, data, idx, val, col) -> int:
        bounds = _split(INDEXED_COST * len(idx) * _mean_degree(indptr), len(idx))
        return int(_run(_graph_outer_add_block, _graph_outer_add, bounds, indptr, indices, data, idx, val, col))

    # The K steps of a sum are sparse (a spike volley fires a fraction of its neurons per step): their updates
    # cost about one dense outer product, which sets the work estimate.
    def product_add(self, M, row_idx, R, col_idx, C) -> int:
        col_ids, col_vals, col_counts = _columns_per_step(col_idx, C)
        _run(_product_add_block, _product_add, _split(len(row_idx) * len(col_idx), len(row_idx)), M, row_idx, R,
             col_ids, col_vals, col_counts)
        return int(_step_updates(R, col_counts))

    def graph_product_add(self, indptr, indices, data, idx, R, C) -> int:
        bounds = _split(INDEXED_COST * len(idx) * _mean_degree(indptr), len(idx))
        return int(_run(_graph_product_add_block, _graph_product_add, bounds, indptr, indices, data, idx, R, C))

    def fuses_layer(self, indexed: int, dense: int) -> bool:
        """Where no kernel of the layer would split over threads (``PARALLEL_MIN_WORK``): the fused call runs on
        one."""
        return _blocks(max(2 * INDEXED_COST * indexed, dense), 2) == 1

    def neuron_layer(self, w, x_graph, synapse_graph, sigma, scale, y_graph, E_ext, all_pre, cos, sin, N: int,
                     layer_norm: bool, eps: float, x, k, A, y):
        """One rate-mode layer of the neuron wiring on a synapse graph in one compiled call, on one thread (see
        ``Backend.fuses_layer``)."""
        return _neuron_layer(w, x_graph, synapse_graph._replace(data=sigma), scale, y_graph, E_ext, all_pre, cos,
                             sin, N, layer_norm, eps, (x, k, A, y))

    def hub_layer(self, u, D_x, all_neurons, rho, scale, all_hubs, D_y, cos, sin, N: int, layer_norm: bool,
                  eps: float, x, k, A, y):
        """One rate-mode layer of the hub wiring in one compiled call, on one thread (see ``Backend.fuses_layer``)."""
        return _hub_layer(u, D_x, all_neurons, rho, scale, all_hubs, D_y, cos, sin, N, layer_norm, eps, (x, k, A, y))
