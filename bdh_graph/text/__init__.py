"""Text: byte tokens, the default corpus and its held-out tail, generated concept sentences."""
from .tokens import decode, encode, read_text
from .corpus import (HELD_OUT_FRACTION, default_corpus, default_documents, default_passage, split_documents_held_out,
                     split_held_out)

__all__ = ["decode", "encode", "read_text", "HELD_OUT_FRACTION", "default_corpus", "default_documents",
           "default_passage", "split_documents_held_out", "split_held_out"]
