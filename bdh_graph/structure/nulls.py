"""Null models with the same number of nodes and edges as an observed directed graph.

- ``gnm_null``: Erdos-Renyi G(n, m), m distinct directed edges chosen uniformly (no self-loops).
- ``rewired_null``: degree-preserving rewiring (Maslov and Sneppen 2002): repeated double-edge swaps
  ``(a -> b, c -> d)`` to ``(a -> d, c -> b)``, refused when they would make a self-loop or a multi-edge, so every
  in- and out-degree is kept; the weights travel with their edges' sources.
- ``low_rank_null``: the paper's random low-rank product ``P1 P2^T`` with ``P1, P2 ~ N(0, 1)`` of shape n x d,
  keeping its m largest entries (the same edge count as the observed graph) - the structure a rank-d
  product has with no learning at all.

All return ``scipy.sparse.csr_array`` with ``A[i, j]`` = weight of the edge ``i -> j``.
"""
from __future__ import annotations

import numpy as np
from scipy import sparse

from ..errors import GraphInputError
from ..graphs import GraphFactors, Strongest, check_count, product_graph
from .degrees import as_graph


def gnm_null(n: int, m: int, seed: int | None = None) -> sparse.csr_array:
    """G(n, m): ``m`` distinct directed edges among ``n`` nodes, uniformly at random, weight 1."""
    n, m = check_count("n", n, 1), check_count("m", m)
    if m > n * (n - 1):
        raise GraphInputError(f"G(n, m): m = {m} exceeds the n(n-1) = {n * (n - 1)} possible directed edges")
    key = np.random.default_rng(seed).choice(n * (n - 1), size=m, replace=False)
    src, other = np.divmod(key, n - 1)
    dst = other + (other >= src)  # skip the diagonal
    return sparse.csr_array((np.ones(m), (src, dst)), shape=(n, n))


def rewired_null(A, seed: int | None = None, swaps_per_edge: int = 10) -> sparse.csr_array:
    """Degree-preserving rewiring of the directed graph ``A``, about ``swaps_per_edge`` accepted swaps per edge.

    Swaps are proposed in rounds: a random pairing of all edges, every pair swapping its targets unless that
    makes a self-loop, an edge already present, or an edge another pair of the round also makes.
    """
    A = as_graph(A).tocoo()
    if A.shape[0] != A.shape[1]:
        raise GraphInputError(f"rewiring needs a square graph, got shape {A.shape}")
    swaps_per_edge = check_count("swaps_per_edge", swaps_per_edge)
    n, m = A.shape[0], A.nnz
    src, dst, weight = A.row.astype(np.int64), A.col.astype(np.int64), A.data.copy()
    rng = np.random.default_rng(seed)
    target, done, stalled = swaps_per_edge * m, 0, 0
    while done < target and m >= 2 and stalled < 20:
        existing = np.sort(src * n + dst)
        pairs = rng.permutation(m)[: 2 * (m // 2)].reshape(2, -1)
        a, b = pairs
        new_a, new_b = src[a] * n + dst[b], src[b] * n + dst[a]
        ok = (src[a] != dst[b]) & (src[b] != dst[a])
        for new in (new_a, new_b):
            ok &= existing[np.minimum(np.searchsorted(existing, new), m - 1)] != new
        made = np.concatenate([new_a[ok], new_b[ok]])
        values, counts = np.unique(made, return_counts=True)
        clash = values[counts > 1]
        ok[ok] &= ~(np.isin(new_a[ok], clash) | np.isin(new_b[ok], clash))
        a, b = a[ok], b[ok]
        dst[a], dst[b] = dst[b], dst[a].copy()
        done += a.size
        stalled = stalled + 1 if a.size == 0 else 0
    return sparse.csr_array((weight, (src, dst)), shape=(n, n))


def strongest_edges(A, m: int) -> sparse.csr_array:
    """The ``m`` edges of largest weight of ``A`` (all of them if it has no more)."""
    A = as_graph(A).tocoo()
    m = check_count("m", m)
    if A.nnz <= m:
        return sparse.csr_array(A)
    keep = np.argpartition(A.data, A.nnz - m)[A.nnz - m:]
    return sparse.csr_array((A.data[keep], (A.row[keep], A.col[keep])), shape=A.shape)


def low_rank_null(n: int, d: int, m: int, seed: int | None = None, progress: bool | None = None) -> sparse.csr_array:
    """The ``m`` largest entries of ``P1 P2^T``, ``P1, P2 ~ N(0, 1)`` of shape (n, d), extracted tile by tile."""
    n, d, m = check_count("n", n, 1), check_count("d", d, 1), check_count("m", m)
    if m == 0:
        return sparse.csr_array((n, n))
    rng = np.random.default_rng(seed)
    P1, P2 = rng.standard_normal((n, d)), rng.standard_normal((n, d))
    ids = np.arange(n)
    factors = GraphFactors(P1, np.ascontiguousarray(P2.T), ids, ids, {"which": "P1P2^T"})
    return product_graph(factors, Strongest(m), progress).excitatory
