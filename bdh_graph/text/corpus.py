"""The offline default corpus and its held-out tail.

The default corpus is the English documentation that every CPython install carries in
``pydoc_data.topics`` (the text behind ``help('TOPIC')``): about 465 kB, no download needed.
"""
from __future__ import annotations

import torch

from .tokens import decode, encode

HELD_OUT_FRACTION = 0.1
DOCUMENT_SEPARATOR = "\n\n"


def default_documents() -> list[str]:
    """The pydoc topics of this Python, in sorted topic order: the documents of the default corpus."""
    from pydoc_data.topics import topics

    return [topics[key].strip() for key in sorted(topics)]


def default_corpus() -> str:
    """The pydoc topics of this Python, in sorted topic order, separated by blank lines."""
    return DOCUMENT_SEPARATOR.join(default_documents())


def split_held_out(tokens: torch.Tensor, fraction: float = HELD_OUT_FRACTION) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``1 - fraction`` of the tokens for training, the rest held out."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"held-out fraction must be in (0, 1), got {fraction}")
    cut = int(len(tokens) * (1 - fraction))
    return tokens[:cut], tokens[cut:]


def split_documents_held_out(
    documents: list[str], fraction: float = HELD_OUT_FRACTION
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """``split_held_out`` of the documents joined by blank lines, with the training part kept as documents.

    Each training document carries the separator that follows it, so the documents concatenate to exactly the
    training tokens of ``split_held_out``; the document cut by the split keeps only its training part.
    """
    if not documents:
        raise ValueError("no documents given")
    pieces = [encode(doc + DOCUMENT_SEPARATOR) for doc in documents[:-1]] + [encode(documents[-1])]
    train_tokens, held_out = split_held_out(torch.cat(pieces), fraction)
    train_documents, start = [], 0
    for piece in pieces:
        end = min(start + len(piece), len(train_tokens))
        if end > start:
            train_documents.append(train_tokens[start:end])
        start += len(piece)
    return train_documents, held_out


def default_passage(n_bytes: int = 256) -> str:
    """A passage from the held-out part of the default corpus (never seen in training), cut at whole lines."""
    _, held_out = split_held_out(encode(default_corpus()))
    text = decode(held_out)
    start = text.index("\n") + 1
    end = text.rfind("\n", start, start + n_bytes)
    return text[start:end if end > start else start + n_bytes]
