"""Text as byte tokens: UTF-8 bytes, vocabulary 256."""
from __future__ import annotations

import os
from pathlib import Path

import torch

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
