"""``bdh-graph analyze`` and ``bdh-graph export`` on a small random checkpoint."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch

from bdh_graph import BDH, BDHConfig, save_model
from bdh_graph.cli import main
from bdh_graph.cli.structure_commands import PAPER_EDGES_PER_NEURON, degree_figure
from bdh_graph.graphs.export import read_graph
from bdh_graph.graphs import dense_neuron_graph


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(int(np.random.SeedSequence().entropy % 2**31))
    model = BDH(BDHConfig(n_layer=1, n_embd=32, n_head=2, mlp_internal_dim_multiplier=16, vocab_size=16))
    path = tmp_path_factory.mktemp("ckpt") / "model.safetensors"
    save_model(model, path)
    return path, model


def test_analyze_writes_figures_and_reports(checkpoint, tmp_path, capsys):
    path, model = checkpoint
    out = tmp_path / "out"
    code = main(["analyze", str(path), "--head", "1", "--out", str(out), "--seeds", "2", "--bootstrap", "3",
                 "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    N = model.config.N
    A = dense_neuron_graph(model, head=1)
    m = round(PAPER_EDGES_PER_NEURON * N)
    beta = np.sort(A.ravel())[-m]  # the m strongest excitatory entries, from the dense reference
    assert report["graph"]["nodes"] == N and report["graph"]["edges"] == m
    assert report["graph"]["beta"] == pytest.approx(beta, rel=1e-6)
    for key in ("alpha", "xmin", "p_value"):
        assert key in report["power_law"]["in"] and key in report["power_law"]["out"]
    assert set(report["modularity"]["nulls"]) == {"gnm", "rewired", "low_rank"}
    for name in ("entry_histogram.png", "degrees.png", "modularity.png", "hubs.png", "report.json", "report.md"):
        assert (out / name).stat().st_size > 0
    assert json.loads((out / "report.json").read_text())["graph"]["edges"] == m


def test_analyze_with_beta_and_sweep(checkpoint, tmp_path, capsys):
    path, model = checkpoint
    A = np.abs(dense_neuron_graph(model, head=0))
    beta, higher = np.quantile(A, [0.99, 0.995])
    code = main(["analyze", str(path), "--beta", str(beta), "--sweep-betas", str(higher), "--seeds", "1",
                 "--bootstrap", "0", "--out", str(tmp_path), "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    exc = dense_neuron_graph(model, head=0)
    assert [p["edges"] for p in report["sweep"]] == [int((exc >= beta).sum()), int((exc >= higher).sum())]


@pytest.mark.parametrize("argv, message", [
    (["--beta", "1e6"], "no excitatory edge is left by Threshold(beta=1000000.0) (the largest |G| is"),
    (["--beta", "-1"], "beta must be > 0, got -1.0"),
    (["--head", "7"], "head must be an integer in [0, 2)"),
])
def test_analyze_bad_input(checkpoint, tmp_path, capsys, argv, message):
    code = main(["analyze", str(checkpoint[0]), "--out", str(tmp_path), *argv])
    assert code == 2
    assert message in capsys.readouterr().err


def test_export_then_read_back(checkpoint, tmp_path, capsys):
    path, model = checkpoint
    out = tmp_path / "g.npz"
    assert main(["export", str(path), "--head", "all", "--top-k", "3", "--out", str(out)]) == 0
    g = read_graph(out)
    A = dense_neuron_graph(model)
    assert g.shape == A.shape
    kept = np.sort(np.maximum(A, 0), axis=0)[-3:]  # each column's 3 strongest excitatory inputs
    np.testing.assert_allclose(np.sort(g.excitatory.toarray(), axis=0)[-3:], kept, rtol=1e-6)
    assert main(["export", str(path), "--out", str(tmp_path / "g.txt")]) == 2
    assert "unknown format" in capsys.readouterr().err


def test_demo_section_writes_the_degree_figure(checkpoint, tmp_path):
    result = degree_figure(checkpoint[1], tmp_path, argparse.Namespace())
    assert (tmp_path / "degrees.png").stat().st_size > 0
    assert result["edges"] == round(PAPER_EDGES_PER_NEURON * checkpoint[1].config.N)
