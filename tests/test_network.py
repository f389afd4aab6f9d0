"""The graph network against the tensor model (SPEC.md 3): exactness, pruning, monitors, state files, bad input.

Every test runs on every backend (the ``backend`` fixture of conftest.py).
"""
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.special import log_softmax, rel_entr, softmax

from bdh_graph import BDHConfig
from bdh_graph.graphs import Threshold, TopK
from bdh_graph.network.monitors import ActivityMonitor, EventMonitor, SparsityMonitor, SynapseMonitor
from bdh_graph.network import NonFiniteError, build_network
from bdh_graph.network.validation import validate

TOL = {np.float64: 1e-9, np.float32: 1e-4}
T = 48  # the fastest RoPE pair turns once per 2 pi tokens: its phase wraps ~7 times
CONFIGS = {
    "layernorm": (BDHConfig(n_layer=3, n_embd=16, n_head=2, mlp_internal_dim_multiplier=8, dropout=0.0), 15.0),
    "normfree": (BDHConfig(n_layer=2, n_embd=24, n_head=3, mlp_internal_dim_multiplier=4, dropout=0.0,
                           layer_norm=False), 5.0),
    "one_head": (BDHConfig(n_layer=2, n_embd=32, n_head=1, mlp_internal_dim_multiplier=2, dropout=0.0), 15.0),
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tokens(seed, length=T, vocab=256):
    return np.random.default_rng(seed).integers(0, vocab, length)


@pytest.fixture(scope="module")
def small_model():
    from helpers import random_model
    return random_model(CONFIGS["layernorm"][0], seed=7)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("wiring", ["neuron", "hub"])
@pytest.mark.parametrize("config", list(CONFIGS))
def test_exact_against_tensor_model(make_model, backend, config, wiring, dtype):
    cfg, scale = CONFIGS[config]
    model = make_model(cfg, seed=len(config), scale=scale)
    result = validate(model, tokens(len(config)), wiring=wiring, dtype=dtype, backend=backend)
    s = result.summary()
    for q in ("x", "y", "v", "state", "logits"):
        assert s[f"{q}_max_rel"] < TOL[dtype], (q, s)
    assert s["top1_agreement"] == 1.0
    # the test is not vacuous: neurons fire, and y (zero at the first token, whose attention is empty) later too
    activity = SparsityMonitor()
    build_network(model, wiring=wiring, dtype=dtype, backend=backend).run(tokens(1), [activity], progress=False)
    assert activity.x.mean() > 0.3 and activity.y[1:].mean() > 0.1


def test_dense_graph_as_synapse_graph_is_exact(small_model, backend):
    """Sigma on a synapse graph that holds every pair equals dense sigma; so does top-k with k = all inputs."""
    n_pre = small_model.config.n_neurons + small_model.config.vocab_size
    full = sp.csr_array(np.ones((n_pre, small_model.config.n_neurons)))
    for kwargs in (dict(synapses=full), dict(prune=TopK(n_pre))):
        result = validate(small_model, tokens(3), backend=backend, **kwargs)
        assert result.max_rel < 1e-9, kwargs


def test_pruned_fidelity_is_measured(small_model, backend):
    prune = TopK(6)
    result = validate(small_model, tokens(4), prune=prune, synapses="wiring", backend=backend)
    net = build_network(small_model, prune=prune, synapses="wiring", backend=backend)
    logits = net.run(tokens(4), progress=False)
    reference = small_model.forward_recurrent(torch.as_tensor(tokens(4))[None])[0].numpy()
    kl = rel_entr(softmax(reference, axis=1), softmax(logits, axis=1)).sum(axis=1)
    np.testing.assert_allclose(result.kl, kl, rtol=1e-8, atol=1e-12)
    np.testing.assert_array_equal(result.top1, reference.argmax(1) == logits.argmax(1))
    s = result.summary()
    assert s["kl_mean"] > 1e-6 and 0 <= s["top1_agreement"] <= 1  # pruning 6 of 272 inputs is not exact
    assert result.n_edges["x"] <= 2 * 6 * small_model.config.n_neurons
    assert net.synapse_graph.nnz == result.n_edges["x"]
    # a threshold keeps fewer synapses and is measured the same way
    s = validate(small_model, tokens(4)[:8], prune=Threshold(0.5), state_every=0, backend=backend).summary()
    assert s["tokens"] == 8 and s["state_max_rel"] is None and s["x_max_rel"] > 0


def test_monitors(small_model, backend):
    cfg = small_model.config
    pairs = [(0, 0), (5, 3), (cfg.n_neurons + 65, 7), (cfg.n_neurons - 1, cfg.N - 1)]
    text = tokens(5, 30)
    runs = {}
    for wiring in ("neuron", "hub"):
        net = build_network(small_model, wiring=wiring, backend=backend)
        monitors = [ActivityMonitor(), SparsityMonitor(), SynapseMonitor(2, 1, pairs), EventMonitor()]
        net.run(text[:10], monitors, progress=False)
        net.run(text[10:], monitors, progress=False)  # recordings continue across runs
        runs[wiring] = (net, monitors)
    net, (activity, sparsity, synapse, events) = runs["neuron"]
    sigma = net.sigma(2, 1)
    np.testing.assert_allclose(synapse.values[-1], [sigma[i, j] for i, j in pairs], rtol=1e-12)
    # the hub wiring never stores sigma, yet tracks the same synapses
    np.testing.assert_allclose(runs["hub"][1][2].values, synapse.values, rtol=1e-9, atol=1e-12)
    assert events.events.sum() == net.events and (events.events > 0).all()
    # activity and sparsity against the tensor model's own record
    state, ref_x, ref_y = small_model.init_state(1), [], []
    for tok in text:
        record = {}
        small_model.step(torch.tensor([tok]), state, record=record)
        ref_x.append(record["x"][:, 0].reshape(cfg.n_layer, -1).numpy())
        ref_y.append(record["y"][:, 0].reshape(cfg.n_layer, -1).numpy())
    ref_x, ref_y = np.array(ref_x), np.array(ref_y)
    np.testing.assert_allclose(sparsity.x, (ref_x > 0).mean(axis=2))
    np.testing.assert_allclose(sparsity.y, (ref_y > 0).mean(axis=2))
    steps, neurons, rates = activity.raster(1, "y")
    np.testing.assert_array_equal(np.stack([steps, neurons]), np.nonzero(ref_y[:, 1]))
    np.testing.assert_allclose(rates, ref_y[:, 1][ref_y[:, 1] > 0], rtol=1e-10)
    assert activity.positions == list(range(30)) and activity.tokens == text.tolist()


def test_synapse_monitor_checks_its_arguments(small_model, backend):
    net = build_network(small_model, wiring="hub", backend=backend)
    with pytest.raises(ValueError, match="j in \\[0, 64\\)"):
        net.run(tokens(1, 2), [SynapseMonitor(0, 0, [(0, 64)])], progress=False)
    with pytest.raises(ValueError, match="layer 3, head 0 out of range"):
        net.run(tokens(1, 2), [SynapseMonitor(3, 0, [(0, 0)])], progress=False)
    net.run(tokens(1, 2), progress=False)
    with pytest.raises(ValueError, match="does not store these sigma entries"):
        net.run(tokens(1, 2), [SynapseMonitor(0, 0, [(0, 0)])], progress=False)
    with pytest.raises(ValueError, match="hub wiring stores rho"):
        net.sigma(0, 0)


@pytest.mark.parametrize("wiring, kwargs", [("neuron", {}), ("hub", {}),
                                            ("neuron", dict(prune=TopK(8), synapses="wiring"))])
def test_save_and_load_resume_exactly(small_model, backend, tmp_path, wiring, kwargs):
    text = tokens(6, 40)
    whole = build_network(small_model, wiring=wiring, backend=backend, **kwargs).run(text, progress=False)
    first = build_network(small_model, wiring=wiring, backend=backend, **kwargs)
    first.run(text[:17], progress=False)
    first.save_state(tmp_path / "state.npz")
    second = build_network(small_model, wiring=wiring, backend=backend, **kwargs)
    second.load_state(tmp_path / "state.npz")
    assert second.position == 17 and second.events == first.events
    np.testing.assert_array_equal(second.run(text[17:], progress=False), whole[17:])


def test_state_file_of_another_network_is_refused(make_model, small_model, backend, tmp_path):
    path = tmp_path / "state.npz"
    net = build_network(small_model, wiring="hub", backend=backend)
    net.run(tokens(1, 5), progress=False)
    net.save_state(path)
    other_weights = make_model(small_model.config, seed=8)
    for other, differs in ((build_network(other_weights, wiring="hub", backend=backend), "weights"),
                           (build_network(small_model, wiring="neuron", backend=backend), "wiring"),
                           (build_network(small_model, wiring="hub", dtype=np.float32, backend=backend), "dtype")):
        with pytest.raises(ValueError, match=f"saved by another network \\({differs}: file"):
            other.load_state(path)
        assert other.position == 0 and not np.any(other.rho(0))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a network state file"):
        net.load_state(tmp_path / "junk.npz")
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        net.load_state(tmp_path / "missing.npz")


def test_bad_input(small_model, backend):
    net = build_network(small_model, wiring="hub", backend=backend)
    with pytest.raises(ValueError, match="token id 256, expected ids in \\[0, 256\\)"):
        net.run([1, 2, 256], progress=False)
    with pytest.raises(ValueError, match="token id -1"):
        net.step(-1)
    with pytest.raises(ValueError, match="empty"):
        net.run("", progress=False)
    with pytest.raises(ValueError, match="empty"):
        validate(small_model, [], backend=backend)
    with pytest.raises(ValueError, match="state_every must be an integer >= 0, got -1"):
        validate(small_model, [1, 2], state_every=-1, backend=backend)
    with pytest.raises(ValueError, match="wiring must be one of"):
        build_network(small_model, wiring="brain", backend=backend)
    with pytest.raises(ValueError, match="hub wiring is exact"):
        build_network(small_model, wiring="hub", prune=TopK(3), backend=backend)
    with pytest.raises(ValueError, match="synapse graph has shape \\(10, 10\\), expected \\(384, 128\\)"):
        build_network(small_model, synapses=sp.eye(10, format="csr"), backend=backend)
    with pytest.raises(ValueError, match="dtype must be float32 or float64"):
        build_network(small_model, dtype=np.int32, backend=backend)
    with pytest.raises(ValueError, match="backend 'gpu' is not known"):
        build_network(small_model, backend="gpu")


@pytest.mark.parametrize("wiring", ["neuron", "hub"])
def test_non_finite_value_names_token_and_layer(make_model, backend, wiring):
    """Normfree activity grows with the weights; at x400 it overflows float32 within a few tokens."""
    model = make_model(CONFIGS["normfree"][0], seed=2, scale=400.0)
    net = build_network(model, wiring=wiring, dtype=np.float32, backend=backend)
    with np.errstate(all="ignore"), pytest.raises(NonFiniteError, match=r"non-finite \w+ in layer \d .* at token "
                                                                        r"position \d+ \(token id \d+\)"):
        net.run(tokens(2), progress=False)
