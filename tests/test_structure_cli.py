"""``bdh-graph analyze`` and ``bdh-graph export`` (and the demo's degree figure) on a small random checkpoint,
against the dense reference."""
from __future__ import annotations

import csv
import json

import matplotlib.image
import networkx as nx
import numpy as np
import powerlaw
import pytest
import torch
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from bdh_graph import BDH, BDHConfig, save_model
from bdh_graph.cli import main
from bdh_graph.graphs import dense_neuron_graph, extract, paper_edge_count, read_graph, write_graph
from bdh_graph.plots.structure import degree_figure
from bdh_graph.structure import fit_power_law, null_distribution
from helpers import run_json, test_seed


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(test_seed(3))
    model = BDH(BDHConfig(n_layer=1, n_embd=32, n_head=2, mlp_internal_dim_multiplier=16, vocab_size=16))
    path = tmp_path_factory.mktemp("ckpt") / "model.safetensors"
    save_model(model, path)
    return path, model


def strongest(A: np.ndarray, m: int) -> np.ndarray:
    """The m largest entries of A (the rest 0): the paper-density excitatory circuit, the obvious way."""
    return np.where(A >= np.sort(A.ravel())[-m], A, 0)


def test_analyze_writes_figures_and_reports(checkpoint, tmp_path, capsys):
    path, model = checkpoint
    out = tmp_path / "out"
    report = run_json(capsys, "analyze", str(path), "--head", "1", "--out", str(out), "--seeds", "2",
                      "--bootstrap", "3")
    N = model.config.N
    A = dense_neuron_graph(model, head=1)
    m = paper_edge_count(N)
    assert m == round(46820 / 8192 * N)
    kept = strongest(A, m)
    assert report["graph"]["nodes"] == N and report["graph"]["edges"] == m
    assert report["graph"]["beta"] == pytest.approx(kept[kept > 0].min(), rel=1e-6)
    for key, degrees in (("in", (kept > 0).sum(axis=0)), ("out", (kept > 0).sum(axis=1))):
        assert report["power_law"][key]["alpha"] == pytest.approx(fit_power_law(degrees, n_bootstrap=0).alpha, rel=1e-9)
        assert report["degrees"][key]["cv"] == pytest.approx(degrees.std() / degrees.mean(), rel=1e-12)
    # the cuts the histogram marks: each circuit's m-th strongest edge
    inhibitory = strongest(-A, m)
    assert report["graph"]["cuts"] == {"excitatory": {"beta": pytest.approx(kept[kept > 0].min()), "edges": m},
                                       "inhibitory": {"beta": pytest.approx(inhibitory[inhibitory > 0].min()),
                                                      "edges": m}}
    # the default ladder: m/4 .. 4m edges, each the strongest of G, every point with its three nulls
    ladder = [round(f * m) for f in (0.25, 0.5, 1, 2, 4)]
    weights = np.sort(A.ravel())[::-1]
    assert [p["edges"] for p in report["sweep"]][::-1] == ladder
    np.testing.assert_allclose([p["beta"] for p in report["sweep"]][::-1], weights[np.array(ladder) - 1], rtol=1e-6)
    for p in report["sweep"]:
        assert set(p["nulls"]) == {"gnm", "rewired", "low_rank"}
        assert p["Q_spread"][0] <= p["Q"] == p["Q_spread"][1]
        assert 0 < p["nulls"]["gnm"]["giant_component"] <= 1
    assert set(report["modularity"]["nulls"]) == {"gnm", "rewired", "low_rank"}
    assert report["modularity"]["verdict"] == modularity_verdict(report, A)
    figures = ["entry_histogram.png", "degrees.png", "modularity.png", "communities.png"]
    assert report["figures"] == [str(out / name) for name in figures]
    for name in figures:
        assert matplotlib.image.imread(out / name).ndim == 3  # a readable image, not an empty file
    assert json.loads((out / "report.json").read_text())["graph"]["edges"] == m
    assert f"edges m = {m}" in (out / "report.md").read_text()
    assert "baseline" not in report  # only when asked for


def test_analyze_null_draws_are_those_of_the_analysed_graph(checkpoint, tmp_path, capsys):
    path, model = checkpoint
    out = tmp_path / "out"
    report = run_json(capsys, "analyze", str(path), "--head", "0", "--out", str(out), "--seeds", "2",
                      "--bootstrap", "0", "--ladder", "1", "--null-draws", "3", "--seed", "4")
    kept = sparse.csr_array(strongest(dense_neuron_graph(model, head=0), paper_edge_count(model.config.N)))
    expected = null_distribution(kept, rank=model.config.n_embd, draws=3, seeds=2, seed=4).to_dict()
    assert report["modularity"]["null_draws"] == expected
    assert report["modularity"]["null_draws"]["Q"] == report["modularity"]["Q"]
    assert str(out / "null_distribution.png") in report["figures"]
    assert matplotlib.image.imread(out / "null_distribution.png").ndim == 3
    assert "against 3 draws of each null model" in (out / "report.md").read_text()


def modularity_verdict(report: dict, A: np.ndarray) -> str:
    """The verdict on modularity written out by hand: at how many edge counts of the sweep Q beats every null, Q
    and the strongest null at the analysed m, and the largest m at which each graph fragments (under 90% of its
    nodes in the largest weak component; the graph's own share computed here from ``A``, the nulls' as
    reported)."""
    sweep, m = report["sweep"], report["graph"]["edges"]
    above = sum(p["Q"] > max(r["Q"] for r in p["nulls"].values()) for p in sweep)
    here = next(p for p in sweep if p["edges"] == m)
    name = max(here["nulls"], key=lambda k: here["nulls"][k]["Q"])

    def share(edges: int) -> float:
        _, labels = connected_components(sparse.csr_array(strongest(A, edges) > 0), connection="weak")
        return np.bincount(labels).max() / A.shape[0]

    shares = {"graph": {p["edges"]: share(p["edges"]) for p in sweep},
              **{k: {p["edges"]: p["nulls"][k]["giant_component"] for p in sweep} for k in here["nulls"]}}
    fragmented = [f"{k} at m <= {max(e for e, v in by_m.items() if v < 0.9)}" for k, by_m in shares.items()
                  if min(by_m.values()) < 0.9]
    return (f"Q above every null at {above} of {len(sweep)} edge counts; at m = {m}: Q = {here['Q']:.3f} against "
            f"{here['nulls'][name]['Q']:.3f} ({name}); fragmented (< 90% of nodes in the largest component): "
            + (", ".join(fragmented) if fragmented else "none"))


def undirected_unweighted(A: sparse.csr_array) -> nx.Graph:
    """The graph whose Q ``analyze`` reports by default, built by hand: each pair {i, j} weighs the number of
    directions i -> j, j -> i present; a self-loop weighs 1 (networkx counts it twice in the degree)."""
    G = nx.Graph()
    G.add_nodes_from(range(A.shape[0]))
    coo = A.tocoo()
    for i, j in zip(coo.row.tolist(), coo.col.tolist()):
        if G.has_edge(i, j) and i != j:
            G[i][j]["weight"] += 1
        else:
            G.add_edge(i, j, weight=1)
    return G


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::RuntimeWarning")  # powerlaw's own, unsilenced
def test_analyze_agrees_with_networkx_and_powerlaw_on_the_exported_files(checkpoint, tmp_path, capsys):
    path, model = checkpoint
    report = run_json(capsys, "analyze", str(path), "--head", "1", "--out", str(tmp_path / "out"), "--seeds", "2",
                      "--bootstrap", "0", "--ladder", "1")
    write_graph(extract(model, head=1).circuits, tmp_path / "g.npz")  # what `bdh-graph export --head 1` writes
    A = sparse.load_npz(tmp_path / "g.excitatory.npz")
    G = nx.from_scipy_sparse_array(A, create_using=nx.DiGraph)
    n = G.number_of_nodes()
    assert report["graph"]["edges"] == G.number_of_edges()
    lifted = {"parameter_ranges" if int(powerlaw.__version__.split(".")[0]) >= 2 else "parameter_range":
              {"alpha": (1, 20)}}
    for key, degree in (("in", G.in_degree), ("out", G.out_degree)):
        k = np.array([degree(i) for i in range(n)])
        fit = powerlaw.Fit(k[k > 0], discrete=True, estimate_discrete=False, verbose=0, **lifted)
        assert report["power_law"][key]["xmin"] == fit.xmin
        assert report["power_law"][key]["alpha"] == pytest.approx(fit.power_law.alpha, rel=1e-9)
    with open(tmp_path / "out" / "communities.csv") as f:
        rows = list(csv.DictReader(f))
    label = {int(r["neuron"]) - model.config.N: int(r["community"]) for r in rows}  # head 1: ids N .. 2N-1
    communities = [{i for i in label if label[i] == c} for c in set(label.values())]
    U = undirected_unweighted(A)
    assert report["modularity"]["Q"] == pytest.approx(nx.community.modularity(U, communities, weight="weight"),
                                                      abs=1e-12)
    largest = max(len(c) for c in nx.weakly_connected_components(G))
    assert report["modularity"]["giant_component"] == pytest.approx(largest / n, abs=1e-12)


def test_untrained_baseline_is_reproducible_from_its_seed(checkpoint, tmp_path, capsys):
    path, model = checkpoint

    def baseline(seed: int, out: str) -> dict:
        report = run_json(capsys, "analyze", str(path), "--out", str(tmp_path / out), "--seeds", "1", "--bootstrap",
                          "0", "--ladder", "0.5", "1", "--baseline", "untrained", "--baseline-seed", str(seed))
        report["baseline"].pop("timings_s")
        return report

    first, again, other = baseline(5, "a"), baseline(5, "b"), baseline(6, "c")
    assert first["baseline"] == again["baseline"] and first["comparison"] == again["comparison"]
    assert first["baseline"]["kind"] == "untrained" and first["baseline"]["seed"] == 5
    assert other["baseline"]["graph"]["beta"] != first["baseline"]["graph"]["beta"]
    # the baseline is BDH(config) after torch.manual_seed(seed), pruned to the analysed graph's edge count
    torch.manual_seed(5)
    A = strongest(dense_neuron_graph(BDH(model.config), head=0), first["graph"]["edges"])
    base = first["comparison"]["baseline"]
    assert base["edges"] == first["graph"]["edges"] and base["beta"] == pytest.approx(A[A > 0].min(), rel=1e-6)
    for key, degrees in (("in", (A > 0).sum(axis=0)), ("out", (A > 0).sum(axis=1))):
        assert base[key]["cv"] == pytest.approx(degrees.std() / degrees.mean(), rel=1e-12)
        assert base[key]["max"] == degrees.max()
    assert [p["edges"] for p in first["baseline"]["sweep"]] == [p["edges"] for p in first["sweep"]]
    assert "untrained model of the same configuration (seed 5)" in (tmp_path / "a" / "report.md").read_text()


def test_analyze_with_beta_and_sweep(checkpoint, tmp_path, capsys):
    path, model = checkpoint
    A = np.abs(dense_neuron_graph(model, head=0))
    beta, higher = np.quantile(A, [0.99, 0.995])
    report = run_json(capsys, "analyze", str(path), "--beta", str(beta), "--sweep-betas", str(higher), "--seeds",
                      "1", "--bootstrap", "0", "--ladder", "1", "--out", str(tmp_path))
    exc = dense_neuron_graph(model, head=0)
    assert [p["edges"] for p in report["sweep"]] == [int((exc >= beta).sum()), int((exc >= higher).sum())]


@pytest.mark.parametrize("argv, message", [
    (["--beta", "1e6"], "no excitatory edge of G_x is left by Threshold(beta=1000000.0) (the largest |G| is"),
])
def test_analyze_bad_input(checkpoint, tmp_path, capsys, argv, message):
    code = main(["analyze", str(checkpoint[0]), "--out", str(tmp_path / "out"), *argv])
    assert code == 2
    assert f"bdh-graph analyze: error: {message}" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_analyze_names_head_when_the_model_has_fewer_heads(tmp_path, capsys):
    torch.manual_seed(0)
    path = save_model(BDH(BDHConfig(n_layer=1, n_embd=16, n_head=4, mlp_internal_dim_multiplier=4, vocab_size=8)),
                      tmp_path / "four_heads.safetensors")
    assert main(["analyze", str(path), "--head", "7", "--out", str(tmp_path / "out")]) == 2
    assert ("bdh-graph analyze: error: argument --head: this model has 4 heads; expected an integer in [0, 4) or "
            "'all', got 7") in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # refused before anything was written


@pytest.mark.parametrize("argv, message", [
    (["analyze", "--beta", "-1"], "argument --beta: Threshold beta must be > 0, got -1.0"),
    (["analyze", "--beta", "big"], "argument --beta: expected a number, got 'big'"),
    (["analyze", "--seeds", "0"], "argument --seeds: must be >= 1, got 0"),
    (["analyze", "--head", "one"], "argument --head: expected an integer or 'all', got 'one'"),
    (["analyze", "--null-draws", "1"], "argument --null-draws: null draws: expected 0 (none) or an integer >= 2, "
                                       "got 1"),
    (["analyze", "--null-draws", "-2"], "argument --null-draws: null draws: expected 0 (none) or an integer >= 2, "
                                        "got -2"),
    (["export", "--edges", "2.5", "--out", "g.npz"], "argument --edges: expected an integer, got '2.5'"),
    (["export", "--top-k", "0", "--out", "g.npz"], "argument --top-k: TopK k must be an integer >= 1, got 0"),
    (["export", "--beta", "1", "--top-k", "2", "--out", "g.npz"], "argument --top-k: not allowed with argument "
                                                                   "--beta"),
])
def test_bad_options_are_refused_at_parse_time_naming_the_flag(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert f"bdh-graph {argv[0]}: error: {message}" in capsys.readouterr().err


def test_out_is_checked_before_the_model_is_loaded(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    for argv, message in [(["analyze", "--out", str(tmp_path / "file")], f"'{tmp_path / 'file'}' is a file; "
                                                                         "expected a folder"),
                          (["export", "--out", str(tmp_path / "g.txt")], "has unknown format '.txt'; expected a "
                                                                         "suffix among .graphml, .gexf, .csv, .npz"),
                          (["export", "--out", str(tmp_path / "no" / "g.npz")], f"folder '{tmp_path / 'no'}' does "
                                                                                "not exist")]:
        with pytest.raises(SystemExit):  # a missing checkpoint is refused too, but only after --out
            main([argv[0], str(tmp_path / "no-such.safetensors"), *argv[1:]])
        err = capsys.readouterr().err
        assert f"bdh-graph {argv[0]}: error: argument --out: " in err and message in err


def test_export_npz_then_read_back(checkpoint, tmp_path, capsys):
    path, model = checkpoint
    out = tmp_path / "g.npz"
    assert main(["export", str(path), "--head", "all", "--top-k", "3", "--out", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["files"] == [str(tmp_path / "g.excitatory.npz"), str(tmp_path / "g.inhibitory.npz")]
    A = dense_neuron_graph(model)
    for name, S in (("excitatory", np.maximum(A, 0)), ("inhibitory", np.maximum(-A, 0))):
        kept = np.sort(S, axis=0)[-3:]  # each column's 3 strongest inputs of the circuit
        circuit = sparse.load_npz(tmp_path / f"g.{name}.npz").toarray()
        assert circuit.shape == A.shape
        np.testing.assert_allclose(np.sort(circuit, axis=0)[-3:], kept, rtol=1e-6)
        assert result[f"{name}_edges"] == np.count_nonzero(circuit) == 3 * A.shape[1]
    g = read_graph(out)
    np.testing.assert_array_equal(g.excitatory.toarray(), sparse.load_npz(tmp_path / "g.excitatory.npz").toarray())
    assert g.meta["prune"] == "TopK(k=3)" and g.meta["head"] is None


def test_the_demo_degree_figure_is_drawn_at_the_paper_density(checkpoint, tmp_path):
    model = checkpoint[1]
    result = degree_figure(model, tmp_path / "degrees.png")
    m = paper_edge_count(model.config.N)
    kept = strongest(dense_neuron_graph(model, head=0), m)
    assert result["edges"] == m and result["figure"] == tmp_path / "degrees.png"
    for key, degrees in (("in", (kept > 0).sum(axis=0)), ("out", (kept > 0).sum(axis=1))):
        assert result["alpha"][key] == pytest.approx(fit_power_law(degrees, n_bootstrap=0).alpha, rel=1e-9)
    assert matplotlib.image.imread(tmp_path / "degrees.png").ndim == 3
