"""The graph network against the tensor model (docs/model.md 4): exactness, pruning, monitors, state files, bad input.

Every test runs on every backend (the ``backend`` fixture of conftest.py).
"""
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.special import rel_entr, softmax

from bdh_graph.errors import FileFormatError, MonitorError, StateMismatchError
from bdh_graph.files import read_tagged, write_tagged
from bdh_graph.graphs import Threshold, TopK
from bdh_graph.network.monitors import (ActivityMonitor, EventMonitor, Monitor, SparsityMonitor, SpikeMonitor,
                                        SynapseMonitor)
from bdh_graph.network import NonFiniteError, build_network
from bdh_graph.network.network import RECORD
from bdh_graph.network.validation import validate
from helpers import NETWORK_CONFIGS as CONFIGS, assert_events_are_their_definition, random_tokens as tokens

TOL = {np.float64: 1e-9, np.float32: 1e-4}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


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
    assert s["kl_mean"] > 1e-6  # pruning 6 of 272 inputs is not exact
    assert s["top1_agreement"] == np.mean(reference.argmax(1) == logits.argmax(1)) < 1
    assert result.n_edges["x"] <= 2 * 6 * small_model.config.n_neurons
    assert net.synapse_graph.nnz == result.n_edges["x"]
    # a threshold keeps fewer synapses and is measured the same way
    s = validate(small_model, tokens(4)[:8], prune=Threshold(0.5), state_every=0, backend=backend).summary()
    assert s["tokens"] == 8 and s["state_max_rel"] is None and s["x_max_rel"] > 0


def test_a_threshold_above_every_edge_is_refused(small_model):
    """A network on an empty G would be silent: building one is refused, naming the largest |G| (dense reference)."""
    from bdh_graph.graphs import dense_neuron_graph
    largest = float(np.abs(dense_neuron_graph(small_model, "x", "exact")).max())
    with pytest.raises(ValueError, match=rf"beta={2 * largest:g} keeps no edge of G_x \(exact form, whole graph\), "
                                         rf"the network's wiring: its largest \|G\| is {largest:.4g}"):
        build_network(small_model, prune=Threshold(2 * largest))


@pytest.mark.parametrize("wiring, kwargs", [("neuron", {}), ("neuron", dict(prune=TopK(32), synapses="wiring")),
                                            ("hub", {})], ids=["dense", "pruned", "hub"])
def test_events_are_their_definition(small_model, backend, wiring, kwargs):
    assert_events_are_their_definition(small_model, backend, wiring, kwargs)


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


class Recorder(Monitor):
    """Keeps the keys of every record it is given."""

    def __init__(self):
        super().__init__()
        self.keys = []

    def record(self, record):
        super().record(record)
        self.keys.append(set(record))


@pytest.mark.parametrize("wiring", ["neuron", "hub"])
def test_a_step_records_only_what_its_monitors_declare(small_model, backend, wiring):
    always = {"position", "token", "logits", "events"}
    monitors = {"events": [EventMonitor()], "sparsity": [SparsityMonitor()],
                "activity": [ActivityMonitor(which=("y",))], "synapse": [SynapseMonitor(0, 0, [(1, 1)])]}
    declared = {"events": {"events"}, "sparsity": {"x_active", "y_active"}, "activity": {"y"}, "synapse": {"w", "k"}}
    full = {}
    build_network(small_model, wiring=wiring, backend=backend).step(3, full)
    assert set(full) == always | RECORD - {"spikes"}
    for name, attached in monitors.items():
        recorder = Recorder()
        recorder.variables = frozenset()  # it reads nothing beyond what the others declared
        build_network(small_model, wiring=wiring, backend=backend).run([3, 4], [*attached, recorder], progress=False)
        assert recorder.keys == [always | declared[name]] * 2, name
    # the counts made on the backend are the active neurons of the full record
    np.testing.assert_array_equal(monitors["sparsity"][0].x[0] * small_model.config.n_neurons,
                                  np.count_nonzero(full["x"], axis=1))
    everything = Recorder()  # a monitor that declares nothing specific gets every entry
    build_network(small_model, wiring=wiring, backend=backend).run([3], [everything], progress=False)
    assert everything.keys == [set(full)]


@pytest.mark.parametrize("monitor, read", [
    (ActivityMonitor(), lambda m: m.raster(0, "y")), (SparsityMonitor(), lambda m: m.x),
    (SparsityMonitor(), lambda m: m.y), (SynapseMonitor(0, 0, [(0, 0)]), lambda m: m.values),
    (EventMonitor(), lambda m: m.events), (SpikeMonitor(), lambda m: m.spikes(0, "x")),
    (SpikeMonitor(), lambda m: m.counts(0, "x")), (SpikeMonitor(), lambda m: m.population_rate(0, "x")),
    (SpikeMonitor(), lambda m: m.save("never.npz")),
])
def test_a_monitor_read_before_it_watched_says_so(monitor, read):
    name = type(monitor).__name__
    with pytest.raises(MonitorError, match=f"{name}\\.\\w+: this monitor has not watched a network yet; pass it to "
                                           "Network.run"):
        read(monitor)


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
        with pytest.raises(StateMismatchError, match=f"state file '.*state.npz' was saved by another network "
                                                     f"\\({differs}: file"):
            other.load_state(path)
        assert other.position == 0 and not np.any(other.rho(0))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(FileFormatError, match="junk.npz' is not a network state file"):
        net.load_state(tmp_path / "junk.npz")
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        net.load_state(tmp_path / "missing.npz")


def test_state_file_of_another_kind_or_version_is_refused(small_model, tmp_path):
    net = build_network(small_model, wiring="hub", backend="numba")
    saved = read_tagged(net.save_state(tmp_path / "state.npz"), "network_state", 1)
    assert saved.meta["position"] == 0 and set(saved.arrays) == {"synapses"}
    write_tagged(tmp_path / "v2.npz", "network_state", 2, saved.arrays, saved.meta)
    with pytest.raises(FileFormatError, match="v2.npz' is a network state file of version 2; this bdh_graph reads "
                                              "version 1"):
        net.load_state(tmp_path / "v2.npz")
    write_tagged(tmp_path / "spikes.npz", "spike_recording", 1, saved.arrays, saved.meta)
    with pytest.raises(FileFormatError, match="spikes.npz' is not a network state file: it is a 'spike_recording' "
                                              "file"):
        net.load_state(tmp_path / "spikes.npz")
    np.savez(tmp_path / "plain.npz", synapses=saved.arrays["synapses"])
    with pytest.raises(FileFormatError, match="plain.npz' is not a network state file: it has no 'bdh_graph' header"):
        net.load_state(tmp_path / "plain.npz")
    write_tagged(tmp_path / "short.npz", "network_state", 1, {"synapses": saved.arrays["synapses"][:1]}, saved.meta)
    with pytest.raises(StateMismatchError, match="short.npz': 'synapses' has shape \\(1, 2, 64, 16\\), expected "
                                                 "\\(3, 2, 64, 16\\)"):
        net.load_state(tmp_path / "short.npz")


def test_bad_input(small_model, backend):
    net = build_network(small_model, wiring="hub", backend=backend)
    with pytest.raises(ValueError, match="token id 256, expected ids in \\[0, 256\\)"):
        net.run([1, 2, 256], progress=False)
    with pytest.raises(ValueError, match="token id -1"):
        net.step(-1)
    with pytest.raises(ValueError, match="token holds token id 256, expected ids in \\[0, 256\\)"):
        net.step(np.int64(256))
    for not_an_id in (True, 2.5):
        with pytest.raises(TypeError, match="integer token ids"):
            net.step(not_an_id)
    assert net.position == 0  # nothing refused was stepped
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


@pytest.mark.parametrize("wiring, kwargs", [("neuron", {}), ("neuron", dict(synapses="wiring")), ("hub", {})])
def test_non_finite_value_names_token_and_layer(make_model, backend, wiring, kwargs):
    """Normfree activity grows with the weights; at x400 it overflows float32 within a few tokens (on a synapse
    graph the Numba backend runs each layer as one fused call)."""
    model = make_model(CONFIGS["normfree"][0], seed=2, scale=400.0)
    net = build_network(model, wiring=wiring, dtype=np.float32, backend=backend, **kwargs)
    with np.errstate(all="ignore"), pytest.raises(NonFiniteError, match=r"non-finite \w+ in layer \d .* at token "
                                                                        r"position \d+ \(token id \d+\)"):
        net.run(tokens(2), progress=False)
