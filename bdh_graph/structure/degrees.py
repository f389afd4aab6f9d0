"""Degrees and strengths of a directed sparse graph, ``A[i, j]`` = weight of the edge ``i -> j``.

    out-degree  k_i^out = #{j : A[i, j] != 0}     (entries of row i)
    in-degree   k_j^in  = #{i : A[i, j] != 0}     (entries of column j)
    out-strength s_i^out = sum_j |A[i, j]|,  in-strength s_j^in = sum_i |A[i, j]|

Swapping the orientation swaps in and out, so every function here takes it as stated.
"""
from __future__ import annotations

import numpy as np
from scipy import sparse

from ..errors import GraphInputError, NotAGraphError


def as_graph(A) -> sparse.csr_array:
    """``A`` as a CSR array, refused unless it is a 2-d ``scipy.sparse`` graph (the input of every statistic
    here)."""
    if not sparse.issparse(A):
        raise NotAGraphError(f"expected a scipy.sparse graph (A[i, j] = weight of i -> j), got {type(A).__name__}")
    if A.ndim != 2:
        raise GraphInputError(f"expected a 2-d sparse graph, got shape {A.shape}")
    return sparse.csr_array(A)


def out_degree(A) -> np.ndarray:
    """Number of out-edges of each presynaptic neuron (row)."""
    return as_graph(A).count_nonzero(axis=1).astype(np.int64)


def in_degree(A) -> np.ndarray:
    """Number of in-edges of each postsynaptic neuron (column)."""
    return as_graph(A).count_nonzero(axis=0).astype(np.int64)


def out_strength(A) -> np.ndarray:
    """Total absolute weight of each neuron's out-edges."""
    return np.asarray(abs(as_graph(A)).sum(axis=1)).ravel()


def in_strength(A) -> np.ndarray:
    """Total absolute weight of each neuron's in-edges."""
    return np.asarray(abs(as_graph(A)).sum(axis=0)).ravel()


def ccdf(values) -> tuple[np.ndarray, np.ndarray]:
    """Empirical complementary CDF: the distinct values ``x`` and ``P(X >= x)``.

    >>> ccdf([1, 1, 2, 5])
    (array([1, 2, 5]), array([1.  , 0.5 , 0.25]))
    """
    x, counts = np.unique(np.asarray(values), return_counts=True)
    tail = counts[::-1].cumsum()[::-1]
    return x, tail / counts.sum()


def summary(values) -> dict:
    """Mean, standard deviation, coefficient of variation ``cv = std / mean``, max, and the number of zeros of a
    degree or strength sequence (over all nodes, zeros included; ``std`` is the population's, ``ddof = 0``).

    A random graph's degrees are nearly Poisson (``cv ~ 1 / sqrt(mean)``); a heavy tail shows as ``cv > 1``.

    >>> summary([0, 2, 4])["cv"]
    0.816...
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return {"n": 0, "mean": float("nan"), "std": float("nan"), "cv": float("nan"), "max": float("nan"),
                "zeros": 0}
    mean, std = float(values.mean()), float(values.std())
    return {"n": int(values.size), "mean": mean, "std": std, "cv": std / mean if mean else float("nan"),
            "max": float(values.max()), "zeros": int((values == 0).sum())}
