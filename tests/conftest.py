"""Shared fixtures: small random models with weights large enough that activations are not degenerate."""
from __future__ import annotations

import pytest
import torch

from bdh_graph import BDH, BDHConfig


def random_model(config: BDHConfig, seed: int, dtype=torch.float64, scale: float = 15.0) -> BDH:
    """A fresh random model in eval mode; init weights (std 0.02) scaled by ``scale`` so that x and y fire."""
    torch.manual_seed(seed)
    model = BDH(config).to(dtype).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.mul_(scale)
    return model


@pytest.fixture
def make_model():
    return random_model
