"""Pruning rules of a neuron graph (docs/model.md 4.6), each circuit pruned on its own, and pruning from options.

- ``Threshold(beta)``: keep ``G >= beta`` (excitatory) and ``G <= -beta`` (inhibitory);
- ``TopK(k)``: for each postsynaptic neuron its k strongest excitatory and k strongest inhibitory inputs;
- ``Strongest(m)``: the m strongest edges of each circuit in the whole graph (an edge count, not a weight);
- ``None``: every non-zero entry (dense, for small n only).

:func:`prune_from_options` is the one place where options (``--beta``, ``--top-k``, ``--edges``) become a rule;
without any, a structure study keeps the paper's edge density (:data:`PAPER_EDGES_PER_NEURON`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# The paper's head block of G_x at beta = 1.2 has 46,820 edges on N = 8,192 neurons (its section 5.5). Graphs of
# models of any size are compared at this density: this many strongest edges per postsynaptic neuron.
PAPER_EDGES_PER_NEURON = 46820 / 8192


def check_count(name: str, value, low: int = 0) -> int:
    """``value`` as an int, refusing anything that is not an integer ``>= low``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class Threshold:
    """Keep the edges with ``|G| >= beta``: ``G >= beta`` excitatory, ``G <= -beta`` inhibitory."""

    beta: float

    def __post_init__(self) -> None:
        if isinstance(self.beta, bool) or not isinstance(self.beta, (int, float, np.floating, np.integer)):
            raise TypeError(f"Threshold beta must be a number, got {self.beta!r}")
        if not np.isfinite(self.beta) or self.beta <= 0:
            raise ValueError(f"Threshold beta must be > 0, got {self.beta!r}")


@dataclass(frozen=True)
class TopK:
    """For each postsynaptic neuron keep its ``k`` strongest inputs in each circuit (k excitatory + k inhibitory)."""

    k: int

    def __post_init__(self) -> None:
        check_count("TopK k", self.k, 1)


@dataclass(frozen=True)
class Strongest:
    """Keep the ``m`` strongest edges of each circuit in the whole graph (fewer if fewer are non-zero)."""

    m: int

    def __post_init__(self) -> None:
        check_count("Strongest m", self.m, 1)


Prune = Threshold | TopK | Strongest | None


def check_prune(prune) -> Prune:
    """``prune`` itself if it is None, ``Threshold``, ``TopK`` or ``Strongest``; else a ``TypeError``."""
    if prune is not None and not isinstance(prune, (Threshold, TopK, Strongest)):
        raise TypeError(f"prune must be None, Threshold(beta), TopK(k) or Strongest(m), got {prune!r}")
    return prune


def check_keeps_edges(prune: Prune, largest: float, graph: str, name: str = "beta", hint: str = "") -> None:
    """Refuse a pruning that keeps no edge of ``graph``, whose largest ``|G|`` is ``largest``.

    Only a threshold can do that: ``Threshold(beta)`` keeps ``|G| >= beta``, so any ``beta > largest`` leaves an
    empty graph (a network on it is silent, a structure study has nothing to measure). ``TopK`` and ``Strongest``
    keep edges whenever ``G`` has non-zero entries. ``name`` is how the caller knows beta (``"--beta"`` on the
    command line); ``hint`` is appended to the message (for instance, where the scale of beta is listed).
    """
    if isinstance(prune, Threshold) and prune.beta > largest:
        raise ValueError(f"{name}={prune.beta:g} keeps no edge of {graph}: its largest |G| is {largest:.4g} (a "
                         f"threshold keeps |G| >= beta); give a beta below that{hint}")


def paper_edge_count(n_post: int) -> int:
    """Edges of each circuit of a graph on ``n_post`` postsynaptic neurons at the paper's density,
    ``round(PAPER_EDGES_PER_NEURON * n_post)`` and at least 1.

    >>> paper_edge_count(8192)
    46820
    """
    return max(1, round(PAPER_EDGES_PER_NEURON * check_count("n_post", n_post, 1)))


def prune_from_options(beta: float | None = None, top_k: int | None = None, edges: int | None = None,
                       n_post: int | None = None) -> Prune:
    """The pruning rule of at most one option: ``Threshold(beta)``, ``TopK(top_k)`` or ``Strongest(edges)``.

    With no option the rule is ``Strongest(paper_edge_count(n_post))`` (the paper's density) when ``n_post``, the
    graph's number of postsynaptic neurons, is given, and ``None`` (every edge) when it is not. Each rule checks
    its own value (``beta > 0``, counts ``>= 1``); more than one option is refused.

    >>> prune_from_options(top_k=8), prune_from_options(n_post=8192), prune_from_options()
    (TopK(k=8), Strongest(m=46820), None)
    """
    given = {name: value for name, value in (("beta", beta), ("top_k", top_k), ("edges", edges)) if value is not None}
    if len(given) > 1:
        raise ValueError(f"give at most one of beta, top_k, edges; got {given}")
    if beta is not None:
        return Threshold(beta)
    if top_k is not None:
        return TopK(top_k)
    if edges is not None:
        return Strongest(edges)
    return Strongest(paper_edge_count(n_post)) if n_post is not None else None
