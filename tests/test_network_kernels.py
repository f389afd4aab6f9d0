"""The Numba kernels split into one block per thread equal their numpy twins (reference.py).

``test_backends.py`` compares every backend's kernels with the twins at the sizes of its cases, where Numba runs
each kernel on one thread; here the same comparison runs with the parallel path forced for any work size.
"""
import numpy as np
import pytest

from bdh_graph.kernels import get_backend, numba_kernels
import test_backends


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("fraction", [0.0, 0.3, 1.0])
def test_parallel_blocks_equal_numpy_twins(monkeypatch, fraction, dtype):
    monkeypatch.setattr(numba_kernels, "PARALLEL_MIN_WORK", 0)
    monkeypatch.setattr(numba_kernels.numba, "get_num_threads", lambda: 3)  # uneven blocks on any machine
    test_backends.test_kernels_equal_numpy_twins(get_backend("numba"), fraction, dtype)
