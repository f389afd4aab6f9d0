"""Shared fixtures: small random models with weights large enough that activations are not degenerate."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bdh_graph import BDH, BDHConfig, save_model
from bdh_graph.cli import main
from bdh_graph.kernels import available_backends, get_backend

TINY = BDHConfig(n_layer=2, n_embd=16, n_head=2, mlp_internal_dim_multiplier=4, dropout=0.0)  # the CLI tests' model


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


def tiny_checkpoint(folder, seed: int, scale: float) -> str:
    """``TINY`` with random weights (``random_model``, float32) saved as ``folder/tiny.safetensors``."""
    model = random_model(TINY, seed, dtype=torch.float32, scale=scale)
    return str(save_model(model, Path(folder) / "tiny.safetensors"))


def run_json(capsys, *argv) -> dict:
    """Run ``bdh-graph ARGV --json``, expect exit code 0, and return the printed JSON."""
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


# -- every backend, so that one test suite runs against all of them (issue 5) ----------------------------------
NO_CUDA = pytest.mark.skipif(not torch.cuda.is_available(),
                             reason="needs a CUDA GPU: torch.cuda.is_available() is False")
BACKEND_PARAMS = [pytest.param((name, "cpu"), id="torch-cpu" if name == "torch" else name)
                  for name in available_backends()]
BACKEND_PARAMS.append(pytest.param(("torch", "cuda"), id="torch-cuda", marks=[pytest.mark.gpu, NO_CUDA]))


@pytest.fixture(scope="module")
def one_torch_thread():
    """For modules of tiny models (``pytestmark = pytest.mark.usefixtures("one_torch_thread")``): waking torch's
    thread pool costs more than it saves, and on a shared machine a second thread mostly waits."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(params=BACKEND_PARAMS)
def backend(request):
    """Each backend in turn as a ``Backend``: numpy, numba, torch on the CPU, and torch on CUDA where present."""
    return get_backend(*request.param)
