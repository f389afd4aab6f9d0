"""Training: deterministic with a seed, resumable to the identical result, refuses a mismatched resume."""
from __future__ import annotations

import pytest
import torch

from bdh_graph import BDHConfig
from bdh_graph.model.checkpoints import load_model
from bdh_graph.text import default_corpus, encode, split_held_out
from bdh_graph.model.training import MODEL_FILE, TrainConfig, train

CONFIG = BDHConfig(n_layer=2, n_embd=16, n_head=2, mlp_internal_dim_multiplier=4, dropout=0.1)
TOKENS = encode(default_corpus()[:20_000])


def _train(out, steps, resume=False, seed=3, config=CONFIG):
    cfg = TrainConfig(steps=steps, batch_size=4, block_size=32, warmup_steps=2, eval_interval=3, eval_batches=2,
                      seed=seed, lr=3e-3)
    train_tokens, held_out = split_held_out(TOKENS)
    return train(config, train_tokens, held_out, out, cfg, resume=resume, progress=False)


def test_training_lowers_held_out_loss_and_is_deterministic(tmp_path):
    h1 = _train(tmp_path / "a", 12)
    h2 = _train(tmp_path / "b", 12)
    assert h1["held_out_loss"] == h2["held_out_loss"]
    assert h1["held_out_loss"][-1] < h1["held_out_loss"][0] < 5.6
    a, b = load_model(tmp_path / "a" / MODEL_FILE), load_model(tmp_path / "b" / MODEL_FILE)
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    c = _train(tmp_path / "c", 12, seed=4)
    assert c["held_out_loss"] != h1["held_out_loss"]


def test_interrupted_run_resumes_to_the_identical_result(tmp_path, monkeypatch):
    reference = _train(tmp_path / "full", 9)
    import bdh_graph.model.training as training

    real_checkpoint = training._checkpoint

    def checkpoint_then_crash(out_dir, model, optimizer, generator, step, *rest):
        real_checkpoint(out_dir, model, optimizer, generator, step, *rest)
        if step == 6:
            raise KeyboardInterrupt  # the machine went down right after the step-6 checkpoint

    monkeypatch.setattr(training, "_checkpoint", checkpoint_then_crash)
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path / "run", 9)
    monkeypatch.setattr(training, "_checkpoint", real_checkpoint)
    resumed = _train(tmp_path / "run", 9, resume=True)
    assert resumed["held_out_loss"] == reference["held_out_loss"]
    full = load_model(tmp_path / "full" / MODEL_FILE)
    again = load_model(tmp_path / "run" / MODEL_FILE)
    assert all(torch.equal(full.state_dict()[k], again.state_dict()[k]) for k in full.state_dict())


def test_resume_refuses_another_model(tmp_path):
    _train(tmp_path / "run", 3)
    with pytest.raises(ValueError, match="model config"):
        _train(tmp_path / "run", 6, resume=True, config=CONFIG.replace(n_layer=3))
    with pytest.raises(FileNotFoundError, match="cannot resume"):
        _train(tmp_path / "empty", 3, resume=True)
