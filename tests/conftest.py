"""Fixtures and options of the suite; plain helpers are in helpers.py.

Options: ``--run-slow`` also runs the tests marked ``slow`` (studies that take minutes; left out by default),
``--fresh-seeds`` lets statistical tests draw new seeds instead of their fixed ones (a sweep; never in CI).
"""
from __future__ import annotations

import pytest
import torch

import helpers
from bdh_graph.kernels import get_backend


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", help="also run the tests marked slow (studies)")
    parser.addoption("--fresh-seeds", action="store_true",
                     help="statistical tests draw fresh random seeds instead of their fixed ones")


def pytest_configure(config):
    helpers.FRESH_SEEDS = config.getoption("--fresh-seeds")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow study: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def make_model():
    return helpers.random_model


@pytest.fixture(scope="module")
def one_torch_thread():
    """For modules of tiny models (``pytestmark = pytest.mark.usefixtures("one_torch_thread")``): waking torch's
    thread pool costs more than it saves, and on a shared machine a second thread mostly waits."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(params=helpers.BACKEND_PARAMS)
def backend(request):
    """Each backend in turn as a ``Backend``: numpy, numba, torch on the CPU, and torch on CUDA where present."""
    return get_backend(*request.param)
