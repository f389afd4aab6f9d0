"""SONATA circuits and spike files, NWB recordings (``bdh_graph.interop``), each read back by an independent reader:
libsonata (the SONATA reference reader), NEST's ``SonataNetwork``, pynwb and nwbinspector; the edges against a
numpy recomputation from the weights."""
from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import TINY, random_model

from bdh_graph.graphs import extract, graph_factors
from bdh_graph.interop import MissingExtraError, require
from bdh_graph.interop.clock import Clock
from bdh_graph.interop.sonata import (STAND_IN_MODEL, input_drive, monitor_spikes, write_circuit, write_hub_circuit,
                                      write_spikes)
from bdh_graph.network import build_network
from bdh_graph.network.address import default_synapses, synapse_monitors
from bdh_graph.network.monitors import ActivityMonitor, EventMonitor, SparsityMonitor, SpikeMonitor
from bdh_graph.network.recordings import RunRecording

libsonata = pytest.importorskip("libsonata", reason="libsonata (the test extra) is not installed")
h5py = pytest.importorskip("h5py", reason="h5py (the interop extra) is not installed")

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TEXT = "Dragons hatch é."  # a two-byte character: the intervals are bytes, not characters
K_TOP = 3
n, N, V = TINY.n_neurons, TINY.N, TINY.vocab_size


@pytest.fixture(scope="module")
def model():
    return random_model(TINY, 5)


def numpy_graph(model, form: str, head: int | None) -> np.ndarray:
    """``A[i, j]`` = weight of the edge i -> j, straight from the weights (docs/model.md 4.1): ``decoder @ D`` in
    the analysis form, ``C [decoder; embed] @ D`` with LayerNorm's centring C in the exact form."""
    w = {k: v.detach().double().numpy() for k, v in model.state_dict().items()}
    D = np.concatenate(list(w["encoder"]), axis=1)  # (d, n): head-major columns
    pre = w["decoder"]
    if form == "exact":
        pre = np.concatenate([pre, w["embed.weight"]])
        pre = pre - pre.mean(axis=1, keepdims=True)
    A = pre @ D
    if head is None:
        return A
    cols = slice(head * N, (head + 1) * N)
    return A[cols, cols] if form == "analysis" else A[:, cols]


def top_k_edges(A: np.ndarray, k: int, pre_ids, post_ids) -> dict:
    """{(pre id, post id): signed weight} of each column's k strongest excitatory and inhibitory entries."""
    edges = {}
    for sign in (1.0, -1.0):
        S = sign * A
        for j in range(S.shape[1]):
            for i in np.argsort(S[:, j])[-k:]:
                if S[i, j] > 0:
                    edges[int(pre_ids[i]), int(post_ids[j])] = A[i, j]
    return edges


def sonata_edges(config_path) -> dict:
    """{(pre id, post id): syn_weight} of every edge population, read by libsonata, ids mapped to the package's
    global neuron ids (model neurons by their ``neuron_id`` attribute, input neurons n + byte)."""
    config = libsonata.CircuitConfig.from_file(str(config_path))
    ids = {}
    for name in config.node_populations:
        population = config.node_population(name)
        everything = population.select_all()
        ids[name] = (population.get_attribute("neuron_id", everything) if name == "neurons"
                     else n + population.get_attribute("byte", everything))
    edges = {}
    for name in config.edge_populations:
        population = config.edge_population(name)
        everything = population.select_all()
        sources = ids[population.source][population.source_nodes(everything)]
        targets = ids[population.target][population.target_nodes(everything)]
        weights = population.get_attribute("syn_weight", everything)
        assert (weights > 0).all() if name.endswith("excitatory") else (weights < 0).all()
        for i, j, w in zip(sources.tolist(), targets.tolist(), weights.tolist()):
            assert (i, j) not in edges, f"edge {i} -> {j} written twice"
            edges[i, j] = w
    return edges


def assert_same_edges(found: dict, expected: dict) -> None:
    assert found.keys() == expected.keys()
    np.testing.assert_allclose([found[e] for e in expected], list(expected.values()), rtol=1e-12, atol=1e-15)


# --- the clock ----------------------------------------------------------------------------------------------------

def test_the_clock_places_tokens_and_micro_steps_in_milliseconds():
    clock = Clock(8.0)
    assert clock.spike_ms(3, 1, 4) == 26.0 and clock.onset_ms(2) == 16.0 and clock.duration_ms(5) == 40.0
    assert clock.rate_hz(0.25, 4) == 125.0  # a quarter of the neurons per 2 ms micro-step: 125 spikes/s each
    for bad in (0, -1.0, float("nan"), True):
        with pytest.raises(ValueError, match="token_ms"):
            Clock(bad)


# --- SONATA circuits ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("form, head", [("analysis", 1), ("analysis", None), ("exact", 0)])
def test_libsonata_reads_the_extracted_graph_edge_for_edge(model, tmp_path, form, head):
    circuits = extract(model, "x", form, head, top_k=K_TOP).circuits
    written = write_circuit(circuits, tmp_path / "circuit", tokens=np.frombuffer(TEXT.encode(), np.uint8))
    found = sonata_edges(written["circuit_config"])
    package = {}
    for name, sign in (("excitatory", 1.0), ("inhibitory", -1.0)):
        coo = circuits.circuit(name).tocoo()
        package.update({(int(circuits.pre_ids[i]), int(circuits.post_ids[j])): sign * w
                        for i, j, w in zip(coo.row, coo.col, coo.data)})
    assert_same_edges(found, package)  # the package's own extraction ...
    assert_same_edges(found, top_k_edges(numpy_graph(model, form, head), K_TOP, circuits.pre_ids, circuits.post_ids))
    assert sum(written["edges"].values()) == len(found) == circuits.n_edges
    # node ids: the index within the head for one head's analysis block, else the global id
    neurons = libsonata.CircuitConfig.from_file(str(written["circuit_config"])).node_population("neurons")
    neuron_id = neurons.get_attribute("neuron_id", neurons.select_all())
    expected = np.arange(head * N, (head + 1) * N) if form == "analysis" and head is not None else np.arange(n)
    np.testing.assert_array_equal(neuron_id, expected)


def test_the_sonata_indices_find_each_node_s_edges(model, tmp_path):
    circuits = extract(model, "x", "exact", None, top_k=K_TOP).circuits
    config = libsonata.CircuitConfig.from_file(str(write_circuit(circuits, tmp_path / "c")["circuit_config"]))
    for name in config.edge_populations:
        population = config.edge_population(name)
        everything = population.select_all()
        sources, targets = population.source_nodes(everything), population.target_nodes(everything)
        for node in range(0, n, 7):
            assert sorted(population.afferent_edges([node]).flatten()) == np.flatnonzero(targets == node).tolist()
            assert sorted(population.efferent_edges([node]).flatten()) == np.flatnonzero(sources == node).tolist()


def test_the_input_neurons_are_a_population_labelled_by_byte_driven_by_the_text(model, tmp_path):
    circuits = extract(model, "x", "exact", 0, top_k=K_TOP).circuits
    clock = Clock(4.0)
    written = write_circuit(circuits, tmp_path / "c", tokens=np.frombuffer(b"abca", np.uint8), clock=clock)
    inputs = libsonata.CircuitConfig.from_file(str(written["circuit_config"])).node_population("inputs")
    everything = inputs.select_all()
    assert inputs.size == V and list(inputs.get_attribute("label", everything)[[32, 97, 233]]) == \
        ["' '", "'a'", "'\\xe9'"]
    simulation = json.loads(written["simulation_config"].read_text())
    assert simulation["run"]["tstop"] == 16.0 and simulation["target_simulator"] == "NEST"
    spikes = libsonata.SpikeReader(str(tmp_path / "c" / "inputs" / "input_spikes.h5"))["inputs"].get()
    assert sorted(spikes) == [(97, 0.1), (97, 12.1), (98, 4.1), (99, 8.1)]  # each token's byte, dt after its onset


def test_the_hub_wiring_s_two_factors_multiply_to_the_graph(model, tmp_path):
    factors = graph_factors(model, "x", "exact", 1)
    config_path = write_hub_circuit(factors, tmp_path / "hub")["circuit_config"]
    config = libsonata.CircuitConfig.from_file(str(config_path))
    assert config.node_populations == {"neurons", "inputs", "hubs"}
    d = TINY.n_embd
    into, out = np.zeros((n + V, d)), np.zeros((d, n))
    for name in config.edge_populations:
        population = config.edge_population(name)
        everything = population.select_all()
        s, t = population.source_nodes(everything), population.target_nodes(everything)
        w = population.get_attribute("syn_weight", everything)
        if population.target == "hubs":
            into[s + (n if population.source == "inputs" else 0), t] += w
        else:
            out[s, t] += w
    np.testing.assert_allclose(into @ out[:, N:2 * N], numpy_graph(model, "exact", 1), rtol=0, atol=1e-12)


def test_a_failed_write_leaves_no_partial_circuit_and_the_old_one_intact(model, tmp_path, monkeypatch):
    from bdh_graph.interop import sonata
    circuits = extract(model, "x", "analysis", 0, top_k=K_TOP).circuits
    folder = tmp_path / "c"
    write_circuit(circuits, folder)
    before = sorted(p.relative_to(folder) for p in folder.rglob("*"))
    with pytest.raises(ValueError, match="exists and is not empty"):
        write_circuit(circuits, folder)

    def broken(f, edges, progress):
        raise OSError("disk full")
    monkeypatch.setattr(sonata, "_write_edge_population", broken)
    for target, overwrite in ((folder, True), (tmp_path / "new", False)):
        with pytest.raises(OSError, match="disk full"):
            write_circuit(circuits, target, overwrite=overwrite)
    assert not (tmp_path / "new").exists()
    assert sorted(p.relative_to(folder) for p in folder.rglob("*")) == before
    assert [p.name for p in tmp_path.iterdir()] == ["c"]  # no temporary folder left behind


# --- NEST ---------------------------------------------------------------------------------------------------------

@pytest.fixture
def nest():
    nest = pytest.importorskip("nest", reason="nest-simulator is not installed (its wheel exists for Linux x86_64)")
    nest.ResetKernel()
    return nest


def test_nest_builds_the_circuit_and_the_text_drives_it(model, tmp_path, nest):
    """``nest.SonataNetwork`` builds the exported circuit from its files, every edge with its weight (as libsonata
    reads them); simulated over the text's input spikes, the stand-in neurons fire: first exactly the neurons whose
    edge from the first byte's input neuron reaches the threshold (from rest, one spike moves the membrane by the
    edge's weight), then in every token whose byte excites a neuron past the threshold. Needs a NEST built with HDF5
    (``tools/build_nest_hdf5.sh``)."""
    if not nest.build_info["have_hdf5"]:
        pytest.skip("this NEST was built without HDF5 (the PyPI wheel is), so nest.SonataNetwork cannot connect; "
                    "tools/build_nest_hdf5.sh builds one that can. test_nest_reads_the_circuit_and_takes_each_edge "
                    "checks the rest")
    circuits = extract(model, "x", "exact", None, top_k=K_TOP).circuits
    rows = np.flatnonzero(circuits.pre_ids >= n)  # the input neurons' rows
    strongest = circuits.pre_ids[rows[circuits.circuit("excitatory")[rows].max(axis=1).toarray().argmax()]] - n
    tokens = np.r_[strongest, np.frombuffer(TEXT.encode(), np.uint8)]  # a first byte that fires a neuron directly
    clock = Clock()
    written = write_circuit(circuits, tmp_path / "c", tokens=tokens, clock=clock)
    network = nest.SonataNetwork(written["circuit_config"], written["simulation_config"])
    nodes = network.BuildNetwork()
    assert nest.num_connections == circuits.n_edges
    assert len(nodes["neurons"]) == n and len(nodes["inputs"]) == V
    # NEST's node ids -> the package's ids (the whole graph has every model neuron: node id = neuron id)
    ids = {g: k for k, g in enumerate(nodes["neurons"].tolist())}
    ids.update({g: n + byte for byte, g in enumerate(nodes["inputs"].tolist())})
    connections = nest.GetConnections()
    built = {(ids[i], ids[j]): w for i, j, w in zip(*(connections.get(key) for key in ("source", "target", "weight")))}
    expected = sonata_edges(written["circuit_config"])
    assert built.keys() == expected.keys()
    np.testing.assert_allclose([built[k] for k in expected], list(expected.values()), rtol=1e-15)

    recorder = nest.Create("spike_recorder")
    nest.Connect(nodes["neurons"], recorder)
    network.Simulate()
    events = recorder.get("events")
    neuron, times = np.array([ids[g] for g in events["senders"]]), np.asarray(events["times"])
    threshold = nodes["neurons"][0].get("V_th")
    fired_by = {b: {j for (i, j), w in expected.items() if i == n + b and w >= threshold} for b in set(tokens)}
    assert fired_by[tokens[0]]
    assert set(neuron[times == times.min()].tolist()) == fired_by[tokens[0]] and times.min() < clock.token_ms
    # later, every byte that excites a neuron past the threshold fires one in its token (from near rest: tau_m is
    # a token, t_ref 2 ms)
    driven = {t for t, b in enumerate(tokens) if fired_by[b]}
    assert len(driven) >= 2 and driven <= set((times // clock.token_ms).astype(int).tolist())


@pytest.mark.filterwarnings("ignore:The inplace keyword")  # pandas 3 deprecates what NEST's reader calls
def test_nest_reads_the_circuit_and_takes_each_edge(model, tmp_path, nest, monkeypatch):
    """NEST's own SONATA reader (``SonataNetwork``: configs, type tables, node files, the stand-in's parameters,
    the input drive, the edge types) up to the kernel's HDF5 edge reader, which the PyPI wheel lacks; then every
    edge, as libsonata reads it, connected with the synapse NEST made of its type."""
    from nest.lib import hl_api_sonata
    circuits = extract(model, "x", "exact", None, top_k=K_TOP).circuits
    clock = Clock(5.0)
    written = write_circuit(circuits, tmp_path / "c", tokens=np.frombuffer(b"hatch", np.uint8), clock=clock)
    monkeypatch.setattr(hl_api_sonata, "have_hdf5", True)  # only the kernel's Connect needs HDF5; it is not called
    network = nest.SonataNetwork(written["circuit_config"], written["simulation_config"])
    nodes = network.Create()
    assert len(nodes["neurons"]) == n and len(nodes["inputs"]) == V
    assert set(nodes["neurons"].get("model")) == {STAND_IN_MODEL}
    config = libsonata.CircuitConfig.from_file(str(written["circuit_config"]))
    driven = config.edge_population("inputs_to_neurons_excitatory")
    threshold = np.median(driven.get_attribute("syn_weight", driven.select_all()))  # the stand-in's rule
    assert nodes["neurons"][0].get("V_th") == pytest.approx(threshold, rel=1e-12)
    assert nodes["neurons"][0].get("tau_m") == 5.0 and nodes["neurons"][0].get("t_ref") == 2.0
    np.testing.assert_allclose(nodes["inputs"][ord("h")].get("spike_times"), [0.1, 20.1])
    specs = network._create_graph_specs()["edges"]  # the edge type table as NEST's reader parsed it
    assert len(specs) == 1
    for name in sorted(config.edge_populations):
        population = config.edge_population(name)
        everything = population.select_all()
        source_ids = np.array(nodes[population.source].tolist())[population.source_nodes(everything)]
        target_ids = np.array(nodes[population.target].tolist())[population.target_nodes(everything)]
        with h5py.File(tmp_path / "c" / "network" / "edges.h5") as f:  # libsonata does not show the type ids
            (edge_type,) = set(f[f"edges/{name}/edge_type_id"][:].tolist())
        spec = dict(specs[0]["syn_specs"][str(edge_type)])
        weights = population.get_attribute("syn_weight", everything)
        nest.Connect(source_ids, target_ids, "one_to_one",
                     {**spec, "weight": weights, "delay": np.full(weights.size, float(spec["delay"]))})
    assert nest.num_connections == circuits.n_edges
    connections = nest.GetConnections(nodes["inputs"])
    assert np.sum(connections.get("weight")) == pytest.approx(
        sum(w for (i, _), w in sonata_edges(written["circuit_config"]).items() if i >= n), rel=1e-12)
    nest.Simulate(clock.duration_ms(5))  # the stand-in network runs on its input drive


# --- spike files and NWB recordings -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def spiking_run(model):
    tokens = np.frombuffer(TEXT.encode(), np.uint8).astype(np.int64)
    net = build_network(model, mode="spike", spike_steps=4, seed=3, backend="numpy")
    activity, sparsity, events, spikes = ActivityMonitor(), SparsityMonitor(), EventMonitor(), SpikeMonitor()
    traced = synapse_monitors(default_synapses(model, tokens), model.config)
    net.run(tokens, monitors=[activity, sparsity, events, spikes, *traced])
    recording = RunRecording.from_monitors(model.config, tokens, activity, sparsity, events, traced,
                                           {"wiring": net.wiring, "mode": net.mode})
    return recording, spikes


def test_the_sonata_spike_file_holds_every_spike_on_the_clock(spiking_run, tmp_path):
    _, spikes = spiking_run
    clock = Clock(10.0)
    path = write_spikes(tmp_path / "spikes.h5", monitor_spikes(spikes, clock))
    reader = libsonata.SpikeReader(str(path))
    assert set(reader.get_population_names()) == {"inputs", "x_layer0", "x_layer1", "y_layer0", "y_layer1"}
    for layer in spikes.layers:
        for population in spikes.populations:
            token, step, neuron = spikes.spikes(layer, population)
            found = sorted(reader[f"{population}_layer{layer}"].get())
            expected = sorted(zip(neuron.tolist(), (10.0 * (token + step / 4)).tolist()))
            assert len(found) == len(expected) > 0
            np.testing.assert_allclose(np.array(found), np.array(expected), rtol=1e-12)
    assert sorted(reader["inputs"].get()) == sorted(zip(*map(np.ndarray.tolist, input_drive(spikes.tokens, clock))))


def test_pynwb_reads_the_recording_spike_for_spike_and_nwbinspector_finds_nothing_wrong(spiking_run, tmp_path):
    pynwb = pytest.importorskip("pynwb", reason="pynwb (the interop extra) is not installed")
    nwbinspector = pytest.importorskip("nwbinspector", reason="nwbinspector (the test extra) is not installed")
    from bdh_graph.interop.nwb import write_nwb
    recording, spikes = spiking_run
    clock = Clock(20.0)
    path = write_nwb(tmp_path / "recording.nwb", recording, spikes, clock)
    with pynwb.NWBHDF5IO(str(path), "r") as io:
        f = io.read()
        text = f.intervals["text"]
        assert bytes(text["byte"][:].astype(np.uint8)).decode("utf-8") == TEXT
        np.testing.assert_allclose(text["start_time"][:], 0.02 * np.arange(len(TEXT.encode())))
        units = f.units.to_dataframe()
        assert len(units) > 0 and units.index.is_unique
        for layer in spikes.layers:
            for population in spikes.populations:
                counts = spikes.counts(layer, population).sum(axis=0)  # the monitor's spikes per neuron
                mine = units[(units["layer"] == layer) & (units["population"] == population)]
                assert sorted(mine["neuron"]) == np.flatnonzero(counts).tolist()  # one unit per neuron that spiked
                for neuron, times, head in zip(mine["neuron"], mine["spike_times"], mine["head"]):
                    assert len(times) == counts[neuron] and head == neuron // N
                    token, step, who = spikes.spikes(layer, population)
                    np.testing.assert_allclose(np.sort(times), np.sort(0.02 * (token + step / 4)[who == neuron]))
        series = f.processing["network"]
        np.testing.assert_allclose(series["y_active_fraction_layer1"].data[:], recording.sparsity_y[:, 1])
        for p, synapse in enumerate(recording.synapses):
            trace = series[f"synapse_{synapse.layer}_{synapse.pre}_{synapse.post}"]
            np.testing.assert_allclose(trace.data[:], recording.synapse_values[:, p])
            assert trace.rate == 50.0 and synapse.address(recording.config) in trace.description
        steps, neurons, rates = recording.raster(0, "x")
        table = series["x_activity"].to_dataframe()
        layer0 = table[table["layer"] == 0]
        np.testing.assert_array_equal(layer0["token"], steps)
        np.testing.assert_array_equal(layer0["neuron"], neurons)
        np.testing.assert_allclose(layer0["rate"], rates)
    messages = list(nwbinspector.inspect_nwbfile(nwbfile_path=str(path)))
    serious = [m for m in messages if m.importance.name in ("CRITICAL", "BEST_PRACTICE_VIOLATION")]
    assert serious == [], [f"{m.check_function_name}: {m.message}" for m in serious]


def test_a_missing_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "pynwb", None)  # import pynwb now raises ImportError
    with pytest.raises(MissingExtraError, match=r'an NWB recording needs pynwb.*pip install "bdh-graph\[interop\]"'):
        require("numpy", "pynwb", purpose="an NWB recording")
