"""Helpers shared by the test modules (import them with ``from helpers import ...``); fixtures live in conftest.py."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bdh_graph import BDH, BDHConfig, save_model
from bdh_graph.cli import main
from bdh_graph.kernels import available_backends
from bdh_graph.text import encode

TINY = BDHConfig(n_layer=2, n_embd=16, n_head=2, mlp_internal_dim_multiplier=4, dropout=0.0)  # the CLI tests' model

# Set by conftest.py from ``--fresh-seeds``: statistical tests then draw new seeds (a sweep, not for CI).
FRESH_SEEDS = False


def test_seed(fixed: int) -> int:
    """``fixed``, or with ``pytest --fresh-seeds`` a new random seed (print it in the failure message)."""
    return int(np.random.SeedSequence().entropy % 2**31) if FRESH_SEEDS else fixed


test_seed.__test__ = False  # not a test, despite its name


def random_model(config: BDHConfig, seed: int, dtype=torch.float64, scale: float = 15.0) -> BDH:
    """A fresh random model in eval mode; init weights (std 0.02) scaled by ``scale`` so that x and y fire."""
    torch.manual_seed(seed)
    model = BDH(config).to(dtype).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.mul_(scale)
    return model


def tiny_checkpoint(folder, seed: int, scale: float) -> str:
    """``TINY`` with random weights (``random_model``, float32) saved as ``folder/tiny.safetensors``."""
    model = random_model(TINY, seed, dtype=torch.float32, scale=scale)
    return str(save_model(model, Path(folder) / "tiny.safetensors"))


def tiny_run(folder, steps=(0, 3, 6)) -> Path:
    """A run folder as ``train --snapshot-every K`` leaves it: TINY trained with AdamW on a short text, saved at
    ``steps`` as snapshots/step-NNNNNN.safetensors, and its final model.safetensors."""
    folder = Path(folder)
    (folder / "snapshots").mkdir(parents=True)
    model = random_model(TINY, 0, dtype=torch.float32, scale=5.0).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    tokens = encode("Dragons hatch from eggs. " * 8).view(1, -1)
    for step in range(max(steps) + 1):
        if step in steps:
            save_model(model, folder / "snapshots" / f"step-{step:06d}.safetensors")
        if step == max(steps):
            break
        logits, _ = model(tokens[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, 256), tokens[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    save_model(model, folder / "model.safetensors")
    return folder


def run_json(capsys, *argv) -> dict:
    """Run ``bdh-graph ARGV --json``, expect exit code 0, and return the printed JSON."""
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


# -- every backend, so that one test suite runs against all of them ---------------------------------------------
NO_CUDA = pytest.mark.skipif(not torch.cuda.is_available(),
                             reason="needs a CUDA GPU: torch.cuda.is_available() is False")
BACKEND_PARAMS = [pytest.param((name, "cpu"), id="torch-cpu" if name == "torch" else name)
                  for name in available_backends()]
BACKEND_PARAMS.append(pytest.param(("torch", "cuda"), id="torch-cuda", marks=[pytest.mark.gpu, NO_CUDA]))
