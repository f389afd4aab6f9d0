"""Damping in the graph network (docs/model.md 4.7): the synapses of head h decay by gamma_h before every token's
reads, lazily (one scale per layer and head, folded into the stored values before it underflows), in both wirings,
rate and spike mode, on every backend; exact against the tensor model's recurrent form (float64, 1e-9), whose
damping test_damping.py checks against a double loop written from the definition."""
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from bdh_graph import BDHConfig, save_model
from bdh_graph.errors import StateMismatchError
from bdh_graph.network import build_network
from bdh_graph.network.monitors import SynapseMonitor
from bdh_graph.network.validation import validate
from helpers import (DAMPED_CONFIG as CONFIG, DAMPING_GAMMAS as GAMMAS, OneByOne, assert_events_are_their_definition,
                     damped_model, random_model, run_json)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

T = 24


def tokens(seed: int = 3, length: int = T) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, length)


def every_pair(config) -> sp.csr_array:
    """A synapse graph that holds every pair: exact, yet stored as a graph (the fused neuron layer's case)."""
    return sp.csr_array(np.ones((config.n_neurons + config.vocab_size, config.n_neurons)))


WIRINGS = [("neuron", {}), ("neuron", {"synapses": every_pair(CONFIG)}), ("hub", {})]
WIRING_IDS = ["dense", "graph", "hub"]


def tensor_run(model, text):
    """The tensor model's recurrent form over ``text``: logits (T, V) and the final state rho (L, h, d, N)."""
    state, logits = model.init_state(1), []
    with torch.no_grad():
        for token in text:
            out, state = model.step(torch.tensor([int(token)]), state)
            logits.append(out[0].numpy())
    return np.array(logits), state.rho[:, 0].numpy()


def assert_equals_tensor(net, model, text, tol=1e-9):
    logits, rho = tensor_run(model, text)
    got = net.run(text, progress=False)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, logits, rtol=0, atol=tol * np.abs(logits).max())
    for layer in range(model.config.n_layer):
        np.testing.assert_allclose(net.rho(layer), rho[layer], rtol=0, atol=tol * np.abs(rho[layer]).max())


@pytest.mark.parametrize("wiring, kwargs", WIRINGS, ids=WIRING_IDS)
def test_damped_network_equals_the_tensor_model(backend, wiring, kwargs):
    model = damped_model()
    s = validate(model, tokens(), wiring=wiring, backend=backend, **kwargs).summary()
    for q in ("x", "y", "v", "state", "logits"):
        assert s[f"{q}_max_rel"] < 1e-9, (q, s)
    assert s["top1_agreement"] == 1.0
    # not vacuous: without the decay the network reads otherwise
    undamped = build_network(random_model(CONFIG.replace(damping=False), 0), wiring=wiring, backend=backend, **kwargs)
    damped = build_network(model, wiring=wiring, backend=backend, **kwargs)
    assert np.abs(undamped.run(tokens(), progress=False) - damped.run(tokens(), progress=False)).max() > 1e-3
    np.testing.assert_allclose(damped.decay(), GAMMAS, rtol=1e-12)
    np.testing.assert_allclose(damped.time_constants(), model.time_constants().numpy(), rtol=1e-12)


@pytest.mark.parametrize("wiring, kwargs", WIRINGS, ids=WIRING_IDS)
def test_folding_every_few_tokens_stays_exact(backend, wiring, kwargs):
    """The fold threshold raised to 0.5 folds head 0 (gamma 0.35) at every token and head 1 (0.8) every third:
    the network still equals the tensor model; the true state leaves the store (sigma, rho, state files)."""
    model = damped_model()
    net = build_network(model, wiring=wiring, backend=backend, **kwargs)
    net.synapses.fold_below = 0.5
    assert_equals_tensor(net, model, tokens())
    assert (net.synapses.scales >= 0.5 * min(GAMMAS)).all() and (net.synapses.scales < 1).any()
    lazy = build_network(model, wiring=wiring, backend=backend, **kwargs)  # the default threshold: no fold
    lazy.run(tokens(), progress=False)
    np.testing.assert_allclose(lazy.synapses.scales, np.tile(np.array(GAMMAS) ** T, (CONFIG.n_layer, 1)), rtol=1e-12)
    if wiring == "neuron":
        for layer in range(CONFIG.n_layer):
            for h in range(CONFIG.n_head):
                a, b = (n.sigma(layer, h).toarray() for n in (net, lazy))
                np.testing.assert_allclose(a, b, rtol=0, atol=1e-12 * np.abs(b).max())


@pytest.mark.parametrize("gamma", [1e-200, 1e-30, 1 - 1e-12])
@pytest.mark.parametrize("wiring, kwargs", WIRINGS, ids=WIRING_IDS)
def test_extreme_factors_stay_finite_and_exact(wiring, kwargs, gamma):
    """gamma near 0 (folded at every token, or after a few) and near 1, over 64 tokens, float64 and float32."""
    model = damped_model(gammas=(gamma, 0.5, gamma))
    text = tokens(4, 64)
    assert_equals_tensor(build_network(model, wiring=wiring, backend="numba", **kwargs), model, text)
    net32 = build_network(model, wiring=wiring, backend="numba", dtype=np.float32, **kwargs)
    assert np.isfinite(net32.run(text, progress=False)).all()
    assert all(np.isfinite(net32.rho(layer)).all() for layer in range(CONFIG.n_layer))


def test_a_lesion_with_damping_holds_its_synapses_at_zero(backend):
    """Chosen synapses of sigma stay exactly zero in the neuron wiring, and the hub wiring, which stores rho, holds
    the same sigma (rho = E_ext sigma); a whole-head lesion leaves that head's rho zero. Folding at every few
    tokens (threshold 0.5) changes nothing."""
    model = damped_model()
    c = CONFIG
    pairs = np.stack(np.nonzero(np.random.default_rng(0).random((c.n_neurons + c.vocab_size, c.N)) < 0.3), axis=1)
    nets = {}
    for wiring in ("neuron", "hub"):
        net = build_network(model, wiring=wiring, backend=backend)
        net.synapses.fold_below = 0.5
        net.lesion({(1, 2): pairs, (0, 1): "all"})
        net.run(tokens(), progress=False)
        nets[wiring] = net
    sigma = nets["neuron"].sigma(1, 2).toarray()
    assert (sigma[pairs[:, 0], pairs[:, 1]] == 0).all() and np.abs(sigma).max() > 0
    for layer in range(c.n_layer):
        rho = nets["neuron"].rho(layer)
        np.testing.assert_allclose(nets["hub"].rho(layer), rho, rtol=0, atol=1e-9 * np.abs(rho).max())
    assert (nets["hub"].rho(0)[1] == 0).all()


@pytest.mark.parametrize("wiring, kwargs", [("neuron", {}), ("neuron", {"synapses": "wiring"}), ("hub", {})],
                         ids=["dense", "graph", "hub"])
def test_decay_is_not_a_synaptic_event(backend, wiring, kwargs):
    """Each token's events on a damped network are their definition (test_network's, from the recorded activity
    and the graphs): what the undamped network counts on the same activity; the decay adds none."""
    assert_events_are_their_definition(damped_model(), backend, wiring, kwargs)


def test_synapse_monitor_state_files_and_digest(tmp_path):
    """SynapseMonitor traces the true (decayed) sigma in both wirings; a state file saved with the lazy scales away
    from 1 holds the true values and resumes exactly; another network's damping is refused."""
    model = damped_model()
    text = tokens(5, 30)
    pairs = [(0, 0), (5, 3), (CONFIG.n_neurons + int(text[2]), 7)]
    traces = {}
    for wiring in ("neuron", "hub"):
        net = build_network(model, wiring=wiring, backend="numba")
        monitor = SynapseMonitor(1, 2, pairs)
        net.run(text, [monitor], progress=False)
        traces[wiring] = monitor.values
        if wiring == "neuron":
            sigma = net.sigma(1, 2).toarray()
            np.testing.assert_allclose(monitor.values[-1], [sigma[i, j] for i, j in pairs], rtol=1e-12)
    np.testing.assert_allclose(traces["hub"], traces["neuron"], rtol=1e-9, atol=1e-12)
    assert np.abs(traces["neuron"][-1]).max() > 0

    whole = build_network(model, backend="numba").run(text, progress=False)
    first = build_network(model, backend="numba")
    first.run(text[:17], progress=False)
    assert (first.synapses.scales < 1).all()
    path = first.save_state(tmp_path / "state.npz")
    resumed = build_network(model, backend="numba")
    resumed.load_state(path)
    assert (resumed.synapses.scales == 1).all()
    np.testing.assert_allclose(resumed.sigma(0, 1).toarray(), first.sigma(0, 1).toarray(), rtol=1e-15)
    np.testing.assert_allclose(resumed.run(text[17:], progress=False), whole[17:], rtol=0,
                               atol=1e-12 * np.abs(whole).max())
    other = build_network(damped_model(gammas=(0.35, 0.8, 0.9)), backend="numba")
    with pytest.raises(StateMismatchError, match="weights"):
        other.load_state(path)


def test_the_time_constant_ladder_composes_with_damping():
    """Extra forgetting (``scale_synapses(exp(-1/tau))`` before each token, the memory experiments) and the learned
    damping multiply: the network equals the tensor model with gamma_h * exp(-1/tau)."""
    extra = np.exp(-1 / 5)
    model = damped_model()
    net = build_network(model, wiring="hub", backend="numba")
    combined = damped_model(gammas=tuple(g * extra for g in GAMMAS))
    logits = []
    for token in tokens():
        net.scale_synapses(extra)
        logits.append(net.step(int(token)))
    reference, _ = tensor_run(combined, tokens())
    np.testing.assert_allclose(np.array(logits), reference, rtol=0, atol=1e-9 * np.abs(reference).max())


def test_spiking_layer0_synapses_stay_unbiased_with_damping(make_model):
    """As test_spikes.py's layer-0 test, on a damped one-layer model: over 24 fixed seeds each head's total of sigma
    is within 3% of the damped rate model's (measured: 0.3% and 0.9%; one token's decay more puts them 30% and 5%
    off, no damping 10x)."""
    config = BDHConfig(n_layer=1, n_embd=16, n_head=2, mlp_internal_dim_multiplier=4, dropout=0.0, damping=True)
    one_layer = make_model(config, 23)
    with torch.no_grad():
        g = torch.tensor([0.7, 0.95], dtype=torch.float64)
        one_layer.attn.damping.copy_(torch.log(g) - torch.log1p(-g))
    text = "Spikes: a stochastic AND gate."
    rate = build_network(one_layer, backend="numba")
    rate.run(text, progress=False)
    exact = np.stack([rate.sigma(0, h).toarray() for h in range(2)])
    samples = []
    for seed in range(100, 124):
        net = build_network(one_layer, mode="spike", spike_steps=8, seed=seed, backend="numba")
        net.run(text, progress=False)
        samples.append(np.stack([net.sigma(0, h).toarray() for h in range(2)]))
    relative = np.array(samples).sum(axis=(2, 3)).mean(0) / exact.sum(axis=(1, 2)) - 1
    assert np.abs(relative).max() < 0.03, relative


def test_validate_command_on_a_damped_model(capsys, tmp_path):
    path = save_model(damped_model().float(), tmp_path / "damped.safetensors")
    text = tmp_path / "text.txt"
    text.write_text("A damped network reads this.")
    for wiring in ("neuron", "hub"):
        s = run_json(capsys, "validate", str(path), "--text", str(text), "--wiring", wiring, "--state-every", "1")
        assert s["max_rel"] < 1e-9 and s["top1_agreement"] == 1.0


@pytest.mark.parametrize("wiring, kwargs", [("neuron", {"synapses": "wiring"}), ("hub", {})], ids=["graph", "hub"])
def test_the_fused_layers_decay_as_their_kernels_one_by_one(wiring, kwargs):
    """Numba's one-call layers take the lazy scale as the stores do: records, events, stored values and scales equal
    the kernels called one by one (test_network_kernels.py's twin), with folds every few tokens."""
    from bdh_graph.kernels import get_backend
    nets = [build_network(damped_model(), wiring=wiring, backend=backend, **kwargs)
            for backend in (get_backend("numba"), OneByOne())]
    assert [net._fused for net in nets] == [True, False]
    for net in nets:
        net.synapses.fold_below = 0.5
    for token in tokens():
        fused, one_by_one = {}, {}
        nets[0].step(int(token), fused)
        nets[1].step(int(token), one_by_one)
        for name in ("x", "y", "k", "w", "u", "logits"):
            np.testing.assert_allclose(fused[name], one_by_one[name], rtol=1e-10, atol=1e-12, err_msg=name)
        assert fused["events"] == one_by_one["events"]
    np.testing.assert_array_equal(nets[0].synapses.scales, nets[1].synapses.scales)
    np.testing.assert_allclose(nets[0].synapses.values, nets[1].synapses.values, rtol=1e-10, atol=1e-12)


def test_sonata_circuit_and_nwb_recording_carry_the_time_constants(capsys, tmp_path):
    """The SONATA circuit's bdh_graph.json names each head's tau in tokens and in ms on the clock (null without
    damping); ``bdh-graph step`` on a damped model writes them into the NWB file's table (and notes), and
    nwbinspector finds nothing serious."""
    pytest.importorskip("h5py", reason="h5py (the interop extra) is not installed")
    pynwb = pytest.importorskip("pynwb", reason="pynwb (the interop extra) is not installed")
    import json
    from bdh_graph.graphs import graph_factors
    from bdh_graph.interop.clock import Clock
    from bdh_graph.interop.sonata import write_hub_circuit
    model = damped_model()
    taus = model.time_constants().numpy()
    for which, m, expected in (("damped", model, taus), ("undamped", random_model(CONFIG.replace(damping=False), 0),
                                                         None)):
        write_hub_circuit(graph_factors(m, "x", "exact"), tmp_path / which, clock=Clock(5.0))
        found = json.loads((tmp_path / which / "bdh_graph.json").read_text())["synapse_time_constants"]
        if expected is None:
            assert found is None
        else:
            assert [f["head"] for f in found] == [0, 1, 2]
            np.testing.assert_allclose([f["tokens"] for f in found], expected, rtol=1e-12)
            np.testing.assert_allclose([f["ms"] for f in found], 5.0 * expected, rtol=1e-12)

    path = save_model(model.float(), tmp_path / "damped.safetensors")
    text = tmp_path / "text.txt"
    text.write_text("Synapses decay.")
    data = run_json(capsys, "step", str(path), "--text", str(text), "--out", str(tmp_path / "run"), "--token-ms",
                    "20")
    np.testing.assert_allclose(data["time_constants"], taus, rtol=1e-6)
    with pynwb.NWBHDF5IO(str(tmp_path / "run" / "recording.nwb"), "r") as io:
        f = io.read()
        table = f.processing["network"]["synaptic_time_constants"].to_dataframe()
        np.testing.assert_allclose(table["tokens"], data["time_constants"], rtol=1e-12)
        np.testing.assert_allclose(table["seconds"], 0.02 * np.array(data["time_constants"]), rtol=1e-12)
        assert "time_constants" in f.notes
    nwbinspector = pytest.importorskip("nwbinspector", reason="nwbinspector (the test extra) is not installed")
    messages = list(nwbinspector.inspect_nwbfile(nwbfile_path=str(tmp_path / "run" / "recording.nwb")))
    serious = [m for m in messages if m.importance.name in ("CRITICAL", "BEST_PRACTICE_VIOLATION")]
    assert serious == [], [f"{m.check_function_name}: {m.message}" for m in serious]
