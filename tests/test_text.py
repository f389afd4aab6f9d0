"""Byte tokens and the offline default corpus."""
from __future__ import annotations

import pytest
import torch

from bdh_graph.text.concepts import CONCEPTS, concept_corpus, concept_sentences
from bdh_graph.text import decode, default_corpus, default_passage, encode, read_text, split_held_out


def test_encode_decode_round_trip_with_multibyte_characters():
    text = "Σίσυφος naïve — 龍 🐉"
    tokens = encode(text)
    assert tokens.dtype == torch.int64 and len(tokens) == len(text.encode("utf-8"))
    assert int(tokens.max()) < 256 and decode(tokens) == text


def test_default_corpus_is_offline_english_and_stable():
    corpus = default_corpus()
    assert len(corpus) > 100_000 and "assignment statement" in corpus.lower()
    assert corpus == default_corpus()
    train, held_out = split_held_out(encode(corpus))
    assert len(held_out) == pytest.approx(0.1 * (len(train) + len(held_out)), abs=1)
    passage = default_passage(300)
    assert 0 < len(passage) <= 300 and passage in decode(held_out)


def test_bad_text_is_refused(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        encode("")
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(ValueError, match="empty.txt' is empty"):
        read_text(tmp_path / "empty.txt")
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ValueError, match="not UTF-8"):
        read_text(tmp_path / "bin.txt")
    with pytest.raises(FileNotFoundError):
        read_text(tmp_path / "nope.txt")


def test_concept_sentences_are_matched_and_seeded():
    for name, concept in CONCEPTS.items():
        pos = concept_sentences(name, 30, seed=4)
        neg = concept_sentences(name, 30, seed=4, contrast=True)
        assert pos == concept_sentences(name, 30, seed=4) and pos != concept_sentences(name, 30, seed=5)
        assert all(any(m in s for m in concept.members) for s in pos)
        assert not any(m in s.split(" ") or m + "." in s.split(" ") for s in neg for m in concept.members)
    assert concept_corpus(80).count("\n") == 80
    with pytest.raises(ValueError, match="unknown concept 'colour'"):
        concept_sentences("colour", 3)
