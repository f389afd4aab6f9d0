"""How well a model predicts text: bits per byte, by position from a zero synaptic state, and next-byte predictions."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..text import decode
from .tensor import BDH

CONTEXT_SHOWN = 24  # bytes of context printed before each prediction
POSITION_BUCKETS = (0, 256, 512, 1024, 2048, 4096)  # how far into a text a prediction is
HOLDS_WITHIN = 0.25  # bits per byte: memory "holds" when no later bucket is further above the first


@torch.no_grad()
def next_byte_report(model: BDH, tokens: torch.Tensor, shown: int = 5) -> dict:
    """Bits per byte of ``tokens`` (T,) under the recurrent form, ``sum_t -log2 p(tokens[t+1] | tokens[:t+1]) /
    (T-1)``, and the top-3 next-byte predictions at ``shown`` positions spread over the text (from the ninth
    byte on, so that each has some context).

    Returns ``{"tokens": T, "bits_per_byte": ..., "predictions": [{"context", "actual", "top3"}, ...]}``.
    """
    tokens = torch.as_tensor(tokens).reshape(-1).long()
    if len(tokens) < 2:
        raise ValueError(f"next_byte_report needs at least 2 tokens, got {len(tokens)}")
    if isinstance(shown, bool) or not isinstance(shown, int) or shown < 0:
        raise ValueError(f"shown must be an integer >= 0, got {shown!r}")
    logits = model.forward_recurrent(tokens.unsqueeze(0).to(model.decoder.device))[0].double().cpu()  # T, V
    nats = F.cross_entropy(logits[:-1], tokens[1:], reduction="sum").item()
    probs = F.softmax(logits, dim=-1)
    positions = (torch.linspace(8, len(tokens) - 2, steps=min(shown, len(tokens) - 9)).long().tolist()
                 if len(tokens) > 10 else [])
    predictions = []
    for t in positions:
        top = torch.topk(probs[t], 3)
        predictions.append({
            "context": decode(tokens[max(0, t - CONTEXT_SHOWN) : t + 1]),
            "actual": decode(tokens[t + 1 : t + 2]),
            "top3": [(decode(torch.tensor([int(i)])), round(float(p), 4)) for p, i in zip(top.values, top.indices)],
        })
    return {"tokens": len(tokens), "bits_per_byte": nats / math.log(2) / (len(tokens) - 1),
            "predictions": predictions}


@torch.no_grad()
def bits_per_byte_by_position(
    model: BDH, tokens: torch.Tensor, edges: tuple[int, ...] = POSITION_BUCKETS, window: int = 256
) -> dict:
    """Bits per byte by position from a zero synaptic state, read window by window with carried state.

    ``tokens`` is cut into segments of ``edges[-1]`` tokens (a shorter remainder is dropped), each read from a
    zero state; the prediction of the byte at position ``i`` (1 <= i < edges[-1]) counts in the bucket
    ``edges[j] <= i < edges[j+1]``. Returns ``{"edges", "bits_per_byte" (one per bucket), "segments"}``.
    """
    length = edges[-1]
    segments = len(tokens) // length
    if segments < 1:
        raise ValueError(f"need at least {length} tokens for the position buckets {list(edges)}, got {len(tokens)}")
    was_training = model.training
    model.eval()
    device = model.decoder.device
    batch = tokens[: segments * length].view(segments, length).to(device)
    state = model.init_state(segments)
    losses = []
    for start in range(0, length - 1, window):
        stop = min(start + window, length - 1)
        logits, _ = model(batch[:, start:stop], state=state)
        targets = batch[:, start + 1 : stop + 1]
        losses.append(F.cross_entropy(logits.transpose(1, 2).double(), targets, reduction="none"))
    model.train(was_training)
    per_position = torch.cat(losses, dim=1).mean(0) / math.log(2)  # bits of byte i+1, i = 0 .. length-2
    bits = [float(per_position[max(lo, 1) - 1 : hi - 1].mean()) for lo, hi in zip(edges[:-1], edges[1:])]
    return {"edges": list(edges), "bits_per_byte": bits, "segments": segments}


def position_verdict(result: dict) -> str:
    """One line on a :func:`bits_per_byte_by_position` result: the loss falls as context grows (every later bucket at
    or below the first), or the memory holds (no bucket more than ``HOLDS_WITHIN`` bits above the first), or how much
    worse the worst bucket is."""
    edges, bits = result["edges"], result["bits_per_byte"]
    worst = max(range(1, len(bits)), key=lambda j: bits[j], default=0)
    excess = bits[worst] - bits[0]
    if excess <= 0:
        return (f"the loss falls as context grows: every bucket up to {edges[-1]} bytes is at or below the first "
                f"({bits[0]:.2f}; the last {bits[-1]:.2f})")
    if excess <= HOLDS_WITHIN:
        return (f"working memory holds over {edges[-1]} bytes: no bucket is more than {HOLDS_WITHIN} bits per byte "
                f"above the first ({bits[0]:.2f})")
    return (f"working memory fades with length: bytes [{edges[worst]}, {edges[worst + 1]}) cost {excess:.2f} bits per "
            f"byte more than bytes [0, {edges[1]}) ({bits[worst]:.2f} against {bits[0]:.2f})")


def byte_frequency_bits(training: torch.Tensor, tokens: torch.Tensor, vocab_size: int = 256) -> float:
    """Bits per byte of ``tokens`` predicted from byte frequencies alone (those of ``training``, add-one smoothed):
    the level a model that reads no context at all reaches."""
    counts = torch.bincount(torch.as_tensor(training).reshape(-1).long(), minlength=vocab_size).double() + 1
    log2p = torch.log2(counts / counts.sum())
    return float(-log2p[torch.as_tensor(tokens).reshape(-1).long()].mean())


__all__ = ["HOLDS_WITHIN", "POSITION_BUCKETS", "bits_per_byte_by_position", "byte_frequency_bits",
           "next_byte_report", "position_verdict"]
