"""Is a graph's modularity above what its null models give? Q against many draws of each null.

The sweep (``sweep.py``) sets Q beside one draw of each null model. One draw tells whether Q exceeds that draw;
whether it exceeds the null model needs the spread of the null's Q over draws, and on the sparse graphs of a head
(a few edges per node) that spread is not small against the margins a trained graph shows.
:func:`null_distribution` draws ``draws`` graphs of each null model with the observed graph's nodes and edges,
each from its own generator (``task_rng(seed, 0, null index, draw)``, three indices where a sweep's nulls have
two, so no draw repeats a sweep's; the draws do not depend on where or in which order they run), measures each as
the observed graph is measured (Louvain, best of ``seeds``, the same direction and weighting), and gives for each
null:

- the mean and standard deviation of its Q over the draws, and ``z = (Q - mean) / sd``;
- the one-sided Monte Carlo p-value ``p = (1 + #{draws with Q_null >= Q}) / (draws + 1)`` (Davison and Hinkley
  1997, North, Curtis and Sham 2002): the chance of a Q at least as high under the null, counting the observed
  graph as one more draw. It can be no smaller than ``1 / (draws + 1)``: 19 draws can reach 0.05, 99 draws 0.01.

The low-rank null draws a new random product ``P1 P2^T`` for each draw. Q is called above a null when its p-value
is at most :data:`SIGNIFICANCE` (0.05: a test of exactly that size, as ``0.05 (draws + 1)`` is a whole number for
19, 39, 99 ... draws), above every null when it is for each.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from ..distributed import engine, task_rng
from ..errors import GraphInputError
from ..graphs import check_count
from .modularity import as_circuit, louvain
from .nulls import low_rank_null
from .sweep import NULL_MODELS, check_nulls, null_graph

SIGNIFICANCE = 0.05  # p-value at or under which Q is called above a null
DEFAULT_DRAWS = 19  # the fewest draws that can reach p = 0.05


def check_null_draws(value) -> int:
    """``value`` as the null draws of a study, where 0 means none: refused unless 0 or an integer >= 2 (a standard
    deviation needs two draws)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value == 1 or value < 0:
        raise ValueError(f"null draws: expected 0 (none) or an integer >= 2, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class NullDistribution:
    """The observed graph's ``Q`` and ``draws`` draws of each null model's Q (``nulls[name]``, in draw order)."""

    Q: float
    nulls: dict[str, np.ndarray]
    nodes: int
    edges: int
    seeds: int
    directed: bool
    weighted: bool

    @property
    def draws(self) -> int:
        return len(next(iter(self.nulls.values()))) if self.nulls else 0

    def mean(self, name: str) -> float:
        return float(np.mean(self.nulls[name]))

    def sd(self, name: str) -> float:
        """Standard deviation over the draws (``ddof = 1``)."""
        return float(np.std(self.nulls[name], ddof=1)) if self.draws > 1 else float("nan")

    def z(self, name: str) -> float:
        """``(Q - mean) / sd``: inf when every draw has the same Q below Q (nan when equal to it)."""
        gap, sd = self.Q - self.mean(name), self.sd(name)
        if sd > 0:
            return gap / sd
        return float("nan") if gap == 0 or np.isnan(sd) else float(np.copysign(np.inf, gap))

    def p(self, name: str) -> float:
        """One-sided Monte Carlo p-value of Q under the null ``name`` (module doc)."""
        return (1 + int(np.sum(self.nulls[name] >= self.Q))) / (self.draws + 1)

    def above(self, name: str) -> bool:
        return self.p(name) <= SIGNIFICANCE

    def verdict(self) -> str:
        """One line: above which nulls Q stands, with each null's p-value and z."""
        each = ", ".join(f"{name} p = {self.p(name):.2g} (z = {self.z(name):.1f})" for name in self.nulls)
        above = [name for name in self.nulls if self.above(name)]
        where = ("every null" if len(above) == len(self.nulls) else "no null" if not above else
                 " and ".join(above) + " only")
        return f"Q = {self.Q:.3f} above {where} at p <= {SIGNIFICANCE} ({self.draws} draws each: {each})"

    def markdown(self) -> str:
        """A section of a markdown report: each null's mean, sd, z and p, then the verdict."""
        rows = [f"| {name} | {self.mean(name):.4f} | {self.sd(name):.4f} | {self.nulls[name].max():.4f} | "
                f"{self.z(name):.1f} | {self.p(name):.2g} |" for name in self.nulls]
        return "\n".join([f"## Q = {self.Q:.4f} against {self.draws} draws of each null model ({self.nodes} nodes, "
                          f"{self.edges} edges)", "", "| null | mean Q | sd | largest | z | p (one-sided) |",
                          "|---|---|---|---|---|---|", *rows, "", self.verdict(), ""])

    def to_dict(self) -> dict:
        return {"Q": self.Q, "draws": self.draws, "nodes": self.nodes, "edges": self.edges, "seeds": self.seeds,
                "directed": self.directed, "weighted": self.weighted, "significance": SIGNIFICANCE,
                "nulls": {name: {"mean": self.mean(name), "sd": self.sd(name), "z": self.z(name), "p": self.p(name),
                                 "above": self.above(name), "Q": self.nulls[name].tolist()} for name in self.nulls},
                "verdict": self.verdict()}


def null_distribution(A, rank: int | None = None, draws: int = DEFAULT_DRAWS, seeds: int = 5,
                      nulls: tuple[str, ...] = NULL_MODELS, directed: bool = False, weighted: bool = False,
                      seed: int = 0, backend: str | None = None, progress: bool = False,
                      scheduler=None) -> NullDistribution:
    """Q of the graph ``A`` (``A[i, j]`` = weight of ``i -> j``, non-negative) and of ``draws`` draws of each null
    model in ``nulls`` with its nodes and edges (module doc). ``rank``: d of the model, for the low-rank null.
    Each draw is a task (``scheduler``: None, this process; ``"local:N"``, an address or an ``Engine``)."""
    G = as_circuit(A)
    draws = check_count("draws", draws, 2)
    check_nulls(nulls, rank)
    if G.nnz == 0:
        raise GraphInputError("modularity is undefined on a graph without edges")
    observed = louvain(G, seeds, directed, weighted, backend)
    tasks = [(name, draw) for name in nulls for draw in range(draws)]
    with engine(scheduler) as eng, eng.shared(G) as (shared,):
        arguments = ((shared, name, draw, rank, seeds, directed, weighted, backend, seed) for name, draw in tasks)
        Q = {tasks[index]: q for index, q in
             eng.map(_null_task, arguments, len(tasks), "null draws", "graph", progress)}
    return NullDistribution(observed.Q, {name: np.array([Q[name, draw] for draw in range(draws)]) for name in nulls},
                            int(G.shape[0]), int(G.nnz), seeds, directed, weighted)


def _null_task(G: sparse.csr_array, name: str, draw: int, rank: int | None, seeds: int, directed: bool,
               weighted: bool, backend: str | None, seed: int) -> float:
    """Q of one draw of the null ``name`` (a task of :func:`null_distribution`)."""
    rng = task_rng(seed, 0, NULL_MODELS.index(name), draw)
    product = low_rank_null(G.shape[0], rank, G.nnz, int(rng.integers(2**31))) if name == "low_rank" else None
    return louvain(null_graph(name, G, product, weighted, rng), seeds, directed, weighted, backend).Q


__all__ = ["DEFAULT_DRAWS", "SIGNIFICANCE", "NullDistribution", "check_null_draws", "null_distribution"]
