"""Training: deterministic with a seed, resumable to the identical result, refuses a mismatched resume; carried state
(streams over documents) equals the parallel form over each whole stream."""
from __future__ import annotations

import pytest
import torch

from bdh_graph import BDHConfig
from bdh_graph.model.checkpoints import load_model
from bdh_graph.model.tensor import BDH, IGNORE_INDEX
from bdh_graph.model.evaluation import bits_per_byte_by_position, position_verdict
from bdh_graph.model.training import MODEL_FILE, Streams, TrainConfig, train
from bdh_graph.text import default_corpus, encode, split_documents_held_out, split_held_out

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


def test_resume_refuses_another_model(tmp_path):
    _train(tmp_path / "run", 3)
    with pytest.raises(ValueError, match="model config"):
        _train(tmp_path / "run", 6, resume=True, config=CONFIG.replace(n_layer=3))
    with pytest.raises(FileNotFoundError, match="cannot resume"):
        _train(tmp_path / "empty", 3, resume=True)


# -- carried state: streams over documents, each window starting from the state its stream left -------------------

DOCUMENTS = [encode("alpha beta gamma delta " * 5), encode("x = 1\n" * 9), encode("the end.")]


def _float64_model(seed: int = 0) -> BDH:
    torch.manual_seed(seed)
    model = BDH(CONFIG.replace(dropout=0.0)).double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(15.0)
    return model


def test_streamed_windows_equal_the_parallel_form_over_each_whole_stream():
    """Window by window from carried state == the parallel form over the stream from its start (float64, 1e-9),
    positions continuing, the state zeroed where a new stream (a document boundary) begins."""
    model = _float64_model()
    cfg = TrainConfig(batch_size=3, block_size=8, max_stream_tokens=40, carry_state=True)
    streams = Streams(DOCUMENTS, cfg, torch.Generator().manual_seed(5))
    state = model.init_state(cfg.batch_size)
    state.position = torch.zeros(cfg.batch_size, dtype=torch.long)
    started = [None] * cfg.batch_size  # (document, offset) where each slot's stream began
    checked = {"windows": 0, "fresh": 0, "continued": 0}
    for _ in range(12):
        before = [(int(streams.doc[b]), int(streams.offset[b])) for b in range(cfg.batch_size)]
        x, y, fresh = streams.next_window()
        state.rho[:, fresh] = 0
        state.position[fresh] = 0
        with torch.no_grad():
            logits, _ = model(x, y, state=state)
        for b in range(cfg.batch_size):
            if fresh[b]:
                started[b] = (int(streams.doc[b]), int(streams.offset[b]) - cfg.block_size)
                checked["fresh"] += 1
            else:
                assert before[b][0] == started[b][0]  # a continued stream stays in its document
                checked["continued"] += 1
            doc, start = started[b]
            offset = int(streams.offset[b]) - cfg.block_size  # where this window began
            valid = int((y[b] != IGNORE_INDEX).sum())
            whole = DOCUMENTS[doc][start: offset + valid].unsqueeze(0)
            with torch.no_grad():
                reference, _ = model(whole)
            torch.testing.assert_close(logits[b, :valid], reference[0, offset - start:], rtol=0, atol=1e-9)
            assert torch.equal(y[b, :valid], DOCUMENTS[doc][offset + 1: offset + valid + 1])
            checked["windows"] += 1
    assert checked["fresh"] >= 4 and checked["continued"] >= 8  # both cases were exercised


def test_a_stream_ends_at_its_document_end_and_after_max_stream_tokens():
    cfg = TrainConfig(batch_size=1, block_size=8, max_stream_tokens=16, carry_state=True)
    streams = Streams([encode("a" * 100)], cfg, torch.Generator().manual_seed(0))
    fresh_flags, lengths = [], []
    for _ in range(30):
        x, y, fresh = streams.next_window()
        fresh_flags.append(bool(fresh[0]))
        lengths.append(int((y != IGNORE_INDEX).sum()))
    starts = [i for i, f in enumerate(fresh_flags) if f]
    runs = [sum(lengths[a:b]) for a, b in zip(starts, starts[1:])]
    assert runs and max(runs) <= 16  # never more than max_stream_tokens predictions per stream
    short = encode("abc")  # shorter than a window: padded, padding ignored by the loss
    x, y, fresh = Streams([short], TrainConfig(batch_size=1, block_size=8, carry_state=True),
                          torch.Generator().manual_seed(0)).next_window()
    assert bool(fresh[0]) and (y[0] != IGNORE_INDEX).sum() <= 2


def test_bits_per_byte_by_position_equals_a_direct_computation():
    model = _float64_model(1)
    tokens = encode(default_corpus()[:200])
    edges = (0, 4, 16, 64)
    result = bits_per_byte_by_position(model, tokens, edges=edges, window=10)
    segments = len(tokens) // 64
    batch = tokens[: segments * 64].view(segments, 64)
    with torch.no_grad():
        logits, _ = model(batch)
    nll = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), batch[:, 1:], reduction="none")
    per_position = nll.mean(0) / torch.log(torch.tensor(2.0, dtype=torch.float64))  # byte i+1 predicted at i
    expected = [float(per_position[max(lo, 1) - 1: hi - 1].mean()) for lo, hi in zip(edges[:-1], edges[1:])]
    assert result["segments"] == segments
    assert result["bits_per_byte"] == pytest.approx(expected, rel=1e-9)
    with pytest.raises(ValueError, match="at least 64 tokens"):
        bits_per_byte_by_position(model, tokens[:63], edges=edges)


def test_documents_split_like_the_corpus():
    docs = ["first document", "second one", "third and last"]
    train_docs, held_out = split_documents_held_out(docs, fraction=0.3)
    train_tokens, expected_held_out = split_held_out(encode("\n\n".join(docs)), fraction=0.3)
    assert torch.equal(torch.cat(train_docs), train_tokens) and torch.equal(held_out, expected_held_out)
    assert len(train_docs) == 3 and torch.equal(train_docs[0], encode("first document\n\n"))


def _train_streams(out, steps, resume=False):
    cfg = TrainConfig(steps=steps, batch_size=3, block_size=16, warmup_steps=2, eval_interval=3, eval_batches=2,
                      seed=3, lr=3e-3, carry_state=True, max_stream_tokens=64)
    train_docs, held_out = split_documents_held_out([default_corpus()[:6000], default_corpus()[6000:12000]])
    return train(CONFIG, train_docs, held_out, out, cfg, resume=resume, progress=False)


@pytest.mark.parametrize("run, steps, crash_at", [(_train, 9, 6), (_train_streams, 7, 3)],
                         ids=["random-windows", "carried-state"])
def test_interrupted_run_resumes_to_the_identical_result(tmp_path, monkeypatch, run, steps, crash_at):
    reference = run(tmp_path / "full", steps)
    import bdh_graph.model.training as training

    real_checkpoint = training._checkpoint

    def checkpoint_then_crash(out_dir, model, optimizer, generator, step, *rest, **kw):
        real_checkpoint(out_dir, model, optimizer, generator, step, *rest, **kw)
        if step == crash_at:
            raise KeyboardInterrupt  # the machine went down right after this checkpoint

    monkeypatch.setattr(training, "_checkpoint", checkpoint_then_crash)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "run", steps)
    monkeypatch.setattr(training, "_checkpoint", real_checkpoint)
    resumed = run(tmp_path / "run", steps, resume=True)
    assert resumed == reference  # losses, held-out losses (by position too) and steps
    full, again = load_model(tmp_path / "full" / MODEL_FILE), load_model(tmp_path / "run" / MODEL_FILE)
    assert all(torch.equal(full.state_dict()[k], again.state_dict()[k]) for k in full.state_dict())


def test_position_verdict_tells_falling_holding_and_fading_loss_apart():
    edges = [0, 256, 512, 1024, 2048, 4096]
    verdict = lambda bits: position_verdict({"edges": edges, "bits_per_byte": bits, "segments": 1})  # noqa: E731
    assert verdict([1.8, 1.8, 1.7, 1.65, 1.6]).startswith("the loss falls as context grows")
    assert verdict([1.8, 1.81, 1.7, 1.65, 1.6]).startswith("working memory holds over 4096 bytes")
    assert verdict([1.75, 1.76, 1.9, 2.08, 2.46]) == ("working memory fades with length: bytes [2048, 4096) cost 0.71 "
                                                      "bits per byte more than bytes [0, 256) (2.46 against 1.75)")
