"""The baseline a trained model's structure is measured against: an untrained model of the same configuration.

Structure that training creates is what a trained graph has and its untrained twin lacks, at the same size and
edge count. The twin is ``BDH(config)`` after ``torch.manual_seed(seed)``: the weights a training run with that
seed starts from (``bdh_graph.model.training.train`` seeds torch, then builds the model).
"""
from __future__ import annotations

import torch

from ..model.tensor import BDH


def untrained_like(model, seed: int = 0) -> BDH:
    """A freshly initialised model of ``model``'s configuration, from ``seed``; the global torch generator is left
    as it was.

    >>> a, b = untrained_like(model, 3), untrained_like(model, 3)                  # doctest: +SKIP
    >>> torch.equal(a.encoder, b.encoder)
    True
    """
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return BDH(model.config)
