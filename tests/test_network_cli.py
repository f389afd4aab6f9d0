"""``bdh-graph validate`` and ``bdh-graph step`` on a tiny checkpoint; the run recording file they write."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import TINY as CONFIG, run_json, tiny_checkpoint

from bdh_graph import FileFormatError
from bdh_graph.cli import main
from bdh_graph.files import read_header, write_tagged
from bdh_graph.graphs import dense_neuron_graph
from bdh_graph.model.checkpoints import load_model
from bdh_graph.network import build_network
from bdh_graph.network.address import Synapse, byte_name
from bdh_graph.network.monitors import load_spikes
from bdh_graph.network.recordings import RunRecording, load_recording

TEXT = "The quick brown fox jumps over the lazy dog; the dog sleeps on."
N, n = CONFIG.N, CONFIG.n_neurons  # 32 x-neurons per head, 64 neurons

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def files(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text(TEXT, encoding="utf-8")
    return tiny_checkpoint(tmp_path, 31, 15.0), str(text)


@pytest.mark.parametrize("wiring", ["neuron", "hub"])
def test_validate_command_reports_exactness(capsys, files, wiring):
    s = run_json(capsys, "validate", files[0], "--text", files[1], "--wiring", wiring, "--state-every", "1")
    assert s["tokens"] == len(TEXT) and s["max_rel"] < 1e-9 and s["top1_agreement"] == 1.0


def test_validate_command_measures_a_pruned_graph(capsys, files):
    s = run_json(capsys, "validate", files[0], "--text", files[1], "--top-k", "3", "--synapses", "wiring",
                 "--dtype", "float32")
    assert s["prune"] == "TopK(k=3)" and s["edges"]["x"] <= 2 * 3 * CONFIG.n_neurons and s["kl_mean"] > 0


def test_validate_explains_its_fidelity_numbers(capsys, files):
    assert main(["validate", files[0], "--text", files[1], "--top-k", "3"]) == 0
    text = capsys.readouterr().out
    assert "KL: nats per byte lost when the graph's next-byte distribution stands in" in text
    assert "top-1: share of bytes on which both predict the same most likely next byte" in text
    assert "this network is an approximation (pruned by TopK(k=3)); the exact one" in text


@pytest.mark.parametrize("command", ["validate", "step"])
def test_a_beta_that_keeps_no_edge_is_refused_before_any_work(capsys, files, tmp_path, command):
    largest = np.abs(dense_neuron_graph(load_model(files[0]), "x", "exact")).max()  # G_x is checked first
    out = tmp_path / "run"
    argv = [command, files[0], "--text", files[1], "--beta", "1000", *(["--out", str(out)] * (command == "step"))]
    assert main(argv) == 2
    printed = capsys.readouterr()
    assert (f"bdh-graph {command}: error: --beta=1000 keeps no edge of G_x (exact form, whole graph), the network's "
            f"wiring: its largest |G| is {largest:.4g}") in printed.err
    assert "bdh-graph info" in printed.err and "building" not in printed.err and printed.out == ""
    assert not out.exists()  # nothing written


def test_step_command_writes_figures_and_recordings(capsys, files, tmp_path):
    out = tmp_path / "run"
    # one synapse in each address form: the older L,H,I,J, a byte for an input neuron, global indices
    data = run_json(capsys, "step", files[0], "--text", files[1], "--out", str(out),
                    "--synapse", "1,0,3,5", "--synapse", "1:'\\x10':2", "--synapse", f"0:70:{N + 31}")
    expected = [Synapse(1, 3, 5), Synapse(1, n + 0x10, 2), Synapse(0, 70, N + 31)]
    assert [s["address"] for s in data["synapses"]] == ["1:3:5", "1:'\\x10':2", f"0:'\\x06':{N + 31}"]
    for name in ("raster.png", "sparsity.png", "synapses.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG", name
    header = read_header(out / "recordings.npz")
    assert (header["format"], header["version"], header["meta"]["config"]) == ("run_recording", 1, CONFIG.to_dict())
    rec = load_recording(out / "recordings.npz")
    assert rec.tokens.tolist() == list(TEXT.encode()) and rec.synapses == expected
    # the traced synapses (from w and k alone) against sigma as stored by a dense neuron network after the text
    net = build_network(load_model(files[0]), dtype=np.float64)
    net.run(TEXT, progress=False)
    stored = [net.sigma(s.layer, s.post // N)[s.pre, s.post % N] for s in expected]
    np.testing.assert_allclose(rec.synapse_values[-1], stored, rtol=1e-5)
    assert rec.sparsity_y.shape == (len(TEXT), CONFIG.n_layer) and rec.events.sum() == data["events"]
    steps, neurons, rates = rec.raster(1, "y")
    assert len(steps) == len(neurons) == len(rates) and neurons.max() < n and (rates > 0).all()
    # the y raster and the sparsity are two records of the same firing
    np.testing.assert_allclose(np.bincount(steps, minlength=len(TEXT)) / n, rec.sparsity_y[:, 1])
    with pytest.raises(FileFormatError, match="is not a spike recording: it is a 'run_recording' file"):
        load_spikes(out / "recordings.npz")


def test_step_command_default_synapses_and_errors(capsys, files, tmp_path):
    data = run_json(capsys, "step", files[0], "--text", files[1], "--out", str(tmp_path / "a"), "--wiring", "hub")
    commonest = max(set(TEXT.encode()), key=TEXT.encode().count)
    assert [(s["layer"], s["pre"]) for s in data["synapses"]] == [(1, n + commonest)] * 4
    assert all(s["address"].startswith(f"1:{byte_name(commonest)}:") for s in data["synapses"])
    step = ["step", files[0], "--text", files[1], "--out", str(tmp_path / "b")]
    for argv, message in (
            (["--synapse", "1,0,3"], "bdh-graph step: error: --synapse '1,0,3': expected LAYER:PRE:POST"),
            (["--synapse", "1,0,3,99"], "x-neuron J = 99 must lie in 0..1 and 0..31"),
            (["--synapse", "1:3:64"], "--synapse '1:3:64': post index 64 is out of range: expected an x-neuron 0..63"),
            (["--wiring", "hub", "--mode", "spike", "--synapse", "1:3:5"], "--synapse: a spiking hub network"),
            (["--wiring", "hub", "--top-k", "3"], "--top-k, --beta and --synapses wiring prune the neuron wiring"),
            (["--mode", "spike", "--rate-scale", "q=2"], "--rate-scale: rate_scale names unknown populations ['q']")):
        assert main([*step, *argv]) == 2, argv
        assert message in capsys.readouterr().err, argv
    assert not (tmp_path / "b").exists()  # refused before anything was written
    (tmp_path / "file").write_text("")
    for argv, message in ((["--top-k", "3", "--beta", "0.1"], "not allowed with argument"),
                          (["--top-k", "0"], "argument --top-k: TopK k must be an integer >= 1, got 0"),
                          (["--spike-steps", "0"], "argument --spike-steps: must be >= 1, got 0"),
                          (["--rate-scale", "x=-2"], "argument --rate-scale: a rate scale must be 'max' or a finite"),
                          (["--rate-scale", "fast"], "argument --rate-scale: values must be 'max' or numbers"),
                          (["--out", str(tmp_path / "file")], "argument --out: '")):
        with pytest.raises(SystemExit) as exit_:
            main([*step, *argv])
        assert exit_.value.code == 2 and message in capsys.readouterr().err, argv


def test_step_command_in_spike_mode(capsys, files, tmp_path):
    out = tmp_path / "spiking"
    data = run_json(capsys, "step", files[0], "--text", files[1], "--out", str(out), "--wiring", "hub",
                    "--mode", "spike", "--spike-steps", "4", "--seed", "3")
    assert data["mode"] == "spike" and data["spike_options"]["spike_steps"] == 4 and data["spikes"] > 0
    assert data["synapses"] == []  # a spiking hub network stores no sigma to trace
    for name in ("spike_raster.png", "population_rate.png", "raster.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG", name
    saved = load_spikes(out / "spikes.npz")
    assert saved["meta"]["spike_steps"] == 4 and saved["tokens"].tolist() == list(TEXT.encode())
    assert load_recording(out / "recordings.npz").run["spike_options"]["seed"] == 3
    with pytest.raises(FileFormatError, match="is not a run recording: it is a 'spike_recording' file"):
        load_recording(out / "spikes.npz")
    again = run_json(capsys, "step", files[0], "--text", files[1], "--out", str(tmp_path / "again"), "--wiring",
                     "hub", "--mode", "spike", "--spike-steps", "4", "--seed", "3")
    assert again["spikes"] == data["spikes"] and again["events"] == data["events"]
    s = run_json(capsys, "validate", files[0], "--text", files[1], "--mode", "spike", "--spike-steps", "64",
                 "--rate-scale", "x=max,w=max")
    assert s["mode"] == "spike" and s["spike_steps"] == 64 and 0 < s["kl_mean"] < 1


def test_run_recording_round_trips_and_other_files_are_refused(tmp_path):
    rng = np.random.default_rng(0)
    T, L = 5, CONFIG.n_layer
    rasters = {(layer, which): (np.array([0, 0, 3]), np.array([1, 7, 63], np.int32), rng.random(3))
               for layer in range(L) for which in ("x", "y")}
    recording = RunRecording(CONFIG, np.arange(65, 65 + T), rng.random((T, L)), rng.random((T, L)),
                             np.arange(T) * 10, [Synapse(1, n + 32, 40), Synapse(0, 3, 5)], rng.random((T, 2)),
                             rasters, {"wiring": "hub"})
    back = load_recording(recording.save(tmp_path / "rec.npz"))
    assert back.config == CONFIG and back.synapses == recording.synapses and back.run == {"wiring": "hub"}
    for name in ("tokens", "sparsity_x", "sparsity_y", "events", "synapse_values"):
        np.testing.assert_array_equal(getattr(back, name), getattr(recording, name), err_msg=name)
    for key, raster in rasters.items():
        for got, want in zip(back.raster(*key), raster):
            np.testing.assert_array_equal(got, want)
    write_tagged(tmp_path / "v2.npz", "run_recording", 2, {"tokens": np.zeros(1)})
    with pytest.raises(FileFormatError, match=r"v2.npz' is a run recording of version 2; this bdh_graph reads "
                                              "version 1"):
        load_recording(tmp_path / "v2.npz")
    write_tagged(tmp_path / "cut.npz", "run_recording", 1, {"tokens": np.zeros(1)},
                 {"config": CONFIG.to_dict(), "layers": [0], "which": ["y"]})
    with pytest.raises(FileFormatError, match=r"run recording '.*cut.npz' is incomplete: it lacks \['sparsity_x'"):
        load_recording(tmp_path / "cut.npz")
    np.savez(tmp_path / "plain.npz", tokens=np.zeros(1))
    with pytest.raises(FileFormatError, match="plain.npz' is not a run recording: it has no 'bdh_graph' header"):
        load_recording(tmp_path / "plain.npz")
