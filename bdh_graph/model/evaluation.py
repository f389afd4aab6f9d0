"""How well a model predicts text: bits per byte and next-byte predictions under the recurrent form."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..text import decode
from .tensor import BDH

CONTEXT_SHOWN = 24  # bytes of context printed before each prediction


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


__all__ = ["next_byte_report"]
