"""Modularity against the pruning threshold beta, next to null models with the same edge count (the paper's
section 5.5).

For each beta the graph keeps its edges of weight ``>= beta``; Louvain (best of ``seeds``, with the spread over
them) measures its modularity, and that of each null model built with the same number of nodes and edges
(``nulls.py``). Each graph of each point, observed or null, is one task (``bdh_graph.distributed``: in this process
or on Dask workers); a null model draws from its own generator, seeded by the run's seed, the point and the null
model (``task_rng``), so the results do not depend on where or in which order the tasks run:
``"gnm"`` G(n, m), ``"rewired"`` degree-preserving rewiring of the thresholded graph, ``"low_rank"`` the
m largest entries of a random rank-``rank`` product. When ``weighted=True`` the nulls carry the observed
weights: shuffled onto G(n, m)'s edges, travelling with the rewired edges, matched by rank to the product's.

The default ladder of edge counts (:data:`LADDER`, :func:`ladder_counts`) spans a factor 16 around the analysed
graph's edge count m: sparse enough for the nulls to fragment (each result records the share of nodes in its
largest connected component), dense enough for every graph to be connected.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

from ..distributed import engine, task_rng
from ..errors import GraphInputError
from ..graphs import check_count
from .modularity import ModularityResult, as_circuit, louvain
from .nulls import gnm_null, low_rank_null, rewired_null, strongest_edges

NULL_MODELS = ("gnm", "rewired", "low_rank")
LADDER = (0.25, 0.5, 1.0, 2.0, 4.0)  # edge counts of the default sweep, in units of the analysed graph's


@dataclass
class SweepPoint:
    """The graph at one ``beta``: its edge count, its modularity, and each null model's."""

    beta: float
    edges: int
    result: ModularityResult | None  # None when no edge is left
    nulls: dict[str, ModularityResult] = field(default_factory=dict)

    @property
    def Q(self) -> float:
        return self.result.Q if self.result is not None else float("nan")

    def to_dict(self) -> dict:
        def numbers(r: ModularityResult) -> dict:
            return {"Q": r.Q, "Q_spread": list(r.Q_spread), "n_communities": r.n_communities,
                    "giant_component": r.giant_component}

        empty = {"Q": float("nan"), "Q_spread": [float("nan")] * 2, "n_communities": 0, "giant_component": 0.0}
        return {"beta": self.beta, "edges": self.edges, **(numbers(self.result) if self.result is not None else empty),
                "nulls": {name: numbers(r) for name, r in self.nulls.items()}}


def ladder_counts(m: int, ladder=LADDER) -> list[int]:
    """The distinct edge counts ``round(f * m)`` (at least 1) for the factors ``f`` of ``ladder``, ascending.

    >>> ladder_counts(1000)
    [250, 500, 1000, 2000, 4000]
    """
    m = check_count("m", m, 1)
    factors = np.asarray(ladder, dtype=np.float64).ravel()
    if factors.size == 0 or not (np.isfinite(factors).all() and factors.min() > 0):
        raise GraphInputError(f"ladder factors must be finite and > 0, got {factors.tolist()}")
    return sorted({max(1, round(float(f) * m)) for f in factors})


def at_beta(A, beta: float) -> sparse.csr_array:
    """The edges of weight ``>= beta`` of a non-negative graph."""
    A = sparse.csr_array(A, copy=True)
    A.data[A.data < beta] = 0
    A.eliminate_zeros()
    return A


def betas_for_edges(A, counts) -> np.ndarray:
    """For each edge count m, the beta keeping the m strongest edges of ``A`` (its m-th largest weight)."""
    weights = np.sort(sparse.csr_array(A).data)[::-1]
    counts = np.asarray(counts, dtype=np.int64).ravel()
    if counts.size == 0:
        return np.empty(0)
    if weights.size == 0 or counts.min() < 1 or counts.max() > weights.size:
        raise GraphInputError(f"edge counts must be in [1, {weights.size}] (the edges extracted), "
                              f"got {counts.tolist()}")
    return weights[counts - 1]


def null_graph(name: str, G: sparse.csr_array, low_rank: sparse.csr_array | None,
               weighted: bool, rng: np.random.Generator) -> sparse.csr_array:
    """The null model ``name`` of the graph ``G`` (same nodes and edges), drawn with ``rng``; ``low_rank`` is the
    random product the low-rank null keeps the largest entries of. With ``weighted`` it carries ``G``'s weights
    (module doc)."""
    n, m = G.shape[0], G.nnz
    seed = int(rng.integers(2**31))
    if name == "gnm":
        null = gnm_null(n, m, seed)
        if weighted:
            null.data = rng.permutation(G.data)  # same weights, random edges
        return null
    if name == "rewired":
        return rewired_null(G, seed)
    if name == "low_rank":
        null = strongest_edges(low_rank, m).tocoo()
        if weighted:  # the observed weights, largest on the product's largest entry
            null.data = np.sort(G.data)[np.argsort(np.argsort(null.data))]
        return sparse.csr_array(null)
    raise GraphInputError(f"null model must be one of {NULL_MODELS}, got {name!r}")


def check_nulls(nulls, rank: int | None) -> None:
    """Refuse null models outside :data:`NULL_MODELS`, and the low-rank null without the model's rank d."""
    if "low_rank" in nulls and rank is None:
        raise GraphInputError("the low-rank null needs rank = d of the model, got rank=None")
    unknown = sorted(set(nulls) - set(NULL_MODELS))
    if unknown:
        raise GraphInputError(f"null models must be among {NULL_MODELS}, got {unknown}")


def _sweep_task(G: sparse.csr_array, kind: str, point: int, low_rank: sparse.csr_array | None, seeds: int,
                directed: bool, weighted: bool, backend: str | None, seed: int) -> ModularityResult:
    """Louvain of one graph of a sweep point (a task of :func:`sweep_graphs`): the observed graph ``G``
    (``kind="graph"``) or the null model ``kind`` of it, drawn with ``task_rng(seed, point, null index)``."""
    if kind != "graph":
        G = null_graph(kind, G, low_rank, weighted, task_rng(seed, point, NULL_MODELS.index(kind)))
    return louvain(G, seeds, directed, weighted, backend)


def modularity_sweep(A, betas, rank: int | None = None, seeds: int = 5, nulls: tuple[str, ...] = NULL_MODELS,
                     directed: bool = False, weighted: bool = False, seed: int = 0,
                     backend: str | None = None, progress: bool = False, scheduler=None) -> list[SweepPoint]:
    """Modularity of ``A`` thresholded at each of ``betas``, and of each null model at the same edge count.

    ``A``: a non-negative square graph (one circuit), pruned at or below the smallest beta.
    ``rank``: d of the model, the rank of the low-rank null (needed only for that null).
    ``scheduler``: where the graphs' Louvain runs go (``bdh_graph.distributed.engine``; default this process).
    """
    A = as_circuit(A)
    betas = np.sort(np.asarray(betas, dtype=np.float64).ravel())
    if betas.size == 0 or not np.isfinite(betas).all() or betas[0] <= 0:
        raise GraphInputError(f"betas must be finite and > 0, got {betas.tolist()}")
    return sweep_graphs([(float(beta), at_beta(A, beta)) for beta in betas], rank, seeds, nulls, directed,
                        weighted, seed, backend, progress, scheduler)


def sweep_graphs(graphs, rank: int | None = None, seeds: int = 5, nulls: tuple[str, ...] = NULL_MODELS,
                 directed: bool = False, weighted: bool = False, seed: int = 0, backend: str | None = None,
                 progress: bool = False, scheduler=None) -> list[SweepPoint]:
    """:func:`modularity_sweep` of graphs already cut: ``graphs`` is a list of ``(beta, G)``, the nodes alike."""
    check_nulls(nulls, rank)
    graphs = [(beta, as_circuit(G)) for beta, G in graphs]
    most = max(G.nnz for _, G in graphs)
    # one random product for all points: each null keeps its m largest entries
    low_rank = low_rank_null(graphs[0][1].shape[0], rank, most, seed) if "low_rank" in nulls and most else None
    tasks = [(point, kind) for point, (_, G) in enumerate(graphs) if G.nnz for kind in ("graph", *nulls)]
    with engine(scheduler) as eng, eng.shared(low_rank, *(G for _, G in graphs)) as (shared, *on_workers):
        arguments = ((on_workers[point], kind, point, shared, seeds, directed, weighted, backend, seed)
                     for point, kind in tasks)
        results = {tasks[index]: result for index, result in
                   eng.map(_sweep_task, arguments, len(tasks), "modularity sweep", "graph", progress)}
    points = []
    for point, (beta, G) in enumerate(graphs):
        if G.nnz == 0:
            points.append(SweepPoint(beta, 0, None))
            continue
        points.append(SweepPoint(beta, int(G.nnz), results[point, "graph"],
                                 {name: results[point, name] for name in nulls}))
    return points
