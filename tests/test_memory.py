"""The working-memory experiments (``bdh_graph.experiments.memory``, ``bdh-graph memory``) against hand-written
references: the parallel form with a forgetting mask and erased heads, the tensor model stepped from a fresh state,
sigma summed from the Hebbian factors of a run."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from helpers import TINY, random_model, run_json, tiny_checkpoint

from bdh_graph.cli import main
from bdh_graph.graphs import TopK, graph_factors
from bdh_graph.experiments.memory import (HebbianFactors, MemoryResult, Reading, memory_benefit, memory_experiments,
                                          strongest_synapses)
from bdh_graph.model.tensor import layer_norm, rope, rope_cos_sin
from bdh_graph.network import build_network
from bdh_graph.text import encode

TEXT = "Dragons hatch from eggs; dragons hatch."
PASSAGE = 12  # repeat_bytes
TAUS = [1e-3, 2.0, 1e15]  # tau -> 0, a middle one, tau -> infinity
N, n, V = TINY.N, TINY.n_neurons, TINY.vocab_size

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model():
    return random_model(TINY, 3)


@pytest.fixture(scope="module")
def result(model):
    return memory_experiments(model, TEXT, backend="numpy", time_constants=TAUS, strongest=(7,),
                              repeat_bytes=PASSAGE)


def reference_logits(model, tokens: torch.Tensor, gamma: float = 1.0, erased=()) -> torch.Tensor:
    """The parallel form (docs/model.md 2) by hand: the read at t weights the write at tau < t by gamma^(t - tau)
    (forgetting before each read); an erased (layer, head) reads zero."""
    c, T = model.config, len(tokens)
    t = torch.arange(T, dtype=torch.float64)
    lag = t.view(T, 1) - t.view(1, T)
    weight = torch.where(lag > 0, torch.tensor(gamma, dtype=torch.float64) ** lag, 0.0)
    cos, sin = rope_cos_sin(t.view(T, 1), model.attn.freqs.view(-1))
    with torch.no_grad():
        v = layer_norm(model.embed.weight[tokens])  # T, d
        for layer in range(c.n_layer):
            ys = []
            for head in range(c.n_head):
                x = F.relu(v @ model.encoder[head])  # T, N
                k = rope(x, cos, sin)
                a = ((k @ k.T) * weight) @ v if (layer, head) not in erased else torch.zeros_like(v)
                ys.append(F.relu(layer_norm(a) @ model.encoder_v[head]) * x)
            v = layer_norm(v + layer_norm(torch.cat(ys, dim=1) @ model.decoder))
        return v @ model.lm_head


def bits(logits: torch.Tensor, tokens: torch.Tensor) -> np.ndarray:
    return (F.cross_entropy(logits[:-1], tokens[1:], reduction="none") / math.log(2)).numpy()


def assert_bits(reading, expected, tensor: bool = True) -> None:
    np.testing.assert_allclose(reading.bits, expected, rtol=0, atol=1e-9)
    if tensor:
        np.testing.assert_allclose(reading.tensor_bits, expected, rtol=0, atol=1e-9)


def test_full_memory_equals_the_tensor_model(model, result):
    tokens = encode(TEXT)
    with torch.no_grad():
        expected = bits(model(tokens.unsqueeze(0))[0][0], tokens)
    assert_bits(result.full, expected)
    assert result.to_dict()["bits_per_byte"] == pytest.approx(expected.mean(), abs=1e-9)
    assert len(result.full.bits) == len(TEXT) - 1


def test_no_memory_is_the_tensor_model_from_a_fresh_state_at_every_token(model, result):
    tokens = encode(TEXT)
    with torch.no_grad():
        logits = torch.stack([model.step(token.view(1), model.init_state(1))[0][0] for token in tokens])
    assert_bits(result.no_memory, bits(logits, tokens))
    assert np.abs(result.no_memory.bits - result.full.bits).max() > 0.5  # the comparison is not idle


def test_memory_benefit_gives_the_experiments_first_two_readings(model, result):
    full, no_memory = memory_benefit(model, TEXT, backend="numpy")
    np.testing.assert_array_equal(full.bits, result.full.bits)
    np.testing.assert_array_equal(no_memory.bits, result.no_memory.bits)
    assert full.tensor_bits is None and no_memory.tensor_bits is None  # the network alone
    with pytest.raises(ValueError, match="at least 2"):
        memory_benefit(model, "D", backend="numpy")


def test_forgetting_spans_no_memory_to_full_memory(model, result):
    tokens = encode(TEXT)
    short, middle, long = result.horizon
    assert [r.spec["time_constant"] for r in result.horizon] == TAUS
    assert_bits(short, result.no_memory.bits)
    assert_bits(long, result.full.bits)
    assert_bits(middle, bits(reference_logits(model, tokens, math.exp(-1 / 2.0)), tokens))
    assert min(np.abs(middle.bits - result.full.bits).max(), np.abs(middle.bits - short.bits).max()) > 0.1


def test_layer_and_head_lesions_equal_the_parallel_form_with_those_heads_reading_zero(model, result):
    tokens = encode(TEXT)
    by_label = {r.label: r for r in result.lesions}
    assert list(by_label) == ["layer 0", "layer 1", "head 0", "head 1", "the 7 strongest synapses"]
    for label, erased in (("layer 1", {(1, 0), (1, 1)}), ("head 0", {(0, 0), (1, 0)})):
        assert_bits(by_label[label], bits(reference_logits(model, tokens, erased=erased), tokens))
    assert by_label["the 7 strongest synapses"].tensor_bits is None  # sigma: not a state of the tensor model


def hebbian_sigma(records: list[dict], layer: int, head: int) -> np.ndarray:
    """sigma[layer, head] (n+V, N) by hand from the recorded trace w and k = R x: sum_t w_t k_t^T."""
    return sum(np.outer(r["w"][layer], r["k"][layer, head * N:(head + 1) * N]) for r in records)


def run_recorded(net, tokens) -> tuple[np.ndarray, list[dict]]:
    records = [{} for _ in tokens]
    logits = np.stack([net.step(int(token), record) for token, record in zip(tokens, records)])
    return logits, records


def test_a_lesion_erases_exactly_the_named_synapses_in_both_wirings(model):
    tokens = encode(TEXT).numpy()
    pairs = np.array([[n + ord("a"), 3], [n + ord(" "), 3], [5, 17], [40, 0]])  # input neurons and model neurons
    lesion = {(1, 0): pairs, (0, 1): "all"}
    neuron = build_network(model, "neuron", backend="numpy")
    neuron.lesion(lesion)
    logits, records = run_recorded(neuron, tokens)
    sigma = neuron.sigma(1, 0).toarray()
    assert np.all(sigma[pairs[:, 0], pairs[:, 1]] == 0)
    expected = hebbian_sigma(records, 1, 0)  # every other synapse grows by its own w_i k_j, untouched
    expected[pairs[:, 0], pairs[:, 1]] = 0
    np.testing.assert_allclose(sigma, expected, rtol=1e-12, atol=1e-12 * np.abs(expected).max())
    assert neuron.sigma(0, 1).count_nonzero() == 0 and neuron.sigma(0, 0).count_nonzero() > 0
    np.testing.assert_allclose(neuron.sigma(1, 1).toarray(), hebbian_sigma(records, 1, 1), rtol=1e-12, atol=1e-12)
    # the hub wiring stores rho = E_ext sigma: it takes back each write through the named synapses
    hub = build_network(model, "hub", backend="numpy")
    hub.lesion(lesion)
    hub_logits = hub.run(tokens, progress=False)
    np.testing.assert_allclose(hub_logits, logits, rtol=0, atol=1e-9 * np.abs(logits).max())
    E_ext = graph_factors(model, "x", "exact").pre.T  # d, n+V
    np.testing.assert_allclose(hub.rho(1)[0], E_ext @ sigma, rtol=0, atol=1e-9 * np.abs(E_ext @ sigma).max())
    # and without the lesion the reading differs: the named synapses mattered
    hub.lesion(None)
    hub.reset()
    assert np.abs(hub.run(tokens, progress=False) - logits).max() > 1e-3


def test_a_lesion_on_a_synapse_graph_zeroes_only_synapses_that_exist(model):
    tokens = encode(TEXT).numpy()
    net = build_network(model, "neuron", prune=TopK(4), synapses="wiring", backend="numpy")
    pattern = net.synapse_graph[:, :N]
    pre, post = sp.csr_array(pattern).nonzero()
    absent = np.argwhere(pattern.toarray() == 0)[0]
    pairs = np.array([[pre[0], post[0]], [pre[5], post[5]], absent])
    net.lesion({(1, 0): pairs})
    _, records = run_recorded(net, tokens)
    sigma = net.sigma(1, 0).toarray()
    expected = hebbian_sigma(records, 1, 0) * (pattern.toarray() != 0)
    expected[pairs[:, 0], pairs[:, 1]] = 0
    np.testing.assert_allclose(sigma, expected, rtol=0, atol=1e-12 * np.abs(expected).max())


def test_the_strongest_synapses_are_those_of_largest_sigma(model):
    tokens = encode(TEXT).numpy()
    net = build_network(model, "neuron", backend="numpy")
    factors = HebbianFactors()
    net.run(tokens, monitors=[factors], progress=False)
    found = strongest_synapses(net, factors, 9)
    stored = np.stack([[net.sigma(layer, head).toarray() for head in range(TINY.n_head)]
                       for layer in range(TINY.n_layer)])
    flat = np.argsort(-np.abs(stored).ravel(), kind="stable")[:9]
    layer, head, i, j = np.unravel_index(flat, stored.shape)
    assert (found["layer"].tolist(), found["head"].tolist(), found["pre"].tolist(), found["post"].tolist()) == (
        layer.tolist(), head.tolist(), i.tolist(), j.tolist())
    np.testing.assert_allclose(found["sigma"], stored.ravel()[flat], rtol=1e-12)


@pytest.mark.parametrize("wiring", ["hub", "neuron"])
def test_every_backend_forgets_and_lesions_alike(model, result, backend, wiring):
    on = memory_experiments(model, TEXT, wiring=wiring, backend=backend, time_constants=[2.0], layers=[1], heads=[],
                            strongest=(7,), repeat_bytes=PASSAGE, tensor=False)
    for mine, numpy_hub in ((on.horizon[0], result.horizon[1]), (on.lesions[0], result.lesions[1]),
                            (on.lesions[1], result.lesions[4]), (on.repeat["second_erased"],
                                                                 result.repeat["second_erased"])):
        assert mine.label == numpy_hub.label
        np.testing.assert_allclose(mine.bits, numpy_hub.bits, rtol=0, atol=1e-9)


def test_repeat_reads_the_passage_twice(model, result):
    passage = encode(TEXT)[:PASSAGE]
    twice = torch.cat([passage, passage])
    logits = reference_logits(model, twice)
    first, second = result.repeat["first"], result.repeat["second"]
    assert_bits(first, bits(logits[:PASSAGE], passage))
    assert_bits(second, bits(logits[PASSAGE:], passage))
    # erasing the synapses in between leaves nothing of the first reading: the memory is all in the synapses
    assert_bits(result.repeat["second_erased"], first.bits)
    assert np.abs(second.bits - first.bits).max() > 0.1  # the first reading's synapses act on the second


def test_report_keys(result):
    data = json.loads(json.dumps(result.to_dict()))
    assert data["bytes"] == len(TEXT) and data["horizon"][1]["time_constant"] == 2.0
    assert {"bits_per_byte", "no_memory", "horizon", "lesions", "repeat", "memory_span"} <= set(data)
    assert data["repeat"]["first"] == pytest.approx(data["repeat"]["tensor_first"], abs=1e-9)
    assert data["per_byte"]["full"] == result.full.bits.tolist()


def test_memory_span_is_where_half_the_benefit_is_reached(result):
    def reading(value, tau=None):
        return Reading("", np.full(3, value), None, {} if tau is None else {"time_constant": tau})

    made = MemoryResult(np.zeros(4), {}, reading(2.0), reading(4.0), [reading(3.5, 1), reading(2.5, 4),
                        reading(1.5, 16)], [], {}, [], 0.0)
    # benefit 2 bits; tau = 1 keeps 0.5 of it, tau = 4 keeps 1.5: half (1.0) lies halfway in log tau, at tau = 2
    assert made.memory_span() == pytest.approx(2.0)
    assert "reached at tau = 2 tokens" in made.horizon_verdict()
    assert "forgetting beats full memory, best at tau = 16" in made.horizon_verdict()
    assert made.middle().spec["time_constant"] == 1  # the ladder's tau nearest the span (log distance)


@pytest.mark.parametrize("kwargs, message", [
    ({"text": "D"}, "at least 2"),
    ({"time_constants": [0]}, "time_constants must be numbers > 0"),
    ({"time_constants": [4, -1]}, "time_constants must be numbers > 0"),
    ({"layers": [2]}, "layers: the model has layers 0..1"),
    ({"heads": [-1]}, "heads: the model has heads 0..1"),
    ({"strongest": [0]}, "strongest: .* >= 1"),
    ({"strongest": [10**9]}, "strongest: the network has"),
])
def test_bad_arguments_are_refused(model, kwargs, message):
    kwargs = {"text": TEXT, **kwargs}
    with pytest.raises(ValueError, match=message):
        memory_experiments(model, backend="numpy", **kwargs)


@pytest.fixture
def files(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text(TEXT, encoding="utf-8")
    return tiny_checkpoint(tmp_path, 31, 15.0), str(text)


def test_memory_command_writes_the_report_and_figures(capsys, files, tmp_path):
    out = tmp_path / "memory"
    data = run_json(capsys, "memory", files[0], "--text", files[1], "--out", str(out), "--time-constants", "1", "8",
                    "--heads", "1", "--strongest", "3", "--repeat-bytes", "10")
    assert data["network"]["wiring"] == "hub" and data["bytes"] == len(TEXT)
    assert data["bits_per_byte"] == pytest.approx(data["tensor_bits_per_byte"], abs=1e-9)
    assert [h["time_constant"] for h in data["horizon"]] == [1.0, 8.0]
    assert [entry["lesion"] for entry in data["lesions"]] == ["layer 0", "layer 1", "head 1",
                                                              "the 3 strongest synapses"]
    assert json.loads((out / "memory.json").read_text())["no_memory"] == data["no_memory"]
    for name in ("memory_horizon.png", "memory_per_byte.png", "memory_lesions.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG", name


@pytest.mark.parametrize("argv, message", [
    (["--time-constants", "0"], "argument --time-constants: must be > 0"),
    (["--strongest", "0"], "argument --strongest: must be >= 1"),
    (["--layers", "2"], "--layers: the model has layers 0..1, got [2]"),
    (["--heads", "0", "5"], "--heads: the model has heads 0..1, got [5]"),
    (["--mode", "spike"], "unrecognized arguments: --mode spike"),  # rates only: no spike options
])
def test_memory_command_refuses_bad_flags(capsys, files, tmp_path, argv, message):
    try:
        code = main(["memory", files[0], "--text", files[1], "--out", str(tmp_path / "m"), *argv])
    except SystemExit as exit_:  # refused by argparse
        code = exit_.code
    assert code == 2 and message in capsys.readouterr().err


def test_memory_command_refuses_a_one_byte_text(capsys, files, tmp_path):
    one = tmp_path / "one.txt"
    one.write_text("D", encoding="utf-8")
    assert main(["memory", files[0], "--text", str(one), "--out", str(tmp_path / "m")]) == 2
    assert f"--text: '{one}' has 1 byte" in capsys.readouterr().err


def test_a_damped_networks_strongest_synapses_are_those_of_its_true_sigma():
    from helpers import damped_model
    model = damped_model()
    net = build_network(model, "neuron", backend="numpy")
    factors = HebbianFactors()
    net.run(encode(TEXT).numpy(), monitors=[factors], progress=False)
    for layer in range(model.config.n_layer):
        for head in range(model.config.n_head):
            expected = net.sigma(layer, head).toarray()
            np.testing.assert_allclose(factors.sigma(layer, head), expected, rtol=0,
                                       atol=1e-10 * np.abs(expected).max())
