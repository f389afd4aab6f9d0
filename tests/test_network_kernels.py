"""The Numba kernels split into one block per thread equal their dense definitions, and the fused layers of both
wirings equal their kernels run one by one.

``test_backends.py`` compares every backend's kernels with their definitions written out on dense matrices at the
sizes of its cases, where Numba runs each kernel on one thread; here the same comparison runs with the parallel
path forced for any work size.
"""
import numpy as np
import pytest

from bdh_graph.graphs import TopK
from bdh_graph.kernels import get_backend, numba_kernels
from bdh_graph.network import build_network
import helpers
from helpers import (NETWORK_CONFIGS as CONFIGS, OneByOne, assert_kernels_equal_their_dense_definition,
                     random_tokens as tokens)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("fraction", [0.0, 0.3, 1.0])
def test_parallel_blocks_equal_their_dense_definition(monkeypatch, fraction, dtype):
    monkeypatch.setattr(numba_kernels, "PARALLEL_MIN_WORK", 0)
    monkeypatch.setattr(numba_kernels.numba, "get_num_threads", lambda: 3)  # uneven blocks on any machine
    assert_kernels_equal_their_dense_definition(get_backend("numba"), fraction, dtype)


@pytest.mark.parametrize("wiring", ["neuron", "hub"])
@pytest.mark.parametrize("config", ["layernorm", "normfree"])
def test_the_fused_layer_equals_its_kernels_one_by_one(config, wiring):
    """Every recorded vector, the events, the active counts and the synapses after each token, float64; a lesion is
    held after the fused write as after the kernels'."""
    cfg, scale = CONFIGS[config]
    model = helpers.random_model(cfg, seed=11, scale=scale)
    kwargs = dict(prune=TopK(16), synapses="wiring") if wiring == "neuron" else dict(wiring="hub")
    nets = [build_network(model, dtype=np.float64, backend=backend, **kwargs)
            for backend in (get_backend("numba"), OneByOne())]
    assert [net._fused for net in nets] == [True, False]
    n_pre = cfg.n_neurons + cfg.vocab_size
    pattern = nets[0].synapse_graph if wiring == "neuron" else np.ones((n_pre, cfg.n_neurons))
    pairs = np.stack(pattern[:, :cfg.N].nonzero(), axis=1)[::3]  # a third of head 0's synapses
    for net in nets:
        net.lesion({(0, 0): pairs})
    y_active = 0
    for t in tokens(4, length=24):
        fused, one_by_one = {}, {}
        nets[0].step(t, fused)
        nets[1].step(t, one_by_one)
        for name in ("x", "y", "k", "w", "u", "logits"):
            np.testing.assert_allclose(fused[name], one_by_one[name], rtol=1e-10, atol=1e-12, err_msg=name)
        for name in ("events", "x_active", "y_active"):
            np.testing.assert_array_equal(fused[name], one_by_one[name], err_msg=name)
        y_active += fused["y_active"]
    np.testing.assert_allclose(nets[0].synapses.values, nets[1].synapses.values, rtol=1e-10, atol=1e-12)
    assert np.abs(nets[0].synapses.values).max() > 0 and y_active.min() > 0  # every layer did work
    if wiring == "neuron":
        assert not any(nets[0].synapses.matrix(0, 0)[pairs[:, 0], pairs[:, 1]])  # the lesion held


def test_only_a_rate_mode_hub_or_synapse_graph_network_is_fused():
    model = helpers.random_model(CONFIGS["layernorm"][0], seed=11)
    fused = {(kwargs_name, mode): build_network(model, mode=mode, backend="numba",
                                                 **({"spike_steps": 2, "seed": 0} if mode == "spike" else {}),
                                                 **kwargs)._fused
             for kwargs_name, kwargs in (("graph", dict(synapses="wiring")), ("dense", {}),
                                         ("hub", dict(wiring="hub")))
             for mode in ("rate", "spike")}
    assert fused == {("graph", "rate"): True, ("graph", "spike"): False, ("dense", "rate"): False,
                     ("dense", "spike"): False, ("hub", "rate"): True, ("hub", "spike"): False}
    assert not build_network(model, synapses="wiring", backend="numpy")._fused


def test_a_layer_whose_kernels_would_split_is_not_fused(monkeypatch):
    """With more than one thread the fused call (one thread) serves only layers below the parallel threshold."""
    monkeypatch.setattr(numba_kernels.numba, "get_num_threads", lambda: 2)
    backend = get_backend("numba")
    edges = -(-numba_kernels.PARALLEL_MIN_WORK // (2 * numba_kernels.INDEXED_COST))  # the least that splits
    assert backend.fuses_layer(edges - 1, 0) and not backend.fuses_layer(edges, 0)
    limit = numba_kernels.PARALLEL_MIN_WORK
    assert backend.fuses_layer(0, limit - 1) and not backend.fuses_layer(0, limit)
    monkeypatch.setattr(numba_kernels.numba, "get_num_threads", lambda: 1)
    assert backend.fuses_layer(10 * edges, 10 * limit)
