"""Synaptic state in neuron coordinates, the concept-synapse finder, sparsity statistics and their figures."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from scipy import stats

from bdh_graph import BDH, BDHConfig
from bdh_graph.text.concepts import CONCEPTS, concept_corpus, matched_sentences, read_sentences
from bdh_graph.interpretability.monosemantic import (find_concept_synapses, held_out_traces, mann_whitney,
                                                     presynaptic_rows, screen_synapses, split_sentences)
from bdh_graph.plots.synapses import plot_concept_synapse, plot_concept_synapse_test, plot_synapse_trace
from bdh_graph.interpretability.sparsity import lifetime_sparseness, sparsity
from bdh_graph.interpretability.synapse_state import (extended_decoder, layer_activity, neuron_sigma, presynaptic_trace,
                                                      record_sentences, synapse_trace)
from bdh_graph.network.address import Synapse, byte_name, check_synapse, parse_synapse
from bdh_graph.text import encode

SMALL = BDHConfig(n_layer=3, n_embd=16, n_head=2, mlp_internal_dim_multiplier=4, dropout=0.0)
SENTENCES = ["Dragons hatch.", "A small egg!", "Fire"]


def step_records(model, tokens):
    """x, y (L, B, T, n) and v (L+1, B, T, d) from the recurrent form, token by token; and the final state."""
    state = model.init_state(tokens.shape[0])
    recs = []
    for t in range(tokens.shape[1]):
        record = {}
        model.step(tokens[:, t], state, record=record)
        recs.append(record)
    x, y = (torch.stack([r[k] for r in recs], 2).flatten(-2) for k in ("x", "y"))
    return x, y, torch.stack([r["v"] for r in recs], 2), state


@pytest.fixture(params=[True, False], ids=["layernorm", "normfree"])
def small_model(request, make_model):
    config = SMALL.replace(layer_norm=request.param)
    return make_model(config, 5, scale=15.0 if request.param else 3.0)


# --- the trace w and the neuron-level sigma (docs/model.md 4.2) against the tensor model --------------------------

def test_presynaptic_trace_reproduces_the_residual_stream(small_model):
    tokens = torch.stack([encode("Dragons hatch"), encode("from eggs ...")])
    _, y, v, _ = step_records(small_model, tokens)
    w = presynaptic_trace(small_model, tokens, y)
    assert w.shape == (SMALL.n_layer + 1, 2, tokens.shape[1], SMALL.n_neurons + SMALL.vocab_size)
    assert (w >= 0).all()
    assert torch.allclose(w @ extended_decoder(small_model).T, v, rtol=0, atol=1e-10)


def test_parallel_activity_equals_the_recurrent_records(small_model):
    tokens = encode("Hebbian synapses").unsqueeze(0)
    x, y, v, _ = step_records(small_model, tokens)
    act = layer_activity(small_model, tokens)
    assert torch.allclose(act["x"], x, atol=1e-10) and torch.allclose(act["y"], y, atol=1e-10)
    assert torch.allclose(act["v"], v[:-1], atol=1e-10)


def test_neuron_sigma_projects_onto_rho_and_hub_records_are_rho(small_model):
    records = record_sentences(small_model, SENTENCES, dtype=torch.float64, batch_size=2)  # padded batches
    hubs = record_sentences(small_model, SENTENCES, level="hub", dtype=torch.float64)
    E_ext = extended_decoder(small_model)
    for sentence, record, hub in zip(SENTENCES, records, hubs):
        *_, state = step_records(small_model, encode(sentence).unsqueeze(0))
        rho = state.rho[:, 0]  # L, h, d, N
        assert torch.allclose(E_ext @ neuron_sigma(record, SMALL.N), rho, rtol=0, atol=1e-10)
        assert torch.allclose(neuron_sigma(hub, SMALL.N), rho, rtol=0, atol=1e-10)


def test_synapse_trace_accumulates_to_the_sigma_entry(make_model):
    model = make_model(SMALL, 6)
    synapse = Synapse(2, 7, 40)
    values = synapse_trace(model, SENTENCES[0], synapse)
    record, = record_sentences(model, SENTENCES[:1], dtype=torch.float64)
    sigma = neuron_sigma(record, SMALL.N)[2, 40 // SMALL.N, 7, 40 % SMALL.N]
    assert values.shape == (len(SENTENCES[0]),) and values[-1] == pytest.approx(float(sigma), abs=1e-12)
    first = record.pre[2, 0, 7] * record.post[2, 0, 40]
    assert values[0] == pytest.approx(float(first), abs=1e-12)


def test_synapse_trace_equals_the_network_simulators_monitor(make_model):
    """The tensor-side trace (parallel form, batched trace w) against the graph simulator's SynapseMonitor."""
    from bdh_graph.network.monitors import SynapseMonitor
    from bdh_graph.network import build_network

    model = make_model(SMALL, 7)
    text = "Hebbian dragons."
    pairs = [(3, 5), (SMALL.n_neurons + ord("e"), 30), (40, 0)]  # model neuron, input neuron of 'e', another
    monitor = SynapseMonitor(layer=2, head=1, pairs=pairs)
    build_network(model, backend="numpy").run(text, monitors=[monitor], progress=False)
    for m, (pre, k) in enumerate(pairs):
        ours = synapse_trace(model, text, Synapse(2, pre, SMALL.N + k))
        np.testing.assert_allclose(ours, monitor.values[:, m], rtol=1e-9, atol=1e-12)


# --- statistics against independent references ------------------------------------------------------------

def test_mann_whitney_matches_hand_counts():
    res = mann_whitney([3, 4, 5], [1, 2])
    assert res.U == 6 and res.rank_biserial == 1.0 and res.p == pytest.approx(1 / 10)  # 1 of C(5, 2) orders
    tied = mann_whitney([1, 2, 2], [2, 0])  # pairs above: 1>0, 2>0, 2>0; ties 2=2 twice count 1/2
    assert tied.U == pytest.approx(3 + 1.0) and tied.rank_biserial == pytest.approx(2 * 4 / 6 - 1)
    with pytest.raises(ValueError, match="needs values in both samples"):
        mann_whitney([], [1.0])


def test_screen_equals_welch_t_over_all_entries(make_model):
    model = make_model(SMALL, 8, dtype=torch.float32)
    concept, contrast = matched_sentences("country", 12, seed=2)
    rec_c, rec_k = record_sentences(model, concept), record_sentences(model, contrast)
    rows = presynaptic_rows(SMALL, "neuron", "all")
    screen = screen_synapses(rec_c, rec_k, rows, candidates=10, strengthening=False)
    # reference: every entry of every sentence's sigma, Welch's t by scipy
    def full(records):  # (sentences, L, n+V, n): all heads side by side
        sigma = torch.stack([neuron_sigma(r, SMALL.N) for r in records])  # S, L, h, n+V, N
        return sigma.permute(0, 1, 3, 2, 4).flatten(-2).double().numpy()

    full_c, full_k = full(rec_c), full(rec_k)
    with np.errstate(invalid="ignore", divide="ignore"):
        t_ref = stats.ttest_ind(full_c, full_k, equal_var=False, axis=0).statistic  # L, n+V, n
    t_ref = np.nan_to_num(t_ref, nan=0.0)
    assert screen.entries == t_ref.size
    best_ref = np.sort(t_ref.reshape(-1))[::-1][:10]
    np.testing.assert_allclose(screen.t, best_ref, rtol=1e-3)
    np.testing.assert_allclose(t_ref[screen.layers, screen.pres, screen.posts], screen.t, rtol=1e-3)
    # strengthening: only entries with mean after concept > |mean after contrast|
    grows = full_c.mean(0) > np.abs(full_k.mean(0))
    strong = screen_synapses(rec_c, rec_k, rows, candidates=10)
    np.testing.assert_allclose(strong.t, np.sort(t_ref[grows])[::-1][:10], rtol=1e-3)
    assert grows[strong.layers, strong.pres, strong.posts].all()


# --- the planted case ----------------------------------------------------------------------------------------

PLANTED = Synapse(layer=1, pre=6, post=6)
DIGITS = b"0123456789"


def planted_model() -> BDH:
    """A 2-layer Normfree network (d = 4, one head of N = 8) in which one synapse grows only after digits.

    Layer 0: x-neuron 4 fires for every token (hubs 0 + 1), x-neuron 6 only for digits (hub 0). The attention
    then carries the count of earlier non-digits (hub 1) into ``a``, so y-neuron 6 = relu(a[1]) * x_6 fires at
    digits that follow a word. Its output goes to hub 3, which silences x-neuron 4 in layer 1. In layer 1 the
    only model neuron in the trace w is therefore neuron 6, at digits, where x-neuron 6 fires: the synapse
    sigma[1][6, 6] (and, through RoPE, its pair partner 7 with a ~1e-3 share) grows only in sentences with digits.
    """
    config = BDHConfig(n_layer=2, n_embd=4, n_head=1, mlp_internal_dim_multiplier=2, dropout=0.0, layer_norm=False)
    model = BDH(config).double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.embed.weight[:, 1] = 1.0
        for b in DIGITS:
            model.embed.weight[b] = torch.tensor([1.0, 0.0, 0.0, 0.0])
        model.encoder[0, :, 4] = torch.tensor([1.0, 1.0, 0.0, -10.0])
        model.encoder[0, 0, 6] = 1.0
        model.encoder_v[0, 1, 6] = 1.0
        model.decoder[6, 3] = 1.0
    return model


def digit_sentences(count: int, seed: int, digit: bool) -> list[str]:
    rng = random.Random(seed)
    words = "the a cat sat on mat and ran far away to see his old friend by river".split()
    out: set[str] = set()
    while len(out) < count:
        chosen = rng.sample(words, rng.randint(3, 7))
        chosen.insert(rng.randint(1, len(chosen)), str(rng.randint(0, 99)) if digit else rng.choice(["one", "few"]))
        out.add(" ".join(chosen) + ".")
    return sorted(out)


def test_planted_synapse_is_found_and_significant_on_held_out_sentences():
    model = planted_model()
    concept, contrast = digit_sentences(60, 1, True), digit_sentences(60, 2, False)
    found = find_concept_synapses(model, concept, contrast, top_k=3, candidates=20, alpha=0.01)
    best = found.synapses[0]
    assert best.synapse == PLANTED
    assert best.test.p < 0.01 and best.significant and best.test.rank_biserial == 1.0
    assert best.test.U == best.test.n_concept * best.test.n_contrast == 30 * 30
    assert all(s.synapse.layer == 1 and s.synapse.pre == 6 for s in found.significant)  # the planted neuron only


def test_shuffled_labels_give_nothing_significant():
    model = planted_model()
    pool = digit_sentences(60, 1, True) + digit_sentences(60, 2, False)
    labels = [True] * 60 + [False] * 60
    random.Random(3).shuffle(labels)
    concept = [s for s, keep in zip(pool, labels) if keep]
    contrast = [s for s, keep in zip(pool, labels) if not keep]
    found = find_concept_synapses(model, concept, contrast, top_k=3, candidates=20, alpha=0.01)
    assert found.synapses and found.significant == []
    assert "none significant at alpha = 0.01" in found.summary(model.config)


def test_selection_and_test_sentences_are_disjoint_and_selection_ignores_the_test():
    model = planted_model()
    concept, contrast = digit_sentences(40, 4, True), digit_sentences(40, 5, False)
    found = find_concept_synapses(model, concept, contrast, top_k=2, candidates=10)
    split = found.split
    assert not set(split.selection_concept) & set(split.test_concept)
    assert not set(split.selection_contrast) & set(split.test_contrast)
    assert sorted(split.selection_concept + split.test_concept) == sorted(concept)
    # replace the held-out concept sentences (same positions, so the same split): the selection must not move
    replacement = iter(digit_sentences(60, 6, True)[-20:])
    swapped = [next(replacement) if s in split.test_concept else s for s in concept]
    again = find_concept_synapses(model, swapped, contrast, top_k=2, candidates=10)
    assert again.split.selection_concept == split.selection_concept
    assert [s.synapse for s in again.synapses] == [s.synapse for s in found.synapses]
    assert [s.selection for s in again.synapses] == [s.selection for s in found.synapses]
    assert set(again.split.test_concept).isdisjoint(split.test_concept)


# --- bad input -------------------------------------------------------------------------------------------------

def test_bad_sentence_lists_are_refused(make_model, tmp_path):
    model = make_model(SMALL, 9)
    good = ["one sentence.", "another one.", "a third.", "and a fourth."]
    with pytest.raises(ValueError, match="concept sentences: the list is empty"):
        find_concept_synapses(model, [], good)
    with pytest.raises(ValueError, match=r"contrast sentences\[1\] .* is 300 tokens \(bytes\) long, longer than "
                                         r"the context of max_tokens=256"):
        find_concept_synapses(model, good, ["short.", "x" * 300, "y", "z"])
    with pytest.raises(ValueError, match=r"sentences\[0\] \('" + "x" * 40 + r"'\.\.\.\) is 300 tokens"):
        record_sentences(model, ["x" * 300])
    with pytest.raises(ValueError, match=r"concept sentences\[0\] is ''"):
        find_concept_synapses(model, [""], good)
    with pytest.raises(ValueError, match="in both the concept and the contrast list"):
        find_concept_synapses(model, good, good[:3] + ["new."])
    with pytest.raises(ValueError, match="concept sentences: 3 distinct sentences give 1 for selection and 2 for"):
        split_sentences(good[:3] + good[:1], ["p.", "q.", "r.", "s."])
    (tmp_path / "empty.txt").write_text("\n  \n", encoding="utf-8")
    with pytest.raises(ValueError, match="sentence file '.*empty.txt' holds no sentences"):
        read_sentences(tmp_path / "empty.txt")
    (tmp_path / "s.txt").write_text("First one.\n\nSecond one.  \n", encoding="utf-8")
    assert read_sentences(tmp_path / "s.txt") == ["First one.", "Second one."]


def test_synapse_index_out_of_range_is_refused(make_model):
    model = make_model(SMALL, 10)
    n_pre = SMALL.n_neurons + SMALL.vocab_size
    n = SMALL.n_neurons
    for synapse, message in ((Synapse(3, 0, 0), r"layer index 3 is out of range: the model has 3 layers"),
                             (Synapse(0, n_pre, 0), rf"pre index {n_pre} is out of range: expected a model neuron "
                                                    rf"0..{n - 1} or an input neuron n \+ byte, {n}..{n_pre - 1}"),
                             (Synapse(0, 0, -1), r"post index -1 is out of range: expected an x-neuron 0..63"),
                             (Synapse(0, 16, 0, level="hub"), r"pre index 16 is out of range: expected a hub 0..15")):
        with pytest.raises(ValueError, match=message):
            check_synapse(synapse, SMALL)
    with pytest.raises(ValueError, match="synapse: post index 64"):
        synapse_trace(model, "text", Synapse(0, 0, 64))
    with pytest.raises(ValueError, match="presynaptic='model' applies to level='neuron' only"):
        presynaptic_rows(SMALL, "hub", "model")


# --- one synapse address ------------------------------------------------------------------------------------

def test_address_forms_name_the_same_synapse_and_reports_read_back():
    n, N = SMALL.n_neurons, SMALL.N  # 64 neurons, 32 per head
    space = Synapse(2, n + 32, N + 5)
    assert parse_synapse(f"2:' ':{N + 5}", SMALL) == parse_synapse(f"2:{n + 32}:{N + 5}", SMALL) == space
    assert parse_synapse(f"2,1,{n + 32},5", SMALL) == space  # the older L,H,I,J form, J within head H
    assert space.address(SMALL) == "2:' ':37"
    assert space.describe(SMALL) == "layer 2: input neuron ' ' -> x-neuron 37 (head 1, #5)"
    for byte in range(256):  # every byte's name reads back as that byte's input neuron
        synapse = Synapse(0, n + byte, 3)
        assert parse_synapse(synapse.address(SMALL), SMALL) == synapse
    assert [byte_name(b) for b in (10, 39, 92, 0xE9)] == ["'\\n'", '"\'"', "'\\\\'", "'\\xe9'"]
    assert parse_synapse(" 1 : \"'\" : 7 ", SMALL).pre == parse_synapse("1:b\"'\":7", SMALL).pre == n + ord("'")
    hub = parse_synapse("1:15:7", SMALL, level="hub")
    assert hub == Synapse(1, 15, 7, "hub") and hub.address(SMALL) == "1:15:7" and "hub 15" in hub.describe(SMALL)


@pytest.mark.parametrize("text, level, message", [
    ("1:2", "neuron", r"--synapse '1:2': expected LAYER:PRE:POST"),
    ("1:'é':3", "neuron", r"is not a byte; .* a byte above 127 as '\\xNN'"),
    ("1:'ab':3", "neuron", "holds 2 bytes"),
    ("1:'a':3", "hub", "at hub level PRE is a hub index 0..15, not a byte"),
    ("1,2,3,4", "neuron", r"head H = 2 and x-neuron J = 4 must lie in 0..1 and 0..31"),
    ("1,0,3,4", "hub", "the L,H,I,J form names a neuron-level synapse"),
    ("3:0:0", "neuron", r"--synapse '3:0:0': layer index 3 is out of range"),
])
def test_bad_addresses_are_refused_naming_the_input(text, level, message):
    with pytest.raises(ValueError, match=message):
        parse_synapse(text, SMALL, level, name="--synapse")


# --- generated concept corpus -------------------------------------------------------------------------------

def test_matched_sentences_are_distinct_and_matched_and_training_text_is_seeded():
    for name, concept in CONCEPTS.items():
        pos, neg = matched_sentences(name, 100, seed=3)
        assert len(set(pos)) == len(set(neg)) == 100
        for p, q in zip(pos, neg):  # same template: the sentences differ only in the slot
            prefix = len(next(t for t in concept.templates + concept.extra_templates
                              if p.startswith(t.split("{}")[0]) and p.endswith(t.split("{}")[1])).split("{}")[0])
            assert p[:prefix] == q[:prefix]
    with pytest.raises(ValueError, match=r"count must be an integer in \[1, 144\]"):
        matched_sentences("currency", 145)
    # the training text is a function of its seed alone (the recipe mixes concept_corpus(1200, seed=1337) in)
    assert concept_corpus(200, seed=1337) == concept_corpus(200, seed=1337) != concept_corpus(200, seed=1338)


# --- sparsity and figures -----------------------------------------------------------------------------------

def test_lifetime_sparseness_by_hand():
    r = np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])  # T = 4 tokens, 3 neurons
    S = lifetime_sparseness(r.sum(0), (r * r).sum(0), 4)
    assert S[0] == pytest.approx(1.0) and S[1] == pytest.approx(0.0) and np.isnan(S[2])


def test_sparsity_counts_active_neurons(make_model):
    model = make_model(SMALL, 11)
    text = "Dragons hatch from eggs; synapses grow."
    stats_ = sparsity(model, text, window=16)  # three windows, each from a zero state
    x = torch.cat([layer_activity(model, encode(text)[s:s + 16].unsqueeze(0))["x"][:, 0] for s in (0, 16, 32)], 1)
    np.testing.assert_allclose(stats_.active["x"], (x > 0).double().mean((1, 2)).numpy())
    np.testing.assert_allclose(stats_.rate["x"], (x > 0).double().mean(1).numpy())
    assert 0 < stats_.active["y"].min() and (stats_.active["y"] <= stats_.active["x"]).all()  # y = relu(.) * x


def test_trace_figure_is_written(tmp_path, make_model):
    model = make_model(SMALL, 12)
    text = "The ticket cost twenty euros."
    values = synapse_trace(model, text, Synapse(1, 3, 5))
    path = plot_synapse_trace(values, encode(text), tmp_path / "trace.png", "trace")
    assert path.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="same non-zero length"):
        plot_synapse_trace(values[:-1], encode(text), tmp_path / "bad.png")


def test_the_concept_synapse_figure_shows_what_the_held_out_test_ranks(tmp_path):
    model = planted_model()
    found = find_concept_synapses(model, digit_sentences(24, 1, True), digit_sentences(24, 2, False), top_k=2,
                                  candidates=10)
    traces = held_out_traces(model, found, per_set=3)
    split, best = found.split, found.best
    assert [t.sentence for t in traces] == split.test_concept[:3] + split.test_contrast[:3]
    assert [t.concept for t in traces] == [True] * 3 + [False] * 3
    # each sentence read alone from a zero state: its last value is the value the test ranked for that sentence
    ends = np.array([t.values[-1] for t in traces])
    np.testing.assert_allclose(ends[:3], best.test_concept_values[:3], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(ends[3:], best.test_contrast_values[:3], rtol=1e-6, atol=1e-9)
    assert all(len(t.values) == len(t.sentence.encode()) for t in traces)
    for figure in (plot_concept_synapse(model, found, tmp_path / "c.png", "digits"),
                   plot_concept_synapse_test(found, model.config, tmp_path / "t.png", "digits")):
        assert figure.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="per_set must be an integer >= 1, got 0"):
        held_out_traces(model, found, per_set=0)


def test_a_damped_models_sigma_and_traces_are_the_networks():
    """Damping (docs/model.md 7.3): the recorded factors weighted by gamma ** age give the graph network's sigma
    after the sentence and its SynapseMonitor's trace token by token (float64)."""
    from bdh_graph.network import build_network
    from bdh_graph.network.monitors import SynapseMonitor
    from helpers import damped_model

    model = damped_model()
    c, text = model.config, "Hebbian dragons."
    record, = record_sentences(model, [text], dtype=torch.float64)
    pairs = [(3, 5), (c.n_neurons + ord("e"), 30 % c.N), (40, 0)]
    monitor = SynapseMonitor(layer=1, head=2, pairs=pairs)
    net = build_network(model, backend="numpy")
    net.run(text, monitors=[monitor], progress=False)
    sigma = neuron_sigma(record, c.N)
    for layer in range(c.n_layer):
        for head in range(c.n_head):
            expected = net.sigma(layer, head).toarray()
            assert np.abs(sigma[layer, head].numpy() - expected).max() <= 1e-9 * np.abs(expected).max()
    for m, (pre, k) in enumerate(pairs):
        ours = synapse_trace(model, text, Synapse(1, pre, 2 * c.N + k))
        np.testing.assert_allclose(ours, monitor.values[:, m], rtol=1e-9, atol=1e-12)
        assert ours[-1] == pytest.approx(float(record.synapse_values([1], [pre], [2 * c.N + k])[0]), rel=1e-12)
