"""``bdh-graph synapses find | trace | sparsity`` and their errors."""
from __future__ import annotations

import json

import pytest
from helpers import run_json, tiny_checkpoint

from bdh_graph.cli import main
from bdh_graph.interpretability.synapse_state import synapse_trace
from bdh_graph.model.checkpoints import load_model
from bdh_graph.network.address import Synapse


@pytest.fixture
def checkpoint(tmp_path):
    return tiny_checkpoint(tmp_path, 31, 5.0)


def test_find_writes_table_and_figures(capsys, checkpoint, tmp_path):
    out = tmp_path / "found"
    data = run_json(capsys, "synapses", "find", checkpoint, "--concept", "country", "--sentences", "24",
                    "--top-k", "3", "--out", str(out))
    assert data["concept"] == "country" and data["level"] == "neuron" and data["presynaptic"] == "model"
    assert data["strengthening"] is True
    assert data["n_test"] == [12, 12] and data["n_selection"] == [12, 12]
    assert len(data["synapses"]) == 3 and all(s["test"]["of"] == 144 for s in data["synapses"])
    saved = json.loads((out / "concept_synapses.json").read_text())
    assert not set(saved["split"]["selection_concept"]) & set(saved["split"]["test_concept"])
    for name in ("concept_synapse.png", "concept_synapse_test.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"


def test_find_reads_sentence_files(capsys, checkpoint, tmp_path):
    (tmp_path / "c.txt").write_text("\n".join(f"I paid {k} dollars." for k in range(10)) + "\n\n", encoding="utf-8")
    (tmp_path / "k.txt").write_text("\n".join(f"I saw {k} birds." for k in range(10)), encoding="utf-8")
    data = run_json(capsys, "synapses", "find", checkpoint, "--concept-file", str(tmp_path / "c.txt"),
                    "--contrast-file", str(tmp_path / "k.txt"), "--level", "hub", "--top-k", "2", "--any-direction")
    assert data["level"] == "hub" and data["strengthening"] is False
    assert data["n_test"] == [5, 5] and len(data["synapses"]) == 2


def test_trace_and_sparsity(capsys, checkpoint, tmp_path):
    (tmp_path / "p.txt").write_text("The ticket cost twenty euros.", encoding="utf-8")
    model = load_model(checkpoint)
    n = model.config.n_neurons
    by_byte = run_json(capsys, "synapses", "trace", checkpoint, "--synapse", "1:'e':5", "--text",
                       str(tmp_path / "p.txt"), "--out", str(tmp_path / "t.png"))
    by_index = run_json(capsys, "synapses", "trace", checkpoint, "--synapse", f"1:{n + ord('e')}:5", "--text",
                        str(tmp_path / "p.txt"), "--out", str(tmp_path / "t.png"))
    assert by_byte["pre"] == by_index["pre"] == n + ord("e") and by_byte["address"] == by_index["address"] == "1:'e':5"
    expected = synapse_trace(model, "The ticket cost twenty euros.", Synapse(1, n + ord("e"), 5))
    assert by_byte["tokens"] == 29 and by_byte["final"] == pytest.approx(expected[-1], rel=1e-6, abs=1e-9)
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"
    data = run_json(capsys, "synapses", "sparsity", checkpoint, "--text", str(tmp_path / "p.txt"),
                    "--out", str(tmp_path / "s.png"))
    assert data["tokens"] == 29 and len(data["y"]["active_fraction_per_layer"]) == 2
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("argv, message", [
    (["trace", "--synapse", "2:0:0"], "--synapse '2:0:0': layer index 2 is out of range: the model has 2 layers"),
    (["trace", "--synapse", "1:0"], "--synapse '1:0': expected LAYER:PRE:POST"),
    (["trace", "--synapse", "1:'ab':3"], "holds 2 bytes; PRE names one input neuron"),
    (["trace", "--synapse", "0:'e':1", "--level", "hub"], "at hub level PRE is a hub index 0..15, not a byte"),
    (["trace", "--synapse", "0:1:1", "--text", "long.txt", "--max-tokens", "8"],
     "--text: the passage is 29 bytes long, longer than --max-tokens 8"),
    (["find", "--concept-file", "c.txt"], "give both --concept-file and --contrast-file"),
    (["find", "--concept-file", "empty.txt", "--contrast-file", "empty.txt"], "holds no sentences"),
    (["find", "--top-k", "5", "--candidates", "3"],
     "--top-k must be <= --candidates, got --top-k 5 and --candidates 3"),
    (["find", "--layers", "0", "2"], "--layers: the model has layers 0..1, got [0, 2]"),
    (["find", "--sentences", "200"], "--sentences: count must be an integer in [1, 144]"),
])
def test_errors_name_the_input(capsys, checkpoint, tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty.txt").write_text("\n", encoding="utf-8")
    (tmp_path / "c.txt").write_text("One.\nTwo.\n", encoding="utf-8")
    (tmp_path / "long.txt").write_text("The ticket cost twenty euros.", encoding="utf-8")
    assert main(["synapses", argv[0], checkpoint, *argv[1:]]) == 2
    assert f"bdh-graph synapses {argv[0]}: error: " in (err := capsys.readouterr().err) and message in err


@pytest.mark.parametrize("argv, message", [
    (["find", "--alpha", "0"], "argument --alpha: must be in (0, 1), got 0"),
    (["find", "--test-fraction", "1.5"], "argument --test-fraction: must be in (0, 1), got 1.5"),
    (["find", "--concept-file", "missing.txt"], "argument --concept-file: file 'missing.txt' does not exist"),
    (["trace", "--synapse", "0:0:0", "--out", "."], "argument --out: '.' is a folder; expected a file name"),
    (["sparsity", "--out", "nowhere/s.png"], "argument --out: cannot write 'nowhere/s.png': folder 'nowhere' does"),
])
def test_bad_option_values_are_refused_before_any_work(capsys, tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(["synapses", *argv])
    assert exit_.value.code == 2 and message in capsys.readouterr().err
