"""``bdh-graph validate``, ``bdh-graph step`` and the demo's network section, on a tiny checkpoint."""
from __future__ import annotations

import argparse

import numpy as np
import pytest
from helpers import TINY as CONFIG, run_json, tiny_checkpoint

from bdh_graph.model.checkpoints import load_model
from bdh_graph.cli import main
from bdh_graph.cli.network_commands import network_section, spike_section
from bdh_graph.network.monitors import load_spikes
from bdh_graph.network import build_network

TEXT = "The quick brown fox jumps over the lazy dog; the dog sleeps on."


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


def test_step_command_writes_figures_and_recordings(capsys, files, tmp_path):
    out = tmp_path / "run"
    data = run_json(capsys, "step", files[0], "--text", files[1], "--out", str(out),
                    "--synapse", "1,0,3,5", "--synapse", "1,0,80,2", "--synapse", "0,1,70,31")
    for name in ("raster.png", "sparsity.png", "synapses.png", "recordings.npz"):
        assert (out / name).stat().st_size > 0
    with np.load(out / "recordings.npz", allow_pickle=False) as rec:
        assert rec["tokens"].tolist() == list(TEXT.encode())
        assert rec["synapse_pairs"].tolist() == [[1, 0, 3, 5], [1, 0, 80, 2], [0, 1, 70, 31]]
        # the traced synapses against sigma as stored by a dense neuron network after the same text
        net = build_network(load_model(files[0]), dtype=np.float64)
        net.run(TEXT, progress=False)
        expected = [net.sigma(layer, head)[i, j] for layer, head, i, j in rec["synapse_pairs"]]
        np.testing.assert_allclose(rec["synapse_values"][-1], expected, rtol=1e-5)
        assert rec["sparsity_y"].shape == (len(TEXT), CONFIG.n_layer) and rec["events"].sum() == data["events"]
        steps, neurons = rec["y_layer1_steps"], rec["y_layer1_neurons"]
        assert len(steps) == len(neurons) > 0 and neurons.max() < CONFIG.n_neurons


def test_step_command_default_synapses_and_errors(capsys, files, tmp_path):
    data = run_json(capsys, "step", files[0], "--text", files[1], "--out", str(tmp_path / "a"), "--wiring", "hub")
    commonest = max(set(TEXT.encode()), key=TEXT.encode().count)
    assert [s[:3] for s in data["synapses"]] == [[1, 0, CONFIG.n_neurons + commonest]] * 4
    assert main(["step", files[0], "--text", files[1], "--out", str(tmp_path / "b"), "--synapse", "1,0,3"]) == 2
    assert "--synapse must be L,H,I,J" in capsys.readouterr().err
    assert main(["step", files[0], "--text", files[1], "--out", str(tmp_path / "b"), "--synapse", "1,0,3,99"]) == 2
    assert "j in [0, 32)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["validate", files[0], "--top-k", "3", "--beta", "0.1"])


def test_demo_network_section(files, tmp_path):
    args = argparse.Namespace(text=files[1])
    result = network_section(load_model(files[0]), tmp_path, args)
    assert result["exact"]["max_rel"] < 1e-9 and 0 <= result["pruned"]["top1_agreement"] <= 1
    assert "hub wiring equals the tensor model" in result["summary"]
    assert all((tmp_path / "network" / name).exists() for name in ("raster.png", "recordings.npz"))


def test_step_command_in_spike_mode(capsys, files, tmp_path):
    out = tmp_path / "spiking"
    data = run_json(capsys, "step", files[0], "--text", files[1], "--out", str(out), "--wiring", "hub",
                    "--mode", "spike", "--spike-steps", "4", "--seed", "3")
    assert data["mode"] == "spike" and data["spike_options"]["spike_steps"] == 4 and data["spikes"] > 0
    assert data["synapses"] == []  # a spiking hub network stores no sigma to trace
    for name in ("spike_raster.png", "population_rate.png", "spikes.npz", "raster.png"):
        assert (out / name).stat().st_size > 0
    saved = load_spikes(out / "spikes.npz")
    assert saved["meta"]["spike_steps"] == 4 and saved["tokens"].tolist() == list(TEXT.encode())
    again = run_json(capsys, "step", files[0], "--text", files[1], "--out", str(tmp_path / "again"), "--wiring",
                     "hub", "--mode", "spike", "--spike-steps", "4", "--seed", "3")
    assert again["spikes"] == data["spikes"] and again["events"] == data["events"]
    s = run_json(capsys, "validate", files[0], "--text", files[1], "--mode", "spike", "--spike-steps", "64",
                 "--rate-scale", "x=max,w=max")
    assert s["mode"] == "spike" and s["spike_steps"] == 64 and 0 < s["kl_mean"] < 1
    for bad, message in ((["--spike-steps", "0"], "spike_steps must be an integer K >= 1"),
                         (["--rate-scale", "x=-2"], "population 'x'"), (["--rate-scale", "fast"], "'max' or numbers")):
        assert main(["validate", files[0], "--text", files[1], "--mode", "spike", *bad]) == 2
        assert message in capsys.readouterr().err


def test_demo_spike_section(files, tmp_path):
    result = spike_section(load_model(files[0]), tmp_path, argparse.Namespace(text=files[1]))
    assert (tmp_path / "spikes" / "spike_raster.png").stat().st_size > 0
    assert result["validation"]["mode"] == "spike" and result["validation"]["spike_steps"] == 16
