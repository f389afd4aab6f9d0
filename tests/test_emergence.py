"""``bdh-graph emergence`` (``bdh_graph.experiments.emergence``) on a tiny run trained a few steps: each snapshot's
degrees, fits, Q and nulls equal ``analyze`` of that snapshot alone; the loss and the memory figures equal the
tensor model's read by hand; a folder without snapshots, or with a snapshot of another configuration, is refused
before any work, saying what to do. The size ladder (``emergence-sizes``) sets the last snapshot of each run's
report against n, and refuses reports it cannot compare. (The Dask run is in test_distributed.py, beside its
cluster.)"""
from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from helpers import TINY, random_model, run_json, tiny_run

from bdh_graph import BDHConfig, RunError, load_model, save_model
from bdh_graph.cli import main
from bdh_graph.experiments.emergence import (SizeLadder, above_every_null, emergence, find_snapshots, read_report,
                                            size_ladder)
from bdh_graph.text import encode

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TEXT = "Dragons hatch from eggs; the eggs hatch into dragons."
STEPS = (0, 3, 6)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return tiny_run(tmp_path_factory.mktemp("run"))


def emergence_cli(run, folder) -> Path:
    """``bdh-graph emergence RUN`` with the module's options, its --out folder."""
    assert main(["emergence", str(run), "--text", str(write(folder / "t.txt", TEXT)), "--seeds", "2", "--bootstrap",
                 "10", "--seed", "3", "--backend", "numpy", "--out", str(folder / "out")]) == 0
    return folder / "out"


@pytest.fixture(scope="module")
def series(run, tmp_path_factory):
    """``bdh-graph emergence RUN`` and its emergence.json (run once for the module: it is the library's
    ``emergence``)."""
    out = emergence_cli(run, tmp_path_factory.mktemp("emergence"))
    return out, json.loads((out / "emergence.json").read_text())


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


def test_null_draws_equal_analyze_of_the_snapshot_and_decide_the_verdict(run, tmp_path, capsys):
    result = emergence(run, TEXT, seeds=2, n_bootstrap=0, seed=3, backend="numpy", null_draws=2)
    last = result.snapshots[-1]
    report = run_json(capsys, "analyze", last["checkpoint"], "--head", "0", "--ladder", "1", "--seeds", "2",
                      "--bootstrap", "0", "--seed", "3", "--null-draws", "2", "--out", str(tmp_path / "analyze"))
    assert last["modularity"]["null_draws"] == report["modularity"]["null_draws"]
    assert result.options["null_draws"] == 2
    # two draws cannot give p <= 0.05 (p >= 1/3), so no snapshot counts as above every null, whatever one draw says
    assert all(s["modularity"]["null_draws"]["nulls"]["gnm"]["p"] >= 1 / 3 for s in result.snapshots)
    assert result.modularity_verdict().startswith("Q above every null at no snapshot")
    assert "against 2 draws of each null, p = " in result.modularity_verdict()
    with pytest.raises(ValueError, match=r"null draws: expected 0 \(none\) or an integer >= 2, got 1"):
        emergence(run, TEXT, null_draws=1)


def test_above_every_null_uses_the_draws_when_there_are_some():
    one_draw = {"Q": 0.30, "nulls": {"gnm": 0.25, "rewired": 0.20}}
    assert above_every_null(one_draw)
    drawn = {"nulls": {"gnm": {"p": 0.05, "above": True}, "rewired": {"p": 0.10, "above": False}}}
    assert not above_every_null({**one_draw, "null_draws": drawn})
    ladder = SizeLadder({"head": 0}, [rung(256, 0.30, 0.25, 1.0), {**rung(512, 0.30, 0.25, 1.0)}])
    ladder.rungs[1]["modularity"]["null_draws"] = drawn
    assert ladder.modularity_verdict().startswith("Q above every null at n = 256 only (p <= 0.05 against each "
                                                  "null's draws at n = 512)")


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
                               "n_bootstrap": 10, "seed": 3, "backend": "numpy", "null_draws": 0,
                               "bytes": len(encode(TEXT))}
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


@pytest.fixture(scope="module")
def wider(tmp_path_factory):
    """The emergence report of a second tiny run, twice the neurons per head of ``run``."""
    folder = tmp_path_factory.mktemp("wider")
    run = tiny_run(folder / "run", steps=(0, 4), config=TINY.replace(mlp_internal_dim_multiplier=8))
    return emergence_cli(run, folder)


def test_size_ladder_sets_the_last_snapshot_of_each_run_against_n(series, wider, tmp_path, capsys):
    out, data = series
    # given larger n first: the ladder is in the order of n
    report = run_json(capsys, "emergence-sizes", str(wider), str(out / "emergence.json"), "--out", str(tmp_path))
    small, large = data["snapshots"][-1], read_report(wider)["snapshots"][-1]
    assert [r["neurons"] for r in report["rungs"]] == [TINY.N, 2 * TINY.N] == [small["graph"]["nodes"],
                                                                              large["graph"]["nodes"]]
    reports = (out / "emergence.json", wider / "emergence.json")
    for rung, snapshot, path in zip(report["rungs"], (small, large), reports):
        assert rung == {"report": str(path), "neurons": snapshot["graph"]["nodes"], **snapshot}
    assert report["options"]["seeds"] == 2 and set(report["verdicts"]) == {"degrees", "power_law", "modularity",
                                                                            "loss"}
    assert f"at n = {TINY.N}, {2 * TINY.N}" in report["verdicts"]["loss"]
    assert json.loads((tmp_path / "emergence_sizes.json").read_text())["rungs"] == report["rungs"]
    assert (tmp_path / "emergence_sizes.png").stat().st_size > 0


def rung(n: int, q: float, null: float, cv: float, plausible: bool = False) -> dict:
    return {"neurons": n, "step": 800, "bits_per_byte": 2.0,
            "degrees": {k: {"cv": cv, "max": 9, "zero_degree": n // 4} for k in ("in", "out")},
            "power_law": {k: {"plausible": plausible} for k in ("in", "out")},
            "modularity": {"Q": q, "nulls": {"gnm": null, "rewired": null - 0.01, "low_rank": null - 0.02}}}


def test_size_ladder_verdicts_say_where_q_beats_the_nulls_and_how_the_figures_move_with_n():
    ladder = SizeLadder({"head": 0}, [rung(256, 0.30, 0.25, 1.0, True), rung(512, 0.30, 0.28, 2.0),
                                      rung(1024, 0.20, 0.22, 1.5)])
    assert ladder.modularity_verdict() == ("Q above every null at n = 256, 512 only; Q minus the largest null falls "
                                           "with n (+0.050, +0.020, -0.020 at n = 256, 512, 1024)")
    assert ladder.degree_verdict().startswith("in-degree CV not monotone in n (1.00, 2.00, 1.50 at n = 256, 512, "
                                              "1024), nodes without an edge 25%, 25%, 25%")
    assert ladder.power_law_verdict() == ("in-degree power law plausible at n = 256; out-degree power law plausible "
                                          "at n = 256")
    rising = SizeLadder({"head": 0}, [rung(256, 0.30, 0.20, 1.0), rung(512, 0.35, 0.20, 2.0)])
    assert rising.modularity_verdict().startswith("Q above every null at every n; Q minus the largest null rises")
    assert "CV rises with n" in rising.degree_verdict()
    assert rising.power_law_verdict() == "in-degree power law plausible at no n; out-degree power law plausible at no n"


def test_size_ladder_refuses_reports_it_cannot_compare(series, tmp_path, capsys):
    out, data = series
    report = out / "emergence.json"
    with pytest.raises(RunError, match="at least two runs, got 1"):
        size_ladder([report])
    with pytest.raises(RunError, match=r"'.*emergence.json' and '.*emergence.json' are of the same size \(n = "):
        size_ladder([report, out])
    other = write(tmp_path / "seeds.json", json.dumps({**data, "options": {**data["options"], "seeds": 7}}))
    with pytest.raises(RunError, match=r"'.*seeds.json' was measured with other options than .*: seeds 7 \(not 2\)"):
        size_ladder([report, other])
    for name, text, expected in (("list.json", "[1, 2]", "is not a report of 'bdh-graph emergence'"),
                                 ("empty.json", json.dumps({**data, "snapshots": []}), "is not a report"),
                                 ("broken.json", "{", "is not JSON")):
        with pytest.raises(RunError, match=f"emergence report '.*{name}' {expected}"):
            read_report(write(tmp_path / name, text))
    missing = tmp_path / "run-without-report"
    missing.mkdir()
    assert main(["emergence-sizes", str(report), str(missing), "--out", str(tmp_path / "out")]) == 2
    assert "run-without-report/emergence.json' does not exist; 'bdh-graph emergence RUN_DIR --out DIR' writes" in \
        capsys.readouterr().err
    assert not (tmp_path / "out").exists()
