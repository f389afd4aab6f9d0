"""Spike mode (issue 7): spikes whose average is the rate model.

Reproducibility and backend agreement, the coincidence write against its per-micro-step definition, the K^-1/2
convergence of the logits, the unbiased layer-0 synapses, spike counts and monitors, state files and bad input.
The rate model (``mode="rate"``) is the reference: it equals the tensor model to float64 round-off
(test_network.py). The statistical checks run on fixed seeds; their studies over many seeds are marked slow.
"""
import functools
import warnings

import numpy as np
import pytest

from bdh_graph import BDHConfig
from bdh_graph.errors import FileFormatError
from bdh_graph.files import read_tagged, write_tagged
from bdh_graph.graphs import TopK, neuron_graph
from bdh_graph.network.monitors import SpikeMonitor, SynapseMonitor, load_spikes
from bdh_graph.network import build_network
from bdh_graph.network.neurons import active
from bdh_graph.network.spikes import RateClipWarning, Spiker, Volley
from helpers import random_model, test_seed

CONFIG = BDHConfig(n_layer=2, n_embd=16, n_head=2, mlp_internal_dim_multiplier=8, dropout=0.0)
TEXT = "Spikes: a stochastic AND gate."

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model():
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


# -- the coincidence write -----------------------------------------------------------------------------------
def previous_write(synapses, layer, pre, k):
    """The coincidence write as it was before the product over micro-steps: for each head and micro-step m, the
    Hebbian outer product of the presynaptic neurons firing at m and the head's rotated x spikes of m
    (``outer_add`` or ``graph_outer_add``). ``pre.dense`` and ``k.dense`` hold the amplitudes of every micro-step,
    (K, neurons), ``k`` over the x-neurons of every head."""
    b, updates, N = synapses.backend, 0, synapses.N
    for head in range(k.dense.shape[1] // N):
        for m in range(k.dense.shape[0]):
            pre_m, k_m = active(b, pre.dense[m]), active(b, k.dense[m, head * N:(head + 1) * N])
            if len(pre_m.ids) and len(k_m.ids):
                updates += synapses.write(layer, head, pre_m, k_m)
    return updates


def synapse_blocks(net) -> list[np.ndarray]:
    c = net.config
    if net.wiring == "hub":
        return [net.rho(layer) for layer in range(c.n_layer)]
    return [net.sigma(layer, head).toarray() for layer in range(c.n_layer) for head in range(c.n_head)]


@pytest.mark.parametrize("K", [4, 16])
@pytest.mark.parametrize("options", [dict(wiring="neuron"), dict(wiring="neuron", prune=TopK(16), synapses="wiring"),
                                     dict(wiring="hub")], ids=["dense-sigma", "synapse-graph", "hub"])
def test_coincidence_write_equals_one_outer_product_per_micro_step(model, backend, options, K):
    """One product over the K micro-steps for every head gives the spikes, events and synapses of the per-micro-step
    loop (float64; synapses within 1e-12 of their largest entry)."""
    runs = []
    for previous in (False, True):
        net = spiking(model, 5, K, backend=backend, dtype=np.float64, **options)
        if previous:
            net.synapses.write_steps = functools.partial(previous_write, net.synapses)
        monitor = SpikeMonitor()
        logits = net.run(TEXT, monitors=[monitor], progress=False)
        spikes = [monitor.spikes(layer, p) for layer in range(CONFIG.n_layer) for p in ("x", "y")]
        runs.append((logits, spikes, net.spikes, net.events, synapse_blocks(net)))
    (logits, spikes, n_spikes, events, blocks), (ref_logits, ref_spikes, ref_n_spikes, ref_events, ref_blocks) = runs
    assert all(np.array_equal(a, b) for s, r in zip(spikes, ref_spikes) for a, b in zip(s, r))
    assert (n_spikes, events) == (ref_n_spikes, ref_events) and n_spikes > 0
    for block, ref in zip(blocks, ref_blocks):
        np.testing.assert_allclose(block, ref, rtol=0, atol=1e-12 * np.abs(ref).max())
    assert max(np.abs(ref).max() for ref in ref_blocks) > 0
    np.testing.assert_allclose(logits, ref_logits, rtol=0, atol=1e-12 * np.abs(ref_logits).max())


# -- spikes average to the rate model ------------------------------------------------------------------------
def logit_errors(model, wiring, steps, seeds) -> np.ndarray:
    exact = build_network(model, wiring=wiring, backend="numba").run(TEXT, progress=False)
    return np.array([np.mean([rms(spiking(model, seed, K, wiring=wiring).run(TEXT, progress=False), exact)
                              for seed in seeds]) for K in steps])


@pytest.mark.parametrize("wiring", ["neuron", "hub"])
def test_logit_error_falls_with_k_on_fixed_seeds(model, wiring):
    """From K = 4 to 256 the logit error falls by about sqrt(64) = 8 (a floor, e.g. a bias, would stop it)."""
    errors = logit_errors(model, wiring, [4, 256], seeds=range(3))
    assert 5 < errors[0] / errors[1] < 13, errors


@pytest.mark.slow
@pytest.mark.parametrize("wiring", ["neuron", "hub"])
def test_logit_error_falls_as_one_over_root_k(model, wiring):
    """Study: the slope of log error against log K over K = 4 .. 256 and six seeds is -1/2."""
    steps = np.array([4, 16, 64, 256])
    errors = logit_errors(model, wiring, steps, seeds=range(test_seed(0), test_seed(0) + 6))
    slope = np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert -0.65 < slope < -0.35, (errors, slope)


def layer0_sigma(make_model, seeds) -> tuple[np.ndarray, np.ndarray]:
    """sigma of layer 0 of a one-layer model after TEXT: the rate model's (2, n+V, N), and the spiking network's
    (seeds, 2, n+V, N) for each seed (K = 8)."""
    one_layer = make_model(BDHConfig(n_layer=1, n_embd=16, n_head=2, mlp_internal_dim_multiplier=4, dropout=0.0), 23)
    rate = build_network(one_layer, backend="numba")
    rate.run(TEXT, progress=False)
    samples = []
    for seed in seeds:
        net = spiking(one_layer, seed, K=8)
        net.run(TEXT, progress=False)
        samples.append(np.stack([net.sigma(0, h).toarray() for h in range(2)]))
    return np.stack([rate.sigma(0, h).toarray() for h in range(2)]), np.array(samples)


def test_layer0_synapses_are_unbiased_on_fixed_seeds(make_model):
    """One layer: a single input neuron drives x, so sigma of layer 0 is an unbiased estimate. Over 24 fixed seeds
    each head's total of sigma is within 3% of the rate model's (measured: 0.3%; one standard error is under 1%,
    so a bias of 11% would fail)."""
    exact, samples = layer0_sigma(make_model, range(100, 124))
    relative = samples.sum(axis=(2, 3)).mean(0) / exact.sum(axis=(1, 2)) - 1
    assert np.abs(relative).max() < 0.03, relative


@pytest.mark.slow
def test_layer0_synapses_are_unbiased(make_model):
    """Study: the mean over 300 seeds of linear functionals of sigma (each head's total and ten random
    Gaussian-weighted sums; single entries of rarely firing neurons are too heavy-tailed for a z-test) matches the
    rate model within 4 standard errors."""
    first = test_seed(100)
    exact, samples = layer0_sigma(make_model, range(first, first + 300))
    weights = np.concatenate([np.eye(2)[:, :, None, None] * np.ones_like(exact),  # per-head totals
                              np.random.default_rng(5).standard_normal((10, *exact.shape))])
    functionals = np.einsum("sabc,fabc->sf", samples, weights)
    z = (functionals.mean(0) - np.einsum("abc,fabc->f", exact, weights)) / (
        functionals.std(0, ddof=1) / np.sqrt(len(samples)))
    assert np.abs(z).max() < 4.0, (first, z)


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
    with pytest.raises(FileFormatError, match="bad.npz' is not a spike recording: not a readable .npz"):
        load_spikes(tmp_path / "bad.npz")


def test_spike_recording_of_another_kind_or_version_is_refused(model, tmp_path):
    net = spiking(model, 2, 4)
    monitor = SpikeMonitor(layers=[1])
    net.run(TEXT[:5], monitors=[monitor], progress=False)
    saved = read_tagged(monitor.save(tmp_path / "spikes.npz"), "spike_recording", 1)
    assert saved.meta == {"spike_steps": 4, "n_neurons": CONFIG.n_neurons, "layers": [1], "populations": ["x", "y"]}
    write_tagged(tmp_path / "v2.npz", "spike_recording", 2, saved.arrays, saved.meta)
    with pytest.raises(FileFormatError, match="v2.npz' is a spike recording of version 2; this bdh_graph reads "
                                              "version 1"):
        load_spikes(tmp_path / "v2.npz")
    with pytest.raises(FileFormatError, match="state.npz' is not a spike recording: it is a 'network_state' file"):
        load_spikes(net.save_state(tmp_path / "state.npz"))
    with pytest.raises(FileFormatError, match="state.npz' is not a network state file: it is a 'spike_recording'"):
        net.load_state(monitor.save(tmp_path / "state.npz"))


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


def test_clipped_rates_are_summed_up_once_per_run(model):
    """A fixed rate scale below the rates clips them: ``step`` warns once per token, ``run`` once for the run, with
    the count of every step, the population and the largest rate against the scale."""
    stepped = spiking(model, 0, rate_scale={"x": 1e-3})
    clipped, largest = 0, 0.0
    for token in TEXT.encode():
        record = {}
        with pytest.warns(RateClipWarning) as caught:
            stepped.step(token, record)
        assert len(caught) == 1
        clipped, largest = clipped + record["clipped"], max(largest, record["x"].max())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        spiking(model, 0, rate_scale={"x": 1e-3}).run(TEXT, progress=False)
    assert [w.category for w in caught] == [RateClipWarning]
    assert str(caught[0].message) == (
        f"{clipped} rate(s) exceeded their population's rate scale and were clipped to one spike per micro-step, so "
        f"their estimates are biased low (population 'x': {clipped} (largest rate {largest:.4g}, rate scale 0.001; "
        "first at layer 0, position 0)); raise rate_scale or use 'max'")
    assert clipped > len(TEXT)
