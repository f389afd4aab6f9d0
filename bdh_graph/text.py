"""Text as byte tokens (UTF-8 bytes, vocabulary 256) and the offline default corpus.

The default corpus is the English documentation that every CPython install carries in
``pydoc_data.topics`` (the text behind ``help('TOPIC')``): about 465 kB, no download needed.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

HELD_OUT_FRACTION = 0.1


def encode(text: str) -> torch.Tensor:
    """UTF-8 bytes of ``text`` as a LongTensor (T,). Empty text is refused."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if not text:
        raise ValueError("text is empty: at least one byte is needed")
    return torch.frombuffer(bytearray(text.encode("utf-8")), dtype=torch.uint8).long()


def decode(tokens) -> str:
    """Text of byte tokens; bytes that are not valid UTF-8 become U+FFFD."""
    return bytes(int(t) for t in torch.as_tensor(tokens).reshape(-1)).decode("utf-8", errors="replace")


def read_text(path: str | os.PathLike) -> str:
    """Contents of a UTF-8 text file, refusing missing, empty and non-UTF-8 files."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"text file '{path}' does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"text file '{path}' is not UTF-8 text ({err})") from err
    if not text:
        raise ValueError(f"text file '{path}' is empty")
    return text


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
