"""Everything that takes a device, run on CUDA and compared with the same computation on the CPU: the tensor model
(parallel == recurrent, windows from carried state == parallel), training, generation, validation, the memory
experiments, the torch network, and the commands with ``--device``.

Marked ``gpu`` and skipped without CUDA. ``BDH_GPU_TEST_DEVICE=cpu python -m pytest tests/test_gpu.py`` runs them on
the CPU instead (``tests/helpers.py``): each comparison is then the CPU against itself, which checks the device
plumbing's code paths run, not CUDA's numbers. Tolerances: float64 to round-off (1e-9 relative; the devices sum in
other orders), float32 training to 1e-3 after a few steps (AdamW divides by the gradients' own scale, so round-off
in a tiny gradient moves its weight by up to lr per step).
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from helpers import GPU_DEVICE as DEVICE, ON_GPU_DEVICE, TINY, random_model, run_json, tiny_checkpoint

from bdh_graph import BDHConfig
from bdh_graph.graphs import TopK
from bdh_graph.model.training import MODEL_FILE, TrainConfig, train
from bdh_graph.model.checkpoints import load_model
from bdh_graph.network import build_network
from bdh_graph.experiments.memory import memory_experiments
from bdh_graph.network.validation import validate
from bdh_graph.text import default_corpus, encode, split_held_out

pytestmark = [pytest.mark.gpu, ON_GPU_DEVICE]

CONFIG = BDHConfig(n_layer=2, n_embd=32, n_head=2, mlp_internal_dim_multiplier=4, dropout=0.0)
TEXT = "The quick brown fox jumps over the lazy dog; the dog sleeps on."


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.cpu() - b.cpu()).abs().max() / b.abs().max()).item()


@pytest.fixture(scope="module")
def model():
    return random_model(CONFIG, seed=0)  # float64, eval mode, on the CPU


def test_tensor_model_on_the_device_equals_the_cpu(model):
    """Parallel == recurrent on the device, both == the CPU's parallel form (float64, 1e-10 relative)."""
    idx = torch.randint(0, CONFIG.vocab_size, (2, 37), generator=torch.Generator().manual_seed(1))
    expected, _ = model(idx)
    on_device = copy.deepcopy(model).to(DEVICE)
    parallel, _ = on_device(idx.to(DEVICE))
    recurrent = on_device.forward_recurrent(idx.to(DEVICE))
    assert parallel.device.type == torch.device(DEVICE).type and expected.abs().max() > 1e-3
    assert rel_err(parallel, expected) < 1e-10 and rel_err(recurrent, expected) < 1e-10


def test_windows_from_carried_state_on_the_device_equal_the_parallel_form(model):
    """Windows of 8 read from the state the previous one left (positions as a (B,) device tensor, as training
    carries them) == the CPU's parallel form over the whole sequence (float64, 1e-10 relative)."""
    idx = torch.randint(0, CONFIG.vocab_size, (3, 40), generator=torch.Generator().manual_seed(2))
    expected, _ = model(idx)
    on_device = copy.deepcopy(model).to(DEVICE)
    state = on_device.init_state(3)
    state.position = torch.zeros(3, dtype=torch.long, device=DEVICE)
    with torch.no_grad():
        windows = [on_device(idx[:, s:s + 8].to(DEVICE), state=state)[0] for s in range(0, 40, 8)]
    assert state.rho.device.type == torch.device(DEVICE).type and state.position.tolist() == [40] * 3
    assert rel_err(torch.cat(windows, dim=1), expected) < 1e-10


@pytest.mark.parametrize("carry_state", [False, True], ids=["windows", "carried-state"])
def test_training_on_the_device_follows_the_cpu(tmp_path, carry_state):
    """Four AdamW steps from the same seed (no dropout: no device RNG): the held-out losses agree to 1e-3 relative,
    every weight to 4 lr (float32)."""
    tokens = encode(default_corpus()[:20_000])
    documents, held_out = split_held_out(tokens)
    cfg = TrainConfig(steps=4, batch_size=4, block_size=32, warmup_steps=1, eval_interval=2, eval_batches=2, seed=3,
                      lr=3e-3, carry_state=carry_state, max_stream_tokens=96)
    runs = {device: train(TINY, documents, held_out, tmp_path / device, cfg, device=device, progress=False)
            for device in ("cpu", DEVICE)}
    np.testing.assert_allclose(runs[DEVICE]["held_out_loss"], runs["cpu"]["held_out_loss"], rtol=1e-3)
    a, b = (load_model(tmp_path / device / MODEL_FILE) for device in ("cpu", DEVICE))
    for name, weight in a.state_dict().items():
        torch.testing.assert_close(b.state_dict()[name], weight, rtol=0, atol=4 * cfg.lr, msg=name)


def test_generate_on_the_device_equals_the_cpu(model):
    """Greedy continuation (top_k=1: no sampling noise between the devices' generators) is the same sequence."""
    prompt = torch.tensor([list(b"The dragon")])
    expected = model.generate(prompt, 24, top_k=1)
    got = copy.deepcopy(model).to(DEVICE).generate(prompt.to(DEVICE), 24, top_k=1,
                                                   generator=torch.Generator(DEVICE).manual_seed(0))
    assert torch.equal(got.cpu(), expected)


@pytest.mark.parametrize("wiring,prune", [("hub", None), ("neuron", None), ("neuron", TopK(6))])
def test_validation_on_the_device_equals_the_cpu(model, wiring, prune):
    """The network and its tensor reference both on the device: exact wirings exact to round-off, and the pruned
    one's per-token KL equal to the CPU (Numba) run's (float64)."""
    on_device = validate(model, TEXT, wiring=wiring, prune=prune, device=DEVICE, state_every=8)
    on_cpu = validate(model, TEXT, wiring=wiring, prune=prune, backend="numba", state_every=8)
    assert on_device.backend == ("numba" if DEVICE == "cpu" else "torch")
    if prune is None:
        assert on_device.max_rel < 1e-9 and on_device.top1.all()
    np.testing.assert_allclose(on_device.kl, on_cpu.kl, rtol=1e-6, atol=1e-12)
    assert np.array_equal(on_device.top1, on_cpu.top1)


def test_memory_experiments_on_the_device_equal_the_cpu(model):
    """Every reading (full, none, forgetting, a lesion, the strongest synapses, the passage twice) gives the CPU's
    bits per byte, on the network and on the tensor model (float64, 1e-9 relative)."""
    options = dict(time_constants=[2.0, 8.0], layers=[1], heads=[0], strongest=[4], repeat_bytes=16)
    on_device = memory_experiments(model, TEXT, device=DEVICE, **options)
    on_cpu = memory_experiments(model, TEXT, backend="numba", **options)
    assert on_device.network["device"] == str(torch.device(DEVICE))
    readings = lambda r: [r.full, r.no_memory, *r.horizon, *r.lesions, *r.repeat.values()]  # noqa: E731
    for got, expected in zip(readings(on_device), readings(on_cpu), strict=True):
        np.testing.assert_allclose(got.bits, expected.bits, rtol=1e-9, err_msg=got.label)
        if expected.tensor_bits is not None:
            np.testing.assert_allclose(got.tensor_bits, expected.tensor_bits, rtol=1e-9, err_msg=got.label)


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-9), (np.float32, 1e-4)])
@pytest.mark.parametrize("wiring", ["hub", "neuron"])
def test_torch_network_on_the_device_equals_numba_on_the_cpu(model, wiring, dtype, tol):
    tokens = encode(TEXT).numpy()
    net = build_network(model, wiring=wiring, backend="torch", device=DEVICE, dtype=dtype)
    reference = build_network(model, wiring=wiring, backend="numba", dtype=dtype)
    got, expected = net.run(tokens, progress=False), reference.run(tokens, progress=False)
    assert str(net.backend.device) == str(torch.device(DEVICE))
    assert np.abs(got - expected).max() / np.abs(expected).max() < tol


def test_commands_take_the_device(capsys, tmp_path):
    """validate, step, memory and generate with ``--device`` (the network on torch there) agree with the CPU; train
    writes a model."""
    checkpoint = tiny_checkpoint(tmp_path, 31, 15.0)
    text = tmp_path / "text.txt"
    text.write_text(TEXT, encoding="utf-8")
    common = [checkpoint, "--text", str(text), "--wiring", "hub"]
    s = run_json(capsys, "validate", *common, "--device", DEVICE)
    assert s["backend"] == ("numba" if DEVICE == "cpu" else "torch") and s["max_rel"] < 1e-9
    step = run_json(capsys, "step", *common, "--device", DEVICE, "--out", str(tmp_path / "step"))
    cpu = run_json(capsys, "step", *common, "--out", str(tmp_path / "step-cpu"))
    np.testing.assert_allclose(step["y_active_per_layer"], cpu["y_active_per_layer"], rtol=0, atol=1e-12)
    memory = run_json(capsys, "memory", *common, "--device", DEVICE, "--layers", "0", "--heads", "0",
                      "--strongest", "2", "--time-constants", "4", "--out", str(tmp_path / "memory"))
    assert memory["network"]["device"] == str(torch.device(DEVICE))
    assert np.isfinite(memory["bits_per_byte"])
    greedy = ["generate", checkpoint, "--prompt", "The ", "--max-new-tokens", "16", "--top-k", "1"]
    assert run_json(capsys, *greedy, "--device", DEVICE)["text"] == run_json(capsys, *greedy)["text"]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(default_corpus()[:4000], encoding="utf-8")
    trained = run_json(capsys, "train", "--out", str(tmp_path / "run"), "--text", str(corpus), "--steps", "2",
                       "--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--batch-size", "2", "--block-size",
                       "16", "--eval-interval", "2", "--eval-batches", "1", "--concept-sentences", "0",
                       "--device", DEVICE)
    assert np.isfinite(trained["held_out_loss"][-1]) and load_model(trained["model"]).config.n_layer == 1
