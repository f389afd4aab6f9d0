"""Silencing neurons (``Network.silence``) and what the hub neurons do (``bdh_graph.experiments.hubs``): a silenced
network equals the tensor model with those neurons' encoder columns at zero, on every backend and both wirings;
the silenced neurons never fire and every other neuron's input is the intact graph's over a trace without them;
the hub experiment's degrees, rank correlations and bits per byte equal independent references, and its random
draws are seeded, draw by draw."""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import TINY, random_model, run_json, tiny_checkpoint
from scipy import stats

from bdh_graph.cli import main
from bdh_graph.experiments.hubs import hub_function
from bdh_graph.graphs import graph_factors, paper_edge_count
from bdh_graph.network import build_network
from bdh_graph.text import encode

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TEXT = "Dragons hatch from eggs; the eggs hatch into dragons."
SILENCED = np.array([3, 17, 40, 41])  # TINY: N = 32, heads 0 and 1


@pytest.fixture(scope="module")
def model():
    return random_model(TINY, 5)


def without(model, neurons) -> torch.nn.Module:
    """The tensor model with the ``neurons``' encoder (D_x) columns at zero: their x is relu(0) = 0."""
    lesioned = copy.deepcopy(model)
    with torch.no_grad():
        for i in neurons:
            lesioned.encoder[i // model.config.N, :, i % model.config.N] = 0
    return lesioned


def recurrent_logits(model, tokens) -> np.ndarray:
    with torch.no_grad():
        return model.forward_recurrent(torch.as_tensor(tokens).view(1, -1))[0].double().numpy()


@pytest.mark.parametrize("wiring", ["hub", "neuron"])
def test_a_silenced_network_equals_the_tensor_model_without_those_neurons(model, backend, wiring):
    tokens = encode(TEXT).numpy()
    net = build_network(model, wiring=wiring, backend=backend, dtype=np.float64)
    intact = net.run(tokens, progress=False)
    net.reset()
    net.silence(SILENCED)
    silenced = net.run(tokens, progress=False)
    np.testing.assert_allclose(silenced, recurrent_logits(without(model, SILENCED), tokens), rtol=0, atol=1e-9)
    assert np.abs(silenced - intact).max() > 1e-3  # the lesion does something
    net.reset()
    net.silence(None)
    np.testing.assert_array_equal(net.run(tokens, progress=False), intact)


def test_silenced_neurons_never_fire_and_the_others_inputs_change_only_through_them(model):
    tokens = encode(TEXT).numpy()
    factors = graph_factors(model, "x", "exact")  # G = pre @ post, (n+V) x n, edge i -> j
    net = build_network(model, wiring="neuron", backend="numpy", dtype=np.float64)
    net.silence(SILENCED)
    others = np.setdiff1d(np.arange(model.config.n_neurons), SILENCED)
    would_fire = 0
    for token in tokens:
        record = {}
        net.step(int(token), record)
        potential = (record["w"] @ factors.pre) @ factors.post  # the intact graph's input, (L, n)
        assert not record["x"][:, SILENCED].any() and not record["y"][:, SILENCED].any()
        assert not record["w"][:, SILENCED].any()  # they send nothing
        np.testing.assert_allclose(record["x"][:, others], np.maximum(potential[:, others], 0), rtol=0, atol=1e-10)
        would_fire += int((potential[:, SILENCED] > 0).sum())
    assert would_fire > 10  # the intact graph drives them: silencing is not vacuous


def test_silence_refuses_ids_outside_the_model(model):
    net = build_network(model, wiring="hub", backend="numpy")
    with pytest.raises(ValueError, match=r"silence: expected model neuron ids, integers in \[0, 64\)"):
        net.silence([5, 64])
    with pytest.raises(ValueError, match="dtype float64"):
        net.silence([1.5])


@pytest.fixture(scope="module")
def hubs(model):
    return hub_function(model, TEXT, head=1, ks=(4,), draws=3, seed=7, backend="numpy")


def reference_degrees(model, head: int) -> tuple[np.ndarray, np.ndarray]:
    """The head's analysis-form G_x, dense, its paper_edge_count(N) largest entries kept: in- and out-degrees."""
    f = graph_factors(model, "x", "analysis", head)
    G = f.pre @ f.post
    cut = np.sort(G.ravel())[-paper_edge_count(model.config.N)]
    A = G >= cut
    return A.sum(axis=0), A.sum(axis=1)


def test_hub_degrees_rates_and_correlations_equal_references(model, hubs):
    c = model.config
    k_in, k_out = reference_degrees(model, 1)
    np.testing.assert_array_equal(hubs.degrees["in"], k_in)
    np.testing.assert_array_equal(hubs.degrees["out"], k_out)
    np.testing.assert_array_equal(hubs.neurons, np.arange(c.N, 2 * c.N))
    # rates: the tensor model's x and y, averaged over tokens and layers
    tokens = encode(TEXT)
    x_sum, y_sum = np.zeros(c.n_neurons), np.zeros(c.n_neurons)
    state = model.init_state(1)
    with torch.no_grad():
        for token in tokens:
            record = {}
            _, state = model.step(token.view(1), state, record=record)
            x_sum += torch.stack([r.reshape(-1) for r in record["x"]]).sum(0).double().numpy()
            y_sum += torch.stack([r.reshape(-1) for r in record["y"]]).sum(0).double().numpy()
    T = len(tokens) * c.n_layer
    np.testing.assert_allclose(hubs.rates["x"], x_sum[c.N:2 * c.N] / T, rtol=0, atol=1e-10)
    np.testing.assert_allclose(hubs.rates["y"], y_sum[c.N:2 * c.N] / T, rtol=0, atol=1e-10)
    # Spearman's rho is Pearson's r of the ranks (mean ranks for ties)
    for rate in ("x", "y"):
        for d, k in (("in", k_in), ("out", k_out)):
            r = np.corrcoef(stats.rankdata(hubs.rates[rate]), stats.rankdata(k))[0, 1]
            assert hubs.correlations[rate][d]["rho"] == pytest.approx(r, abs=1e-12)


def test_hub_lesions_silence_the_highest_degree_neurons_and_seeded_draws(model, hubs):
    c = model.config
    k_in, k_out = reference_degrees(model, 1)
    tokens = encode(TEXT)
    bits = lambda m: float(F.cross_entropy(torch.as_tensor(recurrent_logits(m, tokens.numpy()))[:-1], tokens[1:])
                           / math.log(2))
    assert hubs.no_lesion == pytest.approx(bits(model), abs=1e-9)
    total = k_in + k_out
    four = hubs.lesions[0]
    chosen = np.array(four["hubs"]["neurons"]) - c.N
    assert len(chosen) == 4 and total[chosen].min() >= np.delete(total, chosen).max()
    assert four["hubs"]["bits_per_byte"] == pytest.approx(bits(without(model, c.N + chosen)), abs=1e-9)
    core = set(np.flatnonzero(total) + c.N)
    for pool in ("head", "core"):
        draws = four["random"][pool]
        assert len(draws) == 3 and len({tuple(d["neurons"]) for d in draws}) == 3
        for d in draws:
            assert d["bits_per_byte"] == pytest.approx(bits(without(model, d["neurons"])), abs=1e-9)
            assert set(d["neurons"]) <= (core if pool == "core" else set(range(c.N, 2 * c.N)))
    # each draw has its own seed: fewer draws are the first of more, another seed draws others
    again = hub_function(model, TEXT, head=1, ks=(4,), draws=2, seed=7, backend="numpy")
    assert again.lesions[0]["random"] == {pool: four["random"][pool][:2] for pool in ("head", "core")}
    other = hub_function(model, TEXT, head=1, ks=(4,), draws=1, seed=8, backend="numpy")
    assert other.lesions[0]["random"]["head"][0]["neurons"] != four["random"]["head"][0]["neurons"]
    # a core smaller than k has no core draws, and says why
    sparse = hub_function(model, TEXT, head=1, edges=3, ks=(8,), draws=1, backend="numpy")
    assert sparse.graph["core"] < 8 and "fewer than k = 8" in sparse.lesions[0]["random"]["core"]


def test_hub_function_refuses_k_larger_than_the_head(model):
    with pytest.raises(ValueError, match=r"k: the neurons silenced must number 1 to the head's N = 32, got \[33\]"):
        hub_function(model, TEXT, ks=(4, 33))


def test_hubs_cli_writes_the_report_and_two_figures(tmp_path, capsys):
    checkpoint = tiny_checkpoint(tmp_path, 5, 15.0)
    (tmp_path / "t.txt").write_text(TEXT)
    out = tmp_path / "hubs"
    data = run_json(capsys, "hubs", checkpoint, "--head", "1", "--text", str(tmp_path / "t.txt"), "--k", "4",
                    "--draws", "2", "--backend", "numpy", "--out", str(out))
    assert data["lesions"][0]["k"] == 4 and len(data["lesions"][0]["random"]["head"]) == 2
    assert set(data["correlations"]) == {"x", "y"} and "verdict" in data["lesions"][0]
    assert sorted(p.name for p in out.iterdir()) == ["hub_lesion.png", "hub_rates.png", "hubs.json"]
    assert main(["hubs", checkpoint, "--k", "33", "--out", str(tmp_path / "no")]) == 2
    assert "argument --k: at most the head's N = 32" in capsys.readouterr().err and not (tmp_path / "no").exists()
