"""``bdh-graph synapses find | trace | sparsity`` and their errors."""
from __future__ import annotations

import json

import pytest
from helpers import run_json, tiny_checkpoint

from bdh_graph.cli import main


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
    data = run_json(capsys, "synapses", "trace", checkpoint, "--synapse", "1:70:5", "--text", str(tmp_path / "p.txt"),
                    "--out", str(tmp_path / "t.png"))
    assert data["tokens"] == 29 and (tmp_path / "t.png").exists()
    data = run_json(capsys, "synapses", "sparsity", checkpoint, "--text", str(tmp_path / "p.txt"),
                    "--out", str(tmp_path / "s.png"))
    assert data["tokens"] == 29 and len(data["y"]["active_fraction_per_layer"]) == 2 and (tmp_path / "s.png").exists()


@pytest.mark.parametrize("argv, message", [
    (["trace", "--synapse", "2:0:0"], "synapse layer index 2 is out of range"),
    (["trace", "--synapse", "1:0"], "--synapse must be LAYER:PRE:POST"),
    (["find", "--concept-file", "c.txt"], "give both --concept-file and --contrast-file"),
    (["find", "--concept-file", "empty.txt", "--contrast-file", "empty.txt"], "holds no sentences"),
])
def test_errors_name_the_input(capsys, checkpoint, tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty.txt").write_text("\n", encoding="utf-8")
    assert main(["synapses", argv[0], checkpoint, *argv[1:]]) == 2
    assert message in capsys.readouterr().err
