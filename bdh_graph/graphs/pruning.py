"""Pruning rules of a neuron graph (SPEC.md 3.2), each circuit pruned on its own, and pruning from options.

- ``Threshold(beta)``: keep ``G >= beta`` (excitatory) and ``G <= -beta`` (inhibitory);
- ``TopK(k)``: for each postsynaptic neuron its k strongest excitatory and k strongest inhibitory inputs;
- ``Strongest(m)``: the m strongest edges of each circuit in the whole graph (an edge count, not a weight);
- ``None``: every non-zero entry (dense, for small n only).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
