"""Community structure: Newman modularity maximised by Louvain, best of several seeds.

Undirected (Newman 2006, the paper's measure), on the symmetrised graph ``W = A + A^T``::

    Q = 1/(2m) sum_ij [W_ij - k_i k_j / (2m)] delta(c_i, c_j),   k_i = sum_j W_ij,  2m = sum_ij W_ij

Directed (Leicht and Newman 2008), on ``A`` itself::

    Q = 1/m sum_ij [A_ij - k_i^out k_j^in / m] delta(c_i, c_j)

Unweighted (``weighted=False``) every edge counts 1: ``A`` is replaced by its pattern first, so a pair of
opposite edges becomes an undirected edge of weight 2. Louvain (Blondel et al. 2008) is run once per seed and
the partition of highest Q is kept (the paper: best of 5). Each result also records the share of nodes in the
graph's largest (weakly) connected component: a fragmented sparse graph scores a high Q from its separate pieces
alone, whatever its structure. Backends: networkx's ``louvain_communities``
(always there) or igraph's ``community_multilevel`` when python-igraph is installed (undirected only, faster).
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import networkx as nx
import numpy as np
from networkx.algorithms.community import louvain_communities
from networkx.algorithms.community import modularity as nx_modularity
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from ..errors import GraphInputError
from .degrees import as_graph

BACKENDS = ("networkx", "igraph")


@dataclass(frozen=True)
class ModularityResult:
    """Best Louvain partition over ``seeds``: ``labels[i]`` is the community of node ``i``."""

    Q: float
    labels: np.ndarray
    Q_per_seed: tuple[float, ...]
    seeds: tuple[int, ...]
    directed: bool
    weighted: bool
    backend: str
    giant_component: float = float("nan")  # share of nodes in the largest weakly connected component

    @property
    def n_communities(self) -> int:
        return int(np.unique(self.labels).size)

    @property
    def Q_spread(self) -> tuple[float, float]:
        """The lowest and highest Q over the Louvain seeds."""
        return min(self.Q_per_seed), max(self.Q_per_seed)

    def describe(self) -> str:
        graph = ("directed" if self.directed else "undirected (symmetrised A + A^T)") + \
                (", weighted" if self.weighted else ", unweighted")
        return (f"Q = {self.Q:.4f}, {self.n_communities} communities, best of {len(self.seeds)} Louvain seeds; "
                f"{graph}; {self.giant_component:.1%} of nodes in the largest connected component")

    def to_dict(self) -> dict:
        return {"Q": self.Q, "n_communities": self.n_communities, "Q_per_seed": list(self.Q_per_seed),
                "Q_spread": list(self.Q_spread), "seeds": list(self.seeds), "directed": self.directed,
                "weighted": self.weighted, "symmetrised": not self.directed, "backend": self.backend,
                "giant_component": self.giant_component}


def giant_component_share(A) -> float:
    """Share of the nodes of ``A`` in its largest weakly connected component (isolated nodes count as nodes)."""
    A = as_graph(A)
    if A.shape[0] == 0:
        return float("nan")
    _, labels = connected_components(A, directed=True, connection="weak")
    return float(np.bincount(labels).max() / A.shape[0])


def as_circuit(A) -> sparse.csr_array:
    """``A`` as a CSR array, refused unless it is square and non-negative (one circuit): the graphs modularity
    is measured on."""
    A = as_graph(A)
    if A.shape[0] != A.shape[1]:
        raise GraphInputError(f"modularity needs a square graph (the same nodes pre and post), got shape {A.shape}")
    if A.nnz and A.data.min() < 0:
        raise GraphInputError("modularity needs non-negative weights: analyse one circuit (excitatory or inhibitory)")
    return A


def graph_for_modularity(A, directed: bool = False, weighted: bool = False) -> sparse.csr_array:
    """The matrix whose modularity is measured: ``A`` (directed) or ``A + A^T``, binarised unless ``weighted``."""
    A = as_circuit(A)
    if not weighted:
        A = sparse.csr_array((A != 0).astype(np.float64))
    return A if directed else sparse.csr_array(A + A.T)


def _undirected_edges(W: sparse.csr_array) -> sparse.coo_array:
    """Each undirected edge once (upper triangle). A self-loop stands on the diagonal of ``A + A^T`` twice
    (the adjacency-matrix convention); as an edge it has half that weight, since graph libraries count a
    loop twice in the degree."""
    upper = sparse.triu(W, format="coo")
    on_diagonal = upper.row == upper.col
    upper.data = np.where(on_diagonal, upper.data / 2, upper.data)
    return upper


def _to_networkx(W: sparse.csr_array, directed: bool) -> nx.Graph:
    if directed:
        return nx.from_scipy_sparse_array(W, create_using=nx.DiGraph)
    edges = _undirected_edges(W)
    G = nx.Graph()
    G.add_nodes_from(range(W.shape[0]))
    G.add_weighted_edges_from(zip(edges.row.tolist(), edges.col.tolist(), edges.data.tolist()))
    return G


def _labels(communities, n: int) -> np.ndarray:
    labels = np.empty(n, dtype=np.int64)
    for c, nodes in enumerate(sorted(communities, key=min)):
        labels[list(nodes)] = c
    return labels


def modularity(A, labels, directed: bool = False, weighted: bool = False) -> float:
    """Modularity ``Q`` of the partition ``labels`` (community of each node) of ``A`` (module doc)."""
    W = graph_for_modularity(A, directed, weighted)
    labels = np.asarray(labels)
    if labels.shape != (W.shape[0],):
        raise GraphInputError(f"labels has shape {labels.shape}, expected one community per node ({W.shape[0]},)")
    if W.nnz == 0:
        raise GraphInputError("modularity is undefined on a graph without edges")
    G = _to_networkx(W, directed)
    communities = [set(np.flatnonzero(labels == c).tolist()) for c in np.unique(labels)]
    return float(nx_modularity(G, communities, weight="weight"))


def modularity_terms(A, labels, directed: bool = False, weighted: bool = False) -> tuple[float, float]:
    """The two terms of ``Q`` (module doc): the share of edge weight inside communities, ``sum_c e_cc / 2m``, and its
    expectation with the same degrees, ``sum_c (K_c / 2m)^2`` (directed: ``sum_c K_c^out K_c^in / m^2``), where
    ``K_c`` sums the degrees of community c. ``Q`` is the first minus the second.

    >>> inside, expected = modularity_terms(sparse.csr_array(np.eye(2)), [0, 1]); inside - expected
    0.5
    """
    W = graph_for_modularity(A, directed, weighted)
    labels = np.asarray(labels)
    if labels.shape != (W.shape[0],):
        raise GraphInputError(f"labels has shape {labels.shape}, expected one community per node ({W.shape[0]},)")
    total = W.sum()
    if total == 0:
        raise GraphInputError("modularity is undefined on a graph without edges")
    coo = W.tocoo()
    _, community = np.unique(labels, return_inverse=True)
    inside = coo.data[community[coo.row] == community[coo.col]].sum() / total
    k_out = np.bincount(community, weights=np.asarray(W.sum(axis=1)).ravel())
    k_in = np.bincount(community, weights=np.asarray(W.sum(axis=0)).ravel())
    return float(inside), float((k_out * k_in).sum() / total**2)


def _igraph_partitions(W: sparse.csr_array, seeds: tuple[int, ...]):
    """``(labels, Q)`` of igraph's multilevel (Louvain) for each seed, Q by igraph on the same edge weights."""
    import igraph

    edges = _undirected_edges(W)
    g = igraph.Graph(n=W.shape[0], edges=np.column_stack([edges.row, edges.col]).tolist(), directed=False)
    weights = edges.data.tolist()
    for seed in seeds:
        igraph.set_random_number_generator(random.Random(seed))
        labels = np.asarray(g.community_multilevel(weights=weights).membership)
        yield labels, float(g.modularity(labels.tolist(), weights=weights))


def _networkx_partitions(W: sparse.csr_array, directed: bool, seeds: tuple[int, ...]):
    """``(labels, Q)`` of networkx's ``louvain_communities`` for each seed."""
    G = _to_networkx(W, directed)
    for seed in seeds:
        communities = louvain_communities(G, weight="weight", seed=seed)
        yield _labels(communities, W.shape[0]), float(nx_modularity(G, communities, weight="weight"))


def _backend(requested: str | None, directed: bool) -> str:
    if requested is None:
        try:
            import igraph  # noqa: F401
        except ImportError:
            return "networkx"
        return "networkx" if directed else "igraph"
    if requested not in BACKENDS:
        raise GraphInputError(f"backend must be one of {BACKENDS} or None (the fastest installed), got {requested!r}")
    if requested == "igraph" and directed:
        raise GraphInputError("backend 'igraph' has no directed Louvain; use backend='networkx' for directed=True")
    return requested


def louvain(A, seeds: int | tuple[int, ...] = 5, directed: bool = False, weighted: bool = False,
            backend: str | None = None) -> ModularityResult:
    """Louvain partitions for each seed (``seeds`` an int k means seeds 0..k-1); the one of highest Q wins.

    >>> import networkx as nx
    >>> A = nx.to_scipy_sparse_array(nx.planted_partition_graph(4, 20, 0.9, 0.01, seed=1))
    >>> r = louvain(A); r.n_communities                                              # doctest: +SKIP
    4
    """
    W = graph_for_modularity(A, directed, weighted)
    if W.nnz == 0:
        raise GraphInputError("modularity is undefined on a graph without edges (is beta above every weight?)")
    seeds = tuple(range(seeds)) if isinstance(seeds, (int, np.integer)) else tuple(int(s) for s in seeds)
    if not seeds:
        raise GraphInputError("seeds must be a positive count or a non-empty sequence of seeds")
    backend = _backend(backend, directed)
    runs = _igraph_partitions(W, seeds) if backend == "igraph" else _networkx_partitions(W, directed, seeds)
    best, scores = None, []
    for labels, Q in runs:
        if best is None or Q > max(scores):
            best = labels
        scores.append(Q)
    return ModularityResult(max(scores), best, tuple(scores), seeds, directed, weighted, backend,
                            giant_component_share(W))
