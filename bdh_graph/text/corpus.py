"""The offline default corpus and its held-out tail.

The default corpus is the English documentation that every CPython install carries in
``pydoc_data.topics`` (the text behind ``help('TOPIC')``): about 465 kB, no download needed.
"""
from __future__ import annotations

import torch

from .tokens import decode, encode

HELD_OUT_FRACTION = 0.1


def default_corpus() -> str:
    """The pydoc topics of this Python, in sorted topic order, separated by blank lines."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[key].strip() for key in sorted(topics))


def split_held_out(tokens: torch.Tensor, fraction: float = HELD_OUT_FRACTION) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``1 - fraction`` of the tokens for training, the rest held out."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"held-out fraction must be in (0, 1), got {fraction}")
    cut = int(len(tokens) * (1 - fraction))
    return tokens[:cut], tokens[cut:]


def default_passage(n_bytes: int = 256) -> str:
    """A passage from the held-out part of the default corpus (never seen in training), cut at whole lines."""
    _, held_out = split_held_out(encode(default_corpus()))
    text = decode(held_out)
    start = text.index("\n") + 1
    end = text.rfind("\n", start, start + n_bytes)
    return text[start:end if end > start else start + n_bytes]
