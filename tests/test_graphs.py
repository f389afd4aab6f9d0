"""Neuron graphs: orientation, tiled extraction against the dense reference, the exact form against the tensor
model, and bad input."""
from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import torch

from bdh_graph import BDH, BDHConfig
from bdh_graph.graphs import (
    Circuits,
    Strongest,
    Threshold,
    TopK,
    dense_neuron_graph,
    entry_histogram,
    extract,
    graph_factors,
    neuron_graph,
    paper_edge_count,
    product_graph,
    prune_from_options,
)
from bdh_graph.graphs.pruning import check_keeps_edges
from bdh_graph.graphs.scale import check_network_pruning, graph_name, graph_scale
from bdh_graph.structure.degrees import in_degree, out_degree
from helpers import test_seed

TINY_BLOCK = 2048  # bytes: forces many tiles even at this size

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: a second thread only waits


def random_model(seed: int, **sizes) -> BDH:
    torch.manual_seed(seed)
    config = dict(n_layer=2, n_embd=16, n_head=2, mlp_internal_dim_multiplier=8, vocab_size=32)
    return BDH(BDHConfig(**{**config, **sizes}))


def hand_built_model() -> BDH:
    """d = n = 4, E = I, so G = D: edges 0 -> 1, 0 -> 2, 0 -> 3, 3 -> 1 (excitatory) and 1 -> 2 (inhibitory)."""
    model = random_model(0, n_embd=4, n_head=1, mlp_internal_dim_multiplier=1)
    with torch.no_grad():
        model.decoder.copy_(torch.eye(4))  # E[k, i] = delta_ki
        model.encoder.zero_()  # encoder[0, k, j] = D_x[j, k] = G[j, k] = weight of the edge k -> j
        for pre, post, w in [(0, 1, 1.0), (0, 2, 2.0), (0, 3, 1.5), (3, 1, 0.7), (1, 2, -0.9)]:
            model.encoder[0, pre, post] = w
    return model


def test_orientation_of_a_hand_built_graph():
    g = neuron_graph(hand_built_model(), prune=Threshold(0.5))
    assert g.excitatory[0, 2] == 2.0 and g.excitatory[2, 0] == 0  # A[i, j] = weight of i -> j
    assert out_degree(g.excitatory).tolist() == [3, 0, 0, 1]
    assert in_degree(g.excitatory).tolist() == [0, 2, 1, 1]
    assert g.inhibitory[1, 2] == pytest.approx(0.9)
    assert out_degree(g.inhibitory).tolist() == [0, 1, 0, 0]
    assert in_degree(g.inhibitory).tolist() == [0, 0, 1, 0]
    assert (g.signed().toarray() == dense_neuron_graph(hand_built_model())).all()


def reference(A: np.ndarray, prune) -> tuple[np.ndarray, np.ndarray]:
    """Dense excitatory and inhibitory circuits of the signed ``A``, pruned the slow obvious way."""
    out = []
    for S in (np.maximum(A, 0), np.maximum(-A, 0)):
        if isinstance(prune, Threshold):
            out.append(np.where(S >= prune.beta, S, 0))
        elif isinstance(prune, TopK):
            kept = np.zeros_like(S)
            for j in range(S.shape[1]):
                rows = np.argsort(S[:, j])[::-1][: prune.k]
                kept[rows, j] = S[rows, j]
            out.append(kept)
        elif isinstance(prune, Strongest):
            floor = np.sort(S.ravel())[::-1][prune.m - 1]
            out.append(np.where(S >= floor, S, 0))
        else:
            out.append(S)
    return out[0], out[1]


@pytest.mark.parametrize("form", ["analysis", "exact"])
@pytest.mark.parametrize("head", [None, 1])
@pytest.mark.parametrize("which", ["x", "y"])
def test_tiled_extraction_equals_the_dense_reference(form, head, which):
    seed = test_seed(7)  # with --fresh-seeds, fresh weights each run; the seed is in any failure
    model = random_model(seed)
    A = dense_neuron_graph(model, which, form, head)
    n_post = A.shape[1]
    beta = float(np.quantile(np.abs(A), 0.9))
    factors = graph_factors(model, which, form, head)
    for prune in (None, Threshold(beta), TopK(3), Strongest(n_post)):
        g = product_graph(factors, prune, block_bytes=TINY_BLOCK)
        exc, inh = reference(A, prune)
        assert g.shape == A.shape
        context = f"{prune!r}, seed {seed}"
        np.testing.assert_allclose(g.excitatory.toarray(), exc, rtol=1e-12, atol=1e-15, err_msg=context)
        np.testing.assert_allclose(g.inhibitory.toarray(), inh, rtol=1e-12, atol=1e-15, err_msg=context)
        assert g.n_edges == np.count_nonzero(exc) + np.count_nonzero(inh)
    whole = dense_neuron_graph(model, which, form)
    N = model.config.N
    block = whole[N:2 * N, N:2 * N] if form == "analysis" else whole[:, N:2 * N]
    assert head is None or np.array_equal(A, block)


def test_head_ids_and_the_exact_form_square_graph():
    model = random_model(1)
    c, N, n = model.config, model.config.N, model.config.n_neurons
    g = neuron_graph(model, form="exact", head=1, prune=TopK(2))
    assert g.shape == (n + c.vocab_size, N)
    assert g.post_ids.tolist() == list(range(N, 2 * N)) and g.pre_ids[-1] == n + c.vocab_size - 1
    A, ids = g.square("both")
    assert A.shape == (n + c.vocab_size,) * 2 and np.array_equal(ids, g.pre_ids)
    np.testing.assert_array_equal(A.toarray()[:, N:2 * N], g.circuit("both").toarray())
    assert A.toarray()[:, :N].sum() == 0 and A.toarray()[:, 2 * N:].sum() == 0


def test_exact_form_reproduces_the_first_layer_of_the_tensor_model():
    """docs/model.md 4.2: the input neuron of token t fires w = onehot / gain; G_x w is D_x LN(embed[t]) (x before
    relu)."""
    model = random_model(2).double()
    n = model.config.n_neurons
    A = neuron_graph(model, form="exact").signed().toarray()
    tokens = torch.tensor([5, 17, 30])
    record = {}
    model.step(tokens, model.init_state(3), record)
    for b, tok in enumerate(tokens.tolist()):
        pre = A[n + tok]  # out-edges of the input neuron
        E_ext_col = model.embed.weight[tok].detach().numpy() - model.embed.weight[tok].detach().numpy().mean()
        gain = np.sqrt(E_ext_col @ E_ext_col / model.config.n_embd + 1e-5)
        x = record["x"][0, b].reshape(-1).numpy()  # layer 1, head-major
        np.testing.assert_allclose(np.maximum(pre / gain, 0), x, rtol=1e-10, atol=1e-12)


def test_entry_histogram_counts_every_entry():
    model = random_model(3)
    A = dense_neuron_graph(model)
    counts, edges = entry_histogram(graph_factors(model), bins=50, block_bytes=TINY_BLOCK)
    assert counts.sum() == A.size
    np.testing.assert_array_equal(counts, np.histogram(A, bins=edges)[0])


def test_bad_input_has_clear_errors():
    model = random_model(4)
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="beta must be > 0"):
            Threshold(bad)
    with pytest.raises(ValueError, match="k must be an integer >= 1, got 0"):
        TopK(0)
    with pytest.raises(ValueError, match=r"head must be an integer in \[0, 2\).*got 2"):
        neuron_graph(model, head=2)
    with pytest.raises(ValueError, match="which must be"):
        neuron_graph(model, which="z")
    with pytest.raises(ValueError, match="form must be"):
        neuron_graph(model, form="dense")
    with pytest.raises(TypeError, match="prune must be"):
        neuron_graph(model, prune=0.5)
    with pytest.raises(ValueError, match="shape"):
        Circuits(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="must be finite and >= 0"):
        Circuits(-np.eye(2), np.eye(2))


def test_a_threshold_above_every_weight_gives_an_empty_graph_and_a_message():
    model = random_model(5)
    largest = np.abs(dense_neuron_graph(model, head=0)).max()
    with pytest.warns(UserWarning, match=f"no edge has .G. >= beta = 1e\\+06 \\(the largest .G. is {largest:.4g}"):
        g = neuron_graph(model, head=0, prune=Threshold(1e6))
    assert g.n_edges == 0 and g.shape == (model.config.N,) * 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kept = neuron_graph(model, head=0, prune=Threshold(largest * 0.99)).n_edges
    assert kept == np.count_nonzero(np.abs(dense_neuron_graph(model, head=0)) >= largest * 0.99) >= 1


def test_pruning_from_options():
    assert prune_from_options(beta=0.5) == Threshold(0.5) and prune_from_options(top_k=3) == TopK(3)
    assert prune_from_options(edges=7) == Strongest(7) and prune_from_options() is None
    assert prune_from_options(n_post=8192) == Strongest(46820)  # the paper's head block: 46,820 edges
    assert paper_edge_count(32) == round(32 * 46820 / 8192) == 183 and paper_edge_count(1) == 6
    with pytest.raises(ValueError, match=r"at most one of beta, top_k, edges; got \{'beta': 0.5, 'edges': 3\}"):
        prune_from_options(beta=0.5, edges=3)
    with pytest.raises(ValueError, match="beta must be > 0, got -1"):
        prune_from_options(beta=-1)
    with pytest.raises(ValueError, match="n_post must be an integer >= 1, got 0"):
        paper_edge_count(0)


def test_extract_keeps_the_paper_density_by_default():
    model = random_model(6)
    N = model.config.N
    A = dense_neuron_graph(model, head=1)
    factors, prune, g = extract(model, head=1)
    assert prune == Strongest(paper_edge_count(N)) and factors.shape == A.shape
    exc, inh = reference(A, prune)
    np.testing.assert_allclose(g.excitatory.toarray(), exc, rtol=1e-12, atol=0)
    np.testing.assert_allclose(g.inhibitory.toarray(), inh, rtol=1e-12, atol=0)
    assert extract(model, head=1, top_k=2).prune == TopK(2)
    with pytest.raises(ValueError, match=r"no excitatory edge of G_y is left by Threshold\(beta=1000000.0\) "
                                         r"\(the largest \|G\| is"):
        extract(model, "y", beta=1e6, circuit="excitatory")


def test_the_scale_of_beta_against_the_dense_graph():
    model = random_model(9)
    for which, form, head in (("x", "analysis", 1), ("y", "exact", None)):
        A = dense_neuron_graph(model, which, form, head)
        scale = graph_scale(model, which, form, head)
        m = paper_edge_count(A.shape[1])
        assert scale.graph == graph_name(which, form, head) and scale.paper_edges == m
        assert scale.largest == pytest.approx(np.abs(A).max(), rel=1e-12)
        assert scale.paper_beta == pytest.approx(np.sort(A[A > 0])[::-1][m - 1], rel=1e-12)  # m-th strongest
        assert np.count_nonzero(A >= scale.paper_beta) == m  # no ties in random weights: exactly the paper's m
        check_keeps_edges(Threshold(scale.largest), scale.largest, "G")  # keeps the strongest edge: accepted
        with pytest.raises(ValueError, match=rf"beta=1 keeps no edge of G: its largest \|G\| is "
                                             rf"{scale.largest:.4g} \(a threshold keeps \|G\| >= beta\)"):
            check_keeps_edges(Threshold(1.0), scale.largest, "G")
    check_keeps_edges(TopK(1), 0.0, "G")  # only a threshold can empty a graph


def test_a_network_pruning_that_keeps_no_edge_is_refused():
    model = random_model(10)
    largest = {w: np.abs(dense_neuron_graph(model, w, "exact")).max() for w in "xy"}
    scales = check_network_pruning(model, Threshold(0.5 * min(largest.values())))
    assert [s.largest for s in scales] == pytest.approx([largest["x"], largest["y"]], rel=1e-12)
    assert check_network_pruning(model, TopK(2)) == [] and check_network_pruning(model, None) == []
    beta = 0.5 * (largest["x"] + largest["y"])  # between the two: G_x or G_y keeps no edge
    emptied = "x" if largest["x"] < largest["y"] else "y"
    with pytest.raises(ValueError, match=rf"--beta={beta:g} keeps no edge of G_{emptied} \(exact form, whole "
                                         rf"graph\), the network's wiring: its largest \|G\| is "
                                         rf"{largest[emptied]:.4g}.*the paper's edge density") as refused:
        check_network_pruning(model, Threshold(beta), "--beta")
    # the example it gives is the lower paper-density beta of the two graphs, and keeps edges in both
    example = float(re.search(r"e\.g\. ([0-9.e+-]+), the paper's edge density of G_", str(refused.value)).group(1))
    assert example == pytest.approx(min(s.paper_beta for s in scales), rel=1e-3)
    check_network_pruning(model, Threshold(example), "--beta")


@pytest.mark.parametrize("layer_norm", [True, False], ids=["LN", "normfree"])
def test_the_graph_form_of_docs_model_md_equals_the_tensor_model(layer_norm):
    """docs/model.md sections 4.2-4.5 written out in numpy from the weights alone: the neuron wiring (trace w,
    synapses sigma) and the hub wiring (rho) give the tensor model's logits, and rho = E_ext sigma."""
    model = random_model(8, n_layer=3, layer_norm=layer_norm).double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(15.0 if layer_norm else 3.0)  # so that x and y fire
    c = model.config
    n, N, d, h, V = c.n_neurons, c.N, c.n_embd, c.n_head, c.vocab_size
    weights = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    D_x = np.concatenate([weights["encoder"][a].T for a in range(h)])  # row a*N + k = encoder[a, :, k]
    D_y = np.concatenate([weights["encoder_v"][a].T for a in range(h)])
    C = np.eye(d) - np.ones((d, d)) / d if layer_norm else np.eye(d)
    E_ext = C @ np.hstack([weights["decoder"].T, weights["embed.weight"].T])  # d x (n+V)
    G_x, G_y, W = D_x @ E_ext, D_y @ E_ext, E_ext.T @ weights["lm_head"]
    f = weights["attn.freqs"].reshape(-1)

    def gain(u):
        return np.sqrt(u @ u / d + 1e-5) if layer_norm else 1.0

    def rotate(x, t):  # R_t on each pair (2m, 2m+1) of a head
        phi = 2 * np.pi * ((t * f) % 1)
        pair = np.stack([-x[1::2], x[::2]], axis=-1).reshape(-1)
        return x * np.cos(phi) + pair * np.sin(phi)

    tokens = [3, 17, 5, 30, 3, 8]
    sigma = np.zeros((c.n_layer, h, n + V, N))
    rho = np.zeros((c.n_layer, h, d, N))
    expected = model.forward_recurrent(torch.tensor([tokens]))[0].numpy()
    y_fired = 0
    for t, tok in enumerate(tokens):
        w = np.zeros(n + V)
        w[n + tok] = 1.0 / gain(E_ext[:, n + tok])
        u = E_ext @ w  # the hub wiring's state, stepped beside the neuron wiring
        for layer in range(c.n_layer):
            x, x_hub = np.maximum(G_x @ w, 0), np.maximum(D_x @ u, 0)
            y, y_hub = np.zeros(n), np.zeros(n)
            for a in range(h):
                heads = slice(a * N, (a + 1) * N)
                k = rotate(x[heads], t)
                A = sigma[layer, a] @ k
                y[heads] = np.maximum(G_y[heads] @ A / gain(E_ext @ A), 0) * x[heads]
                sigma[layer, a] += np.outer(w, k)
                k_hub = rotate(x_hub[heads], t)
                a_hub = rho[layer, a] @ k_hub
                y_hub[heads] = np.maximum(D_y[heads] @ a_hub / gain(a_hub), 0) * x_hub[heads]
                rho[layer, a] += np.outer(u, k_hub)
            z = E_ext @ np.concatenate([y, np.zeros(V)])
            w = w + np.concatenate([y, np.zeros(V)]) / gain(z)
            w = w / gain(E_ext @ w)
            z_hub = E_ext[:, :n] @ y_hub
            u = u + z_hub / gain(z_hub)
            u = u / gain(u)
        scale = np.abs(expected[t]).max()
        np.testing.assert_allclose(W.T @ w, expected[t], rtol=0, atol=1e-9 * scale)
        np.testing.assert_allclose(weights["lm_head"].T @ u, expected[t], rtol=0, atol=1e-9 * scale)
        y_fired += np.count_nonzero(y)
    assert y_fired > 0  # the synapses were read, so the check covers sigma and rho
    np.testing.assert_allclose(np.einsum("dp,lapk->ladk", E_ext, sigma), rho, rtol=0, atol=1e-9 * np.abs(rho).max())
