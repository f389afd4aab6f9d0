"""Damping (docs/model.md section 7): the write made at token s reaches the read at token t > s with weight
gamma_h ** (t - s), the same in the parallel, recurrent and carried-state forms, and in an explicit double loop
written here from the definition; checkpoints keep it, and training learns it."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from bdh_graph import load_model, save_model
from bdh_graph.errors import CheckpointError
from bdh_graph.model.checkpoints import DAMPING_KEY
from bdh_graph.model.tensor import DAMPING_TIME_CONSTANTS, initial_damping
from bdh_graph.model import training
from bdh_graph.model.training import MODEL_FILE, TrainConfig, snapshot_path, train
from bdh_graph.text import default_corpus, encode, split_held_out

from helpers import DAMPED_CONFIG as CONFIG, damped_model, random_model

def reference_logits(model, tokens: np.ndarray) -> np.ndarray:
    """SPEC section 1 with damping, from the weights alone:
    ``a_t = sum_{s < t} gamma ** (t - s) <R_t x_t, R_s x_s> v_s`` as a double loop over t and s (float64 numpy; no
    code of the model is called)."""
    c = model.config
    w = {k: v.detach().double().numpy() for k, v in model.state_dict().items()}
    gamma = 1 / (1 + np.exp(-w[DAMPING_KEY]))
    freqs = w["attn.freqs"].reshape(-1)  # the stored (float32) frequencies, as the model uses them

    def ln(u):
        return (u - u.mean(-1, keepdims=True)) / np.sqrt(u.var(-1, keepdims=True) + 1e-5) if c.layer_norm else u

    def rotate(x, t):
        phi = 2 * math.pi * ((t * freqs) % 1)
        out = x * np.cos(phi)
        out[..., ::2] -= x[..., 1::2] * np.sin(phi[::2])
        out[..., 1::2] += x[..., ::2] * np.sin(phi[1::2])
        return out

    T = len(tokens)
    v = ln(w["embed.weight"][tokens])  # T, d
    for _ in range(c.n_layer):
        x = np.maximum(np.einsum("td,hdn->htn", v, w["encoder"]), 0)  # h, T, N
        k = np.stack([rotate(x[:, t], t) for t in range(T)], axis=1)
        a = np.zeros((c.n_head, T, c.n_embd))
        for h in range(c.n_head):
            for t in range(T):
                for s in range(t):
                    a[h, t] += gamma[h] ** (t - s) * (k[h, t] @ k[h, s]) * v[s]
        y = np.maximum(np.einsum("htd,hdn->htn", ln(a), w["encoder_v"]), 0) * x
        z = y.transpose(1, 0, 2).reshape(T, -1) @ w["decoder"]
        v = ln(v + ln(z))
    return v @ w["lm_head"]


@pytest.mark.parametrize("layer_norm", [True, False])
def test_parallel_recurrent_windows_and_a_double_loop_agree(layer_norm):
    config = CONFIG.replace(layer_norm=layer_norm)
    model = damped_model(config)
    tokens = torch.randint(0, 256, (2, 23), generator=torch.Generator().manual_seed(1))
    parallel, _ = model(tokens)
    recurrent = model.forward_recurrent(tokens)
    state, windows = model.init_state(2), []
    for start in range(0, 23, 5):
        windows.append(model(tokens[:, start:start + 5], state=state)[0])
    stepped = model.init_state(2)
    model.forward_recurrent(tokens, stepped)
    scale = parallel.abs().max().item()
    assert (parallel - recurrent).abs().max().item() <= 1e-9 * scale
    assert (parallel - torch.cat(windows, 1)).abs().max().item() <= 1e-9 * scale
    assert (state.rho - stepped.rho).abs().max().item() <= 1e-9 * stepped.rho.abs().max().item()
    reference = reference_logits(model, tokens[1].numpy())
    assert np.abs(parallel[1].detach().numpy() - reference).max() <= 1e-9 * scale


def test_damping_changes_the_model_and_gamma_one_is_no_damping():
    tokens = torch.randint(0, 256, (1, 30), generator=torch.Generator().manual_seed(2))
    damped = damped_model()
    undamped = random_model(CONFIG.replace(damping=False), 0)
    with torch.no_grad():  # the same weights: random_model draws the damping last
        for name, p in undamped.named_parameters():
            p.copy_(damped.state_dict()[name])
    assert not torch.allclose(damped(tokens)[0], undamped(tokens)[0])
    almost_one = damped_model(gammas=(1 - 1e-15,) * 3)
    assert torch.allclose(almost_one(tokens)[0], undamped(tokens)[0], rtol=1e-9, atol=1e-9)
    assert torch.equal(undamped.decay(), torch.ones(3, dtype=torch.float64))
    assert torch.isinf(undamped.time_constants()).all()


def test_with_damping_keeps_the_weights_and_sets_or_drops_the_time_constants():
    tokens = torch.randint(0, 256, (1, 30), generator=torch.Generator().manual_seed(4))
    damped = damped_model()
    undamped = damped.with_damping(False)
    by_hand = random_model(CONFIG.replace(damping=False), 0)  # random_model draws the damping last
    assert not undamped.config.damping and undamped.attn.damping is None
    assert torch.equal(undamped(tokens)[0], by_hand(tokens)[0])
    initial = initial_damping(3).double()  # as a new model starts
    assert torch.equal(undamped.with_damping(True).attn.damping.detach(), initial)
    assert torch.equal(damped.with_damping(True)(tokens)[0], damped(tokens)[0])  # its own time constants
    fixed = undamped.with_damping(True, 64.0)
    assert fixed.time_constants() == pytest.approx([64.0] * 3, rel=1e-12)
    assert undamped.with_damping(True, [8.0, 16.0, 32.0]).time_constants() == pytest.approx([8, 16, 32], rel=1e-12)
    assert {m.decoder.dtype for m in (undamped, fixed)} == {torch.float64}
    damped.train()
    state = torch.random.get_rng_state()
    assert damped.with_damping(False).training and torch.equal(torch.random.get_rng_state(), state)
    with pytest.raises(ValueError, match="an undamped model has none"):
        damped.with_damping(False, 64.0)


@pytest.mark.parametrize("gamma", [1e-300, 1e-12, 0.5, 1 - 1e-12])
def test_extreme_factors_stay_finite_over_long_windows(gamma):
    model = damped_model(gammas=(gamma,) * 3)
    tokens = torch.randint(0, 256, (1, 300), generator=torch.Generator().manual_seed(3))
    state = model.init_state(1)
    for start in range(0, 300, 100):
        logits, _ = model(tokens[:, start:start + 100], state=state)
        assert torch.isfinite(logits).all() and torch.isfinite(state.rho).all()
    model.float()
    assert torch.isfinite(model(tokens)[0]).all()


def test_initial_time_constants_are_log_spaced_and_learnable():
    model = random_model(CONFIG, 0, scale=1.0)
    taus = model.time_constants().numpy()
    assert taus[0] == pytest.approx(DAMPING_TIME_CONSTANTS[0], rel=1e-4)
    assert taus[-1] == pytest.approx(DAMPING_TIME_CONSTANTS[1], rel=1e-4)
    assert taus[1] == pytest.approx(math.sqrt(taus[0] * taus[2]), rel=1e-4)
    loss = model(torch.randint(0, 256, (1, 20)), torch.randint(0, 256, (1, 20)))[1]
    loss.backward()
    assert model.attn.damping.grad is not None and model.attn.damping.grad.abs().sum() > 0


# -- checkpoints ----------------------------------------------------------------------------------------------------

def test_a_damped_model_round_trips_and_cannot_be_saved_in_the_released_format(tmp_path):
    model = damped_model()
    save_model(model, tmp_path / "d.safetensors")
    back = load_model(tmp_path / "d.safetensors")
    assert back.config == CONFIG and torch.equal(back.decay(), model.decay())
    with pytest.raises(ValueError, match="no damping; save it as .safetensors"):
        save_model(model, tmp_path / "d.pt")
    assert not (tmp_path / "d.pt").exists()


def test_a_released_checkpoint_loads_undamped_and_refuses_damping(tmp_path):
    released = random_model(CONFIG.replace(damping=False), 0).float()
    save_model(released, tmp_path / "r.pt")
    assert not load_model(tmp_path / "r.pt", n_layer=2).config.damping
    with pytest.raises(CheckpointError, match="has no damping to load"):
        load_model(tmp_path / "r.pt", n_layer=2, damping=True)


@pytest.mark.parametrize("value,message", [(1e3, r"damping factors \[1.0\]"), (-1e3, r"damping factors \[0.0\]"),
                                           (math.nan, "non-finite")])
def test_a_file_whose_damping_factor_leaves_the_open_interval_is_refused(tmp_path, value, message):
    model = damped_model()
    save_model(model, tmp_path / "d.safetensors")
    tensors = load_file(tmp_path / "d.safetensors")
    tensors[DAMPING_KEY][1] = value
    with safe_open(str(tmp_path / "d.safetensors"), framework="pt") as f:
        metadata = f.metadata()
    save_file(tensors, str(tmp_path / "bad.safetensors"), metadata=metadata)
    with pytest.raises(CheckpointError, match=message):
        load_model(tmp_path / "bad.safetensors")


# -- training: damping learned from an undamped start, snapshots ----------------------------------------------------

TOKENS = encode(default_corpus()[:20_000])
TRAIN = TrainConfig(steps=6, batch_size=2, block_size=32, warmup_steps=1, eval_interval=4, eval_batches=1, seed=5,
                    lr=3e-3, carry_state=True, max_stream_tokens=96, snapshot_every=2)


def _train(out, cfg=TRAIN, config=CONFIG.replace(n_head=2), resume=False):
    train_tokens, held_out = split_held_out(TOKENS)
    return train(config, train_tokens, held_out, out, cfg, resume=resume, progress=False)


def test_a_damped_run_starts_from_an_undamped_checkpoint_and_learns_gamma_without_weight_decay(tmp_path):
    undamped = random_model(CONFIG.replace(n_head=2, damping=False), 0, dtype=torch.float32, scale=1.0)
    save_model(undamped, tmp_path / "u.safetensors")
    _train(tmp_path / "run", TrainConfig(**{**TRAIN.__dict__, "init": str(tmp_path / "u.safetensors")}))
    start = load_model(snapshot_path(tmp_path / "run", 0))
    assert all(torch.equal(start.state_dict()[k], v) for k, v in undamped.state_dict().items())
    assert torch.allclose(start.time_constants().float(), torch.tensor(DAMPING_TIME_CONSTANTS), rtol=1e-4)
    end = load_model(tmp_path / "run" / MODEL_FILE)
    assert not torch.equal(end.attn.damping, start.attn.damping)
    with pytest.raises(ValueError, match="--init checkpoint"):  # a damped start cannot make an undamped run
        _train(tmp_path / "back", TrainConfig(**{**TRAIN.__dict__, "init": str(tmp_path / "run" / MODEL_FILE)}),
               config=CONFIG.replace(n_head=2, damping=False))


def test_snapshots_at_step_zero_and_every_k_and_a_resumed_run_writes_the_same(tmp_path, monkeypatch):
    _train(tmp_path / "whole")
    names = sorted(p.name for p in (tmp_path / "whole" / "snapshots").iterdir())
    assert names == [f"step-{s:06d}.safetensors" for s in (0, 2, 4, 6)]

    def interrupted(model, path):  # the run stops while saving step 6's snapshot; its last checkpoint is step 4's
        if path == snapshot_path(tmp_path / "parts", 6):
            raise KeyboardInterrupt
        return save_model(model, path)

    monkeypatch.setattr(training, "save_model", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path / "parts")
    monkeypatch.undo()
    assert not snapshot_path(tmp_path / "parts", 6).exists()
    _train(tmp_path / "parts", resume=True)
    for step in (0, 2, 4, 6):
        a, b = load_model(snapshot_path(tmp_path / "whole", step)), load_model(snapshot_path(tmp_path / "parts", step))
        assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    with pytest.raises(ValueError, match="training settings"):  # the snapshot interval is part of the run
        _train(tmp_path / "parts", TrainConfig(**{**TRAIN.__dict__, "snapshot_every": 3}), resume=True)


def test_resume_of_a_folder_without_a_run_creates_nothing(tmp_path):
    with pytest.raises(FileNotFoundError, match="without --resume"):
        _train(tmp_path / "nothing", resume=True)
    assert not (tmp_path / "nothing").exists()
