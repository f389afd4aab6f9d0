"""Helpers shared by the test modules (import them with ``from helpers import ...``); fixtures live in conftest.py."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from bdh_graph import BDH, BDHConfig, save_model
from bdh_graph.cli import main
from bdh_graph.kernels import available_backends

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

# The device of test_gpu.py: cuda, unless BDH_GPU_TEST_DEVICE names another (e.g. ``cpu``, to run those tests' code
# paths on a machine without a GPU: each then compares the CPU with itself, a smoke run and not a check of CUDA).
GPU_DEVICE = os.environ.get("BDH_GPU_TEST_DEVICE", "cuda")
ON_GPU_DEVICE = pytest.mark.skipif(GPU_DEVICE.startswith("cuda") and not torch.cuda.is_available(),
                                   reason="needs a CUDA GPU: torch.cuda.is_available() is False (BDH_GPU_TEST_DEVICE"
                                          "=cpu runs these tests' code paths on the CPU)")
