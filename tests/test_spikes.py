"""Spike mode (issue 7): spikes whose average is the rate model.

Reproducibility and backend agreement, the K^-1/2 convergence of the logits, the unbiased layer-0 synapses,
spike counts and monitors, state files and bad input. The rate model (``mode="rate"``) is the reference: it
equals the tensor model to float64 round-off (test_network.py).
"""
import numpy as np
import pytest

from bdh_graph import BDHConfig
from bdh_graph.graphs import TopK, neuron_graph
from bdh_graph.network.monitors import SpikeMonitor, SynapseMonitor, load_spikes
from bdh_graph.network import build_network
from bdh_graph.network.spikes import RateClipWarning, Spiker, Volley

CONFIG = BDHConfig(n_layer=2, n_embd=16, n_head=2, mlp_internal_dim_multiplier=8, dropout=0.0)
TEXT = "Spikes: a stochastic AND gate."

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model():
    from helpers import random_model
    return random_model(CONFIG, seed=11)


def spiking(model, seed, K=8, **options):
    options.setdefault("backend", "numba")
    return build_network(model, mode="spike", spike_steps=K, seed=seed, **options)


def rms(a, b):
    return float(np.sqrt(np.mean((a - b) ** 2)))


# -- the spikes themselves -----------------------------------------------------------------------------------
def test_volley_fires_with_probability_rate_over_scale():
    K = 40_000
    rates = np.array([0.05, 0.3, -0.6, 0.9])
    volley = Spiker(K, seed=3, rate_scale={"x": 1.0}).fire("x", np.arange(4) + 10, rates, "test")
    p = np.abs(rates)
    se = np.sqrt(p * (1 - p) / K)
    assert np.all(np.abs(volley.counts / K - p) < 5 * se)
    ids, estimate = volley.estimate()
    assert ids.tolist() == [10, 11, 12, 13] and np.all(np.sign(estimate) == np.sign(rates))
    steps, neurons = volley.spike_times()
    assert len(steps) == volley.n_spikes == volley.counts.sum() and set(neurons) <= {10, 11, 12, 13}
    # 'max': the largest rate fires at every micro-step, the others in proportion
    volley = Spiker(16, seed=3, rate_scale={"x": "max"}).fire("x", np.arange(4), rates, "test")
    assert volley.scale == 0.9 and volley.counts[3] == 16


def test_same_seed_same_spikes_other_seed_differs(model, backend):
    for wiring in ("neuron", "hub"):
        runs = []
        for seed in (5, 5, 6):
            net = spiking(model, seed, backend=backend, wiring=wiring)
            monitor = SpikeMonitor()
            runs.append((net.run(TEXT, monitors=[monitor], progress=False), monitor.spikes(1, "y"), net.spikes))
        (a, sa, na), (b, sb, nb), (c, _, nc) = runs
        assert np.array_equal(a, b) and all(np.array_equal(p, q) for p, q in zip(sa, sb)) and na == nb
        assert not np.allclose(a, c)


def test_backends_draw_the_same_spikes(model, backend):
    """The spikes come from one host random stream, so every backend steps the same spiking network."""
    reference = spiking(model, 9, wiring="hub", backend="numpy").run(TEXT, progress=False)
    logits = spiking(model, 9, wiring="hub", backend=backend).run(TEXT, progress=False)
    np.testing.assert_allclose(logits, reference, rtol=0, atol=1e-9 * np.abs(reference).max())


# -- spikes average to the rate model ------------------------------------------------------------------------
@pytest.mark.parametrize("wiring", ["neuron", "hub"])
def test_logit_error_falls_as_one_over_root_k(model, wiring):
    exact = build_network(model, wiring=wiring, backend="numba").run(TEXT, progress=False)
    steps = np.array([4, 16, 64, 256])
    errors = [np.mean([rms(spiking(model, seed, K, wiring=wiring).run(TEXT, progress=False), exact)
                       for seed in range(6)]) for K in steps]
    slope = np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert -0.65 < slope < -0.35, (errors, slope)


def test_layer0_synapses_are_unbiased(make_model):
    """One layer: a single input neuron drives x, so relu(G w_hat) = relu(G) w_hat is unbiased, and so is every
    Hebbian increment of sigma. The mean over seeds of linear functionals of sigma (each head's total and ten
    random Gaussian-weighted sums; single entries of rarely firing neurons are too heavy-tailed for a z-test)
    matches the rate model within 4 standard errors."""
    one_layer = make_model(BDHConfig(n_layer=1, n_embd=16, n_head=2, mlp_internal_dim_multiplier=4, dropout=0.0), 23)
    rate = build_network(one_layer, backend="numba")
    rate.run(TEXT, progress=False)
    exact = np.stack([rate.sigma(0, h) for h in range(2)])
    samples = []
    for seed in range(300):
        net = spiking(one_layer, 100 + seed, K=8)
        net.run(TEXT, progress=False)
        samples.append(np.stack([net.sigma(0, h) for h in range(2)]))
    weights = np.concatenate([np.eye(2)[:, :, None, None] * np.ones_like(exact),  # per-head totals
                              np.random.default_rng(5).standard_normal((10, *exact.shape))])
    functionals = np.einsum("sabc,fabc->sf", np.array(samples), weights)
    z = (functionals.mean(0) - np.einsum("abc,fabc->f", exact, weights)) / (
        functionals.std(0, ddof=1) / np.sqrt(len(samples)))
    assert np.abs(z).max() < 4.0, z


def _step(net, token, record):
    net.step(token, record)
    return record


# -- counting spikes and events ------------------------------------------------------------------------------
def test_spike_monitor_counts_rates_and_file(model, tmp_path):
    K = 8
    net = spiking(model, 2, K)
    spikes = SpikeMonitor()
    spikes.attach(net)
    rates = []
    for token in TEXT.encode():
        record = _step(net, token, {})
        spikes.record(record)
        rates.append(record["x"])
    rates = np.array(rates)  # T, L, n
    for layer in range(CONFIG.n_layer):
        counts = spikes.counts(layer, "x")
        assert np.all(counts[rates[:, layer] == 0] == 0)  # silent neurons never fire
        top = rates[:, layer].argmax(1)  # 'max' scale: the most active x-neuron fires at every micro-step
        assert np.all(counts[np.arange(len(top)), top] == K)
        assert np.allclose(spikes.population_rate(layer, "x").sum(1), counts.sum(1) / CONFIG.n_neurons)
    saved = load_spikes(spikes.save(tmp_path / "spikes.npz"))
    assert saved["meta"]["spike_steps"] == K and saved["tokens"].tolist() == list(TEXT.encode())
    for key in ((0, "x"), (1, "y")):
        assert all(np.array_equal(a, b) for a, b in zip(saved["spikes"][key], spikes.spikes(*key)))
    (tmp_path / "bad.npz").write_bytes(b"not a recording")
    with pytest.raises(ValueError, match="not a readable .npz"):
        load_spikes(tmp_path / "bad.npz")


def test_gate_deliveries_count_every_spike_along_every_edge(model):
    """A synapse read's spikes travel along its G_y edges to the gated y-neurons only: against a dense count."""
    prune = TopK(5)
    net = build_network(model, prune=prune, backend="numpy")
    G_y = neuron_graph(model, "y", "exact", prune=prune)
    edges = ((G_y.excitatory + G_y.inhibitory).toarray() != 0)  # pre x post
    rng = np.random.default_rng(4)
    ids = np.sort(rng.choice(edges.shape[0], 40, replace=False))
    volley = Volley(ids, np.ones(40), rng.random((6, 40)) < 0.3, 1.0, 0)
    posts = np.sort(rng.choice(CONFIG.n_neurons, 30, replace=False))
    expected = sum(volley.counts[q] * edges[i, posts].sum() for q, i in enumerate(ids))
    expected += CONFIG.n_embd * volley.n_spikes  # the gain control hubs (LayerNorm)
    assert net._wiring.deliveries("gate", volley, posts) == expected


def test_events_and_spikes_grow_with_k(model):
    counts = {K: spiking(model, 0, K) for K in (2, 32)}
    for net in counts.values():
        net.run(TEXT, progress=False)
    assert counts[32].spikes > 8 * counts[2].spikes and counts[32].events > 8 * counts[2].events


# -- state, monitors, bad input ------------------------------------------------------------------------------
def test_state_file_resumes_the_random_stream(model, tmp_path):
    whole = spiking(model, 1)
    whole.run(TEXT, progress=False)
    expected = whole.run("after the save", progress=False)
    first = spiking(model, 1)
    first.run(TEXT, progress=False)
    first.save_state(tmp_path / "state.npz")
    resumed = spiking(model, 77)
    resumed.load_state(tmp_path / "state.npz")
    assert np.array_equal(resumed.run("after the save", progress=False), expected)
    assert resumed.spikes == whole.spikes and resumed.spike_options["seed"] == 1
    rate = build_network(model, backend="numba")
    with pytest.raises(ValueError, match="saved by another network.*mode"):
        rate.load_state(tmp_path / "state.npz")
    with pytest.raises(ValueError, match="spike_steps"):
        spiking(model, 1, K=4).load_state(tmp_path / "state.npz")


def test_reset_with_seed_restarts_the_stream(model):
    net = spiking(model, 3)
    net.run(TEXT, progress=False)
    net.reset(seed=4)
    assert np.array_equal(net.run(TEXT, progress=False), spiking(model, 4).run(TEXT, progress=False))
    with pytest.raises(ValueError, match="mode='spike'"):
        build_network(model, backend="numba").reset(seed=4)


def test_synapse_monitor_reads_coincidence_sigma(model):
    net = spiking(model, 8)
    monitor = SynapseMonitor(1, 0, [(3, 5), (CONFIG.n_neurons + ord("S"), 2)])
    net.run(TEXT, monitors=[monitor], progress=False)
    sigma = net.sigma(1, 0)
    assert np.array_equal(monitor.values[-1], [sigma[3, 5], sigma[CONFIG.n_neurons + ord("S"), 2]])
    with pytest.raises(ValueError, match="does not store"):
        spiking(model, 8, wiring="hub").run(TEXT, monitors=[SynapseMonitor(1, 0, [(3, 5)])], progress=False)
    with pytest.raises(ValueError, match="mode='spike'"):
        build_network(model, backend="numba").run(TEXT, monitors=[SpikeMonitor()], progress=False)


@pytest.mark.parametrize("options, message", [
    ({"mode": "spike", "spike_steps": 0}, "spike_steps must be an integer K >= 1"),
    ({"mode": "spike", "spike_steps": -3}, "spike_steps must be an integer K >= 1"),
    ({"mode": "spike", "spike_steps": 2.5}, "spike_steps must be an integer K >= 1"),
    ({"mode": "spike", "spike_steps": True}, "spike_steps must be an integer K >= 1"),
    ({"mode": "spike"}, "needs spike_steps"),
    ({"mode": "spiking", "spike_steps": 4}, "mode must be one of"),
    ({"spike_steps": 4}, "only apply to mode='spike'"),
    ({"mode": "spike", "spike_steps": 4, "seed": -1}, "seed must be None or an integer"),
    ({"mode": "spike", "spike_steps": 4, "rate_scale": 0.0}, "positive finite number"),
    ({"mode": "spike", "spike_steps": 4, "rate_scale": float("nan")}, "positive finite number"),
    ({"mode": "spike", "spike_steps": 4, "rate_scale": {"x": -1}}, "population 'x'"),
    ({"mode": "spike", "spike_steps": 4, "rate_scale": {"z": 1.0}}, "unknown populations"),
])
def test_bad_spike_options_are_refused(model, options, message):
    with pytest.raises(ValueError, match=message):
        build_network(model, backend="numba", **options)


def test_a_rate_scale_that_clips_warns_and_counts(model):
    net = spiking(model, 0, rate_scale={"x": 1e-3})
    record = {}
    with pytest.warns(RateClipWarning, match="population 'x' exceed its rate scale 0.001"):
        net.step(ord("S"), record)
    assert record["clipped"] > 0
