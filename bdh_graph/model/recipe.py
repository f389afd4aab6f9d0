"""The bundled model's recipe: its sizes, its training text and its three training stages.

``bdh_graph/data/bdh-small.safetensors`` was made by ``bdh-graph train`` in three stages, whose settings are read
from here: a model of ``BUNDLED_CONFIG`` trained with ``BUNDLED_TRAINING`` (every default of ``bdh-graph train``:
random 256-byte windows, each read from a zero state), then trained on from those weights with
``BUNDLED_CARRIED`` (carried state: documents read as streams of windows, each window starting from the synaptic
state the previous one left; issue 12), then given damping (``BUNDLED_DAMPED_CONFIG``: a learned forgetting time
per head, docs/model.md 7.3) and trained on with carried state, ``BUNDLED_DAMPED`` (issue 22), all on
``training_documents()`` (the first 90 % of the default corpus,
document by document, and ``BUNDLED_CONCEPT_SENTENCES`` generated concept sentences as one more document; the
held-out loss is measured on the last 10 % of the corpus alone). In a script::

    documents, held_out = training_documents()
    train(BUNDLED_CONFIG, documents, held_out, "runs/bundled", BUNDLED_TRAINING)
    carried = dataclasses.replace(BUNDLED_CARRIED, init="runs/bundled/model.safetensors")
    train(BUNDLED_CONFIG, documents, held_out, "runs/carry", carried)
    damped = dataclasses.replace(BUNDLED_DAMPED, init="runs/carry/model.safetensors")
    train(BUNDLED_DAMPED_CONFIG, documents, held_out, "runs/damped", damped)

Stage 3 saves snapshots every 50 steps (``runs/damped/snapshots``): its run is also an emergence study.
"""
from __future__ import annotations

import torch

from ..text import default_documents, encode, split_documents_held_out
from ..text.concepts import concept_corpus
from .config import BDHConfig
from .training import TrainConfig

BUNDLED_CONFIG = BDHConfig(n_layer=4, n_embd=128, n_head=4, mlp_internal_dim_multiplier=32)
BUNDLED_TRAINING = TrainConfig()  # stage 1: 800 steps of 8 random windows of 256 bytes, seed 1337
# stage 2: 2000 steps of 8 streams, windows of 256 bytes, stream caps log-uniform in [256, 8192] bytes
BUNDLED_CARRIED = TrainConfig(steps=2000, lr=3e-4, min_lr=3e-5, warmup_steps=50, carry_state=True,
                              min_stream_tokens=256, max_stream_tokens=8192)
# stage 3: damping from the initial spread of time constants, 500 steps of carried state, snapshots every 50
BUNDLED_DAMPED_CONFIG = BUNDLED_CONFIG.replace(damping=True)
BUNDLED_DAMPED = TrainConfig(steps=500, lr=3e-4, min_lr=3e-5, warmup_steps=50, eval_interval=100, carry_state=True,
                             min_stream_tokens=256, max_stream_tokens=8192, snapshot_every=50)
BUNDLED_CONCEPT_SENTENCES = 1200


def training_documents(text: str | None = None, concept_sentences: int = BUNDLED_CONCEPT_SENTENCES,
                       seed: int = BUNDLED_TRAINING.seed) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Training documents and held-out tokens: ``text`` (one document; default: the documents of the default
    corpus) split into its first 90 % and its held-out tail, then ``concept_sentences`` concept and contrast
    sentences (``concept_corpus(.., seed)``) appended to the training part as one more document. Concatenated,
    the training documents are the tokens the released-style random-window training reads."""
    if isinstance(concept_sentences, bool) or not isinstance(concept_sentences, int) or concept_sentences < 0:
        raise ValueError(f"concept_sentences must be an integer >= 0, got {concept_sentences!r}")
    documents, held_out = split_documents_held_out(default_documents() if text is None else [text])
    if concept_sentences:
        documents.append(encode(concept_corpus(concept_sentences, seed=seed)))
    return documents, held_out


__all__ = ["BUNDLED_CARRIED", "BUNDLED_CONCEPT_SENTENCES", "BUNDLED_CONFIG", "BUNDLED_DAMPED", "BUNDLED_DAMPED_CONFIG",
           "BUNDLED_TRAINING", "training_documents"]
