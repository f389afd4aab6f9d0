"""``bdh-graph export --format sonata`` and the NWB and SONATA files of ``bdh-graph step``, on a tiny checkpoint;
read back by libsonata and pynwb, and compared with the package's other exports and recordings."""
from __future__ import annotations

import sys

import numpy as np
import pytest
from helpers import TINY, run_json, tiny_checkpoint

from bdh_graph.cli import main
from bdh_graph.graphs import read_graph
from bdh_graph.network.monitors import load_spikes

libsonata = pytest.importorskip("libsonata", reason="libsonata (the test extra) is not installed")
pynwb = pytest.importorskip("pynwb", reason="pynwb (the interop extra) is not installed")

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TEXT = "the hatchling reads; the dragon writes."
n = TINY.n_neurons


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("interop")
    text = folder / "text.txt"
    text.write_text(TEXT, encoding="utf-8")
    return tiny_checkpoint(folder, 17, 15.0), str(text)


def sonata_signed_edges(folder) -> dict:
    config = libsonata.CircuitConfig.from_file(str(folder / "circuit_config.json"))
    ids = {name: (config.node_population(name).get_attribute("neuron_id", config.node_population(name).select_all())
                  if name == "neurons" else n + np.arange(config.node_population(name).size))
           for name in config.node_populations}
    edges = {}
    for name in config.edge_populations:
        p = config.edge_population(name)
        s = p.select_all()
        edges.update(zip(zip(ids[p.source][p.source_nodes(s)].tolist(), ids[p.target][p.target_nodes(s)].tolist()),
                         p.get_attribute("syn_weight", s).tolist()))
    return edges


def test_export_sonata_holds_the_edges_of_the_csv_export(files, tmp_path, capsys):
    checkpoint, text = files
    graph = ["--form", "exact", "--head", "all", "--top-k", "2"]
    result = run_json(capsys, "export", checkpoint, *graph, "--format", "sonata", "--out", str(tmp_path / "c"),
                      "--text", text, "--token-ms", "4")
    run_json(capsys, "export", checkpoint, *graph, "--out", str(tmp_path / "g.csv"))
    csv = read_graph(tmp_path / "g.csv")
    expected = {}
    for name, sign in (("excitatory", 1.0), ("inhibitory", -1.0)):
        coo = csv.circuit(name).tocoo()
        expected.update({(int(csv.pre_ids[i]), int(csv.post_ids[j])): sign * w
                         for i, j, w in zip(coo.row, coo.col, coo.data)})
    found = sonata_signed_edges(tmp_path / "c")
    assert found.keys() == expected.keys() and len(found) == sum(result["edges"].values())
    np.testing.assert_allclose([found[e] for e in expected], list(expected.values()), rtol=1e-15)
    assert result["nodes"] == {"neurons": n, "inputs": TINY.vocab_size} and result["token_ms"] == 4.0
    spikes = libsonata.SpikeReader(str(tmp_path / "c" / "inputs" / "input_spikes.h5"))["inputs"].get()
    assert len(spikes) == len(TEXT.encode()) and max(t for _, t in spikes) == pytest.approx(4.0 * (len(TEXT) - 1) + 0.1)


def test_export_sonata_refuses_a_non_empty_folder_unless_overwrite(files, tmp_path, capsys):
    checkpoint, _ = files
    out = tmp_path / "c"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    argv = ["export", checkpoint, "--head", "all", "--format", "sonata", "--out", str(out)]
    assert main(argv) == 2
    assert f"argument --out: SONATA output folder '{out}' exists and is not empty" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "mine"
    assert main([*argv, "--overwrite", "--wiring", "hub"]) == 0
    assert not (out / "notes.txt").exists() and (out / "circuit_config.json").is_file()
    assert libsonata.CircuitConfig.from_file(str(out / "circuit_config.json")).node_populations == {"neurons", "hubs"}


@pytest.mark.parametrize("argv, message", [
    (["--format", "sonata", "--wiring", "hub", "--top-k", "2"], "argument --top-k: --wiring hub writes the graph's "
                                                                "two factors, unpruned"),
    (["--format", "sonata", "--text", "TEXT"], "argument --text: the text drives the input neurons, which only "
                                               "--form exact has"),
    (["--out", "g.csv", "--overwrite"], "argument --overwrite: only with --format sonata"),
    (["--out", "g.csv", "--format", "npz"], "argument --format: npz does not match --out"),
    (["--out", "folder"], "argument --out: 'folder' is a folder (no suffix); give a file"),
])
def test_export_options_are_checked_against_the_format_before_the_model_loads(tmp_path, monkeypatch, capsys, files,
                                                                              argv, message):
    monkeypatch.chdir(tmp_path)
    argv = [a.replace("TEXT", files[1]) for a in argv]
    out = [] if "--out" in argv else ["--out", "c"]
    assert main(["export", str(tmp_path / "no-such.safetensors"), *argv, *out]) == 2
    assert f"bdh-graph export: error: {message}" in capsys.readouterr().err


def test_an_unknown_format_is_refused_at_parse_time(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["export", "--format", "swc", "--out", "c"])
    assert exit_.value.code == 2
    assert "argument --format: invalid choice: 'swc'" in capsys.readouterr().err


def test_missing_packages_name_the_extra(files, tmp_path, monkeypatch, capsys):
    checkpoint, text = files
    monkeypatch.setitem(sys.modules, "h5py", None)  # as if h5py were not installed: importing it raises
    assert main(["export", checkpoint, "--format", "sonata", "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert 'bdh-graph export --format sonata needs h5py' in err and 'pip install "bdh-graph[interop]"' in err
    assert not (tmp_path / "c").exists()
    # step writes everything else and says what would bring the NWB and SONATA files
    assert main(["step", checkpoint, "--text", text, "--out", str(tmp_path / "run"), "--backend", "numpy"]) == 0
    err = capsys.readouterr().err
    assert "recording.nwb and spikes.h5 needs h5py" in err and 'pip install "bdh-graph[interop]"' in err
    assert (tmp_path / "run" / "recordings.npz").is_file() and not (tmp_path / "run" / "recording.nwb").exists()


def test_step_writes_an_nwb_recording_and_a_sonata_spike_file(files, tmp_path, capsys):
    checkpoint, text = files
    out = tmp_path / "run"
    result = run_json(capsys, "step", checkpoint, "--text", text, "--out", str(out), "--mode", "spike",
                      "--spike-steps", "4", "--token-ms", "5", "--backend", "numpy")
    assert result["files"]["nwb"] == str(out / "recording.nwb") and result["token_ms"] == 5.0
    saved = load_spikes(out / "spikes.npz")  # the package's own spike file, read back
    reader = libsonata.SpikeReader(str(out / "spikes.h5"))
    with pynwb.NWBHDF5IO(str(out / "recording.nwb"), "r") as io:
        f = io.read()
        assert bytes(f.intervals["text"]["byte"][:].astype(np.uint8)).decode() == TEXT
        assert f.intervals["text"]["stop_time"][-1] == pytest.approx(0.005 * len(TEXT))
        units = f.units.to_dataframe()
        for (layer, population), (token, step, neuron) in saved["spikes"].items():
            counts = np.bincount(neuron, minlength=n)
            mine = units[(units["layer"] == layer) & (units["population"] == population)]
            assert dict(zip(mine["neuron"], map(len, mine["spike_times"]))) == \
                {int(i): int(counts[i]) for i in np.flatnonzero(counts)}
            times = sorted(t for _, t in reader[f"{population}_layer{layer}"].get())
            np.testing.assert_allclose(times, np.sort(5.0 * (token + step / 4)))
