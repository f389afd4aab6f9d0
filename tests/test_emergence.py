"""``bdh-graph emergence`` (``bdh_graph.experiments.emergence``) on a tiny run trained a few steps: each snapshot's
degrees, fits, Q and nulls equal ``analyze`` of that snapshot alone; the loss and the memory figures equal the
tensor model's read by hand; a folder without snapshots, or with a snapshot of another configuration, is refused
before any work, saying what to do. (The Dask run is in test_distributed.py, beside its cluster.)"""
from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from helpers import TINY, random_model, run_json, tiny_run

from bdh_graph import BDHConfig, RunError, load_model, save_model
from bdh_graph.cli import main
from bdh_graph.experiments.emergence import emergence, find_snapshots
from bdh_graph.text import encode

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TEXT = "Dragons hatch from eggs; the eggs hatch into dragons."
STEPS = (0, 3, 6)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return tiny_run(tmp_path_factory.mktemp("run"))


@pytest.fixture(scope="module")
def series(run, tmp_path_factory):
    """``bdh-graph emergence RUN`` and its emergence.json (run once for the module: it is the library's
    ``emergence``)."""
    folder = tmp_path_factory.mktemp("emergence")
    assert main(["emergence", str(run), "--text", str(write(folder / "t.txt", TEXT)), "--seeds", "2", "--bootstrap",
                 "10", "--seed", "3", "--backend", "numpy", "--out", str(folder / "out")]) == 0
    return folder / "out", json.loads((folder / "out" / "emergence.json").read_text())


def test_each_snapshot_equals_analyze_of_that_snapshot_alone(series, tmp_path, capsys):
    _, data = series
    assert [s["step"] for s in data["snapshots"]] == list(STEPS)
    for snapshot in data["snapshots"][-1:]:  # analyze costs seconds: the trained end of the series
        report = run_json(capsys, "analyze", snapshot["checkpoint"], "--head", "0", "--ladder", "1", "--seeds", "2",
                          "--bootstrap", "10", "--seed", "3", "--out", str(tmp_path / str(snapshot["step"])))
        for k in ("in", "out"):
            degrees, fit = report["degrees"][k], report["power_law"][k]
            assert snapshot["degrees"][k] == {"cv": degrees["cv"], "max": degrees["max"],
                                              "zero_degree": degrees["zeros"], "mean": degrees["mean"]}
            assert (snapshot["power_law"][k]["alpha"], snapshot["power_law"][k]["x_min"],
                    snapshot["power_law"][k]["verdict"]) == (fit["alpha"], fit["xmin"], fit["verdict"])
        mod = report["modularity"]
        assert snapshot["modularity"]["Q"] == mod["Q"]
        assert snapshot["modularity"]["largest_component_share"] == mod["giant_component"]
        assert snapshot["modularity"]["nulls"] == {name: v["Q"] for name, v in mod["nulls"].items()}
        assert set(snapshot["modularity"]["nulls"]) == {"gnm", "rewired", "low_rank"}
        assert snapshot["graph"]["edges"] == report["graph"]["edges"]


def test_bits_per_byte_and_memory_equal_the_tensor_model_read_by_hand(series):
    tokens = encode(TEXT)
    snapshots = series[1]["snapshots"]
    for snapshot in snapshots:
        model = load_model(snapshot["checkpoint"])
        with torch.no_grad():
            full = model(tokens.view(1, -1))[0][0]  # parallel form
            alone = model(tokens.view(-1, 1))[0][:, 0]  # each token a sequence of its own: a = 0, no memory
        bits = lambda logits: float(F.cross_entropy(logits[:-1].double(), tokens[1:]) / math.log(2))
        assert snapshot["bits_per_byte"] == pytest.approx(bits(full), abs=1e-4)
        assert snapshot["memory"]["full"] == pytest.approx(bits(full), abs=1e-4)
        assert snapshot["memory"]["no_memory"] == pytest.approx(bits(alone), abs=1e-4)
        assert snapshot["memory"]["benefit"] == pytest.approx(bits(alone) - bits(full), abs=2e-4)
    assert snapshots[-1]["bits_per_byte"] < snapshots[0]["bits_per_byte"]  # it trained


def test_cli_writes_the_report_and_four_figures(series):
    out, data = series
    assert set(data["verdicts"]) == {"degrees", "power_law", "modularity", "loss"}
    assert data["options"] == {"head": 0, "beta": None, "edges": None, "ladder": [1.0], "seeds": 2,
                               "n_bootstrap": 10, "seed": 3, "backend": "numpy", "bytes": len(encode(TEXT))}
    assert sorted(p.name for p in out.glob("*.png")) == [f"emergence_{n}.png" for n in
                                                           ("degrees", "loss", "modularity", "power_law")]


def write(path, text: str):
    path.write_text(text)
    return path


def test_a_folder_without_snapshots_says_how_to_make_them(tmp_path, capsys):
    save_model(random_model(TINY, 0, dtype=torch.float32), tmp_path / "model.safetensors")
    with pytest.raises(RunError, match=r"has no snapshots .*--snapshot-every K"):
        find_snapshots(tmp_path)
    assert main(["emergence", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "--snapshot-every" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_a_snapshot_of_another_configuration_is_refused(tmp_path):
    run = tiny_run(tmp_path / "run", steps=(0, 1))
    other = BDHConfig(n_layer=2, n_embd=16, n_head=1, mlp_internal_dim_multiplier=4, dropout=0.0)
    save_model(random_model(other, 0, dtype=torch.float32), run / "snapshots" / "step-000002.safetensors")
    with pytest.raises(RunError, match=r"snapshot '.*step-000002.safetensors' has another configuration than "
                                       r"'.*step-000000.safetensors': n_head 1 \(not 2\)"):
        emergence(run, TEXT)
