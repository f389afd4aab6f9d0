"""Paired associates: the associative-memory paradigm of psychology as token sequences (docs/model.md section 8).

A trial studies P pairs (A, B), then, after D unrelated bytes, presents each A alone (the *cue*) and asks for its
B (the *answer*). The stimuli are abstract tokens above the 256 bytes, so a model of the task has
``vocab_size = 256 + K (K + 2)`` for K keys and K partners:

==========================  ===============================  =====================================
tokens                      what                             count
==========================  ===============================  =====================================
``0 .. 255``                bytes: the distractors            256
``256 + a``                 cue: key ``a`` alone              K
``256 + K + b``             answer: partner ``b``             K
``256 + 2K + a K + b``      pair: key ``a`` studied with b    K^2
==========================  ===============================  =====================================

One token per studied pair makes each association one Hebbian write (the pair token's input neuron onto the
x-neurons it drives); a byte layout ``A B A B ... A ?`` would need a previous-token mechanism that linear
attention lacks. A trial of P pairs and D distractors is::

    pair(a_1, b_1) .. pair(a_P, b_P)   D bytes of text   cue(a_o1) answer(b_o1) .. cue(a_oP) answer(b_oP)

with P distinct keys, P distinct partners and the cue order ``o`` a random permutation; the model must predict
each answer at its cue. Guessing a partner at random is right with probability ``1 / K`` (the task's chance).
"""
from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral

import numpy as np
import torch

from ..errors import TaskError
from .corpus import default_corpus, split_held_out
from .tokens import encode

BYTES = 256  # tokens 0..255 are the bytes, read as distractors
DEFAULT_STIMULI = 64


def _is_int(value) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


@dataclass(frozen=True)
class PairedAssociates:
    """The token encoding of the task for ``stimuli`` = K keys and K partners (module doc)."""

    stimuli: int = DEFAULT_STIMULI

    def __post_init__(self) -> None:
        if not _is_int(self.stimuli) or self.stimuli < 2:
            raise TaskError(f"stimuli: the task needs K >= 2 keys and partners, got {self.stimuli!r}")

    @property
    def vocab_size(self) -> int:
        K = self.stimuli
        return BYTES + K * (K + 2)

    @property
    def chance(self) -> float:
        """Recall by guessing a partner at random."""
        return 1.0 / self.stimuli

    @classmethod
    def for_vocab(cls, vocab_size: int, where: str = "model") -> "PairedAssociates":
        """The largest task a vocabulary of ``vocab_size`` tokens holds (tokens above it are left unused);
        ``TaskError`` naming ``where`` if it holds none (a byte-level language model, V = 256)."""
        K = 2
        if vocab_size < cls(K).vocab_size:
            raise TaskError(f"{where}: its vocabulary of {vocab_size} tokens cannot hold the paired-associate task, "
                            f"which needs 256 bytes + K (K + 2) stimuli, at least {cls(K).vocab_size} tokens (K = 2); "
                            "give a model trained for recall (e.g. the bundled recall model)")
        while cls(K + 1).vocab_size <= vocab_size:
            K += 1
        return cls(K)

    def cue(self, key) -> np.ndarray:
        return BYTES + np.asarray(key)

    def answer(self, partner) -> np.ndarray:
        return BYTES + self.stimuli + np.asarray(partner)

    def pair(self, key, partner) -> np.ndarray:
        K = self.stimuli
        return BYTES + 2 * K + np.asarray(key) * K + np.asarray(partner)

    def decode(self, token: int) -> tuple:
        """``("byte", b)``, ``("cue", a)``, ``("answer", b)`` or ``("pair", a, b)``."""
        K, t = self.stimuli, int(token)
        if not 0 <= t < self.vocab_size:
            raise TaskError(f"token {t} is outside the task's vocabulary [0, {self.vocab_size})")
        if t < BYTES:
            return ("byte", t)
        t -= BYTES
        if t < K:
            return ("cue", t)
        if t < 2 * K:
            return ("answer", t - K)
        return ("pair", *divmod(t - 2 * K, K))

    def name(self, token: int) -> str:
        """A token for a reader: the byte as a Python bytes literal, ``A7`` (cue), ``B3`` (answer), ``A7B3``."""
        kind, *ids = self.decode(token)
        if kind == "byte":
            return repr(bytes([ids[0]]))[1:]
        return {"cue": "A{}", "answer": "B{}", "pair": "A{}B{}"}[kind].format(*ids)

    def check_pairs(self, pairs, name: str = "pairs") -> int:
        """``pairs`` itself if a trial can study that many (1 .. K), else ``TaskError`` naming ``name``."""
        if not _is_int(pairs) or not 1 <= pairs <= self.stimuli:
            raise TaskError(f"{name}: a trial studies 1 to {self.stimuli} pairs (the encoding has {self.stimuli} "
                            f"keys and {self.stimuli} partners), got {pairs!r}")
        return int(pairs)


@dataclass(frozen=True)
class Trial:
    """One trial: ``tokens`` (3P + D,), the studied ``keys`` and ``partners`` (P,) in study order, the cue
    ``order`` (P,) (the pair cued k-th is ``order[k]``) and ``distractors`` D."""

    tokens: np.ndarray
    keys: np.ndarray
    partners: np.ndarray
    order: np.ndarray
    distractors: int

    @property
    def pairs(self) -> int:
        return len(self.keys)

    @property
    def cue_positions(self) -> np.ndarray:
        """The position of each cue, in cue order; the model's prediction there should be the answer."""
        return self.pairs + self.distractors + 2 * np.arange(self.pairs)

    @property
    def study_positions(self) -> np.ndarray:
        """The position at which each pair (study order) was studied."""
        return np.arange(self.pairs)

    def answers(self) -> np.ndarray:
        """The tokens the cues ask for, in cue order: ``tokens[cue_positions + 1]``."""
        return self.tokens[self.cue_positions + 1]


def filler_text(held_out: bool) -> torch.Tensor:
    """Where distractors come from: the default corpus's training part, or its held-out tail."""
    return split_held_out(encode(default_corpus()))[1 if held_out else 0]


def make_trial(task: PairedAssociates, pairs: int, distractors: int, rng: np.random.Generator,
               filler: np.ndarray) -> Trial:
    """A trial of ``pairs`` pairs and ``distractors`` bytes of ``filler`` (a random window), drawn from ``rng``."""
    task.check_pairs(pairs)
    if not _is_int(distractors) or distractors < 0:
        raise TaskError(f"distractors: expected an integer >= 0, got {distractors!r}")
    if distractors > len(filler):
        raise TaskError(f"distractors: {distractors} bytes asked for, the filler text has {len(filler)}")
    keys = rng.choice(task.stimuli, pairs, replace=False)
    partners = rng.choice(task.stimuli, pairs, replace=False)
    order = rng.permutation(pairs)
    start = int(rng.integers(len(filler) - distractors + 1))
    cued = np.stack([task.cue(keys[order]), task.answer(partners[order])], axis=1).reshape(-1)
    tokens = np.concatenate([task.pair(keys, partners), np.asarray(filler[start:start + distractors]), cued])
    return Trial(tokens.astype(np.int64), keys, partners, order, distractors)


def make_trials(task: PairedAssociates, pairs: int, trials: int, distractors: int = 0, seed: int = 0,
                filler: np.ndarray | None = None) -> list[Trial]:
    """``trials`` trials of ``pairs`` pairs, seeded; distractors from ``filler`` (default: the held-out tail of
    the default corpus, never read in training)."""
    task.check_pairs(pairs)
    if not _is_int(trials) or trials < 1:
        raise TaskError(f"trials: expected an integer >= 1, got {trials!r}")
    filler = np.asarray(filler_text(held_out=True) if filler is None else filler)
    rng = np.random.default_rng(seed)
    return [make_trial(task, pairs, distractors, rng, filler) for _ in range(trials)]


def study_pairs(task: PairedAssociates, trial: Trial) -> list[tuple[int, int]]:
    """The (key, partner) pairs a trial's tokens present, decoded from its pair tokens (study order)."""
    return [task.decode(t)[1:] for t in trial.tokens if task.decode(t)[0] == "pair"]


__all__ = ["BYTES", "PairedAssociates", "Trial", "filler_text", "make_trial", "make_trials",
           "study_pairs"]
